import numpy as np
import pytest

from fusion_bench.data.synthetic import SyntheticConfig, SyntheticDataset, interaction_check
from fusion_bench.errors import ConfigError

SMALL = SyntheticConfig(n_train=8, n_val=2, n_test=8, min_frames=200, max_frames=400)


def test_same_seed_same_data_other_seed_other_data():
    a = SyntheticDataset(SMALL, seed=3).splits()
    b = SyntheticDataset(SMALL, seed=3).splits()
    c = SyntheticDataset(SMALL, seed=4).splits()
    for va, vb in zip(a["train"], b["train"], strict=True):
        assert va.n_frames == vb.n_frames
        np.testing.assert_array_equal(va.labels, vb.labels)
        for m in va.features:
            np.testing.assert_array_equal(va.features[m], vb.features[m])
            np.testing.assert_array_equal(va.masks[m], vb.masks[m])
    assert not np.array_equal(a["train"][0].features["visual"][:100], c["train"][0].features["visual"][:100])


def test_shapes_masks_and_invalid_runs():
    ds = SyntheticDataset(SyntheticConfig(n_train=20, n_val=2, n_test=2), seed=0)
    vids = ds.splits()["train"]
    for v in vids:
        v.validate(ds.dims)
        assert SMALL.min_frames <= v.n_frames <= 900
        for m in ("visual", "audio"):  # occluded/silent frames are zero and masked
            assert (v.features[m][~v.masks[m]] == 0).all()
        assert v.masks["text"].mean() < 0.6  # text is sparse
    labels = np.concatenate([v.labels for v in vids])
    assert (labels == -5).any(), "Aff-Wild2-style invalid runs must occur"
    valid = labels[(labels != -5).all(1)]
    assert valid.min() >= -1 and valid.max() <= 1
    assert sum((~v.masks["visual"]).any() for v in vids) > 0


def test_ceiling_is_reported_and_below_one():
    ds = SyntheticDataset(SMALL, seed=0)
    info = ds.info()
    for split in ("train", "val", "test"):
        c = info["ceiling"][split]
        assert 0.8 < c["mean"] < 1.0
    assert info["version"] and info["generator"]["interaction"] == SMALL.interaction


def test_dims_and_modalities_configurable():
    ds = SyntheticDataset(SyntheticConfig(n_train=2, n_val=1, n_test=1, dim_visual=7), ("visual", "audio"))
    v = ds.splits()["train"][0]
    assert set(v.features) == {"visual", "audio"} and v.features["visual"].shape[1] == 7
    with pytest.raises(ConfigError, match="modalities"):
        SyntheticDataset(SMALL, ("visual", "smell"))


def test_synchrony_is_carried_only_by_integrating_both_modalities_over_time():
    """The documented check of DESIGN section 6: no single modality and no per-frame product
    recovers the synchrony latent; a windowed cross-modal product does."""
    r2 = interaction_check(SyntheticDataset(SyntheticConfig(n_train=24, n_val=1, n_test=24), seed=0))
    assert r2["visual_alone"] < 0.05
    assert r2["audio_alone"] < 0.05
    assert r2["per_frame_product"] < 0.35
    assert r2["windowed_product"] > 0.5
    assert r2["windowed_product"] > 2 * r2["per_frame_product"]


def test_no_interaction_knob_removes_synchrony_from_labels():
    cfg = SyntheticConfig(n_train=4, n_val=1, n_test=1, interaction=0.0, label_noise=0.0)
    ds = SyntheticDataset(cfg, seed=0)
    v = ds.splits()["train"][0]
    sync = v.meta["sync"]
    ok = v.valid
    # arousal no longer depends on synchrony: correlation only by chance
    assert abs(np.corrcoef(sync[ok], v.labels[ok, 1])[0, 1]) < 0.6


def test_synchrony_oracle_bounds_arousal_below_the_ceiling():
    """An oracle that must read c(t) from the features loses arousal CCC against the ceiling;
    with no synchrony in arousal (interaction 0) it loses nothing."""
    from fusion_bench.data.synthetic import synchrony_oracle

    small = dict(n_train=24, n_val=1, n_test=24)
    ds = SyntheticDataset(SyntheticConfig(**small), seed=0)
    bound, ceiling = synchrony_oracle(ds), ds.ceiling("test")["arousal"]
    assert 0.7 < bound < ceiling - 0.02
    none = SyntheticDataset(SyntheticConfig(**small, interaction=0.0), seed=0)
    assert abs(synchrony_oracle(none) - none.ceiling("test")["arousal"]) < 1e-9


def test_a_split_does_not_depend_on_the_other_splits_sizes():
    small = SyntheticDataset({"n_train": 4, "n_val": 2, "n_test": 3}, seed=0).splits()
    big = SyntheticDataset({"n_train": 9, "n_val": 2, "n_test": 3}, seed=0).splits()
    for split in ("val", "test"):
        for a, b in zip(small[split], big[split], strict=True):
            assert np.array_equal(a.labels, b.labels)
            assert all(np.array_equal(a.features[m], b.features[m]) for m in a.features)
    # the first training videos are the same too; the extra ones are new
    assert np.array_equal(small["train"][3].labels, big["train"][3].labels)
    assert not np.array_equal(big["train"][4].labels[:100], big["train"][3].labels[:100])
