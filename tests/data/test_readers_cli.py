"""The three utterance-level readers through the CLI: `run --dataset mmsa --root FILE.pkl`,
`--dataset csd --root DIR`, a features folder with labels.csv; and their errors as one line."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from fusion_bench.data.features import write_modality, write_splits

from .test_csd import _folder as csd_folder
from .test_mmsa import _split
from .test_safe_pickle import _Marker

# training at sequence level is the seq branch's part of issue 18; these run once it is on main
SMALL = ["--set", "train.epochs=2", "--set", "encoder.channels=8", "--set", "encoder.levels=2", "--quiet"]


def _record(out):
    (path,) = sorted((out / "runs").glob("*.json"))
    return json.loads(path.read_text())


def _mmsa_file(tmp_path):
    rng = np.random.default_rng(0)
    data = {}
    for i, (s, n) in enumerate((("train", 12), ("valid", 4), ("test", 4))):
        data[s] = _split(n, aligned=False, steps=(6, 8, 5), text_len=list(rng.integers(2, 7, n)),
                         a_len=list(rng.integers(1, 9, n)), v_len=list(rng.integers(0, 6, n)),
                         labels=rng.uniform(-3, 3, n), seed=i)
    p = tmp_path / "unaligned_50.pkl"
    p.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    return p


def test_run_on_an_mmsa_pickle(cli_run, tmp_path):
    out = tmp_path / "res"
    code, stdout, err = cli_run("run", "--dataset", "mmsa", "--root", _mmsa_file(tmp_path),
                                "--out", out, *SMALL)
    assert code == 0, err
    rec = _record(out)
    assert rec["dataset"]["name"] == "mmsa" and rec["dataset"]["videos"] == {"train": 12, "val": 4, "test": 4}
    assert "sentiment" in rec["metrics"]["test"]


def test_run_on_csd_sequences(cli_run, tmp_path):
    (tmp_path / "csd").mkdir()
    root = csd_folder(tmp_path / "csd", videos=("a", "b", "c", "d"))
    out = tmp_path / "res"
    code, stdout, err = cli_run("run", "--dataset", "csd", "--root", root, "--out", out, *SMALL)
    assert code == 0, err
    rec = _record(out)
    assert rec["dataset"]["name"] == "csd" and rec["dataset"]["videos"] == {"train": 2, "val": 2, "test": 4}


def labels_csv_folder(root) -> list[str]:
    """A features folder with one label row per video (labels.csv): 16 videos u00..u15, audio
    (4-d) and visual (3-d) of 3-11 rows each, its own number per modality, the features offset
    by the labels; train u00-u07, val u08-u11, test u12-u15. Returns the video names."""
    rng, rows = np.random.default_rng(2), ["video,valence,arousal"]
    names = [f"u{i:02d}" for i in range(16)]
    for v in names:
        y = rng.uniform(-1, 1, 2)
        write_modality(root, "audio", v, rng.normal(size=(rng.integers(3, 12), 4)) + y[0])
        write_modality(root, "visual", v, rng.normal(size=(rng.integers(3, 12), 3)) + y[1])
        rows.append(f"{v},{y[0]:.3f},{y[1]:.3f}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    write_splits(root, {"train": names[:8], "val": names[8:12], "test": names[12:]})
    return names


def test_run_on_a_features_folder_with_labels_csv(cli_run, tmp_path):
    out, root = tmp_path / "res", tmp_path / "f"
    labels_csv_folder(root)
    code, stdout, err = cli_run("run", "--root", root, "--out", out, *SMALL)
    assert code == 0, err
    assert set(_record(out)["metrics"]["test"]) >= {"valence", "arousal"}


def test_a_pickle_that_would_run_code_is_one_line_and_never_runs(cli_run, tmp_path):
    marker = tmp_path / "ran"
    p = tmp_path / "aligned_50.pkl"
    p.write_bytes(pickle.dumps({"train": {"vision": _Marker(marker)}}))
    code, stdout, err = cli_run("run", "--dataset", "mmsa", "--root", p, "--out", tmp_path / "res", *SMALL)
    assert code == 2 and not marker.exists()
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert "refused to load the global" in err and str(p) in err


@pytest.mark.parametrize("args, message", [
    (["--dataset", "csd", "--set", "dataset.csd.splits=../splits.json"], "name a file inside"),
    (["--dataset", "mmsa", "--set", "dataset.mmsa.text_key=text_bert"], "holds BERT's token ids"),
])
def test_reader_errors_are_one_line(cli_run, tmp_path, args, message):
    (tmp_path / "csd").mkdir()
    root = csd_folder(tmp_path / "csd")
    code, _, err = cli_run("run", "--root", root, *args, "--out", tmp_path / "res", *SMALL)
    assert code == 2 and err.strip().count("\n") == 0 and message in err, err


def test_list_shows_the_readers_options(cli_run):
    code, stdout, _ = cli_run("list", "datasets", "--options")
    assert code == 0
    for key in ("dataset.mmsa.labels", "dataset.mmsa.pad_location", "dataset.csd.align_to",
                "dataset.csd.splits", "dataset.features.label_range"):
        assert key in stdout
