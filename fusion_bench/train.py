"""The one training loop, and :func:`run`, which trains and scores one configuration.

Loss 1 − CCC over valid frames (per window, or pooled over the batch); Adam; linear warm-up;
then plateau decay of the learning rate on validation mean CCC (or a cosine decay); early
stopping; best weights restored.
"""

from __future__ import annotations

import copy
import math
import random
import sys
import time
import warnings
from dataclasses import dataclass, field

import click
import numpy as np
import torch

from .config import RunConfig, TrainConfig
from .data import TARGETS
from .data.windows import Windows, make_windows
from .errors import ConfigError, DataError
from .evaluate import feature_scale, perturbations, predict, predict_into, robustness_summary, score
from .metrics import ccc_loss
from .model import build_model, count_parameters


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:1 or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    return dev


def compute_device(name: str) -> torch.device:
    """:func:`resolve_device`, made ready to compute on: on CPU, subnormal floats are flushed to
    zero. They (e.g. a TCN over mostly-zero text features) slow CPU kernels ~6× here (a text-only
    run: 20.6 s -> 3.4 s), and values below 1e-38 cannot move a CCC."""
    device = resolve_device(name)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    return device


def target_groups(cfg: RunConfig) -> list[tuple[int, ...]]:
    """The target columns of each model a run trains: one model for all targets, or one per
    target (``model.per_target``, the paper's protocol)."""
    n = len(TARGETS)
    return [(i,) for i in range(n)] if cfg.model.per_target else [tuple(range(n))]


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Adam:
    """Adam, fused (one kernel for every parameter) on CPU and CUDA, where torch >= 2.4 has it:
    the quick model has ~100 small parameter tensors, whose per-tensor update loop otherwise
    costs ~6 ms per step on a 2-core CPU. Same update rule, rounding aside."""
    try:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                fused=device.type in ("cpu", "cuda"))
    except (RuntimeError, TypeError):  # a device or dtype without the fused kernel
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _learnable(valid: torch.Tensor, per_window: bool) -> bool:
    """Whether a batch's CCC loss has anything to fit (:func:`fusion_bench.metrics.ccc_loss`
    needs 2 valid frames in a window, or in the batch when pooled); ``valid`` is (b, L)."""
    return bool((valid.sum(1) >= 2).any()) if per_window else int(valid.sum()) >= 2


def _batch_trains(size: int, n: int) -> bool:
    """Whether a batch of ``size`` of the ``n`` training windows is trained on: BatchNorm cannot
    train on a single window, so a last batch of one is skipped unless it is all there is."""
    return size >= 2 or n < 2


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


def cosine_lr(cfg: TrainConfig, step: int, steps: int) -> float:
    """Learning rate of the ``step``-th of the ``steps`` steps after warm-up under the cosine
    schedule: half a cosine from ``cfg.lr`` (step 0) down to ``cfg.min_lr`` (the last step)."""
    frac = min(1.0, step / max(1, steps - 1))
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))


@dataclass
class FitResult:
    best_val: float
    best_epoch: int
    epochs: int
    seconds: float
    train_frames_per_s: float
    history: list[dict] = field(default_factory=list)


