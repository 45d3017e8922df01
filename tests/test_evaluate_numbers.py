"""The numbers every leaderboard is made of, computed by hand on arrays small enough to check on
paper: which frames are scored (a -5 frame, a half-labelled frame), how two overlapping windows
are averaged into per-frame predictions, and the unit of the robustness noise.

Each test here was written against a planted bug that the rest of the suite let through (issue
16 item 11); the bug it catches is named in its docstring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from fusion_bench.data import INVALID_LABEL, Video
from fusion_bench.data.windows import make_windows
from fusion_bench.evaluate import feature_scale, predict, predict_into, score
from fusion_bench.metrics import ccc, ccc_loss

X = INVALID_LABEL
CPU = torch.device("cpu")


def lin(x, y):
    """Lin's CCC from its formula, population moments."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    vx = sum((a - mx) ** 2 for a in x) / n
    vy = sum((b - my) ** 2 for b in y) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / n
    return 2 * cov / (vx + vy + (mx - my) ** 2)


def video(name, labels, feats=None, mask=None):
    labels = np.asarray(labels, dtype=np.float32)
    n = len(labels)
    f = np.zeros((n, 1), np.float32) if feats is None else np.asarray(feats, np.float32).reshape(n, -1)
    m = np.ones(n, bool) if mask is None else np.asarray(mask, bool)
    return Video(name, {"a": f}, {"a": m}, labels)


# ------------------------------------------------------------------ which frames are scored

# Video "a": frame 1 is unlabelled (-5, -5) and predicted absurdly; video "b": frame 1 has a
# valence label but no arousal label (0.2, -5), so the whole frame is invalid for both targets.
# The valid frames, concatenated over the two videos in order:
#   valence  label (0, .5, 1)    pred (0, 1, 1)
#            means 1/2, 2/3; var_y = 1/6, var_x = 2/9, cov = 1/6, (mx - my)^2 = 1/36
#            CCC = (2/6) / (2/9 + 1/6 + 1/36) = (1/3) / (15/36) = 0.8
#   arousal  label (.5, -.5, 0)  pred (.5, -.5, 0)  -> CCC = 1
VIDEOS = [video("a", [[0, 0.5], [X, X], [0.5, -0.5]]), video("b", [[1, 0], [0.2, X]])]
PREDS = [np.array([[0, 0.5], [100, -100], [1, -0.5]]), np.array([[1, 0], [-50, 50]])]


def test_the_score_is_the_ccc_of_the_valid_frames_only():
    """Bugs: scoring that ignores the -5 mask; a frame valid when only one target is labelled."""
    got = score(PREDS, VIDEOS)
    assert got["valence"] == pytest.approx(0.8, abs=1e-12)
    assert got["arousal"] == pytest.approx(1.0, abs=1e-12)
    assert got["mean"] == pytest.approx(0.9, abs=1e-12)


def test_one_target_scored_alone_uses_the_same_frames():
    """A per-target model's score (columns): the half-labelled frame is out for valence too."""
    preds = [p[:, :1].copy() for p in PREDS]  # a valence-only model: one prediction column
    got = score(preds, VIDEOS, targets=("valence", "arousal"), columns=(0,))
    assert got == {"valence": pytest.approx(0.8, abs=1e-12), "mean": pytest.approx(0.8, abs=1e-12)}


def test_a_frame_is_valid_only_if_every_target_is_labelled():
    """Bug: ``Video.valid`` with any() in place of all()."""
    v = video("v", [[0, 0], [X, 0.5], [0.5, X], [X, X], [-1, 1]])
    assert v.valid.tolist() == [True, False, False, False, True]
    w = make_windows([v], ("a",), 5, 5)  # the windows' valid is the frames' valid
    assert w.valid[0].tolist() == [True, False, False, False, True]


