"""The linear baseline of every run: closed-form ridge regression from each frame's features.

A reviewer's first question of a fusion is whether it beats a linear probe on the same frames.
Every run fits one on its own splits and targets (:func:`ridge_baseline`, called by
:func:`fusion_bench.runs.run`) and records it as ``record["baseline"]``; the leaderboard shows it
as a reference row (:mod:`fusion_bench.report.reference`).

The model, per frame t and target j::

    x_t = [x_t^m ⊙ mask_t^m for each modality m] ++ [mask_t^m for each modality m]   (D,)
    z_t = (x_t − μ) / σ                       μ, σ: mean and std over the train split's valid frames
    ŷ_tj = b_j + z_tᵀ w_j
    (b_j, w_j) = argmin (1/n) Σ_t (y_tj − b_j − z_tᵀ w)² + λ_j ‖w‖²    over the n valid train frames

Features are what the model is given: a modality's features at frames where it is missing are
zero (:func:`fusion_bench.fusions._masking.apply_mask`), and its mask is one more column. The
bias is not penalised; since z has mean 0 on the train frames, b_j is the train mean of target j
and w = (R + λ I)⁻¹ g with R = ZᵀZ / n (the train correlation matrix of the columns) and
g = Zᵀ(y − ȳ) / n. λ is per frame (the loss is a mean, not a sum: λ here is λ_sum / n of the
usual ‖y − b − Zw‖² + λ_sum ‖w‖²), so one grid fits a dataset of any size: on standardised
columns R's eigenvalues sum to D (average 1), so λ = 10⁻⁶ is nearly least squares and
λ = 10² nearly the constant ȳ. A column constant over the train frames (e.g. the mask of a
modality never missing there) is left out: its weight is 0, whatever it holds on val or test.

λ_j is chosen for each target on the validation split: the point of :data:`LAMBDAS` whose
prediction has the highest CCC (the project's metric, :func:`fusion_bench.metrics.ccc`) over the
split's valid frames concatenated, the smallest λ among exact ties. Nothing is refitted on
val. Val and test are then scored exactly as a run's predictions are
(:func:`fusion_bench.evaluate.score`, :func:`fusion_bench.evaluate.score_all`).

Cost: one pass over the train frames in blocks of :data:`CHUNK` rows accumulates μ, ȳ, XᵀX and
Xᵀy in float64 (no copy of the split is made), one eigendecomposition R = V diag(e) Vᵀ gives
every λ's solution w_λ = V diag(1/(e + λ)) Vᵀ g, and one product per val block predicts every λ.
Deterministic: no randomness, blocks and sums in a fixed order.

At sequence level (one label per sequence) the rows are sequences instead of frames: each
sequence's inputs are its time-averaged features (:func:`sequence_means`: per modality, the mean
over the frames where that modality is present, zero where it never is, and its mask column 1
where it is present at all), and the same ridge is fitted, chosen and scored over sequences.

A valid frame is one whose every target is labelled (:attr:`fusion_bench.data.Video.valid`),
as in the scores. The arithmetic is numpy's; the scoring functions it reuses live beside torch
code (their modules import it), so importing this module loads torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .data import TARGETS, Video
from .errors import DataError
from .evaluate import score, score_all
from .metrics import ccc

#: the λ grid, per frame: 10^-6, 10^-5.5, …, 10^2 (17 points, half a decade apart)
LAMBDAS: tuple[float, ...] = tuple(float(10.0 ** (k / 2)) for k in range(-12, 5))
#: frames per block (bounds the float64 copy of a block to about 2 × CHUNK × D × 8 bytes). Small
#: enough that a block's temporaries (~5 MB at D = 75) are reused from the heap and stay near the
#: cache: 65536-row blocks (~40 MB each) were fresh mappings, page-faulted on every pass, and the
#: default run's ridge row took 0.17-0.42 s against 0.12-0.13 s now; the sums are the same up to
#: float64 rounding (1e-15 on its CCCs)
CHUNK = 8192


def design(video: Video, modalities: Sequence[str], lo: int = 0, hi: int | None = None,
           rows: np.ndarray | None = None) -> np.ndarray:
    """The unstandardised per-frame inputs of frames ``lo:hi`` of ``video`` (of those, the
    frames where bool ``rows`` (hi − lo,) is True, when given), float64 ``(k, D)`` with
    D = Σ d_m + len(modalities): each modality's features, zero where its mask is False, then
    one column per modality holding its mask (1 present, 0 missing)."""
    hi = video.n_frames if hi is None else hi
    masks = [video.masks[m][lo:hi] for m in modalities]
    feats = [video.features[m][lo:hi] for m in modalities]
    if rows is not None:  # select first: one copy of the rows kept, not of the whole range
        masks, feats = [k[rows] for k in masks], [f[rows] for f in feats]
    out = np.concatenate([*feats, np.stack(masks, axis=1)], axis=1, dtype=np.float64)
    col = 0
    for f, k in zip(feats, masks, strict=True):
        if not k.all():  # most features have no missing frame: no pass over them
            out[~k, col:col + f.shape[1]] = 0.0
        col += f.shape[1]
    return out


def _blocks(videos: Sequence[Video], modalities: Sequence[str], valid_only: bool
            ) -> Iterator[tuple[list[tuple[int, int, int]], np.ndarray, np.ndarray]]:
    """The frames of ``videos`` in order, in blocks of about CHUNK rows (a block spans several
    short videos: few large matrix products, not one per video), as (pieces, inputs (k, D),
    labels (k, T)); the block's rows are frames lo:hi of video i for each piece (i, lo, hi) in
    turn. With ``valid_only`` the rows are only the valid frames of those ranges."""
    pieces: list[tuple[int, int, int]] = []
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    rows = 0
    for i, v in enumerate(videos):
        ok = v.valid
        for lo in range(0, v.n_frames, CHUNK):
            hi = min(lo + CHUNK, v.n_frames)
            sel = ok[lo:hi] if valid_only else None
            x = design(v, modalities, lo, hi, sel)
            y = v.labels[lo:hi] if sel is None else v.labels[lo:hi][sel]
            y = y.astype(np.float64)
            pieces.append((i, lo, hi))
            xs.append(x)
            ys.append(y)
            rows += len(x)
            if rows >= CHUNK:
                yield pieces, np.concatenate(xs), np.concatenate(ys)
                pieces, xs, ys, rows = [], [], [], 0
    if xs:
        yield pieces, np.concatenate(xs), np.concatenate(ys)


@dataclass
class Ridge:
    """The train split's statistics, solved for any λ (see the module docstring). Columns
    constant over the train frames are left out (``keep``): their weight is exactly 0."""

    modalities: tuple[str, ...]
    keep: np.ndarray  # bool (D,): the columns that vary over the train frames (K of them)
    mean: np.ndarray  # μ (K,)
    scale: np.ndarray  # σ (K,)
    intercept: np.ndarray  # ȳ (T,)
    eigvals: np.ndarray  # e (K,), of R, clipped at 0
    eigvecs: np.ndarray  # V (K, K)
    proj: np.ndarray  # Vᵀ g (K, T)
    n_train: int

    def weights(self, lambdas: Sequence[float]) -> np.ndarray:
        """w (K, T) in standardised units, target j's column solved with ``lambdas[j]``."""
        lam = np.asarray(lambdas, dtype=np.float64)
        return self.eigvecs @ (self.proj / (self.eigvals[:, None] + lam[None, :]))

    def standardise(self, x: np.ndarray) -> np.ndarray:
        """z (k, K) of inputs x (k, D) from :func:`design`."""
        return (x[:, self.keep] - self.mean) / self.scale

    def predict(self, videos: Sequence[Video], lambdas: Sequence[float]) -> list[np.ndarray]:
        """Per-frame predictions (n_frames, T) of every frame of each video (invalid ones too,
        like a run's; scoring leaves them out), target j with ``lambdas[j]``."""
        w = self.weights(lambdas)
        out = [np.empty((v.n_frames, w.shape[1])) for v in videos]
        for pieces, x, _y in _blocks(videos, self.modalities, valid_only=False):
            pred = self.standardise(x) @ w + self.intercept
            row = 0
            for i, lo, hi in pieces:
                out[i][lo:hi] = pred[row:row + hi - lo]
                row += hi - lo
        return out


