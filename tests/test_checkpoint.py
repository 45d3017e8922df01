"""Checkpoints and resume (issue 16 item 5): a run interrupted after an epoch and run again
ends with the record of a run that was never interrupted, bit for bit on CPU; what a checkpoint
holds, where it goes, and what happens to one that is unusable."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion_bench import hookimpl
from fusion_bench import sweep as sweep_mod
from fusion_bench.artifacts import PENDING
from fusion_bench.checkpoint import Checkpoints, capture_rng, restore_rng
from fusion_bench.config import build_config
from fusion_bench.errors import Note
from fusion_bench.events import Events
from fusion_bench.plugins import load_registry
from fusion_bench.results import ResultsStore
from fusion_bench.runs import run_and_store, run_record

from .conftest import tiny_overrides

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
# Chosen so that every piece of state changes the result when it is lost (each checked by
# planting the loss). Steps: 23 training windows in batches of 4 make passes of 5 steps, and
# epochs of 3 steps end mid-pass, so a resumed stream must go on inside a pass; validation
# falls after epoch 3 and the plateau (patience 1) halves the rate after epoch 5, counting bad
# epochs from before an interruption after epoch 4. Epochs: validation falls from epoch 1, so
# the rate halves after epoch 3 (patience 0, counted from epoch 2: warm-up) and early stopping
# (patience 3) ends the fit after epoch 4 of 5 with epoch 1's weights; an interruption after
# epoch 2 must carry the best weights, the stale count and the plateau's best. The TCN's
# dropout makes the global generator's state matter in both.
STEPS = [("train.epochs", "0"), ("train.steps", "18"), ("train.eval_every", "3"),
         ("train.batch_size", "4"), ("train.plateau_patience", "1"), ("train.plateau_factor", "0.5"),
         ("train.early_stop_patience", "0"), ("device", "cpu")]
EPOCHS = [("train.epochs", "5"), ("train.batch_size", "8"), ("train.plateau_patience", "0"),
          ("train.plateau_factor", "0.5"), ("train.early_stop_patience", "3"), ("device", "cpu")]
PER_TARGET = [("model.per_target", "true")]


def config(*extra):
    return build_config("quick", None, tiny_overrides() + [o for part in extra for o in part])


@pytest.fixture(scope="module")
def reg():
    return load_registry(entry_points=False)


_WHOLE: dict[str, dict] = {}


def uninterrupted(cfg, reg) -> dict:
    """The record of ``cfg`` run without checkpoints, made once per configuration."""
    key = _hash(cfg, reg)
    if key not in _WHOLE:
        _WHOLE[key] = run_record(cfg, reg)
    return _WHOLE[key]


class Interrupt(Events):
    """Run events that stop the run (Ctrl-C) at the end of epoch ``epoch`` of its ``model``-th
    model (1-based), as a kill between two epochs would."""

    def __init__(self, model: int, epoch: int):
        super().__init__(None)
        self.at, self.models = (model, epoch), []

    def epoch_end(self, run, epoch) -> None:
        if epoch.model not in self.models:
            self.models.append(epoch.model)
        if (len(self.models), epoch.epoch) == self.at:
            raise KeyboardInterrupt


def same_result(a: dict, b: dict) -> None:
    """Every number two records of one configuration should share (all but timings, ids), and
    the weights and test predictions they keep."""
    for key in ("config_hash", "model_hash", "metrics", "scores", "baseline", "params",
                "flops_per_window", "training_warnings", "data_summary", "options"):
        assert a[key] == b[key], key
    timing = {"seconds", "train_frames_per_s", "resumed_from_epoch"}
    assert [{k: v for k, v in f.items() if k not in timing} for f in a["fits"]] == \
        [{k: v for k, v in f.items() if k not in timing} for f in b["fits"]]
    wa, wb = a[PENDING]["models"], b[PENDING]["models"]
    assert list(wa) == list(wb)
    for label in wa:
        assert wa[label].keys() == wb[label].keys()
        for k in wa[label]:
            assert torch.equal(wa[label][k], wb[label][k]), (label, k)
    pa, pb = a[PENDING]["test_predictions"], b[PENDING]["test_predictions"]
    assert pa.keys() == pb.keys() and all(np.array_equal(pa[v], pb[v]) for v in pa)


def interrupted_then_resumed(cfg, reg, tmp_path, model: int, epoch: int) -> dict:
    where = Checkpoints(str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        run_record(cfg, reg, Interrupt(model, epoch), where)
    assert where.path(_hash(cfg, reg)).exists()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = run_record(cfg, reg, None, where)
    notes = [str(w.message) for w in caught if w.category is Note]
    assert len(notes) == 1 and notes[0].startswith("resuming ") and str(tmp_path) in notes[0]
    return record


def _hash(cfg, reg) -> str:
    from fusion_bench.options import hashes

    return hashes(cfg, reg)["hash"]


@pytest.mark.parametrize("mode, model, epoch, resumed", [
    pytest.param(STEPS, 1, 4, {"concat valence+arousal": 4}, id="steps-mid-pass"),
    pytest.param(EPOCHS, 1, 2, {"concat valence+arousal": 2}, id="epochs"),
])
def test_an_interrupted_run_resumes_to_the_uninterrupted_record(reg, tmp_path, mode, model,
                                                                epoch, resumed):
    """Bugs: any state the fit does not restore (the global generator: other dropout masks;
    the optimizer's moments; the plateau scheduler's count; the batch stream started afresh
    instead of going on mid-pass; the best weights or early-stopping count lost) changes the
    weights, so the scores and kept weights differ from the uninterrupted run's."""
    cfg = config(mode)
    whole = uninterrupted(cfg, reg)
    assert whole["resumed"] is None
    (f,) = whole["fits"]  # the configuration does what the comment above says
    assert f["stopped_early"] == (mode is EPOCHS) and len({h["lr"] for h in f["history"]}) == 2
    again = interrupted_then_resumed(cfg, reg, tmp_path, model, epoch)
    same_result(whole, again)
    assert again["resumed"] == resumed
    assert [f["resumed_from_epoch"] for f in again["fits"]] == [epoch]


