"""Any targets: a features folder's label header names them (valence, arousal, dominance, one
alone, any names); each is trained and scored, the record, the run's table, the ridge baseline
and the leaderboard show them all; the synthetic data stays valence/arousal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusion_bench.data import INVALID_LABEL, TARGETS, Video
from fusion_bench.data.features import FeaturesDataset
from fusion_bench.data.labels import read_labels, write_labels
from fusion_bench.errors import DataError
from fusion_bench.metrics import ccc

from .data.test_features import TRAIN, make_folder

VAD = ("valence", "arousal", "dominance")


def relabel(root, targets):
    """Rewrite every labels file of ``root`` (made valence,arousal by make_folder) with the
    columns of ``targets``: valence and arousal kept, dominance = (valence - arousal) / 2, a
    frame invalid in one column invalid in all."""
    for path in sorted((root / "labels").glob("*.csv")):
        va = read_labels(path).astype(np.float64)
        bad = (va == INVALID_LABEL).any(1)
        cols = {"valence": va[:, 0], "arousal": va[:, 1], "dominance": (va[:, 0] - va[:, 1]) / 2}
        lab = np.stack([cols[t] for t in targets], 1)
        lab[bad] = INVALID_LABEL
        write_labels(path, lab, targets)


@pytest.fixture
def vad_folder(tmp_path):
    root = tmp_path / "vad"
    make_folder(root)
    relabel(root, VAD)
    return root


def _records(out):
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]


# -- reading ------------------------------------------------------------------------------------
def test_the_header_names_the_targets_and_every_column_is_read(vad_folder):
    ds = FeaturesDataset(vad_folder)
    assert ds.targets == VAD
    v = ds.splits()["train"][0]
    assert v.labels.shape == (v.n_frames, 3)
    first = (vad_folder / "labels" / f"{v.name}.csv").read_text().splitlines()
    assert first[0] == "valence,arousal,dominance"
    row = [float(x) for x in first[1].split(",")]
    np.testing.assert_allclose(v.labels[0], row, atol=1e-6)  # line 2 is frame 0, all three
    v.validate(ds.dims, ds.targets)
    with pytest.raises(DataError, match=r"shape \(frames, 2\) for valence, arousal"):
        v.validate(ds.dims)  # the built-ins' two targets: a three-column video does not fit


def test_header_names_are_stripped_and_lower_cased(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text(" Valence , AROUSAL,Dominance\n0.1,0.2,0.3\n-5,-5,-5\n")
    lab = read_labels(p)
    assert lab.shape == (2, 3) and lab[0].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert read_labels(p, VAD).shape == (2, 3)
    with pytest.raises(DataError, match="differs from the folder's targets 'valence,arousal'"):
        read_labels(p, TARGETS)


def _lab(folder, i=0):
    return sorted((folder / "labels").glob("*.csv"))[i]


@pytest.mark.parametrize("breaker,message", [
    (lambda f: _lab(f).write_text("valence,arousal,dominance\n0.1,0.2\n"),
     "line 2: expected 3 values 'valence,arousal,dominance'; got '0.1,0.2'"),
    (lambda f: _lab(f).write_text("valence,arousal,dominance\n0.1,0.2,1.5\n"),
     "line 2: dominance 1.5 is outside [-1, 1] and is not the invalid marker -5"),
    (lambda f: _lab(f).write_text("valence,arousal,dominance\n0.1,0.2,x\n"),
     "line 2: dominance 'x' is not a number"),
    (lambda f: [p.write_text("valence,valence\n0.1,0.2\n") for p in (f / "labels").glob("*.csv")],
     "target 'valence' is named twice"),
    (lambda f: [p.write_text("valence,mean\n0.1,0.2\n") for p in (f / "labels").glob("*.csv")],
     "a target may not be named 'mean'"),
    (lambda f: [p.write_text("valence,\n0.1,0.2\n") for p in (f / "labels").glob("*.csv")],
     "an empty target name"),
    (lambda f: _lab(f).write_text(""), "empty labels file; expected a header naming the targets"),
])
def test_a_bad_label_file_is_one_line_naming_file_and_line(cli_run, vad_folder, tmp_path,
                                                           breaker, message):
    breaker(vad_folder)
    out = tmp_path / "res"
    code, _, err = cli_run("run", "--root", vad_folder, "--out", out, *TRAIN)
    assert code == 2
    assert message in err and "labels" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (out / "runs").exists()


def test_label_files_with_different_headers_are_one_line_naming_both(cli_run, vad_folder, tmp_path):
    odd = _lab(vad_folder, 3)
    va = read_labels(odd)[:, :2]
    write_labels(odd, va, TARGETS)  # one file of eleven lacks dominance
    code, _, err = cli_run("run", "--root", vad_folder, "--out", tmp_path / "res", *TRAIN)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    # the odd file is blamed, not the majority, and a file of the majority is named
    assert f"{odd}, line 1: header 'valence,arousal' differs from 'valence,arousal,dominance' of " in err
    assert "and 9 other labels files; every labels file of a folder must name the same targets" in err
    with pytest.raises(DataError, match="differs from"):
        FeaturesDataset(vad_folder)  # on opening: before any video is read


# -- training and scoring -----------------------------------------------------------------------
def test_three_target_labels_train_and_score(cli_run, vad_folder, tmp_path):
    out = tmp_path / "res"
    code, stdout, err = cli_run("run", "--dataset", "features", "--root", vad_folder, "--out", out,
                                *TRAIN)
    assert code == 0, err
    (rec,) = _records(out)
    assert rec["dataset"]["targets"] == list(VAD)
    for split in ("val", "test"):
        m = rec["metrics"][split]
        assert set(m) == {*VAD, "mean"}  # (a record's keys are stored sorted)
        assert all(-1 <= m[t] <= 1 for t in VAD)
        assert m["mean"] == pytest.approx(np.mean([m[t] for t in VAD]), abs=1e-12)  # over three
        assert rec["scores"]["ccc"][split] == m
        assert set(rec["scores"]["rmse"][split]) == {*VAD, "mean"}
    (fit,) = rec["fits"]
    assert fit["targets"] == list(VAD) and rec["params"]["models"] == 1
    assert set(fit["history"][0]["val"]) == {*VAD, "mean"}
    base = rec["baseline"]
    assert set(base["lambda"]) == set(VAD)
    assert set(base["metrics"]["test"]) == {*VAD, "mean"}
    assert base["scores"]["ccc"] == base["metrics"] and set(base["scores"]) == set(rec["scores"])
    # the run's table: a column per target, then the mean
    header = next(line for line in stdout.splitlines() if line.startswith("CCC"))
    assert header.split() == ["CCC", *VAD, "mean"]
    test_row = next(line for line in stdout.splitlines() if line.startswith("test "))
    assert test_row.split()[1:] == [f"{rec['metrics']['test'][t]:.3f}" for t in (*VAD, "mean")]


def test_per_target_trains_one_model_per_target(cli_run, vad_folder, tmp_path):
    out = tmp_path / "res"
    code, _, err = cli_run("run", "--root", vad_folder, "--out", out, "--set",
                           "model.per_target=true", *TRAIN)
    assert code == 0, err
    (rec,) = _records(out)
    assert rec["params"]["models"] == 3
    assert [f["targets"] for f in rec["fits"]] == [[t] for t in VAD]
    for f, t in zip(rec["fits"], VAD, strict=True):  # each validated on its own target alone
        assert set(f["history"][0]["val"]) == {t, "mean"}
        assert f["history"][0]["val"]["mean"] == f["history"][0]["val"][t]
    assert set(rec["metrics"]["test"]) == {*VAD, "mean"}


def test_a_one_target_folder_works(cli_run, tmp_path):
    root = tmp_path / "aro"
    make_folder(root)
    relabel(root, ("arousal",))
    out = tmp_path / "res"
    code, stdout, err = cli_run("run", "--root", root, "--out", out, *TRAIN)
    assert code == 0, err
    (rec,) = _records(out)
    assert rec["dataset"]["targets"] == ["arousal"]
    m = rec["metrics"]["test"]
    assert set(m) == {"arousal", "mean"} and m["mean"] == m["arousal"]
    assert set(rec["baseline"]["lambda"]) == {"arousal"}
    header = next(line for line in stdout.splitlines() if line.startswith("CCC"))
    assert header.split() == ["CCC", "arousal", "mean"]


def test_synthetic_records_stay_valence_arousal(cli_run, tiny_args, tmp_path):
    out = tmp_path / "res"
    code, stdout, err = cli_run("run", "--modalities", "visual,audio", "--out", out, *tiny_args)
    assert code == 0, err
    (rec,) = _records(out)
    assert rec["dataset"]["targets"] == ["valence", "arousal"]
    assert set(rec["metrics"]["test"]) == {"valence", "arousal", "mean"}
    assert rec["fits"][0]["targets"] == ["valence", "arousal"]
    header = next(line for line in stdout.splitlines() if line.startswith("CCC"))
    assert header.split() == ["CCC", "valence", "arousal", "mean"]


# -- scoring and the ridge baseline, by hand ----------------------------------------------------
def _videos(rng, n_videos=6, d=4, targets=VAD):
    """Videos whose every target is a different noisy linear read-out of the features."""
    out = []
    w = rng.normal(size=(d, len(targets)))
    for i in range(n_videos):
        n = int(rng.integers(30, 60))
        x = rng.normal(size=(n, d)).astype(np.float32)
        lab = np.tanh(0.4 * x @ w + 0.3 * rng.normal(size=(n, len(targets))))
        lab[rng.random(n) < 0.1, int(rng.integers(len(targets)))] = INVALID_LABEL
        out.append(Video(f"v{i}", {"visual": x}, {"visual": np.ones(n, bool)},
                         lab.astype(np.float32)))
    return out


def test_score_pairs_each_prediction_column_with_its_label_column():
    from fusion_bench.evaluate import score

    rng = np.random.default_rng(0)
    vids = _videos(rng, 3)
    preds = [rng.normal(size=(v.n_frames, 3)) for v in vids]
    lab = np.concatenate([v.labels for v in vids]).astype(np.float64)
    ok = np.concatenate([v.valid for v in vids])
    pred = np.concatenate(preds)
    want = {t: ccc(pred[ok, j], lab[ok, j]) for j, t in enumerate(VAD)}
    got = score(preds, vids, VAD)
    assert list(got) == [*VAD, "mean"]
    for t in VAD:
        assert got[t] == pytest.approx(want[t], abs=1e-12)
    assert got["mean"] == pytest.approx(np.mean(list(want.values())), abs=1e-12)
    # a per-target model's one output column scores its own label column (dominance: column 2)
    one = score([p[:, 2:] for p in preds], vids, VAD, columns=(2,))
    assert one == pytest.approx({"dominance": want["dominance"], "mean": want["dominance"]})
    with pytest.raises(ValueError, match="labels have 3 columns but 2 targets"):
        score(preds, vids)  # valence/arousal names on three-column labels: never silently


def test_the_ridge_baseline_scores_every_target_as_its_own_fit():
    """Three targets in one fit give, per target, exactly the λ and scores of a fit of that
    target's column alone (λ is chosen per target)."""
    from fusion_bench.baseline import ridge_baseline

    rng = np.random.default_rng(1)
    splits = {s: _videos(rng, k) for s, k in (("train", 8), ("val", 4), ("test", 4))}
    three = ridge_baseline(splits, ("visual",), targets=VAD)
    assert list(three["lambda"]) == list(VAD)
    assert list(three["metrics"]["test"]) == [*VAD, "mean"]
    assert three["scores"]["ccc"] == three["metrics"]  # every metric scores the three too
    for j, t in enumerate(VAD):
        alone = {s: [Video(v.name, v.features, v.masks, v.labels[:, [j]]) for v in vids]
                 for s, vids in splits.items()}
        # a frame counts only when every target is labelled: keep the three-target validity
        for s in splits:
            for a, v in zip(alone[s], splits[s], strict=True):
                a.labels[~v.valid] = INVALID_LABEL
        one = ridge_baseline(alone, ("visual",), targets=(t,))
        assert three["lambda"][t] == one["lambda"][t]
        for s in ("val", "test"):
            assert three["metrics"][s][t] == pytest.approx(one["metrics"][s][t], abs=1e-9)
    m = three["metrics"]["test"]
    assert m["mean"] == pytest.approx(np.mean([m[t] for t in VAD]), abs=1e-12)


