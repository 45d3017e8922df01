"""The ``csd`` dataset: CMU-MultimodalSDK computational sequences (``.csd``, HDF5), one label per
segment (sequence level). Needs h5py (``pip install "fusion-bench-affect[csd]"``).

A computational sequence, as the SDK's ``file_ops.write_CSD`` writes it::

    <root name>/                      one group at the top, named after the sequence
      data/<video id>/features        (F, d): one row per frame (numbers)
      data/<video id>/intervals       (F, 2): each frame's start and end, in seconds
      metadata/<key>                  one JSON string each ("root name", "dimension names", ...)

Folder (``--root DIR``)::

    DIR/<modality>.csd         one per modality: visual.csd, audio.csd, text.csd, or any file
                               named by option ``files`` (visual:CMU_MOSI_Visual_Facet_41.csd,...)
    DIR/labels.csd             the labels (option ``labels``: CMU_MOSI_Opinion_Labels.csd): per
                               video, intervals = the segments, features (S, k) = their labels
    DIR/splits.json            {"train": [video id, ...], "valid" (or "val"): [...], "test": [...]}
                               (option ``splits``): the SDK ships its standard folds as such lists

**Joining the modalities** (as the SDK's ``align`` to the labels): the labels' intervals are the
utterances. A frame of a modality belongs to a segment when their intervals overlap by more than
1e-5 s (the SDK's epsilon; a frame across a boundary belongs to both). Each modality's frames in a
segment, in time order, are its sequence (collected, not averaged): the modalities have their own
frame rates, so the shorter ones are filled to the longest with masked zeros, and step i of two
modalities is not the same moment. With ``align_to=<modality>`` the steps are that modality's
frames instead (e.g. the words) and every other modality is averaged over each step's interval
(the SDK's align with a mean as collapse function), masked where it has no frame there. A modality
without a frame in a segment is masked for all of it; a segment of zero length (the SDK skips
them) or without a frame of any modality is left out, with a note.

A segment is named ``<video id>[<i>]``, as the SDK names them. A video that the split file lists
but that the labels or a modality file lacks is left out with a note (as the SDK's ``unify``
does); a split left empty is an error. No split file is an error: a split drawn here could not be
compared with the literature's folds.

The targets are the labels' columns: named by option ``targets`` (any subset of the file's
``dimension names``, when its metadata has them, or one name per column), else the file's
``dimension names``, else ``sentiment`` for one column (MOSI's, MOSEI's first). Labels keep their
units; ``label_range`` (default [-3, 3], the sentiment scale) bounds them; a label outside, or
NaN, is refused naming the file, video and segment.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, Note
from . import Video, check_label_range, check_targets

VERSION = "1"
EPSILON = 1e-5  # the SDK's: intervals closer than this are the same instant
SPLIT_KEYS = {"train": ("train",), "val": ("val", "valid"), "test": ("test",)}


@dataclass
class CSDOptions:
    """``--set dataset.csd.<name>=...``"""

    files: dict[str, str] = field(default_factory=dict)  # modality:FILE.csd; {}: <modality>.csd
    labels: str = "labels.csd"  # the labels' computational sequence, in the folder
    splits: str = "splits.json"  # {"train": [...], "valid": [...], "test": [...]}, in the folder
    targets: tuple[str, ...] = ()  # label columns to score; (): every one
    label_range: tuple[float, ...] = (-3.0, 3.0)
    align_to: str = ""  # "": collect each modality's frames; a modality: its frames are the steps
    nonfinite: str = "refuse"  # NaN/inf in a frame's features: refuse, or zero

    def check(self) -> None:
        check_label_range(self.label_range, "dataset.csd.label_range", ConfigError)
        if self.nonfinite not in ("refuse", "zero"):
            raise ConfigError(f"dataset.csd.nonfinite must be refuse or zero; got {self.nonfinite!r}")


def h5py_module():
    try:
        import h5py
    except ImportError:
        raise ConfigError('dataset \'csd\' reads HDF5 files and needs h5py: '
                          'pip install "fusion-bench-affect[csd]"') from None
    return h5py


def inside(root: Path, name: str, key: str) -> Path:
    """``root/name`` for a file name an option gives; ConfigError if it leads outside ``root``."""
    p = root / name
    if not name or Path(name).is_absolute() or ".." in Path(name).parts or \
            not p.resolve().is_relative_to(root.resolve()):
        raise ConfigError(f"{key}={name!r}: name a file inside {root} (no folder outside it, no '..')")
    return p


@dataclass
class Sequence:
    """One computational sequence read whole: video id → (intervals (F, 2), features (F, d))."""

    path: Path
    data: dict[str, tuple[np.ndarray, np.ndarray]]
    metadata: dict
    dim: int


def _own(h5py, group, name: str, where: str):
    """``group[name]``, refusing anything HDF5 would fetch from another file: an external link,
    a dataset whose bytes lie in outside files, a virtual dataset (its sources are files). A
    file from elsewhere must not make us read a path outside the folder we were given."""
    if isinstance(group.get(name, getlink=True), h5py.ExternalLink):
        raise DataError(f"{where}: {name!r} is a link to another file; a .csd file must hold "
                        "its data itself")
    obj = group[name]
    if isinstance(obj, h5py.Dataset) and (obj.external or obj.is_virtual):
        raise DataError(f"{where}: {name!r} is stored outside the file (external or virtual "
                        "dataset); a .csd file must hold its data itself")
    return obj


def read_csd(path: Path) -> Sequence:
    """Read ``path`` (checked: one root group with data/ and metadata/, per video numeric
    features (F, d) and intervals (F, 2) with start ≤ end); DataError names file, video, field."""
    h5py = h5py_module()
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise DataError(f"{path}: file does not exist") from None
    except OSError as e:
        raise DataError(f"{path}: not an HDF5 computational sequence ({e})") from None
    with f:
        roots = list(f.keys())
        root = _own(h5py, f, roots[0], str(path)) if len(roots) == 1 else None
        if root is None or not isinstance(root, h5py.Group) or "data" not in root:
            raise DataError(f"{path}: expected one group <root name> holding data/ and metadata/; "
                            f"got {', '.join(map(repr, roots)) or 'nothing'}")
        metadata = {}
        meta = _own(h5py, root, "metadata", str(path)) if "metadata" in root else {}
        for k in list(meta.keys()):
            try:  # the SDK writes json.dumps(value) as one string per key
                metadata[k] = json.loads(_own(h5py, meta, k, f"{path}, metadata")[0])
            except (ValueError, TypeError, IndexError):
                metadata[k] = None
        data, dim = {}, -1
        videos = _own(h5py, root, "data", str(path))
        for vid in list(videos.keys()):
            where = f"{path}, video {vid!r}"
            g = _own(h5py, videos, vid, where)
            if not isinstance(g, h5py.Group) or "features" not in g or "intervals" not in g:
                raise DataError(f"{where}: expected datasets features and intervals")
            x = np.asarray(_own(h5py, g, "features", where)[()])
            t = np.asarray(_own(h5py, g, "intervals", where)[()])
            if x.dtype.kind not in "biuf" or x.ndim != 2:
                raise DataError(f"{where}, features: expected numbers (frames, dim); got shape "
                                f"{x.shape}, dtype {x.dtype} (words? use a numeric sequence, e.g. "
                                "word vectors)")
            if t.dtype.kind not in "biuf" or t.ndim != 2 or t.shape[1] != 2 or t.shape[0] != x.shape[0]:
                raise DataError(f"{where}, intervals: expected ({x.shape[0]}, 2) start,end like its "
                                f"features; got {t.shape}")
            bad = np.flatnonzero(~np.isfinite(t).all(axis=1) | (t[:, 1] < t[:, 0]))
            if bad.size:
                raise DataError(f"{where}, intervals row {int(bad[0])}: {t[bad[0]].tolist()} is not a "
                                "finite start ≤ end in seconds")
            if dim not in (-1, x.shape[1]):
                raise DataError(f"{where}, features: {x.shape[1]} columns, but {dim} in an earlier "
                                "video; every video of a sequence has the same")
            dim = int(x.shape[1])
            data[vid] = (t.astype(np.float64), x)
    return Sequence(path, data, metadata, dim)


def read_split_file(path: Path) -> dict[str, list[str]]:
    """split → video ids from a JSON split file (``valid`` or ``val``; other keys ignored)."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no split file; write the video ids of each split as JSON "
                        '{"train": [...], "valid": [...], "test": [...]} (the SDK\'s standard '
                        "folds), or name one with --set dataset.csd.splits=FILE") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise DataError(f'{path}: expected an object {{"train": [...], "valid": [...], "test": [...]}}')
    out = {}
    for split, names in SPLIT_KEYS.items():
        given = [k for k in names if k in obj]
        if len(given) != 1:
            raise DataError(f"{path}: " + (f"no {' or '.join(map(repr, names))} list" if not given
                                           else "both 'val' and 'valid'; give one"))
        ids = obj[given[0]]
        if not isinstance(ids, list) or not all(isinstance(v, str) for v in ids):
            raise DataError(f"{path}: field {given[0]!r} must be a list of video ids")
        out[split] = list(dict.fromkeys(ids))
    for split in ("val", "test"):
        leak = sorted(set(out["train"]) & set(out[split]))
        if leak:
            raise DataError(f"{path}: video {leak[0]!r} is in train and in {split}; a {split} "
                            "video must not be trained on")
    return out