def fit(model: torch.nn.Module, train: Windows, val: Windows, val_videos, columns: tuple[int, ...],
        cfg: TrainConfig, device: torch.device, seed: int, label: str = "train") -> FitResult:
    """Train ``model`` to predict label ``columns`` (its output j is label column columns[j]).

    The validation score is the mean CCC over ``columns`` on ``val`` (overlap-averaged frames).
    On return the model holds the weights of its best validation epoch.
    """
    model.to(device)
    opt = make_optimizer(model, cfg, device)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr
    )
    gen = torch.Generator().manual_seed(seed)
    n = len(train)
    starts = range(0, n, cfg.batch_size)
    steps_per_epoch = max(1, sum(_batch_trains(min(cfg.batch_size, n - lo), n) for lo in starts))
    warmup_steps = cfg.warmup_epochs * steps_per_epoch
    total_steps = cfg.epochs * steps_per_epoch
    cols = torch.tensor(columns)
    targets = tuple(TARGETS[c] for c in columns)
    best, best_epoch, best_state, stale = -float("inf"), 0, None, 0
    history: list[dict] = []
    frames, t_train, step = 0, 0.0, 0
    status = {"text": ""}
    bar = click.progressbar(length=cfg.epochs, label=label, file=sys.stderr,
                            item_show_func=lambda _: status["text"], show_eta=False) \
        if cfg.progress else None
    if bar is not None:
        bar.__enter__()
    try:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            t0 = time.perf_counter()
            order = torch.randperm(n, generator=gen)
            losses = []
            for lo in starts:
                idx = order[lo : lo + cfg.batch_size]
                if not _batch_trains(len(idx), n):
                    continue
                if step < warmup_steps:
                    set_lr(opt, cfg.lr * (step + 1) / warmup_steps)
                elif cfg.schedule == "cosine":
                    set_lr(opt, cosine_lr(cfg, step - warmup_steps, total_steps - warmup_steps))
                # read on the windows' CPU mask: no device sync, and no transfer of a batch
                # that does not train
                if not _learnable(train.valid[idx], cfg.loss == "window"):
                    # no window with 2 valid frames: the loss is a constant, and an optimiser
                    # step would still move the weights by Adam's momentum. The schedule still
                    # counts the batch, so warm-up and cosine end where they were planned.
                    step += 1
                    continue
                f, k, y, ok = train.batch(idx, device)
                out = model(f, k)  # (b, L, len(columns))
                y = y[..., cols.to(device)]
                loss = sum(
                    ccc_loss(out[..., j], y[..., j], ok, per_window=cfg.loss == "window")
                    for j in range(len(columns))
                ) / len(columns)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                opt.step()
                losses.append(float(loss.detach()))
                frames += int(ok.sum())
                step += 1
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t_train += time.perf_counter() - t0
            if not losses:
                raise DataError("the train split has no window with 2 valid labelled frames to train "
                                "on; check the dataset's labels (-5 marks a frame invalid)")
            # before validation, which NaN weights would fail with a less useful message; the
            # weights too, as the epoch's last step can break them after a finite loss
            if not np.isfinite(np.mean(losses)) or not bool(torch.stack(
                    [torch.isfinite(p).all() for p in model.parameters()]).all()):  # one sync
                raise DataError(f"{label}: the training loss or weights became NaN/inf at epoch "
                                f"{epoch}; lower train.lr")
            val_scores = score(predict(model, val, val_videos, device), val_videos, targets)
            v = val_scores["mean"]
            lr = opt.param_groups[0]["lr"]
            history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val": val_scores, "lr": lr})
            if v > best:
                best, best_epoch, stale = v, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
            if epoch > cfg.warmup_epochs and cfg.schedule == "plateau":
                plateau.step(v)
            status["text"] = f"loss {np.mean(losses):.3f}  val CCC {v:.3f}  best {best:.3f}@{best_epoch}"
            if bar is not None:
                bar.update(1)
            if cfg.early_stop_patience and stale >= cfg.early_stop_patience:  # 0: never stop early
                break
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(best, best_epoch, len(history), t_train, frames / max(t_train, 1e-9), history)


def open_dataset(registry, cfg: RunConfig):
    """The dataset plugin of ``cfg``, built (its videos not yet read: ``splits()`` does that)."""
    entry = registry.get("datasets", cfg.data.name)
    try:
        return entry.obj.from_config(cfg)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"dataset {cfg.data.name!r} ({entry.plugin}): {e}") from None


def load_dataset(registry, cfg: RunConfig):
    """Build the dataset plugin of ``cfg`` and check its videos against its dims."""
    ds = open_dataset(registry, cfg)
    splits = ds.splits()
    for need in ("train", "val", "test"):
        if not splits.get(need):
            raise DataError(f"dataset {cfg.data.name!r} has no {need!r} videos")
    for videos in splits.values():
        for v in videos:
            v.validate(ds.dims)
    return ds, splits