def fit(train: Sequence[Video], modalities: Sequence[str]) -> Ridge:
    """The ridge statistics of the valid frames of ``train``, in one pass of CHUNK-row blocks.
    Raises :class:`DataError` when the split has no valid frame.

    Sums are taken about the first block's mean (a shift c): the moments about the true mean
    follow as S/n − m mᵀ with m the small mean of x − c, without the cancellation of raw
    sums of squares. A column is constant when its train minimum equals its maximum (exactly:
    a variance computed in floating point need not come out 0)."""
    modalities = tuple(modalities)
    n = 0
    for _pieces, x, y in _blocks(train, modalities, valid_only=True):
        if not len(x):
            continue
        if n == 0:
            cx, cy = x.mean(0), y.mean(0)
            lo, hi = x.min(0), x.max(0)
            sx, sy = np.zeros_like(cx), np.zeros_like(cy)
            sxx, sxy = np.zeros((len(cx), len(cx))), np.zeros((len(cx), len(cy)))
        xc, yc = x - cx, y - cy
        n += len(x)
        sx += xc.sum(0)
        sy += yc.sum(0)
        sxx += xc.T @ xc
        sxy += xc.T @ yc
        lo, hi = np.minimum(lo, x.min(0)), np.maximum(hi, x.max(0))
    if n == 0:
        raise DataError("ridge baseline: the train split has no valid frame (every label is -5)")
    mx, my = sx / n, sy / n
    keep = lo < hi
    cov = (sxx / n - np.outer(mx, mx))[np.ix_(keep, keep)]
    xty = (sxy / n - np.outer(mx, my))[keep]
    scale = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    scale = np.where(scale > 0, scale, 1.0)  # rounding only: a kept column varies
    corr = cov / np.outer(scale, scale)
    eigvals, eigvecs = np.linalg.eigh((corr + corr.T) / 2)
    return Ridge(modalities, keep, (cx + mx)[keep], scale, cy + my, np.clip(eigvals, 0.0, None),
                 eigvecs, eigvecs.T @ (xty / scale[:, None]), n)


