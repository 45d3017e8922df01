"""Videos cut into utterances with one label each: the synthetic generator's sequence level
(``--set dataset.synthetic.label_level=sequence``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import Video


def cuts(n_frames: int, lo: int, hi: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Consecutive ``(start, end)`` pieces of ``range(n_frames)`` of lengths drawn uniformly from
    ``lo..hi``; a last piece shorter than ``lo`` is dropped, unless it is the whole video (a
    video shorter than ``lo`` is one utterance)."""
    out, s = [], 0
    while s < n_frames:
        e = s + int(rng.integers(lo, hi + 1))
        if min(e, n_frames) - s >= lo or s == 0:
            out.append((s, min(e, n_frames)))
        s = e
    return out


def utterances(videos: Sequence[Video], latents: Sequence[np.ndarray], seed: list[int],
               knobs) -> tuple[list[Video], list[np.ndarray]]:
    """Each video of ``videos`` cut into utterances (:func:`cuts`, lo = ``utterance_min_frames``
    to hi = ``utterance_max_frames`` frames of the generator's ``knobs``), each a :class:`Video`
    of its frames' features and masks and one label row (1, T).

    Label of an utterance of frames s..e−1, per target j: mean_t latent[t, j] + label_noise · ε_j,
    ε_j ~ N(0, 1) one draw per utterance (an annotator rating the whole utterance), clipped to
    [-1, 1]. ``latents``: each video's noiseless frame-level targets (n, T). The cuts and the
    noise come from ``seed + [video index]`` only, so the videos themselves are unchanged.
    Returns the utterances and their noiseless labels (1, T) each (for the ceiling).
    """
    lo, hi, label_noise = knobs.utterance_min_frames, knobs.utterance_max_frames, knobs.label_noise
    out, clean = [], []
    for j, (v, lat) in enumerate(zip(videos, latents, strict=True)):
        rng = np.random.default_rng([*seed, j])
        for k, (s, e) in enumerate(cuts(v.n_frames, lo, hi, rng)):
            mean = lat[s:e].mean(0, keepdims=True)
            label = np.clip(mean + label_noise * rng.standard_normal(mean.shape), -1, 1)
            meta = {"video": v.name, "start": s}
            if "sync" in v.meta:
                meta["sync"] = v.meta["sync"][s:e]
            out.append(Video(name=f"{v.name}_u{k:02d}",
                             features={m: x[s:e] for m, x in v.features.items()},
                             masks={m: x[s:e] for m, x in v.masks.items()},
                             labels=label.astype(np.float32), meta=meta))
            clean.append(mean.astype(np.float32))
    return out, clean
