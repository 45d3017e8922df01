"""Evaluation: overlap-averaged per-frame predictions, CCC (and every registered metric) over all
valid frames of a split, and test-time robustness (a modality dropped, Gaussian noise on one or
all modalities). At sequence level (one label per sequence) a prediction per sequence, and every
score over a split's sequences."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import numpy as np
import torch

from .data import TARGETS, Video
from .data.windows import Windows
from .heads import observed
from .metrics import ccc


@torch.no_grad()
def predict(model: torch.nn.Module, windows: Windows, videos: list[Video], device,
            batch_size: int = 256) -> list[np.ndarray]:
    """Per-frame predictions for each video, float64 (n_frames, n_out).

    Every window is predicted once; a frame covered by several windows gets the mean of their
    predictions (the hop is usually shorter than the window).

    Sequence level (``windows.level`` "sequence"): one prediction per sequence, float64
    (1, n_out): the mean of its windows' pooled predictions weighted by each window's valid
    frames, those the head pooled (some modality present: :func:`fusion_bench.heads.observed`),
    so a window that saw 40 frames of the sequence counts twice one that saw 20. A sequence
    whose windows saw no frame at all gets their plain mean.
    """
    was_training = model.training
    model.eval()
    try:
        if windows.level == "sequence":
            return _sequence_predictions(model, windows, videos, device, batch_size)
        return _frame_predictions(model, windows, videos, device, batch_size)
    finally:
        model.train(was_training)


def _frame_predictions(model, windows: Windows, videos: list[Video], device,
                       batch_size: int) -> list[np.ndarray]:
    """:func:`predict` at frame level. The windows go through ``model`` in order, in contiguous
    batches; each position inside its video adds its prediction to its frame's sum. The sums are
    taken at the end by one ``np.bincount`` per output over every (frame, prediction) pair in
    window order, i.e. in the order a loop over the windows would add them (same float64 sums)."""
    vids, starts = windows.video.numpy(), windows.start.numpy()
    first = np.concatenate([[0], np.cumsum([v.n_frames for v in videos], dtype=np.int64)])
    rows: list[np.ndarray] = []  # per batch: the split-wide frame row of each position inside
    outs: list[np.ndarray] = []  # per batch: those positions' predictions (k, n_out)
    for lo in range(0, len(windows), batch_size):
        hi = min(lo + batch_size, len(windows))
        f, k = windows.inputs(lo, hi, device)
        out = model(f, k).double().cpu().numpy()  # (b, L, n_out)
        inside = windows.present[lo:hi].numpy()  # False past a video's end
        frame = first[vids[lo:hi], None] + starts[lo:hi, None] + np.arange(out.shape[1])
        rows.append(frame[inside])
        outs.append(out[inside])
    if not outs:
        return [np.zeros((v.n_frames, 0)) for v in videos]
    row, pred = np.concatenate(rows), np.concatenate(outs)
    total = int(first[-1])
    sums = np.stack([np.bincount(row, weights=pred[:, c], minlength=total)
                     for c in range(pred.shape[1])], axis=1)
    mean = sums / np.maximum(np.bincount(row, minlength=total), 1)[:, None]
    return [mean[first[i]:first[i + 1]] for i in range(len(videos))]


def _sequence_predictions(model, windows: Windows, videos: list[Video], device,
                          batch_size: int) -> list[np.ndarray]:
    """:func:`predict` at sequence level: each sequence's windows' pooled predictions, weighted
    by the frames each pooled."""
    sums: list = [None] * len(videos)  # per sequence, once its first window is predicted
    counts = [np.zeros(1) for _ in videos]
    plain = [np.zeros((1, 0)) for _ in videos]  # unweighted sums, and the number of windows
    vids = windows.video.numpy()
    for lo in range(0, len(windows), batch_size):
        idx = torch.arange(lo, min(lo + batch_size, len(windows)))
        f, k = windows.inputs(lo, lo + len(idx), device)
        # the pooling must leave the padding out
        out = model(f, k, windows.present_of(idx, device)).double().cpu().numpy()  # (b, 1, n_out)
        seen = observed({m: x[idx] for m, x in windows.masks.items()}, windows.masks,
                        windows.present[idx])
        weight = seen.sum(1).double().numpy()  # (b,) the frames the head pooled
        for j, w in enumerate(idx.tolist()):
            i = vids[w]
            if sums[i] is None:
                sums[i], plain[i] = np.zeros((1, out.shape[2])), np.zeros((2, out.shape[2]))
            sums[i][0] += weight[j] * out[j, 0]
            counts[i][0] += weight[j]
            plain[i][0] += out[j, 0]
            plain[i][1] += 1
    return [s / c[:, None] if c[0] > 0 else p[:1] / p[1] for s, c, p in
            zip(sums, counts, plain, strict=True)]


def predict_into(dest: list[np.ndarray], cols: tuple[int, ...], model: torch.nn.Module,
                 windows: Windows, videos: list[Video], device) -> None:
    """Write ``model``'s per-frame predictions of target columns ``cols`` into ``dest`` (one
    (n_frames, n_targets) array per video), so per-target models fill one shared array."""
    for d, out in zip(dest, predict(model, windows, videos, device), strict=True):
        d[:, list(cols)] = out


def score(preds: list[np.ndarray], videos: list[Video], targets: Sequence[str] = TARGETS,
          columns: Sequence[int] | None = None, metric: Callable = ccc) -> dict[str, float]:
    """``metric`` (default CCC) per target over the concatenated valid frames of all ``videos``
    (frames labelled -5 left out), and their mean: ``{target: value, ..., "mean": value}``.

    ``targets`` name the videos' label columns in order (the dataset's targets, see
    :func:`fusion_bench.data.dataset_targets`); ``columns`` are the label columns scored (default
    all), ``preds[i][:, j]`` predicting label column ``columns[j]``;
    ``metric(pred (n,), target (n,)) -> float`` gets float64 arrays of the valid frames.
    """
    columns = tuple(range(len(targets))) if columns is None else tuple(columns)
    lab = np.concatenate([v.labels for v in videos]).astype(np.float64)
    if lab.shape[1] != len(targets):  # scoring a dataset's labels by another's target names
        raise ValueError(f"labels have {lab.shape[1]} columns but {len(targets)} targets are "
                         f"named ({', '.join(targets)})")
    pred = np.concatenate(preds)
    ok = np.concatenate([v.valid for v in videos])
    out = {targets[c]: float(metric(pred[ok, j], lab[ok, c])) for j, c in enumerate(columns)}
    out["mean"] = float(np.mean([out[targets[c]] for c in columns]))
    return out


def metric_functions(registry, level: str | None = None,
                     label_range: tuple[float, float] | None = None) -> dict[str, Callable]:
    """Every registered metric, name → function (see the ``register_metrics`` hook); given a
    dataset's label ``level`` and ``label_range``, only the metrics defined for them
    (:func:`applies`)."""
    fns = {n: registry.get("metrics", n).obj for n in registry.names("metrics")}
    if level is None:
        return fns
    return {n: f for n, f in fns.items() if applies(f, level, label_range)}


def applies(fn: Callable, level: str, label_range: tuple[float, float] | None) -> bool:
    """Whether metric ``fn`` scores a dataset of label ``level`` and ``label_range``: a metric
    may name the one level it is defined for (``label_level``, e.g. MMSA's utterance metrics:
    "sequence") and the one label range (``label_range``, e.g. (-3, 3) for the 7-class
    accuracy); one that names neither scores every run."""
    want_level = getattr(fn, "label_level", None)
    want_range = getattr(fn, "label_range", None)
    if want_level is not None and want_level != level:
        return False
    if want_range is not None and label_range is not None and \
            tuple(map(float, want_range)) != tuple(map(float, label_range)):
        return False
    return True


def score_all(preds: dict[str, list[np.ndarray]], splits: dict[str, list[Video]],
              metrics: dict[str, Callable], targets: Sequence[str] = TARGETS
              ) -> dict[str, dict[str, dict[str, float]]]:
    """The record's ``scores``: metric name → split → {target: value, ..., "mean": value}, for
    each split of ``preds`` (split → per-video predictions of ``splits[split]``, a column per
    one of ``targets``), by :func:`score`.
    A metric that raises is left out with a warning naming it: a plugin's faulty metric must not
    cost a trained run its record (CCC, the record's ``metrics``, is computed apart)."""
    out = {}
    for name, fn in metrics.items():
        try:
            out[name] = {s: score(p, splits[s], targets, metric=fn) for s, p in preds.items()}
        except Exception as e:  # noqa: BLE001 - a third party's metric
            warnings.warn(f"metric {name!r} raised {type(e).__name__}: {e}; it is left out of "
                          "this run's scores", stacklevel=2)
    return out


# ------------------------------------------------------------------------------- robustness


def feature_scale(videos: list[Video], modalities) -> dict[str, torch.Tensor]:
    """Per-feature standard deviation (d_m,) of each modality over the present frames of
    ``videos`` (the train split): the unit of a noise level, so that level 1 is noise as large
    as the signal whatever a backbone's feature scale."""
    out = {}
    for m in modalities:
        x = np.concatenate([v.features[m][v.masks[m]] for v in videos])
        out[m] = torch.from_numpy(x.std(0).astype(np.float32)) if len(x) else None
    return {m: s for m, s in out.items() if s is not None}


def frame_noise(windows: Windows, videos: list[Video], dims: dict[str, int], seed: int
                ) -> dict[str, torch.Tensor]:
    """Standard-normal noise per modality, ``(N, L, d_m)`` like ``windows.feats``, drawn once per
    *frame* of ``videos`` and cut into the windows: a frame that two overlapping windows share
    gets the same noise in both, as it would in a noisy recording (noise drawn per window would
    partly average away in the overlap-averaged prediction, and depend on the hop)."""
    gen = torch.Generator().manual_seed(seed)
    length = windows.present.shape[1]
    offsets = np.cumsum([0] + [v.n_frames for v in videos])
    # frame index of every window position into the concatenated videos (past a video's end it
    # points into the next video, or into the zero padding: those positions are masked anyway)
    idx = (torch.from_numpy(offsets[:-1])[windows.video] + windows.start)[:, None] + torch.arange(length)
    out = {}
    for m, d in dims.items():
        per_frame = torch.cat([torch.randn(int(offsets[-1]), d, generator=gen), torch.zeros(length, d)])
        out[m] = per_frame[idx]
    return out


def perturbations(windows: Windows, videos: list[Video], scale: dict[str, torch.Tensor], levels,
                  seed: int) -> Iterator[tuple[tuple, Windows]]:
    """The perturbed copies of ``windows`` (cut from ``videos``): ``("drop", m)`` with modality
    m masked everywhere (only when there are several modalities), then ``("noise", m, level)``
    and ``("noise", "all", level)`` with ``level * scale[m] * eps`` added to the present frames,
    for every level > 0 (a modality without a scale, i.e. never present in the train split, is
    not noised).

    ``eps`` (:func:`frame_noise`) is drawn once from ``seed`` and reused at every level (common
    random numbers), so the CCC-vs-level curve is smooth rather than re-drawn each time.
    """
    mods = list(windows.feats)
    if len(mods) > 1:
        for m in mods:
            masks = {**windows.masks, m: torch.zeros_like(windows.masks[m])}
            feats = {**windows.feats, m: torch.zeros_like(windows.feats[m])}
            yield ("drop", m), replace(windows, feats=feats, masks=masks)
    noised = [m for m in mods if m in scale]
    eps = frame_noise(windows, videos, {m: windows.feats[m].shape[-1] for m in noised}, seed)
    eps = {m: e * windows.masks[m].unsqueeze(-1) * scale[m] for m, e in eps.items()}
    for level in levels:
        if level == 0:
            continue  # the clean prediction
        noisy = {m: windows.feats[m] + level * e for m, e in eps.items()}
        for m in eps:
            yield ("noise", m, level), replace(windows, feats={**windows.feats, m: noisy[m]})
        if len(mods) > 1 and eps:
            yield ("noise", "all", level), replace(windows, feats={**windows.feats, **noisy})


def noise_area(levels, means: list[float]) -> float:
    """Normalised area under mean CCC against noise level (trapezoid rule / level range): the
    average CCC over the range of levels, in CCC units (1 for a perfect, noise-proof model)."""
    x, y = np.asarray(levels, float), np.asarray(means, float)
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def robustness_summary(levels, clean: dict[str, float], scores: dict[tuple, dict[str, float]]) -> dict:
    """The record's ``robustness`` section from the clean test scores and those of every
    perturbation (keys as :func:`perturbations` yields them)."""
    drop = {k[1]: v for k, v in scores.items() if k[0] == "drop"}
    noised = list(dict.fromkeys(k[1] for k in scores if k[0] == "noise"))
    noise = {m: [clean if lv == 0 else scores[("noise", m, lv)] for lv in levels] for m in noised}
    if "all" not in noise and len(noise) == 1:  # a one-modality run: that modality is all
        noise["all"] = next(iter(noise.values()))
    return {
        "split": "test",
        "noise_levels": list(levels),
        "drop": drop,
        "noise": noise,
        "area": {m: noise_area(levels, [s["mean"] for s in curve]) for m, curve in noise.items()},
    }
