"""Run one configuration into the store, or a grid of them (fusions × seeds), resumably.

A sweep skips every configuration whose hash (:meth:`RunConfig.hash`) the store already holds,
so running it again after Ctrl-C or a kill completes only the missing runs; a run that was
interrupted mid-training resumes from its checkpoint in the store (:mod:`fusion_bench.checkpoint`),
which goes once its record is written. A run that fails is recorded with ``status = "failed"``
and its error (its checkpoint is kept: the next sweep resumes it), and the sweep goes on.

Executors: ``local`` with one job runs the configurations one after the other in this process;
``local`` with ``jobs > 1`` runs that many at once in spawned worker processes; ``ray`` runs each
as a Ray task (an existing cluster if ``RAY_ADDRESS`` is set or Ray is already initialised, else a
local instance) with the resources asked for, retried elsewhere when its node dies and stored
once (:mod:`fusion_bench.ray_executor`). Workers train and build the record (so its environment is theirs) and hand it,
or the error, back; only the driver writes the store, through :func:`store_outcome`, in
completion order. Workers rebuild the plugin registry from a :class:`RegistrySpec`, since a
registry holds live modules that do not pickle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
import time
import traceback
import types
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING

from .artifacts import PENDING, write_run
from .config import RunConfig, build_config
from .errors import ConfigError, FusionBenchError, one_line_warning
from .events import Events, eta
from .options import data_version, hashes
from .preflight import preflight
from .ray_executor import Resources
from .results import ResultsStore, make_record, model_name
from .trackers import tracking

if TYPE_CHECKING:
    from .checkpoint import Checkpoints

EXECUTORS = ("local", "ray")


def is_stored(store: ResultsStore, cfg: RunConfig, reg) -> bool:
    """Whether ``store`` holds a successful run of ``cfg``: under its hash, or a run of the same
    trained model with robustness for a plain run, or a record of an older hash scheme on the
    same data version."""
    h = hashes(cfg, reg)
    return store.has(h["hash"], None if cfg.robustness.enabled else h["model_hash"],
                     legacy=h["legacy"], data_version=h["data_version"])


@dataclasses.dataclass(frozen=True)
class RegistrySpec:
    """What a worker needs to rebuild the driver's plugin registry (the CLI's ``--plugin`` list
    and ``--strict-plugins``)."""

    plugins: tuple[str, ...] = ()
    strict: bool = False
    entry_points: bool = True
    shipped: str | None = None  # Ray: the package its plugin files were shipped in
    sources: tuple[tuple[str, str], ...] = ()  # or, into a Ray the caller started, their text

    @classmethod
    def of(cls, plugins: Iterable[str], strict: bool = False, entry_points: bool = True) -> RegistrySpec:
        """Plugin files made absolute: a Ray worker need not share the driver's directory."""
        fixed = tuple(os.path.abspath(p) if p.endswith(".py") or os.sep in p else p for p in plugins)
        return cls(fixed, strict, entry_points)


@dataclasses.dataclass
class Outcome:
    """What a run hands back to the driver: its record, or why it failed."""

    record: dict | None = None
    error: str | None = None
    traceback: str | None = None

    @classmethod
    def failure(cls, e: BaseException) -> Outcome:
        return cls(error=f"{type(e).__name__}: {e}",
                   traceback="".join(traceback.format_exception(type(e), e, e.__traceback__)))


#: (config, outcome) pairs as runs finish: a generator, whose close() cancels pending work
Outcomes = Generator[tuple[RunConfig, Outcome], None, None]


def attempt(cfg: RunConfig, reg, checkpoints: Checkpoints | None = None,
            log: tuple[str, ...] = ()) -> Outcome:
    """Run ``cfg`` (resuming and writing its checkpoint in ``checkpoints``); an exception
    becomes a failed outcome (Ctrl-C still propagates). Every executor trains a run here, in
    the process that trains it: ``log``'s trackers (``parse_log``'s names) get its events,
    writing under the checkpoints' store."""
    from .runs import run_record  # torch and the model: not needed by the sweep's checks
    pm = getattr(reg, "pm", None)
    try:
        with tracking(pm, log, checkpoints.root if checkpoints is not None else "."):
            return Outcome(record=run_record(cfg, reg, Events(pm), checkpoints))
    except Exception as e:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
        return Outcome.failure(e)


