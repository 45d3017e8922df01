"""One run on several processes (fusion_bench.distributed): two gloo ranks against one process.

The split is exact but for the order of additions (dropout off: each rank's masks are its
own), so the tolerances are rounding's: float32 sums of a few thousand terms, ~1e-6 relative;
after a few Adam steps, which carry a difference on, ~1e-5.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from fusion_bench import distributed
from fusion_bench.checkpoint import Checkpoints
from fusion_bench.config import build_config
from fusion_bench.errors import ConfigError
from fusion_bench.metrics import ccc_loss
from fusion_bench.plugins import load_registry
from fusion_bench.results import ResultsStore

from .conftest import tiny_overrides

ROOT = Path(__file__).resolve().parent.parent
NO_DROPOUT = [("encoder.dropout", "0"), ("seed", "3"), ("train.epochs", "0"),
              ("train.steps", "6"), ("train.eval_every", "3"), ("train.batch_size", "7")]


def _setup(loss: str):
    """Model, train windows and config of the tiny run, as every rank and the one process build
    them (same seed: same initial weights)."""
    from fusion_bench.model import build_model
    from fusion_bench.runs import load_dataset, split_windows
    from fusion_bench.runtime import seed_everything

    cfg = build_config("quick", None, tiny_overrides() + NO_DROPOUT + [("train.loss", loss)])
    reg = load_registry(entry_points=False)
    ds, splits = load_dataset(reg, cfg)
    cfg, wins = split_windows(cfg, splits, tuple(ds.dims))
    seed_everything(cfg.seed)
    model, _ = build_model(reg, cfg, ds.dims, n_targets=2)
    return cfg, model, wins, splits


def _one_step_and_fit(loss: str) -> dict:
    """One global batch's loss, gradients and BatchNorm running mean; then a short fit's
    weights and best validation score. Runs the same in one process and in each rank."""
    from fusion_bench.train import batch_loss, fit

    device = torch.device("cpu")
    cfg, model, wins, splits = _setup(loss)
    trained = distributed.wrap(model, device)
    idx = torch.tensor([5, 0, 9, 2, 11, 7, 3])  # 7 windows: shares of 4 and 3 on two ranks
    model.train()
    value = batch_loss(trained, wins["train"], idx, torch.tensor([0, 1]), cfg.train, cfg.seed, 0,
                       device)
    value.backward()
    out = {"loss": float(value.detach()),
           "grads": {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
           "running_mean": {n: b.clone() for n, b in model.named_buffers() if "running_mean" in n}}
    cfg, model, wins, splits = _setup(loss)
    res = fit(model, wins["train"], wins["val"], splits["val"], (0, 1), cfg.train, device, cfg.seed)
    out["fit"] = {"best_val": res.best_val, "steps": res.steps,
                  "weights": {k: v.clone() for k, v in model.state_dict().items()}}
    return out


def _rank(rank: int, world: int, init_file: str, out_dir: str, loss: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                                         world_size=world)
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank))
    distributed.init(torch.device("cpu"))  # the sums' group, on the group already up
    try:
        torch.save(_one_step_and_fit(loss), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        distributed.close()


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float) -> bool:
    return bool(torch.allclose(a, b, rtol=rtol, atol=rtol * float(b.abs().max().clamp(min=1e-3))))


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["batch", "window"])
def test_two_gloo_ranks_compute_one_process_gradients_and_fit(tmp_path, loss):
    mp.start_processes(_rank, args=(2, str(tmp_path / "init"), str(tmp_path), loss), nprocs=2,
                       start_method="spawn")
    one = _one_step_and_fit(loss)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for got in ranks:
        # every rank holds the global batch's loss, and after DDP's average the global gradient
        # (planted: both ranks taking the same share, or a BatchNorm that summed nothing across
        # ranks, each fail here. Every rank taking the whole batch would pass, rightly: twice
        # the data in the sums, each window weighs half, the same loss and gradient.)
        assert got["loss"] == pytest.approx(one["loss"], rel=1e-6)
        assert got["grads"].keys() == one["grads"].keys()
        for name, g in one["grads"].items():
            assert _close(got["grads"][name], g, 1e-4), name
        for name, m in one["running_mean"].items():  # the global batch's statistics
            assert _close(got["running_mean"][name], m, 1e-5), name
        assert got["fit"]["steps"] == one["fit"]["steps"] == 6
        # Adam's first steps are about sign(gradient) per element, so an element whose gradient
        # is near 0 (rounding-sized) takes an lr-sized step whose sign rounding picks, in one
        # process or two alike: measured, 3 of 2650 weights (last TCN biases) differ by up to
        # 5e-3, and the val score by 2e-4. Every other weight agrees to rounding.
        assert got["fit"]["best_val"] == pytest.approx(one["fit"]["best_val"], abs=1e-3)
        total = off = 0
        for k, w in one["fit"]["weights"].items():
            if w.is_floating_point() and "running" not in k:
                total += w.numel()
                off += int(((got["fit"]["weights"][k] - w).abs() > 1e-5).sum())
        assert off <= total // 100, (off, total)
    # the ranks stay in step: the same weights on both, bit for bit
    for k, w in ranks[0]["fit"]["weights"].items():
        assert torch.equal(w, ranks[1]["fit"]["weights"][k]), k


def test_shares_are_disjoint_and_cover_the_batch(monkeypatch):
    monkeypatch.setattr(distributed, "active", lambda: True)
    idx = torch.tensor([4, 9, 1, 7, 3])
    shares = []
    for r in range(2):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        monkeypatch.setattr(distributed, "world", lambda: 2)
        shares.append(distributed.shard(idx).tolist())
    assert shares == [[4, 1, 3], [9, 7]]


def test_more_ranks_than_a_batch_has_windows_is_one_line(monkeypatch):
    distributed.check_batch(2)  # one process: any batch
    monkeypatch.setattr(distributed, "world", lambda: 4)
    distributed.check_batch(4)
    with pytest.raises(ConfigError, match="batch_size is 3 windows .* fewer than the 4 torchrun"):
        distributed.check_batch(3)


def test_the_reduced_loss_is_the_plain_loss_when_nothing_is_summed():
    # reduce = identity: the same formulas as the one-process loss (pooled and per window)
    g = torch.Generator().manual_seed(0)
    p, t = torch.randn(3, 20, generator=g), torch.randn(3, 20, generator=g)
    valid = torch.rand(3, 20, generator=g) > 0.3
    valid[2] = False  # a window with nothing to fit
    for per_window in (False, True):
        want = ccc_loss(p, t, valid, per_window)
        assert float(ccc_loss(p, t, valid, per_window, reduce=lambda x: x)) == \
            pytest.approx(float(want), rel=1e-6)
    # by hand: x = 1..4 has mean 2.5, variance 1.25; y = x: CCC 1, loss 0; y = -x: covariance
    # -1.25, squared mean gap 25, CCC = -2.5 / (1.25 + 1.25 + 25), loss 1 + 1/11
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    ok = torch.ones(1, 4, dtype=torch.bool)
    assert float(ccc_loss(x, x, ok, False, reduce=lambda v: v)) == pytest.approx(0.0, abs=1e-6)
    assert float(ccc_loss(-x, x, ok, False, reduce=lambda v: v)) == pytest.approx(1 + 1 / 11)
    # two "ranks" each holding half of the frames, their sums added as the reduction adds them:
    # the pooled loss of all four frames (a reduction that summed nothing would score halves)
    halves = [(-x[:, :2], x[:, :2]), (-x[:, 2:], x[:, 2:])]
    calls: list[torch.Tensor] = []

    def other_half(v: torch.Tensor) -> torch.Tensor:  # adds the other rank's same-step sums
        k = len(calls)
        calls.append(v)
        p2, t2 = halves[1]
        w2 = torch.ones_like(p2)
        if k == 0:
            return v + torch.stack([w2.sum(), (p2 * w2).sum(), (t2 * w2).sum()])
        mx, my = -2.5, 2.5  # the global means, as the first reduction gave them
        dx, dy = p2 - mx, t2 - my
        return v + torch.stack([(dx * dx).sum(), (dy * dy).sum(), (dx * dy).sum()])

    p1, t1 = halves[0]
    got = ccc_loss(p1, t1, torch.ones(1, 2, dtype=torch.bool), False, reduce=other_half)
    assert float(got) == pytest.approx(1 + 1 / 11) and len(calls) == 2


def test_the_squared_error_of_a_share_sums_across_ranks():
    # train.loss=mse on two "ranks": errors 1, 2 (rank 0, one valid of two) and 3 (rank 1), two
    # targets each with the same error: the global mean is (1 + 4 + 9) / 3 = 14 / 3, not the
    # share's own (1 + 4) / 2 or the mean of the shares' means
    from fusion_bench.metrics import mse_loss

    pred0 = torch.tensor([[[1.0, 1.0]], [[2.0, 2.0]], [[7.0, 7.0]]])  # (3 windows, 1, 2 targets)
    ok0 = torch.tensor([[True], [True], [False]])
    pred1, ok1 = torch.tensor([[[3.0, 3.0]]]), torch.tensor([[True]])
    other = torch.stack([(pred1 ** 2).sum(), (ok1.sum() * 2).float()])
    got = mse_loss(pred0, torch.zeros_like(pred0), ok0, reduce=lambda v: v + other)
    assert float(got) == pytest.approx(14 / 3)
    assert float(mse_loss(pred0, torch.zeros_like(pred0), ok0)) == pytest.approx(5 / 2)


def test_a_rank_other_than_0_writes_nothing(tmp_path, monkeypatch):
    from fusion_bench import launch, runs

    monkeypatch.setattr(launch, "env_rank", lambda: 1)
    cfg = build_config("quick", None, tiny_overrides())
    store = ResultsStore(tmp_path / "store")
    record, path = runs.run_and_store(cfg, load_registry(entry_points=False), store)
    assert path is None and record["metrics"]["test"]["mean"] is not None
    written = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert written == []  # no record, no weights, no checkpoint


def test_a_readonly_checkpoint_is_neither_removed_nor_written(tmp_path):
    where = Checkpoints(str(tmp_path), restart=True, readonly=True)
    path = where.path("abc")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"rank 0's")
    ck = where.open("abc", "run")
    assert ck.found is None  # restart: not resumed, and not removed either (rank 0 does that)
    ck.model_done("m", (0,), {}, {})
    where.stored("abc")
    assert path.read_bytes() == b"rank 0's"


def _cli(out: Path, torchrun: bool) -> dict:
    args = ["run", "--fusion", "concat", "--device", "cpu", "--json", "--out", str(out)]
    args += [a for k, v in tiny_overrides() + NO_DROPOUT for a in ("--set", f"{k}={v}")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    if torchrun:
        launcher = [shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun",
                    "--nproc-per-node", "2", "--master-port", "29517"]
    else:
        launcher = [sys.executable]
    p = subprocess.run([*launcher, "-m", "fusion_bench", *args], capture_output=True, text=True,
                       env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout)


@pytest.mark.slow
def test_torchrun_two_processes_give_one_process_record_written_once(tmp_path):
    one = _cli(tmp_path / "one", torchrun=False)
    two = _cli(tmp_path / "two", torchrun=True)
    for split in ("val", "test"):
        for k, v in one["metrics"][split].items():
            assert two["metrics"][split][k] == pytest.approx(v, abs=1e-3), (split, k)  # as above
    assert two["fits"][0]["steps"] == one["fits"][0]["steps"]
    # rank 0 alone wrote: one record, one epochs CSV, no checkpoint left
    assert len(list((tmp_path / "two" / "runs").glob("*.json"))) == 1
    assert len(list((tmp_path / "two" / "epochs").glob("*.csv"))) == 1
    assert not list((tmp_path / "two").rglob("checkpoints/*.pt"))


@pytest.mark.slow
def test_torchrun_resumes_a_checkpoint_one_process_left(tmp_path):
    # one process interrupted after its first epoch leaves a checkpoint; two ranks resume it
    # (rank 0 opens it first, rank 1 reads what rank 0 kept) and end as one process would
    from fusion_bench import runs

    from .test_checkpoint import Interrupt

    cfg = build_config("quick", None, tiny_overrides() + NO_DROPOUT + [("device", "cpu")])
    reg = load_registry(entry_points=False)
    store = ResultsStore(tmp_path / "two")
    with pytest.raises(KeyboardInterrupt):
        runs.run_and_store(cfg, reg, store, Interrupt(1, 1))
    assert len(list((tmp_path / "two" / "checkpoints").glob("*.pt"))) == 1
    whole = _cli(tmp_path / "one", torchrun=False)
    two = _cli(tmp_path / "two", torchrun=True)
    assert two["config_hash"] == whole["config_hash"]
    assert two["resumed"] is not None and two["fits"][0]["resumed_from_epoch"] == 1
    assert two["fits"][0]["steps"] == whole["fits"][0]["steps"] == 6
    for k, v in whole["metrics"]["test"].items():
        assert two["metrics"]["test"][k] == pytest.approx(v, abs=1e-3), k  # as above
    assert len(list((tmp_path / "two" / "runs").glob("*.json"))) == 1
    assert not list((tmp_path / "two" / "checkpoints").glob("*.pt"))  # rank 0 removed it


@pytest.mark.parametrize("rank, probes", [(0, 1), (1, 0)])
def test_only_rank_0_probes_the_store(cli_run, tiny_args, tmp_path, monkeypatch, rank, probes):
    # torchrun starts every rank on one new --out: two ranks probing it at once would each
    # remove the folder the other was writing its probe into (a false "cannot be written")
    from fusion_bench import launch

    calls = []
    real = ResultsStore.check_writable
    monkeypatch.setattr(ResultsStore, "check_writable", lambda self: calls.append(1) or real(self))
    monkeypatch.setattr(launch, "env_rank", lambda: rank)
    code, _, err = cli_run("run", "--fusion", "concat", "--out", tmp_path / "new", *tiny_args)
    assert code == 0, err
    assert len(calls) == probes
