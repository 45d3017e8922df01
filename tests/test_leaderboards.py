"""The committed leaderboards are exactly what `fusion-bench leaderboard` makes of the committed
records (byte for byte)."""

from pathlib import Path

import pytest

from fusion_bench.report.formats import render_table
from fusion_bench.report.leaderboard import build_rows, build_table
from fusion_bench.results import ResultsStore

ROOT = Path(__file__).resolve().parent.parent / "leaderboards"
FOLDERS = sorted(p.parent for p in ROOT.glob("*/runs")) if ROOT.exists() else []
EXT = {"md": "md", "csv": "csv", "latex": "tex"}


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
@pytest.mark.parametrize("fmt", list(EXT))
def test_committed_leaderboard_regenerates(folder, fmt):
    for ds, rows in build_rows(ResultsStore(folder).records()).items():
        committed = folder / f"leaderboard_{ds}.{EXT[fmt]}"
        assert committed.exists(), f"{committed} missing; regenerate (leaderboards/README.md)"
        assert committed.read_text() == render_table(build_table(rows), fmt)


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
@pytest.mark.parametrize("fmt", list(EXT))
def test_committed_metric_tables_regenerate(folder, fmt):
    """``leaderboard --metric NAME --tables DIR`` files (``leaderboard_<dataset>_<NAME>.<ext>``,
    e.g. MMSA's metrics beside a sequence-level CCC table) are what the command writes."""
    from fusion_bench.report.leaderboard import metric_direction

    records = ResultsStore(folder).records()
    for ds, rows in build_rows(records).items():
        for path in folder.glob(f"leaderboard_{ds}_*.{EXT[fmt]}"):
            metric = path.stem[len(f"leaderboard_{ds}_"):]
            table = build_table(rows, metric=metric,
                                higher_is_better=metric_direction(records, metric))
            assert path.read_text() == render_table(table, fmt), path


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
@pytest.mark.parametrize("fmt", list(EXT))
def test_committed_throughput_table_regenerates(folder, fmt):
    from fusion_bench.report import bench_table

    for name, rows in bench_table.build_tables(ResultsStore(folder).records()).items():
        committed = folder / f"throughput_{name}.{EXT[fmt]}"
        assert committed.exists(), f"{committed} missing; regenerate (leaderboards/README.md)"
        assert committed.read_text() == bench_table.render_table(rows, fmt)


def test_every_committed_folder_has_a_table():
    from fusion_bench.report import bench_table

    for folder in FOLDERS:
        records = ResultsStore(folder).records()
        assert build_rows(records) or bench_table.build_tables(records), folder


def test_old_and_new_record_layouts_of_one_configuration_share_a_row():
    """A committed record (made before plugin options: ``fusion: {options}``, a ``synthetic``
    section) and a record of the same configuration in today's layout (``fusion: {name:
    options}``, ``dataset``) are one configuration: one row, its seeds pooled."""
    import copy

    from fusion_bench.config import RunConfig

    folder = ROOT / "synthetic-cpu-long"  # records of 2026-11-30, in the layout of that day
    old = next(r for r in ResultsStore(folder).records() if r["config"]["model"]["fusion"] == "rcma")
    assert "synthetic" in old["config"] and "dataset" not in old["config"]
    new = copy.deepcopy(old)
    new["config"] = RunConfig.from_dict(old["config"]).to_dict()
    assert "dataset" in new["config"] and new["config"] != old["config"]
    new["config"]["seed"] = 99
    new["run_id"] = old["run_id"] + "-new-layout"
    (rows,) = build_rows([old, new]).values()
    assert len(rows) == 1 and [r["config"]["seed"] for r in rows[0].records] == [old["config"]["seed"], 99]
    other = copy.deepcopy(new)  # a different configuration still gets its own row
    other["config"]["train"]["lr"] = 0.5
    other["run_id"] += "-other"
    assert len(next(iter(build_rows([old, new, other]).values()))) == 2


def test_the_plugin_package_row_compares_like_with_like():
    """The MulT row of synthetic-cpu/ is the third-party path to a table: 5 seeds of the plugin
    package's fusion, loaded from its entry point (not a built-in), in the configuration of the
    built-in rows but for the fusion and its own options, and labelled by the fusion alone."""
    from fusion_bench.report.grouping import flatten, row_config

    records = ResultsStore(ROOT / "synthetic-cpu").records()
    mult = [r for r in records if r["config"]["model"]["fusion"] == "mult"]
    concat = [r for r in records if r["config"]["model"]["fusion"] == "concat"]
    assert sorted(r["config"]["seed"] for r in mult) == [0, 1, 2, 3, 4]
    assert {r["plugins"]["fusion"]["plugin"] for r in mult} == {"mult"}
    for rec in mult + concat:
        assert rec["status"] == "ok"
    ours, theirs = flatten(row_config(mult[0])), flatten(row_config(concat[0]))
    differing = {k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)}
    assert differing == {"model.fusion"} | {k for k in differing if k.startswith("fusion.mult.")}
    (rows,) = build_rows(records).values()
    assert "mult" in [row.label for row in rows]
