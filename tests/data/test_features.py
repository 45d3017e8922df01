"""The ``features`` folder dataset: training on any subset of modalities, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusion_bench.data.features import FeaturesDataset, write_splits, write_video
from fusion_bench.data.synthetic import SyntheticDataset

TRAIN = ["--set", "train.epochs=2", "--set", "encoder.channels=8", "--set", "encoder.levels=2",
         "--quiet"]


def make_folder(root, n=(5, 3, 3), frames=(90, 130)):
    """A features folder made from tiny synthetic videos (dims visual 8, audio 6, text 5)."""
    ds = SyntheticDataset({"n_train": n[0], "n_val": n[1], "n_test": n[2], "min_frames": frames[0],
                           "max_frames": frames[1], "dim_visual": 8, "dim_audio": 6, "dim_text": 5})
    names = {}
    for split, videos in ds.splits().items():
        for v in videos:
            write_video(root, v)
        names[split] = [v.name for v in videos]
    write_splits(root, names)
    return ds


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "feats"
    make_folder(root)
    return root


def test_round_trip_matches_the_source(tmp_path):
    root = tmp_path / "f"
    src = make_folder(root)
    ds = FeaturesDataset(root, ("visual", "text"))
    assert ds.dims == {"visual": 8, "text": 5}
    a, b = src.splits()["val"][1], ds.splits()["val"][1]
    assert a.name == b.name and set(b.features) == {"visual", "text"}
    np.testing.assert_allclose(a.features["text"], b.features["text"])
    np.testing.assert_array_equal(a.masks["text"], b.masks["text"])
    np.testing.assert_allclose(a.labels, b.labels, atol=1e-5)


@pytest.mark.parametrize("mods", ["visual,audio,text", "audio,text", "visual"])
def test_run_trains_on_any_subset_of_modalities(cli_run, folder, tmp_path, mods):
    out = tmp_path / "res"
    code, stdout, err = cli_run("run", "--dataset", "features", "--root", folder, "--modalities",
                                mods, "--out", out, *TRAIN)
    assert code == 0, err
    (rec,) = (out / "runs").glob("*.json")
    rec = json.loads(rec.read_text())
    assert rec["dataset"]["name"] == "features"
    assert rec["dataset"]["modalities"] == mods.split(",")
    assert rec["dataset"]["videos"] == {"train": 5, "val": 3, "test": 3}


def test_splits_json_and_missing_masks(folder):
    names = {}
    for line in (folder / "splits.csv").read_text().splitlines()[1:]:
        v, s = line.split(",")
        names.setdefault(s, []).append(v)
    (folder / "splits.csv").unlink()
    (folder / "splits.json").write_text(json.dumps(names))
    for p in (folder / "masks" / "audio").glob("*.npy"):
        p.unlink()
    ds = FeaturesDataset(folder, ("audio",))
    assert all(v.masks["audio"].all() for v in ds.splits()["train"])


def _first(folder, split="train"):
    rows = [line.split(",") for line in (folder / "splits.csv").read_text().splitlines()[1:]]
    return next(v for v, s in rows if s == split)


def _lab(folder):
    return folder / "labels" / f"{_first(folder)}.csv"


@pytest.mark.parametrize("breaker,message", [
    (lambda f: _lab(f).write_text("val,aro\n0.1,0.2\n"),  # the others: valence,arousal
     "line 1: header 'val,aro' differs from 'valence,arousal' of"),
    (lambda f: _lab(f).write_text("valence,arousal\n0.1,0.2\n0.1,abc\n"),
     "line 3: arousal 'abc' is not a number"),
    (lambda f: _lab(f).write_text("valence,arousal\n0.1,0.2\n1.5,0.2\n"),
     "line 3: valence 1.5 is outside [-1, 1]"),
    (lambda f: np.save(f / "features" / "visual" / f"{_first(f)}.npy", np.zeros((7, 8), np.float32)),
     "7 frames but"),
    (lambda f: (f / "splits.csv").write_text("video,split\nx,training\n"),
     "splits.csv, line 2: split 'training' must be train, val or test"),
    (lambda f: (f / "splits.csv").unlink(), "no splits.csv"),
    (lambda f: (f / "splits.csv").write_text((f / "splits.csv").read_text()
                                             + f"{_first(f)},test\n"),
     "is in train and in test; a test video must not be trained on"),
    (lambda f: (f / "splits.csv").write_text((f / "splits.csv").read_text()
                                             + f"{_first(f)},train\n"),
     "is listed twice in train"),
])
def test_bad_folder_is_one_line_naming_file_and_line(cli_run, folder, tmp_path, breaker, message):
    breaker(folder)
    out = tmp_path / "res"
    code, _, err = cli_run("run", "--dataset", "features", "--root", folder, "--out", out, *TRAIN)
    assert code == 2
    assert message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (out / "runs").exists()


def test_length_mismatch_names_both_files(cli_run, folder, tmp_path):
    name = _first(folder)
    np.save(folder / "features" / "audio" / f"{name}.npy", np.zeros((7, 6), np.float32))
    code, _, err = cli_run("run", "--dataset", "features", "--root", folder, "--out", tmp_path, *TRAIN)
    assert code == 2
    assert f"audio/{name}.npy: 7 frames but" in err and f"labels/{name}.csv" in err


@pytest.mark.parametrize("args,message", [
    (["--root", "/nonexistent/feats"], "/nonexistent/feats: dataset folder does not exist"),
    ([], "give --root DIR"),
])
def test_missing_folder(cli_run, tmp_path, args, message):
    code, _, err = cli_run("run", "--dataset", "features", *args, "--out", tmp_path, *TRAIN)
    assert code == 2 and message in err, err


def test_unknown_modality_lists_the_available_ones(cli_run, folder, tmp_path):
    code, _, err = cli_run("run", "--dataset", "features", "--root", folder, "--modalities",
                           "visual,face", "--out", tmp_path, *TRAIN)
    assert code == 2
    assert "no folder for modality face" in err and "visual, audio, text" in err


def test_val_and_test_may_share_videos(folder):
    """Aff-Wild2's rule: its validation fold is scored as test."""
    from fusion_bench.data.features import read_splits

    val = _first(folder, "val")
    (folder / "splits.csv").write_text((folder / "splits.csv").read_text() + f"{val},test\n")
    assert val in read_splits(folder)["test"] and val in read_splits(folder)["val"]