def test_windows_hold_each_frame_where_it_falls_and_blank_the_padding():
    """Two videos (5 and 2 frames) cut at length 4, hop 2: windows start at 0, 1 (flush with the
    end) and 0; past a video's end the features are 0, the mask False, the label -5 and the
    frame not valid, and a missing frame inside the video keeps its mask False."""
    a = video("a", [[0.1 * i, -0.1 * i] for i in range(5)], feats=[1, 2, 3, 4, 5],
              mask=[True, True, False, True, True])
    b = video("b", [[X, X], [0.5, 0.5]], feats=[7, 8])  # its last frame labelled
    w = make_windows([a, b], ("a",), 4, 2)
    assert w.video.tolist() == [0, 0, 1] and w.start.tolist() == [0, 1, 0]
    assert w.feats["a"][..., 0].tolist() == [[1, 2, 3, 4], [2, 3, 4, 5], [7, 8, 0, 0]]
    assert w.masks["a"].tolist() == [[True, True, False, True], [True, False, True, True],
                                     [True, True, False, False]]
    assert w.present.tolist() == [[True] * 4, [True] * 4, [True, True, False, False]]
    assert w.valid.tolist() == [[True] * 4, [True] * 4, [False, True, False, False]]
    assert w.labels[1, :, 0].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert w.labels[2].tolist() == [[X, X], [0.5, 0.5], [X, X], [X, X]]


def test_ccc_with_a_mask_scores_only_the_masked_in_frames():
    """Bug: ``metrics.ccc`` ignoring its mask (the same numbers as above, garbage masked out)."""
    pred = [0, 100, 1, 1, -50]
    target = [0, X, 0.5, 1, 0.2]
    mask = [True, False, True, True, False]
    assert ccc(pred, target, mask) == pytest.approx(0.8, abs=1e-12)
    assert ccc(pred, target, np.array(mask)) == ccc([0, 1, 1], [0, 0.5, 1])


def test_the_training_loss_leaves_out_the_frames_its_mask_leaves_out():
    """``ccc_loss`` pooled over a batch of two windows, and per window, with -5 frames masked."""
    pred = torch.tensor([[0.0, 100.0, 1.0], [1.0, -50.0, 7.0]])
    target = torch.tensor([[0.0, X, 0.5], [1.0, X, X]])
    valid = torch.tensor([[True, False, True], [True, False, False]])
    # pooled: valid frames pred (0, 1, 1), target (0, .5, 1): 1 - 0.8
    assert float(ccc_loss(pred, target, valid, per_window=False)) == pytest.approx(0.2, abs=1e-6)
    # per window: window 2 has one valid frame and does not count; window 1: pred (0, 1),
    # target (0, .5): var_x = 1/4, var_y = 1/16, cov = 1/8, (mx - my)^2 = 1/16 -> CCC = 2/3
    assert float(ccc_loss(pred, target, valid, per_window=True)) == pytest.approx(1 / 3, abs=1e-6)


# ------------------------------------------------------------- overlap-averaged predictions


class WhereInTheWindow(nn.Module):
    """Output 0: the frame's feature plus its position in the window (so two windows holding
    one frame predict it differently); output 1: minus the feature. Padding (mask False) is
    predicted as 1e6, which must never reach a frame."""

    def forward(self, feats, masks, *_):
        x, m = feats["a"][..., 0], masks["a"]
        pos = torch.arange(x.shape[1], dtype=x.dtype).expand_as(x)
        out = torch.stack([x + pos, -x], -1)
        return torch.where(m[..., None], out, torch.full_like(out, 1e6))


def two_videos():
    """A video of 5 frames (features 0, 10, .., 40) cut by L=3, H=2 into windows at 0 and 2,
    which share frame 2; and one of 2 frames (features 100, 110), a single padded window."""
    a = video("a", np.zeros((5, 2)), feats=[0, 10, 20, 30, 40])
    b = video("b", np.zeros((2, 2)), feats=[100, 110])
    return [a, b]


# video a: frame 0: window 0 at position 0 -> 0;  frame 1: window 0 position 1 -> 11
#          frame 2: window 0 position 2 (22) and window 1 position 0 (20) -> mean 21
#          frame 3: window 1 position 1 -> 31;    frame 4: window 1 position 2 -> 42
# video b: 100 + 0, 110 + 1; its padded third position (1e6) belongs to no frame
EXPECTED = [np.array([[0, 0], [11, -10], [21, -20], [31, -30], [42, -40]], float),
            np.array([[100, -100], [111, -110]], float)]