def overlap(frames: np.ndarray, a: float, b: float) -> np.ndarray:
    """bool (F,): frames (F, 2) whose interval overlaps [a, b] by more than :data:`EPSILON`."""
    return (np.minimum(frames[:, 1], b) - np.maximum(frames[:, 0], a)) > EPSILON


class CSDDataset:
    """CMU-MultimodalSDK computational sequences (format in the module docstring)."""

    name = "csd"
    description = "CMU-MultimodalSDK computational sequences (.csd, HDF5) joined on a labels .csd: one label per segment"
    reference = "CMU-MultimodalSDK (Zadeh et al.), github.com/CMU-MultiComp-Lab/CMU-MultimodalSDK"
    label_level = "sequence"
    Options = CSDOptions

    def __init__(self, root: str | Path, options: CSDOptions | None = None,
                 modalities: tuple[str, ...] = ("visual", "audio", "text")):
        if not str(root):
            raise ConfigError("dataset 'csd' reads a folder of .csd files: give --root DIR")
        self.root = Path(root)
        self.options = o = options or CSDOptions()
        o.check()
        if not self.root.is_dir():
            raise DataError(f"{self.root}: " + ("is a file; give the folder of .csd files"
                                                if self.root.exists() else "folder does not exist"))
        self.modalities = tuple(modalities)
        if o.align_to and o.align_to not in self.modalities:
            raise ConfigError(f"dataset.csd.align_to={o.align_to!r} is not one of the run's "
                              f"modalities {', '.join(self.modalities)}")
        h5py_module()  # the missing extra before any file
        self.files = {m: inside(self.root, o.files.get(m, f"{m}.csd"), f"dataset.csd.files.{m}")
                      for m in self.modalities}
        for m, p in self.files.items():
            if not p.is_file():
                have = sorted(q.name for q in self.root.glob("*.csd"))
                raise DataError(f"{p}: no computational sequence for modality {m!r} (the folder has "
                                f"{', '.join(have) or 'no .csd file'}); name it <modality>.csd, or "
                                "map it with --set dataset.csd.files=visual:FILE.csd,audio:...")
        self.label_file = inside(self.root, o.labels, "dataset.csd.labels")
        self.split_file = inside(self.root, o.splits, "dataset.csd.splits")
        split_ids = read_split_file(self.split_file)
        labels = read_csd(self.label_file) if self.label_file.is_file() else None
        if labels is None:
            raise DataError(f"{self.label_file}: no labels file; set dataset.csd.labels to the "
                            "labels' .csd (e.g. CMU_MOSI_Opinion_Labels.csd)")
        self.columns, self.targets = self._targets(labels)
        self.label_range = check_label_range(o.label_range, "dataset.csd.label_range", ConfigError)
        seqs = {m: read_csd(p) for m, p in self.files.items()}
        self.dims = {m: s.dim for m, s in seqs.items()}
        for m, d in self.dims.items():
            if d < 1:
                raise DataError(f"{self.files[m]}: no video with features")
        self.left_out: dict[str, int] = {}
        self._splits = {s: self._read_split(s, ids, labels, seqs) for s, ids in split_ids.items()}
        self._fingerprint = self._fingerprint_of()

    @classmethod
    def from_config(cls, cfg) -> CSDDataset:
        from ..options import dataset_options

        return cls(cfg.data.root, dataset_options(cfg, cls), cfg.data.modalities)

    def _targets(self, labels: Sequence) -> tuple[list[int], tuple[str, ...]]:
        raw = labels.metadata.get("dimension names")
        named = isinstance(raw, list) and len(raw) == labels.dim and all(isinstance(x, str) for x in raw)
        names: list[str] = list(raw) if named and raw is not None else []
        want = self.options.targets
        where = f"{self.label_file}"
        if want and named:
            missing = [t for t in want if t not in names]
            if missing:
                raise ConfigError(f"dataset.csd.targets: {missing[0]!r} is not a column of {where} "
                                  f"(its dimension names: {', '.join(names)})")
            return [names.index(t) for t in want], check_targets(want, "dataset.csd.targets")
        if want:
            if len(want) != labels.dim:
                raise ConfigError(f"dataset.csd.targets names {len(want)} target(s), but {where} has "
                                  f"{labels.dim} label column(s) and no dimension names; name each")
            return list(range(labels.dim)), check_targets(want, "dataset.csd.targets")
        if named:
            return list(range(labels.dim)), check_targets(names, f"{where}, dimension names")
        if labels.dim == 1:
            return [0], ("sentiment",)
        raise ConfigError(f"{where}: {labels.dim} label columns and no dimension names; name them "
                          "with --set dataset.csd.targets=a,b,...")

    def _read_split(self, split: str, ids: list[str], labels: Sequence, seqs: dict) -> list[Video]:
        absent = [v for v in ids if v not in labels.data or any(v not in s.data for s in seqs.values())]
        if absent:
            self.left_out[split] = len(absent)
            warnings.warn(f"{self.split_file}: {len(absent)} {split} video(s) absent from the labels "
                          f"or a modality's file left out (first: {absent[0]!r})", Note, stacklevel=2)
        out, skipped = [], 0
        lo, hi = self.label_range
        for vid in ids:
            if vid in absent:
                continue
            segments, y = labels.data[vid]
            for i, (a, b) in enumerate(segments):
                where = f"{self.label_file}, video {vid!r}, segment {i}"
                value = y[i, self.columns].astype(np.float32)
                if not ((value >= lo) & (value <= hi)).all():
                    raise DataError(f"{where}: label {value.tolist()} is NaN or outside "
                                    f"[{lo:g}, {hi:g}]; set dataset.csd.label_range to the labels' range")
                video = self._segment(f"{vid}[{i}]", vid, a, b, seqs) if b - a > EPSILON else None
                if video is None:
                    skipped += 1
                    continue
                video.labels = value[None, :]
                out.append(video)
        if skipped:
            warnings.warn(f"{self.label_file}: {skipped} {split} segment(s) of zero length or "
                          "without a frame of any modality left out", Note, stacklevel=2)
        if not out:
            raise DataError(f"{self.split_file}: split {split!r} has no segment with data")
        return out

    def _frames(self, seq: Sequence, vid: str, a: float, b: float, m: str):
        t, x = seq.data[vid]
        keep = np.flatnonzero(overlap(t, a, b))
        keep = keep[np.argsort(t[keep, 0], kind="stable")]
        x = x[keep].astype(np.float32)
        bad = ~np.isfinite(x)
        if bad.any():
            if self.options.nonfinite == "refuse":
                raise DataError(f"{seq.path}, video {vid!r}, frame {int(keep[np.argwhere(bad)[0][0]])}: "
                                "NaN or infinite feature; fix the file, or set "
                                "dataset.csd.nonfinite=zero to read such values as 0")
            x[bad] = 0
        return np.clip(t[keep], a, b), x

    def _segment(self, name: str, vid: str, a: float, b: float, seqs: dict) -> Video | None:
        """The :class:`Video` of one segment [a, b] (labels set by the caller), or None if no
        modality has a frame in it."""
        frames = {m: self._frames(s, vid, a, b, m) for m, s in seqs.items()}
        ref = self.options.align_to
        steps = len(frames[ref][0]) if ref else max(len(x) for _, x in frames.values())
        if steps == 0:
            return None
        feats, masks = {}, {}
        for m, (t, x) in frames.items():
            f = np.zeros((steps, self.dims[m]), np.float32)
            k = np.zeros(steps, bool)
            if not ref or m == ref:
                f[:len(x)], k[:len(x)] = x, True
            else:  # the mean of m's frames over each step of the reference
                for j, (s0, s1) in enumerate(frames[ref][0]):
                    inside_step = overlap(t, s0, s1)
                    if inside_step.any():
                        f[j], k[j] = x[inside_step].mean(axis=0), True
            feats[m], masks[m] = f, k
        return Video(name=name, features=feats, masks=masks, labels=np.zeros((1, len(self.targets)), np.float32),
                     meta={"video": vid, "interval": [float(a), float(b)]})

    def _fingerprint_of(self) -> str:
        """The split file's and the labels' bytes; for every other ``.csd`` of the folder (not
        only the run's modalities: runs on a subset share a fingerprint) its name, size and each
        video's array shapes, read from the HDF5 headers (no feature is read)."""
        h = hashlib.sha256()
        for p in (self.split_file, self.label_file):
            h.update(p.name.encode() + b"\n" + p.read_bytes())
        h5py = h5py_module()
        for p in sorted(self.root.glob("*.csd")):
            if p.resolve() == self.label_file.resolve():
                continue
            h.update(json.dumps([p.name, p.stat().st_size]).encode())
            try:
                with h5py.File(p, "r") as f:
                    f.visititems(lambda k, o: h.update(json.dumps([k, list(o.shape)]).encode())
                                 if isinstance(o, h5py.Dataset) else None)
            except OSError:  # a .csd the run does not use and HDF5 cannot open: its size only
                pass
        return h.hexdigest()[:16]

    def splits(self) -> dict[str, list[Video]]:
        return self._splits

    def fingerprint(self) -> str:
        """16 hex digits (:meth:`_fingerprint_of`)."""
        return self._fingerprint

    def info(self) -> dict:
        return {
            "name": self.name, "version": VERSION, "root": str(self.root.resolve()),
            "fingerprint": self._fingerprint, "modalities": list(self.modalities), "dims": dict(self.dims),
            "files": {m: p.name for m, p in self.files.items()}, "labels": self.label_file.name,
            "splits_file": self.split_file.name, "targets": list(self.targets),
            "label_level": self.label_level, "label_range": list(self.label_range),
            "align_to": self.options.align_to or None,
            "videos": {k: len(v) for k, v in self._splits.items()},
            **({"left_out": dict(self.left_out)} if self.left_out else {}),
        }
