import numpy as np
import pytest
import torch

from fusion_bench.data import Video
from fusion_bench.data.windows import make_windows, window_starts
from fusion_bench.errors import ConfigError, DataError


@pytest.mark.parametrize("n,L,H", [(100, 64, 32), (64, 64, 32), (65, 64, 32), (300, 300, 200), (1000, 300, 200)])
def test_windows_cover_every_frame_and_stay_inside(n, L, H):
    starts = window_starts(n, L, H)
    covered = np.zeros(n, bool)
    for s in starts:
        assert 0 <= s and s + L <= max(n, L)
        covered[s : s + L] = True
    assert covered.all()
    assert starts == sorted(set(starts))


def test_short_video_is_one_padded_window():
    assert window_starts(10, 64, 32) == [0]
    v = Video("v", {"a": np.ones((10, 2), np.float32), "b": np.ones((10, 3), np.float32)},
              {"a": np.ones(10, bool), "b": np.ones(10, bool)}, np.zeros((10, 2), np.float32))
    w = make_windows([v], ("a", "b"), 16, 8)
    assert len(w) == 1
    assert w.masks["a"][0, :10].all() and not w.masks["a"][0, 10:].any()
    assert (w.feats["b"][0, 10:] == 0).all()
    assert w.valid[0, :10].all() and not w.valid[0, 10:].any()


@pytest.mark.parametrize("L,H", [(0, 1), (-3, 2), (8, 0)])
def test_zero_or_negative_window_is_a_config_error(L, H):
    with pytest.raises(ConfigError, match="positive"):
        window_starts(100, L, H)


def test_video_validation_names_video_and_modality():
    v = Video("clip7", {"visual": np.ones((10, 2), np.float32)}, {"visual": np.ones(10, bool)},
              np.zeros((12, 2), np.float32))
    with pytest.raises(DataError, match=r"clip7.*visual.*10 feature frames but 12 label frames"):
        v.validate({"visual": 2})
    bad = Video("c", {"visual": np.ones((3, 2), np.float32)}, {"visual": np.ones(3, bool)},
                np.array([[0, 0], [2.0, 0], [0, 0]], np.float32))
    with pytest.raises(DataError, match="frame 1"):
        bad.validate({"visual": 2})


# ------------------------------------------------------------------------- the window rule


@pytest.mark.parametrize("lengths,expected", [
    ([10, 20, 30, 40, 50], 16),  # lower quartile 20 → 16
    (list(range(10, 301)), 64),  # 10..300 evenly: quartile 82.5 → 64
    (list(range(300, 901)), 64),  # the default synthetic data: capped at 64
    ([33, 33, 33, 33], 32),  # exactly 33 → 32; exactly a power of two stays
    ([32, 32, 100, 200], 32),  # quartile 32 → 32
    ([5, 6, 7, 900], 4),  # quartile 5.75 → 4
    ([1], 1),
    ([3, 1000], 64),  # quartile 252.25 → 128, capped
])
def test_window_rule_is_a_power_of_two_at_most_the_lower_quartile_capped_at_64(lengths, expected):
    from fusion_bench.data.windows import window_rule

    assert window_rule(lengths) == expected


def test_resolve_windows_derives_only_what_is_left_to_the_data():
    from fusion_bench.data.windows import resolve_windows

    short = [10, 20, 30, 40, 50]  # → window 16
    assert resolve_windows(0, 0, 0, short) == (16, 8, 4)  # hop window/2, eval hop window/4
    assert resolve_windows(64, 64, 16, short) == (64, 64, 16)  # set: kept as set
    assert resolve_windows(32, 0, 0, short) == (32, 16, 8)
    assert resolve_windows(64, 64, 0, short) == (64, 64, 64)  # eval hop 0 with a hop: the hop
    assert resolve_windows(0, 4, 0, short) == (16, 4, 4)
    assert resolve_windows(0, 0, 0, [1, 1, 1]) == (1, 1, 1)  # never below 1
    with pytest.raises(ConfigError, match=r"data.hop \(20\) is longer.*window 16"):
        resolve_windows(0, 20, 0, short)


