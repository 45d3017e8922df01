"""A sequence-level run end to end through the one run path: the CLI, the record, the scores
over sequences, robustness, the ridge row, the stored predictions and a reloaded model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fusion_bench.artifacts import load_model, stored_predictions
from fusion_bench.config import build_config
from fusion_bench.evaluate import score
from fusion_bench.plugins import load_registry
from fusion_bench.runs import load_dataset

from .conftest import TINY, tiny_overrides

SEQ = ["--set", "dataset.synthetic.label_level=sequence", "--set", "dataset.synthetic.n_train=12"]


def _record(out: Path) -> dict:
    (path,) = (out / "runs").glob("*.json")
    return json.loads(path.read_text())


def test_sequence_level_run_records_scores_over_sequences(cli_run, tmp_path):
    out = tmp_path / "store"
    code, _, err = cli_run("run", "--fusion", "rcma", *TINY, *SEQ, "--robustness",
                           "--set", "train.modality_dropout=0.3", "--set", "model.pooling=attention",
                           "--out", out)
    assert code == 0, err
    rec = _record(out)
    assert rec["dataset"]["label_level"] == "sequence"
    assert rec["data_summary"]["label_level"] == "sequence"
    assert rec["config"]["train"]["modality_dropout"] == 0.3
    assert rec["config"]["model"]["pooling"] == "attention"
    # MMSA's binary metrics on a sequence-level run; no 7-class accuracy on labels in [-1, 1]
    assert {"ccc", "mae", "has0_acc_2", "non0_f1"} <= set(rec["scores"])
    assert "mult_acc_7" not in rec["scores"]
    assert rec["baseline"]["inputs"] == "sequence means"
    assert set(rec["robustness"]["drop"]) == {"visual", "audio", "text"}
    # the stored test predictions: one row per sequence, and the record's CCC is over them
    cfg = build_config("quick", None, [*tiny_overrides(), ("dataset.synthetic.label_level", "sequence"),
                                       ("dataset.synthetic.n_train", "12")])
    _, splits = load_dataset(load_registry(entry_points=False), cfg)
    preds = stored_predictions(rec["run_id"], out)
    assert all(preds[v.name].shape == (1, 2) for v in splits["test"])
    again = score([preds[v.name].astype(np.float64) for v in splits["test"]], splits["test"])
    assert again["mean"] == pytest.approx(rec["metrics"]["test"]["mean"], abs=1e-4)
    # a reloaded model predicts the same per-sequence values
    loaded = load_model(rec["run_id"], out, registry=load_registry(entry_points=False))
    fresh = loaded.predict(splits["test"][:3])
    for v in splits["test"][:3]:
        assert fresh[v.name] == pytest.approx(preds[v.name], abs=1e-5)


def test_settings_that_mean_nothing_at_a_level_are_one_line(cli_run, tmp_path):
    code, _, err = cli_run("run", "--fusion", "concat", *TINY, *SEQ, "--set", "train.loss=window",
                           "--out", tmp_path / "a")
    assert code == 2 and "train.loss=window" in err and "Traceback" not in err
    code, _, err = cli_run("run", "--fusion", "concat", *TINY, "--set", "model.pooling=attention",
                           "--out", tmp_path / "b")
    assert code == 2 and "model.pooling=attention" in err and "labelled per frame" in err


def test_mse_loss_trains_a_sequence_level_model(cli_run, tmp_path):
    code, _, err = cli_run("run", "--fusion", "concat", *TINY, *SEQ, "--set", "train.loss=mse",
                           "--out", tmp_path / "s")
    assert code == 0, err
    rec = _record(tmp_path / "s")
    assert np.isfinite(rec["metrics"]["test"]["mean"]) and rec["fits"][0]["history"][0]["loss"] > 0


def test_leaderboard_keeps_sequence_level_apart_and_says_so(cli_run, tmp_path):
    out = tmp_path / "store"
    for extra in ([], SEQ):
        code, _, err = cli_run("run", "--fusion", "concat", *TINY, *extra, "--out", out, "--no-model")
        assert code == 0, err
    code, _, err = cli_run("leaderboard", "--out", out, "--tables", tmp_path / "t")
    assert code == 0, err
    seq_table = (tmp_path / "t" / "leaderboard_synthetic-sequence.md").read_text()
    assert "labelled per sequence" in seq_table and "has0_acc_2" in seq_table
    assert "labelled per sequence" not in (tmp_path / "t" / "leaderboard_synthetic.md").read_text()
    # another metric's table goes beside the CCC one
    code, _, err = cli_run("leaderboard", "--out", out, "--tables", tmp_path / "t",
                           "--dataset", "synthetic-sequence", "--metric", "has0_acc_2")
    assert code == 0, err
    assert (tmp_path / "t" / "leaderboard_synthetic-sequence_has0_acc_2.md").exists()
    assert (tmp_path / "t" / "leaderboard_synthetic-sequence.md").read_text() == seq_table


def test_an_mmsa_run_scores_on_the_sentiment_scale(cli_run, tmp_path):
    """An MMSA pickle (labels in [-3, 3]): the head spans the range, the record names it, and
    the run scores MMSA's whole set, the 5- and 7-class accuracies included."""
    from .data.test_readers_cli import SMALL
    from .data.test_readers_cli import _mmsa_file as mmsa_file

    out = tmp_path / "res"
    code, _, err = cli_run("run", "--dataset", "mmsa", "--root", mmsa_file(tmp_path), "--out", out,
                           *SMALL)
    assert code == 0, err
    rec = _record(out)
    assert rec["dataset"]["label_level"] == "sequence" and rec["dataset"]["label_range"] == [-3.0, 3.0]
    assert {"mae", "has0_acc_2", "has0_f1", "non0_acc_2", "non0_f1", "mult_acc_5",
            "mult_acc_7", "pearson", "ccc"} <= set(rec["scores"])
    preds = stored_predictions(rec["run_id"], out)
    assert all(p.shape == (1, 1) and -3.0 <= float(p[0, 0]) <= 3.0 for p in preds.values())


def test_predict_writes_one_row_per_sequence(cli_run, tmp_path):
    """fusion-bench predict with a model of a labels.csv folder: each video read as one sequence
    (arrays of different lengths), one prediction row each, as the run scored it."""
    from .data.test_readers_cli import SMALL, labels_csv_folder

    root = tmp_path / "f"
    names = labels_csv_folder(root)
    out = tmp_path / "res"
    code, _, err = cli_run("run", "--root", root, "--out", out, *SMALL)
    assert code == 0, err
    rec = _record(out)
    code, stdout, err = cli_run("predict", "--run", rec["run_id"], "--out", out, "--root", root,
                                "--predictions", tmp_path / "p")
    assert code == 0, err
    assert "16 videos, one prediction each" in stdout
    stored = stored_predictions(rec["run_id"], out)
    for v in names[12:]:  # the test videos: what the run stored for them
        lines = (tmp_path / "p" / f"{v}.csv").read_text().splitlines()
        assert lines[0] == "valence,arousal" and len(lines) == 2
        assert [float(x) for x in lines[1].split(",")] == pytest.approx(stored[v][0], abs=1e-5)
