"""Leaderboards as data (fusion_bench.report.table, .formats): the CSV's numbers, the JSON's
rows, the LaTeX table's rules, bold best values and label, on records fabricated in memory
whose means and stds are worked out by hand below."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import re

import numpy as np
import pytest

from fusion_bench.report.formats import csv_text, json_text, latex
from fusion_bench.report.leaderboard import build_rows, build_table
from fusion_bench.results import ResultsStore

from .test_leaderboard import record
from .test_reference import ridge, with_baseline

# record(fusion, seed, m): test mean m, valence m + .05, arousal m − .05, val mean m − .02.
# rcma 0.80/0.81/0.82: test mean 0.81, sample std 0.01 (sqrt((.01² + 0 + .01²) / 2)); concat
# 0.70/0.72/0.74: 0.72 ± 0.02; lstm: 0.75 three times (old format: no robustness, no FLOPs);
# audio only: 0.6 twice (std 0).


def sample_records() -> list[dict]:
    return ([record("rcma", s, 0.80 + 0.01 * s) for s in range(3)]
            + [record("concat", s, 0.70 + 0.02 * s) for s in range(3)]
            + [record("lstm", s, 0.75, new=False) for s in range(3)]
            + [record("concat", s, 0.6, mods=["audio"]) for s in range(2)])


@pytest.fixture
def records():
    return sample_records()


def table_of(records, **kw):
    (rows,) = build_rows(records).values()
    return build_table(rows, **kw)


def by_model(text: str) -> dict[str, dict[str, str]]:
    return {r["model"]: r for r in csv.DictReader(io.StringIO(text))}


def label_of(rec: dict) -> str:
    mods = rec["config"]["data"]["modalities"]
    return f"{mods[0]} only" if len(mods) == 1 else rec["config"]["model"]["fusion"]


def store_of(tmp_path, records):
    store = ResultsStore(tmp_path / "res")
    for r in records:
        store.write(copy.deepcopy(r))
    return store.root


# -- csv -------------------------------------------------------------------------------------------
def test_csv_holds_the_means_and_stds_as_numbers(records):
    got = by_model(csv_text([table_of(records)]))
    assert set(got) == {"rcma", "concat", "lstm", "audio only"}
    rcma, concat = got["rcma"], got["concat"]
    assert float(rcma["test_mean"]) == pytest.approx(0.81, abs=1e-12)
    assert float(rcma["test_mean_std"]) == pytest.approx(0.01, abs=1e-12)  # ddof=1, not 0.0082
    assert float(rcma["test_valence"]) == pytest.approx(0.86, abs=1e-12)
    assert float(rcma["test_arousal"]) == pytest.approx(0.76, abs=1e-12)
    assert float(rcma["val_mean"]) == pytest.approx(0.79, abs=1e-12)
    assert float(concat["test_mean"]) == pytest.approx(0.72, abs=1e-12)
    assert float(concat["test_mean_std"]) == pytest.approx(0.02, abs=1e-12)
    assert float(got["audio only"]["test_mean_std"]) == 0.0
    # drop visual of rcma: mean − 0.1 per seed → 0.71 ± 0.01
    assert float(rcma["drop_visual"]) == pytest.approx(0.71, abs=1e-12)
    assert float(rcma["drop_visual_std"]) == pytest.approx(0.01, abs=1e-12)
    # no thousands separators: 1000 · len("rcma") parameters, 3 · 12,345,678 FLOPs, the
    # median of 1000 · (seed + 1) training frames/s
    assert (rcma["params"], rcma["flops"], rcma["train_fps"]) == ("4000", "37037034", "2000")
    assert rcma["train_fps_devices"] == "cpu" and rcma["noise_area_levels"] == "0, 0.25, 0.5, 1, 2"
    assert [r["vs_best"] for r in got.values()] == ["best", "no", "no", ""]  # audio: 2 seeds, '?'
    assert rcma["seeds"] == "0 1 2" and rcma["n"] == "3" and rcma["kind"] == "model"
    # the old-format row lacks robustness and FLOPs: empty cells, not a dash
    assert got["lstm"]["noise_area"] == got["lstm"]["flops"] == got["lstm"]["drop_text"] == ""


def test_csv_metric_columns_equal_a_hand_computation_from_the_records(records):
    """Every metric column of every row parses as a float and equals numpy's mean and sample
    std of the records' numbers."""
    text = csv_text([table_of(records)])
    rows = list(csv.DictReader(io.StringIO(text)))
    for line in rows:
        recs = [r for r in records if label_of(r) == line["model"]]
        assert len(recs) == int(line["n"])
        for split, target in (("test", "valence"), ("test", "arousal"), ("test", "mean"),
                              ("val", "mean")):
            xs = [r["metrics"][split][target] for r in recs]
            assert float(line[f"{split}_{target}"]) == pytest.approx(np.mean(xs), abs=1e-12)
            assert float(line[f"{split}_{target}_std"]) == pytest.approx(np.std(xs, ddof=1),
                                                                        abs=1e-12)