@pytest.mark.slow
@pytest.mark.parametrize("mode", [STEPS, EPOCHS], ids=["steps", "epochs"])
def test_a_per_target_run_resumes_in_its_second_model(reg, tmp_path, mode):
    """Bugs: the first model retrained (or its weights or fit lost) when the run resumes in
    the second; the second model resumed with the first one's state."""
    cfg = config(mode, PER_TARGET)
    whole = uninterrupted(cfg, reg)
    again = interrupted_then_resumed(cfg, reg, tmp_path, 2, 2)
    same_result(whole, again)
    first_epochs = whole["fits"][0]["epochs"]
    assert again["resumed"] == {"concat valence": first_epochs, "concat arousal": 2}


def test_a_per_target_run_in_its_second_model_restores_the_first(reg, tmp_path, monkeypatch):
    """The first model of a per-target run comes from the checkpoint, not from training: fit
    runs once, for the second model, from its epoch 1. Bug: finished models not kept in the
    checkpoint (or not found in it) are trained again."""
    from fusion_bench import runs

    cfg = config(STEPS, PER_TARGET)
    whole = uninterrupted(cfg, reg)
    where = Checkpoints(str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        run_record(cfg, reg, Interrupt(2, 1), where)
    real, calls = runs.fit, []

    def counted(*a, **k):
        calls.append(k["label"] if k["resume"] is None else (k["label"], k["resume"].epoch))
        return real(*a, **k)

    monkeypatch.setattr(runs, "fit", counted)
    again = run_record(cfg, reg, None, where)
    assert calls == [("concat arousal", 1)]
    assert again["resumed"] == {"concat valence": whole["fits"][0]["epochs"], "concat arousal": 1}
    same_result(whole, again)


def test_the_store_keeps_a_checkpoint_only_while_its_run_is_unfinished(reg, tmp_path):
    """Bugs: a finished run's checkpoint left behind (or one kept with --keep-checkpoint
    removed); --restart resuming anyway."""
    cfg, store = config(STEPS), ResultsStore(tmp_path)
    path = Checkpoints(str(tmp_path)).path(_hash(cfg, reg))
    with pytest.raises(KeyboardInterrupt):
        run_record(cfg, reg, Interrupt(1, 1), Checkpoints(str(tmp_path)))
    assert path.exists()
    record, _ = run_and_store(cfg, reg, store, restart=True)
    assert record["resumed"] is None and not path.exists()
    record, _ = run_and_store(cfg, reg, store, keep_checkpoint=True)
    assert record["resumed"] is None and path.exists()
    # a kept checkpoint of a finished run: the next run trains nothing and makes the same record
    again, _ = run_and_store(cfg, reg, store)
    assert again["resumed"] == {"concat valence+arousal": record["fits"][0]["epochs"]}
    assert not path.exists()
    assert again["metrics"] == record["metrics"] and again["config_hash"] == record["config_hash"]


def test_a_checkpoint_holds_weights_only_data_and_the_epoch_it_was_written_at(reg, tmp_path):
    """What the file holds, read as a run reads it (weights_only): the epoch the run stopped
    after, its history so far, and the schedule. Bug: a checkpoint written before validation
    (history one short) or holding objects that weights_only refuses."""
    cfg = config(STEPS)
    where = Checkpoints(str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        run_record(cfg, reg, Interrupt(1, 3), where)
    ck = torch.load(where.path(_hash(cfg, reg)), weights_only=True)
    state = ck["current"]["state"]
    assert (state["epoch"], len(state["history"]), state["step"]) == (3, 3, 9)
    assert ck["plan"]["steps_per_epoch"] == 3 and ck["plan"]["windows"] == 23
    assert ck["finished"] == [] and ck["current"]["columns"] == [0, 1]


def test_random_states_come_back_exactly():
    """Bugs: one of torch's, numpy's or Python's generators not captured or not restored."""
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    state = capture_rng(CPU)
    first = (torch.rand(3), np.random.rand(3), random.random(), np.random.normal())
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    restore_rng(state, CPU)
    again = (torch.rand(3), np.random.rand(3), random.random(), np.random.normal())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2:] == again[2:]


@pytest.fixture(scope="module")
def written(reg, tmp_path_factory) -> tuple[str, bytes]:
    """(configuration hash, bytes) of a real checkpoint: STEPS stopped after epoch 1."""
    cfg, where = config(STEPS), Checkpoints(str(tmp_path_factory.mktemp("written")))
    with pytest.raises(KeyboardInterrupt):
        run_record(cfg, reg, Interrupt(1, 1), where)
    return _hash(cfg, reg), where.path(_hash(cfg, reg)).read_bytes()


def opened_with_warnings(where: Checkpoints, key: str):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ck = where.open(key, "concat-s0")
    return ck, [str(w.message) for w in caught]


@pytest.mark.parametrize("how", ["truncated", "garbage", "pickle", "other-run"])
def test_an_unreadable_checkpoint_is_set_aside_in_one_warning(tmp_path, written, how):
    """Bugs: a traceback on a torn or foreign file (or torch's own warnings on top of ours);
    code in a pickle run (weights_only refuses it); a checkpoint of another configuration
    resumed; the unusable file deleted instead of moved aside."""
    key, data = written
    where = Checkpoints(str(tmp_path))
    path = where.path(key)
    path.parent.mkdir()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(os.urandom(4096))
    elif how == "pickle":  # a pickle that runs code when loaded: weights_only refuses it
        import pickle

        class Payload:
            def __reduce__(self):
                return os.mkdir, (str(tmp_path / "ran"),)

        path.write_bytes(pickle.dumps({"format": 1, "x": Payload()}))
    else:  # a whole checkpoint of another configuration, copied under this one's name
        ck = torch.load(io.BytesIO(data), weights_only=True)
        ck["config_hash"] = "0123456789abcdef"
        torch.save(ck, path)
    ck, said = opened_with_warnings(where, key)
    assert ck.found is None and not (tmp_path / "ran").exists()
    assert len(said) == 1 and said[0].startswith(f"checkpoint {path}: "), said
    assert said[0].endswith("concat-s0 trains from the start")
    assert ("not a fusion-bench checkpoint" in said[0] or "not readable" in said[0]
            or "0123456789abcdef" in said[0])
    aside = [p.name for p in path.parent.iterdir() if ".unusable-" in p.name]
    assert not path.exists() and len(aside) == 1 and aside[0].startswith(path.name)
    ck, said = opened_with_warnings(where, key)  # nothing left to warn about
    assert ck.found is None and said == []


def test_a_checkpoint_of_another_schedule_is_set_aside_and_the_run_starts_over(reg, tmp_path,
                                                                                written):
    """The same configuration on data that changed (one training window more): the run says
    so in one warning and trains from the start, to the uninterrupted record. Bug: a
    checkpoint resumed on another schedule (its batch order and epochs would not be this
    run's)."""
    key, data = written
    where = Checkpoints(str(tmp_path))
    ck = torch.load(io.BytesIO(data), weights_only=True)
    ck["plan"]["windows"] += 1
    where.path(key).parent.mkdir()
    torch.save(ck, where.path(key))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = run_record(config(STEPS), reg, None, where)
    said = [str(w.message) for w in caught if "checkpoint" in str(w.message)]
    assert len(said) == 1 and "another schedule (windows 24 -> 23)" in said[0], said
    assert record["resumed"] is None
    same_result(uninterrupted(config(STEPS), reg), record)


def test_the_cli_says_it_resumes_in_one_line(cli_run, tiny_args, tmp_path, reg):
    """The run verb resumes by itself and says so once, as a note; an unusable checkpoint is
    one warning line, never a traceback."""
    from fusion_bench.cli import run as run_cli  # noqa: F401 - the verb registered

    args = ["run", "--out", tmp_path, *tiny_args, "--set", "train.epochs=3", "--device", "cpu"]
    cfg = config([("train.epochs", "3"), ("device", "cpu")])
    with pytest.raises(KeyboardInterrupt):
        run_record(cfg, reg, Interrupt(1, 1), Checkpoints(str(tmp_path)))
    code, out, err = cli_run(*args)
    assert code == 0, err
    assert [line for line in err.splitlines() if "resuming" in line] == [
        f"note: resuming concat-s0 from epoch 1 of 3 (checkpoint "
        f"{Checkpoints(str(tmp_path)).path(_hash(cfg, reg))})"]
    path = Checkpoints(str(tmp_path)).path(_hash(cfg, reg))
    assert not path.exists()
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"PK\x03\x04 not a zip")
    code, out, err = cli_run(*args)
    assert code == 0 and "Traceback" not in err
    assert sum("trains from the start" in line for line in err.splitlines()) == 1


