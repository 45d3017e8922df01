"""``fusion-bench extract --executor ray``: one Ray task per video, the driver alone writing the
cache (:func:`fusion_bench.data.cache.extract` with a ``runner``).

Each task loads its video's media and runs the backbones over it on a worker, which builds the
backbones once (from the driver's ``--backbone``/``--weights`` and plugins, :class:`Job`) and
hands back the arrays; the driver writes them as they arrive, in the partial cache, which it
swaps in once every video is there. A task that raises or whose node dies is retried
(``retries``); a video still failing after that is recorded as failed (the partial cache's
manifest) without stopping the others, and the command's end names it.

The workers read the media and the weights by the paths the driver gives: on a cluster, the
dataset folder and the weights must be where every node can read them (a shared filesystem).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator
from pathlib import Path

from .data.cache import Extracted, extract_video
from .ray_executor import Resources, Session, retry_note, run_outcomes, wants_cuda
from .sweep import RegistrySpec, worker_registry


@dataclasses.dataclass(frozen=True)
class Job:
    """What a worker needs to build the backbones and read a video."""

    spec: RegistrySpec
    backbones: tuple[tuple[str, str], ...]  # (modality, NAME[:MODEL])
    weights: tuple[tuple[str, str], ...]  # (modality, path)
    random_init: bool
    device: str
    root: str  # the dataset folder the media are read from
    dataset: str = "affwild2"


@functools.lru_cache(maxsize=2)
def _backbones(job: Job) -> dict:
    """The job's backbones, built once per worker process (workers are reused)."""
    from .backbones import build_backbones

    return build_backbones(worker_registry(job.spec), dict(job.backbones), dict(job.weights),
                           job.random_init, job.device)


def extract_task(job: Job, entry, mods: list[str], threads: int) -> Extracted:
    """On a worker: one video's features (raises what the backbone or the media raise)."""
    import torch

    from .data.affwild2 import load_media

    torch.set_num_threads(threads)
    media = load_media(Path(job.root), entry, tuple(mods))
    return extract_video(media, mods, _backbones(job), entry.name)


def _cause(e: BaseException) -> BaseException:
    """The worker's own exception inside Ray's wrapper (whose text opens with Ray's frames)."""
    return getattr(e, "cause", None) or e


class RayRunner:
    """A ``runner`` for :func:`fusion_bench.data.cache.extract`: the videos as Ray tasks."""

    def __init__(self, job: Job, resources: Resources, echo=print):
        self.job, self.resources, self.echo = job, resources, echo
        self.retried: dict[str, int] = {}

    def __call__(self, todo, load_media, backbones) -> Iterator[tuple[int, object]]:
        if not todo:
            return
        files = [p for p in self.job.spec.plugins if p.endswith(".py")]
        with Session(files) as session:
            spec = dataclasses.replace(self.job.spec, sources=session.sources,
                                       shipped=session.shipped and os.path.basename(session.shipped))
            job = dataclasses.replace(self.job, spec=spec)
            items = list(range(len(todo)))
            resources = dataclasses.replace(self.resources, cpus=self.resources.cpus or 1)
            yield from run_outcomes(  # type: ignore[misc]  # items are the indices
                session, items, key=lambda i: todo[i][0].name, work=extract_task,
                args=lambda i, n: (job, todo[i][0], list(todo[i][1]), n), lost=_cause,
                jobs=None, resources=resources, gpu_wanted=lambda _: wants_cuda(job.device),
                echo=self.echo, retry_exceptions=True)
            self.retried = session.retried()

    def note(self) -> str:
        return retry_note(self.retried, "video")