def validation_curve(ridge: Ridge, val: Sequence[Video], grid: Sequence[float] = LAMBDAS,
                     metric: Callable = ccc) -> np.ndarray:
    """``metric`` of each target's prediction over the valid frames of ``val`` concatenated, for
    every λ of ``grid``: (len(grid), T). One product per block gives every λ's prediction."""
    lam = np.asarray(grid, dtype=np.float64)
    n_t = ridge.proj.shape[1]
    # w_λ = V diag(1/(e + λ)) Vᵀ g for every λ, side by side: (K, G·T), column g·T + j
    w = np.concatenate([ridge.weights([g] * n_t) for g in lam], axis=1)
    preds, labels = [], []
    for _pieces, x, y in _blocks(val, ridge.modalities, valid_only=True):
        preds.append(ridge.standardise(x) @ w)
        labels.append(y)
    lab = np.concatenate(labels) if labels else np.zeros((0, n_t))
    if not len(lab):
        raise DataError("ridge baseline: the val split has no valid frame to choose λ on")
    pred = np.concatenate(preds) + np.tile(ridge.intercept, len(lam))
    return np.array([[metric(pred[:, g * n_t + j], lab[:, j]) for j in range(n_t)]
                     for g in range(len(lam))])


def choose(curve: np.ndarray, grid: Sequence[float] = LAMBDAS) -> list[float]:
    """Per target, the λ of ``grid`` with the highest validation score (the first, i.e. the
    smallest λ, among exact ties; a NaN score is never chosen)."""
    scores = np.where(np.isnan(curve), -np.inf, curve)  # a NaN score never wins
    return [float(grid[int(np.argmax(scores[:, j]))]) for j in range(curve.shape[1])]


def sequence_means(videos: Sequence[Video], modalities: Sequence[str]) -> list[Video]:
    """Each sequence of ``videos`` as a one-row video for the sequence-level ridge: per modality
    its features averaged over the frames where its mask is True, float64 ``(1, d_m)`` (zeros
    and mask False where it has none), and its label row ``(1, T)``."""
    out = []
    for v in videos:
        feats, masks = {}, {}
        for m in modalities:
            k = v.masks[m]
            x = v.features[m][k].astype(np.float64)
            feats[m] = (x.mean(0) if len(x) else np.zeros(v.features[m].shape[1]))[None]
            masks[m] = np.array([bool(k.any())])
        out.append(Video(v.name, feats, masks, v.labels))
    return out


def ridge_baseline(splits: dict[str, list[Video]], modalities: Sequence[str],
                   scorers: dict[str, Callable] | None = None, targets: Sequence[str] = TARGETS,
                   grid: Sequence[float] = LAMBDAS, level: str = "frame") -> dict:
    """The record's ``baseline``: ridge fitted on ``splits["train"]``, λ per target chosen on
    ``splits["val"]`` by CCC, val and test scored like a run (``metrics``: CCC; ``scores``: every
    metric of ``scorers``, name → function, as :func:`fusion_bench.evaluate.score_all`; CCC
    only when None). ``targets`` name the label columns in order. At ``level`` "sequence" on
    each sequence's time-averaged features (:func:`sequence_means`), scored over sequences."""
    if level == "sequence":
        splits = {s: sequence_means(splits[s], modalities) for s in ("train", "val", "test")}
    ridge = fit(splits["train"], modalities)
    curve = validation_curve(ridge, splits["val"], grid)
    lambdas = choose(curve, grid)
    preds = {s: ridge.predict(splits[s], lambdas) for s in ("val", "test")}
    return {
        "kind": "ridge",
        "modalities": list(ridge.modalities),
        "features": int(ridge.keep.size),  # D, before constant columns are left out
        "train_frames": ridge.n_train,  # at sequence level: sequences
        "grid": [float(g) for g in grid],
        "lambda": dict(zip(targets, lambdas, strict=True)),
        "metrics": {s: score(p, splits[s], tuple(targets)) for s, p in preds.items()},
        "scores": score_all(preds, splits, scorers or {"ccc": ccc}, tuple(targets)),
        **({"inputs": "sequence means"} if level == "sequence" else {}),
    }
