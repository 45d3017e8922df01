import json
import subprocess
import sys
import textwrap

import pytest

from .test_plugins import GATED

HEAVY = ("timm", "sentence_transformers", "torchvggish", "matplotlib", "ray")


def records(out_dir):
    return sorted((out_dir / "runs").glob("*.json")) if (out_dir / "runs").exists() else []


def test_run_prints_table_and_writes_record(cli_run, tiny_args, tmp_path):
    out = tmp_path / "res"
    code, stdout, err = cli_run("run", "--fusion", "concat", "--out", out, *tiny_args)
    assert code == 0, err
    assert "val" in stdout and "test" in stdout and "ceiling" in stdout
    (rec_path,) = records(out)
    assert str(rec_path) in stdout
    rec = json.loads(rec_path.read_text())
    for key in ("schema_version", "config", "config_hash", "plugins", "environment", "metrics",
                "params", "throughput", "wall", "fits", "dataset"):
        assert key in rec
    assert rec["config"]["model"]["fusion"] == "concat"
    assert set(rec["metrics"]["test"]) == {"valence", "arousal", "mean"}
    assert rec["environment"]["torch"] and rec["dataset"]["ceiling"]["test"]["mean"] > 0
    assert (out / "fusion_bench.sqlite").exists()


def test_plugin_file_fusion_is_used_by_run(cli_run, tiny_args, tmp_path):
    plugin = tmp_path / "gated.py"
    plugin.write_text(textwrap.dedent(GATED.replace("{name}", "gated")))
    out = tmp_path / "res"
    code, stdout, err = cli_run("--plugin", plugin, "run", "--fusion", "gated", "--out", out,
                                "--set", "fusion.width=4", *tiny_args)
    assert code == 0, err
    rec = json.loads(records(out)[0].read_text())
    assert rec["plugins"]["fusion"] == {"name": "gated", "plugin": "gated", "version": "-"}
    assert rec["options"]["fusion"] == {"width": 4}


def test_broken_plugin_is_reported_and_run_still_works(cli_run, tiny_args, tmp_path):
    bad = tmp_path / "exploding.py"
    bad.write_text("raise ImportError('needs a missing package')\n")
    code, _, err = cli_run("--plugin", bad, "run", "--out", tmp_path / "r", *tiny_args)
    assert code == 0
    assert "exploding" in err and "needs a missing package" in err


@pytest.mark.parametrize("args,message", [
    (["--fusion", "conact"], "did you mean concat"),
    (["--dataset", "synthetc"], "unknown dataset 'synthetc'; did you mean synthetic"),
    (["--set", "train.lrr=0.1"], "did you mean train.lr"),
    (["--set", "train.epochs=many"], "'train.epochs' expects int"),
    (["--set", "data.window=-1"], "data.window must be ≥ 0 (0: derived from the train split"),
    (["--set", "data.hop=-4"], "data.hop must be ≥ 0 (0: data.window / 2)"),
    (["--set", "fusion.nope=3"], "fusion 'concat' has no option 'nope'"),
    (["--set", "noequals"], "--set expects key=value"),
    (["--preset", "papr"], "unknown preset 'papr'"),
])
def test_bad_input_is_one_clear_line_and_no_record(cli_run, tiny_args, tmp_path, args, message):
    out = tmp_path / "res"
    code, stdout, err = cli_run("run", "--out", out, *tiny_args, *args)
    assert code != 0
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert records(out) == []