def test_pandas_reads_the_csv_metrics_as_numbers(records):
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(io.StringIO(csv_text([table_of(records)])))
    for col in ("test_mean", "test_mean_std", "val_mean", "noise_area", "params", "flops"):
        assert df[col].dtype.kind in "fi", col  # numbers, not strings
    assert df.set_index("model").loc["rcma", "test_mean"] == pytest.approx(0.81)


def test_a_partial_cell_is_named_and_one_seed_has_no_std(records):
    mixed = records[:2] + [record("rcma", 2, 0.9, new=False)]
    (line,) = csv.DictReader(io.StringIO(csv_text([table_of(mixed)])))
    assert line["partial"] == "drop_visual=2;drop_audio=2;drop_text=2;noise_area=2"
    (one,) = csv.DictReader(io.StringIO(csv_text([table_of([record("rcma", 0, 0.8)])])))
    assert float(one["test_mean"]) == pytest.approx(0.8) and one["test_mean_std"] == ""


def test_the_csv_of_several_tables_has_one_header_and_a_dataset_column(records):
    other = []
    for r in [record("rcma", s, 0.5, mods=["audio", "text"]) for s in range(2)]:
        r["config"]["data"]["name"] = r["dataset"]["name"] = "other"
        other.append(r)
    per_ds = build_rows(records + other)
    text = csv_text([build_table(rows) for rows in per_ds.values()])
    lines = list(csv.reader(io.StringIO(text)))
    assert sum(line[0] == "dataset" for line in lines) == 1
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["dataset"] for r in rows} == {"synthetic", "other"}
    theirs = [r for r in rows if r["dataset"] == "other"]
    assert len(theirs) == 1 and theirs[0]["drop_visual"] == ""  # a column only the other has
    assert float(theirs[0]["drop_text"]) == pytest.approx(0.3)  # 0.5 − 0.1 · 2


def test_the_reference_row_in_csv_and_json(records):
    recs = [with_baseline(r, ridge(0.6, 0.55)) for r in records[:6]]
    t = table_of(recs)
    got = by_model(csv_text([t]))
    ref = got["ridge (linear)"]
    assert (ref["kind"], ref["n"], ref["vs_best"], ref["beats_ridge"]) == ("reference", "1", "", "")
    assert float(ref["test_valence"]) == pytest.approx(0.7) and ref["test_mean_std"] == ""
    assert got["rcma"]["beats_ridge"] == "yes" and got["concat"]["beats_ridge"] == "yes"
    rows = {r["label"]: r for r in json.loads(json_text(t))["rows"]}
    assert rows["ridge (linear)"]["kind"] == "reference" and rows["rcma"]["beats_ridge"] is True
    assert rows["ridge (linear)"]["values"]["test_mean"]["values"] == [0.6]


# -- json ------------------------------------------------------------------------------------------
def test_json_rows_hold_settings_per_seed_values_and_verdicts(records):
    doc = json.loads(json_text(table_of(records)))
    assert doc["schema"] == 1 and doc["metric"] == "ccc" and doc["dataset"] == "synthetic"
    rows = {r["label"]: r for r in doc["rows"]}
    rcma = rows["rcma"]
    assert rcma["seeds"] == [0, 1, 2] and rcma["n"] == 3
    assert rcma["run_ids"] == [r["run_id"] for r in records[:3]]
    assert rcma["settings"]["model.fusion"] == "rcma"
    assert rcma["settings"]["data.modalities"] == ["visual", "audio", "text"]
    v = rcma["values"]["test_mean"]
    assert v["values"] == pytest.approx([0.80, 0.81, 0.82]) and v["seeds"] == [0, 1, 2]
    assert v["mean"] == pytest.approx(0.81) and v["std"] == pytest.approx(0.01) and v["n"] == 3
    # the paired test by hand: concat − rcma = −.10, −.09, −.08: mean −.09, sd .01, half-width
    # 4.303 · .01 / √3 = .025: different; audio only shares 2 seeds: no verdict
    assert [rows[k]["verdict"] for k in ("rcma", "concat", "lstm", "audio only")] == \
        ["best", "different", "different", None]
    old = rows["lstm"]["values"]["noise_area"]  # old records: not measured, yet every row
    assert (old["mean"], old["n"], old["values"]) == (None, 0, [])  # has every column
    assert rows["rcma"]["values"]["infer_fps"]["devices"] == "cpu"
    assert doc["caption"].startswith("Dataset synthetic v1")


def test_json_is_strict_where_a_record_holds_nan(records):
    recs = copy.deepcopy(records[:3])
    recs[2]["metrics"]["test"]["mean"] = float("nan")
    text = json_text(table_of(recs))
    assert "NaN" not in text
    v = json.loads(text)["rows"][0]["values"]["test_mean"]
    assert v["values"][2] is None and v["mean"] is None  # a nan mean is no number


