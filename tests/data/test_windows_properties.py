"""Properties of windowing and overlap averaging for any videos, window and hop (hypothesis;
issue 16 item 9): every frame of every video is in some window, and a window's positions hold
the frames they claim; predicting each frame's own index through the windows and averaging
gives the index back exactly; what is predicted at the padding past a video's end reaches no
frame and is never scored."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from fusion_bench.data import INVALID_LABEL, Video
from fusion_bench.data.windows import make_windows, window_starts
from fusion_bench.evaluate import predict, score

SETTINGS = settings(max_examples=50, deadline=None)
CPU = torch.device("cpu")


@st.composite
def layouts(draw):
    """(frame counts of 1-3 videos, window L, hop H ≤ L); the configuration refuses H > L."""
    length = draw(st.integers(1, 40))
    hop = draw(st.integers(1, length))
    sizes = draw(st.lists(st.integers(1, 3 * length + 5), min_size=1, max_size=3))
    return sizes, length, hop


def videos_of(sizes, labelled=None):
    """Videos whose feature is the frame index (column 0) and the video index (column 1);
    labels valid except where ``labelled`` (per video, bool (n,)) says otherwise."""
    out = []
    for i, n in enumerate(sizes):
        f = np.stack([np.arange(n), np.full(n, i)], 1).astype(np.float32)
        lab = np.zeros((n, 2), np.float32)
        if labelled is not None:
            lab[~labelled[i]] = INVALID_LABEL
        out.append(Video(f"v{i}", {"a": f}, {"a": np.ones(n, bool)}, lab))
    return out


class FrameIndex(nn.Module):
    """Predicts each position's frame index (output 0) and its position in the window
    (output 1); a position without a frame (mask False: padding) is predicted as 1e6."""

    def forward(self, feats, masks, *_):
        x, m = feats["a"][..., 0], masks["a"]
        pos = torch.arange(x.shape[1], dtype=x.dtype).expand_as(x)
        out = torch.stack([x, pos], -1)
        return torch.where(m[..., None], out, torch.full_like(out, 1e6))


@SETTINGS
@given(layouts())
def test_every_frame_is_in_a_window_and_windows_hold_their_frames(layout):
    sizes, length, hop = layout
    videos = videos_of(sizes)
    w = make_windows(videos, ("a",), length, hop)
    assert w.labels.shape[1] == length
    for i, n in enumerate(sizes):
        starts = window_starts(n, length, hop)
        assert starts == sorted(set(starts)) and all(0 <= s < n for s in starts)
        covered = np.zeros(n, int)
        for s in starts:
            covered[s : s + length] += 1
        assert covered.min() >= 1, f"frames {np.flatnonzero(covered == 0)} of {n} in no window"
        # the windows of video i, as make_windows stacked them
        mine = (w.video == i).nonzero().flatten().tolist()
        assert [int(w.start[k]) for k in mine] == starts
        for k in mine:
            s = int(w.start[k])
            real = min(length, n - s)
            feat = w.feats["a"][k]
            assert feat[:real, 0].tolist() == list(range(s, s + real))
            assert (feat[:real, 1] == i).all()
            assert w.masks["a"][k, :real].all() and w.valid[k, :real].all()
            # padding: no frame, no label, zero features
            assert not w.masks["a"][k, real:].any() and not w.valid[k, real:].any()
            assert (w.labels[k, real:] == INVALID_LABEL).all() and (feat[real:] == 0).all()


@SETTINGS
@given(layouts(), st.integers(1, 7))
def test_overlap_averaging_gives_each_frame_its_own_index_back(layout, batch_size):
    sizes, length, hop = layout
    videos = videos_of(sizes)
    w = make_windows(videos, ("a",), length, hop)
    preds = predict(FrameIndex(), w, videos, CPU, batch_size=batch_size)
    assert [p.shape for p in preds] == [(n, 2) for n in sizes]  # padding is no frame
    for p, n in zip(preds, sizes, strict=True):
        np.testing.assert_array_equal(p[:, 0], np.arange(n))  # not 1e6: padding reached no frame
        # output 1 (the position in the window) is averaged over the windows holding the frame
        total, count = np.zeros(n), np.zeros(n)
        for s in window_starts(n, length, hop):
            e = min(s + length, n)
            total[s:e] += np.arange(e - s)
            count[s:e] += 1
        np.testing.assert_allclose(p[:, 1], total / count, rtol=0, atol=1e-12)


@SETTINGS
@given(layouts(), st.data())
def test_only_valid_frames_are_scored(layout, data):
    """Scoring through the windows: a prediction perfect on the valid frames and absurd on the
    -5 ones scores CCC 1 (padding cannot enter: it is not a frame of any prediction)."""
    sizes, length, hop = layout
    labelled = [np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
                for n in sizes]
    videos = videos_of(sizes, labelled)
    assume(np.concatenate(labelled).sum() >= 2)
    for v, keep in zip(videos, labelled, strict=True):  # labels: the frame index / 1024, exact
        v.labels[keep] = np.arange(v.n_frames)[keep, None] / 1024
    w = make_windows(videos, ("a",), length, hop)
    preds = predict(FrameIndex(), w, videos, CPU)
    preds = [np.where(keep[:, None], p[:, :1] / 1024, 1e3).repeat(2, 1)
             for p, keep in zip(preds, labelled, strict=True)]
    got = score(preds, videos)
    assert got["valence"] == got["arousal"] == got["mean"]
    assert abs(got["mean"] - 1.0) < 1e-12