# -- the user's folder is the user's dataset ------------------------------------------------------
def _keep_only(folder, *modalities):
    """Remove every other modality's features and masks from ``folder``."""
    import shutil

    for kind in ("features", "masks"):
        for d in (folder / kind).iterdir():
            if d.name not in modalities:
                shutil.rmtree(d)


def _one_record(out):
    (path,) = (out / "runs").glob("*.json")
    return json.loads(path.read_text())


def test_root_alone_trains_on_the_folder_with_its_modalities(cli_run, folder, tmp_path):
    _keep_only(folder, "audio", "visual")
    out = tmp_path / "res"
    code, stdout, err = cli_run("run", "--root", folder, "--out", out, *TRAIN)
    assert code == 0, err
    rec = _one_record(out)
    assert rec["config"]["data"]["name"] == rec["dataset"]["name"] == "features"
    assert rec["config"]["data"]["modalities"] == rec["dataset"]["modalities"] == ["visual", "audio"]
    assert rec["dataset"]["videos"] == {"train": 5, "val": 3, "test": 3}


def test_a_one_modality_folder_works_with_the_defaults(cli_run, folder, tmp_path):
    _keep_only(folder, "audio")
    out = tmp_path / "res"
    code, stdout, err = cli_run("run", "--root", folder, "--out", out, *TRAIN)
    assert code == 0, err
    rec = _one_record(out)
    assert rec["config"]["data"]["modalities"] == ["audio"] and "fusion" not in rec["plugins"]
    assert "audio only on features (audio)" in stdout
    assert "-only-audio-" in rec["run_id"]


