import csv
import io
import re

import pytest

from fusion_bench import sweep as sweep_mod
from fusion_bench.leaderboard import build_rows, render, table
from fusion_bench.plugins import load_registry
from fusion_bench.results import ResultsStore

from .conftest import tiny_overrides


def configs(fusions=("concat", "lstm"), seeds=(0, 1)):
    return sweep_mod.grid(list(fusions), list(seeds), tiny_overrides(), "quick", None)


def test_interrupted_sweep_resumes_with_only_the_missing_runs(tmp_path, monkeypatch):
    store, reg = ResultsStore(tmp_path), load_registry(entry_points=False)
    cfgs = configs()
    real = sweep_mod.run_and_store
    calls = []

    def dies_on_third(cfg, reg, store):
        calls.append(cfg.hash())
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C / kill in the middle of run 3
        return real(cfg, reg, store)

    monkeypatch.setattr(sweep_mod, "run_and_store", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        sweep_mod.sweep(cfgs, reg, store, echo=lambda *_: None)
    assert len(store.records()) == 2  # the interrupted run left nothing
    monkeypatch.setattr(sweep_mod, "run_and_store", real)
    res = sweep_mod.sweep(cfgs, reg, store, echo=lambda *_: None)
    assert (res.done, res.skipped, res.failed) == (2, 2, 0)
    assert sorted(r["config_hash"] for r in store.records()) == sorted(c.hash() for c in cfgs)


def test_failed_run_is_recorded_and_sweep_continues(tmp_path, monkeypatch):
    store, reg = ResultsStore(tmp_path), load_registry(entry_points=False)
    cfgs = configs(fusions=("concat",), seeds=(0, 1))
    cfgs[0].fusion["no_such_option"] = 1  # first run fails when the model is built
    res = sweep_mod.sweep(cfgs, reg, store, echo=lambda *_: None)
    assert (res.done, res.failed) == (1, 1)
    statuses = sorted(r["status"] for r in store.records())
    assert statuses == ["failed", "ok"]
    failed = next(r for r in store.records() if r["status"] == "failed")
    assert "no_such_option" in failed["error"]
    assert not store.has(cfgs[0].hash())  # a failed run is retried by the next sweep


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory):
    store = ResultsStore(tmp_path_factory.mktemp("store"))
    cfgs = sweep_mod.grid(["concat", "rcma", "only:audio"], [0, 1, 2], tiny_overrides(), "quick", None)
    sweep_mod.sweep(cfgs, load_registry(entry_points=False), store, echo=lambda *_: None)
    return store


def _stored_means(store):
    out = {}
    for r in store.records():
        mods = r["config"]["data"]["modalities"]
        label = f"{mods[0]} only" if len(mods) == 1 else r["config"]["model"]["fusion"]
        out.setdefault(label, []).append(r["metrics"]["test"]["mean"])
    return {k: sum(v) / len(v) for k, v in out.items()}


def test_tables_parse_back_to_the_stored_numbers(filled_store):
    rows = build_rows(filled_store.records())["synthetic"]
    headers, body, caption = table(rows)
    expected = _stored_means(filled_store)
    assert "sample standard deviation" in caption and "n model seeds" in caption
    col = headers.index("test mean")
    # CSV
    parsed = list(csv.reader(io.StringIO(render(headers, body, caption, "csv"))))
    assert parsed[0] == headers
    got = {r[0]: float(r[col].split("±")[0]) for r in parsed[1:]}
    assert got.keys() == expected.keys()
    for k in got:
        assert got[k] == pytest.approx(expected[k], abs=5e-4)
        assert [r for r in parsed[1:] if r[0] == k][0][1] == "3"
    # Markdown
    md = render(headers, body, caption, "md")
    md_rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()[2:] if line.startswith("|")]
    assert {r[0]: float(r[col].split("±")[0]) for r in md_rows} == got
    # LaTeX
    tex = render(headers, body, caption, "latex")
    tex_rows = [line.rstrip("\\ ").split("&") for line in tex.splitlines() if line.count("&") == len(headers) - 1]
    tex_vals = {r[0].strip(): float(re.split(r"\$\\pm\$", r[col])[0]) for r in tex_rows[1:]}
    assert tex_vals == got


def test_leaderboard_regenerates_byte_for_byte(filled_store, tmp_path, cli_run):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        code, _, err = cli_run("leaderboard", "--results", filled_store.root, "--out", out)
        assert code == 0, err
    assert (a / "leaderboard_synthetic.md").read_bytes() == (b / "leaderboard_synthetic.md").read_bytes()


def test_leaderboard_on_empty_store_is_a_clear_error(tmp_path, cli_run):
    code, _, err = cli_run("leaderboard", "--results", tmp_path)
    assert code == 2 and "no successful runs" in err
