"""The ``features`` dataset: per-frame features that a user brings, in a documented folder format.

The feature cache written by ``fusion-bench extract`` uses this very format, so training always
reads the same thing whether features came from our backbones or from elsewhere.

Folder format (``--root DIR``)::

    DIR/
      features/<modality>/<video>.npy   float32 (frames, dim): one row per label frame; every
                                        video of a modality has the same dim
      masks/<modality>/<video>.npy      optional bool (frames,): True where the modality has a
                                        real frame (a face was found, someone speaks); absent:
                                        all True
      labels.csv                        or one row per video: ``video,<targets...>`` (the folder is
                                        then sequence level: :mod:`.sequence_labels`)
      labels/<video>.csv                a header naming the targets (``valence,arousal``,
                                        ``valence,arousal,dominance``, ``arousal``: any names),
                                        then one line per frame, a value per target in [-1, 1];
                                        -5 marks a value without a label (a frame with one is
                                        left out of training and scores, as in Aff-Wild2)
      splits.csv                        header ``video,split``; split is train, val or test
      (or splits.json)                  {"train": [video, ...], "val": [...], "test": [...]};
                                        other keys (metadata) are ignored, with a note
      manifest.json                     optional; written by the cache (backbones, weights
                                        hashes, preprocessing) and copied into the run record

``<modality>`` is any folder name (visual, audio, text, or your own); ``data.modalities``
(``--modalities``) picks which of them a run uses, any subset, one alone too; unset, a run uses
every modality the folder has (:func:`folder_modalities`). ``--root DIR`` without ``--dataset``
means this dataset. A video is named by its file stem. Every array of a video must have as many rows as its labels file has lines; a
disagreement, a bad header, a non-numeric or out-of-range label is an error naming the file and
line.

The **targets** are the label files' header (:mod:`.labels`: names stripped and lower-cased; at
least one, none twice, none ``mean``), the same in every label file of the folder (read when
the dataset is opened): each is trained and scored
(CCC per target and their mean), and the record and the leaderboards show them all.

The folder's **fingerprint** (:func:`fingerprint`, in the record's ``dataset``) tells two folders
apart, whatever their names or paths: leaderboards never put runs on two fingerprints in one
table. It is cheap: the split lists, each listed video's array shapes and dtypes (read from the
``.npy`` headers, not the arrays), its labels, and the cache manifest.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, Note
from ..files import atomic_write_bytes, atomic_write_text
from . import TARGETS, Video, check_label_range
from .folder import USUAL_ORDER, folder_modalities, format_problem  # noqa: F401 - re-exported
from .labels import folder_targets, read_labels, write_labels
from .sequence_labels import FILE as SEQUENCE_LABELS
from .sequence_labels import read_sequence_labels

VERSION = "1"
SPLITS = ("train", "val", "test")
# -- reading ------------------------------------------------------------------------------------
def read_splits(root: Path) -> dict[str, list[str]]:
    """split → video names, from ``splits.csv`` or ``splits.json``. A video may be in val and
    test both (scoring the validation fold as test, as Aff-Wild2 does), never in train and in
    either of them, nor twice in one split."""
    path, out = _read_split_file(root)
    for split, names in out.items():
        for v in names:  # a name is a file stem here: one with a folder in it leads elsewhere
            if v in ("", ".", "..") or "/" in v or "\\" in v:
                raise DataError(f"{path}: video name {v!r} in {split} is not a file name; name "
                                "each video by the stem of its files (no folders, no '..')")
        twice = sorted(v for v, n in collections.Counter(names).items() if n > 1)
        if twice:
            raise DataError(f"{path}: video {twice[0]!r} is listed twice in {split}; list it once")
    for split in ("val", "test"):
        leak = sorted(set(out["train"]) & set(out[split]))
        if leak:
            raise DataError(
                f"{path}: video {leak[0]!r} is in train and in {split}"
                + (f" (and {len(leak) - 1} more)" if len(leak) > 1 else "")
                + f"; a {split} video must not be trained on"
            )
    return out


def _read_split_file(root: Path) -> tuple[Path, dict[str, list[str]]]:
    """(the file read, split → video names) from ``splits.csv``, else ``splits.json``."""
    csv_path, json_path = root / "splits.csv", root / "splits.json"
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    if csv_path.is_file():
        try:
            with csv_path.open(encoding="utf-8-sig", newline="") as f:
                rows = list(csv.reader(f))
        except (OSError, ValueError) as e:  # ValueError: bytes that are not UTF-8
            raise DataError(f"{csv_path}: cannot be read: {e}") from None
        if not rows or [h.strip().lower() for h in rows[0]] != ["video", "split"]:
            raise DataError(f"{csv_path}, line 1: header must be 'video,split'")
        for i, row in enumerate(rows[1:], start=2):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2:
                raise DataError(f"{csv_path}, line {i}: expected 'video,split'; got {','.join(row)!r}")
            video, split = row[0].strip(), row[1].strip().lower()
            if split not in SPLITS:
                raise DataError(f"{csv_path}, line {i}: split {row[1]!r} must be train, val or test")
            out[split].append(video)
        return csv_path, out
    if json_path.is_file():
        try:
            data = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:  # ValueError: bad JSON, or bytes that are not UTF-8
            raise DataError(f"{json_path}: not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise DataError(f"{json_path}: expected an object {{'train': [...], 'val': [...], 'test': [...]}}")
        extra = sorted(k for k in data if k not in SPLITS)
        if extra:  # metadata beside the splits (a description, a version...): not ours to judge
            warnings.warn(f"{json_path}: ignored key{'s' * (len(extra) > 1)} "
                          f"{', '.join(map(repr, extra))} (only train, val and test are read)",
                          Note, stacklevel=2)
        for k, v in data.items():
            if k not in SPLITS:
                continue
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise DataError(f"{json_path}: field {k!r} must be a list of video names")
            out[k] = list(v)
        return json_path, out
    raise DataError(f"{root}: no splits.csv (header video,split) or splits.json; add one")


def _load_array(path: Path, mmap_mode: str | None = None) -> np.ndarray:
    """One ``.npy`` array of real numbers (or booleans, for a mask); anything else (an ``.npz``
    archive saved under the name, complex or object values) is one line naming the file."""
    try:
        x = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)  # type: ignore[arg-type]
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: cannot read the array: {e}") from None
    if not isinstance(x, np.ndarray):  # np.load returns an archive for .npz content
        x.close()
        raise DataError(f"{path}: an .npz archive, not one .npy array; save each video's "
                        "array with numpy.save")
    if x.dtype.kind not in "fiub":
        raise DataError(f"{path}: values of type {x.dtype}; features must be real numbers "
                        "(float or int), masks booleans")
    return x


def load_video(root: Path, name: str, modalities: tuple[str, ...], dims: dict[str, int] | None = None,
               targets: tuple[str, ...] | None = None, row: np.ndarray | None = None) -> Video:
    """Read one video of the folder format, checking every array against its labels (and its
    labels' header against ``targets``, the folder's, when given). ``row``: its label (T,) from
    ``labels.csv`` (sequence level): each array has its own rows, the shorter ones filled to
    the longest with masked zeros."""
    labels_path = root / "labels" / f"{name}.csv"
    labels = read_labels(labels_path, targets) if row is None else row[None, :]
    n = labels.shape[0] if row is None else None
    if n == 0:  # nothing to train on or score, and a window of it would be padding alone
        raise DataError(f"{labels_path}: no frames (a header and no line); give video {name!r} "
                        "its frames or take it out of the split file")
    feats, masks = {}, {}
    for m in modalities:
        fp = root / "features" / m / f"{name}.npy"
        if not fp.is_file():
            raise DataError(f"{fp}: missing (video {name!r} is listed in the split file)")
        x = _load_array(fp)
        if x.ndim != 2:
            raise DataError(f"{fp}: expected an array (frames, dim); got shape {x.shape}")
        if n is not None and x.shape[0] != n:
            raise DataError(
                f"{fp}: {x.shape[0]} frames but {labels_path} has {n} label lines; every array "
                "must have one row per label line"
            )
        if dims is not None and x.shape[1] != dims[m]:
            raise DataError(f"{fp}: dim {x.shape[1]} but other {m} arrays have dim {dims[m]}")
        if not np.issubdtype(x.dtype, np.number):
            raise DataError(f"{fp}: dtype {x.dtype} is not numeric")
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise DataError(f"{fp}, row {int(np.argwhere(~np.isfinite(x))[0][0])}: NaN or inf")
        mp = root / "masks" / m / f"{name}.npy"
        if mp.is_file():
            k = _load_array(mp)
            if k.shape != (x.shape[0],):
                raise DataError(f"{mp}: mask must have shape ({x.shape[0]},) like its features; got {k.shape}")
            # 0/1 of any numeric type is a mask; 0.5 would be read as True unseen
            if k.dtype != bool and not np.isin(k, (0, 1)).all():
                raise DataError(f"{mp}: mask values must be True/False or 0/1; got "
                                f"{k[~np.isin(k, (0, 1))][0].item()!r} ({k.dtype})")
            k = k.astype(bool)
        else:
            k = np.ones(x.shape[0], bool)
        feats[m], masks[m] = x, k
    if row is not None:
        steps = max(x.shape[0] for x in feats.values())
        if steps == 0:
            raise DataError(f"{root / 'features'}: every array of video {name!r} has 0 rows; give it "
                            "its steps or take it out of the split file")
        for m, x in feats.items():
            feats[m] = np.concatenate([x, np.zeros((steps - len(x), x.shape[1]), np.float32)])
            masks[m] = np.concatenate([masks[m], np.zeros(steps - len(x), bool)])
    return Video(name=name, features=feats, masks=masks, labels=labels)


@dataclass
class FeaturesOptions:
    """``--set dataset.features.<name>=...``"""

    label_range: tuple[float, ...] = (-1.0, 1.0)  # lo,hi of labels.csv's values (per-frame: -1,1)


class FeaturesDataset:
    """Per-frame features from a folder (format in the module docstring)."""

    name = "features"
    description = "your own per-frame features from a folder (features/<modality>/<video>.npy + labels CSV)"
    reference = ""
    targets: tuple[str, ...] = TARGETS  # an instance's: its label files' header
    label_level = "frame"  # an instance's: "sequence" with labels.csv
    Options: type | None = FeaturesOptions

    def __init__(self, root: str | Path, modalities: tuple[str, ...] | None = None,
                 options: FeaturesOptions | None = None):
        """``modalities``: those a run uses; None: every one the folder has."""
        self.label_range = check_label_range((options or FeaturesOptions()).label_range,
                                             "dataset.features.label_range", ConfigError)
        if not str(root):
            raise ConfigError(f"dataset {self.name!r} reads a folder: give --root DIR")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset folder does not exist")
        fdir = self.root / "features"
        if not fdir.is_dir():
            raise DataError(f"{fdir}: missing; expected features/<modality>/<video>.npy")
        self.available = folder_modalities(self.root)
        modalities = self.available if modalities is None else tuple(modalities)
        missing = [m for m in modalities if m not in self.available]
        if missing:
            # neutral about where data.modalities came from: --modalities, a TOML file, or a
            # sweep's --fusion only:M all set it
            raise DataError(
                f"{fdir}: no folder for modality {', '.join(missing)} (got "
                f"{', '.join(map(repr, missing))} in data.modalities); this dataset has "
                f"{', '.join(self.available) or 'none'}"
            )
        self.modalities = modalities
        self.split_names = read_splits(self.root)
        self._rows: dict[str, np.ndarray] | None = None
        if (self.root / SEQUENCE_LABELS).is_file():
            if (self.root / "labels").is_dir():
                raise DataError(f"{self.root}: both labels/ (a label per frame) and {SEQUENCE_LABELS} "
                                "(a label per sequence); keep the one you mean")
            self.label_level = "sequence"
            self.targets, self._rows = read_sequence_labels(self.root / SEQUENCE_LABELS,
                                                            self.split_names, self.label_range)
        else:
            if self.label_range != (-1.0, 1.0):
                raise ConfigError("dataset.features.label_range is for labels.csv (a label per "
                                  "sequence); per-frame labels are in [-1, 1]")
            self.targets = folder_targets(self.root, self.split_names)
        self.dims = {m: self._dim(m) for m in self.modalities}
        self._manifest = self._read_manifest()  # read now: found bad after training, it costs the run
        self._splits: dict[str, list[Video]] | None = None

    @classmethod
    def from_config(cls, cfg) -> FeaturesDataset:
        from ..options import dataset_options

        return cls(cfg.data.root, cfg.data.modalities, dataset_options(cfg, cls))

    def _dim(self, m: str) -> int:
        for split in SPLITS:
            for name in self.split_names[split]:
                fp = self.root / "features" / m / f"{name}.npy"
                if fp.is_file():
                    x = _load_array(fp, mmap_mode="r")  # the header only: no data read
                    if x.ndim != 2:
                        raise DataError(f"{fp}: expected an array (frames, dim); got shape {x.shape}")
                    if x.shape[1] == 0:  # a modality with no feature: nothing for its encoder
                        raise DataError(f"{fp}: shape {x.shape}, no feature per frame; give "
                                        f"{m} at least one column, or leave the modality out")
                    return int(x.shape[1])
        raise DataError(f"{self.root / 'features' / m}: no array for any video of the split file")

    def manifest(self) -> dict:
        """``manifest.json`` (what the cache's backbones were), read when the dataset opened;
        {} without one."""
        return self._manifest

    def _read_manifest(self) -> dict:
        p = self.root / "manifest.json"
        if not p.is_file():
            return {}
        try:
            man = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:  # ValueError: bad JSON, or bytes that are not UTF-8
            raise DataError(f"{p}: not valid JSON: {e}; fix it, or remove it (it is optional)") from None
        if not isinstance(man, dict):
            raise DataError(f"{p}: expected a JSON object, got a {type(man).__name__}; fix it, or "
                            "remove it (it is optional)")
        return man

    def splits(self) -> dict[str, list[Video]]:
        if self._splits is None:
            self._splits = {
                s: [load_video(self.root, v, self.modalities, self.dims, self.targets,
                               None if self._rows is None else self._rows[v])
                    for v in self.split_names[s]]
                for s in SPLITS
            }
        return self._splits

    def fingerprint(self) -> str:
        """:func:`fingerprint` of this folder as this dataset splits it."""
        return fingerprint(self.root, self.split_names, self.available)

    def info(self) -> dict:
        splits = self.splits()
        # the per-video part of a cache manifest is bulky; backbones and throughput identify it
        man = {k: v for k, v in self.manifest().items() if k != "videos"}
        return {
            "name": self.name,
            "version": VERSION,
            "root": str(self.root.resolve()),
            "fingerprint": self.fingerprint(),
            "modalities": list(self.modalities),
            "dims": self.dims, "label_level": self.label_level,
            "videos": {s: len(v) for s, v in splits.items()},
            "frames": {s: int(sum(x.n_frames for x in v)) for s, v in splits.items()},
            **({"manifest": man} if man else {}),
        }


def npy_header(path: Path) -> tuple[list[int], str]:
    """(shape, dtype) of a ``.npy`` file from its header alone; DataError if it has none."""
    try:
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read is not None:
                shape, _, dtype = read(f)
                return list(shape), dtype.str
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read the array: {e}") from None
    x = np.load(path, mmap_mode="r", allow_pickle=False)  # a newer header version: still no data read
    return list(x.shape), x.dtype.str


def fingerprint(root: str | Path, split_names: dict[str, list[str]],
                modalities: tuple[str, ...]) -> str:
    """16 hex digits that change when the data of the folder's splits does: the split lists
    (as sets), for each listed video the shape and dtype of its array and mask of every one of
    ``modalities`` (the folder's, so that runs on any subset of them share a fingerprint), its
    labels file's bytes, and ``manifest.json``'s bytes. Array contents are not read: a file
    rewritten with other numbers of the same shape keeps its fingerprint."""
    root = Path(root)
    h = hashlib.sha256()

    def add(*parts) -> None:
        h.update(json.dumps(parts).encode() + b"\n")

    add("splits", {s: sorted(split_names.get(s, [])) for s in SPLITS})
    videos = sorted({v for names in split_names.values() for v in names})
    for m in sorted(modalities):
        for v in videos:
            for kind in ("features", "masks"):
                p = root / kind / m / f"{v}.npy"
                if p.is_file():
                    add(kind, m, v, *npy_header(p))
    for v in videos:
        p = root / "labels" / f"{v}.csv"
        add("labels", v, p.stat().st_size if p.is_file() else None)
        if p.is_file():
            h.update(p.read_bytes())
    seq = root / SEQUENCE_LABELS
    if seq.is_file():
        add(SEQUENCE_LABELS)
        h.update(seq.read_bytes())
    man = root / "manifest.json"
    if man.is_file():
        add("manifest")
        h.update(man.read_bytes())
    return h.hexdigest()[:16]


# -- writing ------------------------------------------------------------------------------------
def _atomic_save(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


def write_modality(root: Path, modality: str, name: str, features: np.ndarray,
                   mask: np.ndarray | None = None) -> None:
    """Write one video's (frames, dim) array (and mask) of ``modality`` in the folder format."""
    root = Path(root)
    if mask is not None:
        _atomic_save(root / "masks" / modality / f"{name}.npy", np.asarray(mask, bool))
    # the feature file last: its presence means the video's modality is complete (resume)
    _atomic_save(root / "features" / modality / f"{name}.npy", np.asarray(features, np.float32))


def write_splits(root: Path, splits: dict[str, list[str]]) -> None:
    lines = ["video,split"] + [f"{v},{s}" for s in SPLITS for v in splits.get(s, [])]
    atomic_write_text(Path(root) / "splits.csv", "\n".join(lines) + "\n")


def write_video(root: Path, video: Video, targets: tuple[str, ...] | None = None) -> None:
    """Write a whole :class:`Video` (every modality, its masks and labels; ``targets`` name the
    label columns, valence and arousal by default)."""
    write_labels(Path(root) / "labels" / f"{video.name}.csv", video.labels,
                 TARGETS if targets is None else targets)
    for m, x in video.features.items():
        write_modality(root, m, video.name, x, video.masks.get(m))
