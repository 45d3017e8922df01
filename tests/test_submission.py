"""Submission files: train, predict unlabelled videos, write the ABAW CSV (synthetic data)."""

import numpy as np

from fusion_bench.config import build_config
from fusion_bench.plugins import load_registry
from fusion_bench.runs import load_dataset
from fusion_bench.submission import train_and_predict, write_submission

from .conftest import tiny_overrides


def test_train_and_predict_then_write_the_csv(tmp_path):
    cfg = build_config("quick", None, tiny_overrides() + [("device", "cpu")])
    reg = load_registry(entry_points=False)
    videos = load_dataset(reg, cfg)[1]["test"][:2]
    preds, scores = train_and_predict(cfg, reg, videos)
    assert list(preds) == [v.name for v in videos] and set(scores) == {"valence+arousal"}
    for v in videos:
        assert preds[v.name].shape == (v.n_frames, 2) and np.isfinite(preds[v.name]).all()
    again, _ = train_and_predict(cfg, reg, videos)  # the seed fixes the model
    assert all(np.array_equal(preds[k], again[k]) for k in preds)
    rows = write_submission(tmp_path / "sub.csv", preds)
    lines = (tmp_path / "sub.csv").read_text().splitlines()
    assert rows == sum(v.n_frames for v in videos) == len(lines) - 1
    assert lines[0] == "image_location,valence,arousal"
    assert lines[1].startswith(f"{videos[0].name}/00001.jpg,")