def test_present_marks_the_padding_and_its_share_is_counted_by_hand():
    def video(n):
        return Video("v", {"a": np.ones((n, 2), np.float32)}, {"a": np.ones(n, bool)},
                     np.zeros((n, 2), np.float32))

    # 10 frames: one window of 16, 6 padded; 40 frames: starts 0, 8, 16, 24, no padding
    w = make_windows([video(10), video(40)], ("a",), 16, 8)
    assert len(w) == 5
    assert w.present[0, :10].all() and not w.present[0, 10:].any()
    assert w.present[1:].all()
    assert w.padding_share() == 6 / (5 * 16)
    assert w.present_of(torch.tensor([1, 2]), "cpu") is None  # no padding: the fast path
    assert w.present_of(torch.tensor([0, 1]), "cpu").tolist() == w.present[[0, 1]].tolist()


def _windows_one_by_one(videos, modalities, length, hop):
    """Each window copied from its video as the definition reads (what make_windows computes
    with one gather per array): frames s..s+L, zero / False / -5 past the video's end."""
    out = []
    for i, v in enumerate(videos):
        for s in window_starts(v.n_frames, length, hop):
            e = min(s + length, v.n_frames)
            w = {"video": i, "start": s, "present": np.arange(length) < e - s}
            for m in modalities:
                f = np.zeros((length, v.features[m].shape[1]), np.float32)
                f[: e - s] = v.features[m][s:e]
                k = np.zeros(length, bool)
                k[: e - s] = v.masks[m][s:e]
                w[m] = (f, k)
            lab = np.full((length, v.labels.shape[1]), -5.0, np.float32)
            lab[: e - s] = v.labels[s:e]
            w["labels"], w["valid"] = lab, (lab != -5).all(1)
            out.append(w)
    return out


def test_windows_hold_exactly_their_videos_frames():
    rng = np.random.default_rng(3)
    videos = []
    for i, n in enumerate([5, 40, 23, 64, 1, 70]):  # shorter than, equal to, longer than L
        labels = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        labels[rng.random(n) < 0.2, 1] = -5.0  # some invalid frames
        videos.append(Video(f"v{i}", {"a": rng.normal(size=(n, 3)).astype(np.float32),
                                      "b": rng.normal(size=(n, 2))},  # float64: cast to float32
                            {"a": rng.random(n) < 0.7, "b": np.ones(n, bool)}, labels))
    w = make_windows(videos, ("a", "b"), 16, 6)
    want = _windows_one_by_one(videos, ("a", "b"), 16, 6)
    assert len(w) == len(want)
    for j, ref in enumerate(want):
        assert (int(w.video[j]), int(w.start[j])) == (ref["video"], ref["start"])
        assert np.array_equal(w.present[j].numpy(), ref["present"])
        for m in ("a", "b"):
            assert w.feats[m].dtype == torch.float32
            assert np.array_equal(w.feats[m][j].numpy(), ref[m][0])
            assert np.array_equal(w.masks[m][j].numpy(), ref[m][1])
        assert np.array_equal(w.labels[j].numpy(), ref["labels"])
        assert np.array_equal(w.valid[j].numpy(), ref["valid"])


@pytest.mark.parametrize("order", [("x", "empty"), ("empty", "x")])
def test_a_video_without_frames_is_one_window_of_padding_wherever_it_is(order):
    n = {"x": 5, "empty": 0}
    videos = [Video(k, {"a": np.ones((n[k], 3), np.float32)}, {"a": np.ones(n[k], bool)},
                    np.zeros((n[k], 2), np.float32)) for k in order]
    w = make_windows(videos, ("a",), 4, 2)
    empty = order.index("empty")
    (j,) = np.flatnonzero(w.video.numpy() == empty)  # its one window
    assert not w.present[j].any() and not w.masks["a"][j].any() and not w.valid[j].any()
    assert (w.feats["a"][j] == 0).all() and (w.labels[j] == -5).all()
    assert int(w.present.sum()) == 8  # x: windows at 0 and 1 (4 + 4 real positions)
