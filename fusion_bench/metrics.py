"""Lin's concordance correlation coefficient (CCC), the ABAW valence/arousal score.

    CCC(x, y) = 2 s_xy / (s_x² + s_y² + (μ_x − μ_y)²)

with *population* moments (divide by n), as Lin (1989) and the ABAW evaluation define it.
:func:`ccc` is the evaluation metric (float64, numpy); :func:`ccc_loss` is the differentiable
training loss 1 − CCC in torch.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import DataError


def ccc(pred, target, mask=None) -> float:
    """CCC of two 1-d sequences over the frames where ``mask`` is True, in float64.

    ``pred``, ``target``: array-likes of shape (n,); ``mask``: bool (n,) or None (all frames).
    Raises :class:`DataError` on length mismatch, no valid frame, or a NaN/inf value.
    Two identical constant sequences (all moments zero) are perfectly concordant: 1.0.
    """
    x = np.asarray(pred, dtype=np.float64).reshape(-1)
    y = np.asarray(target, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise DataError(f"CCC: prediction has {x.size} frames but target has {y.size}")
    if mask is not None:
        m = np.asarray(mask, dtype=bool).reshape(-1)
        if m.shape != x.shape:
            raise DataError(f"CCC: mask has {m.size} frames but the sequences have {x.size}")
        x, y = x[m], y[m]
    if x.size == 0:
        raise DataError("CCC: no valid frame to score (all frames masked or labelled -5)")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        which = "prediction" if not np.isfinite(x).all() else "target"
        raise DataError(f"CCC: the {which} contains NaN or inf; check the model output / labels")
    mx, my = x.mean(), y.mean()
    dx, dy = x - mx, y - my
    vx, vy, cov = (dx * dx).mean(), (dy * dy).mean(), (dx * dy).mean()
    denom = vx + vy + (mx - my) ** 2
    if denom == 0.0:
        return 1.0  # identical constants
    return float(2.0 * cov / denom)


def ccc_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, per_window: bool = True):
    """1 − CCC, masked, differentiable.

    pred, target: (B, L); valid: bool (B, L). With ``per_window`` the CCC is computed per window
    (the paper's loss at L = 300) and averaged over windows that have ≥ 2 valid frames; otherwise
    over all valid frames of the batch pooled (better for short windows, whose per-window
    moments are noisy). Computed in float32 with an epsilon so constant windows don't divide by 0.
    """
    pred = pred.float()
    target = target.float()
    w = valid.float()
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
