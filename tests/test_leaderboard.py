"""Leaderboard columns for robustness, FLOPs and inference speed, and the plots, on records
fabricated in memory (the shape of a committed record, made-up numbers)."""

import csv
import io
import sys

import numpy as np
import pytest

from fusion_bench.errors import FusionBenchError
from fusion_bench.report import plots
from fusion_bench.report.leaderboard import build_rows, modality_order, table
from fusion_bench.report.render import MISSING, human, render
from fusion_bench.results import ResultsStore

MODS = ["visual", "audio", "text"]
LEVELS = [0.0, 0.25, 0.5, 1.0, 2.0]


def _ccc(mean: float) -> dict:
    return {"valence": mean + 0.05, "arousal": mean - 0.05, "mean": mean}


def _area(means: list[float]) -> float:
    y = np.asarray(means)
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(LEVELS)) / (LEVELS[-1] - LEVELS[0]))


def record(fusion: str, seed: int, mean: float, mods=tuple(MODS), new: bool = True) -> dict:
    """A run record; ``new=False`` gives the older format without robustness and FLOPs."""
    mods = list(mods)
    rec = {
        "run_id": f"20260101T000000Z-{fusion}-{'+'.join(mods)}-s{seed}",
        "status": "ok",
        "created": f"2026-01-01T00:00:{seed:02d}Z",
        "config": {"seed": seed, "device": "auto", "data": {"name": "synthetic", "seed": 0,
                   "modalities": mods}, "model": {"fusion": fusion}, "train": {"epochs": 1}},
        "config_hash": f"{fusion}{len(mods)}{mods[0]}{seed}",
        "dataset": {"name": "synthetic", "version": "1"},
        "environment": {"fusion_bench": "0.1.0", "commit": "abc", "device": "cpu",
                        "device_name": "x86_64"},
        "metrics": {"test": _ccc(mean), "val": _ccc(mean - 0.02)},
        "params": {"total": 1000 * len(fusion)},
        "throughput": {"train_frames_per_s": 1000.0 * (seed + 1),
                       "eval_frames_per_s": 5000.0 * (seed + 1) / len(mods), "device": "cpu"},
    }
    if new:
        curve = [_ccc(mean - 0.1 * lv) for lv in LEVELS]
        noise = {m: curve for m in mods} | {"all": [_ccc(mean - 0.2 * lv) for lv in LEVELS]}
        rec["robustness"] = {
            "split": "test", "noise_levels": LEVELS,
            "drop": {m: _ccc(mean - 0.1 * (i + 1)) for i, m in enumerate(mods)} if len(mods) > 1 else {},
            "noise": noise,
            "area": {m: _area([c["mean"] for c in v]) for m, v in noise.items()},
        }
        rec["flops_per_window"] = {"inference": 12_345_678 * len(mods), "train": 3 * 12_345_678}
    return rec


@pytest.fixture
def records():
    return ([record("rcma", s, 0.80 + 0.01 * s) for s in range(3)]
            + [record("concat", s, 0.70 + 0.02 * s) for s in range(3)]
            + [record("lstm", s, 0.75, new=False) for s in range(3)]
            + [record("concat", s, 0.6, mods=["audio"]) for s in range(2)])


def parsed(rows, sort="test_mean", fmt="csv") -> dict[str, dict[str, str]]:
    """label → header → cell, read back from the rendered csv or markdown."""
    headers, body, caption = table(rows, sort)
    text = render(headers, body, caption, fmt)
    if fmt == "csv":
        lines = list(csv.reader(io.StringIO(text)))
    else:
        lines = [[c.strip() for c in ln.strip("|").split("|")] for ln in text.splitlines()
                 if ln.startswith("|")]
        del lines[1]  # the |---| rule
    assert lines[0] == headers
    return {r[0]: dict(zip(headers, r, strict=True)) for r in lines[1:]}


def mean_pm(xs):
    return f"{np.mean(xs):.3f} ± {np.std(xs, ddof=1):.3f}"


