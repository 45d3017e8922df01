"""Work on a Ray cluster (``--executor ray``): sweeps, one task per run, and extraction, one task
per video (:mod:`fusion_bench.ray_extract`). Ray is optional (the ``ray`` extra), imported here
only, when asked for.

What travels to the workers: the task's arguments (a run's whole :class:`RunConfig`, a video's
entry), plugin files given with ``--plugin`` (copied into a folder shipped through Ray's runtime
environment, ``py_modules``: a worker on another machine need not have them) and the project's
``FUSION_BENCH_*`` settings (the plugin allow and deny lists, the weights folder: its
``env_vars``). What comes back: a run's record or error, a video's arrays; only the driver
writes the store or the cache.

A task whose worker or node dies is retried by Ray (``max_retries``) on whatever node has the
resources; application errors are not retried (a run records them as a failed run). Each
attempt signs in with a small actor on the driver's node (:class:`Attempts`), so the driver can
say how many were retried; it stores one outcome per task however many attempts it took.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigError

ATTEMPTS_PREFIX = "fusion-bench-attempts-"

#: the project's settings a worker needs as the driver has them
SHIPPED_ENV = ("FUSION_BENCH_PLUGINS", "FUSION_BENCH_DISABLE_PLUGINS", "FUSION_BENCH_WEIGHTS")


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError('--executor ray needs Ray: pip install "fusion-bench-affect[ray]"') from None
    return ray


@dataclasses.dataclass(frozen=True)
class Resources:
    """What each task asks Ray for. ``gpus``: a fraction packs small runs on one GPU (0.25: four
    at once); None: one GPU per task that wants CUDA when the cluster has GPUs, else none.
    ``cpus``: None, the share :func:`ray_threads` works out. ``retries``: attempts after a
    worker or node died."""

    cpus: float | None = None
    gpus: float | None = None
    retries: int = 2

    def __post_init__(self) -> None:
        if self.cpus is not None and self.cpus <= 0:
            raise ConfigError(f"--cpus-per-run must be more than 0, not {self.cpus:g}")
        if self.gpus is not None and (self.gpus < 0 or (self.gpus > 1 and self.gpus % 1)):
            raise ConfigError(f"--gpus-per-run takes a fraction up to 1 (runs packed on a GPU) or "
                              f"a whole number of GPUs, not {self.gpus:g}")
        if self.retries < 0:
            raise ConfigError(f"retries must be 0 or more, not {self.retries}")


def ray_threads(cpus: int, node_cpus: int, jobs: int | None) -> tuple[int, str | None]:
    """CPUs (= torch threads) per Ray task for ``jobs`` runs at once on a cluster of ``cpus``
    CPUs whose largest node has ``node_cpus``; and a note when fewer than ``jobs`` can run at
    once (a task takes at least one CPU, and Ray queues what does not fit)."""
    # A task cannot ask for more CPUs than one node has, or it would never be scheduled.
    threads = max(1, min(cpus // (jobs or cpus), node_cpus))
    note = None
    if jobs is not None and jobs > cpus:
        note = (f"--jobs {jobs}, but the Ray cluster has {cpus} CPUs: at most {cpus} runs at "
                f"once, one CPU each; the rest wait in Ray's queue")
    return threads, note


def wants_cuda(device: str) -> bool:
    """Whether a run with ``device`` trains on a GPU when one is there (auto picks cuda)."""
    return device == "auto" or device.startswith("cuda")


# -- what is shipped ----------------------------------------------------------------------------

def ship_files(files: list[str], where: Path) -> tuple[str | None, list[str]]:
    """Copy plugin ``files`` into a package folder under ``where`` named after their contents
    (``fusion_bench_shipped_<hash>``), for the runtime environment's ``py_modules``; return its
    path (None without files) and the files' names in it."""
    files = [f for f in files if f.endswith(".py") and os.path.isfile(f)]
    if not files:
        return None, []
    digest = hashlib.sha256()
    for f in files:
        digest.update(os.path.basename(f).encode() + b"\0" + Path(f).read_bytes())
    folder = where / f"fusion_bench_shipped_{digest.hexdigest()[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text("")  # a package: importable by its name on a worker
    for f in files:
        shutil.copyfile(f, folder / os.path.basename(f))
    return str(folder), [os.path.basename(f) for f in files]


