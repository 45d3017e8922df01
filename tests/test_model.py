"""Padding never counts: the encoders' normalisation, the predictions of real frames, the loss,
the scores and the robustness noise scale do not depend on how much padding there is or on what
it holds."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from fusion_bench.data import Video
from fusion_bench.data.windows import make_windows
from fusion_bench.encoders.tcn import TCN
from fusion_bench.fusions.concat import Concat
from fusion_bench.heads import RegressionHead
from fusion_bench.model import FusionModel, MaskedBatchNorm


def _real_positions(x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """(B, C, L) → (n_present, C)."""
    return x.transpose(1, 2)[present]


def test_masked_batchnorm_is_batchnorm_over_the_real_positions_only():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 10) * 2 + 1
    present = torch.ones(3, 10, dtype=torch.bool)
    present[0, 6:] = False
    present[2, 3:] = False
    masked, plain = MaskedBatchNorm(4), nn.BatchNorm1d(4)
    with torch.no_grad():
        masked.weight.uniform_(0.5, 2)
        masked.bias.uniform_(-1, 1)
    plain.load_state_dict(masked.state_dict())
    y = masked(x, present)
    # BatchNorm1d over just the real frames, as (n, C): same output and running statistics
    ref = plain(_real_positions(x, present))
    torch.testing.assert_close(_real_positions(y, present), ref)
    torch.testing.assert_close(masked.running_mean, plain.running_mean)
    torch.testing.assert_close(masked.running_var, plain.running_var)
    assert int(masked.num_batches_tracked) == 1


def test_masked_batchnorm_ignores_garbage_in_the_padding():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 8)
    present = torch.tensor([[True] * 5 + [False] * 3, [True] * 8])
    bad = x.clone()
    bad[0, :, 5:] = torch.tensor([float("nan"), float("inf"), 1e6])
    a, b = MaskedBatchNorm(3), MaskedBatchNorm(3)
    ya, yb = a(x, present), b(bad, present)
    torch.testing.assert_close(_real_positions(ya, present), _real_positions(yb, present))
    torch.testing.assert_close(a.running_mean, b.running_mean)
    torch.testing.assert_close(a.running_var, b.running_var)


def test_masked_batchnorm_without_padding_or_in_eval_is_batchnorm1d():
    torch.manual_seed(2)
    x = torch.randn(4, 3, 6)
    masked, plain = MaskedBatchNorm(3), nn.BatchNorm1d(3)
    assert torch.equal(masked(x, None), plain(x))  # None: the very same kernel
    masked.eval()
    plain.eval()
    some = torch.rand(4, 6) > 0.3
    assert torch.equal(masked(x, some), plain(x))  # evaluation: running statistics, mask unused


def _model(seed: int = 0) -> FusionModel:
    torch.manual_seed(seed)
    encoders = {m: TCN(d + 1, channels=8, levels=2, kernel=3, dropout=0.0, causal=True)
                for m, d in (("a", 3), ("b", 2))}
    return FusionModel(encoders, Concat({"a": 8, "b": 8}, 0), RegressionHead(16, 2, 0, 0.0))


def _video(name: str, n: int, seed: int) -> Video:
    rng = np.random.default_rng(seed)
    return Video(name, {"a": rng.normal(size=(n, 3)).astype(np.float32),
                        "b": rng.normal(size=(n, 2)).astype(np.float32)},
                 {"a": np.ones(n, bool), "b": rng.random(n) > 0.2},
                 rng.uniform(-1, 1, size=(n, 2)).astype(np.float32))


def _forward(model: FusionModel, videos: list[Video], length: int) -> tuple[list[torch.Tensor], FusionModel]:
    """Train-mode forward of one batch of every video's single window; the real frames' outputs."""
    model = copy.deepcopy(model).train()
    w = make_windows(videos, ("a", "b"), length, length)
    assert len(w) == len(videos)
    idx = torch.arange(len(w))
    f, k, _, _ = w.batch(idx, "cpu")
    out = model(f, k, w.present_of(idx, "cpu"))
    return [out[i, : v.n_frames] for i, v in enumerate(videos)], model


def test_the_same_videos_windowed_with_more_padding_give_the_same_predictions_and_statistics():
    videos = [_video("short", 20, 1), _video("long", 48, 2)]
    model = _model()
    a, ma = _forward(model, videos, 48)  # 28 frames of padding
    b, mb = _forward(model, videos, 64)  # 16 + 44 frames of padding
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y)
    for m in ("a", "b"):
        torch.testing.assert_close(ma.norms[m].running_mean, mb.norms[m].running_mean)
        torch.testing.assert_close(ma.norms[m].running_var, mb.norms[m].running_var)
    # with BatchNorm over every position (as before), the padding moved the statistics
    class AllPositions(nn.BatchNorm1d):
        def forward(self, x, present=None):
            return super().forward(x)

    plain = _model()
    for m in ("a", "b"):
        norm = AllPositions(8)
        norm.load_state_dict(plain.norms[m].state_dict())
        plain.norms[m] = norm
    pa, _ = _forward(plain, videos, 48)
    pb, _ = _forward(plain, videos, 64)
    assert not torch.allclose(pa[0], pb[0], atol=1e-4)


def _train_once(windows, videos, seed: int = 0) -> list[np.ndarray]:
    from fusion_bench.config import TrainConfig
    from fusion_bench.evaluate import predict
    from fusion_bench.train import fit

    model = _model(seed)
    cfg = TrainConfig(steps=6, eval_every=3, batch_size=4, progress=False)
    fit(model, windows, windows, videos, (0, 1), cfg, torch.device("cpu"), seed)
    return predict(model, windows, videos, "cpu")


def test_garbage_in_the_padding_changes_no_trained_weight_prediction_or_score():
    from fusion_bench.evaluate import score

    videos = [_video(f"v{i}", n, i) for i, n in enumerate((7, 12, 30, 16, 9, 25))]
    clean = make_windows(videos, ("a", "b"), 16, 8)
    assert clean.padding_share() > 0
    dirty = copy.deepcopy(clean)
    pad = ~dirty.present
    dirty.feats["a"][pad] = float("nan")
    dirty.feats["b"][pad] = 1e6
    dirty.labels[pad] = 1e3  # finite garbage: the label mask keeps it out of the loss
    p_clean, p_dirty = _train_once(clean, videos), _train_once(dirty, videos)
    for x, y in zip(p_clean, p_dirty, strict=True):
        assert np.isfinite(x).all()
        np.testing.assert_array_equal(x, y)
    assert score(p_clean, videos) == score(p_dirty, videos)


def test_scores_and_the_noise_scale_read_real_frames_only():
    from fusion_bench.evaluate import feature_scale, predict, score
    from fusion_bench.metrics import ccc

    videos = [_video("a", 10, 3), _video("b", 37, 4)]
    model = _model().eval()
    # one window each at L = 40 and at L = 64: different padding, the same predictions
    p40 = predict(model, make_windows(videos, ("a", "b"), 40, 40), videos, "cpu")
    p64 = predict(model, make_windows(videos, ("a", "b"), 64, 64), videos, "cpu")
    assert [p.shape[0] for p in p64] == [10, 37]  # nothing past a video's end
    for x, y in zip(p40, p64, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    # the score is the CCC of the videos' frames, by hand
    lab = np.concatenate([v.labels for v in videos]).astype(np.float64)
    pred = np.concatenate(p64)
    assert score(p64, videos)["valence"] == pytest.approx(ccc(pred[:, 0], lab[:, 0]))
    # the noise scale: the std over the frames that exist and have the modality, by hand
    scale = feature_scale(videos, ("a", "b"))
    frames = np.concatenate([v.features["b"][v.masks["b"]] for v in videos])
    np.testing.assert_allclose(scale["b"].numpy(), frames.std(0), rtol=1e-5)
