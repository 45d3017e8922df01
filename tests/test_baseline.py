"""The ridge baseline (fusion_bench.baseline) against an independent solution: numpy's least
squares on the augmented system, a brute-force choice of λ, and frames that must not count."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_bench import baseline
from fusion_bench.baseline import LAMBDAS, fit, ridge_baseline
from fusion_bench.data import INVALID_LABEL, Video
from fusion_bench.metrics import ccc

DIMS = {"visual": 5, "audio": 3}


def videos(rng, n_videos: int, frames=(20, 40), signal: float = 1.0, garbage: bool = True,
           ) -> list[Video]:
    """Videos whose labels are a noisy linear read-out of the present features; masked frames
    hold huge garbage features (a fit that does not zero them is way off), some frames are
    labelled -5 with wild features (a fit that uses them is off)."""
    w = {m: np.linspace(-1, 1, d) * signal for m, d in DIMS.items()}
    out = []
    for i in range(n_videos):
        n = int(rng.integers(*frames))
        feats = {m: rng.normal(0.3, 1.5, (n, d)).astype(np.float32) for m, d in DIMS.items()}
        masks = {m: rng.random(n) > 0.2 for m in DIMS}
        drive = sum(np.where(masks[m], feats[m] @ w[m], 0.0) for m in DIMS)
        labels = np.stack([np.tanh(0.3 * drive + 0.3 * rng.normal(size=n)),
                           np.tanh(-0.2 * drive + 0.5 * rng.normal(size=n))], 1)
        bad = rng.random(n) < 0.15
        labels[bad, int(rng.integers(2))] = INVALID_LABEL
        if garbage:
            for m in DIMS:
                feats[m][~masks[m]] = 1e4 * rng.normal(size=(int((~masks[m]).sum()), DIMS[m]))
            feats["visual"][bad] += 50.0
        out.append(Video(f"v{i}", feats, masks, labels.astype(np.float32)))
    return out


def reference_design(vids: list[Video], valid_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """Written out again, not through baseline.design: masked features zeroed, mask columns."""
    xs, ys = [], []
    for v in vids:
        cols = [v.features[m].astype(np.float64) * v.masks[m][:, None] for m in DIMS]
        cols += [v.masks[m][:, None].astype(np.float64) for m in DIMS]
        x, y = np.hstack(cols), v.labels.astype(np.float64)
        ok = (y != INVALID_LABEL).all(1) if valid_only else np.ones(len(y), bool)
        xs.append(x[ok])
        ys.append(y[ok])
    return np.vstack(xs), np.vstack(ys)


def lstsq_predict(train: list[Video], test: list[Video], lam: float) -> np.ndarray:
    """min (1/n)‖y − b − Zw‖² + λ‖w‖² as the least-squares problem [1 Z; 0 √(nλ) I] [b; w] ≈
    [y; 0] (the bias column has no penalty row), solved by numpy; predictions on every frame of
    ``test``."""
    x, y = reference_design(train, valid_only=True)
    mu, sd = x.mean(0), x.std(0)
    z = (x - mu) / sd
    n, d = z.shape
    a = np.vstack([np.hstack([np.ones((n, 1)), z]),
                   np.hstack([np.zeros((d, 1)), np.sqrt(n * lam) * np.eye(d)])])
    coef, *_ = np.linalg.lstsq(a, np.vstack([y, np.zeros((d, y.shape[1]))]), rcond=None)
    xt, _ = reference_design(test, valid_only=False)
    return np.hstack([np.ones((len(xt), 1)), (xt - mu) / sd]) @ coef


@pytest.mark.parametrize("chunk", [baseline.CHUNK, 7])  # 7: blocks split and span videos
@pytest.mark.parametrize("lam", [1e-6, 0.1, 3.0])
def test_the_ridge_solution_is_numpys_least_squares_on_the_augmented_system(monkeypatch, chunk, lam):
    monkeypatch.setattr(baseline, "CHUNK", chunk)
    rng = np.random.default_rng(0)
    train, test = videos(rng, 6), videos(rng, 3)
    ridge = fit(train, tuple(DIMS))
    want = lstsq_predict(train, test, lam)
    got = np.concatenate(ridge.predict(test, [lam, lam]))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    # each target with its own λ: column j is the single-λ solution's column j
    mixed = np.concatenate(ridge.predict(test, [lam, 10 * lam]))
    np.testing.assert_allclose(mixed[:, 1], lstsq_predict(train, test, 10 * lam)[:, 1], atol=1e-9)
    assert ridge.n_train == int(sum(v.valid.sum() for v in train))


def overfit_prone(rng, n_videos: int, frames: int, d: int = 30) -> list[Video]:
    """One modality of d inputs, of which a few carry the targets, everything present."""
    out = []
    for i in range(n_videos):
        x = rng.normal(size=(frames, d)).astype(np.float32)
        y = np.stack([np.tanh(0.3 * x[:, :3].sum(1) + 0.7 * rng.normal(size=frames)),
                      np.tanh(0.3 * x[:, 3] + 0.9 * rng.normal(size=frames))], 1)
        out.append(Video(f"v{i}", {"x": x}, {"x": np.ones(frames, bool)}, y.astype(np.float32)))
    return out


@pytest.mark.parametrize("seed", [0, 4])
def test_lambda_is_the_grid_point_of_best_validation_ccc(seed):
    """50 train frames for 30 inputs: least squares overfits and the best λ is inside the grid
    (checked), so a wrong rule (the smallest, the largest, the last, scored on train) picks
    another point."""
    rng = np.random.default_rng(seed)
    splits = {"train": overfit_prone(rng, 2, 25), "val": overfit_prone(rng, 4, 100),
              "test": overfit_prone(rng, 1, 10)}
    out = ridge_baseline(splits, ("x",))
    ridge = fit(splits["train"], ("x",))
    val = splits["val"]
    lab = np.concatenate([v.labels for v in val]).astype(np.float64)
    best = {}
    for j, target in enumerate(("valence", "arousal")):
        scores = []
        for lam in LAMBDAS:  # brute force: predict with each λ, score with the project's CCC
            pred = np.concatenate(ridge.predict(val, [lam, lam]))
            scores.append(ccc(pred[:, j], lab[:, j]))
        best[target] = LAMBDAS[int(np.argmax(scores))]
        assert out["metrics"]["val"][target] == pytest.approx(max(scores), abs=1e-12)
        assert LAMBDAS[0] < best[target] < LAMBDAS[-1]  # a real choice, not an end of the grid
    assert out["lambda"] == best


def test_masked_features_and_invalid_frames_do_not_count():
    """The same valid frames with other garbage at masked frames, and with the invalid frames
    cut out altogether, give the same fit, λ and scores."""
    rng = np.random.default_rng(5)
    splits = {s: videos(rng, k) for s, k in (("train", 6), ("val", 3), ("test", 3))}
    other = {s: [Video(v.name, {m: np.where(v.masks[m][:, None], x, -7e5).astype(np.float32)
                                for m, x in v.features.items()}, v.masks, v.labels) for v in vs]
             for s, vs in splits.items()}
    cut = {s: [Video(v.name, {m: x[v.valid] for m, x in v.features.items()},
                     {m: k[v.valid] for m, k in v.masks.items()}, v.labels[v.valid]) for v in vs]
           for s, vs in splits.items()}
    a, b, c = (ridge_baseline(s, tuple(DIMS)) for s in (splits, other, cut))
    assert a == b  # masked features are zeroed before anything: bit for bit
    assert a["lambda"] == c["lambda"] and a["train_frames"] == c["train_frames"]
    for split in ("val", "test"):
        for key, v in a["metrics"][split].items():
            assert v == pytest.approx(c["metrics"][split][key], abs=1e-10)


def test_a_column_constant_on_train_gets_no_weight():
    """A modality never missing in train (its mask column is constant there) but missing at
    test time: the mask column is left out, so the prediction stays finite and as the model
    of the other columns says."""
    rng = np.random.default_rng(7)
    train, test = videos(rng, 5), videos(rng, 2)
    for v in train:
        v.masks["audio"][:] = True
    ridge = fit(train, tuple(DIMS))
    d = sum(DIMS.values())
    assert not ridge.keep[d + 1] and ridge.keep[d] and ridge.keep[:d].all()
    pred = np.concatenate(ridge.predict(test, [0.1, 0.1]))
    assert np.isfinite(pred).all() and np.abs(pred).max() < 10


def test_no_valid_train_frame_is_a_data_error():
    from fusion_bench.errors import DataError

    rng = np.random.default_rng(1)
    train = videos(rng, 2)
    for v in train:
        v.labels[:] = INVALID_LABEL
    with pytest.raises(DataError, match="train split has no valid frame"):
        fit(train, tuple(DIMS))


def test_every_run_records_its_ridge_baseline(tmp_path):
    """The record's baseline is the ridge of the run's own splits and modalities (recomputed
    here from the same configuration), scored with every registered metric, and timed."""
    from fusion_bench.config import build_config
    from fusion_bench.evaluate import metric_functions
    from fusion_bench.plugins import load_registry
    from fusion_bench.runs import load_dataset, run_record

    from .conftest import tiny_overrides

    reg = load_registry(entry_points=False)
    cfg = build_config("quick", None, [*tiny_overrides(), ("data.modalities", "visual,audio")])
    record = run_record(cfg, reg)
    ds, splits = load_dataset(reg, cfg)
    want = ridge_baseline(splits, tuple(ds.dims), metric_functions(reg, "frame", (-1.0, 1.0)))
    got = record["baseline"]
    assert got["kind"] == "ridge" and got["modalities"] == ["visual", "audio"]
    assert got["lambda"] == want["lambda"] and set(got["lambda"]) == {"valence", "arousal"}
    assert got["metrics"] == want["metrics"] and got["scores"] == want["scores"]
    assert set(got["scores"]) == set(record["scores"]) and set(got["metrics"]) == {"val", "test"}
    assert 0 <= record["wall"]["baseline_s"] <= record["wall"]["total_s"]