def test_explicit_modalities_and_dataset_win_over_the_folder(cli_run, folder, tmp_path):
    from fusion_bench.config import build_config

    cfg = build_config("quick", None, [("data.root", str(folder)), ("data.modalities", "text")])
    assert (cfg.data.name, cfg.data.modalities) == ("features", ("text",))
    cfg = build_config("quick", None, [("data.root", str(folder)), ("data.name", "synthetic")])
    assert (cfg.data.name, cfg.data.modalities) == ("synthetic", ("visual", "audio", "text"))


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "does not exist"),
    (lambda d: (d / "videos").mkdir(parents=True), "has no features/<modality>/ folder"),
    (lambda d: (d / "features" / "visual").mkdir(parents=True), "has no splits.csv or splits.json"),
])
def test_root_alone_on_another_format_says_why_in_one_line(cli_run, tmp_path, make, message):
    d = tmp_path / "raw"
    make(d)
    code, _, err = cli_run("run", "--root", d, "--out", tmp_path / "res", *TRAIN)
    assert code == 2 and message in err and "--dataset NAME" in err, err
    assert len(err.strip().splitlines()) == 1


def test_extra_keys_in_splits_json_are_ignored_with_a_note(cli_run, folder, tmp_path):
    from fusion_bench.data.features import read_splits
    from fusion_bench.errors import Note

    names = read_splits(folder)
    (folder / "splits.csv").unlink()
    (folder / "splits.json").write_text(json.dumps({**names, "description": "my data", "version": 2}))
    with pytest.warns(Note, match=r"ignored keys 'description', 'version'"):
        assert read_splits(folder) == names
    out = tmp_path / "res"
    code, _, err = cli_run("run", "--root", folder, "--out", out, *TRAIN)
    assert code == 0, err
    notes = [ln for ln in err.splitlines() if ln.startswith("note: ")]
    assert notes and "splits.json: ignored keys 'description', 'version'" in notes[0], err
    assert _one_record(out)["dataset"]["videos"] == {"train": 5, "val": 3, "test": 3}


def test_sweep_takes_the_data_options_of_run(cli_run, folder, tmp_path):
    out = tmp_path / "res"
    code, stdout, err = cli_run("sweep", "--fusion", "concat,only:audio", "--seeds", "1",
                                "--root", folder, "--modalities", "visual,audio", "--encoder",
                                "lstm", "--set", "train.epochs=1", "--set", "encoder.channels=8",
                                "--out", out)
    assert code == 0, err
    recs = sorted((json.loads(p.read_text()) for p in (out / "runs").glob("*.json")),
                  key=lambda r: r["config"]["data"]["modalities"])
    assert [r["config"]["data"]["modalities"] for r in recs] == [["audio"], ["visual", "audio"]]
    assert {r["dataset"]["name"] for r in recs} == {"features"}
    assert {r["config"]["model"]["encoder"] for r in recs} == {"lstm"}
    # a modality the folder lacks, asked by --fusion only:M: the message does not blame --modalities
    code, _, err = cli_run("sweep", "--fusion", "only:face", "--seeds", "1", "--root", folder,
                           "--out", out)
    assert code == 2 and "'face' in data.modalities" in err and "--modalities" not in err, err


def test_a_one_modality_sweep_runs_each_model_once(cli_run, folder, tmp_path):
    """On one modality --fusion changes nothing: concat and rcma are one run."""
    _keep_only(folder, "visual")
    out = tmp_path / "res"
    code, stdout, err = cli_run("sweep", "--fusion", "concat,rcma", "--seeds", "1", "--root",
                                folder, "--out", out, *[a for a in TRAIN if a != "--quiet"])
    assert code == 0, err
    assert len(list((out / "runs").glob("*.json"))) == 1 and "1 run, 1 already stored" in stdout
