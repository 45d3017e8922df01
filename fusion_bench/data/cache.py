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

import functools
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
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
            extra_files: dict | None = None, echo: Callable[[str], object] = _stderr,
            runner: Callable | None = None) -> dict:
    """Run ``backbones`` (modality → backbone) over ``entries``; write the cache; return the manifest.

    ``load_media(entry, modalities)`` returns a :class:`fusion_bench.backbones.Media`; entries have
    ``name``, ``split``, ``labels`` (or None) and ``bad_lines``. ``splits`` (train/val/test → video
    names) is written as the cache's ``splits.csv``: the dataset's rule, not the cache's (Aff-Wild2
    scores its validation fold as test, :func:`fusion_bench.data.affwild2.fold_splits`).
    ``on_video(done, total, status)`` is called after each extracted video (a progress display);
    ``echo`` takes the one-line notes (resuming, a changed backbone). ``runner(todo,
    load_media, backbones)`` computes the videos elsewhere (:mod:`fusion_bench.ray_extract`:
    one Ray task per video), yielding (index, :class:`Extracted` or the exception of a video
    that failed past its retries) in any order; this process alone writes the cache. Videos
    that failed are recorded in the partial cache's manifest (``failed``), the cache is not
    swapped in, and :class:`ExtractionIncomplete` names them: extracting again retries them.

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
                            workers, on_video, extra_files, echo, runner)
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


@dataclass
class Extracted:
    """One video's features, as a task hands them to the writer: modality → (features
    (n_frames, dim) float32, mask (n_frames,) bool), and the seconds each backbone took."""

    n_frames: int
    fps: float
    arrays: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)


def extract_video(media, mods, backbones: dict, name: str) -> Extracted:
    """Run the ``mods`` backbones of ``backbones`` over one video's ``media``."""
    out = Extracted(media.n_frames, media.fps)
    for m in mods:
        t = time.perf_counter()
        out.arrays[m] = _run_backbone(backbones[m], m, media, name)
        out.seconds[m] = time.perf_counter() - t
    return out


def local_videos(todo, load_media, backbones: dict, workers: int = 2
                 ) -> Iterator[tuple[int, Extracted]]:
    """(index in ``todo``, features) of each (entry, modalities) of ``todo``, in order, in this
    process: media of the next videos load in worker threads while the backbones run on the
    current one. A backbone's error stops it (raised)."""
    workers = max(1, workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # video index → its media loading; popped when used, which frees the media
        futures: dict[int, Future] = {i: pool.submit(load_media, e, tuple(mods))
                                      for i, (e, mods) in enumerate(todo[: workers + 1])}
        for i, (e, mods) in enumerate(todo):
            media = futures.pop(i).result()
            if i + workers + 1 < len(todo):
                e2, m2 = todo[i + workers + 1]
                futures[i + workers + 1] = pool.submit(load_media, e2, tuple(m2))
            yield i, extract_video(media, mods, backbones, e.name)


class ExtractionIncomplete(DataError):
    """Videos whose tasks failed past their retries; the others are in the partial cache."""

    def __init__(self, failed: dict[str, str], total: int):
        self.failed = failed
        named = "; ".join(f"{n} ({why})" for n, why in sorted(failed.items())[:5])
        more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        super().__init__(f"{len(failed)} of {total} videos failed after their retries: "
                         f"{named}{more}; the others are extracted, the cache in use is as it "
                         "was, and extracting again retries these")


def _extract(entries, load_media, backbones: dict, cache_root: Path, source, dataset: str,
             splits: dict[str, list[str]], workers: int, on_video, extra_files, echo,
             runner=None) -> dict:
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
    failed: dict[str, str] = {}
    compute = runner if runner is not None else functools.partial(local_videos, workers=workers)
    for n_done, (i, got) in enumerate(compute(todo, load_media, backbones), start=1):
        e, mods = todo[i]
        if isinstance(got, BaseException):  # a task that failed past its retries (Ray only)
            failed[e.name] = (str(got).strip().splitlines() or [type(got).__name__])[0]
            continue
        labels = e.labels
        if labels is None:  # test video: frames from the media, no labels
            import numpy as np

            labels = np.full((got.n_frames, 2), -5.0, np.float32)
        write_labels(cache.root / "labels" / f"{e.name}.csv", labels)
        for m, (x, k) in got.arrays.items():
            spent[m][0] += got.n_frames
            spent[m][1] += got.seconds[m]
            write_modality(cache.root, m, e.name, x, k)
        cache.manifest["videos"][e.name] = {"split": e.split, "frames": got.n_frames,
                                            "fps": got.fps, "bad_lines": e.bad_lines}
        cache.manifest.get("failed", {}).pop(e.name, None)
        cache.save()  # after every video: an interrupted extract resumes here
        frames += got.n_frames
        if on_video is not None:
            on_video(n_done, len(todo), f"{frames / (time.perf_counter() - t0):.0f} frames/s")
    if failed:  # recorded in the partial cache's manifest; the cache in use stays as it was
        cache.manifest["failed"] = {**cache.manifest.get("failed", {}), **failed}
        cache.save()
        raise ExtractionIncomplete(failed, len(entries))
    for m, (n, s) in spent.items():
        if n:
            cache.manifest["throughput"][m] = {"frames": n, "seconds": s, "frames_per_s": n / max(s, 1e-9)}
    cache.manifest.pop("failed", None)  # every video extracted, those that failed before too
    write_splits(cache.root, splits)
    for fname, text in (extra_files or {}).items():
        atomic_write_text(cache.root / fname, text)
    cache.save()
    return cache.manifest
