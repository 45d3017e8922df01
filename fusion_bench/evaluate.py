"""Evaluation: overlap-averaged per-frame predictions, CCC over all valid frames of a split."""

from __future__ import annotations

import numpy as np
import torch

from .data import TARGETS, Video
from .data.windows import Windows
from .metrics import ccc


@torch.no_grad()
def predict(model: torch.nn.Module, windows: Windows, videos: list[Video], device,
            batch_size: int = 256) -> list[np.ndarray]:
    """Per-frame predictions for each video, float64 (n_frames, n_out).

    Every window is predicted once; a frame covered by several windows gets the mean of their
    predictions (the hop is usually shorter than the window).
    """
    was_training = model.training
    model.eval()
    sums = [None] * len(videos)
    counts = [np.zeros(v.n_frames) for v in videos]
    starts, vids = windows.start.numpy(), windows.video.numpy()
    for lo in range(0, len(windows), batch_size):
        idx = torch.arange(lo, min(lo + batch_size, len(windows)))
        f, k, _, _ = windows.batch(idx, device)
        out = model(f, k).double().cpu().numpy()  # (b, L, n_out)
        for j, w in enumerate(idx.tolist()):
            i, s = vids[w], starts[w]
            e = min(s + out.shape[1], videos[i].n_frames)
            if sums[i] is None:
                sums[i] = np.zeros((videos[i].n_frames, out.shape[2]))
            sums[i][s:e] += out[j, : e - s]
            counts[i][s:e] += 1
    model.train(was_training)
    return [s / np.maximum(c, 1)[:, None] for s, c in zip(sums, counts, strict=True)]


def score(preds: list[np.ndarray], videos: list[Video], targets=TARGETS,
          columns: tuple[int, ...] | None = None) -> dict[str, float]:
    """CCC per target over the concatenated valid frames of all ``videos``, and their mean.

    ``preds[i][:, columns[j]]`` is the prediction of ``targets[j]`` (default: column j).
    """
    columns = columns or tuple(range(len(targets)))
    lab = np.concatenate([v.labels for v in videos])
    pred = np.concatenate(preds)
    ok = np.concatenate([v.valid for v in videos])
    out = {t: ccc(pred[:, c], lab[:, TARGETS.index(t)], ok) for t, c in zip(targets, columns, strict=True)}
    out["mean"] = float(np.mean([out[t] for t in targets]))
    return out
