"""Aff-Wild2 (ABAW valence/arousal track) in its official layout, through the feature cache.

Layout read by ``fusion-bench extract --dataset affwild2 --root DIR``::

    DIR/VA_Estimation_Challenge/Train_Set/<video>.txt       header ``valence,arousal``, one line per
    DIR/VA_Estimation_Challenge/Validation_Set/<video>.txt  frame; ``-5,-5`` = invalid frame
    DIR/VA_Estimation_Challenge/Test_Set.txt                optional: test video names, one a line
    DIR/cropped_aligned/<video>/<00001>.jpg                 face crop of frame 1 (1-based); a
                                                            missing crop masks the visual frame
    DIR/videos/<base>.mp4|.avi                              decoded with PyAV (fps, sound)
    DIR/audio/<base>.wav                                    optional; preferred over the video's sound
    DIR/transcripts/<base>.json | .csv                      word-timed: [{"word","start","end"}] or
                                                            CSV ``word,start,end`` (seconds)

``<base>`` is the video name without a ``_left``/``_right`` suffix: the two subjects of one video
share its media (and transcript) but have their own crops and labels. fps is read from the video
(30 if only a wav exists). A video's frame count is its label lines (test videos: the video's
frame count).

Training (``fusion-bench run --dataset affwild2 --root DIR``) reads only the cache that extract
wrote (``DIR/fusion_bench_cache``, the :mod:`fusion_bench.data.features` format).
Folds (the paper's 6-fold protocol): fold 0 validates on the official validation set and trains
on the official train set; folds 1–5 split the pooled train+validation videos (a video's
_left/_right subjects kept together) into 5 random parts drawn with ``data.seed``, fold k
validating on part k. Official test labels are withheld, so the harness's ``test`` split is the
validation fold (the paper reports validation CCC); the official test videos are only predicted,
for the submission file (:mod:`fusion_bench.submission`).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from . import INVALID_LABEL, TARGETS
from .features import FeaturesDataset, read_splits
from .labels import parse_label_line

VERSION = "1"
CHALLENGE = "VA_Estimation_Challenge"
OFFICIAL = {"train": "Train_Set", "val": "Validation_Set"}
CACHE = "fusion_bench_cache"
N_FOLDS = 6


def base_name(video: str) -> str:
    return re.sub(r"_(left|right)$", "", video)


@dataclass
class Entry:
    """One subject-video of the layout."""

    name: str
    split: str  # train | val | test
    label_file: Path | None
    labels: np.ndarray | None = None
    bad_lines: list[str] = field(default_factory=list)


def read_va_file(path: Path, skip_bad: bool = False) -> tuple[np.ndarray, list[str]]:
    """Labels (frames, 2) of an official annotation file. A malformed line raises DataError with
    file and line, or with ``skip_bad`` becomes an invalid frame (-5) and is listed."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read: {e}") from None
    if not lines or tuple(h.strip().lower() for h in lines[0].split(",")) != ("valence", "arousal"):
        got = lines[0] if lines else "an empty file"
        raise DataError(f"{path}, line 1: header must be 'valence,arousal'; got {got!r}")
    rows, bad = [], []
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            rows.append(parse_label_line(line, path, i))
        except DataError as e:
            if not skip_bad:
                raise DataError(f"{e} (pass --skip-bad-lines to mark such frames invalid)") from None
            bad.append(str(e))
            rows.append((INVALID_LABEL, INVALID_LABEL))
    return np.asarray(rows, np.float32).reshape(-1, 2), bad


def scan(root: Path, skip_bad: bool = False) -> list[Entry]:
    """Every labelled and test video of the layout, labels parsed (errors name file and line)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: Aff-Wild2 folder does not exist")
    ch = root / CHALLENGE
    out = []
    for split, folder in OFFICIAL.items():
        d = ch / folder
        if not d.is_dir():
            raise DataError(f"{d}: missing; expected the official {CHALLENGE}/{folder}/<video>.txt")
        for p in sorted(d.glob("*.txt")):
            labels, bad = read_va_file(p, skip_bad)
            out.append(Entry(p.stem, split, p, labels, bad))
    test_list = ch / "Test_Set.txt"
    if test_list.is_file():
        for line in test_list.read_text().splitlines():
            if line.strip():
                out.append(Entry(line.strip(), "test", None))
    if not out:
        raise DataError(f"{ch}: no annotation file found")
    return out


def folds(names: list[str], seed: int) -> dict[str, int]:
    """video → part 1..5 of the pooled official train+validation ``names`` (folds 1-5 of the
    module doc), drawn with ``seed``; a video's _left/_right subjects share a part."""
    bases = sorted({base_name(n) for n in names})
    rng = np.random.default_rng([seed, 6])
    order = rng.permutation(len(bases))
    part = {bases[j]: 1 + i % (N_FOLDS - 1) for i, j in enumerate(order)}
    return {n: part[base_name(n)] for n in names}