def test_cli_json_and_csv_print_the_document_alone(records, tmp_path, cli_run):
    res = store_of(tmp_path, records)
    code, out, err = cli_run("leaderboard", "--out", res, "--format", "json")
    assert code == 0, err
    (doc,) = json.loads(out)  # an array of the store's tables: one here
    assert doc["rows"][0]["label"] == "rcma"
    code, out, err = cli_run("leaderboard", "--out", res, "--format", "csv")
    assert code == 0 and out.startswith("dataset,model,kind,n,seeds,test_valence,"), err
    assert float(by_model(out)["concat"]["test_mean"]) == pytest.approx(0.72)
    code, out, err = cli_run("leaderboard", "--out", res, "--format", "json", "--tables",
                             tmp_path / "t")
    assert code == 0, err
    assert json.loads((tmp_path / "t" / "leaderboard_synthetic.json").read_text())["dataset"] \
        == "synthetic"
    code, _, err = cli_run("leaderboard", "--out", res, "--format", "csv", "--explain")
    assert code == 2 and "--explain prints text" in err
    code, _, err = cli_run("leaderboard", "--out", res, "--label", "x")
    assert code == 2 and "--format latex" in err


# -- latex -----------------------------------------------------------------------------------------
def tex_rows(tex: str) -> dict[str, list[str]]:
    body = tex.split("\\midrule\n")[1].split("\\bottomrule")[0]
    return {cells[0]: cells for cells in (line.removesuffix(" \\\\").split(" & ")
                                          for line in body.splitlines())}


def test_latex_is_booktabs_with_the_best_value_bold_and_a_label(records):
    t = table_of(records)
    tex = latex(t)
    assert tex.index("\\toprule") < tex.index("\\midrule") < tex.index("\\bottomrule")
    assert tex.index("\\caption{") < tex.index("\\label{tab:leaderboard-synthetic}")
    headers = [c.header for c in t.columns]
    rows = tex_rows(tex)
    col = headers.index("test mean")
    assert rows["rcma"][col] == "\\textbf{0.810 $\\pm$ 0.010}"
    assert rows["concat"][col] == "0.720 $\\pm$ 0.020"  # not the best: plain
    # lower is better for parameters (1000 per letter of the fusion): rcma and lstm both have
    # 4,000, a tie as printed: both bold; concat's 6,000 is not
    p = headers.index("params")
    assert rows["rcma"][p] == rows["lstm"][p] == "\\textbf{4,000}"
    assert rows["concat"][p] == rows["audio only"][p] == "6,000"
    assert rows["audio only"][headers.index("FLOPs/window")] == "\\textbf{12.3 M}"
    assert sum("\\textbf" in c for r in rows.values() for c in r) == sum(
        len(t.best(c.key)) for c in t.columns)
    assert latex(t, "tab:main-{dataset}").count("\\label{tab:main-synthetic}") == 1


def test_latex_escapes_what_records_hold(records):
    recs = copy.deepcopy(records[:3])
    for r in recs:
        r["config"]["model"]["fusion"] = "my_fusion&co #1 100% {x}"
    tex = latex(table_of(recs))
    assert "my\\_fusion\\&co \\#1 100\\% \\{x\\} &" in tex
    with pytest.raises(ValueError, match="label may hold"):
        latex(table_of(recs), "tab:a b}")


def test_compact_keeps_the_accuracy_columns_and_their_caption(records, tmp_path, cli_run):
    t = table_of(records).compact()
    assert [c.key for c in t.columns] == ["model", "n", "test_valence", "test_arousal",
                                          "test_mean", "val_mean", "vs_best"]
    assert "'drop m'" not in t.caption() and "FLOPs:" not in t.caption()
    assert "CCC as mean ± sample standard deviation" in t.caption()
    assert "'≈ best': a paired t-test" in t.caption()
    code, out, err = cli_run("leaderboard", "--out", store_of(tmp_path, records), "--format",
                             "latex", "--compact", "--label", "tab:{dataset}-main")
    assert code == 0, err
    assert out.startswith("% synthetic\n") and "\\label{tab:synthetic-main}" in out
    assert re.search(r"\\begin\{tabular\}\{lrrrrrl\}", out)
    code, _, err = cli_run("leaderboard", "--out", tmp_path / "res", "--format", "latex",
                           "--label", "bad label")
    assert code == 2 and "label may hold" in err and "Traceback" not in err


def test_best_ignores_rows_without_a_finite_value(records):
    recs = copy.deepcopy(records)
    for r in recs[:3]:  # rcma's test valence: nan on every seed
        r["metrics"]["test"]["valence"] = math.nan
    t = table_of(recs)
    labels = [r.label for r in t.rows]
    assert {labels[i] for i in t.best("test_valence")} == {"lstm"}  # 0.80 > concat's 0.77