@dataclasses.dataclass
class GridResult:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0  # runs whose Ray task was attempted again after a lost worker or node


def store_outcome(store: ResultsStore, cfg: RunConfig, outcome: Outcome, tag: str, res: GridResult,
                  echo: Callable[[str], object], version: str | None = None,
                  checkpoints: Checkpoints | None = None) -> None:
    """Write a finished run's record, or a failed record with its error, and print one line;
    a finished run's checkpoint then goes (:meth:`Checkpoints.stored`). Every executor goes
    through here, in the driver only. ``version``: the data version of ``cfg``'s dataset
    (:func:`fusion_bench.options.data_version`), for a failed record's hash."""
    if outcome.record is None:
        res.failed += 1
        failed = make_record(cfg, {"device": "cpu", "metrics": {}}, {}, version)
        failed.update(status="failed", error=outcome.error, traceback=outcome.traceback)
        store.write(failed)
        echo(f"{tag}: FAILED ({outcome.error})")
        return
    path = str(write_run(store, outcome.record))
    if checkpoints is not None:
        checkpoints.stored(outcome.record["config_hash"])
    res.done += 1
    echo(f"{tag}: test mean CCC {outcome.record['metrics']['test']['mean']:.3f} -> {path}")


def grid(fusions: list[str], seeds: list[int], base: list[tuple[str, str]], preset: str,
         config_file: str | None) -> list[RunConfig]:
    """The configurations of a sweep, in run order (seed-major, so partial sweeps are balanced)."""
    out = []
    for seed in seeds:
        for fusion in fusions:
            over = list(base) + [("seed", str(seed)), ("train.progress", "false")]
            if fusion.startswith("only:"):  # a single-modality row, e.g. only:visual
                over.append(("data.modalities", fusion[5:]))
            else:
                over.append(("model.fusion", fusion))
            out.append(build_config(preset, config_file, over))
    return out