@pytest.mark.parametrize("fmt", ["csv", "md"])
def test_new_columns_hold_the_records_numbers(records, fmt):
    rows = build_rows(records)["synthetic"]
    got = parsed(rows, fmt=fmt)
    rcma = [r for r in records if r["config"]["model"]["fusion"] == "rcma"]
    for m in MODS:
        assert got["rcma"][f"drop {m}"] == mean_pm([r["robustness"]["drop"][m]["mean"] for r in rcma])
    assert got["rcma"]["noise area"] == mean_pm([r["robustness"]["area"]["all"] for r in rcma])
    assert got["rcma"]["FLOPs/window"] == "37.0 M"  # 3 × 12,345,678
    assert got["audio only"]["FLOPs/window"] == "12.3 M"
    fps = np.median([r["throughput"]["eval_frames_per_s"] for r in rcma])
    assert got["rcma"]["infer frames/s"] == f"{fps:,.0f} (cpu)"
    assert got["rcma"]["train frames/s"] == "2,000 (cpu)"
    # a single-modality run has nothing to drop; its noise area is that of its one input
    assert [got["audio only"][f"drop {m}"] for m in MODS] == [MISSING] * 3
    assert got["audio only"]["noise area"] != MISSING


def test_old_records_show_a_dash_not_a_crash(records):
    rows = build_rows(records)["synthetic"]
    lstm = parsed(rows)["lstm"]
    for col in ["drop visual", "drop audio", "drop text", "noise area", "FLOPs/window"]:
        assert lstm[col] == MISSING
    assert lstm["test mean"].startswith("0.750") and lstm["infer frames/s"].endswith("(cpu)")
    # a row mixing formats says how many seeds the value comes from
    mixed = build_rows(records[:2] + [record("rcma", 2, 0.9, new=False)])["synthetic"]
    cell = parsed(mixed)["rcma"]["noise area"]
    assert cell.endswith("(n=2)") and float(cell.split("±")[0]) == pytest.approx(
        np.mean([r["robustness"]["area"]["all"] for r in records[:2]]), abs=5e-4)
    # only old records: every new column is a dash and the caption says what a dash means
    headers, body, caption = table(build_rows([record("lstm", 0, 0.7, new=False)])["synthetic"])
    assert f"'{MISSING}': not in the records" in caption and "'drop m'" in caption
    assert "--" in render(headers, body, caption, "latex")  # the dash, in LaTeX


def test_modality_columns_are_the_union_in_a_stable_order(records):
    rows = build_rows(records)["synthetic"]
    assert modality_order(rows) == MODS
    assert modality_order(rows[::-1]) == MODS
    assert table(rows)[0][7:10] == [f"drop {m}" for m in MODS]
    only = build_rows([record("concat", 0, 0.6, mods=["audio"])])["synthetic"]
    assert [h for h in table(only)[0] if h.startswith("drop")] == ["drop audio"]


def test_sort_by_new_columns(records):
    rows = build_rows(records)["synthetic"]
    order = list(parsed(rows, sort="noise_area"))
    areas = {r.label: np.mean(r.values("noise_area")) for r in rows if r.values("noise_area")}
    assert order == sorted(areas, key=lambda k: -areas[k]) + ["lstm"]  # missing values last
    by_flops = list(parsed(rows, sort="flops"))
    assert by_flops[0] == "audio only" and by_flops[-1] == "lstm"  # cheapest first, missing last
    assert list(parsed(rows, sort="drop_text"))[0] == "rcma"
    with pytest.raises(ValueError, match="noise_area.*got 'area'"):
        table(rows, sort="area")


