"""The throughput runner (fusion_bench.bench) and `fusion-bench bench`, at tiny shapes.

No assertion here depends on how fast anything runs: only on what is measured and recorded.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from fusion_bench.bench import device as bench_device
from fusion_bench.bench import runner as bench_runner
from fusion_bench.bench.memory import search_max_batch
from fusion_bench.bench.record import make_bench_record
from fusion_bench.bench.runner import run_bench
from fusion_bench.bench.settings import BenchSettings
from fusion_bench.bench.timing import percentile, summarize
from fusion_bench.config import build_config
from fusion_bench.costs import count_flops, count_parameters, parameter_counts
from fusion_bench.model import build_model
from fusion_bench.plugins import load_registry
from fusion_bench.report.bench_report import format_report

from .conftest import tiny_overrides

TINY_BENCH = ["--set", "dataset.synthetic.dim_visual=8", "--set", "dataset.synthetic.dim_audio=6",
              "--set", "dataset.synthetic.dim_text=5", "--set", "encoder.channels=8",
              "--set", "encoder.levels=2", "--preset", "quick", "--batch-size", "3",
              "--seq-len", "16", "--warmup", "1", "--repeats", "2", "--latency-repeats", "3"]


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def tiny_config(fusion="rcma"):
    return build_config("quick", None, [*tiny_overrides(), ("model.fusion", fusion),
                                        ("device", "cpu"), ("data.window", 16),
                                        ("data.hop", 16)])


def tiny_settings(**kw):
    return BenchSettings(**{"batch_size": 3, "seq_len": 16, "warmup": 1, "repeats": 2,
                            "latency_repeats": 3, **kw})


class Wrap(nn.Module):
    """A one-layer "model" with the fusion call signature, for exact FLOP formulas."""

    def __init__(self, layer, conv=False):
        super().__init__()
        self.layer, self.conv = layer, conv

    def forward(self, feats, masks):
        x = feats["x"]
        return self.layer(x.transpose(1, 2)).transpose(1, 2) if self.conv else self.layer(x)


# ---------------------------------------------------------------------------- FLOPs


@pytest.mark.parametrize("bias", [True, False])
def test_linear_flops_match_formula(bias):
    L, d_in, d_out = 7, 5, 3
    feats = {"x": torch.randn(1, L, d_in)}
    flops = count_flops(Wrap(nn.Linear(d_in, d_out, bias=bias)), feats, {})
    # forward: 2·L·d_in·d_out (bias adds are not counted); backward: the weight gradient only
    # (the input needs none), the same again
    assert flops["inference"] == 2 * L * d_in * d_out
    assert flops["train"] == 2 * flops["inference"]
    with_input = count_flops(Wrap(nn.Linear(d_in, d_out)), feats, {},
                             inputs_require_grad=True)
    assert with_input["train"] == 3 * with_input["inference"]  # + the input gradient


def test_conv1d_flops_match_formula():
    L, c_in, c_out, k = 20, 4, 6, 5
    conv = nn.Conv1d(c_in, c_out, k, dilation=2)
    flops = count_flops(Wrap(conv, conv=True), {"x": torch.randn(1, L, c_in)}, {})
    l_out = L - 2 * (k - 1)
    assert flops["inference"] == 2 * l_out * c_out * c_in * k


def test_flops_are_per_window_and_split_by_part(registry):
    cfg = tiny_config()
    model, _ = build_model(registry, cfg, {"visual": 8, "audio": 6, "text": 5}, 2)
    feats = {m: torch.randn(1, 16, d) for m, d in {"visual": 8, "audio": 6, "text": 5}.items()}
    masks = {m: torch.ones(1, 16, dtype=torch.bool) for m in feats}
    flops = count_flops(model, feats, masks)
    assert flops["train"] > flops["inference"] > 0
    assert set(flops["by_part"]) >= {"encoders", "fusion", "head"}
    assert sum(flops["by_part"].values()) == flops["inference"]
    # the head is Linear(3 × 8 → 2) on each of the 16 frames
    assert flops["by_part"]["head"] == 2 * 16 * 24 * 2
    # nothing was computed on (or left on) a real device
    assert all(p.device.type == "cpu" for p in model.parameters())


@pytest.mark.parametrize("encoder", ["tcn", "lstm", "identity"])
@pytest.mark.parametrize("fusion", load_registry().names("fusions"))
def test_cpu_flop_count_equals_the_meta_devices(registry, encoder, fusion):
    # the CPU count must see what the meta count sees: oneDNN's LSTM, SDPA's fused CPU kernel
    # and MultiheadAttention's fast path are each one operator the counter does not count
    keep = [(k, v) for k, v in tiny_overrides() if not k.startswith("encoder.")]  # tcn's options
    cfg = build_config("quick", None, [*keep, ("model.fusion", fusion), ("model.encoder", encoder),
                                       ("data.window", 8)])
    dims = {"visual": 8, "audio": 6, "text": 5}
    model, _ = build_model(registry, cfg, dims, 2)
    feats = {m: torch.randn(1, 8, d) for m, d in dims.items()}
    masks = {m: torch.ones(1, 8, dtype=torch.bool) for m in feats}
    cpu = count_flops(model, feats, masks)
    assert cpu == count_flops(model, feats, masks, device="meta")
    assert cpu["train"] > cpu["inference"] > 0


class SelfAttention(nn.Module):
    """Self-attention (MulT's transformers): in eval without grad, MultiheadAttention's fast path."""

    def __init__(self, d):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d, 2, dim_feedforward=16, batch_first=True)

    def forward(self, feats, masks):
        return self.layer(feats["x"])


def test_cpu_flop_count_of_self_attention_equals_the_meta_devices():
    feats = {"x": torch.randn(1, 8, 12)}
    cpu = count_flops(SelfAttention(12), feats, {})
    assert cpu == count_flops(SelfAttention(12), feats, {}, device="meta")
    # q, k, v and output projections, q·kᵀ and the weighted sum, and the feed-forward
    assert cpu["inference"] == 2 * 8 * (4 * 12 * 12 + 2 * 8 * 12 + 2 * 12 * 16)


def test_cpu_flop_count_leaves_the_model_and_random_state_as_they_were(registry):
    model, _ = build_model(registry, tiny_config(), {"visual": 8, "audio": 6, "text": 5}, 2)
    feats = {m: torch.randn(1, 16, d) for m, d in {"visual": 8, "audio": 6, "text": 5}.items()}
    masks = {m: torch.ones(1, 16, dtype=torch.bool) for m in feats}
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(3)
    count_flops(model, feats, masks)  # its train pass draws dropout masks on the copy
    drawn = torch.rand(4)
    torch.manual_seed(3)
    assert torch.equal(drawn, torch.rand(4))
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics too
    assert torch.backends.mha.get_fastpath_enabled() and torch.backends.mkldnn.enabled


# ---------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("fusion", load_registry().names("fusions"))
def test_parameter_splits_add_up(registry, fusion):
    model, _ = build_model(registry, tiny_config(fusion), {"visual": 8, "audio": 6, "text": 5}, 2)
    model.head.net.bias.requires_grad_(False)  # a frozen parameter: total ≠ trainable
    counts = parameter_counts(model)
    split = counts["split"]
    for key in ("total", "trainable"):
        assert sum(part[key] for part in split.values()) == counts[key]
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["trainable"] == counts["total"] - 2
    assert split["fusion"]["total"] == sum(p.numel() for p in model.fusion.parameters())
    legacy = count_parameters(model)  # the trainer's count: trainable, same grouping
    assert {k: split[k]["trainable"] for k in ("encoders", "fusion", "head")} == {
        k: legacy[k] for k in ("encoders", "fusion", "head")}


# ---------------------------------------------------------------------------- statistics


def test_summary_statistics():
    s = summarize([4.0, 1.0, 3.0, 2.0, 100.0])
    assert s["median_s"] == s["p50_s"] == 3.0
    assert (s["q25_s"], s["q75_s"], s["iqr_s"]) == (2.0, 4.0, 2.0)
    assert s["p95_s"] == pytest.approx(4.0 + 0.8 * 96.0)
    assert percentile([5.0], 95) == 5.0


# ---------------------------------------------------------------------------- out of memory


def oom(batch):
    return torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate at batch {batch}")


@pytest.mark.parametrize(("largest", "start", "limit"), [(37, 12, 4096), (5, 12, 4096),
                                                         (0, 4, 64), (1000, 12, 100)])
def test_max_batch_search_continues_after_oom(largest, start, limit):
    calls = []

    def fits(b):
        calls.append(b)
        if b > largest:
            raise oom(b)

    res = search_max_batch(fits, start, limit)
    assert res["max_batch"] == min(largest, limit)
    assert [t["batch_size"] for t in res["tried"]] == calls
    failed = [t for t in res["tried"] if not t["fits"]]
    assert all("OutOfMemoryError" in t["error"] for t in failed)
    if largest < limit:
        assert res["first_oom"] == largest + 1 and not res["limit_reached"]
        # the search went on after its first out-of-memory try
        assert calls.index(failed[0]["batch_size"]) < len(calls) - 1
    else:
        assert res["limit_reached"] and not failed


def test_max_batch_search_does_not_swallow_other_errors():
    def fits(b):
        raise ValueError("a bug, not memory")

    with pytest.raises(ValueError, match="a bug"):
        search_max_batch(fits, 4, 64)


def test_oom_batch_is_reported_and_the_search_continues(registry, monkeypatch):
    """A training step that runs out of memory above batch 5 (simulated): the run batch (8) is
    reported as OOM, the other phases still run, and the search finds 5."""
    real = bench_runner.train_step

    def train_step(work, inputs, *args, **kwargs):
        step = real(work, inputs, *args, **kwargs)
        batch = next(iter(inputs[0].values())).shape[0]

        def guarded():
            if batch > 5:
                raise oom(batch)
            return step()

        return guarded

    monkeypatch.setattr(bench_runner, "train_step", train_step)
    settings = tiny_settings(batch_size=8, find_max_batch=True, max_batch=64)
    res = run_bench(tiny_config(), registry, settings)
    phases = res["bench"]["phases"]
    assert res["status"] == "oom"
    assert phases["train"]["status"] == "oom" and "out of memory" in phases["train"]["error"]
    assert phases["inference"]["status"] == phases["inference_batch1"]["status"] == "ok"
    search = res["bench"]["max_batch"]
    assert search["max_batch"] == 5 and search["first_oom"] == 6
    assert [t["batch_size"] for t in search["tried"]] == [8, 4, 6, 5]
    record = make_bench_record(tiny_config(), settings, res, {})
    assert "OUT OF MEMORY" in format_report(record)


# ---------------------------------------------------------------------------- the record


def test_record_has_every_field(registry, tmp_path):
    settings = tiny_settings(compile=False)
    res = run_bench(tiny_config(), registry, settings)
    record = make_bench_record(tiny_config(), settings, res, {"fusion": {"name": "rcma"}})
    json.dumps(record)  # JSON-able
    assert record["kind"] == "bench" and record["status"] == "ok" and record["metrics"] == {}
    assert record["config_hash"].startswith("bench-")
    assert record["config"]["train"]["batch_size"] == 3 and record["config"]["data"]["window"] == 16
    env = record["environment"]
    for key in ("device", "device_name", "driver", "cuda", "torch", "fusion_bench", "commit",
                "cpu", "threads", "load_avg"):
        assert key in env, key
    b = record["bench"]
    assert b["fusion"] == "rcma" and b["dtype"] == "float32" and b["scope"] == "model"
    for key in ("amp", "compile", "threads", "warmup", "repeats", "latency_repeats"):
        assert key in b["flags"], key
    assert b["flags"]["repeats"] == 2
    for name, batch, n in (("inference", 3, 2), ("inference_batch1", 1, 3), ("train", 3, 2)):
        ph = b["phases"][name]
        assert ph["status"] == "ok" and ph["batch_size"] == batch and ph["n"] == n
        for key in ("median_s", "iqr_s", "p50_s", "p95_s", "windows_per_s", "frames_per_s",
                    "achieved_flops_per_s"):
            assert ph[key] > 0, (name, key)
        assert ph["iqr_s"] == ph["q75_s"] - ph["q25_s"]
        assert ph["frames_per_s"] == pytest.approx(ph["windows_per_s"] * 16)
        assert ph["peak_memory"]["bytes"] > 0 and ph["peak_memory"]["kind"].startswith("process")
        assert ph["peak_fraction"] is None  # no known peak for a CPU
    assert b["flops_per_window"]["inference"] > 0 and b["flops_per_window"]["train"] > 0
    p = record["params"]
    assert p["total"] == sum(part["total"] for part in p["split"].values())
    assert b["max_batch"] is None and b["compile"] is None


def test_fusion_scope_times_the_fusion_alone(registry):
    res = run_bench(tiny_config("concat"), registry, tiny_settings(scope="fusion"))
    b = res["bench"]
    assert b["scope"] == "fusion" and b["input_dims"] == {"visual": 8, "audio": 8, "text": 8}
    assert b["phases"]["train"]["status"] == "ok"  # no parameters: forward + backward only
    assert b["flops_per_window"]["inference"] == 0


def test_bad_settings_are_named(registry):
    from fusion_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="batch-size must be ≥ 1"):
        run_bench(tiny_config(), registry, tiny_settings(batch_size=0))
    with pytest.raises(ConfigError, match="scope"):
        run_bench(tiny_config(), registry, tiny_settings(scope="head"))


# ---------------------------------------------------------------------------- the command


def test_bench_command_prints_table_and_writes_record(cli_run, tmp_path):
    out = tmp_path / "res"
    code, stdout, err = cli_run("bench", "--fusion", "rcma", "--out", out, *TINY_BENCH)
    assert code == 0, err
    for text in ("inference, batch 3", "inference, batch 1", "training step, batch 3",
                 "median ms", "IQR ms", "p95 ms", "windows/s", "frames/s", "peak mem",
                 "parameters:", "FLOPs per window"):
        assert text in stdout, text
    (path,) = (out / "runs").glob("*.json")
    assert f"record: {path}" in stdout
    rec = json.loads(path.read_text())
    assert rec["kind"] == "bench" and rec["config"]["model"]["fusion"] == "rcma"
    assert rec["plugins"]["fusion"]["name"] == "rcma"
    from fusion_bench.results import ResultsStore

    store = ResultsStore(out)
    assert [r["run_id"] for r in store.records()] == [rec["run_id"]]
    assert not store.has(build_config("quick").hash("2"))  # never mistaken for a training run


def test_bench_unknown_fusion_and_device_are_errors(cli_run):
    code, _, err = cli_run("bench", "--fusion", "rcmaa", *TINY_BENCH)
    assert code == 2 and "did you mean rcma" in err
    if not torch.cuda.is_available():
        code, _, err = cli_run("bench", "--fusion", "rcma", "--device", "cuda", *TINY_BENCH)
        assert code == 2 and "no CUDA GPU" in err


def test_bench_all_runs_each_fusion_in_its_own_process(cli_run, tmp_path, monkeypatch):
    import subprocess

    calls = []

    class Done:
        returncode = 0

    def fake_run(cmd, *args, **kwargs):
        calls.append(cmd)
        return Done()

    monkeypatch.setattr(subprocess, "run", fake_run)
    out = tmp_path / "res"
    code, stdout, err = cli_run("--plugin", "fusion_bench.builtins_does_not_exist", "bench",
                                "--all", "--out", out, "--amp", "bf16", *TINY_BENCH)
    assert code == 0, err
    # every registered fusion: the built-ins, and any plugin installed here (e.g. fusion-bench-mult)
    registered = load_registry(["fusion_bench.builtins_does_not_exist"]).names("fusions")
    assert {"concat", "cross_attention", "lstm", "rcma"} <= set(registered)
    assert [c[c.index("--fusion") + 1] for c in calls] == registered
    for cmd in calls:
        assert cmd[1:3] == ["-m", "fusion_bench.cli"]
        assert cmd[3:5] == ["--plugin", "fusion_bench.builtins_does_not_exist"]
        assert "--all" not in cmd and cmd.count("--set") == 5
        for flag, value in (("--amp", "bf16"), ("--batch-size", "3"), ("--out", str(out)),
                            ("--preset", "quick")):
            assert cmd[cmd.index(flag) + 1] == value
        assert len(cmd[cmd.index("--group") + 1]) == 12
    assert "no benchmark records of this --all" in err  # nothing really ran


def test_tf32_switches_read_either_api():
    """Reading the legacy allow_tf32 flags raises on torch >= 2.9 once the fp32_precision API
    was used; the record's TF32 fields must still be read (and the kit must still switch TF32
    off and restore it)."""
    from fusion_bench.testing import _strict_fp32

    b = torch.backends
    assert bench_device.tf32_switches()["tf32_cudnn"] in (True, False)
    if not hasattr(b.cuda.matmul, "fp32_precision"):
        pytest.skip("torch < 2.9 has only the legacy flags")
    saved = [(o, o.fp32_precision) for o in (b.cuda.matmul, b.cudnn.conv, b.cudnn.rnn)]
    try:
        b.cuda.matmul.fp32_precision = "tf32"
        assert bench_device.tf32_switches()["tf32_matmul"] is True
        with _strict_fp32():
            assert b.cuda.matmul.fp32_precision == "ieee" and b.cudnn.conv.fp32_precision == "ieee"
        assert b.cuda.matmul.fp32_precision == "tf32"
    finally:
        for o, value in saved:
            o.fp32_precision = value


def test_bad_compile_mode_fails_before_any_process_starts(cli_run, monkeypatch):
    import subprocess

    def no_run(*args, **kwargs):
        raise AssertionError("bench --all started a process")

    monkeypatch.setattr(subprocess, "run", no_run)
    for argv in (["--all"], ["--fusion", "concat"]):
        code, _, err = cli_run("bench", *argv, "--compile-mode", "fastest", *TINY_BENCH)
        assert code == 2 and "unknown --compile-mode 'fastest'" in err and "reduce-overhead" in err