def sweep(configs: list[RunConfig], reg, store: ResultsStore, echo=print, *, executor: str = "local",
          jobs: int | None = None, spec: RegistrySpec | None = None,
          keep_models: bool = True, restart: bool = False,
          keep_checkpoints: bool = False, threads: int | None = None,
          resources: Resources | None = None, log: tuple[str, ...] = ()) -> GridResult:
    """Run every configuration not yet stored; record failures and continue. What every run
    would fail on (an unknown plugin name, a modality the dataset lacks) is raised before any
    run (:func:`preflight`).

    ``jobs`` is how many runs go at once: default 1 locally, and one per cluster CPU with Ray.
    ``spec`` rebuilds ``reg`` in workers; it is needed by every executor but sequential local.
    ``keep_models``: store each run's trained weights and test predictions with its record.
    Each run checkpoints into the store and resumes its checkpoint found there (``restart``:
    removes it instead); a finished run's checkpoint goes unless ``keep_checkpoints``.
    ``threads``: torch threads per run (default: this process's for a sequential sweep, the
    cores shared among the runs at once otherwise). ``resources``: what each Ray task asks
    for (CPUs, GPU fractions, retries after a lost node). ``log``: trackers (``parse_log``'s
    names), logging under the store from the process that trains each run.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"jobs must be at least 1, not {jobs}")
    sequential = executor == "local" and (jobs or 1) == 1
    if not sequential and spec is None:
        raise ValueError("a parallel sweep needs spec= to rebuild the plugin registry in workers")
    res = GridResult()
    from .checkpoint import Checkpoints  # torch: once the sweep's checks passed
    # absolute: a Ray worker need not share the driver's directory
    checkpoints = Checkpoints(os.path.abspath(store.root), restart=restart, keep=keep_checkpoints)
    counter = iter(range(1, len(configs) + 1))

    def tag(cfg: RunConfig) -> str:
        return f"[{next(counter)}/{len(configs)}] {model_name(cfg, sep=':')} seed {cfg.seed}"

    claimed: dict[int, str] = {}  # id(cfg) -> its claim key, held until its outcome is stored

    def missing() -> Iterator[RunConfig]:
        seen: set[str] = set()  # e.g. two fusions of a one-modality run, which uses none
        for cfg in configs:
            h = hashes(cfg, reg)["hash"]
            if h in seen or is_stored(store, cfg, reg):
                res.skipped += 1
                echo(f"{tag(cfg)}: " + ("the same run as an earlier one of this sweep, skipped"
                                        if h in seen else "already stored, skipped"))
            elif (holder := store.claim(h)) is not None:  # another sweep or run trains it now
                res.skipped += 1
                echo(f"{tag(cfg)}: being trained by process {holder.get('pid')} on "
                     f"{holder.get('host')}, skipped (run the sweep again later to check)")
            else:
                claimed[id(cfg)] = h
                yield cfg
            seen.add(h)

    try:
        todo = list(missing())
        preflight(todo, reg)  # a wrong name is one error before any run, not a failed record per run
        if sequential and threads is not None:
            import torch

            torch.set_num_threads(threads)
        _run_all(todo, reg, store, echo, res, tag, executor, jobs, spec, sequential, claimed,
                 keep_models, checkpoints, threads, resources or Resources(), log)
    finally:  # an interrupted sweep frees what it did not finish
        for key in claimed.values():
            store.release(key)
    return res


def _run_all(todo: list[RunConfig], reg, store: ResultsStore, echo: Callable[[str], object],
             res: GridResult, tag: Callable[[RunConfig], str], executor: str, jobs: int | None,
             spec: RegistrySpec | None, sequential: bool, claimed: dict[int, str],
             keep_models: bool, checkpoints: Checkpoints, threads: int | None = None,
             resources: Resources | None = None, log: tuple[str, ...] = ()) -> None:
    """Run ``todo`` on the executor and store each outcome as it arrives, releasing its claim
    (one outcome per run, however many attempts Ray made)."""
    retried: dict[str, int] = {}
    if sequential:
        outcomes: Outcomes = ((c, attempt(c, reg, checkpoints, log)) for c in todo)
    elif executor == "local":
        assert spec is not None  # checked above
        outcomes = _process_outcomes(todo, spec, jobs, checkpoints, threads, log)
    else:
        assert spec is not None  # checked above
        outcomes = _ray_outcomes(todo, spec, jobs, echo, checkpoints, threads,
                                 resources or Resources(), retried, log)
    # closing(): on Ctrl-C here the executor's clean-up (cancel pending work) runs at once.
    t0 = time.monotonic()  # the sweep's progress: each trained run's line ends with the ETA
    with contextlib.closing(outcomes):
        for n, (cfg, outcome) in enumerate(outcomes, start=1):
            if not keep_models and outcome.record is not None:
                outcome.record.pop(PENDING, None)
            def line(s: str, tail: str = eta(time.monotonic() - t0, n, len(todo))) -> object:
                return echo(s + tail)

            store_outcome(store, cfg, outcome, tag(cfg), res, line, data_version(cfg, reg),
                          checkpoints)
            store.release(claimed.pop(id(cfg)))
    res.retried = len(retried)


# -- workers ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def worker_registry(spec: RegistrySpec):
    """The registry of ``spec``, built once per worker process (workers are reused)."""
    from .plugins import load_registry

    plugins = spec.plugins
    if spec.shipped is not None:  # a Ray worker: the copies its runtime environment brought
        from .ray_executor import shipped_path

        plugins = tuple(shipped_path(spec.shipped, os.path.basename(p)) if p.endswith(".py")
                        else p for p in plugins)
    elif spec.sources:
        from .ray_executor import materialise

        where = materialise(spec.sources)
        plugins = tuple(where.get(os.path.basename(p), p) for p in plugins)
    return load_registry(plugins, strict=spec.strict, entry_points=spec.entry_points)


def work(cfg: RunConfig, spec: RegistrySpec, threads: int,
         checkpoints: Checkpoints | None = None, one_line: bool = False,
         log: tuple[str, ...] = ()) -> Outcome:
    """Run ``cfg`` in a worker process with ``threads`` torch threads; never writes a record
    (only its checkpoint, into ``checkpoints``). ``one_line``: print warnings as the driver's
    CLI does, one line each (:func:`fusion_bench.errors.one_line_warning`), not in Python's
    form with a file, line number and source line (a spawned worker starts with Python's).
    ``log``: the trackers that get this run's events, writing under the checkpoints' store."""
    import torch

    if one_line:
        warnings.showwarning = one_line_warning
    torch.set_num_threads(threads)
    try:
        reg = worker_registry(spec)
    except Exception as e:  # noqa: BLE001 - e.g. --strict-plugins with a broken plugin
        return Outcome.failure(e)
    return attempt(cfg, reg, checkpoints, log)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under taskset or a container's
    cpuset), which can be fewer than the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _init_worker(driver: int) -> None:
    """Process-pool initializer. Ctrl-C reaches the whole terminal process group, but only the
    driver should react to it (it ends the workers itself), not print a traceback per worker.
    And a worker ends itself when its driver is gone: a driver killed with SIGKILL cannot end
    its workers, which would otherwise train on, unseen, holding their memory."""
    import signal
    import threading
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == driver:  # reparented once the driver has died
            time.sleep(0.5)
        os._exit(1)  # nothing of this worker's run can reach the store without the driver

    threading.Thread(target=watch, name="driver-watch", daemon=True).start()


def _process_outcomes(todo: list[RunConfig], spec: RegistrySpec, jobs: int | None,
                      checkpoints: Checkpoints | None = None, threads: int | None = None,
                      log: tuple[str, ...] = ()) -> Outcomes:
    """Run ``todo`` in ``jobs`` spawned processes; yield (config, outcome) as each finishes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    if not todo:
        return
    jobs = jobs or 1
    threads = threads or max(1, usable_cpus() // jobs)  # N jobs share the cores, not N × cores
    # spawn, not fork: forking a process that already runs torch's thread pools can deadlock.
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)),
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(os.getpid(),))
    one_line = warnings.showwarning is one_line_warning  # the CLI without --debug
    futures = {pool.submit(work, cfg, spec, threads, checkpoints, one_line, log): cfg
               for cfg in todo}
    finished = False
    try:
        for fut in as_completed(futures):
            try:
                outcome = fut.result()
            except BrokenProcessPool:
                # A worker died (killed for memory, a crash in native code): the pool is broken
                # and every unfinished run fails with it, so record none of them as failed runs.
                left = sum(not f.done() or f.exception() is not None for f in futures)
                raise FusionBenchError(
                    f"a sweep worker process died (out of memory?); {left} run(s) did not finish "
                    "and nothing was stored for them; run the sweep again to complete it, with "
                    "fewer --jobs if memory is short") from None
            except Exception as e:  # noqa: BLE001 - e.g. the record does not unpickle
                outcome = Outcome.failure(e)
            yield futures[fut], outcome
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # interrupted: drop queued runs and end running ones; their results would be lost
            procs = list((pool._processes or {}).values())  # no public way before Python 3.14
            pool.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                p.terminate()