def test_cli_sort_error_lists_valid_columns(records, tmp_path, cli_run):
    store = ResultsStore(tmp_path)
    for r in records:
        store.write(r)
    code, _, err = cli_run("leaderboard", "--out", tmp_path, "--sort", "nope")
    assert code == 2 and "drop_visual" in err and "noise_area" in err and "infer_fps" in err
    code, out, err = cli_run("leaderboard", "--out", tmp_path, "--sort", "noise_area")
    assert code == 0, err
    assert out.index("| rcma") < out.index("| concat") < out.index("| lstm")


def test_human():
    assert [human(x) for x in (950, 12_345, 12_345_678, 2.5e9, 3e12)] == [
        "950", "12.3 k", "12.3 M", "2.5 G", "3.0 T"]


@pytest.mark.parametrize("points, front", [
    ([(1, 0.9), (2, 0.8), (3, 0.7)], [0, 1, 2]),  # a trade-off: all on the front
    ([(1, 0.5), (2, 0.8), (3, 0.7), (0.5, 0.4)], [1, 2]),  # 0 and 3 slower and worse than 1
    ([(2, 0.8), (2, 0.8), (1, 0.8)], [0, 1]),  # equal points both stay; 2 is equally good, slower
    ([(1, 0.9), (1, 0.7)], [0]),  # same speed: the better one
    ([], []),
])
def test_pareto_front(points, front):
    assert plots.pareto_front(points) == front


def _is_png(path):
    data = path.read_bytes()
    return data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_pareto_plot(records, tmp_path):
    pytest.importorskip("matplotlib")
    rows = build_rows(records)["synthetic"]
    res = plots.pareto(rows, tmp_path / "p.png")
    assert _is_png(tmp_path / "p.png") and res.left_out == []
    pts = res.series["pareto"]
    assert len(pts) == len(rows) == 4
    rcma = next(r for r in rows if r.label == "rcma")
    assert pts["rcma"][1] == pytest.approx(np.mean(rcma.values("test_mean")))
    assert pts["rcma"][0] == pytest.approx(np.median(rcma.values("infer_fps")))
    # audio only: fastest (one modality); rcma: best CCC; the other two are dominated by rcma
    assert res.front == ["rcma", "audio only"]
    # the same rows give the same bytes
    plots.pareto(rows, tmp_path / "q.png")
    assert (tmp_path / "p.png").read_bytes() == (tmp_path / "q.png").read_bytes()


def test_pareto_leaves_out_rows_without_throughput(records, tmp_path):
    pytest.importorskip("matplotlib")
    for r in records[:3]:
        del r["throughput"]
    res = plots.pareto(build_rows(records)["synthetic"], tmp_path / "p.png")
    assert res.left_out == ["rcma"] and "rcma" not in res.series["pareto"]
    for r in records:
        r.pop("throughput", None)
    res = plots.pareto(build_rows(records)["synthetic"], tmp_path / "none.png")
    assert res.path is None and not (tmp_path / "none.png").exists()


def test_noise_curves(records, tmp_path):
    pytest.importorskip("matplotlib")
    rows = build_rows(records)["synthetic"]
    res = plots.noise_curves(rows, tmp_path / "n.png")
    assert _is_png(tmp_path / "n.png")
    assert list(res.series) == [*MODS, "all"] and res.left_out == ["lstm"]
    assert sorted(res.series["all"]) == ["audio only", "concat", "rcma"]
    assert sorted(res.series["visual"]) == ["concat", "rcma"]
    levels, mean, std = res.series["all"]["rcma"]
    rcma = [r for r in records if r["config"]["model"]["fusion"] == "rcma"]
    per_seed = [[p["mean"] for p in r["robustness"]["noise"]["all"]] for r in rcma]
    assert levels == LEVELS and len(mean) == len(std) == len(LEVELS)
    assert mean == pytest.approx(np.mean(per_seed, 0).tolist())
    assert std == pytest.approx(np.std(per_seed, 0, ddof=1).tolist())


