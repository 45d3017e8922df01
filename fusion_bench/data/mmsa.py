"""The ``mmsa`` dataset: MMSA's pickled feature files (``aligned_50.pkl``, ``unaligned_50.pkl``,
MMSA-FET's output and alike), one label per utterance (sequence level).

Layout (``--root FILE.pkl``), as MMSA's ``data_loader.py`` reads it and MMSA-FET writes it::

    {"train": SPLIT, "valid": SPLIT, "test": SPLIT, ...}    other top-level keys (MMSA-FET's
                                                            "config") are ignored
    SPLIT = {
      "vision": float (N, L_v, d_v),  "audio": float (N, L_a, d_a),  "text": float (N, L_t, d_t),
      "vision_lengths": int (N,), "audio_lengths": int (N,)   unaligned files only: real steps
      "text_bert": (N, 3, L_t)            token ids, attention mask, segment ids (BERT's input)
      "regression_labels": float (N,)     sentiment, in [-3, 3] (MOSI, MOSEI) or [-1, 1] (SIMS)
      "regression_labels_T"/"_A"/"_V"     SIMS: one label per modality
      "id": str (N,), "raw_text": str (N,), "annotations", "classification_labels": unused
    }

The harness's splits are ``train``, ``val`` (MMSA's ``valid``) and ``test``; its modalities
``visual`` (MMSA's ``vision``), ``audio`` and ``text`` (``data.modalities`` picks any of them).

**Padding becomes masks.** MMSA pads every sequence of a key to one length with zeros (MMSA-FET:
at the end by default, or at the start: ``pad_location``; its ``norm`` padding fills random
values, which the masks cover the same way). A step is real, per modality:

- ``<key>_lengths`` present (unaligned audio and vision): the first ``length`` steps (the last,
  with ``pad_location=start``);
- text, with ``text_bert``: where its attention mask (row 1) is 1. ``text_bert``'s token ids are
  never used as features (they index BERT's vocabulary; fusion-bench's encoders take features,
  and ``text`` holds the text model's features for them); a ``text_key`` naming it is refused;
- aligned files (no lengths): every modality is aligned to the text's tokens, so a step is real
  where the text is (``text_bert``'s mask, as MMSA derives the aligned lengths from it); without
  ``text_bert``, where any modality's row is non-zero (zero padding);
- otherwise, where the modality's row is non-zero.

Padding is then cut. In an aligned file an utterance keeps the steps from the first to the last
that some modality has real, the same steps for every modality, each with its own mask. In an
unaligned file each modality keeps its own steps from its first real one to its last, from step
0, and the shorter modalities are filled to the longest with masked zeros: step i of two
modalities is then not the same moment (each is its own sequence, as MMSA's unaligned models see
them). Masked steps hold zeros. An utterance where no modality has a real step is left out, with
a note. As MMSA does, ``-inf`` in audio (COVAREP's log of 0) is read as 0; any other
NaN or infinity on a real step is refused, or read as 0 with ``nonfinite=zero``.

Labels keep their raw units; the dataset declares ``label_range`` (default [-3, 3]; SIMS: set
``-1,1``). A label outside it, or NaN, is refused naming the split, key and utterance.

The file is read with :mod:`.safe_pickle` (only numpy arrays, numbers, strings and plain
containers; a pickle that names anything else is refused before it runs).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, Note
from ..files import file_sha256
from . import Video, check_label_range, check_targets
from .safe_pickle import load

VERSION = "1"
SPLITS = {"train": "train", "val": "valid", "test": "test"}  # ours -> MMSA's
KEYS = {"visual": "vision", "audio": "audio", "text": "text"}  # ours -> MMSA's (text: text_key)


@dataclass
class MMSAOptions:
    """``--set dataset.mmsa.<name>=...``"""

    text_key: str = "text"  # the split key of the text features (N, L, d)
    labels: tuple[str, ...] = ("regression_labels",)  # label keys, one target each
    targets: tuple[str, ...] = ()  # their names; (): sentiment (regression_labels), sentiment_t...
    label_range: tuple[float, ...] = (-3.0, 3.0)  # lo,hi of the labels (SIMS: -1,1)
    pad_location: str = "end"  # where MMSA-FET put the padding: end or start
    nonfinite: str = "refuse"  # NaN/inf on a real step: refuse, or zero

    def check(self) -> None:
        if self.pad_location not in ("end", "start"):
            raise ConfigError(f"dataset.mmsa.pad_location must be end or start; got {self.pad_location!r}")
        if self.nonfinite not in ("refuse", "zero"):
            raise ConfigError(f"dataset.mmsa.nonfinite must be refuse or zero; got {self.nonfinite!r}")
        if not self.labels:
            raise ConfigError("dataset.mmsa.labels is empty; name a label key, e.g. regression_labels")
        if self.targets and len(self.targets) != len(self.labels):
            raise ConfigError(f"dataset.mmsa.targets names {len(self.targets)} target(s) for "
                              f"{len(self.labels)} label key(s) {','.join(self.labels)}; name one each")
        check_label_range(self.label_range, "dataset.mmsa.label_range", ConfigError)
        if self.text_key == "text_bert":
            raise ConfigError("dataset.mmsa.text_key: text_bert holds BERT's token ids, attention "
                              "mask and segment ids, not features; use text (the text model's "
                              "features), or leave text out of data.modalities")


def target_name(key: str) -> str:
    """The target a label key is scored as: ``regression_labels`` → sentiment,
    ``regression_labels_T`` → sentiment_t, any other key its own name."""
    if key == "regression_labels":
        return "sentiment"
    if key.startswith("regression_labels_"):
        return "sentiment_" + key.removeprefix("regression_labels_").lower()
    return key


def _span(mask: np.ndarray) -> tuple[int, int]:
    """(first, last + 1) of the True steps of ``mask`` (L,); (0, 0) when there is none."""
    idx = np.flatnonzero(mask)
    return (int(idx[0]), int(idx[-1]) + 1) if idx.size else (0, 0)


class MMSADataset:
    """MMSA's pickled features (format in the module docstring); sequence-level labels."""

    name = "mmsa"
    description = "MMSA's pickled features (aligned_50.pkl, unaligned_50.pkl, MMSA-FET output): one label per utterance"
    reference = "MMSA (Mao et al., ACL 2022 demo), github.com/thuiar/MMSA"
    label_level = "sequence"
    Options = MMSAOptions

    def __init__(self, root: str | Path, options: MMSAOptions | None = None,
                 modalities: tuple[str, ...] = ("visual", "audio", "text")):
        if not str(root):
            raise ConfigError("dataset 'mmsa' reads a pickled feature file: give --root FILE.pkl")
        self.path = Path(root)
        self.options = options or MMSAOptions()
        self.options.check()
        unknown = [m for m in modalities if m not in KEYS]
        if unknown:
            raise ConfigError(f"dataset 'mmsa' has modalities visual, audio, text; got "
                              f"{', '.join(map(repr, unknown))} in data.modalities")
        self.modalities = tuple(modalities)
        self.label_range = check_label_range(self.options.label_range, "dataset.mmsa.label_range",
                                             ConfigError)
        self.targets = check_targets(self.options.targets or tuple(map(target_name, self.options.labels)),
                                     "dataset.mmsa.targets")
        if not self.path.is_file():
            raise DataError(f"{self.path}: " + ("is a folder; give the pickled feature file itself "
                                                "(--root FILE.pkl)" if self.path.is_dir() else "file does not exist"))
        self._fingerprint = file_sha256(self.path)[:16]  # of the file's bytes
        data = load(self.path)
        if not isinstance(data, dict):
            raise DataError(f"{self.path}: expected a dict with train, valid and test; got a "
                            f"{type(data).__name__}")
        missing = [s for s in SPLITS.values() if s not in data]
        if missing:
            raise DataError(f"{self.path}: no {', '.join(map(repr, missing))} split (top-level keys: "
                            f"{', '.join(map(repr, list(data)[:8]))}); MMSA's files have train, valid and test")
        self.dims: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.zeroed = 0
        self.aligned = True
        self._splits = {ours: self._read_split(data[theirs], theirs) for ours, theirs in SPLITS.items()}

    @classmethod
    def from_config(cls, cfg) -> MMSADataset:
        from ..options import dataset_options

        return cls(cfg.data.root, dataset_options(cfg, cls), cfg.data.modalities)

    # -- reading ------------------------------------------------------------------------------
    def _where(self, split: str, key: str) -> str:
        return f"{self.path}, split {split!r}, key {key!r}"

    def _array(self, d: dict, split: str, key: str, ndim: int) -> np.ndarray:
        if key not in d:
            raise DataError(f"{self.path}, split {split!r}: no key {key!r} (keys: "
                            f"{', '.join(map(repr, list(d)))}); check the file, or the options")
        try:
            x = np.asarray(d[key])
        except Exception as e:  # noqa: BLE001 - ragged lists and alike
            raise DataError(f"{self._where(split, key)}: not an array: {e}") from None
        if x.ndim != ndim or x.dtype.kind not in "biuf":
            raise DataError(f"{self._where(split, key)}: expected a numeric array of "
                            f"{ndim} dimensions; got shape {x.shape}, dtype {x.dtype}")
        return x

    def _read_split(self, d, split: str) -> list[Video]:
        if not isinstance(d, dict):
            raise DataError(f"{self.path}, split {split!r}: expected a dict of arrays; got a {type(d).__name__}")
        o = self.options
        keys = {m: (o.text_key if m == "text" else KEYS[m]) for m in KEYS}
        present = {m: k for m, k in keys.items() if k in d}
        feats = {m: self._array(d, split, k, 3).astype(np.float32) for m, k in present.items()}
        for m in self.modalities:
            if m not in feats:
                self._array(d, split, keys[m], 3)  # the error naming the missing key
        labels = np.stack([self._labels(d, split, k) for k in o.labels], axis=1)
        n = labels.shape[0]
        for m, x in feats.items():
            if x.shape[0] != n:
                raise DataError(f"{self._where(split, keys[m])}: {x.shape[0]} utterances but "
                                f"{o.labels[0]!r} has {n}; every key of a split has one row per utterance")
        if "audio" in feats:  # as MMSA's loader: COVAREP's -inf (log of 0) is 0
            feats["audio"][feats["audio"] == -np.inf] = 0
        masks = self._masks(d, split, feats, keys, n)
        ids = self._ids(d, split, n)
        raw = d.get("raw_text")
        out, dropped = [], 0
        for i in range(n):
            spans = {m: _span(masks[m][i]) for m in self.modalities}
            if self.aligned:  # shared steps: one span over every modality's real steps
                real = [s for s in spans.values() if s[1] > s[0]]
                common = (min(s[0] for s in real), max(s[1] for s in real)) if real else (0, 0)
                spans = dict.fromkeys(spans, common)
            steps = max(b - a for a, b in spans.values())
            if steps == 0:
                dropped += 1
                continue
            vf, vm = {}, {}
            for m, (a, b) in spans.items():
                k = np.zeros(steps, bool)
                x = np.zeros((steps, feats[m].shape[2]), np.float32)
                k[:b - a] = masks[m][i, a:b]
                x[:b - a][k[:b - a]] = feats[m][i, a:b][k[:b - a]]
                vf[m], vm[m] = self._finite(x, split, keys[m], i, a), k
            meta: dict = {"index": i}
            if raw is not None and len(raw) == n:
                meta["raw_text"] = str(raw[i])
            out.append(Video(name=ids[i], features=vf, masks=vm, labels=labels[i:i + 1].copy(), meta=meta))
        for m in self.modalities:
            d_m = int(feats[m].shape[2])
            if self.dims.setdefault(m, d_m) != d_m:
                raise DataError(f"{self._where(split, keys[m])}: {d_m} features per step, but "
                                f"{self.dims[m]} in an earlier split; every split must have the same")
        if dropped:
            self.dropped[split] = dropped
            warnings.warn(f"{self.path}, split {split!r}: {dropped} utterance(s) without a real "
                          "step in any modality left out", Note, stacklevel=2)
        if not out:
            raise DataError(f"{self.path}, split {split!r}: no utterance with data; the split is empty")
        return out

    def _labels(self, d: dict, split: str, key: str) -> np.ndarray:
        if key not in d:
            raise DataError(f"{self.path}, split {split!r}: no label key {key!r} (keys: "
                            f"{', '.join(map(repr, list(d)))}); set dataset.mmsa.labels")
        y = np.asarray(d[key])
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or y.dtype.kind not in "biuf":
            raise DataError(f"{self._where(split, key)}: labels must be numbers of shape (N,) or "
                            f"(N, 1); got shape {y.shape}, dtype {y.dtype}")
        y = y.astype(np.float32)
        lo, hi = self.label_range
        bad = np.flatnonzero(~((y >= lo) & (y <= hi)))  # NaN too
        if bad.size:
            i = int(bad[0])
            what = "NaN" if np.isnan(y[i]) else f"{y[i]:g}, outside [{lo:g}, {hi:g}]"
            raise DataError(f"{self._where(split, key)}, utterance {i}: label {what}; "
                            + ("remove the key from dataset.mmsa.labels" if np.isnan(y[i]) else
                               "set dataset.mmsa.label_range to the labels' range"))
        return y

    def _lengths(self, d: dict, split: str, key: str, n: int, steps: int) -> np.ndarray:
        k = f"{key}_lengths"
        lengths = self._array(d, split, k, 1)
        if lengths.shape[0] != n:
            raise DataError(f"{self._where(split, k)}: {lengths.shape[0]} lengths for {n} utterances")
        bad = np.flatnonzero((lengths < 0) | (lengths > steps) | (lengths != np.round(lengths)))
        if bad.size:
            i = int(bad[0])
            raise DataError(f"{self._where(split, k)}, utterance {i}: length {lengths[i]:g} is not a "
                            f"whole number in 0..{steps} (the array has {steps} steps)")
        return lengths.astype(np.int64)

    def _masks(self, d: dict, split: str, feats: dict, keys: dict, n: int) -> dict[str, np.ndarray]:
        """modality → bool (N, L_m): the real steps (module docstring)."""
        start = self.options.pad_location == "start"

        def from_lengths(lengths, steps):
            idx = np.arange(steps)[None, :]
            return idx >= steps - lengths[:, None] if start else idx < lengths[:, None]

        text_mask = None
        if "text" in feats and "text_bert" in d:
            tb = self._array(d, split, "text_bert", 3)
            steps = feats["text"].shape[1]
            if tb.shape != (n, 3, steps):
                raise DataError(f"{self._where(split, 'text_bert')}: shape {tb.shape}, expected "
                                f"({n}, 3, {steps}) like {keys['text']!r} (ids, mask, segments)")
            if not np.isin(tb[:, 1, :], (0, 1)).all():
                raise DataError(f"{self._where(split, 'text_bert')}: row 1 (the attention mask) "
                                "holds values other than 0 and 1")
            text_mask = tb[:, 1, :] == 1
        lengths = {m: f"{KEYS[m]}_lengths" in d for m in ("visual", "audio")}
        self.aligned = not any(lengths.values())
        nonzero = {m: (x != 0).any(axis=2) for m, x in feats.items()}
        out = {}
        for m in self.modalities:
            steps = feats[m].shape[1]
            if m != "text" and lengths[m]:
                out[m] = from_lengths(self._lengths(d, split, KEYS[m], n, steps), steps)
            elif m == "text" and text_mask is not None:
                out[m] = text_mask
            elif self.aligned:
                if any(x.shape[1] != steps for x in feats.values()):
                    raise DataError(f"{self.path}, split {split!r}: no *_lengths keys (an aligned "
                                    "file), but the modalities have different step counts "
                                    f"{ {KEYS[k] if k != 'text' else keys[k]: x.shape[1] for k, x in feats.items()} }; "
                                    "an unaligned file needs audio_lengths and vision_lengths")
                out[m] = text_mask if text_mask is not None else np.logical_or.reduce(list(nonzero.values()))
            else:
                out[m] = nonzero[m]
        return out

    def _finite(self, x: np.ndarray, split: str, key: str, i: int, a: int) -> np.ndarray:
        bad = ~np.isfinite(x)
        if not bad.any():
            return x
        if self.options.nonfinite == "zero":
            self.zeroed += int(bad.sum())
            x[bad] = 0
            return x
        step = int(np.argwhere(bad)[0][0])
        raise DataError(f"{self._where(split, key)}, utterance {i}, step {a + step}: NaN or infinite "
                        "feature on a real step; fix the file, or set dataset.mmsa.nonfinite=zero to "
                        "read such values as 0")

    def _ids(self, d: dict, split: str, n: int) -> list[str]:
        if "id" not in d:
            return [f"{split}_{i}" for i in range(n)]
        ids = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
               for v in np.asarray(d["id"]).reshape(-1)]
        if len(ids) != n:
            raise DataError(f"{self._where(split, 'id')}: {len(ids)} ids for {n} utterances")
        # a repeated id gets a suffix (predictions are keyed by name) that no id of the split has
        used: set[str] = set()
        reserved, out = set(ids), []
        for v in ids:
            name, k = v, 1
            while name in used or (name != v and name in reserved):
                k += 1
                name = f"{v}#{k}"
            used.add(name)
            out.append(name)
        return out

    # -- the dataset contract ------------------------------------------------------------------
    def splits(self) -> dict[str, list[Video]]:
        return self._splits

    def fingerprint(self) -> str:
        """16 hex digits of the file's SHA-256."""
        return self._fingerprint

    def info(self) -> dict:
        s = self._splits
        return {
            "name": self.name, "version": VERSION, "root": str(self.path.resolve()),
            "fingerprint": self._fingerprint, "bytes": self.path.stat().st_size,
            "modalities": list(self.modalities), "dims": dict(self.dims),
            "aligned": self.aligned, "label_level": self.label_level,
            "labels": list(self.options.labels), "targets": list(self.targets),
            "label_range": list(self.label_range),
            "videos": {k: len(v) for k, v in s.items()},
            "steps": {k: int(sum(x.features[self.modalities[0]].shape[0] for x in v)) for k, v in s.items()},
            **({"dropped": dict(self.dropped)} if self.dropped else {}),
            **({"nonfinite_zeroed": self.zeroed} if self.zeroed else {}),
        }
