import numpy as np
import pytest

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