def test_cli_plots(records, tmp_path, cli_run):
    pytest.importorskip("matplotlib")
    store = ResultsStore(tmp_path / "store")
    for r in records:
        store.write(r)
    code, out, err = cli_run("leaderboard", "--out", store.root, "--tables", tmp_path / "o",
                             "--plots", tmp_path / "plots")
    assert code == 0, err
    assert _is_png(tmp_path / "plots" / "pareto_synthetic.png")
    assert _is_png(tmp_path / "plots" / "noise_synthetic.png")
    assert "left out (no robustness.noise): lstm" in out
    old = ResultsStore(tmp_path / "old")  # no row has robustness: that plot is skipped
    old.write(record("lstm", 0, 0.7, new=False))
    code, out, err = cli_run("leaderboard", "--out", old.root, "--plots", tmp_path / "p2")
    assert code == 0, err
    assert "skipped noise_synthetic.png" in out and not (tmp_path / "p2" / "noise_synthetic.png").exists()
    assert (tmp_path / "p2" / "pareto_synthetic.png").exists()


def test_missing_matplotlib_is_a_clear_error(records, tmp_path, monkeypatch, cli_run):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    with pytest.raises(FusionBenchError, match=r'pip install "fusion-bench-affect\[plots\]"'):
        plots.pareto(build_rows(records)["synthetic"], tmp_path / "p.png")
    store = ResultsStore(tmp_path / "store")
    store.write(records[0])
    code, _, err = cli_run("leaderboard", "--out", store.root, "--tables", tmp_path / "o",
                           "--plots", tmp_path / "p")
    assert code == 2 and 'pip install "fusion-bench-affect[plots]"' in err
    assert not (tmp_path / "o").exists()  # failed before writing any table


def test_a_seed_rerun_with_robustness_replaces_its_older_record():
    old = [record("concat", s, 0.7, new=False) for s in range(3)]
    new = record("concat", 1, 0.72)
    new["created"], new["run_id"] = "2026-02-01T00:00:00Z", new["run_id"] + "-rerun"
    new["config"]["robustness"] = {"enabled": True, "levels": LEVELS}
    (rows,) = build_rows(old + [new]).values()
    assert len(rows) == 1  # robustness settings do not split a configuration
    assert [r["config"]["seed"] for r in rows[0].records] == [0, 1, 2]
    assert rows[0].records[1] is new


def test_a_later_plain_rerun_does_not_hide_robustness_results():
    robust = [record("concat", s, 0.7) for s in range(3)]
    plain = record("concat", 0, 0.7, new=False)
    plain["created"], plain["run_id"] = "2026-03-01T00:00:00Z", plain["run_id"] + "-plain"
    (rows,) = build_rows(robust + [plain]).values()
    assert all("robustness" in r for r in rows[0].records)


def test_two_versions_of_a_dataset_never_share_a_row_nor_a_table():
    old = [record("concat", s, 0.7) for s in range(2)]
    new = [record("concat", s, 0.8) for s in range(2)]
    for r in new:
        r["dataset"]["version"], r["run_id"] = "2", r["run_id"] + "-v2"
    tables = build_rows(old + new)
    assert len(tables) == 2 and all(k.startswith("synthetic-") for k in tables)
    assert all(len(rows) == 1 and len(rows[0].records) == 2 for rows in tables.values())
    assert {round(rows[0].summary("test_mean"), 6) for rows in tables.values()} == {0.7, 0.8}
    assert list(build_rows(old)) == ["synthetic"]  # one draw in the store: the dataset's name


def _pair(best_means, other_means):
    from fusion_bench.report.leaderboard import Row

    def row(means):
        return Row("x", "synthetic", [{"config": {"seed": s}, "metrics": {"test": {"mean": m}}}
                                      for s, m in enumerate(means)])

    return row(best_means), row(other_means)


