"""The ridge reference rows of a leaderboard (fusion_bench.report.reference), on records
fabricated in memory: values, placement, the 'beats ridge' mark, and records without a
baseline giving the table they always gave."""

from __future__ import annotations

import copy

import pytest

from fusion_bench.report.leaderboard import build_rows, table
from fusion_bench.report.render import MISSING, render

from .test_leaderboard import record


def ridge(test_mean: float, val_mean: float, mods=("visual", "audio", "text"), lam: float = 0.01
          ) -> dict:
    """A recorded baseline: valence = mean + 0.1, arousal = mean − 0.1."""
    def split(m):
        return {"valence": m + 0.1, "arousal": m - 0.1, "mean": m}

    metrics = {"val": split(val_mean), "test": split(test_mean)}
    return {"kind": "ridge", "modalities": list(mods), "lambda": {"valence": lam, "arousal": lam},
            "metrics": metrics, "scores": {"ccc": copy.deepcopy(metrics)}}


def with_baseline(rec: dict, base: dict) -> dict:
    rec = copy.deepcopy(rec)
    rec["baseline"] = copy.deepcopy(base)
    return rec


def rows_of(records):
    (rows,) = build_rows(records).values()
    return rows


def by_label(headers, body):
    return {cells[0]: dict(zip(headers, cells, strict=True)) for cells in body}


def test_the_ridge_row_shows_the_recorded_fit_and_marks_the_rows_below_it():
    base = ridge(0.6, 0.55)
    recs = [with_baseline(record(f, s, m), base)
            for f, m in (("rcma", 0.8), ("concat", 0.5)) for s in range(3)]
    headers, body, caption = table(rows_of(recs))
    assert headers[headers.index("≈ best") + 1] == "beats ridge"
    assert [c[0] for c in body] == ["rcma", "ridge (linear)", "concat"]  # at its test mean
    cells = by_label(headers, body)
    r = cells["ridge (linear)"]
    assert (r["n"], r["test valence"], r["test arousal"], r["test mean"], r["val mean"]) == \
        ("1", "0.700", "0.500", "0.600", "0.550")  # one fit, counted once over six records
    assert r["≈ best"] == r["beats ridge"] == r["params"] == MISSING
    assert cells["rcma"]["beats ridge"] == "yes" and cells["concat"]["beats ridge"] == "no"
    assert "'ridge (linear)': the ridge regression each run fitted" in caption
    assert "mean ± sd over the fits" not in caption
    for fmt in ("md", "csv", "latex", "html"):
        assert "ridge (linear)" in render(headers, body, caption, fmt)


def test_a_row_equal_to_the_ridge_does_not_beat_it():
    recs = [with_baseline(record("concat", s, 0.5), ridge(0.5, 0.5)) for s in range(2)]
    headers, body, _ = table(rows_of(recs))
    assert [c[0] for c in body] == ["ridge (linear)", "concat"]
    assert by_label(headers, body)["concat"]["beats ridge"] == "no"


def test_records_without_a_baseline_give_the_table_they_always_gave():
    """No ridge row, no column, no caption sentence: the table of baseline-carrying records
    with those removed is the table of the same records without baselines."""
    plain = [record(f, s, m) for f, m in (("rcma", 0.8), ("concat", 0.5)) for s in range(3)]
    headers, body, caption = table(rows_of(plain))
    assert "beats ridge" not in headers and not any("ridge" in c[0] for c in body)
    assert "ridge" not in caption
    h2, b2, c2 = table(rows_of([with_baseline(r, ridge(0.6, 0.55)) for r in plain]))
    col = h2.index("beats ridge")
    assert [h for i, h in enumerate(h2) if i != col] == headers
    assert [[x for i, x in enumerate(c) if i != col] for c in b2 if "ridge" not in c[0]] == body
    assert c2.startswith(caption) and c2 != caption


def test_each_row_is_judged_against_the_ridge_of_its_own_modalities():
    """A one-modality run's probe sees that modality only: 'visual only' at 0.35 beats the
    visual ridge (0.3) though not the three-modality one (0.6); each set gets its own row."""
    full, visual = ridge(0.6, 0.55), ridge(0.3, 0.3, mods=("visual",))
    recs = [with_baseline(record("rcma", s, 0.8), full) for s in range(3)]
    recs += [with_baseline(record("x", s, 0.35, mods=("visual",)), visual) for s in range(3)]
    headers, body, _ = table(rows_of(recs))
    assert [c[0] for c in body] == ["rcma", "ridge (linear)", "visual only",
                                    "ridge (linear, visual only)"]
    cells = by_label(headers, body)
    assert cells["visual only"]["beats ridge"] == "yes"
    assert cells["ridge (linear, visual only)"]["test mean"] == "0.300"


def test_distinct_fits_of_one_modality_set_are_pooled_and_said_so():
    """Runs on two data draws (two rows, two ridge fits): the ridge row counts each fit once
    (n = 2, mean ± sd), and each row is still judged against its own data's fit."""
    a, b = ridge(0.6, 0.55), ridge(0.4, 0.45, lam=1.0)
    recs = [with_baseline(record("rcma", s, 0.5), a) for s in range(3)]
    for s in range(3):
        rec = with_baseline(record("rcma", s, 0.5), b)
        rec["config"]["data"]["seed"] = 1
        rec["run_id"] += "-data1"
        recs.append(rec)
    headers, body, caption = table(rows_of(recs))
    cells = by_label(headers, body)
    r = cells["ridge (linear)"]
    assert r["n"] == "2" and r["test mean"] == "0.500 ± 0.141"
    marks = sorted(c["beats ridge"] for c in cells.values() if c["model"].startswith("rcma"))
    assert marks == ["no", "yes"]  # 0.5 < 0.6 on the first draw, 0.5 > 0.4 on the second
    assert "mean ± sd over the fits" in caption


def test_a_lower_is_better_metric_beats_the_ridge_by_being_lower():
    recs = []
    for f, err in (("rcma", 0.2), ("concat", 0.4)):
        for s in range(2):
            rec = record(f, s, 0.5)
            rec["scores"] = {"rmse": {sp: {"valence": err, "arousal": err, "mean": err}
                                      for sp in ("val", "test")}}
            base = ridge(0.6, 0.55)
            base["scores"]["rmse"] = {sp: {"valence": 0.3, "arousal": 0.3, "mean": 0.3}
                                      for sp in ("val", "test")}
            recs.append(with_baseline(rec, base))
    headers, body, _ = table(rows_of(recs), metric="rmse", higher_is_better=False)
    assert [c[0] for c in body] == ["rcma", "ridge (linear)", "concat"]
    cells = by_label(headers, body)
    assert cells["ridge (linear)"]["test mean"] == "0.300"
    assert cells["rcma"]["beats ridge"] == "yes" and cells["concat"]["beats ridge"] == "no"


@pytest.mark.parametrize("sort", ["params", "infer_fps"])
def test_sorted_by_a_cost_the_ridge_rows_go_last(sort):
    recs = [with_baseline(record(f, s, m), ridge(0.6, 0.55))
            for f, m in (("rcma", 0.8), ("concat", 0.5)) for s in range(2)]
    _, body, _ = table(rows_of(recs), sort=sort)
    assert body[-1][0] == "ridge (linear)" and len(body) == 3
