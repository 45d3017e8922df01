"""The feature cache: backbones run once over raw media; training reads only the cache.

The cache is a :mod:`fusion_bench.data.features` folder (one ``.npy`` per video and modality, masks,
labels CSVs, ``splits.csv``) plus ``manifest.json``::

    {"format": "fusion-bench features 1", "dataset": ..., "source": ...,
     "modalities": {m: {"key": sha256[:16] of the entry below, "backbone", "model", "dim",
                        "weights", "weights_sha256", "random_init", "preprocessing"}},
     "videos": {name: {"split", "frames", "fps", "bad_lines": [...]}},
     "throughput": {m: {"frames": n, "seconds": s, "frames_per_s": f}}}

Extraction builds the cache aside (``.<name>.partial`` beside it) and swaps it in whole when
complete, so a failed, interrupted or killed extraction never changes a cache that training
reads. Resuming: a video's modality whose ``.npy`` exists in the partial folder is skipped when
the manifest key of that modality matches the backbone now asked for (same backbone, weights
hash and preprocessing); a different key discards that modality's arrays (of the partial
folder) first. Media of the next videos are loaded in worker threads while the backbones run
on the current one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import DataError, FusionBenchError, PluginError, out_of_memory
from ..files import aside, atomic_write_text, claim, recover_folder, release, replace_folder
from .features import write_modality, write_splits
from .labels import write_labels

FORMAT = "fusion-bench features 1"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def manifest_key(desc: dict) -> str:
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()[:16]


class FeatureCache:
    """A cache folder and its manifest."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / "manifest.json"
        self.manifest: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {
            "format": FORMAT, "modalities": {}, "videos": {}, "throughput": {}}

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.manifest, indent=1, sort_keys=True))

    def prepare(self, modality: str, desc: dict, echo: Callable[[str], object] = _stderr) -> bool:
        """Record ``modality``'s backbone; return True if earlier arrays of it are reusable."""
        key = manifest_key(desc)
        old = self.manifest["modalities"].get(modality)
        if old is not None and old.get("key") == key:
            return True
        if old is not None:
            echo(f"cache: {modality} backbone changed ({old.get('backbone')}:{old.get('model')} "
                 f"→ {desc.get('backbone')}:{desc.get('model')}); re-extracting it")
            for sub in ("features", "masks"):
                shutil.rmtree(self.root / sub / modality, ignore_errors=True)
        self.manifest["modalities"][modality] = {"key": key, **desc}
        return False

    def has(self, modality: str, video: str) -> bool:
        return (self.root / "features" / modality / f"{video}.npy").is_file()


def extract(entries, load_media, backbones: dict, cache_root: Path, source: str | Path,
            dataset: str, splits: dict[str, list[str]], workers: int = 2,
            on_video: Callable[[int, int, str], object] | None = None,
            extra_files: dict | None = None, echo: Callable[[str], object] = _stderr) -> dict:
    """Run ``backbones`` (modality → backbone) over ``entries``; write the cache; return the manifest.

    ``load_media(entry, modalities)`` returns a :class:`fusion_bench.backbones.Media`; entries have
    ``name``, ``split``, ``labels`` (or None) and ``bad_lines``. ``splits`` (train/val/test → video
    names) is written as the cache's ``splits.csv``: the dataset's rule, not the cache's (Aff-Wild2
    scores its validation fold as test, :func:`fusion_bench.data.affwild2.fold_splits`).
    ``on_video(done, total, status)`` is called after each extracted video (a progress display);
    ``echo`` takes the one-line notes (resuming, a changed backbone).

    The cache is built aside, in the sibling ``.<name>.partial`` (seeded with hard links to the
    files of the cache already there, which extraction never changes in place: it replaces
    them), and swapped in whole when complete (:func:`fusion_bench.files.replace_folder`). An
    extraction that fails, is interrupted or killed leaves the cache as it was, and the next one
    resumes from the partial folder. One extraction at a time: the sibling lock
    ``.<name>.extract.lock`` is held throughout.
    """
    cache_root = Path(os.path.abspath(cache_root))  # "." and "dir/" have a name and a parent
    if cache_root.is_symlink():  # swap the folder it points to, not the link
        cache_root = cache_root.resolve()
    if os.path.ismount(cache_root):  # a volume's root cannot be renamed: the swap would fail
        raise DataError(f"{cache_root} is a mount point: extraction builds the cache beside it "
                        "and swaps it in, which a mount point cannot take; give a folder inside "
                        f"it, e.g. --cache {cache_root / 'fusion_bench_cache'}")
    lock = aside(cache_root, "extract.lock")
    try:
        holder = claim(lock, stale_after_s=24 * 3600)
    except OSError as e:
        raise DataError(f"{cache_root}: cannot create the feature cache there: {e.strerror}") from None
    if holder is not None:  # two extractions into one cache would interleave its manifest
        raise DataError(f"{cache_root}: being extracted by process {holder.get('pid')} on "
                        f"{holder.get('host')}; wait for it (or, if it is gone from another "
                        f"machine, remove {lock})")
    try:
        build = _partial(cache_root, echo)
        manifest = _extract(entries, load_media, backbones, build, source, dataset, splits,
                            workers, on_video, extra_files, echo)
        replace_folder(build, cache_root)
        return manifest
    except OSError as e:  # a full disk, a folder that cannot be written
        raise DataError(f"{e.filename or cache_root}: {e.strerror or e}; the cache at {cache_root} "
                        "is as it was, and extracting again resumes") from None
    finally:
        release(lock)


