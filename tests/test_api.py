"""The notebook API (fusion_bench.api, re-exported by the package): runs and sweeps through the
CLI's path, errors as exceptions, the store as rows / a DataFrame, and the README's example as
printed."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fusion_bench
from fusion_bench.config.arguments import ARGUMENT_KEYS, config_of
from fusion_bench.errors import ConfigError, DataError, PluginError
from fusion_bench.report.frame import rows

from .conftest import tiny_overrides
from .test_leaderboard import record as fake_record
from .test_reference import ridge, with_baseline

ROOT = Path(__file__).resolve().parent.parent


def tiny() -> dict:
    """The tests' tiny configuration as an overrides dict (typed as text, as --set gives it)."""
    return dict(tiny_overrides())


# -- configuration: the CLI's ------------------------------------------------------------------------
def test_the_named_arguments_are_the_cli_flags():
    from fusion_bench.cli.options import FLAGS

    assert ARGUMENT_KEYS == {name: key for name, (key, _) in FLAGS.items()}


def test_arguments_and_overrides_make_the_cli_configuration():
    """fusion/seed/modalities and an overrides dict (typed, flat or nested) give the
    configuration, and so the hash, of the same CLI flags and --set options."""
    from fusion_bench.cli.options import build_run_config

    cli = build_run_config({"preset": "quick", "config_file": None,
                            "sets": ("train.lr=0.01", "fusion.rcma.iterations=3"),
                            "fusion": "rcma", "seed": 3, "modalities": "visual,audio",
                            "dataset": None, "encoder": None, "root": None, "device": None})
    flat = config_of("quick", None, {"fusion": "rcma", "seed": 3, "modalities": ["visual", "audio"]},
                     {"train.lr": 0.01, "fusion.rcma.iterations": 3})
    nested = config_of("quick", None, {"fusion": "rcma", "seed": 3, "modalities": "visual,audio"},
                       {"train": {"lr": 0.01}, "fusion": {"rcma": {"iterations": 3}}})
    assert flat.to_dict() == nested.to_dict() == cli.to_dict()
    assert flat.hash("2") == cli.hash("2") and flat.model.fusion == "rcma" and flat.seed == 3
    assert flat.train.lr == 0.01 and flat.fusion["rcma"]["iterations"] == 3
    # the named argument is below the overrides, as a flag is below --set
    assert config_of(arguments={"seed": 3}, overrides={"seed": 4}).seed == 4
    assert config_of(arguments={"root": ROOT / "nowhere", "dataset": "synthetic"}).data.root == \
        str(ROOT / "nowhere")  # a Path becomes text


