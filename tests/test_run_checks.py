"""What a run checks before it trains, and the precedence of the ways to configure it: found by
a review of the redesign (each test failed on the code it reviewed)."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from fusion_bench.cli.options import build_run_config

TINY_DATA = ["--set", "dataset.synthetic.n_train=4", "--set", "dataset.synthetic.n_val=2",
             "--set", "dataset.synthetic.n_test=2", "--set", "train.epochs=1", "--quiet"]


@pytest.mark.parametrize("key,message", [
    ("fusion.rcmaa.iterations=1", "there is no fusion 'rcmaa'; did you mean fusion.rcma?"),
    ("dataset.synthtic.n_train=3", "there is no dataset 'synthtic'; did you mean dataset.synthetic?"),
    ("encoder.tcnn.kernel=9", "there is no encoder 'tcnn'; did you mean encoder.tcn?"),
    ("fusion.lstm.iteratons=1", "fusion 'lstm' has no option 'iteratons'"),
])
def test_options_of_a_misspelt_or_unused_plugin_are_errors(cli_run, tmp_path, key, message):
    code, _, err = cli_run("run", "--fusion", "concat", "--set", key, "--out", tmp_path,
                           *TINY_DATA)
    assert code == 2 and message in err and "Traceback" not in err
    assert not list(tmp_path.glob("runs/*.json"))
    code, _, err = cli_run("sweep", "--fusion", "concat,rcma", "--seeds", "1", "--set", key,
                           "--out", tmp_path, *TINY_DATA[:-1])
    assert code == 2 and message in err and not list(tmp_path.glob("runs/*.json"))


def opts(**given):
    base = {"preset": "quick", "config_file": None, "sets": (), "fusion": None, "dataset": None,
            "encoder": None, "modalities": None, "root": None, "seed": None, "device": None}
    return {**base, **given}


def test_set_beats_the_dedicated_flags_and_the_file(tmp_path):
    cfg = build_run_config(opts(seed=1, sets=("seed=2",)))
    assert cfg.seed == 2
    cfg = build_run_config(opts(fusion="concat", sets=("model.fusion=rcma",)))
    assert cfg.model.fusion == "rcma"
    toml = tmp_path / "c.toml"
    toml.write_text("seed = 5\n")
    assert build_run_config(opts(config_file=str(toml), seed=7)).seed == 7  # flag > file


def test_a_verbs_fallback_applies_only_where_nothing_sets_the_key(tmp_path):
    fallback = {"data.name": "affwild2"}
    assert build_run_config(opts(root="R"), fallbacks=fallback).data.name == "affwild2"
    assert build_run_config(opts(root="R", sets=("data.name=features",)),
                            fallbacks=fallback).data.name == "features"
    assert build_run_config(opts(root="R", dataset="features"),
                            fallbacks=fallback).data.name == "features"
    toml = tmp_path / "c.toml"
    toml.write_text('[data]\nname = "features"\n')
    assert build_run_config(opts(root="R", config_file=str(toml)),
                            fallbacks=fallback).data.name == "features"


def test_the_short_form_on_the_command_line_beats_the_files_explicit_key(tmp_path):
    from fusion_bench.config import build_config
    from fusion_bench.errors import ConfigError

    toml = tmp_path / "c.toml"
    toml.write_text("[fusion.rcma]\niterations = 3\n")
    cfg = build_config("quick", str(toml), [("model.fusion", "rcma"), ("fusion.iterations", "4")])
    assert cfg.fusion["rcma"]["iterations"] == 4
    toml.write_text("[fusion]\niterations = 3\n")
    cfg = build_config("quick", str(toml), [("model.fusion", "rcma"),
                                            ("fusion.rcma.iterations", "5")])
    assert cfg.fusion["rcma"]["iterations"] == 5
    with pytest.raises(ConfigError, match="both set the option"):  # one source, both forms
        build_config("quick", None, [("model.fusion", "rcma"), ("fusion.iterations", "4"),
                                     ("fusion.rcma.iterations", "5")])


BAD_METRIC_IMPORT = '''
import fusion_bench

@fusion_bench.hookimpl
def register_metrics(register):
    register("medae", "no_such_module_here:medae")
'''

RAISING_METRIC = '''
import fusion_bench

def boom(pred, target):
    raise ValueError("metric bug")

@fusion_bench.hookimpl
def register_metrics(register):
    register("boom", boom)
'''


def test_a_metric_that_cannot_load_fails_before_training(cli_run, tmp_path, monkeypatch):
    from fusion_bench import runs

    plugin = tmp_path / "badmetric.py"
    plugin.write_text(BAD_METRIC_IMPORT)
    monkeypatch.setattr(runs, "run", lambda *a, **k: pytest.fail("trained before the check"))
    code, _, err = cli_run("--plugin", plugin, "run", "--out", tmp_path / "r", *TINY_DATA)
    assert code == 2 and "metric 'medae'" in err and "no_such_module_here" in err
    assert "Traceback" not in err


def test_a_metric_that_raises_is_left_out_and_the_run_kept(cli_run, tmp_path):
    plugin = tmp_path / "raising.py"
    plugin.write_text(RAISING_METRIC)
    code, out, err = cli_run("--plugin", plugin, "run", "--fusion", "concat", "--out",
                             tmp_path / "r", *TINY_DATA)
    assert code == 0, err
    assert "metric 'boom' raised ValueError: metric bug" in err
    (path,) = (tmp_path / "r" / "runs").glob("*.json")
    rec = json.loads(path.read_text())
    assert "boom" not in rec["scores"] and "boom" not in rec["metric_info"]
    assert set(rec["scores"]) == {"ccc", "rmse", "pearson"}


def test_a_lazy_plugin_module_that_raises_is_one_line(cli_run, tmp_path, monkeypatch):
    (tmp_path / "exploding_mod.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = tmp_path / "lazyplug.py"
    plugin.write_text(textwrap.dedent('''
        import fusion_bench

        @fusion_bench.hookimpl
        def register_fusions(register):
            register("broken", "exploding_mod:Fusion", description="d")
    '''))
    code, _, err = cli_run("--plugin", plugin, "run", "--fusion", "broken", "--out", tmp_path / "r",
                           *TINY_DATA)
    assert code == 2 and "fusion 'broken' (lazyplug): cannot load exploding_mod:Fusion" in err
    assert "RuntimeError: boom at import" in err and "Traceback" not in err


def test_list_metrics_shows_their_descriptions(cli_run):
    code, out, _ = cli_run("list", "metrics")
    assert code == 0
    assert "root-mean-square error" in out and "Lin's concordance" in out and "Pearson" in out


def test_submit_sends_run_start_and_run_end():
    from fusion_bench.config import build_config
    from fusion_bench.events import Events
    from fusion_bench.plugins import load_registry
    from fusion_bench.runs import load_dataset
    from fusion_bench.submission import train_and_predict

    from .conftest import tiny_overrides

    seen = []

    class Tracker:
        import fusion_bench

        @fusion_bench.hookimpl
        def run_start(self, run):
            seen.append("start")

        @fusion_bench.hookimpl
        def epoch_end(self, run, epoch):
            seen.append("epoch")

        @fusion_bench.hookimpl
        def run_end(self, run, record):
            seen.append(("end", record["kind"], record["videos"]))

    cfg = build_config("quick", None, tiny_overrides())
    reg = load_registry(entry_points=False)
    reg.pm.register(Tracker(), name="tracker")
    videos = load_dataset(reg, cfg)[1]["test"][:2]
    train_and_predict(cfg, reg, videos, events=Events(reg.pm))
    assert seen == ["start", "epoch", "epoch", ("end", "submission", 2)]


def test_latex_caption_escapes_what_records_hold():
    from fusion_bench.report.render import render

    tex = render(["a"], [["1"]], "fusion R&D #2 at 50% of c_max, cost $3 {x} ~ ^", "latex")
    assert r"R\&D \#2 at 50\% of c\_max, cost \$3 \{x\} \textasciitilde{} \textasciicircum{}" in tex


def test_an_out_that_cannot_hold_records_fails_before_training(cli_run, tmp_path, monkeypatch):
    from fusion_bench import runs

    monkeypatch.setattr(runs, "run", lambda *a, **k: pytest.fail("trained before the check"))
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a folder")
    for out, says in ((a_file, "is a file, not a folder"), (a_file / "sub", "cannot be written")):
        code, _, err = cli_run("run", "--out", out, *TINY_DATA)
        assert code == 2 and f"results folder '{out}' {says}" in err and "Traceback" not in err
        code, _, err = cli_run("sweep", "--fusion", "concat", "--seeds", "1", "--out", out,
                               *TINY_DATA[:-1])
        assert code == 2 and says in err


def test_out_expands_home_and_empty(tmp_path, monkeypatch):
    from fusion_bench.results import ResultsStore

    monkeypatch.setenv("HOME", str(tmp_path))
    assert ResultsStore("~/res").root == tmp_path / "res"
    assert str(ResultsStore("").root) == "."


@pytest.mark.parametrize("args,message", [
    (["run", "--set", "train.lr=nan"], "train.lr must be positive, got nan"),
    (["run", "--set", "train.lr=inf"], "train.lr must be positive, got inf"),
    (["run", "--seed", str(2**63)], "seed must be at most 2**63 - 1"),
    (["run", "--set", "train.batch_size=1"], "train.batch_size must be at least 2"),
    (["sweep", "--fusion", "concat", "--seeds", "0"], "'--seeds': 0 is not in the range 1<=x<=10000"),
    (["sweep", "--fusion", "concat", "--seeds", "-3"], "'--seeds': -3 is not in the range 1<=x<=10000"),
    (["sweep", "--fusion", ",", "--seeds", "1"], "give at least one fusion"),
    (["bench", "--fusion", "concat", "--peak-tflops", "-1"], "--peak-tflops must be a positive"),
])
def test_bad_values_are_one_line_before_any_work(cli_run, tmp_path, monkeypatch, args, message):
    from fusion_bench import runs

    monkeypatch.setattr(runs, "run", lambda *a, **k: pytest.fail("trained before the check"))
    code, out, err = cli_run(*args, "--out", tmp_path)
    assert code == 2, (out, err)
    # one error line (click adds its usage lines above a bad option's)
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err


def test_a_config_that_is_a_folder_or_not_utf8_is_one_line(cli_run, tmp_path):
    (tmp_path / "adir").mkdir()
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe[x]\n")
    for path, message in ((tmp_path / "adir", "is a folder"), (bad, "not UTF-8 text")):
        code, _, err = cli_run("run", "--config", path, "--out", tmp_path / "r")
        assert code == 2 and message in err and "Traceback" not in err


def test_a_record_with_a_value_sqlite_cannot_hold_is_indexed_not_fatal(tmp_path):
    """A record made elsewhere with a seed beyond 64 bits once poisoned the store: every later
    command failed on indexing it."""
    from fusion_bench.results import ResultsStore

    (tmp_path / "runs").mkdir()
    rec = {"run_id": "big", "config_hash": "hbig", "created": "t", "config": {"seed": 2**70},
           "metrics": {"test": {"mean": 0.5}}}
    (tmp_path / "runs" / "big.json").write_text(json.dumps(rec))
    store = ResultsStore(tmp_path)
    assert store.has("hbig") and [r["run_id"] for r in store.records()] == ["big"]


def test_leaderboard_out_on_a_file_is_one_line_and_writes_nothing(cli_run, tmp_path):
    a_file = tmp_path / "tables"
    a_file.write_text("x")
    folder = __import__("pathlib").Path(__file__).resolve().parent.parent / "leaderboards" / "synthetic-cpu"
    code, _, err = cli_run("leaderboard", "--out", folder, "--tables", a_file)
    assert code == 2 and "is a file, not a folder" in err and a_file.read_text() == "x"


def run_with_plugin(cli_run, tmp_path, source: str, filename: str, *args):
    """``fusion-bench --plugin <source written to filename> run ARGS`` on tiny data."""
    plugin = tmp_path / filename
    plugin.write_text(source)
    return cli_run("--plugin", plugin, "run", *args, "--out", tmp_path / "r", *TINY_DATA)


BAD_SHAPE = '''
import torch
import fusion_bench


class OneFrame(torch.nn.Module):
    description = "returns one frame per window (a plugin bug)"

    def __init__(self, dims, seq_len):
        super().__init__()
        self.out_dim = sum(dims.values())

    def forward(self, feats, mask=None):
        return torch.cat(list(feats.values()), -1).mean(1, keepdim=True)  # (B, 1, W)


class Exploding(OneFrame):
    description = "returns inf (a plugin bug)"

    def forward(self, feats, mask=None):
        return torch.cat(list(feats.values()), -1) * float("inf")


@fusion_bench.hookimpl
def register_fusions(register):
    register("oneframe", OneFrame)
    register("exploding", Exploding)
'''


@pytest.mark.parametrize("fusion,message", [
    ("oneframe", "fusion 'oneframe' returned (32, 1, "),
    ("exploding", "fusion 'exploding' returned NaN or inf on its first batch"),
])
def test_a_fusions_output_is_checked_on_its_first_batch(cli_run, tmp_path, fusion, message):
    code, _, err = run_with_plugin(cli_run, tmp_path, BAD_SHAPE, "badfusions.py", "--fusion", fusion)
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not list(tmp_path.glob("r/runs/*.json"))  # the old code stored a result, exit 0


@pytest.mark.parametrize("damage,message", [
    (lambda path, x: np.savez(open(path, "wb"), x=x), "an .npz archive, not one .npy array"),
    (lambda path, x: np.save(path, x.astype(np.complex64)), "values of type complex64"),
])
def test_features_that_are_not_real_arrays_are_one_line(cli_run, tmp_path, damage, message):
    from fusion_bench.data.features import write_splits, write_video
    from fusion_bench.data.synthetic import SyntheticConfig, SyntheticDataset

    root = tmp_path / "feats"
    splits = SyntheticDataset(SyntheticConfig(n_train=4, n_val=2, n_test=2, min_frames=100,
                                              max_frames=120), ("visual", "audio")).splits()
    for videos in splits.values():
        for v in videos:
            write_video(root, v)
    write_splits(root, {s: [v.name for v in vs] for s, vs in splits.items()})
    path = root / "features" / "visual" / f"{splits['train'][0].name}.npy"
    damage(path, np.load(path))
    code, _, err = cli_run("run", "--root", root, "--out", tmp_path / "r", "--quiet")
    assert code == 2 and message in err and str(path) in err and "Traceback" not in err, err


FAULTY = '''
import torch
import fusion_bench


class RaisesInForward(torch.nn.Module):
    description = "raises in forward (a plugin bug)"

    def __init__(self, dims, seq_len):
        super().__init__()
        self.out_dim = sum(dims.values())

    def forward(self, feats, mask=None):
        return 1 / 0


class RaisesWhenBuilt(RaisesInForward):
    description = "raises when built (a plugin bug)"

    def __init__(self, dims, seq_len):
        raise RuntimeError("no GPU kernel for this")


@fusion_bench.hookimpl
def register_fusions(register):
    register("fwd", RaisesInForward)
    register("init", RaisesWhenBuilt)
'''


@pytest.mark.parametrize("fusion,message", [
    ("fwd", "fusion 'fwd' raised ZeroDivisionError in forward: division by zero"),
    ("init", "fusion 'init' (faulty) raised RuntimeError when built: no GPU kernel for this"),
])
def test_a_plugins_exception_is_one_line_naming_it(cli_run, tmp_path, fusion, message):
    code, _, err = run_with_plugin(cli_run, tmp_path, FAULTY, "faulty.py", "--fusion", fusion)
    assert code == 2 and message in err and "Traceback" not in err, err


def test_a_plugin_calling_sys_exit_at_import_is_a_failed_plugin(cli_run, tmp_path):
    plugin = tmp_path / "quitter.py"
    plugin.write_text("import sys\nsys.exit(3)\n")
    code, out, err = cli_run("--plugin", plugin, "list", "fusions")
    assert code == 0 and "quitter" in err and "SystemExit" in err and "concat" in out


def test_an_encoders_exception_in_forward_is_one_line_naming_it(cli_run, tmp_path):
    plugin = tmp_path / "badenc.py"
    plugin.write_text(textwrap.dedent('''
        import torch
        import fusion_bench


        class Broken(torch.nn.Module):
            def __init__(self, in_dim):
                super().__init__()
                self.lin = torch.nn.Linear(in_dim, 4)
                self.out_dim = 4

            def forward(self, x):
                raise KeyError("lost a buffer")


        @fusion_bench.hookimpl
        def register_encoders(register):
            register("broken", Broken, description="raises in forward")
    '''))
    code, _, err = cli_run("--plugin", plugin, "run", "--encoder", "broken", "--out",
                           tmp_path / "r", *TINY_DATA)
    assert code == 2 and "encoder 'broken' (visual) raised KeyError in forward" in err, err
    assert "Traceback" not in err
