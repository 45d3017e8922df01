"""The feature cache: backbones run once over raw media; training reads only the cache.

The cache is a :mod:`fusion_bench.data.features` folder (one ``.npy`` per video and modality, masks,
labels CSVs, ``splits.csv``) plus ``manifest.json``::

    {"format": "fusion-bench features 1", "dataset": ..., "source": ...,
     "modalities": {m: {"key": sha256[:16] of the entry below, "backbone", "model", "dim",
                        "weights", "weights_sha256", "random_init", "preprocessing"}},
     "videos": {name: {"split", "frames", "fps", "bad_lines": [...]}},
     "throughput": {m: {"frames": n, "seconds": s, "frames_per_s": f}}}

Resuming: a video's modality whose ``.npy`` exists is skipped when the manifest key of that
modality matches the backbone now asked for (same backbone, weights hash and preprocessing);
a different key discards that modality's arrays first. Media of the next videos are loaded in
worker threads while the backbones run on the current one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..files import atomic_write_text, claim, release
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
    """
    lock = Path(cache_root) / ".extract.lock"
    holder = claim(lock, stale_after_s=24 * 3600)
    if holder is not None:  # two extractions into one cache would interleave its manifest
        raise DataError(f"{cache_root}: being extracted by process {holder.get('pid')} on "
                        f"{holder.get('host')}; wait for it (or, if it is gone from another "
                        f"machine, remove {lock.name})")
    try:
        return _extract(entries, load_media, backbones, cache_root, source, dataset, splits,
                        workers, on_video, extra_files, echo)
    finally:
        release(lock)


def _extract(entries, load_media, backbones: dict, cache_root: Path, source, dataset: str,
             splits: dict[str, list[str]], workers: int, on_video, extra_files, echo) -> dict:
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
                x, k = backbones[m].extract(media)
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