def fold_splits(official: dict[str, list[str]], fold_of: dict[str, int], fold: int) -> dict[str, list[str]]:
    if fold == 0:
        return {"train": official["train"], "val": official["val"], "test": official["val"]}
    if not 0 <= fold < N_FOLDS:
        raise DataError(f"affwild2 fold must be 0..{N_FOLDS - 1}; got {fold}")
    names = sorted(fold_of)
    val = [v for v in names if fold_of[v] == fold]
    return {"train": [v for v in names if fold_of[v] != fold], "val": val, "test": val}


# -- media ------------------------------------------------------------------------------------
def media_paths(root: Path, video: str) -> dict[str, Path | None]:
    b = base_name(video)
    out: dict[str, Path | None] = {"video": None, "wav": None, "transcript": None}
    for ext in (".mp4", ".avi", ".mkv"):
        if (root / "videos" / f"{b}{ext}").is_file():
            out["video"] = root / "videos" / f"{b}{ext}"
            break
    if (root / "audio" / f"{b}.wav").is_file():
        out["wav"] = root / "audio" / f"{b}.wav"
    for ext in (".json", ".csv"):
        if (root / "transcripts" / f"{b}{ext}").is_file():
            out["transcript"] = root / "transcripts" / f"{b}{ext}"
            break
    return out


def probe_video(path: Path) -> tuple[float, int]:
    """(fps, frame count) of a video file via PyAV; DataError names an unreadable file."""
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DataError(f"{path}: has no video stream")
            s = c.streams.video[0]
            fps = float(s.average_rate or s.guessed_rate or 30)
            n = int(s.frames or 0)
            if n == 0:
                n = sum(1 for _ in c.decode(s))
            return fps, n
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - av raises many error types for broken files
        raise DataError(f"{path}: unreadable video: {type(e).__name__}: {e}") from None


def decode_audio(path: Path, rate: int = 16000) -> np.ndarray | None:
    """Mono float32 waveform at ``rate`` of a wav (soundfile) or a video's sound (PyAV)."""
    if path.suffix.lower() == ".wav":
        import soundfile as sf

        from ..backbones import resample

        try:
            x, sr = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{path}: unreadable wav: {e}") from None
        return resample(x.mean(axis=1), sr, rate)
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                return None
            res = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks = []
            for frame in c.decode(c.streams.audio[0]):
                for f in res.resample(frame):
                    chunks.append(f.to_ndarray().reshape(-1))
            for f in res.resample(None):
                chunks.append(f.to_ndarray().reshape(-1))
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: unreadable video (audio stream): {type(e).__name__}: {e}") from None
    return np.concatenate(chunks).astype(np.float32) if chunks else None


def read_transcript(path: Path) -> list[tuple[str, float, float]]:
    """Word-timed transcript: JSON list of {word, start, end} or CSV ``word,start,end``."""
    words = []
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(f"{path}: not valid JSON: {e}") from None
        if isinstance(data, dict):
            data = data.get("words", [])
        for i, w in enumerate(data):
            try:
                words.append((str(w["word"]), float(w["start"]), float(w["end"])))
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{path}: item {i} needs word, start and end (seconds)") from None
    else:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
        if not rows or [h.strip().lower() for h in rows[0]] != ["word", "start", "end"]:
            raise DataError(f"{path}, line 1: header must be 'word,start,end'")
        for i, r in enumerate(rows[1:], start=2):
            if not r:
                continue
            try:
                words.append((r[0], float(r[1]), float(r[2])))
            except (IndexError, ValueError):
                raise DataError(f"{path}, line {i}: expected word,start,end with times in seconds") from None
    for word, start, end in words:
        if end < start:
            raise DataError(f"{path}: word {word!r} ends ({end}) before it starts ({start})")
    return words


def load_crops(root: Path, video: str, n: int, size: int = 48) -> tuple[np.ndarray | None, np.ndarray]:
    """float32 (n, size, size, 3) in [0, 1] and bool (n,) from cropped_aligned/<video>/<k>.jpg."""
    from PIL import Image

    d = root / "cropped_aligned" / video
    mask = np.zeros(n, bool)
    if not d.is_dir():
        return None, mask
    crops = np.zeros((n, size, size, 3), np.float32)
    for p in d.glob("*.jpg"):
        if not p.stem.isdigit():
            continue
        k = int(p.stem) - 1
        if 0 <= k < n:
            try:
                with Image.open(p) as f:
                    im = f.convert("RGB")
                if im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.BILINEAR)
                crops[k] = np.asarray(im, np.float32) / 255.0
            except OSError as e:
                raise DataError(f"{p}: unreadable image: {e}") from None
            mask[k] = True
    return crops, mask