class StopAt:
    """A run-events plugin that stops a sweep's run at its first model's epoch ``epoch``."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    @hookimpl
    def epoch_end(self, run, epoch):
        if epoch.epoch == self.epoch:
            raise KeyboardInterrupt


def test_a_sweep_resumes_a_half_trained_run(tmp_path):
    """A sweep interrupted in a run's epoch 2, run again, resumes that run from its checkpoint
    (not from the start) and stores the uninterrupted run's scores; the checkpoint then goes.
    Bug: a sweep that only skips whole records and retrains the half-trained run."""
    reg = load_registry(entry_points=False)
    cfgs = sweep_mod.grid(["concat"], [0], tiny_overrides() + STEPS, "quick", None)
    store = ResultsStore(tmp_path)
    stop = StopAt(2)
    reg.pm.register(stop, name="stop-at")
    with pytest.raises(KeyboardInterrupt):
        sweep_mod.sweep(cfgs, reg, store, echo=lambda *_: None)
    reg.pm.unregister(stop)
    path = Checkpoints(str(tmp_path)).path(_hash(cfgs[0], reg))
    assert path.exists() and store.records() == []
    res = sweep_mod.sweep(cfgs, reg, store, echo=lambda *_: None)
    assert (res.done, res.failed) == (1, 0)
    (stored,) = store.records()
    assert stored["resumed"] == {"concat valence+arousal": 2}
    whole = uninterrupted(cfgs[0], reg)
    assert stored["metrics"] == whole["metrics"] and stored["scores"] == whole["scores"]
    assert not path.exists()


def test_a_sweep_worker_resumes_from_the_drivers_store(tmp_path):
    """The process and Ray executors hand each worker the store's checkpoints (an absolute
    path: a worker need not share the driver's directory). Bug: workers that train from the
    start."""
    reg = load_registry(entry_points=False)
    cfg = config(STEPS)
    where = Checkpoints(str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        run_record(cfg, reg, Interrupt(1, 2), where)
    outcome = sweep_mod.work(cfg, sweep_mod.RegistrySpec(entry_points=False), 1, where)
    assert outcome.error is None and outcome.record["resumed"] == {"concat valence+arousal": 2}


def test_a_writer_killed_mid_checkpoint_leaves_the_previous_one(reg, tmp_path):
    """kill -9 while the run writes its second checkpoint (the new bytes written, not yet in
    place): the store holds the first checkpoint, whole, and resuming from it gives the
    uninterrupted run's record. Bug: a checkpoint written in place (torn by the kill)."""
    cfg = config(STEPS)
    code = textwrap.dedent(f"""
        import os, signal, torch
        torch.set_num_threads(1)
        from fusion_bench import checkpoint
        from fusion_bench.files import atomic_write_bytes
        from fusion_bench.config import build_config
        from fusion_bench.plugins import load_registry
        from fusion_bench.results import ResultsStore
        from fusion_bench.runs import run_and_store
        writes = []
        def write(path, data):
            writes.append(path)
            if len(writes) == 2:
                os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
            atomic_write_bytes(path, data)
        checkpoint.atomic_write_bytes = write
        cfg = build_config("quick", None, {tiny_overrides() + STEPS!r})
        run_and_store(cfg, load_registry(entry_points=False), ResultsStore({str(tmp_path)!r}))
    """)
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    path = Checkpoints(str(tmp_path)).path(_hash(cfg, reg))
    assert torch.load(path, weights_only=True)["current"]["state"]["epoch"] == 1
    left = [p.name for p in path.parent.iterdir() if p != path]
    assert all(p.startswith(".") and p.endswith(".tmp") for p in left), left
    record, _ = run_and_store(cfg, reg, ResultsStore(tmp_path))
    assert record["resumed"] == {"concat valence+arousal": 1}
    whole = uninterrupted(cfg, reg)
    assert record["metrics"] == whole["metrics"] and record["scores"] == whole["scores"]
    (label, rel), = record["artifacts"]["models"].items()
    kept = torch.load(tmp_path / rel, weights_only=True)
    assert all(torch.equal(kept[k], v) for k, v in whole[PENDING]["models"][label].items())


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_from_the_command_line(reg, tmp_path, cli_run):
    """``fusion-bench run`` killed with SIGKILL once its first checkpoint is there, then run
    again: it resumes and stores the uninterrupted run's scores. Bug: anything that works only
    when the process unwinds (a checkpoint written on the way out, kept in memory)."""
    import time

    from .conftest import TINY

    args = ["run", "--out", str(tmp_path), *TINY,
            *[x for k, v in STEPS for x in ("--set", f"{k}={v}")]]
    cfg = config(STEPS)
    path = Checkpoints(str(tmp_path)).path(_hash(cfg, reg))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # as this process
    proc = subprocess.Popen([sys.executable, "-m", "fusion_bench", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.exists(), "no checkpoint appeared"
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
    code, _, err = cli_run(*args)
    assert code == 0, err
    assert "note: resuming concat-s0 from epoch " in err
    (stored,) = ResultsStore(tmp_path).records()
    whole = uninterrupted(cfg, reg)
    assert stored["resumed"] and stored["metrics"] == whole["metrics"]
    assert stored["fits"][0]["history"] == whole["fits"][0]["history"]
    assert not path.exists()


@pytest.mark.parametrize("where_", ["in-training", "finished"])
def test_weights_that_do_not_fit_the_model_are_one_error_naming_restart(reg, tmp_path, written,
                                                                        where_):
    """A checkpoint of this configuration whose weights do not fit the model built now (a
    plugin changed under the same configuration): one error line that says how to start over,
    not a traceback nor a silent restart. Bug: load_state_dict's multi-line RuntimeError."""
    from fusion_bench.errors import DataError

    key, data = written
    where = Checkpoints(str(tmp_path))
    ck = torch.load(io.BytesIO(data), weights_only=True)
    weights = ck["current"]["state"]["model"]
    name = next(iter(weights))
    weights[name] = torch.zeros(*weights[name].shape, 2)
    if where_ == "finished":
        ck["finished"] = [{"label": "concat valence+arousal", "columns": [0, 1], "fit": {},
                           "weights": weights}]
        ck["current"] = None
    where.path(key).parent.mkdir()
    torch.save(ck, where.path(key))
    with pytest.raises(DataError, match=r"checkpoint .*(do|does) not fit the model .*--restart") as e:
        run_record(config(STEPS), reg, None, where)
    assert "\n" not in str(e.value) and name in str(e.value)


def test_the_python_api_resumes_and_restarts_as_the_cli(reg, tmp_path):
    """fusion_bench.run(out=...) checkpoints and resumes as ``fusion-bench run`` does, and
    passes restart= and keep_checkpoint= on. Bug: the keywords dropped on the way."""
    import fusion_bench

    over = dict(tiny_overrides() + STEPS)
    path = Checkpoints(str(tmp_path)).path(_hash(config(STEPS), reg))
    first = fusion_bench.run(overrides=over, out=tmp_path, keep_checkpoint=True)
    assert first["resumed"] is None and path.exists()
    again = fusion_bench.run(overrides=over, out=tmp_path, restart=True, keep_checkpoint=True)
    assert again["resumed"] is None and path.exists()
    last = fusion_bench.run(overrides=over, out=tmp_path)
    assert last["resumed"] == {"concat valence+arousal": 6} and not path.exists()
    assert last["metrics"] == first["metrics"]


def test_a_sequence_level_run_with_modality_dropout_resumes_to_the_uninterrupted_record(reg,
                                                                                       tmp_path):
    """Bugs: modality dropout drawn from a generator whose state a checkpoint does not keep (a
    resumed fit would drop other modalities), or windows of a sequence-level dataset rebuilt
    otherwise on resume: the weights, scores and per-sequence predictions would differ."""
    cfg = config(STEPS, [("dataset.synthetic.label_level", "sequence"),
                         ("train.modality_dropout", "0.4")])
    whole = uninterrupted(cfg, reg)
    again = interrupted_then_resumed(cfg, reg, tmp_path, 1, 4)
    same_result(whole, again)
    assert all(p.shape == (1, 2) for p in again[PENDING]["test_predictions"].values())
