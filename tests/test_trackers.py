"""Experiment trackers: the epochs CSV of every stored run, the per-epoch log lines without a
terminal, and the optional TensorBoard and MLflow trackers (``--log``), read back with their
own libraries."""

from __future__ import annotations

import csv
import json

import pytest


def _record(out):
    (path,) = (out / "runs").glob("*.json")
    return json.loads(path.read_text())


def test_every_stored_run_gets_an_epochs_csv_matching_its_history(cli_run, tiny_args, tmp_path):
    out = tmp_path / "res"
    code, _, err = cli_run("run", "--fusion", "concat", "--out", out, "--no-model",
                           "--set", "model.per_target=true", *tiny_args)
    assert code == 0, err
    rec = _record(out)
    path = out / "epochs" / f"{rec['run_id']}.csv"
    with path.open() as f:
        reader = csv.DictReader(f)
        header, rows = reader.fieldnames, list(reader)
    assert header == ["targets", "epoch", "step", "loss", "lr", "val_valence", "val_arousal",
                      "val_mean"]
    # per_target: a valence model then an arousal model, each epoch of each a row, in order
    expected = [(f["targets"], h) for f in rec["fits"] for h in f["history"]]
    assert [r["targets"] for r in rows] == ["+".join(t) for t, _ in expected]
    assert len(rows) == sum(f["epochs"] for f in rec["fits"]) == 4
    for r, (targets, h) in zip(rows, expected, strict=True):
        (t,) = targets
        other = "arousal" if t == "valence" else "valence"
        assert r["targets"] == t and int(r["epoch"]) == h["epoch"] and int(r["step"]) == h["step"]
        # the floats read back bit for bit
        assert float(r["loss"]) == h["loss"] and float(r["lr"]) == h["lr"]
        assert float(r[f"val_{t}"]) == h["val"][t] and float(r["val_mean"]) == h["val"]["mean"]
        assert r[f"val_{other}"] == ""  # the model does not predict the other target
    assert [int(r["epoch"]) for r in rows] == [1, 2, 1, 2]


def test_epochs_csv_by_hand():
    from fusion_bench.trackers.epochs_csv import epochs_csv

    record = {"dataset": {"targets": ["valence", "arousal"]},
              "fits": [{"targets": ["valence", "arousal"], "history": [
                  {"epoch": 1, "step": 3, "loss": 0.5, "lr": 0.001,
                   "val": {"valence": 0.25, "arousal": 0.125, "mean": 0.1875}},
                  {"epoch": 2, "step": 6, "loss": 0.1 + 0.2, "lr": 0.0005,
                   "val": {"valence": 0.5, "arousal": 0.0, "mean": 0.25}}]}]}
    assert epochs_csv(record).splitlines() == [
        "targets,epoch,step,loss,lr,val_valence,val_arousal,val_mean",
        "valence+arousal,1,3,0.5,0.001,0.25,0.125,0.1875",
        "valence+arousal,2,6,0.30000000000000004,0.0005,0.5,0.0,0.25",
    ]


def test_without_a_terminal_each_epoch_is_one_log_line(cli_run, tiny_args, tmp_path, caplog):
    import logging

    args = [a for a in tiny_args if a != "--quiet"]
    out = tmp_path / "res"
    with caplog.at_level(logging.INFO, logger="fusion_bench.progress"):
        code, _, err = cli_run("run", "--fusion", "concat", "--out", out, "--no-model", *args)
    assert code == 0, err
    rec = _record(out)
    (fit,) = rec["fits"]
    lines = [r.getMessage() for r in caplog.records if r.name == "fusion_bench.progress"]
    assert len(lines) == len(fit["history"]) == 2  # one per epoch, nothing else
    for line, h in zip(lines, fit["history"], strict=True):
        v = h["val"]
        so_far = [x["val"]["mean"] for x in fit["history"][: h["epoch"]]]
        best = max(so_far)
        seconds = line.rsplit(", ", 1)[1]  # the epoch's time: not in the record
        assert seconds.endswith(" s") and float(seconds[:-2]) >= 0
        assert line == (f"concat valence+arousal epoch {h['epoch']}/2: loss {h['loss']:.4f}, "
                        f"val CCC valence {v['valence']:.3f} arousal {v['arousal']:.3f} mean "
                        f"{v['mean']:.3f} (best {best:.3f}@{so_far.index(best) + 1}), "
                        f"lr {h['lr']:.2e}, {seconds}")
    # --quiet: none
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fusion_bench.progress"):
        code, _, err = cli_run("run", "--fusion", "concat", "--out", tmp_path / "q", "--no-model",
                               *tiny_args)
    assert code == 0, err
    assert not [r for r in caplog.records if r.name == "fusion_bench.progress"]