def test_mistakes_raise_the_projects_errors_before_any_training(tmp_path, monkeypatch):
    from fusion_bench import runs

    monkeypatch.setattr(runs, "run", lambda *a, **k: pytest.fail("trained before the check"))
    with pytest.raises(ConfigError, match="unknown config key 'train.stepz'; did you mean train.steps"):
        fusion_bench.run(fusion="concat", overrides={"train.stepz": 3}, out=tmp_path)
    with pytest.raises(ConfigError, match="expects int"):
        fusion_bench.run(fusion="concat", overrides={"train.steps": "many"})
    with pytest.raises(ConfigError, match="overrides must be a dict"):
        fusion_bench.run(fusion="concat", overrides=[("train.steps", 3)])
    with pytest.raises(PluginError, match="unknown fusion 'rcmaa'.*did you mean"):
        fusion_bench.run(fusion="rcmaa", overrides=tiny())
    with pytest.raises(ConfigError, match="unknown preset"):
        fusion_bench.run(preset="papr")
    with pytest.raises(ConfigError, match="at least one fusion"):
        fusion_bench.sweep([], out=tmp_path)
    with pytest.raises(ConfigError, match="seeds must be"):
        fusion_bench.sweep(["concat"], seeds=0, out=tmp_path)
    with pytest.raises(ConfigError, match="not fusion= or seed="):
        fusion_bench.sweep(["concat"], seed=1, out=tmp_path)
    with pytest.raises(ConfigError, match="unknown argument 'lr'"):
        fusion_bench.sweep(["concat"], lr=0.1, out=tmp_path)
    with pytest.raises(DataError, match="no results store at"):
        fusion_bench.results(tmp_path / "none")
    with pytest.raises(DataError, match="no readable record of run 'nope'"):
        fusion_bench.load_model("nope", tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written


# -- runs and sweeps -------------------------------------------------------------------------------
def test_run_stores_the_record_the_cli_would(tmp_path, cli_run, tiny_args):
    rec = fusion_bench.run(fusion="concat", seed=1, overrides=tiny(), out=tmp_path / "api")
    (path,) = (tmp_path / "api" / "runs").glob("*.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(rec))  # returned = stored
    assert rec["config"]["model"]["fusion"] == "concat" and rec["config"]["seed"] == 1
    assert set(rec["metrics"]["test"]) == {"valence", "arousal", "mean"}
    assert (tmp_path / "api" / rec["artifacts"]["models"]["concat valence+arousal"]).exists()
    # the same settings through the CLI: the same configuration and hash (one run path)
    code, _, err = cli_run("run", "--fusion", "concat", "--seed", "1", "--out", tmp_path / "cli",
                           *tiny_args)
    assert code == 0, err
    (cli_rec,) = [json.loads(p.read_text()) for p in (tmp_path / "cli" / "runs").glob("*.json")]
    assert cli_rec["config_hash"] == rec["config_hash"]
    assert cli_rec["model_hash"] == rec["model_hash"]
    loaded = fusion_bench.load_model(rec["run_id"], tmp_path / "api")
    assert loaded.record["run_id"] == rec["run_id"] and loaded.targets == ("valence", "arousal")


def test_run_without_out_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rec = fusion_bench.run(fusion="concat", overrides=tiny())
    assert not list(tmp_path.iterdir())
    assert "_artifacts" not in rec and "artifacts" not in rec and rec["status"] == "ok"
    json.dumps(rec)  # plain data: no tensors left in it


def test_sweep_runs_the_grid_and_resumes(tmp_path):
    lines: list[str] = []
    res = fusion_bench.sweep("concat, only:audio", seeds=[0], overrides=tiny(), out=tmp_path,
                             echo=lines.append)
    assert (res.done, res.skipped, res.failed) == (2, 0, 0) and len(lines) == 2
    again = fusion_bench.sweep(["concat", "only:audio"], seeds=1, overrides=tiny(), out=tmp_path,
                               echo=None)
    assert (again.done, again.skipped) == (0, 2)
    got = {r["model"]: r for r in rows(fusion_bench.results.ResultsStore(tmp_path).records())}
    assert set(got) == {"concat", "audio only"}
    assert got["audio only"]["config.data.modalities"] == ("audio",)


def test_run_and_sweep_log_to_trackers_under_the_store(tmp_path):
    pytest.importorskip("tensorboard")
    rec = fusion_bench.run(fusion="concat", overrides=tiny(), out=tmp_path / "one",
                           log="tensorboard")
    assert [p.name for p in (tmp_path / "one" / "tensorboard").iterdir()] == \
        [f"concat-s0-{rec['config_hash'][:8]}"]
    res = fusion_bench.sweep("concat", seeds=2, overrides=tiny(), out=tmp_path / "grid",
                             echo=None, log=["tensorboard"])
    assert res.done == 2
    assert sorted(p.name[:len("concat-s0")] for p in (tmp_path / "grid" / "tensorboard").iterdir()) \
        == ["concat-s0", "concat-s1"]
    with pytest.raises(ConfigError, match="log= needs out="):
        fusion_bench.run(fusion="concat", overrides=tiny(), log="tensorboard")
    with pytest.raises(ConfigError, match="unknown tracker 'tensorbord'"):
        fusion_bench.sweep("concat", seeds=1, overrides=tiny(), out=tmp_path / "x", log="tensorbord")
    assert not (tmp_path / "x").exists()  # refused before the store was made


# -- the store as a table --------------------------------------------------------------------------
def test_rows_flatten_each_record_as_computed_by_hand():
    recs = [with_baseline(fake_record("rcma", s, 0.8 + 0.01 * s), ridge(0.6, 0.55))
            for s in range(2)]
    recs.append(fake_record("concat", 0, 0.6, mods=["audio"], new=False))
    failed = copy.deepcopy(recs[0])
    failed.update(status="failed", error="RuntimeError: boom", run_id="f", metrics={},
                  created="2026-01-02T00:00:00Z")
    bench = {"run_id": "b", "kind": "bench", "created": "2026-01-03T00:00:00Z", "config": {}}
    got = rows([*recs, failed, bench])
    order = sorted(recs, key=lambda r: (r["created"], r["run_id"]))  # oldest first, no bench
    assert [r["run_id"] for r in got] == [*(r["run_id"] for r in order), "f"]
    by_id = {r["run_id"]: r for r in got}
    first = by_id[recs[0]["run_id"]]
    assert first["model"] == "rcma" and first["seed"] == 0 and first["dataset"] == "synthetic"
    assert first["ccc.test.mean"] == 0.8 and first["ccc.test.valence"] == 0.8 + 0.05
    assert first["ccc.val.mean"] == 0.8 - 0.02
    assert first["ridge.ccc.test.mean"] == 0.6 and first["ridge.ccc.test.valence"] == 0.7
    assert first["config.model.fusion"] == "rcma" and first["config.train.epochs"] == 1
    assert first["config.data.modalities"] == ("visual", "audio", "text")
    assert first["params"] == 4000 and first["train_fps"] == 1000.0
    assert first["noise_area"] == recs[0]["robustness"]["area"]["all"]
    old = by_id[recs[2]["run_id"]]
    assert old["model"] == "audio only" and "noise_area" not in old  # old format
    assert by_id["f"]["status"] == "failed" and by_id["f"]["error"] == "RuntimeError: boom"
    assert "ccc.test.mean" not in by_id["f"]
    assert [r["run_id"] for r in rows([*recs, bench], kind="bench")] == ["b"]


def test_results_is_a_dataframe_with_pandas(tmp_path):
    pytest.importorskip("pandas")
    from fusion_bench.results import ResultsStore

    store = ResultsStore(tmp_path)
    for s in range(2):
        store.write(fake_record("rcma", s, 0.8 + 0.01 * s))
    store.write(fake_record("concat", 0, 0.6, mods=["audio"]))
    df = fusion_bench.results(tmp_path)
    assert len(df) == 3 and df["ccc.test.mean"].dtype.kind == "f"
    assert df.groupby("model")["ccc.test.mean"].mean()["rcma"] == pytest.approx(0.805)
    assert list(df.columns[:3]) == ["run_id", "created", "status"]


def test_results_without_pandas_names_the_extra(tmp_path, monkeypatch):
    from fusion_bench.results import ResultsStore

    ResultsStore(tmp_path).write(fake_record("rcma", 0, 0.8))
    monkeypatch.setitem(sys.modules, "pandas", None)  # an import of it fails
    with pytest.raises(ImportError, match=re.escape('pip install "fusion-bench-affect[pandas]"')):
        fusion_bench.results(tmp_path)


def test_import_is_light_and_the_modules_stay_modules():
    """`import fusion_bench` loads no torch; sweep and results are callable whichever was
    imported first, and still the modules."""
    code = ("import sys, fusion_bench\n"
            "assert 'torch' not in sys.modules\n"
            "import fusion_bench.results, fusion_bench.sweep\n"  # the import system sets them
            "from fusion_bench import sweep, results\n"
            "assert callable(sweep) and callable(results) and sweep.grid and results.ResultsStore\n"
            "import fusion_bench.api as api\n"
            "assert fusion_bench.run is api.run and fusion_bench.load_model is api.load_model\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]


# -- the README ------------------------------------------------------------------------------------
def readme_blocks() -> tuple[str, str]:
    text = (ROOT / "README.md").read_text()
    (first,) = re.findall(r"```python\n(# notebook\.py.*?)```", text, re.S)
    (second,) = re.findall(r"```python\n(df = fusion_bench\.results.*?)```", text, re.S)
    return first, second


def run_first_block(tmp_path, monkeypatch) -> dict:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_blocks()[0], "README.md", "exec"), namespace)  # noqa: S102 - our README
    return namespace


@pytest.mark.slow
def test_the_readme_python_example_runs_as_printed(tmp_path, monkeypatch, capsys):
    namespace = run_first_block(tmp_path, monkeypatch)
    out = capsys.readouterr().out.splitlines()
    run_id, test_mean = out[0].split()
    assert run_id == namespace["record"]["run_id"] and float(test_mean) == \
        namespace["record"]["metrics"]["test"]["mean"]
    progress = [line for line in out if line.startswith("[")]  # the sweep's line per run
    assert len(progress) == 4 and progress[0] == "[1/4] rcma seed 0: already stored, skipped"
    assert out[-2:] == ["3 1 0", "('valence', 'arousal')"]  # as the README's comments say


@pytest.mark.slow
def test_the_readme_dataframe_example_runs_as_printed(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pandas")
    namespace = run_first_block(tmp_path, monkeypatch)
    capsys.readouterr()
    exec(compile(readme_blocks()[1], "README.md", "exec"), namespace)  # noqa: S102
    table = capsys.readouterr().out
    assert re.search(r"concat\s+\S+\s+\S+\s+2\n", table) and re.search(r"rcma\s+\S+\s+\S+\s+2", table)