# -- the leaderboard ----------------------------------------------------------------------------
def test_the_leaderboard_of_three_target_runs_has_a_column_per_target(cli_run, vad_folder,
                                                                      tmp_path):
    from fusion_bench.report.leaderboard import build_rows, table
    from fusion_bench.results import ResultsStore

    out = tmp_path / "res"
    for seed in (0, 1):
        code, _, err = cli_run("run", "--root", vad_folder, "--out", out, "--seed", seed, *TRAIN)
        assert code == 0, err
    recs = _records(out)
    (rows,) = build_rows(ResultsStore(out).records()).values()
    headers, body, _ = table(rows, sort="test_dominance")
    assert headers[2:7] == ["test valence", "test arousal", "test dominance", "test mean",
                            "val mean"]
    (model,) = [b for b in body if not b[0].startswith("ridge")]
    (ridge,) = [b for b in body if b[0].startswith("ridge")]
    col = headers.index("test dominance")
    dom = [r["metrics"]["test"]["dominance"] for r in recs]
    assert model[col] == f"{np.mean(dom):.3f} ± {np.std(dom, ddof=1):.3f}"
    assert ridge[col] == f"{recs[0]['baseline']['metrics']['test']['dominance']:.3f}"
    code, text, err = cli_run("leaderboard", "--out", out, "--sort", "test_dominance")
    assert code == 0, err
    assert "test dominance" in text.splitlines()[2]