def window_flops(model: torch.nn.Module, windows: Windows) -> dict[str, int] | None:
    """FLOPs of one window through the whole model, inference and training (forward+backward),
    counted on a meta-device copy (nothing is computed; see throughput.count_flops). None, with
    a warning, for a model that cannot run on the meta device (e.g. a plugin calling .item())."""
    from .throughput import count_flops

    f, k, _, _ = windows.batch(torch.arange(1), "cpu")
    try:
        c = count_flops(model, f, k)
    except Exception as e:  # noqa: BLE001 - a count we cannot make must not cost the run
        warnings.warn(f"FLOPs not counted ({type(e).__name__}: {e}); the record says None",
                      stacklevel=2)
        return None
    return {"inference": c["inference"], "train": c["train"]}


def run(cfg: RunConfig, registry) -> dict:
    """Train and evaluate ``cfg``; return the result record (not yet stored)."""
    t_start = time.perf_counter()
    device = compute_device(cfg.device)
    ds, splits = load_dataset(registry, cfg)
    t_data = time.perf_counter() - t_start
    L = cfg.data.window
    mods = tuple(ds.dims)
    wins = {s: make_windows(v, mods, L, cfg.data.hop_for(s)) for s, v in splits.items()}
    groups = target_groups(cfg)
    preds = {s: [np.zeros((v.n_frames, len(TARGETS))) for v in splits[s]] for s in ("val", "test")}
    fits, params, options = [], {}, {}
    flops: dict[str, int] | None = None
    t_eval = t_rob = 0.0
    rob = cfg.robustness
    scale = feature_scale(splits["train"], mods) if rob.enabled else {}
    rob_preds: dict[tuple, list[np.ndarray]] = {}
    for cols in groups:
        seed_everything(cfg.seed)
        model, options = build_model(registry, cfg, ds.dims, n_targets=len(cols))
        params = count_parameters(model)
        if not fits:  # per-target models share one architecture: count one, times their number
            one = window_flops(model, wins["test"])
            flops = None if one is None else {k: v * len(groups) for k, v in one.items()}
        label = f"{cfg.model.fusion} " + "+".join(TARGETS[c] for c in cols)
        res = fit(model, wins["train"], wins["val"], splits["val"], cols, cfg.train, device,
                  cfg.seed, label=label)
        fits.append({"targets": [TARGETS[c] for c in cols], **res.__dict__})
        t0 = time.perf_counter()
        for s in ("val", "test"):
            predict_into(preds[s], cols, model, wins[s], splits[s], device)
        t_eval += time.perf_counter() - t0
        t0 = time.perf_counter()
        if rob.enabled:
            for key, w in perturbations(wins["test"], splits["test"], scale, rob.levels, cfg.seed):
                dest = rob_preds.setdefault(key, [np.zeros_like(x) for x in preds["test"]])
                predict_into(dest, cols, model, w, splits["test"], device)
        t_rob += time.perf_counter() - t0
    metrics = {s: score(preds[s], splits[s]) for s in ("val", "test")}
    extra = {}
    if rob.enabled:
        extra["robustness"] = robustness_summary(
            rob.levels, metrics["test"], {k: score(p, splits["test"]) for k, p in rob_preds.items()})
    # video frames predicted (all targets, by every model of the run) per second of prediction;
    # a frame is computed in every window covering it (window / eval hop of them)
    eval_frames = sum(v.n_frames for s in ("val", "test") for v in splits[s])
    return {
        "metrics": metrics,
        "params": {**params, "models": len(groups)},
        "options": options,
        "dataset": ds.info(),
        "fits": fits,
        "device": str(device),
        "throughput": {
            "train_frames_per_s": float(np.mean([f["train_frames_per_s"] for f in fits])),
            "eval_frames_per_s": eval_frames / max(t_eval, 1e-9),
            "device": str(device),
        },
        "flops_per_window": flops,
        **extra,
        "wall": {"data_s": t_data, "train_s": sum(f["seconds"] for f in fits),
                 "robustness_s": t_rob, "total_s": time.perf_counter() - t_start},
    }