def _ray_outcomes(todo: list, spec: RegistrySpec, jobs: int | None,
                  echo: Callable[[str], object], checkpoints: Checkpoints | None,
                  threads: int | None, resources: Resources, retried: dict[str, int],
                  log: tuple[str, ...] = ()) -> Outcomes:
    """Run each of ``todo`` as a Ray task (:mod:`fusion_bench.ray_executor`); yield (config,
    outcome) as each finishes; ``retried`` gets the runs that took more than one attempt."""
    if not todo:
        return
    from .ray_executor import Session, run_outcomes, wants_cuda

    one_line = warnings.showwarning is one_line_warning  # the CLI without --debug
    with Session([p for p in spec.plugins if p.endswith(".py")]) as session:
        shipped = dataclasses.replace(spec, sources=session.sources, shipped=session.shipped
                                      and os.path.basename(session.shipped))
        yield from run_outcomes(  # type: ignore[misc]
            session, todo, key=lambda c: str(id(c)), work=work,
            args=lambda c, n: (c, shipped, n, checkpoints, one_line, log), lost=Outcome.failure,
            jobs=jobs,
            resources=resources, gpu_wanted=lambda c: wants_cuda(c.device), threads=threads,
            echo=echo)
        retried.update(session.retried())


# -- the notebook API: fusion_bench.sweep(...) --------------------------------------------------------

