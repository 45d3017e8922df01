"""What the training loop does to the numbers, watched from outside ``fit``: the mask its loss
gets, the learning rate of each warm-up step, and when early stopping stops and which weights it
keeps. A hand-made split and a one-layer model, with ``train.epochs`` > 0 (passes over the
training windows).

Each test here was written against a planted bug that the rest of the suite let through (issue
16 item 11); the bug it catches is named in its docstring."""

from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest
import torch
from torch import nn

from fusion_bench import evaluate, train
from fusion_bench.config import TrainConfig
from fusion_bench.data import INVALID_LABEL, Video
from fusion_bench.data.windows import make_windows
from fusion_bench.metrics import ccc_loss

X = INVALID_LABEL
CPU = torch.device("cpu")
L = 4


class Linear(nn.Module):
    """Per-frame linear map of modality ``a`` to two outputs (no BatchNorm: a batch's size and
    padding do not matter)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, feats, masks, *_):
        return self.lin(feats["a"]) * masks["a"][..., None]


def split(n_frames: int, seed: int, holes: bool) -> list[Video]:
    """One video of ``n_frames`` frames, labels a noisy function of the features; with
    ``holes`` some frames unlabelled (-5) and some half-labelled."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n_frames, 3)).astype(np.float32)
    lab = np.tanh(f[:, :2] + 0.3 * rng.normal(size=(n_frames, 2))).astype(np.float32)
    if holes:
        lab[1::5] = X  # unlabelled frames
        lab[3::7, 0] = X  # half-labelled: valence missing
        lab[2::6, 1] = X  # half-labelled: arousal missing
    return [Video("v", {"a": f}, {"a": np.ones(n_frames, bool)}, lab)]


def setup(n_train=24, holes=True):
    """The train split cut into 8 windows (24 frames, L = 4, H = 3); one validation video."""
    tr, va = split(n_train, 0, holes), split(12, 1, False)
    return make_windows(tr, ("a",), L, 3), make_windows(va, ("a",), L, 4), va


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=2, lr=1e-2, warmup_epochs=0, early_stop_patience=0,
                schedule="plateau", loss="batch", progress=False)
    return TrainConfig(**{**base, **kw})


def fit(model, wtrain, wval, vval, c, seed=0):
    torch.manual_seed(seed)
    return train.fit(model, wtrain, wval, vval, (0, 1), c, CPU, seed)


# ------------------------------------------------------------------------- the loss's mask


@pytest.mark.parametrize("loss", ["batch", "window"])
def test_the_loss_gets_the_windows_label_mask(monkeypatch, loss):
    """Bug: ``fit`` handing ``ccc_loss`` an all-ones mask (or one target's mask). Every frame
    the loss sees as valid is labelled for both targets, and over one epoch the masks it gets
    are exactly the training windows' ``valid`` rows (a permutation of them)."""
    wtrain, wval, vval = setup()
    assert len(wtrain) % 2 == 0  # every batch trains: an epoch's masks are all the windows'
    assert (~wtrain.valid).sum() > len(wtrain)  # -5 and half-labelled frames in every window
    sig = inspect.signature(ccc_loss)
    seen: list[torch.Tensor] = []

    def spy(*a, **k):
        args = sig.bind(*a, **k).arguments
        seen.append(args["valid"].detach().cpu().clone())
        return ccc_loss(*a, **k)

    monkeypatch.setattr(train, "ccc_loss", spy)
    fit(Linear(), wtrain, wval, vval, cfg(epochs=1, loss=loss))
    # one call per target per batch, each with the batch's mask
    per_batch = seen[::2]
    assert all(torch.equal(a, b) for a, b in zip(seen[::2], seen[1::2], strict=True))
    got = sorted(tuple(r.tolist()) for m in per_batch for r in m)
    want = sorted(tuple(r.tolist()) for r in wtrain.valid)
    assert got == want


# ------------------------------------------------------------------------------ warm-up