def test_paired_test_holds_its_level_with_few_seeds():
    from fusion_bench.report.leaderboard import paired_indistinguishable
    from fusion_bench.report.statistics import t975

    assert (t975(2), t975(4), t975(30)) == (4.303, 2.776, 2.042)
    assert abs(t975(60) - 2.000) < 1e-3 and abs(t975(10**6) - 1.960) < 1e-4
    rng = np.random.default_rng(0)
    for n in (3, 5, 8):  # no true difference: "different" at about the nominal 5 %
        separated = np.mean([not paired_indistinguishable(*_pair(rng.normal(0, 1, n),
                                                                 rng.normal(0, 1, n)))
                             for _ in range(2000)])
        assert 0.03 < separated < 0.07, (n, separated)
    # the committed rcma − lstm differences (t = 2.57 < 2.776 with 4 df): not separated
    d = [0.009, 0.0318, 0.0102, -0.0002, 0.0299]
    assert paired_indistinguishable(*_pair(d, [0.0] * 5))
    assert not paired_indistinguishable(*_pair([x + 0.02 for x in d], [0.0] * 5))
    assert paired_indistinguishable(*_pair([0.5, 0.6], [0.4, 0.5])) is None  # 2 seeds: '?'


def test_a_row_scored_at_different_noise_levels_shows_no_mixed_area():
    recs = [record("concat", s, 0.7) for s in range(2)]
    recs[1]["robustness"]["noise_levels"] = [0.0, 1.0, 3.0]
    rows = build_rows(recs)["synthetic"]
    headers, body, caption = table(rows)
    assert body[0][headers.index("noise area")] == "mixed levels"
    assert "levels 0, 0.25" not in caption  # no single set of levels claimed
    same = build_rows([record("concat", s, 0.7) for s in range(2)])["synthetic"]
    headers, body, caption = table(same)
    assert body[0][headers.index("noise area")] != "mixed levels" and "levels 0, 0.25" in caption


def test_rows_at_different_noise_levels_name_their_levels_and_nan_is_not_a_verdict():
    from fusion_bench.report.leaderboard import paired_indistinguishable
    from fusion_bench.report.statistics import t975

    a = [record("concat", s, 0.7) for s in range(2)]
    b = [record("rcma", s, 0.8) for s in range(2)]
    for r in b:
        r["robustness"]["noise_levels"] = [0.0, 1.0, 3.0]
    headers, body, caption = table(build_rows(a + b)["synthetic"])
    cells = [row[headers.index("noise area")] for row in body]
    assert sorted(c.split("(levels ")[1] for c in cells) == ["0, 0.25, 0.5, 1, 2)", "0, 1, 3)"]
    best, other = _pair([0.5, 0.6, 0.7, float("nan")], [0.4, 0.5, 0.6, 0.5])
    assert paired_indistinguishable(best, other) is False  # 3 finite pairs, all +0.1
    best, other = _pair([0.5, float("nan"), 0.7], [0.4, 0.5, 0.6])
    assert paired_indistinguishable(best, other) is None  # 2 finite pairs: '?'
    with pytest.raises(ValueError):
        t975(0)


# ------------------------------------------------------------------------------ --metric


def scored(fusion: str, seed: int, ccc_mean: float, rmse_mean: float) -> dict:
    """A record with the `scores` section: CCC as in `metrics`, and RMSE."""
    rec = record(fusion, seed, ccc_mean)
    rec["scores"] = {"ccc": rec["metrics"],
                     "rmse": {"test": _ccc(rmse_mean), "val": _ccc(rmse_mean + 0.02)}}
    rec["metric_info"] = {"ccc": {"higher_is_better": True}, "rmse": {"higher_is_better": False}}
    return rec


RMSE = {"rcma": [0.30, 0.31, 0.32], "concat": [0.20, 0.21, 0.22], "lstm": [0.20, 0.24, 0.22]}
CCC = {"rcma": 0.80, "concat": 0.70, "lstm": 0.75}


@pytest.fixture
def scored_records():
    return [scored(f, s, CCC[f] + 0.01 * s, RMSE[f][s]) for f in RMSE for s in range(3)]


