"""Cut videos into fixed-length windows (length L, hop H) and stack them into tensors, and the
rule that picks L and H from a dataset's sequence lengths where the user set none
(:func:`window_rule`, :func:`resolve_windows`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from . import INVALID_LABEL, Video

# Changing the rule below? Bump fusion_bench.config.schema.WINDOW_RULE_VERSION (part of the
# identity of every run that leaves a window or hop to it).
WINDOW_CAP = 64  # longest window the rule picks: the quick model (RCMA's L×L time maps) is sized for it
WINDOW_QUANTILE = 0.25  # the rule's quantile of the train split's sequence lengths


def window_rule(lengths) -> int:
    """The window length L the rule gives for training sequences of ``lengths`` frames: the
    largest power of two at most the lower quartile (:data:`WINDOW_QUANTILE`, numpy's linear
    interpolation) of the lengths, capped at :data:`WINDOW_CAP`; at least 1.

    So three quarters of the sequences fill at least one whole window, and with them most window
    positions are frames rather than padding; e.g. lengths 10..300 evenly spread → quartile 82.5
    → 64; most sequences of 10–40 frames → 16 or 8.
    """
    if len(lengths) == 0:
        raise ConfigError("the train split has no sequences to derive data.window from")
    q = float(np.quantile(np.asarray(lengths, float), WINDOW_QUANTILE))
    return int(min(WINDOW_CAP, 2 ** int(np.floor(np.log2(max(q, 1.0))))))


def sequence_window_rule(lengths) -> int:
    """The window length L the rule gives a sequence-level dataset (one label per sequence) whose
    training sequences have ``lengths`` frames: the longest of them, capped at
    :data:`WINDOW_CAP`; at least 1.

    Why not :func:`window_rule`'s lower quartile: at frame level a window is a stretch of frames
    each scored on its own, so padding is wasted positions and shorter windows are cheap; at
    sequence level a window is pooled into one prediction of a label that belongs to the whole
    sequence, so a window shorter than the sequence sees only part of the utterance (its
    prediction is then the valid-frame-weighted mean of several partial views), while padding
    costs compute only (pooling leaves it out). So the window holds every sequence whole, up to
    the cap that the quick model (RCMA's L×L time maps) is sized for; only sequences longer than
    the cap are cut into windows.
    """
    if len(lengths) == 0:
        raise ConfigError("the train split has no sequences to derive data.window from")
    return int(max(1, min(WINDOW_CAP, int(max(lengths)))))


def resolve_windows(window: int, hop: int, eval_hop: int, lengths,
                    level: str = "frame") -> tuple[int, int, int]:
    """``(window, hop, eval_hop)`` as a run uses them, from the config's values (0: derive) and the
    train split's sequence ``lengths``. Window 0: :func:`window_rule`
    (:func:`sequence_window_rule` at ``level`` "sequence"). Hop 0: window / 2 (at least
    1). Eval hop 0: the hop where the user set one (its meaning before the rule), else window / 4
    (at least 1; the quick setting's 16 at L = 64). A value set (> 0) is kept as it is."""
    rule = sequence_window_rule if level == "sequence" else window_rule
    w = window if window > 0 else rule(lengths)
    h = hop if hop > 0 else max(1, w // 2)
    e = eval_hop if eval_hop > 0 else (hop if hop > 0 else max(1, w // 4))
    for key, value in (("data.hop", h), ("data.eval_hop", e)):
        if value > w:  # only possible with a hop set and the window derived
            raise ConfigError(f"{key} ({value}) is longer than the window the data gives "
                              f"(data.window {w}, derived); set data.window too, or {key} ≤ {w}")
    return w, h, e


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
    valid: bool (N, L), frame exists and is labelled; present: bool (N, L), the frame exists
    (False only on the padding past a video's end); video: long (N,) index into the split's
    videos; start: long (N,) first frame of each window.

    At sequence level (``level`` "sequence") a window carries its sequence's one label: labels
    float32 (N, 1, T), the sequence's label row in every window of it; valid bool (N, 1); the
    model pools each window's present frames into one prediction (N, 1, T), and ``video`` is
    the sequence index its predictions are averaged into.
    """

    feats: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    labels: torch.Tensor
    valid: torch.Tensor
    video: torch.Tensor
    start: torch.Tensor
    present: torch.Tensor
    level: str = "frame"

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, idx: torch.Tensor, device) -> tuple[dict, dict, torch.Tensor, torch.Tensor]:
        """(feats, masks, labels, valid) of the windows ``idx``, moved to ``device``."""
        f = {m: x[idx].to(device, non_blocking=True) for m, x in self.feats.items()}
        k = {m: x[idx].to(device, non_blocking=True) for m, x in self.masks.items()}
        return f, k, self.labels[idx].to(device), self.valid[idx].to(device)

    def inputs(self, lo: int, hi: int, device) -> tuple[dict, dict]:
        """(feats, masks) of the windows ``lo:hi`` on ``device``, for prediction: on the CPU the
        features are views of the windows (no copy: :class:`fusion_bench.model.FusionModel`
        reads them through an out-of-place ``masked_fill``), the masks are copies, as a fusion
        plugin receives them."""
        f = {m: x[lo:hi].to(device, non_blocking=True) for m, x in self.feats.items()}
        k = {m: x[lo:hi].to(device, copy=True) for m, x in self.masks.items()}
        return f, k

    def present_of(self, idx: torch.Tensor, device) -> torch.Tensor | None:
        """The frame-exists mask of the windows ``idx`` on ``device``, or None when none of them
        has padding (read on the CPU copy: no device sync; the model then takes its fast path)."""
        p = self.present[idx]
        return None if bool(p.all()) else p.to(device, non_blocking=True)

    def padding_share(self) -> float:
        """Share of window positions that are padding (past a video's end); 0 for no windows."""
        return float((~self.present).sum()) / max(1, self.present.numel())


def make_windows(videos: list[Video], modalities: tuple[str, ...], length: int, hop: int,
                 level: str = "frame") -> Windows:
    """Stack every window of every video; frames past a video's end are zero with mask False.
    At ``level`` "sequence" each window's label is its video's one label row (see
    :class:`Windows`)."""
    index = [(i, s) for i, v in enumerate(videos) for s in window_starts(v.n_frames, length, hop)]
    n = len(index)
    vid = np.fromiter((i for i, _ in index), np.int64, n)
    start = np.fromiter((s for _, s in index), np.int64, n)
    pos = start[:, None] + np.arange(length)  # (n, L) frame of each window position
    frames = np.array([v.n_frames for v in videos], np.int64)
    present = pos < frames[vid][:, None]  # False past a video's end: padding
    # every row is written below (a video without frames: zeros), so no zero-filling first
    feats = {
        m: np.empty((n, length, videos[0].features[m].shape[1]), np.float32) for m in modalities
    }
    masks = {m: np.empty((n, length), bool) for m in modalities}
    n_targets = videos[0].labels.shape[1] if videos else 0  # the dataset's targets
    rows = 1 if level == "sequence" else length  # label rows per window
    labels = np.full((n, rows, n_targets), INVALID_LABEL, np.float32)
    valid = np.zeros((n, rows), bool)
    # a video's windows are consecutive: one gather per video and array (not a copy per window
    # and modality: the default data has ~6,000 windows), into the arrays allocated above, so
    # the peak memory is the windows plus one video's
    bounds = np.searchsorted(vid, np.arange(len(videos) + 1))
    for i, v in enumerate(videos):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        if v.n_frames == 0:  # no frame: its one window is all padding
            for m in modalities:
                feats[m][lo:hi], masks[m][lo:hi] = 0.0, False
            continue
        at = np.minimum(pos[lo:hi], v.n_frames - 1)  # (k, L) frames, clamped inside the video
        keep = present[lo:hi]
        padded = not keep.all()  # most videos fill their windows: no pass to blank padding
        for m in modalities:
            # gathered straight into the windows (one pass, no temporary copy)
            np.take(v.features[m], at, axis=0, out=feats[m][lo:hi])
            np.take(v.masks[m], at, out=masks[m][lo:hi])
            if padded:
                feats[m][lo:hi][~keep] = 0
                masks[m][lo:hi] &= keep
        if level == "sequence":  # a window carries its sequence's one label row
            labels[lo:hi], valid[lo:hi] = v.labels, v.valid
        else:
            np.take(v.labels, at, axis=0, out=labels[lo:hi])
            np.take(v.valid, at, out=valid[lo:hi])
            if padded:
                labels[lo:hi][~keep] = INVALID_LABEL
                valid[lo:hi] &= keep
    return Windows(
        feats={m: torch.from_numpy(x) for m, x in feats.items()},
        masks={m: torch.from_numpy(x) for m, x in masks.items()},
        labels=torch.from_numpy(labels),
        valid=torch.from_numpy(valid),
        video=torch.from_numpy(vid),
        start=torch.from_numpy(start),
        present=torch.from_numpy(present),
        level=level,
    )
