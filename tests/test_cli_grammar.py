"""One grammar for every verb: global options before or after the verb, ``--out`` the results
store everywhere (default $FUSION_BENCH_RESULTS), ``--json``, ``--threads``, ``list`` of every
kind, the old spellings as deprecated aliases, and shell completion of names and keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import torch

from fusion_bench.cli import cli, main
from fusion_bench.cli.app import hoist_global_options
from fusion_bench.errors import PluginError
from fusion_bench.results import ResultsStore

from .conftest import TINY

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = '''
import torch
import fusion_bench

class Gated(torch.nn.Module):
    description = "a plugin's fusion"
    def __init__(self, dims, seq_len, width: int = 4):
        super().__init__()
        self.proj = torch.nn.Linear(sum(dims.values()), width)
        self.out_dim = width
    def forward(self, feats, mask=None):
        return self.proj(torch.cat(list(feats.values()), -1))

@fusion_bench.hookimpl
def register_fusions(register):
    register("gated_plugin", Gated)
'''


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "gated_plugin.py"
    path.write_text(PLUGIN)
    return path


@pytest.fixture
def threads():
    """--threads changes the process's torch threads: put back conftest's one thread after."""
    yield
    torch.set_num_threads(1)


def hoist(*args: str) -> list[str]:
    return hoist_global_options(cli, click.Context(cli), list(args))


# -- global options before or after the verb -------------------------------------------------

def test_global_options_after_the_verb_move_before_it():
    assert hoist("run", "--debug", "--fusion", "x") == ["--debug", "run", "--fusion", "x"]
    assert hoist("run", "--plugin", "p.py", "--seed", "1", "--strict-plugins") == [
        "--plugin", "p.py", "--strict-plugins", "run", "--seed", "1"]
    assert hoist("--debug", "list", "--plugin=a.py") == ["--debug", "--plugin=a.py", "list"]
    # a value of the verb's own option stays where it is, and so does everything after --
    assert hoist("run", "--set", "--debug", "--out", "--plugin") == [
        "run", "--set", "--debug", "--out", "--plugin"]
    assert hoist("run", "--", "--debug") == ["run", "--", "--debug"]
    assert hoist("nosuchverb", "--debug") == ["nosuchverb", "--debug"]  # click says what's wrong


def test_debug_after_the_verb_shows_the_traceback(cli_run, tmp_path):
    code, _, err = cli_run("run", "--fusion", "nope", "--out", tmp_path)
    assert code == 2 and "unknown fusion 'nope'" in err
    with pytest.raises(PluginError, match="unknown fusion 'nope'"):  # --debug: not caught
        main(["run", "--fusion", "nope", "--out", str(tmp_path), "--debug"])


def test_plugin_after_the_verb_is_loaded(cli_run, plugin):
    code, out, err = cli_run("list", "fusions", "--plugin", plugin)
    assert code == 0 and "gated_plugin" in out, err
    code, out, _ = cli_run("list", "fusions")
    assert "gated_plugin" not in out


def test_a_plugin_verb_with_its_plugin_after_it(cli_run, tmp_path):
    path = tmp_path / "greeter.py"
    path.write_text("import click, fusion_bench\n\n@fusion_bench.hookimpl\n"
                    "def register_commands(cli):\n    @cli.command()\n    def greet():\n"
                    "        click.echo('hello')\n")
    code, out, err = cli_run("greet", "--plugin", path)
    assert code == 0 and out.strip() == "hello", err


def test_every_verbs_help_lists_the_global_options(cli_run):
    for verb in cli.commands:
        code, out, _ = cli_run(verb, "--help")
        assert code == 0 and "Global options (before or after the verb)" in out, verb
        assert "--strict-plugins" in out and "--debug" in out


# -- --out is the results store, everywhere; FUSION_BENCH_RESULTS its default -----------------

def test_out_is_the_results_store_of_every_verb_that_has_one():
    store_verbs = {n for n, c in cli.commands.items()
                   if any(p.name == "out" for p in c.params if isinstance(p, click.Option))}
    assert store_verbs == {"run", "sweep", "bench", "leaderboard", "predict"}
    for name in store_verbs:
        (out,) = [p for p in cli.commands[name].params if p.name == "out"]
        assert out.opts == ["--out"] and out.envvar == "FUSION_BENCH_RESULTS", name
        assert out.default == "results", name


def test_fusion_bench_results_is_the_default_store(cli_run, tmp_path, monkeypatch):
    store = tmp_path / "env-store"
    monkeypatch.setenv("FUSION_BENCH_RESULTS", str(store))
    monkeypatch.chdir(tmp_path)  # a store written to ./results would be the bug
    code, _, err = cli_run("run", "--fusion", "concat", *TINY)
    assert code == 0, err
    assert len(ResultsStore(store).records()) == 1 and not (tmp_path / "results").exists()
    code, out, err = cli_run("leaderboard")  # reads the same store
    assert code == 0 and "concat" in out, err
    code, _, err = cli_run("leaderboard", "--out", tmp_path / "other")  # --out wins over it
    assert code == 2 and f"no successful runs in '{tmp_path / 'other'}'" in err


def test_run_json_prints_the_stored_record_and_nothing_else(cli_run, tmp_path):
    code, out, err = cli_run("run", "--fusion", "concat", "--out", tmp_path, "--json", *TINY)
    assert code == 0, err
    printed = json.loads(out)  # the whole of stdout is one JSON document
    (path,) = (tmp_path / "runs").glob("*.json")
    assert printed == json.loads(path.read_text())
    assert f"record: {path}" in err


def test_threads_reach_torch_in_run_and_sweep(cli_run, tmp_path, threads):
    code, out, err = cli_run("run", "--fusion", "concat", "--out", tmp_path / "a", "--threads",
                             "2", "--json", *TINY)
    assert code == 0, err
    assert json.loads(out)["environment"]["cpu_threads"] == 2  # torch.get_num_threads() in the run
    torch.set_num_threads(1)
    code, _, err = cli_run("sweep", "--fusion", "concat", "--seeds", "1", "--out", tmp_path / "b",
                           "--threads", "3", *TINY[:-1])  # sweep shows no progress bar
    assert code == 0, err
    (rec,) = ResultsStore(tmp_path / "b").records()
    assert rec["environment"]["cpu_threads"] == 3
    code, _, err = cli_run("run", "--threads", "0", "--out", tmp_path / "c", *TINY)
    assert code == 2 and "must be at least 1" in err


def test_parallel_sweep_workers_take_threads(tmp_path, monkeypatch):
    """--threads replaces the default share of cores (cores / --jobs) of each worker."""
    from fusion_bench import sweep as sweep_mod

    taken = []

    class Pool:  # records what each run is submitted with; runs nothing
        def __init__(self, **kw):
            self._processes = {}

        def submit(self, fn, cfg, spec, threads, *rest):
            taken.append(threads)
            raise KeyboardInterrupt  # stop after the first submission

        def shutdown(self, **kw):
            pass

    monkeypatch.setattr("concurrent.futures.ProcessPoolExecutor", Pool)
    for given, expected in ((5, 5), (None, max(1, sweep_mod.usable_cpus() // 2))):
        with pytest.raises(KeyboardInterrupt):
            next(sweep_mod._process_outcomes([object(), object()], None, 2, threads=given))
        assert taken.pop() == expected


# -- renamed options of leaderboard, predict and submit ---------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("store")
    assert main(["run", "--fusion", "concat", "--out", str(out), *TINY]) == 0
    return out


def test_leaderboard_tables_and_the_old_spelling_write_the_same(cli_run, store, tmp_path):
    code, _, err = cli_run("leaderboard", "--out", store, "--tables", tmp_path / "new")
    assert code == 0 and "note" not in err, err
    code, _, err = cli_run("leaderboard", "--results", store, "--out", tmp_path / "old")
    assert code == 0, err
    assert err.strip() == (f"note: --results {store} --out {tmp_path / 'old'} is deprecated; "
                           f"use --out {store} --tables {tmp_path / 'old'}")
    new, old = (sorted(p.name for p in (tmp_path / d).iterdir()) for d in ("new", "old"))
    assert new == old == ["leaderboard_synthetic.md"]
    assert (tmp_path / "new" / new[0]).read_text() == (tmp_path / "old" / old[0]).read_text()
    code, out, err = cli_run("leaderboard", "--results", store)  # alone: the store
    assert code == 0 and "concat" in out and "note: --results is deprecated" in err


def test_leaderboard_out_that_holds_no_runs_says_where_tables_go(cli_run, tmp_path):
    code, _, err = cli_run("leaderboard", "--out", tmp_path)
    assert code == 2 and "tables go to --tables DIR" in err


def test_leaderboard_tables_on_a_file_names_tables(cli_run, store, tmp_path):
    (tmp_path / "f").write_text("x")
    code, _, err = cli_run("leaderboard", "--out", store, "--tables", tmp_path / "f")
    assert code == 2 and err.strip() == (f"Error: tables folder '{tmp_path / 'f'}' is a file, not "
                                         "a folder; give --tables a folder you can write to")


def test_predict_out_is_the_store_and_predictions_its_own_folder(cli_run, store, tmp_path):
    from fusion_bench.config import build_config
    from fusion_bench.data.features import write_splits, write_video
    from fusion_bench.plugins import load_registry
    from fusion_bench.runs import load_dataset

    from .conftest import tiny_overrides

    rec = ResultsStore(store).records()[0]
    folder = tmp_path / "feats"
    test = load_dataset(load_registry(entry_points=False),
                        build_config("quick", None, tiny_overrides()))[1]["test"]
    for v in test:
        write_video(folder, v)
    write_splits(folder, {"train": [], "val": [], "test": [v.name for v in test]})
    run = ("predict", "--run", rec["run_id"], "--root", folder)
    code, _, err = cli_run(*run, "--out", store)
    assert code == 2 and "Missing option '--predictions'" in err
    code, _, err = cli_run(*run, "--out", store, "--predictions", tmp_path / "new")
    assert code == 0 and "note" not in err, err
    code, _, err = cli_run(*run, "--results", store, "--out", tmp_path / "old")  # old spelling
    assert code == 0, err
    assert f"note: --results {store} --out {tmp_path / 'old'} is deprecated; use --out " in err
    names = sorted(p.name for p in (tmp_path / "new").iterdir())
    assert names == sorted(f"{v.name}.csv" for v in test)
    for name in names:
        assert (tmp_path / "new" / name).read_text() == (tmp_path / "old" / name).read_text()


def test_submit_writes_csv_and_reads_config(cli_run, tmp_path, monkeypatch):
    """Option plumbing only: training is replaced by a stub that records the configuration."""
    import numpy as np

    from fusion_bench import submission

    seen = []

    def fake(cfg, reg, events=None):
        seen.append(cfg)
        return {"vid": np.zeros((3, 2), np.float32)}, {"valence": 0.5, "arousal": 0.25}

    monkeypatch.setattr(submission, "train_and_predict", fake)
    conf = tmp_path / "c.toml"
    conf.write_text("[train]\nlr = 0.125\n")
    code, out, err = cli_run("submit", "--root", tmp_path, "--config", conf, "--csv",
                             tmp_path / "a.csv", "--quiet")
    assert code == 0 and (tmp_path / "a.csv").exists() and "note" not in err, err
    assert seen[-1].train.lr == 0.125 and seen[-1].data.name == "affwild2"
    code, out, err = cli_run("submit", "--root", tmp_path, "--out", tmp_path / "b.csv", "--quiet")
    assert code == 0 and (tmp_path / "b.csv").exists(), err
    assert "note: submit --out FILE is deprecated; use --csv FILE" in err


# -- list and list --json -----------------------------------------------------------------------

def test_list_alone_lists_every_kind(cli_run):
    code, out, _ = cli_run("list")
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("## ")] == [
        "## fusions", "## encoders", "## backbones", "## datasets", "## metrics"]
    assert "rcma" in out and "tcn" in out and "synthetic" in out and "ccc" in out


def test_list_json(cli_run, plugin):
    from fusion_bench.plugins import load_registry

    reg = load_registry([str(plugin)])
    code, out, _ = cli_run("--plugin", plugin, "list", "--json")
    assert code == 0
    listed = json.loads(out)
    assert list(listed) == ["fusions", "encoders", "backbones", "datasets", "metrics"]
    for kind, entries in listed.items():
        assert [e["name"] for e in entries] == reg.names(kind)
    gated = next(e for e in listed["fusions"] if e["name"] == "gated_plugin")
    assert gated["plugin"] == "gated_plugin" and gated["description"] == "a plugin's fusion"
    code, out, _ = cli_run("--plugin", plugin, "list", "fusions", "--json", "--options")
    (gated,) = [e for e in json.loads(out)["fusions"] if e["name"] == "gated_plugin"]
    assert gated["options"] == [{"key": "fusion.gated_plugin.width", "type": "int",
                                 "required": False, "default": 4}]


# -- shell completion (click's protocol) -------------------------------------------------------

def complete(monkeypatch, capsys, line: str) -> list[str]:
    """The candidates bash would get for ``line`` (the cursor at its end)."""
    words = line.split() + ([""] if line.endswith(" ") else [])
    monkeypatch.setenv("_FUSION_BENCH_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", line)
    monkeypatch.setenv("COMP_CWORD", str(len(words) - 1))
    with pytest.raises(SystemExit) as done:
        main([])
    assert done.value.code == 0
    out = capsys.readouterr().out
    return [row.split(",", 1)[1] for row in out.splitlines() if row]


@pytest.mark.parametrize("line,expected", [
    ("fusion-bench run --fusion ", ["concat", "cross_attention", "lstm", "rcma"]),
    ("fusion-bench run --fusion c", ["concat", "cross_attention"]),
    ("fusion-bench run --debug --encoder t", ["tcn"]),  # a global option after the verb
    ("fusion-bench bench --encoder ", ["identity", "lstm", "tcn"]),
    ("fusion-bench run --dataset s", ["synthetic"]),
    ("fusion-bench leaderboard --dataset a", ["affwild2"]),
    ("fusion-bench sweep --fusion rcma,c", ["rcma,concat", "rcma,cross_attention"]),
    ("fusion-bench sweep --fusion rcma,", ["rcma,concat", "rcma,cross_attention", "rcma,lstm"]),
    ("fusion-bench run --set train.l", ["train.lr", "train.loss"]),
    ("fusion-bench run --set data.w", ["data.window"]),
    ("fusion-bench sweep --set fusion.r", ["fusion.rcma."]),
    ("fusion-bench run --set fusion.rcma.it", ["fusion.rcma.iterations"]),
    ("fusion-bench run --set dataset.synthetic.n_t", ["dataset.synthetic.n_train",
                                                      "dataset.synthetic.n_test"]),
    ("fusion-bench run --set train.lr=", []),  # a value: nothing to offer
    ("fusion-bench run --preset p", ["paper"]),
    ("fusion-bench list ", ["fusions", "encoders", "backbones", "datasets", "metrics"]),
])
def test_completion_offers_names_and_keys(monkeypatch, capsys, line, expected):
    assert complete(monkeypatch, capsys, line) == expected


def test_completion_knows_a_plugins_names(monkeypatch, capsys, plugin):
    assert complete(monkeypatch, capsys, f"fusion-bench --plugin {plugin} run --fusion g") == [
        "gated_plugin"]
    assert complete(monkeypatch, capsys,
                    f"fusion-bench run --plugin {plugin} --set fusion.gated_plugin.") == [
        "fusion.gated_plugin.width"]


def test_completion_script_for_bash_is_printed():
    env = {**os.environ, "_FUSION_BENCH_COMPLETE": "bash_source", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "fusion_bench"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "_FUSION_BENCH_COMPLETE=bash_complete" in done.stdout
    assert "complete -o nosort -F" in done.stdout and "fusion-bench" in done.stdout