@pytest.mark.parametrize("batch_size", [1, 2, 256])
def test_two_overlapping_windows_are_averaged_frame_by_frame(batch_size):
    """Bugs: the last window wins (frame 2 = 20), windows summed (frame 2 = 42), the last frame
    never predicted (frame 4 = 0), padding scored (1e6 somewhere)."""
    videos = two_videos()
    w = make_windows(videos, ("a",), 3, 2)
    assert w.start.tolist() == [0, 2, 0] and w.video.tolist() == [0, 0, 1]
    got = predict(WhereInTheWindow(), w, videos, CPU, batch_size=batch_size)
    assert [g.shape for g in got] == [(5, 2), (2, 2)]
    for g, e in zip(got, EXPECTED, strict=True):
        np.testing.assert_array_equal(g, e)


def test_predict_into_fills_only_its_columns():
    """A per-target model writes its one output into its target's column of the shared array."""
    videos = two_videos()
    w = make_windows(videos, ("a",), 3, 2)

    class Arousal(WhereInTheWindow):
        def forward(self, feats, masks, *_):
            return super().forward(feats, masks)[..., :1]

    dest = [np.full((v.n_frames, 2), 7.0) for v in videos]
    predict_into(dest, (1,), Arousal(), w, videos, CPU)
    for d, e in zip(dest, EXPECTED, strict=True):
        np.testing.assert_array_equal(d[:, 0], 7.0)  # valence untouched
        np.testing.assert_array_equal(d[:, 1], e[:, 0])


def test_scores_of_overlap_averaged_predictions_by_hand():
    """End to end: windows -> averaged predictions -> CCC over the valid frames. The labels are
    the hand-averaged predictions / 100, except video b's last frame (1.11 predicted, label 1);
    the shared frame 2 is half-labelled and its first frame unlabelled."""
    videos = two_videos()
    videos[0].labels[:] = np.array([[0, 0], [0.11, -0.1], [0.21, X], [0.31, -0.3], [0.42, -0.4]])
    videos[1].labels[:] = np.array([[X, X], [1, -1]])
    preds = predict(WhereInTheWindow(), make_windows(videos, ("a",), 3, 2), videos, CPU)
    preds = [p / 100 for p in preds]
    # valid frames: a0, a1, a3, a4, b1
    valence = lin([0, 0.11, 0.31, 0.42, 1.11], [0, 0.11, 0.31, 0.42, 1.0])
    arousal = lin([0, -0.1, -0.3, -0.4, -1.1], [0, -0.1, -0.3, -0.4, -1.0])
    got = score(preds, videos)
    assert got["valence"] == pytest.approx(valence, abs=1e-6)  # float32 labels
    assert got["arousal"] == pytest.approx(arousal, abs=1e-6)
    assert 0.99 < valence < arousal < 1  # not degenerate values, told apart


# ------------------------------------------------------------------- robustness noise unit


def test_the_noise_unit_is_the_std_over_present_frames_only():
    """Bug: ``feature_scale`` over every frame, missing ones (zero features) included."""
    # modality a present at values 1, 3, 5 (video 1) and 7 (video 2): mean 4, deviations
    # -3, -1, 1, 3: std sqrt(20 / 4) = sqrt(5). Missing frames hold 0 (and 1000) features.
    # Modality b: 2 features, present frames (0, 10) and (4, 10): std (2, 0).
    v1 = Video("v1", {"a": np.array([[1], [3], [0], [5]], np.float32),
                      "b": np.array([[0, 10], [1000, 1000], [4, 10], [0, 0]], np.float32)},
               {"a": np.array([True, True, False, True]), "b": np.array([True, False, True, False])},
               np.zeros((4, 2), np.float32))
    v2 = Video("v2", {"a": np.array([[7], [1000]], np.float32), "b": np.zeros((2, 2), np.float32)},
               {"a": np.array([True, False]), "b": np.array([False, False])},
               np.zeros((2, 2), np.float32))
    got = feature_scale([v1, v2], ["a", "b"])
    assert set(got) == {"a", "b"}
    assert got["a"].tolist() == pytest.approx([math.sqrt(5)], abs=1e-6)
    assert got["b"].tolist() == pytest.approx([2.0, 0.0], abs=1e-6)


def test_a_modality_never_present_has_no_noise_unit():
    v = Video("v", {"a": np.ones((3, 1), np.float32), "c": np.full((3, 2), 9, np.float32)},
              {"a": np.ones(3, bool), "c": np.zeros(3, bool)}, np.zeros((3, 2), np.float32))
    got = feature_scale([v], ["a", "c"])
    assert set(got) == {"a"} and got["a"].tolist() == [0.0]
