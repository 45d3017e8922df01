"""A features folder with labels.csv (one label row per sequence)."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_bench.data.features import (
    FeaturesDataset,
    FeaturesOptions,
    write_modality,
    write_splits,
)
from fusion_bench.errors import ConfigError, DataError

LABELS = "video,valence,arousal\nu1,0.5,-0.25\nu2,-1,1\nu3,0.1,-5\n"


def _folder(tmp_path, labels=LABELS):
    rows = {"u1": (3, 5), "u2": (4, 4), "u3": (2, 1)}  # (visual, audio) steps: each its own
    for v, (nv, na) in rows.items():
        write_modality(tmp_path, "visual", v, np.full((nv, 2), 1.0 + nv))
        write_modality(tmp_path, "audio", v, np.arange(na * 3).reshape(na, 3),
                       mask=np.arange(na) != 1 if v == "u2" else None)
    write_splits(tmp_path, {"train": ["u1"], "val": ["u2"], "test": ["u3"]})
    (tmp_path / "labels.csv").write_text(labels)
    return tmp_path


def test_one_row_per_sequence(tmp_path):
    ds = FeaturesDataset(_folder(tmp_path))
    assert ds.label_level == "sequence" and ds.targets == ("valence", "arousal")
    u1 = ds.splits()["train"][0]
    assert u1.labels.tolist() == [[0.5, -0.25]] and u1.labels.dtype == np.float32
    # visual 3 rows, audio 5: visual filled to 5 with masked zeros
    assert u1.features["visual"].shape == (5, 2) and u1.masks["visual"].tolist() == [True] * 3 + [False] * 2
    assert (u1.features["visual"][3:] == 0).all() and u1.masks["audio"].all()
    u2 = ds.splits()["val"][0]
    assert u2.masks["audio"].tolist() == [True, False, True, True]  # its masks/ file kept
    assert ds.splits()["test"][0].labels.tolist() == [[pytest.approx(0.1), -5.0]]
    assert ds.info()["label_level"] == "sequence"


@pytest.mark.parametrize("labels, message", [
    ("video,valence,arousal\nu1,0.5,0\nu2,0,0\n", r"labels.csv: no row for video 'u3' \(test in the "
                                                  r"split file\); add a row 'u3,...'"),
    (LABELS + "u9,0,0\n", r"labels.csv, line 5: video 'u9' is in no split; list it in the split file, or remove the row"),
    (LABELS + "u1,0,0\n", r"labels.csv, line 5: video 'u1' has a row already \(line 2\)"),
    (LABELS.replace("-0.25", "high"), r"labels.csv, line 2: arousal 'high' is not a number"),
    (LABELS.replace("-0.25", "nan"), r"labels.csv, line 2: arousal nan is outside \[-1, 1\]"),
    (LABELS.replace("-0.25", "2.5"), r"line 2: arousal 2.5 is outside \[-1, 1\] and is not the invalid "
                                     r"marker -5 \(set dataset.features.label_range"),
    (LABELS.replace("u2,-1,1", "u2,-1"), r"labels.csv, line 3: expected 3 values 'video,valence,arousal'"),
    (LABELS.replace("video,", "name,"), r"labels.csv, line 1: header must be 'video,<target>,...'"),
    (LABELS.replace("arousal", "valence"), r"labels.csv, line 1: header .*: target 'valence' is named twice"),
])
def test_bad_rows_name_the_file_and_line(tmp_path, labels, message):
    with pytest.raises(DataError, match=message):
        FeaturesDataset(_folder(tmp_path, labels))


def test_label_range_option(tmp_path):
    _folder(tmp_path, LABELS.replace("-0.25", "2.5"))
    ds = FeaturesDataset(tmp_path, options=FeaturesOptions(label_range=(-3.0, 3.0)))
    assert ds.splits()["train"][0].labels.tolist() == [[0.5, 2.5]]
    (tmp_path / "labels.csv").unlink()
    (tmp_path / "labels").mkdir()
    for v in ("u1", "u2", "u3"):  # a per-frame folder: its labels are in [-1, 1]
        (tmp_path / "labels" / f"{v}.csv").write_text("valence\n0\n")
    with pytest.raises(ConfigError, match="label_range is for labels.csv"):
        FeaturesDataset(tmp_path, options=FeaturesOptions(label_range=(-3.0, 3.0)))


def test_both_label_forms_are_refused(tmp_path):
    _folder(tmp_path)
    (tmp_path / "labels").mkdir()
    with pytest.raises(DataError, match=r"both labels/ \(a label per frame\) and labels.csv"):
        FeaturesDataset(tmp_path)


def test_fingerprint_follows_labels_csv(tmp_path):
    fp = FeaturesDataset(_folder(tmp_path)).fingerprint()
    (tmp_path / "labels.csv").write_text(LABELS.replace("0.5", "0.6"))
    assert FeaturesDataset(tmp_path).fingerprint() != fp