def load_media(root: Path, entry: Entry, modalities, audio_rate: int = 16000):
    """A :class:`fusion_bench.backbones.Media` for ``entry`` (only the modalities asked for)."""
    from ..backbones import Media

    paths = media_paths(root, entry.name)
    fps, n_video = (probe_video(paths["video"]) if paths["video"] else (30.0, 0))
    n = entry.labels.shape[0] if entry.labels is not None else n_video
    if n == 0:
        raise DataError(f"{entry.name}: no labels and no readable video to count its frames")
    media = Media(entry.name, n, fps, sample_rate=audio_rate)
    if "visual" in modalities:
        media.crops, media.crop_mask = load_crops(root, entry.name, n)
    if "audio" in modalities:
        src = paths["wav"] or paths["video"]
        media.audio = decode_audio(src, audio_rate) if src else None
    if "text" in modalities and paths["transcript"]:
        media.words = read_transcript(paths["transcript"])
    return media


# -- extraction ---------------------------------------------------------------------------------
def extract_features(root: Path, backbones: dict, cache: Path | None = None, workers: int = 2,
                     skip_bad: bool = False, on_video=None, echo=None, runner=None
                     ) -> tuple[Path, dict]:
    """Run ``backbones`` (modality → built backbone) over every video of an Aff-Wild2 folder
    into its feature cache (default ``root/fusion_bench_cache``); return (cache folder,
    manifest). The cache's splits are the official ones (fold 0); the test list is kept as
    ``test_set.txt`` for ``fusion-bench submit``. ``on_video``/``echo``: see
    :func:`fusion_bench.data.cache.extract`; ``echo`` also receives each malformed label line
    skipped with ``skip_bad``; ``runner``: where the videos are computed (e.g. Ray tasks)."""
    from .cache import extract

    root = Path(root)
    entries = scan(root, skip_bad=skip_bad)
    notes = {} if echo is None else {"echo": echo}
    for e in entries:
        for line in e.bad_lines:
            if echo is not None:
                echo(f"warning: {line}; frame marked invalid")
    cache_root = Path(cache) if cache else root / CACHE
    extra = {"test_set.txt": "".join(f"{e.name}\n" for e in entries if e.split == "test")}
    official = {s: [e.name for e in entries if e.split == s] for s in ("train", "val")}
    manifest = extract(entries, lambda e, mods: load_media(root, e, mods), backbones, cache_root,
                       root, "affwild2", fold_splits(official, {}, 0), workers=workers,
                       on_video=on_video, extra_files=extra, runner=runner, **notes)
    return cache_root, manifest


# -- dataset ----------------------------------------------------------------------------------
class AffWild2Dataset(FeaturesDataset):
    """Aff-Wild2 features from the cache that ``fusion-bench extract`` wrote (see module doc)."""

    name = "affwild2"
    description = "Aff-Wild2 VA track via the feature cache (fusion-bench extract); 6-fold protocol"
    reference = "Kollias & Zafeiriou, ABAW; Praveen & Alam, CVPRW 2024 (folds)"
    targets = TARGETS
    folds = N_FOLDS  # data.fold: 0 (the official split) to 5
    Options = None  # none of the features folder's (its labels are per frame)

    def __init__(self, root, modalities=("visual", "audio", "text"), fold: int = 0, seed: int = 0):
        if not str(root):  # not Path(""): that is the current folder, which nobody asked for
            raise ConfigError(f"dataset {self.name!r} reads the feature cache of an Aff-Wild2 "
                              "folder: give --root DIR")
        root = Path(root)
        cache = root / CACHE if (root / CACHE).is_dir() else root
        if root.is_dir() and not (cache / "manifest.json").is_file():
            raise DataError(f"{root}: no feature cache; run `fusion-bench extract --dataset affwild2 "
                            f"--root {root} --backbone visual=timm ...` first")
        super().__init__(cache, modalities)
        if self.targets != TARGETS:  # the ABAW VA track: the cache extract wrote has exactly these
            raise DataError(f"{cache / 'labels'}: the labels name the targets "
                            f"{','.join(self.targets)!r}; Aff-Wild2's are 'valence,arousal' (a "
                            "folder with other targets is the features dataset: --dataset features)")
        self.fold, self.seed = int(fold), int(seed)
        if self.fold:
            official = read_splits(self.root)
            fold_of = folds(official["train"] + official["val"], self.seed)
            self.split_names = fold_splits(official, fold_of, self.fold)

    @classmethod
    def from_config(cls, cfg):
        # ``data.fold`` is read if the config has it (fold 0, the official split, otherwise)
        return cls(cfg.data.root, cfg.data.modalities, cfg.data.fold, cfg.data.seed)

    def submission_videos(self) -> list[str]:
        p = self.root / "test_set.txt"
        return [v for v in p.read_text().split()] if p.is_file() else []

    def info(self) -> dict:
        return {**super().info(), "name": self.name, "fold": self.fold, "version": VERSION}
