"""Aff-Wild2's 6-fold protocol on video names alone (no media packages needed)."""

from fusion_bench.data.affwild2 import N_FOLDS, base_name, fold_splits, folds

OFFICIAL = {
    "train": [f"t{i}" for i in range(12)] + ["duo_left", "duo_right"],
    "val": [f"v{i}" for i in range(6)] + ["pair_left", "pair_right"],
}
OFFICIAL["test"] = OFFICIAL["val"]


def test_folds_1_to_5_partition_the_pooled_train_and_validation_videos():
    pooled = OFFICIAL["train"] + OFFICIAL["val"]
    fold_of = folds(pooled, seed=0)
    validated = []
    for k in range(1, N_FOLDS):
        s = fold_splits(OFFICIAL, fold_of, k)
        assert s["test"] == s["val"] and not set(s["train"]) & set(s["val"])
        assert sorted(s["train"] + s["val"]) == sorted(pooled)
        validated += s["val"]
    assert sorted(validated) == sorted(pooled)  # official validation videos rotate too
    for a, b in (("duo_left", "duo_right"), ("pair_left", "pair_right")):
        assert base_name(a) == base_name(b) and fold_of[a] == fold_of[b]


def test_fold_0_is_the_official_split_and_the_seed_draws_the_parts():
    assert fold_splits(OFFICIAL, {}, 0) == {"train": OFFICIAL["train"], "val": OFFICIAL["val"],
                                            "test": OFFICIAL["val"]}
    pooled = OFFICIAL["train"] + OFFICIAL["val"]
    assert folds(pooled, 0) == folds(pooled, 0) != folds(pooled, 1)