def sweep_grid(fusions: str | Iterable[str], seeds: int | Iterable[int] = 5, *,
               out: str | os.PathLike = "results", preset: str = "quick",
               config_file: str | os.PathLike | None = None, overrides: dict | None = None,
               robustness: bool = False, executor: str = "local", jobs: int | None = None,
               keep_models: bool = True, plugins: Iterable[str] = (), strict_plugins: bool = False,
               echo: Callable[[str], object] | None = print, restart: bool = False,
               keep_checkpoints: bool = False, log: str | Iterable[str] | None = None,
               **arguments) -> GridResult:
    """``fusion_bench.sweep(["rcma", "concat"], seeds=3, overrides={"train.steps": 20})``: the
    ``fusion-bench sweep`` of these settings from Python. ``fusions``: names (``only:audio``
    adds a one-modality row), or one comma-separated string; ``seeds``: N for 0..N-1, or the
    seeds; ``arguments``: the CLI's flags as keywords (``dataset``, ``encoder``, ``modalities``,
    ``root``, ``device``), ``overrides`` any config key (:mod:`fusion_bench.config.arguments`).
    Skips what ``out`` already holds and resumes a run it holds half-trained (``restart``: from
    the start; ``keep_checkpoints``, ``log``: as the CLI's flags); returns the counts run,
    skipped and failed. A mistake raises a :class:`fusion_bench.errors.FusionBenchError` before
    any run."""
    from .config.arguments import override_pairs
    from .plugins import load_registry
    from .trackers import parse_log

    trackers = tuple(parse_log(log))

    names = list(dict.fromkeys(f.strip() for f in (fusions.split(",") if isinstance(fusions, str)
                                                    else fusions) if f.strip()))
    if not names:
        raise ConfigError("give at least one fusion, e.g. fusions=['rcma', 'concat']")
    order = list(range(seeds)) if isinstance(seeds, int) else list(dict.fromkeys(seeds))
    if not order or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in order):
        raise ConfigError(f"seeds must be a count ≥ 1 or a list of seeds ≥ 0; got {seeds!r}")
    if "seed" in arguments or "fusion" in arguments:
        raise ConfigError("a sweep takes fusions=[...] and seeds=..., not fusion= or seed=")
    base = override_pairs(arguments, overrides, {"robustness.enabled": True if robustness else None})
    configs = grid(names, order, base, preset, None if config_file is None else os.fspath(config_file))
    plugins = tuple(plugins)
    reg = load_registry(plugins, strict=strict_plugins)
    for f in reg.failures:  # as the CLI says them; strict_plugins makes them errors
        warnings.warn(f"plugin {f.plugin!r} skipped: {f.error}", stacklevel=2)
    store = ResultsStore(os.fspath(out))
    store.check_writable()  # before any run
    return sweep(configs, reg, store, echo=echo or (lambda _: None), executor=executor, jobs=jobs,
                 spec=RegistrySpec.of(plugins, strict_plugins), keep_models=keep_models,
                 restart=restart, keep_checkpoints=keep_checkpoints, log=trackers)


class _CallableModule(types.ModuleType):
    """This module, callable: ``fusion_bench.sweep`` is both the module and the notebook API's
    function (an import of the module sets the package's attribute of its name, so the function
    cannot be a separate object there)."""

    def __call__(self, fusions, seeds=5, **options) -> GridResult:
        """:func:`sweep_grid`."""
        return sweep_grid(fusions, seeds, **options)


sys.modules[__name__].__class__ = _CallableModule
