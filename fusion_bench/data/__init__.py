"""Datasets: per-video, per-frame features, masks and labels.

A dataset plugin is a class built by ``cls.from_config(run_config)`` exposing
``dims`` (modality → feature dim), ``targets`` (("valence", "arousal")), ``splits()`` (split name →
list of :class:`Video`; splits ``train``, ``val`` and ``test``), and ``info()`` (a JSON-able dict
that goes into the result record: name, version, generator parameters, ceilings...).

Options (optional): a dataset with options exposes them as ``Options``, a dataclass whose fields
(typed, with defaults) are set with ``--set dataset.<name>.<field>=...`` or a TOML table
``[dataset.<name>]``, and may have a ``check()`` method raising
:class:`fusion_bench.errors.ConfigError`; ``from_config`` gets them, typed and checked, from
:func:`fusion_bench.options.dataset_options` ``(cfg, cls)``. fusion-bench checks them before any run
and lists them (``fusion-bench list datasets --options``). A dataset that makes its data from its
options alone (a generator) names the version of that data in a ``data_version`` attribute, part
of each run's identity (bump it when the generator changes); data read from disk has none.
All in one file::

    @dataclass
    class ToyOptions:
        n_videos: int = 10

    class Toy:
        Options = ToyOptions
        data_version = "1"

        @classmethod
        def from_config(cls, cfg):
            return cls(fusion_bench.options.dataset_options(cfg, cls), cfg.data.modalities)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError

TARGETS = ("valence", "arousal")
#: the label of a frame that has none (Aff-Wild2's convention): excluded from losses and scores
INVALID_LABEL = -5.0


@dataclass
class Video:
    """One video (or one subject of it).

    features: modality → float32 (n, d_m); masks: modality → bool (n,), True where the modality
    has a real frame; labels: float32 (n, 2) valence/arousal in [-1, 1], -5 = invalid frame.
    """

    name: str
    features: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    labels: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.labels.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """bool (n,): frames with a valid label for every target."""
        return (self.labels != INVALID_LABEL).all(axis=1)

    def validate(self, dims: dict[str, int]) -> None:
        """Raise :class:`DataError` naming the video and modality if shapes disagree."""
        n = self.labels.shape[0] if self.labels.ndim == 2 else -1
        if self.labels.ndim != 2 or self.labels.shape[1] != len(TARGETS):
            raise DataError(
                f"video {self.name!r}: labels must have shape (frames, 2) for valence, arousal; "
                f"got {self.labels.shape}"
            )
        for m, d in dims.items():
            if m not in self.features:
                raise DataError(f"video {self.name!r}: modality {m!r} is missing")
            x, mask = self.features[m], self.masks.get(m)
            if x.ndim != 2 or x.shape[1] != d:
                raise DataError(
                    f"video {self.name!r}, modality {m!r}: features must be (frames, {d}); got {x.shape}"
                )
            if x.shape[0] != n:
                raise DataError(
                    f"video {self.name!r}, modality {m!r}: {x.shape[0]} feature frames but "
                    f"{n} label frames; features and labels must have one row per frame"
                )
            if mask is None or mask.shape != (n,):
                raise DataError(f"video {self.name!r}, modality {m!r}: mask must have shape ({n},)")
            if not np.isfinite(x).all():
                raise DataError(f"video {self.name!r}, modality {m!r}: features contain NaN or inf")
        lab = self.labels
        ok = (lab == INVALID_LABEL) | ((lab >= -1.0) & (lab <= 1.0))
        if not ok.all():
            row = int(np.argwhere(~ok)[0][0])
            raise DataError(
                f"video {self.name!r}, frame {row}: label {lab[row].tolist()} is outside [-1, 1] "
                "and is not the invalid marker -5"
            )
