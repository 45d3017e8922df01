"""Datasets: per-video, per-frame features, masks and labels.

A dataset plugin is a class built by ``cls.from_config(run_config)`` exposing
``dims`` (modality → feature dim), ``targets`` (the names of the label columns, in order: any
names, at least one; :data:`TARGETS`, valence and arousal, when absent), ``splits()`` (split name →
list of :class:`Video`, whose labels have one column per target; splits ``train``, ``val`` and
``test``), and ``info()`` (a JSON-able dict that goes into the result record: name, version,
generator parameters, ceilings...). Every target is trained and scored (CCC per target and their
mean); the synthetic data and Aff-Wild2 have valence and arousal, the ``features`` dataset the
targets its label files' header names.

Label level (optional): a dataset labelled per frame (the default) or per sequence (an
utterance: MOSI/MOSEI sentiment, IEMOCAP valence/arousal) says so in a ``label_level`` attribute,
``"frame"`` (the default when absent) or ``"sequence"`` (:func:`dataset_label_level`). At
sequence level each :class:`Video` is one sequence: features and masks still have a row per frame
(step) of it, and ``labels`` is float32 ``(1, T)``, one row for the whole sequence; the model
pools its frames into one prediction per sequence and every loss and score is over sequences.
A dataset whose labels are not in [-1, 1] declares ``label_range = (lo, hi)`` (MOSI sentiment:
(-3, 3); :func:`dataset_label_range`); losses and metrics see raw label units, and the model's
head maps onto that range.

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

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError

#: the targets of the built-in datasets that have valence and arousal (synthetic, Aff-Wild2),
#: and of a dataset plugin that names none
TARGETS: tuple[str, ...] = ("valence", "arousal")
#: the label of a frame that has none (Aff-Wild2's convention): excluded from losses and scores
INVALID_LABEL = -5.0
#: a dataset's label levels: one label row per frame, or one per sequence (utterance)
LABEL_LEVELS = ("frame", "sequence")
#: the label range of a dataset that declares none
LABEL_RANGE: tuple[float, float] = (-1.0, 1.0)


@dataclass
class Video:
    """One video (or one subject of it).

    features: modality → float32 (n, d_m); masks: modality → bool (n,), True where the modality
    has a real frame; labels: float32 (n, T), one column per target of its dataset (valence,
    arousal for the built-ins) in its label range ([-1, 1] unless it declares another), -5 =
    invalid frame. At sequence level (a dataset's ``label_level = "sequence"``) labels are
    float32 (1, T): one row for the whole sequence of n frames.
    """

    name: str
    features: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    labels: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        """Frames (steps) of the video: its features' rows (at frame level also its labels')."""
        for x in self.features.values():
            return int(x.shape[0])
        return int(self.labels.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """bool (n,): label rows valid for every target (frames; at sequence level (1,))."""
        return (self.labels != INVALID_LABEL).all(axis=1)

    def validate(self, dims: dict[str, int], targets: Sequence[str] = TARGETS,
                 level: str = "frame", label_range: tuple[float, float] = LABEL_RANGE) -> None:
        """Raise :class:`DataError` naming the video and modality if shapes disagree (labels:
        one column per name of ``targets``, the dataset's; one row per frame, or at ``level``
        "sequence" one row) or a label is neither in ``label_range`` nor the invalid marker."""
        rows = "frames" if level == "frame" else "1"
        if self.labels.ndim != 2 or self.labels.shape[1] != len(targets) or \
                (level == "sequence" and self.labels.shape[0] != 1):
            raise DataError(
                f"video {self.name!r}: labels must have shape ({rows}, {len(targets)}) for "
                f"{', '.join(targets)}; got {self.labels.shape}"
            )
        first = next(iter(self.features.values()), None) if level == "sequence" else None
        n = self.labels.shape[0] if first is None else first.shape[0]
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
                    + (f"{n} label frames; features and labels must have one row per frame"
                       + ("; a dataset with one label per sequence declares label_level = "
                          "'sequence'" if n == 1 else "")
                       if level == "frame" else
                       f"{n} in another modality; every modality needs a row per frame")
                )
            if mask is None or mask.shape != (n,):
                raise DataError(f"video {self.name!r}, modality {m!r}: mask must have shape ({n},)")
            if not np.isfinite(x).all():
                raise DataError(f"video {self.name!r}, modality {m!r}: features contain NaN or inf")
        if level == "sequence" and n == 0:
            raise DataError(f"video {self.name!r}: a sequence of 0 frames; leave it out")
        lab = self.labels
        lo, hi = label_range
        ok = (lab == INVALID_LABEL) | ((lab >= lo) & (lab <= hi))
        if not ok.all():
            row = int(np.argwhere(~ok)[0][0])
            where = f"frame {row}" if level == "frame" else "sequence label"
            raise DataError(
                f"video {self.name!r}, {where}: label {lab[row].tolist()} is outside "
                f"[{lo:g}, {hi:g}] and is not the invalid marker -5"
            )


def check_targets(names, where: str) -> tuple[str, ...]:
    """``names`` as a dataset's targets (a tuple of strings), or :class:`DataError` saying what
    ``where`` (a file, a dataset) got wrong: at least one name, none empty, none twice, none
    ``mean`` (the scores' key for the mean over targets)."""
    if isinstance(names, str) or not all(isinstance(t, str) for t in names):
        raise DataError(f"{where}: targets must be a list of names; got {names!r}")
    names = tuple(names)
    if not names:
        raise DataError(f"{where}: no target named; name at least one (e.g. valence,arousal)")
    if any(not t for t in names):
        raise DataError(f"{where}: an empty target name in {','.join(names)!r}; name every column")
    twice = sorted({t for t in names if names.count(t) > 1})
    if twice:
        raise DataError(f"{where}: target {twice[0]!r} is named twice; name each column once")
    if "mean" in names:
        raise DataError(f"{where}: a target may not be named 'mean' (the mean over the targets "
                        "is scored under that name); rename it")
    return names


def dataset_targets(ds) -> tuple[str, ...]:
    """The targets of dataset ``ds`` (its ``targets``; :data:`TARGETS` for one without),
    checked by :func:`check_targets`."""
    return check_targets(getattr(ds, "targets", TARGETS), f"dataset {getattr(ds, 'name', ds)!r}")


def dataset_label_level(ds) -> str:
    """The label level of dataset ``ds``: its ``label_level`` (class or instance attribute),
    "frame" when it has none; :class:`DataError` naming the dataset for any other value than
    those of :data:`LABEL_LEVELS`."""
    level = getattr(ds, "label_level", "frame")
    if level not in LABEL_LEVELS:
        raise DataError(f"dataset {getattr(ds, 'name', ds)!r}: label_level must be 'frame' or "
                        f"'sequence'; got {level!r}")
    return str(level)


def check_label_range(value, what: str, error: type[Exception] = DataError
                      ) -> tuple[float, float]:
    """``value`` as a label range ``(lo, hi)``: two finite numbers lo < hi whose interval leaves
    out the invalid marker -5; otherwise ``error`` (a dataset's attribute: DataError; an option:
    ConfigError) naming ``what`` (``dataset 'x': label_range``, ``dataset.csd.label_range``).
    The one rule for a dataset's ``label_range`` and the readers'
    ``label_range`` options."""
    try:
        lo, hi = (float(x) for x in value)
    except (TypeError, ValueError):
        raise error(f"{what} must be two numbers (lo, hi); got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise error(f"{what} must be two finite numbers lo < hi, e.g. -3,3; got {value!r}")
    if lo <= INVALID_LABEL <= hi:
        raise error(f"{what} {value!r} contains the invalid marker -5, so an "
                    "invalid label could not be told from a real one; narrow the range")
    return lo, hi


def dataset_label_range(ds) -> tuple[float, float]:
    """The label range ``(lo, hi)`` of dataset ``ds``: its ``label_range``, :data:`LABEL_RANGE`
    when it has none, checked by :func:`check_label_range` (DataError naming the dataset)."""
    return check_label_range(getattr(ds, "label_range", LABEL_RANGE),
                             f"dataset {getattr(ds, 'name', ds)!r}: label_range")
