"""Cut videos into fixed-length windows (length L, hop H) and stack them into tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from . import Video


def window_starts(n_frames: int, length: int, hop: int) -> list[int]:
    """Start frames of windows covering ``range(n_frames)``.

    Every ``hop`` frames, plus one window flush with the end so the last frames are covered; a
    video shorter than ``length`` gets one window at 0 (zero-padded by :func:`make_windows`).
    """
    if length <= 0 or hop <= 0:
        raise ConfigError(
            f"window length and hop must be positive (got length={length}, hop={hop}); "
            "set e.g. --set data.window=64 --set data.hop=64"
        )
    if n_frames <= length:
        return [0]
    starts = list(range(0, n_frames - length + 1, hop))
    if starts[-1] != n_frames - length:
        starts.append(n_frames - length)
    return starts


@dataclass
class Windows:
    """A split cut into N windows of length L.

    feats: modality → float32 (N, L, d_m); masks: modality → bool (N, L); labels: float32 (N, L, T);
    valid: bool (N, L), frame exists and is labelled; video: long (N,) index into the split's
    videos; start: long (N,) first frame of each window.
    """

    feats: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    labels: torch.Tensor
    valid: torch.Tensor
    video: torch.Tensor
    start: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, idx: torch.Tensor, device) -> tuple[dict, dict, torch.Tensor, torch.Tensor]:
        """(feats, masks, labels, valid) of the windows ``idx``, moved to ``device``."""
        f = {m: x[idx].to(device, non_blocking=True) for m, x in self.feats.items()}
        k = {m: x[idx].to(device, non_blocking=True) for m, x in self.masks.items()}
        return f, k, self.labels[idx].to(device), self.valid[idx].to(device)


def make_windows(videos: list[Video], modalities: tuple[str, ...], length: int, hop: int) -> Windows:
    """Stack every window of every video; frames past a video's end are zero with mask False."""
    index = [(i, s) for i, v in enumerate(videos) for s in window_starts(v.n_frames, length, hop)]
    n = len(index)
    feats = {
        m: np.zeros((n, length, videos[0].features[m].shape[1]), np.float32) for m in modalities
    }
    masks = {m: np.zeros((n, length), bool) for m in modalities}
    n_targets = videos[0].labels.shape[1] if videos else 0  # the dataset's targets
    labels = np.full((n, length, n_targets), -5.0, np.float32)
    valid = np.zeros((n, length), bool)
    for w, (i, s) in enumerate(index):
        v = videos[i]
        e = min(s + length, v.n_frames)
        k = e - s
        for m in modalities:
            feats[m][w, :k] = v.features[m][s:e]
            masks[m][w, :k] = v.masks[m][s:e]
        labels[w, :k] = v.labels[s:e]
        valid[w, :k] = v.valid[s:e]
    return Windows(
        feats={m: torch.from_numpy(x) for m, x in feats.items()},
        masks={m: torch.from_numpy(x) for m, x in masks.items()},
        labels=torch.from_numpy(labels),
        valid=torch.from_numpy(valid),
        video=torch.tensor([i for i, _ in index], dtype=torch.long),
        start=torch.tensor([s for _, s in index], dtype=torch.long),
    )
