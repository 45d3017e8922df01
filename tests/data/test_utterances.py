"""The synthetic generator's sequence level: utterances cut from the frame-level videos, one
label each from the latents."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_bench.data.synthetic import SyntheticDataset
from fusion_bench.data.utterances import cuts
from fusion_bench.errors import ConfigError

SMALL = {"n_train": 3, "n_val": 2, "n_test": 2, "min_frames": 120, "max_frames": 200}


def test_cuts_by_hand():
    class Fixed:  # a generator whose every draw is 20
        def integers(self, lo, hi):
            return 20
    assert cuts(50, 20, 20, Fixed()) == [(0, 20), (20, 40)]  # the last 10 frames: too short
    assert cuts(10, 20, 20, Fixed()) == [(0, 10)]  # a video shorter than lo: one utterance
    assert cuts(40, 20, 20, Fixed()) == [(0, 20), (20, 40)]


def test_utterances_are_the_frame_level_videos_cut():
    frame = SyntheticDataset(SMALL).splits()
    sequence = SyntheticDataset({**SMALL, "label_level": "sequence"}).splits()
    for split in ("train", "val", "test"):
        by_name = {v.name: v for v in frame[split]}
        covered = {}
        for u in sequence[split]:
            parent = by_name[u.meta["video"]]
            s, n = u.meta["start"], u.n_frames
            assert 20 <= n <= 100 and u.labels.shape == (1, 2)
            for m in parent.features:  # the same frames, unchanged
                assert np.array_equal(u.features[m], parent.features[m][s:s + n])
                assert np.array_equal(u.masks[m], parent.masks[m][s:s + n])
            covered.setdefault(parent.name, []).append((s, s + n))
        for name, pieces in covered.items():  # consecutive from frame 0, at most 19 left over
            assert pieces[0][0] == 0 and all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False))
            assert by_name[name].n_frames - pieces[-1][1] < 20


def test_label_is_the_mean_latent_over_the_utterance():
    ds = SyntheticDataset({**SMALL, "label_level": "sequence", "label_noise": 0.0})
    frame = SyntheticDataset(SMALL)
    frame.splits()
    latents = dict(zip([v.name for v in frame.splits()["test"]], frame._latents["test"], strict=True))
    for u in ds.splits()["test"]:
        s, n = u.meta["start"], u.n_frames
        want = latents[u.meta["video"]][s:s + n].mean(0)
        assert u.labels[0] == pytest.approx(want, abs=1e-6)
    assert ds.ceiling("test")["mean"] == pytest.approx(1.0)  # noiseless: label = latent mean
    assert ds.label_level == "sequence" and ds.info()["generator"]["label_level"] == "sequence"


def test_frame_level_record_names_no_sequence_knob():
    info = SyntheticDataset(SMALL).info()
    assert not any("utterance" in k or k == "label_level" for k in info["generator"])


def test_bad_sequence_knobs_are_one_line():
    with pytest.raises(ConfigError, match="label_level must be 'frame' or 'sequence'"):
        SyntheticDataset({"label_level": "utterance"})
    with pytest.raises(ConfigError, match="utterance_max_frames \\(10\\) is below"):
        SyntheticDataset({"label_level": "sequence", "utterance_max_frames": 10})