def test_rmse_ranks_lowest_first_and_its_best_is_the_lowest(scored_records):
    rows = build_rows(scored_records)["synthetic"]
    headers, body, caption = table(rows, metric="rmse", higher_is_better=False)
    got = {r[0]: dict(zip(headers, r, strict=True)) for r in body}
    assert [r[0] for r in body] == ["concat", "lstm", "rcma"]  # test mean 0.21, 0.22, 0.31
    assert got["concat"]["test mean"] == mean_pm(RMSE["concat"])
    assert got["rcma"]["val mean"] == mean_pm(np.add(RMSE["rcma"], 0.02))
    assert got["concat"]["test valence"] == mean_pm(np.add(RMSE["concat"], 0.05))
    # ≈ best against the lowest RMSE: lstm − concat = (0, .03, 0), mean .01 within ± t·sd/√3 =
    # ± 4.303 · .0173 / 1.73 = ± .043: indistinguishable; rcma − concat = .1 on every seed: not
    assert [got[k]["≈ best"] for k in ("concat", "lstm", "rcma")] == ["best", "yes", "no"]
    assert caption.startswith("Dataset synthetic v1 (data seed 0). Metric rmse (lower is better) "
                              "as mean ± sample standard deviation")
    # other columns keep their own direction: the noise area (CCC) highest first
    assert [r[0] for r in table(rows, sort="noise_area", metric="rmse", higher_is_better=False)[1]
            ] == ["rcma", "lstm", "concat"]
    # the same records under CCC rank the other way, CCC read from `scores`
    _, body, caption = table(rows)
    assert [r[0] for r in body] == ["rcma", "lstm", "concat"] and caption.count("CCC as mean") == 1


def test_old_records_without_scores_still_make_the_ccc_table(scored_records):
    old = [record("cross_attention", s, 0.9 + 0.01 * s, new=False) for s in range(3)]
    for r in old:
        assert "scores" not in r
    rows = build_rows(scored_records + old)["synthetic"]
    got = {r[0]: r for r in table(rows)[1]}
    assert list(got) == ["cross_attention", "rcma", "lstm", "concat"]
    assert got["cross_attention"][4] == mean_pm([0.90, 0.91, 0.92])  # from `metrics`
    # under RMSE the old row has no value: a dash, ranked last, never the best
    _, body, _ = table(rows, metric="rmse", higher_is_better=False)
    assert [r[0] for r in body][-1] == "cross_attention" and body[-1][4] == MISSING
    assert body[0][0] == "concat" and body[0][6] == "best"


def test_cli_metric(scored_records, tmp_path, cli_run):
    store = ResultsStore(tmp_path / "new")
    for r in scored_records:
        store.write(r)
    code, out, err = cli_run("leaderboard", "--out", tmp_path / "new", "--metric", "rmse")
    assert code == 0, err
    assert out.index("| concat") < out.index("| lstm") < out.index("| rcma")
    assert "Metric rmse (lower is better)" in out
    old = ResultsStore(tmp_path / "old")
    old.write(record("lstm", 0, 0.7, new=False))
    code, out, err = cli_run("leaderboard", "--out", tmp_path / "old")
    assert code == 0 and "| lstm" in out and "CCC as mean" in out, err
    code, _, err = cli_run("leaderboard", "--out", tmp_path / "old", "--metric", "rmse")
    assert code != 0 and "recorded metric 'rmse'" in err
    # the direction comes from the records: flipped there, the table ranks the other way
    flipped = ResultsStore(tmp_path / "flipped")
    for r in scored_records:
        r["metric_info"]["rmse"]["higher_is_better"] = True
        flipped.write(r)
    code, out, err = cli_run("leaderboard", "--out", tmp_path / "flipped", "--metric", "rmse")
    assert code == 0 and out.index("| rcma") < out.index("| concat"), err
    code, _, err = cli_run("leaderboard", "--out", tmp_path / "new", "--metric", "rmsee")
    assert code == 2 and "did you mean rmse" in err
