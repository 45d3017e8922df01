"""The one run path: check a configuration, train its model(s) per target group, score them,
and make the record. ``run``, ``sweep`` (every executor) and ``submit`` go through here; ``bench``
shares the checks and the model builder (:func:`fusion_bench.bench.runner.run_bench`).

Order of a run: :func:`fusion_bench.preflight.preflight` (plugin names and options, no data read),
the dataset (:func:`load_dataset`), its windows (:func:`split_windows`: a window or hop the
configuration leaves to the data is resolved from the train split, and the data summary goes out as
a run event and into the record), then per target group (:func:`target_groups`) one model trained
by :func:`fusion_bench.train.fit` and used to predict (:func:`fit_targets`); scores and the record
last, with a warning where a model's validation history says its training length does not fit
(:func:`fusion_bench.train.fit_warnings`). Run events (:mod:`fusion_bench.events`) go out at the
start, with the data summary, after each epoch and at the end.

Given :class:`fusion_bench.checkpoint.Checkpoints`, a run checkpoints its training after each
epoch and each trained model, and resumes from the checkpoint of its configuration if it finds
one: models already trained are rebuilt from their best weights, the one in training goes on
from its last epoch.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from . import distributed, launch
from .artifacts import PENDING, write_run
from .baseline import ridge_baseline
from .checkpoint import Checkpoints, RunCheckpoint, error_line
from .config import RunConfig
from .costs import count_flops, count_parameters
from .data import (
    LABEL_RANGE,
    TARGETS,
    Video,
    dataset_label_level,
    dataset_label_range,
    dataset_targets,
)
from .data.windows import Windows, make_windows
from .errors import DataError
from .evaluate import (
    feature_scale,
    metric_functions,
    perturbations,
    predict_into,
    robustness_summary,
    score,
    score_all,
)
from .events import Events, RunInfo
from .model import build_model
from .options import data_version
from .preflight import open_dataset, preflight
from .results import ResultsStore, display_name, make_record, model_name
from .runtime import compute_device, seed_everything
from .summary import check_level, data_summary, resolve
from .train import FitResult, TrainingLengthWarning, fit, fit_warnings, schedule


def plugins_used(reg, cfg: RunConfig) -> dict:
    """Name, providing plugin and version of the dataset, encoder and fusion of ``cfg``; an
    unknown name raises with a "did you mean"."""
    used = {"dataset": reg.get("datasets", cfg.data.name), "encoder": reg.get("encoders", cfg.model.encoder)}
    if len(cfg.data.modalities) > 1:
        used["fusion"] = reg.get("fusions", cfg.model.fusion)
    return {k: {"name": e.name, "plugin": e.plugin, "version": reg.plugins[e.plugin].version}
            for k, e in used.items()}


def load_dataset(reg, cfg: RunConfig):
    """Build the dataset plugin of ``cfg``, read its splits and check its videos against its dims,
    targets, label level and label range."""
    ds = open_dataset(reg, cfg)
    targets = dataset_targets(ds)
    level, label_range = dataset_label_level(ds), dataset_label_range(ds)
    splits = ds.splits()
    for need in ("train", "val", "test"):
        if not splits.get(need):
            raise DataError(f"dataset {cfg.data.name!r} has no {need!r} videos")
    for split, videos in splits.items():
        for v in videos:
            v.validate(ds.dims, targets, level=level, label_range=label_range)
        if split in ("train", "val", "test") and not any(v.valid.any() for v in videos):
            # found here, not by the scoring after training
            raise DataError(f"dataset {cfg.data.name!r}: no {level} of the {split!r} split has a "
                            f"label for every target ({', '.join(targets)}; -5 marks none): "
                            "nothing to train on or score")
    return ds, splits


def split_windows(cfg: RunConfig, splits: dict[str, list[Video]], mods: tuple[str, ...],
                  level: str = "frame") -> tuple[RunConfig, dict[str, Windows]]:
    """``cfg`` resolved on the data (:func:`fusion_bench.summary.resolve`: window and hops the
    configuration leaves to the data) and every split cut into its windows (at ``level``
    "sequence" each carrying its sequence's label)."""
    cfg = resolve(cfg, splits, level)
    return cfg, {s: make_windows(v, mods, cfg.data.window, cfg.data.hop_for(s), level)
                 for s, v in splits.items()}


def target_groups(cfg: RunConfig, targets: Sequence[str] = TARGETS) -> list[tuple[int, ...]]:
    """The target columns of each model a run on a dataset of ``targets`` trains: one model for
    all targets, or one per target (``model.per_target``, the paper's protocol)."""
    n = len(targets)
    return [(i,) for i in range(n)] if cfg.model.per_target else [tuple(range(n))]


def model_label(cfg: RunConfig, cols: tuple[int, ...], targets: Sequence[str] = TARGETS) -> str:
    """How events and progress name the model of target columns ``cols`` (of ``targets``)."""
    return f"{display_name(cfg)} " + "+".join(targets[c] for c in cols)


def window_flops(model: torch.nn.Module, windows: Windows) -> dict[str, int] | None:
    """FLOPs of one window through the whole model, inference and training (forward+backward),
    counted on a CPU copy of the model (:func:`fusion_bench.costs.count_flops`; the model, its
    statistics and the random state are left as they were). None, with a warning, for a model
    whose copy cannot run there."""
    f, k, _, _ = windows.batch(torch.arange(1), "cpu")
    try:
        c = count_flops(model, f, k)
    except Exception as e:  # noqa: BLE001 - a count we cannot make must not cost the run
        warnings.warn(f"FLOPs not counted ({type(e).__name__}: {e}); the record says None",
                      stacklevel=2)
        return None
    return {"inference": c["inference"], "train": c["train"]}


@dataclasses.dataclass
class Fitted:
    """One trained model of a run."""

    columns: tuple[int, ...]  # the label columns it predicts (its output j is columns[j])
    model: torch.nn.Module
    fit: FitResult
    options: dict  # the resolved plugin options it was built with


def fit_targets(cfg: RunConfig, reg, dims: dict[str, int], train: Windows, val: Windows,
                val_videos: list[Video], device: torch.device, events: Events | None = None,
                run: RunInfo | None = None, targets: Sequence[str] = TARGETS,
                checkpoint: RunCheckpoint | None = None, level: str = "frame",
                label_range: tuple[float, float] = LABEL_RANGE) -> Iterator[Fitted]:
    """Train one model per target group of ``cfg`` (``targets``: the dataset's; ``level`` and
    ``label_range``: its label level and range, which the head follows), each from the
    run's seed; yield each as it is trained (holding its best validation weights). With a
    ``checkpoint`` (checked: :meth:`RunCheckpoint.check`), a model it holds finished is rebuilt
    from its weights and the one it holds in training resumed; each epoch and model is saved."""
    for cols in target_groups(cfg, targets):
        label = model_label(cfg, cols, targets)
        seed_everything(cfg.seed)
        model, options = build_model(reg, cfg, dims, n_targets=len(cols), level=level,
                                     label_range=label_range)
        if checkpoint is not None and (done := checkpoint.finished_model(label)) is not None:
            fitted, weights = done
            _load_weights(model, weights, label, checkpoint)
            model.to(device)
            res = FitResult(**{**fitted, "resumed_from_epoch": fitted["epochs"]})
        else:
            res = fit(model, train, val, val_videos, cols, cfg.train, device, cfg.seed,
                      label=label, on_epoch=_epoch_events(events, run), targets=targets,
                      on_step=_step_events(events, run),
                      resume=checkpoint.fit_state(label) if checkpoint is not None else None,
                      on_checkpoint=None if checkpoint is None else functools.partial(
                          checkpoint.epoch_done, label, cols))
            if checkpoint is not None:
                checkpoint.model_done(label, cols, res.summary(), model.state_dict())
        yield Fitted(cols, model, res, options)


def _epoch_events(events: Events | None, run: RunInfo | None):
    """The ``on_epoch`` of a fit that sends each epoch out as the ``epoch_end`` run event."""
    if events is None or run is None:
        return None
    return lambda epoch: events.epoch_end(run, epoch)


def _step_events(events: Events | None, run: RunInfo | None):
    """The ``on_step`` of a fit: the ``step_end`` run event, or None (no per-step call at all)
    when no plugin implements it."""
    if events is None or run is None or not events.wants("step_end"):
        return None
    return lambda step: events.step_end(run, step)


def _load_weights(model: torch.nn.Module, weights: dict, label: str,
                  checkpoint: RunCheckpoint) -> None:
    """A finished model's best weights from its checkpoint; one line if they do not fit."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise DataError(f"{label}: its weights in checkpoint {checkpoint.path} do not fit the "
                        f"model ({error_line(e)}); run again with --restart to train from the "
                        "start") from None


def run_info(cfg: RunConfig, reg, targets: Sequence[str] | None = None) -> RunInfo:
    """The run events' description of ``cfg`` (``targets``: the dataset's; None: read from the
    dataset, opened for it, which reads no videos)."""
    if targets is None:
        targets = dataset_targets(open_dataset(reg, cfg))
    return RunInfo(f"{model_name(cfg)}-s{cfg.seed}", cfg.to_dict(), cfg.hash(data_version(cfg, reg)),
                   tuple(model_label(cfg, c, targets) for c in target_groups(cfg, targets)))


def run(cfg: RunConfig, reg, events: Events | None = None, info: RunInfo | None = None,
        checkpoints: Checkpoints | None = None) -> dict:
    """Train and evaluate ``cfg``; return the result part of its record (not yet stored). With
    ``checkpoints``, resume the checkpoint of ``cfg`` found there and write it as it trains."""
    t_start = time.perf_counter()
    device = distributed.init(compute_device(cfg.device))  # this rank's device under torchrun
    ds, splits = load_dataset(reg, cfg)
    targets = dataset_targets(ds)
    level, label_range = dataset_label_level(ds), dataset_label_range(ds)
    check_level(cfg, level)
    t_data = time.perf_counter() - t_start
    mods = tuple(ds.dims)
    given = cfg
    cfg, wins = split_windows(given, splits, mods, level)
    summary = data_summary(given, cfg, splits, wins, level)
    if events is not None and info is not None:
        events.data_summary(info, summary)
    groups = target_groups(cfg, targets)
    checkpoint = None
    if checkpoints is not None:
        info = info if info is not None else run_info(given, reg, targets)
        plan = {**dataclasses.asdict(schedule(cfg.train, len(wins["train"]))),
                "windows": len(wins["train"])}
        with distributed.main_first():  # the other ranks read what rank 0 kept of it
            checkpoint = checkpoints.open(info.config_hash, info.name)
            checkpoint.check([(model_label(cfg, c, targets), list(c)) for c in groups], plan)
    rows = (lambda v: 1) if level == "sequence" else (lambda v: v.n_frames)  # prediction rows
    preds = {s: [np.zeros((rows(v), len(targets))) for v in splits[s]] for s in ("val", "test")}
    fits: list[dict] = []
    notes: list[dict] = []  # what the validation histories say about the training length
    params: dict = {}
    flops: dict[str, int] | None = None
    t_eval = t_rob = 0.0  # t_eval: predicting the test split, by every model
    rob = cfg.robustness
    scale = feature_scale(splits["train"], mods) if rob.enabled else {}
    rob_preds: dict[tuple, list[np.ndarray]] = {}
    options: dict = {}
    kept: dict[str, dict] = {}  # model label -> best weights, kept with the record
    columns: dict[str, list[int]] = {}
    for fitted in fit_targets(cfg, reg, ds.dims, wins["train"], wins["val"], splits["val"],
                              device, events, info, targets, checkpoint, level, label_range):
        cols, model, res, options = fitted.columns, fitted.model, fitted.fit, fitted.options
        if not fits:  # per-target models share one architecture: count one, times their number
            params = count_parameters(model)
            one = window_flops(model, wins["test"])
            flops = None if one is None else {k: v * len(groups) for k, v in one.items()}
        fits.append({"targets": [targets[c] for c in cols], **res.summary()})
        label = model_label(cfg, cols, targets)
        kept[label] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        columns[label] = list(cols)
        # the message names the seed (a sweep's lines would look alike), the record's model not
        notes += [dict(n, model=label)
                  for n in fit_warnings(res, cfg.train, f"{label} (seed {cfg.seed})")]
        if res.val_predictions is not None:  # what the best weights predicted in validation
            for d, out in zip(preds["val"], res.val_predictions, strict=True):
                d[:, list(cols)] = out
        else:
            predict_into(preds["val"], cols, model, wins["val"], splits["val"], device)
        t0 = time.perf_counter()
        predict_into(preds["test"], cols, model, wins["test"], splits["test"], device)
        t_eval += time.perf_counter() - t0
        t0 = time.perf_counter()
        if rob.enabled:
            for key, w in perturbations(wins["test"], splits["test"], scale, rob.levels, cfg.seed):
                dest = rob_preds.setdefault(key, [np.zeros_like(x) for x in preds["test"]])
                predict_into(dest, cols, model, w, splits["test"], device)
        t_rob += time.perf_counter() - t0
    for note in notes:
        warnings.warn(note["message"], TrainingLengthWarning, stacklevel=2)
    metrics = {s: score(preds[s], splits[s], targets) for s in ("val", "test")}
    scorers = metric_functions(reg, level, label_range)  # those defined for this data
    scores = score_all(preds, splits, scorers, targets)
    t0 = time.perf_counter()  # the linear probe on the same frames, by the metrics that scored
    baseline = ridge_baseline(splits, mods, {n: f for n, f in scorers.items() if n in scores},
                              targets, level=level)
    t_baseline = time.perf_counter() - t0
    extra = {}
    if rob.enabled:
        extra["robustness"] = robustness_summary(
            rob.levels, metrics["test"], {k: score(p, splits["test"], targets) for k, p in rob_preds.items()})
    # test frames predicted (all targets, by every model of the run) per second of prediction;
    # a frame is computed in every window covering it (window / eval hop of them)
    eval_frames = sum(v.n_frames for v in splits["test"])
    return {
        "metrics": metrics,  # CCC, as every record has it
        "scores": scores,  # every registered metric
        # what a leaderboard needs to rank a metric, so reading records needs no registry
        "metric_info": {n: {"higher_is_better": bool(getattr(f, "higher_is_better", True)),
                            "description": str(getattr(f, "description", ""))}
                        for n, f in scorers.items() if n in scores},
        "params": {**params, "models": len(groups)},
        "options": options,
        "dataset": {**ds.info(), "targets": list(targets), "label_level": level,
                    **({"label_range": list(label_range)} if label_range != LABEL_RANGE else {})},
        "baseline": baseline,
        "data_summary": summary,
        "fits": fits,
        # model -> epochs restored from a checkpoint; None: the run trained from the start
        "resumed": {lab: f["resumed_from_epoch"] for lab, f in zip(columns, fits, strict=True)
                    if f["resumed_from_epoch"]} or None,
        "training_warnings": notes,
        "device": str(device),
        "throughput": {
            "train_frames_per_s": float(np.mean([f["train_frames_per_s"] for f in fits])),
            "eval_frames_per_s": eval_frames / max(t_eval, 1e-9),
            "device": str(device),
        },
        "flops_per_window": flops,
        **extra,
        PENDING: {"models": kept, "columns": columns, "dims": dict(ds.dims), "targets": targets,
                  "label_level": level, "label_range": list(label_range),
                  "test_predictions": {v.name: p for v, p in zip(splits["test"], preds["test"],
                                                                  strict=True)}},
        "wall": {"data_s": t_data, "train_s": sum(f["seconds"] for f in fits),
                 "robustness_s": t_rob, "baseline_s": t_baseline,
                 "total_s": time.perf_counter() - t_start},
    }


def run_record(cfg: RunConfig, reg, events: Events | None = None,
               checkpoints: Checkpoints | None = None) -> dict:
    """Check, train and evaluate ``cfg``; return its record (not written anywhere). With
    ``checkpoints``, the run resumes and writes its checkpoint there (:func:`run`)."""
    preflight([cfg], reg)  # names and options before any data is read
    plugins = plugins_used(reg, cfg)
    info = run_info(cfg, reg)
    if events is not None:
        events.run_start(info)
    record = make_record(cfg, run(cfg, reg, events, info, checkpoints), plugins,
                         data_version(cfg, reg))
    if events is not None:  # the record as stored: without the weights in memory
        events.run_end(info, {k: v for k, v in record.items() if k != PENDING})
    return record


def run_and_store(cfg: RunConfig, reg, store: ResultsStore, events: Events | None = None,
                  keep_model: bool = True, restart: bool = False,
                  keep_checkpoint: bool = False) -> tuple[dict, str | None]:
    """:func:`run_record`, written to ``store`` with what it trained (``keep_model``: the best
    weights and the test predictions, :mod:`fusion_bench.artifacts`); return (record, path).
    The run checkpoints into ``store`` and resumes its configuration's checkpoint found there
    (``restart``: removes it instead); the checkpoint goes once the record is written, unless
    ``keep_checkpoint``. No record is written if the run raises (its checkpoint stays).

    Under torchrun every rank trains (:mod:`fusion_bench.distributed`); rank 0 alone writes the
    record, the weights and the checkpoint: the other ranks return their record and None."""
    main = launch.env_rank() == 0
    checkpoints = Checkpoints(str(store.root), restart=restart, keep=keep_checkpoint,
                              readonly=not main)
    record = run_record(cfg, reg, events, checkpoints)
    if not main:
        record.pop(PENDING, None)
        return record, None
    if not keep_model:
        record.pop(PENDING, None)
    path = str(write_run(store, record))
    checkpoints.stored(record["config_hash"])
    return record, path
