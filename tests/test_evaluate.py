"""evaluate.score / score_all on two hand-made videos: frames labelled -5 are left out of every
metric, values computed by hand."""

import math

import numpy as np
import pytest

from fusion_bench.data import INVALID_LABEL, Video
from fusion_bench.evaluate import score, score_all
from fusion_bench.metrics import ccc, pearson, rmse


def video(name, labels):
    labels = np.asarray(labels, dtype=np.float32)
    n = len(labels)
    return Video(name, {"audio": np.zeros((n, 1), np.float32)}, {"audio": np.ones(n, bool)}, labels)


X = INVALID_LABEL
# frame 1 of "a" is unlabelled; its prediction is far off and must count for nothing. Frame 2
# of "b" has one target unlabelled: the whole frame is left out (Video.valid), both targets.
VIDEOS = [video("a", [[0, 0], [X, X], [0.5, 0.5]]), video("b", [[1, 1], [0.2, X]])]
PREDS = [np.array([[0, 0], [100, 100], [0.5, 1.5]]), np.array([[0, 3], [50, -50]])]
# valid frames: valence pred (0, .5, 0) vs (0, .5, 1): errors 0, 0, −1
#               arousal pred (0, 1.5, 3) vs (0, .5, 1): errors 0, 1, 2


def test_score_leaves_out_invalid_frames():
    got = score(PREDS, VIDEOS, metric=rmse)
    assert got["valence"] == pytest.approx(math.sqrt(1 / 3), abs=1e-15)
    assert got["arousal"] == pytest.approx(math.sqrt(5 / 3), abs=1e-15)
    assert got["mean"] == pytest.approx((math.sqrt(1 / 3) + math.sqrt(5 / 3)) / 2, abs=1e-15)
    # arousal: dx = (−1.5, 0, 1.5), dy = (−.5, 0, .5): r = 1
    assert score(PREDS, VIDEOS, metric=pearson)["arousal"] == pytest.approx(1.0, abs=1e-12)
    # the default is CCC, as the record's `metrics` has always been
    lab = np.array([0, 0.5, 1.0])
    assert score(PREDS, VIDEOS)["valence"] == ccc([0, 0.5, 0], lab)


def test_score_all_is_metric_then_split_then_target():
    frames = lambda pred, target: float(len(pred))  # noqa: E731
    got = score_all({"val": PREDS, "test": PREDS[:1]}, {"val": VIDEOS, "test": VIDEOS[:1]},
                    {"rmse": rmse, "frames": frames})
    assert set(got) == {"rmse", "frames"} and set(got["rmse"]) == {"val", "test"}
    assert got["frames"]["val"] == {"valence": 3.0, "arousal": 3.0, "mean": 3.0}
    assert got["frames"]["test"] == {"valence": 2.0, "arousal": 2.0, "mean": 2.0}
    assert got["rmse"]["val"] == score(PREDS, VIDEOS, metric=rmse)