def test_log_lines_reach_stderr_when_logging_is_not_configured(capsys):
    """No root handler (a plain `fusion-bench run > log 2>&1`): our handler writes to stderr."""
    import logging

    from fusion_bench.cli.progress import LOG, LogDisplay, _log_to_stderr
    from fusion_bench.events import EpochEnd

    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()  # pytest's own capture handler, put back below
    try:
        with _log_to_stderr():
            LogDisplay().epoch_end(None, EpochEnd("m v", 3, 5, 0.25, {"valence": 0.5, "mean": 0.5},
                                                  1e-3, 0.5, 3, 1.25))
        LOG.info("after the scope: not shown")
    finally:
        root.handlers[:] = saved
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].endswith(" m v epoch 3/5: loss 0.2500, val CCC valence 0.500 mean 0.500 "
                           "(best 0.500@3), lr 1.00e-03, 1.2 s")
    LOG.setLevel(logging.WARNING)  # the user's choice is kept: no lines
    root.handlers.clear()
    try:
        with _log_to_stderr():
            LogDisplay().epoch_end(None, EpochEnd("m v", 1, 5, 0.25, {"mean": 0.5}))
    finally:
        root.handlers[:] = saved
        LOG.setLevel(logging.NOTSET)
    assert capsys.readouterr().err == ""


def test_an_unknown_tracker_is_one_line_before_training(cli_run, tiny_args, tmp_path,
                                                          monkeypatch):
    import importlib.util

    # The typo is named even where the other tracker's library is missing (as on CI).
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    code, _, err = cli_run("run", "--fusion", "concat", "--out", tmp_path / "r", "--log",
                           "tensorboard,wandbx", *tiny_args)
    assert code == 2
    assert err.strip().splitlines()[-1].endswith(
        "--log: unknown tracker 'wandbx'; choose from mlflow, tensorboard, wandb (comma-separated)")
    assert not (tmp_path / "r" / "runs").exists()  # nothing trained


def test_a_missing_tracker_library_names_the_extra(cli_run, tiny_args, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))
    code, _, err = cli_run("run", "--fusion", "concat", "--out", tmp_path / "r", "--log", "mlflow",
                           *tiny_args)
    assert code == 2
    assert 'pip install "fusion-bench-affect[mlflow]"' in err and "Traceback" not in err
    assert not (tmp_path / "r" / "runs").exists()


def test_tensorboard_tracker_writes_every_epoch(cli_run, tiny_args, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "res"
    code, _, err = cli_run("run", "--fusion", "concat", "--out", out, "--no-model", "--log",
                           "tensorboard", "--set", "model.per_target=true", *tiny_args)
    assert code == 0, err
    rec = _record(out)
    (logdir,) = (out / "tensorboard").iterdir()
    assert logdir.name == f"concat-s0-{rec['config_hash'][:8]}"
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    for fit in rec["fits"]:
        (t,) = fit["targets"]
        tag = f"concat_{t}"
        for key, field in (("loss", "loss"), ("lr", "lr"), (f"val_{t}", t), ("val_mean", "mean")):
            got = [(e.step, e.value) for e in acc.Scalars(f"{tag}/{key}")]
            want = [(h["epoch"], h[field] if field in ("loss", "lr") else h["val"][field])
                    for h in fit["history"]]
            assert [s for s, _ in got] == [s for s, _ in want]
            # stored as float32
            assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6, abs=1e-7)
    test = {k: acc.Scalars(f"test/{k}")[0].value for k in ("valence", "arousal", "mean")}
    assert test == pytest.approx(rec["metrics"]["test"], rel=1e-6)


