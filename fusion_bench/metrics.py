"""The evaluation metrics, and the CCC training loss.

Lin's concordance correlation coefficient (CCC), the ABAW valence/arousal score:

    CCC(x, y) = 2 s_xy / (s_x² + s_y² + (μ_x − μ_y)²)

with *population* moments (divide by n), as Lin (1989) and the ABAW evaluation define it.
:func:`ccc` is the default evaluation metric (float64, numpy); :func:`ccc_loss` is the
differentiable training loss 1 − CCC in torch. :func:`rmse` and :func:`pearson` are the other
built-in metrics.

A metric is a plain function ``(pred (n,), target (n,)) -> float`` over the valid frames of one
target of a split, with a ``higher_is_better`` attribute (default True) and a ``description``
(:func:`metric` sets both); metrics are registered through the ``register_metrics`` hook.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .errors import DataError


def metric(description: str, higher_is_better: bool = True, label_level: str | None = None,
           label_range: tuple[float, float] | None = None):
    """Decorator marking a function as a metric: sets its ``description`` and
    ``higher_is_better`` (which way the leaderboard ranks it); ``label_level`` ("sequence") and
    ``label_range`` restrict it to runs on datasets of that level and label range
    (:func:`fusion_bench.evaluate.applies`; None: every run)."""
    def mark(fn):
        fn.description, fn.higher_is_better = description, higher_is_better
        if label_level is not None:
            fn.label_level = label_level
        if label_range is not None:
            fn.label_range = label_range
        return fn
    return mark


def _frames(name: str, pred, target, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """``pred`` and ``target`` as float64 (n,) over the frames where ``mask`` is True; raises
    :class:`DataError` (naming metric ``name``) on length mismatch, no frame, or a NaN/inf."""
    x = np.asarray(pred, dtype=np.float64).reshape(-1)
    y = np.asarray(target, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise DataError(f"{name}: prediction has {x.size} frames but target has {y.size}")
    if mask is not None:
        m = np.asarray(mask, dtype=bool).reshape(-1)
        if m.shape != x.shape:
            raise DataError(f"{name}: mask has {m.size} frames but the sequences have {x.size}")
        x, y = x[m], y[m]
    if x.size == 0:
        raise DataError(f"{name}: no valid frame to score (all frames masked or labelled -5)")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        if not np.isfinite(x).all():  # finite weights can still overflow (train.lr=1e30)
            raise DataError(f"{name}: the prediction contains NaN or inf; a training that "
                            "diverged (lower train.lr) or a plugin's output")
        raise DataError(f"{name}: the target contains NaN or inf; check the labels")
    return x, y


@metric("Lin's concordance correlation coefficient (the ABAW score)")
def ccc(pred, target, mask=None) -> float:
    """CCC of two 1-d sequences over the frames where ``mask`` is True, in float64.

    ``pred``, ``target``: array-likes of shape (n,); ``mask``: bool (n,) or None (all frames).
    Raises :class:`DataError` on length mismatch, no valid frame, or a NaN/inf value.
    Two identical constant sequences (all moments zero) are perfectly concordant: 1.0.
    """
    x, y = _frames("CCC", pred, target, mask)
    mx, my = x.mean(), y.mean()
    dx, dy = x - mx, y - my
    vx, vy, cov = (dx * dx).mean(), (dy * dy).mean(), (dx * dy).mean()
    denom = vx + vy + (mx - my) ** 2
    if denom == 0.0:
        return 1.0  # identical constants
    return float(2.0 * cov / denom)


@metric("root-mean-square error, in label units (lower is better)", higher_is_better=False)
def rmse(pred, target, mask=None) -> float:
    """√(mean((pred − target)²)) over the frames where ``mask`` is True, in float64.

    ``pred``, ``target``: (n,); errors as :func:`ccc`. 0 for a perfect prediction.
    """
    x, y = _frames("RMSE", pred, target, mask)
    return float(np.sqrt(np.mean((x - y) ** 2)))


@metric("Pearson's correlation coefficient r (blind to scale and offset, unlike CCC)")
def pearson(pred, target, mask=None) -> float:
    """Pearson's r = s_xy / (s_x s_y) over the frames where ``mask`` is True, in float64.

    ``pred``, ``target``: (n,); errors as :func:`ccc`. r is undefined when either sequence is
    constant (zero variance); it is then 0.0, not NaN: a constant prediction carries no linear
    information about the target (CCC scores it 0 against a varying target too), a model that
    collapses to a constant is a real outcome that should rank as uninformative, and a NaN
    would make the target mean and the leaderboard's mean over seeds NaN. Clipped to [−1, 1]
    (rounding can overshoot by an ulp).
    """
    x, y = _frames("Pearson", pred, target, mask)
    # constant tested exactly, not as a zero variance: the mean of n equal floats need not equal
    # them to the last bit, so their variance can come out a tiny positive number (r ≈ 1e-17)
    if x.min() == x.max() or y.min() == y.max():
        return 0.0
    dx, dy = x - x.mean(), y - y.mean()
    r = (dx * dy).mean() / np.sqrt((dx * dx).mean() * (dy * dy).mean())
    return float(np.clip(r, -1.0, 1.0))


def ccc_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, per_window: bool = True,
             reduce: Callable[[torch.Tensor], torch.Tensor] | None = None):
    """1 − CCC, masked, differentiable.

    pred, target: (B, L); valid: bool (B, L). With ``per_window`` the CCC is computed per window
    (the paper's loss at L = 300) and averaged over windows that have ≥ 2 valid frames; otherwise
    over all valid frames of the batch pooled (better for short windows, whose per-window
    moments are noisy). Computed in float32 with an epsilon so constant windows don't divide by 0.

    ``reduce`` (a differentiable sum over the ranks of a distributed run,
    :func:`fusion_bench.distributed.sum_across`) makes this the loss of the global batch of
    which ``pred`` is one rank's share: the pooled moments, or the mean over windows, are
    taken from sums added up across ranks. None: this batch alone.
    """
    pred = pred.float()
    target = target.float()
    w = valid.float()
    if reduce is not None:
        return _ccc_loss_reduced(pred, target, w, per_window, reduce)
    if not per_window:
        pred, target, w = pred.reshape(1, -1), target.reshape(1, -1), w.reshape(1, -1)
    n = w.sum(dim=1)
    keep = n >= 2
    if not bool(keep.any()):
        return pred.sum() * 0.0  # nothing to learn from; keep the graph
    pred, target, w, n = pred[keep], target[keep], w[keep], n[keep]
    mx = (pred * w).sum(1) / n
    my = (target * w).sum(1) / n
    dx = (pred - mx[:, None]) * w
    dy = (target - my[:, None]) * w
    vx = (dx * dx).sum(1) / n
    vy = (dy * dy).sum(1) / n
    cov = (dx * dy).sum(1) / n
    c = 2 * cov / (vx + vy + (mx - my) ** 2 + 1e-8)
    return 1.0 - c.mean()


def mse_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
             reduce=None) -> torch.Tensor:
    """Mean squared error over the valid entries, averaged over targets (``train.loss=mse``).

    pred, target: (B, L, T); valid: bool (B, L) (at sequence level L = 1: one row per window).
    In label units: on MOSI's [-3, 3] an error of 1 costs 1. Zero (keeping the graph) when
    nothing is valid. ``reduce``: as :func:`ccc_loss` (this share's sums added across ranks)."""
    # masked_fill: an invalid target (-5) or a NaN in a padded position cannot reach the sum
    err = (pred.float() - target.float()).masked_fill(~valid.unsqueeze(-1), 0.0)
    total = torch.stack([(err * err).sum(), (valid.sum() * pred.shape[-1]).to(err.dtype)])
    if reduce is not None:
        total = reduce(total)
    return total[0] / total[1].clamp(min=1)  # no device sync: 0 valid gives 0 / 1


def _ccc_loss_reduced(pred, target, w, per_window: bool, reduce):
    """:func:`ccc_loss` of the global batch from this share's sums (the same formulas: pooled,
    the means first, then the centred moments, two reductions; per window, each window's CCC
    is whole on its rank, and the mean over windows is a reduced sum over a reduced count)."""
    if per_window:
        n = w.sum(1)
        keep = n >= 2
        p, t, ww, nn = pred[keep], target[keep], w[keep], n[keep]
        mx = (p * ww).sum(1) / nn
        my = (t * ww).sum(1) / nn
        dx = (p - mx[:, None]) * ww
        dy = (t - my[:, None]) * ww
        c = 2 * (dx * dy).sum(1) / nn / ((dx * dx).sum(1) / nn + (dy * dy).sum(1) / nn
                                         + (mx - my) ** 2 + 1e-8)
        # pred.sum() * 0: a share without a fit window still joins the graph (and the sums)
        total = reduce(torch.stack([c.sum() + pred.sum() * 0.0, keep.sum().to(c.dtype)]))
        if float(total[1].detach()) == 0:
            return total[0] * 0.0
        return 1.0 - total[0] / total[1]
    s = reduce(torch.stack([w.sum(), (pred * w).sum(), (target * w).sum()]))
    if float(s[0].detach()) < 2:
        return pred.sum() * 0.0 + s[1] * 0.0
    mx, my = s[1] / s[0], s[2] / s[0]
    dx = (pred - mx) * w
    dy = (target - my) * w
    m = reduce(torch.stack([(dx * dx).sum(), (dy * dy).sum(), (dx * dy).sum()])) / s[0]
    return 1.0 - 2 * m[2] / (m[0] + m[1] + (mx - my) ** 2 + 1e-8)