def runtime_env(shipped: str | None) -> dict:
    """The runtime environment of every task: the shipped plugin folder and the settings."""
    env: dict = {"env_vars": {k: os.environ[k] for k in SHIPPED_ENV if k in os.environ}}
    if shipped is not None:
        env["py_modules"] = [shipped]
    return env


def shipped_path(package: str, name: str) -> str:
    """On a worker: where shipped file ``name`` of ``package`` landed."""
    import importlib

    mod = importlib.import_module(package)
    return str(Path(list(mod.__path__)[0]) / name)


def sources(files: list[str]) -> tuple[tuple[str, str], ...]:
    """(file name, text) of each plugin file, for a Ray the caller initialised: its job's
    runtime environment is fixed, and Ray uploads local folders only at ``ray.init``."""
    return tuple((os.path.basename(f), Path(f).read_text(encoding="utf-8")) for f in files
                 if f.endswith(".py") and os.path.isfile(f))


@functools.lru_cache(maxsize=8)
def materialise(texts: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """On a worker: write shipped sources into a folder of their own; file name → path."""
    folder = Path(tempfile.mkdtemp(prefix="fusion-bench-shipped-"))
    out = {}
    for name, text in texts:
        (folder / name).write_text(text, encoding="utf-8")
        out[name] = str(folder / name)
    return out


# -- the cluster ----------------------------------------------------------------------------------

class Session:
    """Ray joined or started for one command: ``RAY_ADDRESS``'s cluster when set, an instance
    already initialised by the caller, else a local one (shut down at the end; a Ray the caller
    started is left running). Holds the staging folder of shipped files and the attempts log."""

    def __init__(self, plugin_files: list[str] = ()):  # type: ignore[assignment]
        self.ray = import_ray()
        self.ours = not self.ray.is_initialized()
        self._stage = tempfile.TemporaryDirectory(prefix="fusion-bench-ray-")
        self.shipped: str | None = None  # the package folder in the job's py_modules
        self.sources: tuple[tuple[str, str], ...] = ()  # or the files' text, in each task
        if self.ours:
            self.shipped, _ = ship_files(list(plugin_files), Path(self._stage.name))
            self.ray.init(runtime_env=runtime_env(self.shipped), include_dashboard=False,
                          log_to_driver=False)
            self.env: dict | None = None  # the job's runtime environment is every task's
        else:
            self.sources = sources(list(plugin_files))
            self.env = runtime_env(None)
        self.attempts = _attempts_actor(self.ray)

    def node_cpus(self) -> tuple[int, int]:
        """(CPUs of the cluster, CPUs of its largest live node)."""
        cluster = self.ray.cluster_resources()
        node = max((int(n["Resources"].get("CPU", 0)) for n in self.ray.nodes() if n["Alive"]),
                   default=1)
        return int(cluster.get("CPU", 1)), node

    def gpus(self) -> float:
        return float(self.ray.cluster_resources().get("GPU", 0))

    def options(self, cpus: float, gpus: float, retries: int, retry_exceptions: bool = False
                ) -> dict:
        opts: dict[str, object] = {"num_cpus": cpus, "num_gpus": gpus, "max_retries": retries,
                                   "retry_exceptions": retry_exceptions}
        if self.env is not None:
            opts["runtime_env"] = self.env
        return opts

    def retried(self) -> dict[str, int]:
        """Key → attempts beyond the first, of the tasks that signed in more than once."""
        counts = self.ray.get(self.attempts.counts.remote())
        return {k: n - 1 for k, n in counts.items() if n > 1}

    def nodes(self) -> dict[str, list[str]]:
        """Key → the node id of each attempt of that task so far."""
        return self.ray.get(self.attempts.where.remote())

    def completed(self, refs: dict, cancel_left: bool = True) -> Iterator[tuple[object, object]]:
        """(key, result or the exception Ray raised) of each of ``refs`` (ref → key) as it ends;
        what is left when the caller stops is cancelled."""
        pending = dict(refs)
        try:
            while pending:
                (ref,), _ = self.ray.wait(list(pending), num_returns=1)
                key = pending.pop(ref)
                try:
                    yield key, self.ray.get(ref)
                except Exception as e:  # noqa: BLE001 - the task's worker died past its retries
                    yield key, e
        finally:
            if cancel_left:
                for ref in pending:
                    self.ray.cancel(ref, force=True)

    def close(self) -> None:
        if self.ours:
            self.ray.shutdown()
        else:  # the caller's Ray goes on: end what this session started in it
            try:
                self.ray.kill(self.attempts)
            except Exception:  # noqa: BLE001, S110 - already gone with its node or job
                pass
        self._stage.cleanup()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _attempts_actor(ray):
    """A counter of attempts per task key, pinned to the driver's node (it outlives any other
    node), taking no CPU."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    class Attempts:
        def __init__(self) -> None:
            self.nodes: dict[str, list[str]] = {}  # key -> the node of each attempt
            self.pids: dict[str, set[int]] = {}  # node -> the worker processes that signed in

        def start(self, key: str, node: str, pid: int) -> int:
            self.nodes.setdefault(key, []).append(node)
            self.pids.setdefault(node, set()).add(pid)
            return len(self.nodes[key])

        def counts(self) -> dict[str, int]:
            return {k: len(v) for k, v in self.nodes.items()}

        def where(self) -> dict[str, list[str]]:
            return {k: list(v) for k, v in self.nodes.items()}

        def workers(self, node: str) -> list[int]:
            return sorted(p for p in self.pids.get(node, ()) if p > 0)  # 0: a process group

    here = ray.get_runtime_context().get_node_id()
    strategy = NodeAffinitySchedulingStrategy(here, soft=False)
    # named, so that an observer in the same Ray namespace can follow the attempts (the tests
    # and scripts/scale_table.py find it with ray.util.list_named_actors)
    name = f"{ATTEMPTS_PREFIX}{uuid.uuid4().hex[:12]}"
    return Attempts.options(  # type: ignore[attr-defined]
        name=name, scheduling_strategy=strategy).remote()


def sign_in(attempts, key: str) -> None:
    """On a worker: count this attempt of task ``key`` (best effort: a lost count costs only
    the number the driver reports)."""
    if attempts is None:
        return
    import ray

    try:
        ray.get(attempts.start.remote(key, ray.get_runtime_context().get_node_id(), os.getpid()),
                timeout=30)
    except Exception:  # noqa: BLE001, S110 - the count is a report, not the work
        pass


def retry_note(retried: dict[str, int], noun: str = "run") -> str:
    """The end line's note on retries, or ''."""
    if not retried:
        return ""
    return (f"; {len(retried)} {noun}(s) retried after a lost worker or node "
            f"({sum(retried.values())} retries), each stored once")


def _task(fn, key: str, attempts, *args):
    """A Ray task: sign in this attempt, then ``fn(*args)``."""
    sign_in(attempts, key)
    return fn(*args)


def run_outcomes(session: Session, todo: list, key: Callable[[Any], str], work: Callable,
                 args: Callable[[Any, int], tuple], lost: Callable[[BaseException], object],
                 jobs: int | None, resources: Resources, gpu_wanted: Callable[[Any], bool],
                 threads: int | None = None, echo: Callable[[str], object] = print,
                 retry_exceptions: bool = False) -> Iterator[tuple[object, object]]:
    """Run ``work(*args(item, threads))`` as one Ray task per item of ``todo``; yield (item,
    result) as each ends, ``lost(exception)`` for a task whose worker died past its retries.
    CPUs per task: ``resources.cpus``, else ``threads``, else the share of the cluster
    (:func:`ray_threads`); GPUs: ``resources.gpus``, else 1 where ``gpu_wanted(item)`` and
    the cluster has GPUs. ``retry_exceptions``: an exception the task raises is retried too
    (not only a lost worker or node)."""
    cpus, node_cpus = session.node_cpus()
    per_task, note = ray_threads(cpus, node_cpus, jobs)
    if resources.cpus is not None:
        ask = resources.cpus
        if ask > node_cpus:
            raise ConfigError(f"--cpus-per-run {ask:g}, but the largest node of the Ray "
                              f"cluster has {node_cpus} CPUs: no run could be scheduled")
    else:
        ask = min(threads, node_cpus) if threads else per_task  # a task fits on a node
        if note:
            echo(note)
    n_threads = max(1, int(ask))  # torch threads: the CPUs the task holds
    has_gpu = session.gpus() > 0
    if resources.gpus is not None and resources.gpus > 0 and not has_gpu:
        raise ConfigError(f"--gpus-per-run {resources.gpus:g}, but the Ray cluster has no GPU")
    task = session.ray.remote(_task)
    refs = {}
    for item in todo:
        gpus = resources.gpus if resources.gpus is not None else \
            (1 if has_gpu and gpu_wanted(item) else 0)
        opts = session.options(ask, gpus, resources.retries)
        if retry_exceptions:
            opts["retry_exceptions"] = True
        ref = task.options(**opts).remote(
            work, key(item), session.attempts, *args(item, n_threads))
        refs[ref] = item
    for item, got in session.completed(refs):
        yield item, lost(got) if isinstance(got, BaseException) else got


# -- fault injection, for the tests and scripts/scale_table.py ------------------------------------

def attempts_log(ray, timeout: float = 60.0):
    """The attempts log (the named actor of :func:`_attempts_actor`) of the sweep or extraction
    running on the cluster ``ray`` is connected to, once it exists; None after ``timeout`` s."""
    import time

    from ray.util import list_named_actors

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        names = [n for n in list_named_actors() if n.startswith(ATTEMPTS_PREFIX)]
        if names:
            return ray.get_actor(names[0])
        time.sleep(0.1)
    return None


def kill_node_mid_task(ray, cluster, node, after_s: float, timeout: float = 120.0) -> tuple:
    """Start a thread that waits until a task of the running sweep or extraction signs in on
    ``node`` of the ``ray.cluster_utils.Cluster`` ``cluster`` (the attempts log says where each
    task ran), waits ``after_s`` more so that the kill lands mid-task, then kills the node's
    workers that signed in and removes the node, without grace: a machine lost. Returns
    (thread, killed): killed holds "at" (where the tasks were) once the node is gone, and stays
    empty if no task ever ran there within ``timeout`` s, or the run ended first."""
    import signal
    import threading
    import time

    killed: dict = {}

    def watch() -> None:
        actor = attempts_log(ray, timeout)
        end = time.monotonic() + timeout
        try:
            while actor is not None and time.monotonic() < end:
                where = ray.get(actor.where.remote())
                if any(node.node_id in ns for ns in where.values()):
                    time.sleep(after_s)
                    # The simulated nodes share this machine: a worker whose raylet was killed
                    # lives on until its next check of the raylet (a second, or more on a busy
                    # machine), long enough to finish its task and hand the result straight to
                    # the driver, so nothing would be lost. A lost machine takes its workers
                    # with it: kill them first.
                    for pid in ray.get(actor.workers.remote(node.node_id)):
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except (ProcessLookupError, PermissionError):
                            pass  # already gone
                    cluster.remove_node(node, allow_graceful=False)
                    killed["at"] = where
                    return
                time.sleep(0.1)
        except Exception:  # noqa: BLE001, S110 - the run ended and its log went with it
            pass

    thread = threading.Thread(target=watch, name="kill-node", daemon=True)
    thread.start()
    return thread, killed
