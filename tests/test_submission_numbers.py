"""The submission CSV read back and compared with the predictions it was written from, value by
value (issue 16 item 11: columns swapped went unnoticed)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from fusion_bench.submission import write_submission


def test_the_csv_holds_valence_then_arousal_frame_by_frame(tmp_path):
    """Bug: valence and arousal columns swapped (or frames misnumbered, or not clipped)."""
    preds = {
        "12-24-1920x1080": np.array([[0.1, -0.7], [0.25, 0.5], [-0.333333333, 0.9]]),
        "video2_left": np.array([[1.5, -2.0], [-0.0625, 0.125]]),  # clipped to [-1, 1]
    }
    path = tmp_path / "sub.csv"
    assert write_submission(path, preds) == 5
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["image_location", "valence", "arousal"]
    want = [
        ("12-24-1920x1080/00001.jpg", 0.1, -0.7),
        ("12-24-1920x1080/00002.jpg", 0.25, 0.5),
        ("12-24-1920x1080/00003.jpg", -0.333333, 0.9),
        ("video2_left/00001.jpg", 1.0, -1.0),
        ("video2_left/00002.jpg", -0.0625, 0.125),
    ]
    assert [r[0] for r in rows[1:]] == [w[0] for w in want]
    got = np.array([[float(r[1]), float(r[2])] for r in rows[1:]])
    np.testing.assert_allclose(got, [w[1:] for w in want], atol=5e-7)
    # and against the arrays themselves: column 1 is prediction column 0 (valence)
    stacked = np.clip(np.concatenate(list(preds.values())), -1, 1)
    np.testing.assert_allclose(got[:, 0], stacked[:, 0], atol=5e-7)
    np.testing.assert_allclose(got[:, 1], stacked[:, 1], atol=5e-7)


def test_a_bad_prediction_array_writes_nothing(tmp_path):
    from fusion_bench.errors import DataError

    path = tmp_path / "sub.csv"
    with pytest.raises(DataError, match="must be \\(frames, 2\\)"):
        write_submission(path, {"a": np.zeros((3, 2)), "b": np.zeros((3, 3))})
    assert not path.exists()
