"""Run events (run_start, epoch_end, run_end): what a tracker plugin receives, that a broken
one costs no result, and the CLI's progress display built on them."""

from __future__ import annotations

import json
import textwrap

import pytest

TRACKER = '''
import json
import fusion_bench

LOG = {path!r}

def _write(event):
    with open(LOG, "a") as f:
        f.write(json.dumps(event) + "\\n")

@fusion_bench.hookimpl
def run_start(run):
    _write({{"event": "start", "name": run.name, "hash": run.config_hash, "models": list(run.models),
             "epochs": run.config["train"]["epochs"]}})

@fusion_bench.hookimpl
def epoch_end(run, epoch):
    _write({{"event": "epoch", "model": epoch.model, "epoch": epoch.epoch, "val": epoch.val,
             "loss": epoch.loss, "best": epoch.best, "best_epoch": epoch.best_epoch}})

@fusion_bench.hookimpl
def run_end(run, record):
    _write({{"event": "end", "hash": record["config_hash"], "test": record["metrics"]["test"]["mean"]}})
'''


def _events(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_tracker_plugin_receives_every_event_of_a_run(cli_run, tiny_args, tmp_path):
    log = tmp_path / "events.jsonl"
    plugin = tmp_path / "tracker.py"
    plugin.write_text(TRACKER.format(path=str(log)))
    out = tmp_path / "res"
    code, _, err = cli_run("--plugin", plugin, "run", "--fusion", "concat", "--out", out,
                           "--set", "model.per_target=true", *tiny_args)
    assert code == 0, err
    (rec_path,) = (out / "runs").glob("*.json")
    rec = json.loads(rec_path.read_text())
    ev = _events(log)
    start, *epochs, end = ev
    assert start["event"] == "start" and end["event"] == "end"
    assert start["hash"] == end["hash"] == rec["config_hash"]
    assert start["models"] == ["concat valence", "concat arousal"]
    # one event per trained epoch of each model, with the numbers its fit history holds
    history = [(f["targets"], h) for f in rec["fits"] for h in f["history"]]
    assert len(epochs) == len(history) == sum(f["epochs"] for f in rec["fits"])
    for e, (targets, h) in zip(epochs, history, strict=True):
        assert e["model"] == "concat " + "+".join(targets)
        assert e["epoch"] == h["epoch"] and e["val"] == h["val"] and e["loss"] == h["loss"]
    last = [e for e in epochs if e["model"] == "concat valence"][-1]
    assert last["best"] == rec["fits"][0]["best_val"]
    assert end["test"] == rec["metrics"]["test"]["mean"]


def test_a_raising_hook_is_warned_about_once_and_the_run_is_kept(tmp_path):
    from fusion_bench.config import build_config
    from fusion_bench.events import Events
    from fusion_bench.plugins import load_registry
    from fusion_bench.runs import run_record

    from .conftest import tiny_overrides

    calls = []

    class Broken:
        @staticmethod
        def epoch_end(run, epoch):
            calls.append(epoch.epoch)
            raise RuntimeError("tracker server down")

    import fusion_bench

    Broken.epoch_end = fusion_bench.hookimpl(Broken.epoch_end)
    reg = load_registry(entry_points=False)
    reg.pm.register(Broken(), name="broken-tracker")
    cfg = build_config("quick", None, tiny_overrides())
    with pytest.warns(UserWarning, match="broken-tracker.*epoch_end raised RuntimeError: tracker"):
        record = run_record(cfg, reg, Events(reg.pm))
    assert calls == [1]  # switched off after its first failure
    assert record["metrics"]["test"]["mean"] == record["metrics"]["test"]["mean"]  # a real number
    assert len(record["fits"][0]["history"]) == 2  # both epochs trained


def test_run_shows_its_progress_unless_quiet(cli_run, tiny_args, tmp_path, caplog):
    import logging

    args = [a for a in tiny_args if a != "--quiet"]
    with caplog.at_level(logging.INFO, logger="fusion_bench.progress"):
        code, _, err = cli_run("run", "--fusion", "concat", "--out", tmp_path / "a", *args)
    assert code == 0, err
    # not a terminal here: a log line per epoch (tests/test_trackers.py checks their numbers)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "concat valence+arousal epoch 1/2", "concat valence+arousal epoch 2/2"]
    caplog.clear()
    code, _, err = cli_run("run", "--fusion", "concat", "--out", tmp_path / "b", *tiny_args)
    assert code == 0 and "concat valence+arousal" not in err and not caplog.records


VERB = textwrap.dedent('''
    import click
    import fusion_bench

    @fusion_bench.hookimpl
    def register_commands(cli):
        @cli.command()
        def greet():
            """Say hello (a plugin verb)."""
            click.echo("hello")
''')


def test_plugin_verbs_show_in_help_and_plugins(cli_run, tmp_path):
    plugin = tmp_path / "greeter.py"
    plugin.write_text(VERB)
    code, out, err = cli_run("--plugin", plugin, "--help")
    assert code == 0, err
    assert "greet" in out and "Say hello (a plugin verb)." in out
    code, out, err = cli_run("--plugin", plugin, "plugins")
    assert code == 0, err
    (row,) = [line for line in out.splitlines() if line.startswith("greeter")]
    assert "commands: greet" in row
    code, out, _ = cli_run("--help")  # without the plugin: not there
    assert code == 0 and "greet" not in out