@pytest.mark.slow  # 5-12 s: MLflow's import and its SQLite store's migrations
def test_mlflow_tracker_logs_every_epoch_to_a_local_store(cli_run, tiny_args, tmp_path,
                                                          monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "res"
    code, _, err = cli_run("run", "--fusion", "concat", "--out", out, "--no-model", "--log",
                           "mlflow", "--seed", "1", *tiny_args)
    assert code == 0, err
    rec = _record(out)
    client = MlflowClient(tracking_uri=f"sqlite:///{(out / 'mlflow.db').resolve()}")
    exp = client.get_experiment_by_name("fusion-bench")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == "concat-s1" and run.info.status == "FINISHED"
    assert run.data.tags["fusion_bench.config_hash"] == rec["config_hash"]
    assert run.data.tags["fusion_bench.run_id"] == rec["run_id"]
    assert run.data.params["seed"] == "1" and run.data.params["train.epochs"] == "2"
    (fit,) = rec["fits"]
    for key, get in (("loss", lambda h: h["loss"]), ("lr", lambda h: h["lr"]),
                     ("val_valence", lambda h: h["val"]["valence"]),
                     ("val_mean", lambda h: h["val"]["mean"])):
        hist = client.get_metric_history(run.info.run_id, f"concat_valence_arousal/{key}")
        # MLflow keeps doubles: exact
        assert sorted((m.step, m.value) for m in hist) == [(h["epoch"], get(h)) for h in fit["history"]]
    assert run.data.metrics["test/mean"] == rec["metrics"]["test"]["mean"]


def test_mlflow_marks_a_run_that_stopped_on_an_error_failed(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from fusion_bench.events import RunInfo
    from fusion_bench.trackers.mlflow import MlflowTracker, metric_key

    assert metric_key("rcma valence+arousal") == "rcma_valence_arousal"
    t = MlflowTracker(tmp_path)
    t.run_start(RunInfo("x-s0", {"seed": 0, "train": {"lr": 0.001}}, "abc", ("x valence",)))
    t.close()  # the run path's scope on its way out, with no run_end
    client = MlflowClient(tracking_uri=t.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("fusion-bench").experiment_id])
    assert run.info.status == "FAILED" and run.data.params == {"seed": "0", "train.lr": "0.001"}


def test_step_events_match_the_schedule_and_the_epoch_losses(tmp_path):
    """step_end: one per batch of each epoch, whose losses average to the epoch's recorded loss."""
    import numpy as np

    import fusion_bench
    from fusion_bench.config import build_config
    from fusion_bench.events import Events
    from fusion_bench.plugins import load_registry
    from fusion_bench.runs import run_record

    from .conftest import tiny_overrides

    steps = []

    class Counter:
        @fusion_bench.hookimpl
        def step_end(self, run, step):
            steps.append(step)

    reg = load_registry(entry_points=False)
    reg.pm.register(Counter(), name="counter")
    over = [*tiny_overrides(), ("model.per_target", "true"), ("train.batch_size", "4")]
    record = run_record(build_config("quick", None, over), reg, Events(reg.pm))
    per_epoch = record["data_summary"]["schedule"]["steps_per_epoch"]
    assert per_epoch >= 2  # several batches an epoch, or the count below tests little
    for fit in record["fits"]:
        label = "concat " + "+".join(fit["targets"])
        for h in fit["history"]:
            mine = [s for s in steps if s.model == label and s.epoch == h["epoch"]]
            assert [s.step for s in mine] == list(range(1, per_epoch + 1))
            assert {s.steps for s in mine} == {per_epoch}
            assert np.mean([s.loss for s in mine if s.loss is not None]) == h["loss"]
    assert len(steps) == per_epoch * sum(f["epochs"] for f in record["fits"])


def test_no_step_events_are_sent_when_no_plugin_wants_them(monkeypatch):
    from fusion_bench.events import Events
    from fusion_bench.plugins import load_registry

    reg = load_registry(entry_points=False)
    assert not Events(reg.pm).wants("step_end") and not Events(None).wants("step_end")


def test_on_a_terminal_a_bar_per_epoch_then_a_line_that_stays(cli_run, tiny_args, tmp_path,
                                                              monkeypatch):
    from fusion_bench.cli import progress

    monkeypatch.setattr(progress, "_is_terminal", lambda stream: True)
    args = [a for a in tiny_args if a != "--quiet"]
    code, _, err = cli_run("run", "--fusion", "concat", "--out", tmp_path / "r", "--no-model", *args)
    assert code == 0, err
    rec = _record(tmp_path / "r")
    lines = [x.split("\r")[-1] for x in err.splitlines() if "epoch " in x and ": loss " in x]
    (fit,) = rec["fits"]
    assert [x.split(":")[0] for x in lines] == ["concat valence+arousal epoch 1/2",
                                                "concat valence+arousal epoch 2/2"]
    assert [f"loss {h['loss']:.4f}," in x for x, h in zip(lines, fit["history"], strict=True)] == [True, True]


def test_the_bar_shows_steps_and_the_running_loss():
    import io

    from fusion_bench.cli.progress import ProgressDisplay
    from fusion_bench.events import EpochEnd, StepEnd

    stream = io.StringIO()
    d = ProgressDisplay(stream)
    d.LOSS_EVERY = 2
    for i, loss in enumerate([0.5, None, 0.2, 0.4], start=1):
        d.step_end(None, StepEnd("m v", 1, i, 4, loss))
        if i == 2:
            assert d.status == "loss 0.5000"  # the skipped batch counts as a step, not a loss
    assert d.status == "loss " + f"{(0.5 + 0.2 + 0.4) / 3:.4f}"
    bar = d.bar.bar if hasattr(d.bar.bar, "n") else None
    if bar is not None:  # tqdm's
        assert (bar.n, bar.total) == (4, 4)
    d.epoch_end(None, EpochEnd("m v", 1, 3, 0.3667, {"valence": 0.5, "mean": 0.5}, 1e-3, 0.5, 1, 2))
    assert d.bar is None
    assert stream.getvalue().endswith("m v epoch 1/3: loss 0.3667, val CCC valence 0.500 mean "
                                      "0.500 (best 0.500@1), lr 1.00e-03, 2.0 s\n")
    d.step_end(None, StepEnd("m v", 2, 1, 4, 0.1))  # the next epoch: a new bar, a fresh mean
    assert d.key == ("m v", 2) and d.count == 1
    d.close()


def test_sweep_eta_by_hand():
    from fusion_bench.events import eta

    assert eta(10.0, 2, 5) == " (3 runs left, ETA 0:00:15)"  # 5 s a run so far, 3 to go
    assert eta(3600.0, 1, 2) == " (1 run left, ETA 1:00:00)"
    assert eta(100.0, 3, 7) == " (4 runs left, ETA 0:02:13)"  # 133.3 s
    assert eta(5.0, 4, 4) == "" and eta(0.0, 0, 4) == ""


def test_a_sweep_shows_each_runs_line_with_what_is_left(cli_run, tiny_args, tmp_path):
    import re

    code, out, err = cli_run("sweep", "--fusion", "concat", "--seeds", "2", "--out", tmp_path,
                             "--no-model", *[a for a in tiny_args if a != "--quiet"])
    assert code == 0, err
    lines = [x for x in out.splitlines() if x.startswith("[")]
    assert len(lines) == 2
    assert re.fullmatch(r"\[1/2\] concat seed 0: test mean CCC .* \(1 run left, ETA 0:00:\d\d\)",
                        lines[0])
    assert lines[1].startswith("[2/2] concat seed 1: test mean CCC") and "ETA" not in lines[1]


def test_quiet_silences_other_libraries_bars_for_its_scope(monkeypatch):
    """A library imported inside the scope (as the backbones import transformers) draws no bar;
    the environment is as it was after."""
    pytest.importorskip("tqdm")
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import os, sys
        from fusion_bench.cli.progress import third_party_quiet
        os.environ["TRANSFORMERS_VERBOSITY"] = "info"
        with third_party_quiet(True):
            import tqdm
            for _ in tqdm.tqdm(range(3), file=sys.stdout):
                pass
            print("hub", os.environ["HF_HUB_DISABLE_PROGRESS_BARS"])
        print("after", os.environ.get("TQDM_DISABLE"), os.environ["TRANSFORMERS_VERBOSITY"])
        for _ in tqdm.tqdm(range(3), file=sys.stdout, disable=False):
            pass
    """)
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60, check=True).stdout
    first, after = out.split("hub 1\n")
    assert first == ""  # no bar inside the scope
    assert after.startswith("after None info\n") and "3/3" in after


def test_mlflow_follows_the_tracking_uri_given(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from fusion_bench.trackers.mlflow import MlflowTracker

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    t = MlflowTracker(tmp_path)
    assert t.uri == "http://tracking.example:5000" and t.artifacts is None
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    t = MlflowTracker(tmp_path / "s")
    assert t.uri == f"sqlite:///{(tmp_path / 's').resolve()}/mlflow.db"
    assert t.artifacts == (tmp_path / "s" / "mlartifacts").resolve().as_uri()


def _wandb_records(path):
    """The protobuf records of an offline W&B run's ``.wandb`` file: a 7-byte header (``:W&B``,
    magic, version), then LevelDB's log format (32 KiB blocks; a chunk: CRC-32C, length, type
    full=1/first=2/middle=3/last=4; a block's last < 7 bytes are padding)."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, buf, block = path.read_bytes(), 7, b"", 32768
    assert data.startswith(b":W&B")
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, n, kind = struct.unpack("<IHB", data[pos : pos + 7])
        buf += data[pos + 7 : pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            buf = b""
            yield rec


@pytest.mark.slow  # ~5 s and a W&B service process
def test_wandb_tracker_logs_every_epoch_offline(cli_run, tiny_args, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    out = tmp_path / "res"
    code, _, err = cli_run("run", "--fusion", "concat", "--out", out, "--no-model", "--log",
                           "wandb", "--set", "model.per_target=true", *tiny_args)
    assert code == 0, err
    rec = _record(out)
    (path,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    records = list(_wandb_records(path))
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.display_name == "concat-s0" and run.project == "fusion-bench"
    def key(item):  # W&B splits a key with "/" into nested_key
        return item.key or "/".join(item.nested_key)

    rows = [{key(i): json.loads(i.value_json) for i in r.history.item}
            for r in records if r.WhichOneof("record_type") == "history"]
    want = [{f"concat_{t}/epoch": h["epoch"], f"concat_{t}/loss": h["loss"], f"concat_{t}/lr": h["lr"],
             f"concat_{t}/val_{t}": h["val"][t], f"concat_{t}/val_mean": h["val"]["mean"]}
            for f in rec["fits"] for t in f["targets"] for h in f["history"]]
    assert [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows] == want
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update({key(i): json.loads(i.value_json) for i in r.summary.update})
    assert summary["test/mean"] == rec["metrics"]["test"]["mean"]
    assert summary["fusion_bench/run_id"] == rec["run_id"]


@pytest.mark.parametrize("jobs", ["1", "2"])  # in this process; in spawned worker processes
def test_a_sweep_logs_each_run_to_tensorboard(cli_run, tiny_args, tmp_path, jobs):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "res"
    code, _, err = cli_run("sweep", "--fusion", "concat", "--seeds", "2", "--jobs", jobs,
                           "--out", out, "--no-model", "--log", "tensorboard",
                           *[a for a in tiny_args if a != "--quiet"])
    assert code == 0, err
    recs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    assert sorted(r["config"]["seed"] for r in recs) == [0, 1]
    dirs = sorted(p.name for p in (out / "tensorboard").iterdir())
    assert dirs == sorted(f"concat-s{r['config']['seed']}-{r['config_hash'][:8]}" for r in recs)
    for r in recs:  # each run's own epochs and test scores, not another's
        acc = EventAccumulator(str(out / "tensorboard" /
                                   f"concat-s{r['config']['seed']}-{r['config_hash'][:8]}"))
        acc.Reload()
        (fit,) = r["fits"]
        got = acc.Scalars("concat_valence+arousal/val_mean")
        assert [e.step for e in got] == [h["epoch"] for h in fit["history"]]
        assert [e.value for e in got] == pytest.approx([h["val"]["mean"] for h in fit["history"]],
                                                       rel=1e-6)
        assert acc.Scalars("test/mean")[0].value == pytest.approx(r["metrics"]["test"]["mean"],
                                                                 rel=1e-6)


def test_an_unknown_tracker_on_a_sweep_is_one_line_before_any_run(cli_run, tiny_args, tmp_path):
    code, _, err = cli_run("sweep", "--fusion", "concat", "--seeds", "2", "--out", tmp_path / "r",
                           "--log", "tensorbored", *[a for a in tiny_args if a != "--quiet"])
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith("--log: unknown tracker 'tensorbored'; choose "
                                                 "from mlflow, tensorboard, wandb (comma-separated)")
    assert not (tmp_path / "r" / "runs").exists()  # nothing trained