def test_a_table_of_older_records_keeps_valence_and_arousal():
    """Records made before targets were recorded name none: valence and arousal."""
    from fusion_bench.report.leaderboard import Row, metric_columns, sort_columns, table_targets

    row = Row("x", "synthetic", [{"dataset": {"name": "synthetic"},
                                  "config": {"data": {"modalities": ["visual"]}}}])
    assert table_targets([row]) == ("valence", "arousal")
    assert metric_columns(table_targets([row])) == ("test_valence", "test_arousal", "test_mean",
                                                    "val_mean")
    assert "test_dominance" not in sort_columns([row])


def test_submission_refuses_a_dataset_without_valence_and_arousal(vad_folder):
    from fusion_bench.config import build_config
    from fusion_bench.plugins import load_registry
    from fusion_bench.submission import train_and_predict

    reg = load_registry(entry_points=False)
    cfg = build_config("quick", None, [("data.name", "features"), ("data.root", str(vad_folder)),
                                       ("train.progress", "false")])
    with pytest.raises(DataError, match="valence,arousal,dominance; an ABAW submission holds "
                                        "valence,arousal"):
        train_and_predict(cfg, reg, videos=[])


def test_affwild2_stays_valence_arousal(tmp_path):
    from fusion_bench.data.affwild2 import CACHE, AffWild2Dataset

    root = tmp_path / "affwild2"
    make_folder(root / CACHE)
    (root / CACHE / "manifest.json").write_text(json.dumps({"format": 1, "dataset": "affwild2"}))
    assert AffWild2Dataset(root, ("visual",)).targets == ("valence", "arousal")
    relabel(root / CACHE, VAD)
    with pytest.raises(DataError, match="Aff-Wild2's are 'valence,arousal'"):
        AffWild2Dataset(root, ("visual",))