class LrSpy:
    """Wraps ``make_optimizer`` so that every optimiser step records its learning rate."""

    def __init__(self, monkeypatch):
        self.lrs: list[float] = []
        real = train.make_optimizer

        def make(*a, **k):
            opt = real(*a, **k)
            step = opt.step

            def recording_step(*sa, **sk):
                self.lrs.append(opt.param_groups[0]["lr"])
                return step(*sa, **sk)

            opt.step = recording_step
            return opt

        monkeypatch.setattr(train, "make_optimizer", make)


def test_warmup_is_linear_in_the_step_from_lr_over_n_to_lr(monkeypatch):
    """Bug: the warm-up ramp's shape. 8 windows in batches of 2 are 4 steps an epoch; 2 warm-up
    epochs are 8 steps at lr (k + 1) / 8, k = 0..7, then lr (plateau: no decay yet)."""
    wtrain, wval, vval = setup(holes=False)
    assert len(wtrain) == 8
    spy = LrSpy(monkeypatch)
    fit(Linear(), wtrain, wval, vval, cfg(epochs=3, warmup_epochs=2, lr=8e-3))
    want = [1e-3 * (k + 1) for k in range(8)] + [8e-3] * 4
    assert spy.lrs == pytest.approx(want, rel=1e-12)


def test_cosine_follows_the_warmup_from_lr_down_to_min_lr(monkeypatch):
    """After one warm-up epoch (4 steps) the remaining 8 steps follow the cosine from lr at its
    first step to min_lr at its last."""
    wtrain, wval, vval = setup(holes=False)
    spy = LrSpy(monkeypatch)
    c = cfg(epochs=3, warmup_epochs=1, lr=8e-3, min_lr=1e-4, schedule="cosine")
    fit(Linear(), wtrain, wval, vval, c)
    cos = [1e-4 + (8e-3 - 1e-4) * 0.5 * (1 + np.cos(np.pi * k / 7)) for k in range(8)]
    assert spy.lrs == pytest.approx([2e-3, 4e-3, 6e-3, 8e-3] + cos, rel=1e-12)


# ----------------------------------------------------------------------- early stopping


@pytest.mark.parametrize("patience,scores,epochs,best", [
    # best at epoch 2; epochs 3 and 4 do not improve: stop after epoch 4 = best + patience
    (2, [0.1, 0.5, 0.3, 0.4, 0.2, 0.9, 0.9, 0.9], 4, 2),
    # an improvement resets the count; equal is not an improvement
    (1, [0.1, 0.2, 0.3, 0.3, 0.9, 0.9], 4, 3),
    (3, [0.5, 0.1, 0.2, 0.6, 0.1, 0.2, 0.3, 0.9], 7, 4),
])
def test_early_stopping_stops_at_best_epoch_plus_patience(monkeypatch, patience, scores, epochs, best):
    """Bug: patience off by one. The validation score is scripted; the run must stop after
    exactly ``best + patience`` epochs and come back with the best epoch's weights."""
    wtrain, wval, vval = setup(holes=False)
    script = iter(scores)
    weights: list[dict] = []
    real_predict = evaluate.predict

    def predict(model, *a, **k):  # the weights each validation saw
        weights.append(copy.deepcopy(model.state_dict()))
        return real_predict(model, *a, **k)

    def scripted(preds, videos, targets=("valence", "arousal"), *a, **k):
        v = next(script)
        return {**{t: v for t in targets}, "mean": v}

    for mod in (train, evaluate):
        monkeypatch.setattr(mod, "score", scripted, raising=mod is train)
        monkeypatch.setattr(mod, "predict", predict, raising=mod is train)
    model = Linear()
    res = fit(model, wtrain, wval, vval, cfg(epochs=len(scores), early_stop_patience=patience))
    assert res.epochs == epochs == len(res.history) == len(weights)
    assert res.best_epoch == best and res.best_val == scores[best - 1]
    assert [h["val"]["mean"] for h in res.history] == scores[:epochs]
    # the weights differ from epoch to epoch, and the model returned has the best epoch's
    assert not torch.equal(weights[best - 1]["lin.weight"], weights[-1]["lin.weight"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[best - 1][k]), k