def test_debug_shows_traceback(tmp_path):
    p = subprocess.run([sys.executable, "-m", "fusion_bench.cli", "--debug", "run", "--fusion", "nope",
                        "--out", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode != 0 and "Traceback" in p.stderr


MISMATCHED = '''
import numpy as np
import fusion_bench
from fusion_bench.data import Video

class Broken:
    description = "features one frame shorter than labels"
    dims = {"visual": 3, "audio": 2}
    @classmethod
    def from_config(cls, cfg):
        return cls()
    def splits(self):
        v = Video("clip_01", {"visual": np.zeros((9, 3), np.float32), "audio": np.zeros((10, 2), np.float32)},
                  {"visual": np.ones(9, bool), "audio": np.ones(10, bool)}, np.zeros((10, 2), np.float32))
        return {"train": [v], "val": [v], "test": [v]}
    def info(self):
        return {"name": "broken"}

@fusion_bench.hookimpl
def register_datasets(register):
    register("broken", Broken)
'''


def test_modality_and_label_length_mismatch_names_the_video(cli_run, tmp_path):
    plugin = tmp_path / "brokends.py"
    plugin.write_text(MISMATCHED)
    out = tmp_path / "res"
    code, _, err = cli_run("--plugin", plugin, "run", "--dataset", "broken", "--out", out, "--quiet")
    assert code == 2
    assert "clip_01" in err and "visual" in err and "9 feature frames but 10 label frames" in err
    assert records(out) == []


@pytest.mark.parametrize("args", [["--help"], ["list", "fusions"], ["plugins"]])
def test_help_and_list_import_no_heavy_optional_package(args):
    code = (
        "import sys\n"
        "from fusion_bench.cli import main\n"
        f"rc = main({args!r})\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert rc == 0, rc\n"
        "assert not heavy, heavy\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_list_shows_descriptions(cli_run):
    code, out, _ = cli_run("list", "fusions")
    assert code == 0 and "concat" in out and "per-frame concatenation" in out
    code, out, _ = cli_run("plugins")
    assert code == 0 and "builtins" in out


COMMAND_PLUGIN = '''
import click
import fusion_bench

@fusion_bench.hookimpl
def register_commands(cli):
    @cli.command()
    @click.argument("name")
    def greet(name):
        """Say hello (a plugin verb)."""
        click.echo(f"hello {name}")
'''


def test_plugin_adds_a_cli_verb_for_that_invocation_only(cli_run, tmp_path):
    plugin = tmp_path / "greeter.py"
    plugin.write_text(COMMAND_PLUGIN)
    code, out, err = cli_run("--plugin", plugin, "greet", "ada")
    assert code == 0, err
    assert out.strip() == "hello ada"
    code, _, err = cli_run("greet", "ada")  # without the plugin the verb does not exist
    assert code != 0 and "No such command" in err


def test_ctrl_c_exits_130_and_says_what_was_kept(cli_run, tiny_args, tmp_path, monkeypatch):
    from fusion_bench import runs

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "run_and_store", interrupted)
    code, _, err = cli_run("run", "--out", tmp_path, *tiny_args)
    assert code == 130
    assert "Interrupted" in err and "run the same command again" in err


def test_console_entry_returns_mains_status_with_the_collector_frozen(monkeypatch):
    import gc

    from fusion_bench.cli import app, startup

    monkeypatch.setattr(app, "main", lambda: 7)
    monkeypatch.setattr(startup, "_console", False)  # entry marks the process; undone after
    gc.unfreeze()
    try:
        assert app.entry() == 7
        assert gc.get_freeze_count() > 0  # the interpreter's exit then skips its collections
    finally:
        gc.unfreeze()


def test_console_entry_marks_the_process_as_the_consoles(monkeypatch):
    import gc

    from fusion_bench.cli import app, startup

    monkeypatch.setattr(app, "main", lambda: 0)
    monkeypatch.setattr(startup, "_console", False)
    try:
        app.entry()
        assert startup._console
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("console", [False, True])
@pytest.mark.parametrize("enabled", [True, False])
def test_training_imports_freeze_in_the_console_process_only(monkeypatch, console, enabled):
    import gc

    from fusion_bench.cli import startup

    monkeypatch.setattr(startup, "_console", console)
    gc.unfreeze()
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        startup.import_training_modules()
        assert gc.isenabled() == enabled  # the collector is left as it was
        assert (gc.get_freeze_count() > 0) == console
    finally:
        gc.unfreeze()
        (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("checks", ["", "checks=lambda: preflight([build_config()], load_registry())"])
def test_training_imports_load_torch_with_no_full_collection_in_the_console_process(checks):
    # a fresh interpreter, so that torch and torch._dynamo really load inside the call; the
    # run's preflight loads the plugins, and torch with them, inside it too
    code = ("import gc, sys\n"
            "from fusion_bench.cli import startup\n"
            "from fusion_bench.config import build_config\n"
            "from fusion_bench.plugins import load_registry\n"
            "from fusion_bench.preflight import preflight\n"
            "assert 'torch' not in sys.modules\n"
            "full = []\n"
            "gc.callbacks.append(lambda phase, info: phase == 'start' and "
            "info['generation'] == 2 and full.append(1))\n"
            "console = sys.argv[1] == 'console'\n"
            "if console:\n"
            "    startup.console_process()\n"
            f"startup.import_training_modules({checks})\n"
            "assert 'torch._dynamo' in sys.modules and 'fusion_bench.runs' in sys.modules\n"
            "print(len(full), gc.isenabled())\n")
    counts = {}
    for mode in ("console", "library"):
        p = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        n, enabled = p.stdout.split()
        assert enabled == "True"
        counts[mode] = int(n)
    # loading them collected over everything loaded so far, again and again, where not paused
    assert counts["console"] == 0 and counts["library"] > 0, counts


@pytest.mark.parametrize("verb", ["run", "sweep", "bench"])
def test_training_commands_freeze_after_their_imports_in_the_console(monkeypatch, cli_run,
                                                                     tmp_path, tiny_args, verb):
    import gc

    from fusion_bench import runs
    from fusion_bench.cli import startup

    frozen = []

    def stored(*_a, **_k):  # the work starts: were the loaded modules already frozen?
        frozen.append(gc.get_freeze_count())
        raise KeyboardInterrupt

    if verb == "run":
        monkeypatch.setattr(runs, "run_and_store", stored)
    elif verb == "sweep":
        monkeypatch.setattr(runs, "run_record", stored)
    else:
        from fusion_bench.bench import runner

        monkeypatch.setattr(runner, "run_bench", stored)
    monkeypatch.setattr(startup, "_console", True)
    gc.unfreeze()
    try:
        args = ["--fusion", "concat"] + (["--seeds", "1"] if verb == "sweep" else [])
        data = [] if verb == "bench" else [a for a in tiny_args if a != "--quiet"]
        code, _, err = cli_run(verb, "--out", tmp_path, *args, *data)
        assert code == 130, err  # the stand-in's Ctrl-C
    finally:
        gc.unfreeze()
    assert frozen and frozen[0] > 0


@pytest.mark.parametrize("verb, args, message, unloaded", [
    ("run", ["--fusion", "rcmaa"], "unknown fusion 'rcmaa'; did you mean rcma?", "torch"),
    ("run", ["--encoder", "tcnn"], "unknown encoder 'tcnn'", "torch"),
    ("run", ["--dataset", "synthetik"], "unknown dataset 'synthetik'", "torch"),
    ("bench", ["--fusion", "rcmaa"], "unknown fusion 'rcmaa'", "torch"),
    # an option is checked on the plugin, which imports torch; torch._dynamo is not needed yet
    ("run", ["--set", "fusion.rcma.iterationz=2"], "has no option 'iterationz'", "torch._dynamo"),
    ("sweep", ["--fusion", "concat,rcmaa", "--seeds", "1"], "unknown fusion 'rcmaa'", "torch"),
])
def test_a_misspelt_plugin_fails_before_the_training_modules_load(tmp_path, verb, args, message,
                                                                   unloaded):
    # a fresh interpreter: what the command imported before its error is what a user waits for
    code = ("import sys\n"
            "from fusion_bench.cli import main\n"
            f"rc = main({[verb, '--out', str(tmp_path / 'res'), *args]!r})\n"
            f"print(rc, {unloaded!r} in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert message in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert p.stdout.split() == ["2", "False"], (p.stdout, p.stderr)


def test_console_entry_still_flushes_output_and_runs_atexit_handlers():
    # trackers and Ray close through atexit; what the command printed must all come out
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('atexit ran'))\n"
            "from fusion_bench.cli import entry\n"
            "sys.argv = ['fusion-bench', 'list', 'fusions']\n"
            "sys.exit(entry())\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "rcma" in p.stdout and p.stdout.rstrip().endswith("atexit ran")