def _partial(cache_root: Path, echo) -> Path:
    """The folder to extract into: the partial one an interrupted extraction left, or a new one
    holding hard links to (copies, where the filesystem has none) the cache's files."""
    recover_folder(cache_root)
    if cache_root.exists() and not cache_root.is_dir():
        raise DataError(f"{cache_root}: a file, not a feature cache folder; give --cache a folder")
    if cache_root.is_dir() and not (cache_root / "manifest.json").is_file() \
            and any(p.name != ".extract.lock" for p in cache_root.iterdir()):
        raise DataError(f"{cache_root}: holds files but no manifest.json, so it is no feature "
                        "cache; give --cache a new or empty folder")
    build = aside(cache_root, "partial")
    if build.is_dir():
        echo(f"cache: resuming the unfinished extraction in {build}")
        return build
    if cache_root.is_dir():
        shutil.copytree(cache_root, build, copy_function=_link_or_copy,
                        ignore=shutil.ignore_patterns(".extract.lock", ".*.tmp"))
    else:
        build.mkdir(parents=True)
    return build


def _run_backbone(backbone, modality: str, media, video: str):
    """``backbone.extract(media)``; a plugin's exception is one line naming it and the video
    (out of memory passes: the CLI says what to lower)."""
    try:
        return backbone.extract(media)
    except FusionBenchError:
        raise
    except Exception as exc:
        if out_of_memory(exc):
            raise
        name = backbone.describe().get("backbone", type(backbone).__name__)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise PluginError(f"backbone {name!r} ({modality}) raised {type(exc).__name__} on video "
                          f"{video!r}: {first}") from exc


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _extract(entries, load_media, backbones: dict, cache_root: Path, source, dataset: str,
             splits: dict[str, list[str]], workers: int, on_video, extra_files, echo) -> dict:
    workers = max(1, workers)
    cache = FeatureCache(cache_root)
    cache.manifest.update({"format": FORMAT, "dataset": dataset, "source": str(source)})
    for m, b in backbones.items():
        cache.prepare(m, b.describe(), echo)
    cache.save()
    todo = []
    for e in entries:
        mods = [m for m in backbones if not cache.has(m, e.name)]
        if mods or e.name not in cache.manifest["videos"]:
            todo.append((e, mods))
    done = len(entries) - len(todo)
    if done:
        echo(f"cache: {done} of {len(entries)} videos already extracted; resuming")
    spent = {m: [0, 0.0] for m in backbones}  # frames, seconds
    t0 = time.perf_counter()
    frames = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        # video index → its media loading; popped when used, which frees the media
        futures: dict[int, Future] = {i: pool.submit(load_media, e, tuple(mods))
                                      for i, (e, mods) in enumerate(todo[: workers + 1])}
        for i, (e, mods) in enumerate(todo):
            media = futures.pop(i).result()
            if i + workers + 1 < len(todo):
                e2, m2 = todo[i + workers + 1]
                futures[i + workers + 1] = pool.submit(load_media, e2, tuple(m2))
            labels = e.labels
            if labels is None:  # test video: frames from the media, no labels
                import numpy as np

                labels = np.full((media.n_frames, 2), -5.0, np.float32)
            write_labels(cache.root / "labels" / f"{e.name}.csv", labels)
            for m in mods:
                t = time.perf_counter()
                x, k = _run_backbone(backbones[m], m, media, e.name)
                spent[m][0] += media.n_frames
                spent[m][1] += time.perf_counter() - t
                write_modality(cache.root, m, e.name, x, k)
            cache.manifest["videos"][e.name] = {"split": e.split, "frames": media.n_frames,
                                                "fps": media.fps, "bad_lines": e.bad_lines}
            cache.save()  # after every video: an interrupted extract resumes here
            frames += media.n_frames
            if on_video is not None:
                on_video(i + 1, len(todo), f"{frames / (time.perf_counter() - t0):.0f} frames/s")
    for m, (n, s) in spent.items():
        if n:
            cache.manifest["throughput"][m] = {"frames": n, "seconds": s, "frames_per_s": n / max(s, 1e-9)}
    write_splits(cache.root, splits)
    for fname, text in (extra_files or {}).items():
        atomic_write_text(cache.root / fname, text)
    cache.save()
    return cache.manifest
