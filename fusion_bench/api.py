"""fusion-bench from Python (a notebook, a script), re-exported by the package::

    import fusion_bench

    record = fusion_bench.run(fusion="rcma", seed=0, overrides={"train.steps": 20})
    fusion_bench.sweep(["rcma", "concat"], seeds=3, out="results")
    df = fusion_bench.results("results")          # a pandas DataFrame, a row per run
    model = fusion_bench.load_model(record["run_id"], "results")

Each goes the CLI's way: the configuration through :func:`fusion_bench.config.build_config`
(:mod:`fusion_bench.config.arguments` maps the keywords to its keys), a run through
:func:`fusion_bench.runs.run_record` / :func:`~fusion_bench.runs.run_and_store`, a sweep through
:func:`fusion_bench.sweep.sweep`; so a run made here has the hash, the checks and the record the
same ``fusion-bench run`` would. A mistake raises a :class:`fusion_bench.errors.FusionBenchError`
(``ConfigError``, ``DataError``, ``PluginError``) with the message the CLI would print; nothing
here exits. A plugin that fails to load is a warning (``strict_plugins=True``: an error). torch is
imported when a run, a sweep or a model needs it, not before.

``fusion_bench.sweep`` and ``fusion_bench.results`` are also the modules of those names, made
callable (an import of a submodule sets the package's attribute of its name, so a separate
function could not keep that name): calling them calls :func:`sweep` and :func:`results`.
"""

from __future__ import annotations

import os
import typing
import warnings
from collections.abc import Iterable, Mapping

if typing.TYPE_CHECKING:
    from .artifacts import LoadedRun
    from .sweep import GridResult

PathLike = typing.Union[str, "os.PathLike[str]"]


def registry(plugins: Iterable[str] = (), strict: bool = False):
    """The plugin registry: built-ins, entry points, then ``plugins`` (files or modules); a
    plugin that fails to load is a warning naming it (``strict``: a PluginError)."""
    from .plugins import load_registry

    reg = load_registry(tuple(plugins), strict=strict)
    for f in reg.failures:
        warnings.warn(f"plugin {f.plugin!r} skipped: {f.error}", stacklevel=3)
    return reg


def run(fusion: str | None = None, *, seed: int | None = None, dataset: str | None = None,
        encoder: str | None = None, modalities: str | Iterable[str] | None = None,
        root: PathLike | None = None, device: str | None = None,
        overrides: Mapping[str, typing.Any] | None = None, preset: str = "quick",
        config_file: PathLike | None = None, out: PathLike | None = None,
        robustness: bool = False, keep_model: bool = True, plugins: Iterable[str] = (),
        strict_plugins: bool = False, restart: bool = False,
        keep_checkpoint: bool = False, log: str | Iterable[str] | None = None) -> dict:
    """Train and evaluate one configuration; return its record (a dict: ``metrics``, ``scores``,
    ``config``, ``run_id``...).

    ``fusion``, ``seed``, ``dataset``, ``encoder``, ``modalities``, ``root``, ``device``: as the
    CLI's flags; ``overrides``: any config key, ``{"train.steps": 20}`` or nested
    ``{"train": {"steps": 20}}``; ``preset``, ``config_file``: as ``--preset``, ``--config``.
    ``out``: a results store to write the record (and, with ``keep_model``, the trained weights
    and test predictions) into, as ``fusion-bench run --out``; None: nothing is written.
    ``robustness``: also score with modalities dropped and noised. ``plugins``: plugin files or
    modules to load, as ``--plugin``. With ``out``, the run checkpoints into the store after
    each epoch and resumes a checkpoint of its configuration found there, as the CLI's does
    (``restart``, ``keep_checkpoint``: as ``--restart``, ``--keep-checkpoint``). ``log``:
    experiment trackers (``"tensorboard"``, ``["mlflow", "wandb"]``), as ``--log``; they write
    under ``out``, which they need."""
    from .config.arguments import config_of
    from .errors import ConfigError
    from .trackers import parse_log, tracking

    trackers = parse_log(log)  # a wrong name: before any training
    if trackers and out is None:
        raise ConfigError("log= needs out=: the trackers write under the results store")

    arguments = {"fusion": fusion, "seed": seed, "dataset": dataset, "encoder": encoder,
                 "modalities": modalities, "root": root, "device": device}
    quiet = {"train.progress": False}  # no progress bar (it changes no result, nor the hash)
    over = {**quiet, **overrides} if isinstance(overrides, Mapping) else overrides or quiet
    cfg = config_of(preset, config_file, arguments, over,
                    {"robustness.enabled": True if robustness else None})
    reg = registry(plugins, strict_plugins)
    from .events import Events

    if out is None:
        from .artifacts import PENDING
        from .runs import run_record

        record = run_record(cfg, reg, Events(reg.pm))
        record.pop(PENDING, None)  # the weights in memory: kept only in a store
        return record
    from .results import ResultsStore
    from .runs import run_and_store

    store = ResultsStore(os.fspath(out))
    store.check_writable()  # before any training
    with tracking(reg.pm, trackers, os.fspath(out)):
        record, _ = run_and_store(cfg, reg, store, Events(reg.pm), keep_model=keep_model,
                                  restart=restart, keep_checkpoint=keep_checkpoint)
    return record


def sweep(fusions: str | Iterable[str], seeds: int | Iterable[int] = 5, **options) -> GridResult:
    """Run ``fusions`` × ``seeds`` into the store ``out`` (default ``results``), skipping what it
    holds; return the counts run, skipped and failed. Keywords: those of :func:`run` (``out``
    included; not ``fusion``, ``seed``, ``keep_model``) and ``executor``, ``jobs``,
    ``keep_models``, ``echo`` (a line per run; None: quiet): :func:`fusion_bench.sweep.sweep_grid`."""
    from .sweep import sweep_grid

    return sweep_grid(fusions, seeds, **options)


def results(path: PathLike = "results", kind: str | None = "run"):
    """The records in store ``path`` as a pandas DataFrame, a row per record: identity,
    ``config.<key>``, ``<metric>.<split>.<target>`` (``ccc.test.mean``), the ridge baseline's
    ``ridge.<metric>...``, costs (:mod:`fusion_bench.report.frame`). ``kind``: ``run``, ``bench``
    or None (all). Needs pandas (``pip install "fusion-bench-affect[pandas]"``: an ImportError saying so
    otherwise); :func:`fusion_bench.report.frame.rows` gives the rows without it."""
    from .results import as_frame

    return as_frame(os.fspath(path), kind)


def load_model(run_id: str, results: PathLike = "results", registry=None, *,
               plugins: Iterable[str] = ()) -> LoadedRun:
    """The trained models of stored run ``run_id`` with their best weights
    (:func:`fusion_bench.artifacts.load_model`); ``.predict(videos)`` applies them. ``plugins``:
    plugin files or modules the run's fusion or encoder came from (or pass a ``registry``)."""
    from .artifacts import load_model as load

    reg = registry if registry is not None else (_registry(plugins) if plugins else None)
    return load(run_id, os.fspath(results), reg)


_registry = registry  # load_model's parameter named registry hides the function
