"""``train.precision``: bf16 runs the model's forward passes under autocast, fp32 does not; the
outputs, the normalisation statistics and the loss stay float32; fp32 keeps every run's identity."""

import json

import pytest
import torch
from torch import nn

from fusion_bench.config import build_config
from fusion_bench.model import FusionModel

from .conftest import rcma_record, tiny_overrides


class _Probe(nn.Module):
    """A fusion recording, at each call, whether autocast to bfloat16 was on and what its first
    product computed in."""

    out_dim = 4

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 4)
        self.seen: list[tuple[bool, torch.dtype]] = []

    def forward(self, feats, mask=None):
        x = torch.cat(list(feats.values()), dim=-1)
        y = self.proj(x)
        self.seen.append((torch.is_autocast_enabled("cpu"), y.dtype))
        return y


def _model(precision: str) -> tuple[FusionModel, _Probe]:
    torch.manual_seed(0)
    encoders = {m: nn.Linear(3 + 1, 4) for m in ("a", "b")}
    for e in encoders.values():
        e.out_dim = 4
    probe = _Probe()
    return FusionModel(encoders, probe, nn.Linear(4, 2), precision=precision), probe


def _inputs(b=3, length=5):
    feats = {m: torch.randn(b, length, 3) for m in ("a", "b")}
    masks = {m: torch.ones(b, length, dtype=torch.bool) for m in ("a", "b")}
    return feats, masks


@pytest.mark.parametrize("train", [True, False])
def test_bf16_runs_the_fusion_under_autocast_and_returns_float32(train):
    model, probe = _model("bf16")
    model.train(train)
    out = model(*_inputs())
    assert probe.seen == [(True, torch.bfloat16)]
    assert out.dtype == torch.float32
    # the normalisation statistics stay float32 (an encoder's bf16 output is cast up first)
    assert all(n.running_mean.dtype == torch.float32 for n in model.norms.values())
    if train:
        out.square().mean().backward()
        assert all(p.grad is not None and p.grad.dtype == torch.float32
                   for p in model.parameters())


def test_fp32_runs_without_autocast():
    model, probe = _model("fp32")
    out = model(*_inputs())
    assert probe.seen == [(False, torch.float32)] and out.dtype == torch.float32


def test_bf16_is_close_to_fp32_with_the_same_weights():
    fp32, _ = _model("fp32")
    bf16, _ = _model("bf16")
    bf16.load_state_dict(fp32.state_dict())
    fp32.eval(), bf16.eval()
    x = _inputs()
    a, b = fp32(*x), bf16(*x)
    assert not torch.equal(a, b)  # it did compute in bfloat16
    assert torch.allclose(a, b, atol=0.05, rtol=0.05)  # bfloat16 keeps 8 bits of mantissa


def test_precision_is_part_of_the_identity_only_when_not_the_default():
    def h(*sets):
        return build_config(overrides=list(sets)).hash("2")

    assert h(("train.precision", "fp32")) == h()  # every run made before the option
    assert h(("train.precision", "bf16")) != h()


def test_an_unknown_precision_is_one_line(cli_run, tmp_path):
    code, _, err = cli_run("run", "--out", tmp_path, "--set", "train.precision=fp16")
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("Error: train.precision must be one of fp32, bf16")
    assert "Traceback" not in err


def test_a_bf16_run_trains_scores_and_records_its_precision(cli_run, tiny_args, tmp_path):
    code, _, err = cli_run("run", "--fusion", "rcma", "--out", tmp_path, *tiny_args,
                           "--set", "train.precision=bf16", "--json")
    assert code == 0, err
    (path,) = (tmp_path / "runs").glob("*.json")
    rec = json.loads(path.read_text())
    assert rec["config"]["train"]["precision"] == "bf16"
    assert all(-1 <= v <= 1 for v in rec["metrics"]["test"].values())
    # the model kept with the record is rebuilt in the same precision, and predicts as the run
    # did: its stored test predictions are what the reloaded model gives
    from fusion_bench.artifacts import load_model, stored_predictions
    from fusion_bench.config import build_config as build
    from fusion_bench.plugins import load_registry
    from fusion_bench.runs import load_dataset

    loaded = load_model(rec["run_id"], tmp_path)
    assert [m.precision for _, m in loaded.models] == ["bf16"]
    _, splits = load_dataset(load_registry(), build(overrides=tiny_overrides()))
    again = loaded.predict(splits["test"])
    for name, pred in stored_predictions(rec["run_id"], tmp_path).items():
        assert abs(again[name] - pred).max() < 1e-5


def test_bf16_normalisation_statistics_are_taken_in_float32():
    # with padding (present given) MaskedBatchNorm sums by hand: on a bf16 encoder output those
    # sums would round to 8 bits; the model casts the output up first
    model, _ = _model("bf16")
    model.train()
    outs = {}
    for m, enc in model.encoders.items():
        enc.register_forward_hook(lambda mod, args, out, m=m: outs.__setitem__(m, out))
    feats, masks = _inputs(b=4, length=50)
    for m in feats:  # values far from 0: a variance that bf16 sums would get visibly wrong
        feats[m] = feats[m] * 3 + 40
    present = torch.ones(4, 50, dtype=torch.bool)
    present[1, 30:] = False
    model(feats, masks, present)
    for m, h in outs.items():
        assert h.dtype == torch.bfloat16  # the encoder did compute in bf16
        real = h.double()[present]  # (n, C)
        n = real.shape[0]
        var = real.var(0, unbiased=True)
        mom = model.norms[m].momentum
        expected = (1 - mom) * 1.0 + mom * var  # running_var starts at 1
        assert torch.allclose(model.norms[m].running_var.double(), expected, rtol=1e-5), (n, m)


def test_leaderboard_rows_name_both_precisions():
    from fusion_bench.report.grouping import row_key, row_labels

    fp32, bf16 = rcma_record(precision="fp32"), rcma_record(precision="bf16")
    old = rcma_record(precision="fp32")
    del old["config"]["train"]["precision"]  # a record made before the setting existed
    assert row_key(fp32) == row_key(old) != row_key(bf16)
    assert row_labels([fp32, bf16]) == ["rcma (precision=fp32)", "rcma (precision=bf16)"]
