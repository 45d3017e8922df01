"""The one training loop (:func:`fit`).

Loss 1 − CCC over valid frames (per window, or pooled over the batch); Adam; linear warm-up;
then plateau decay of the learning rate on validation mean CCC (or a cosine decay); early
stopping; best weights restored. Each finished epoch is reported through ``on_epoch`` (the run
path turns it into the ``epoch_end`` run event: progress displays, trackers).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .config import TrainConfig
from .data import TARGETS
from .data.windows import Windows
from .errors import DataError
from .evaluate import predict, score
from .events import EpochEnd
from .metrics import ccc_loss


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
        cfg: TrainConfig, device: torch.device, seed: int, label: str = "train",
        on_epoch: Callable[[EpochEnd], object] | None = None,
        targets: Sequence[str] = TARGETS) -> FitResult:
    """Train ``model`` to predict label ``columns`` (its output j is label column columns[j]) of
    a dataset whose label columns are ``targets``.

    The validation score is the mean CCC over ``columns`` on ``val`` (overlap-averaged frames).
    On return the model holds the weights of its best validation epoch. ``on_epoch`` receives
    each finished epoch's numbers (``label`` names the model in them).
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
    best, best_epoch, best_state, stale = -float("inf"), 0, None, 0
    history: list[dict] = []
    frames, t_train, step = 0, 0.0, 0
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
        t_epoch = time.perf_counter() - t0
        t_train += t_epoch
        if not losses:
            raise DataError("the train split has no window with 2 valid labelled frames to train "
                            "on; check the dataset's labels (-5 marks a frame invalid)")
        # before validation, which NaN weights would fail with a less useful message; the
        # weights too, as the epoch's last step can break them after a finite loss
        if not np.isfinite(np.mean(losses)) or not bool(torch.stack(
                [torch.isfinite(p).all() for p in model.parameters()]).all()):  # one sync
            raise DataError(f"{label}: the training loss or weights became NaN/inf at epoch "
                            f"{epoch}; lower train.lr")
        val_scores = score(predict(model, val, val_videos, device), val_videos, targets, columns)
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
        if on_epoch is not None:
            on_epoch(EpochEnd(label, epoch, cfg.epochs, float(np.mean(losses)), val_scores, lr,
                              best, best_epoch, t_epoch))
        if cfg.early_stop_patience and stale >= cfg.early_stop_patience:  # 0: never stop early
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(best, best_epoch, len(history), t_train, frames / max(t_train, 1e-9), history)
