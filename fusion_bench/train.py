"""The one training loop (:func:`fit`), its schedule (:func:`schedule`) and what its history
says about the training length (:func:`fit_warnings`).

Loss 1 − CCC over valid frames (per window, or pooled over the batch), or their mean squared
error; at sequence level over the batch's windows, one prediction each; Adam; linear warm-up;
then plateau decay of the learning rate on validation mean CCC (or a cosine decay); early
stopping; best weights restored. Each finished epoch is reported through ``on_epoch`` and each
batch through ``on_step`` (the run path turns them into the ``epoch_end`` and ``step_end`` run
events: progress displays, trackers).

An epoch is a pass over the training windows when ``train.epochs`` > 0; by default
(``train.epochs`` = 0) the fit makes ``train.steps`` optimizer steps whatever the dataset's size,
drawing batches from a stream of shuffled passes, and an epoch is ``train.eval_every`` of those
steps: a small dataset gets as many updates, validations and patience as a large one.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from . import distributed
from .checkpoint import FitState, capture_rng, error_line, restore_rng
from .config import TrainConfig
from .data import TARGETS
from .data.windows import Windows
from .errors import DataError
from .evaluate import predict, score
from .events import EpochEnd, StepEnd
from .heads import observed
from .metrics import ccc_loss, mse_loss
from .modality_dropout import drop_modalities


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


@dataclass(frozen=True)
class Schedule:
    """How a fit on ``n`` training windows is cut into batches, epochs and optimizer steps."""

    mode: str  # "epochs": passes over the windows; "steps": a fixed number of steps
    batch: int  # windows per batch (steps mode: at most the number of windows)
    steps_per_pass: int  # batches that train in one pass over the windows
    steps_per_epoch: int  # optimizer steps between two validations (the last epoch may have fewer)
    epochs: int  # planned; early stopping may end the fit sooner
    steps: int  # planned optimizer steps in all
    warmup_steps: int


def schedule(cfg: TrainConfig, n: int) -> Schedule:
    """The schedule of ``cfg`` on ``n`` training windows.

    Epochs mode (``cfg.epochs`` > 0): each pass is one epoch of ceil(n / batch) batches, less a
    last batch of one window (BatchNorm cannot train on it) unless n is 1. Steps mode: batches
    of min(batch_size, n) windows, each pass dropping the remainder (n // batch batches), an
    epoch of E = min(eval_every, steps, n // batch) steps (without ``eval_each_pass``, of
    min(eval_every, steps)), ceil(steps / E) epochs. Warm-up: ``warmup_epochs`` epochs' worth
    of steps.
    """
    if cfg.epochs > 0:
        per = max(1, sum(_batch_trains(min(cfg.batch_size, n - lo), n)
                         for lo in range(0, n, cfg.batch_size)))
        return Schedule("epochs", cfg.batch_size, per, per, cfg.epochs, cfg.epochs * per,
                        cfg.warmup_epochs * per)
    batch = max(1, min(cfg.batch_size, n))
    per_pass = max(1, n // batch)
    # a small dataset validates after every pass: with 250 steps of 9-step passes, epochs of 50
    # steps would leave early stopping and the best-epoch choice ~5 passes apart
    per_epoch = min(cfg.eval_every, cfg.steps, per_pass if cfg.eval_each_pass else cfg.steps)
    return Schedule("steps", batch, per_pass, per_epoch, math.ceil(cfg.steps / per_epoch),
                    cfg.steps, cfg.warmup_epochs * per_epoch)


def _epoch_batches(s: Schedule, n: int, gen: torch.Generator) -> Iterator[list[torch.Tensor]]:
    """The window indices of each batch, epoch by epoch: each pass is a fresh permutation drawn
    from ``gen`` (steps mode: passes follow one another across epochs)."""
    if s.mode == "epochs":
        for _ in range(s.epochs):
            order = torch.randperm(n, generator=gen)
            yield [order[lo : lo + s.batch] for lo in range(0, n, s.batch)
                   if _batch_trains(min(s.batch, n - lo), n)]
        return

    def stream() -> Iterator[torch.Tensor]:
        while True:
            order = torch.randperm(n, generator=gen)
            for lo in range(0, s.steps_per_pass * s.batch, s.batch):
                yield order[lo : lo + s.batch]

    batches, left = stream(), s.steps
    for _ in range(s.epochs):
        k = min(s.steps_per_epoch, left)
        left -= k
        yield [next(batches) for _ in range(k)]


def batch_loss(model: torch.nn.Module, train: Windows, idx: torch.Tensor, cols: torch.Tensor,
               cfg: TrainConfig, seed: int, step: int, device: torch.device) -> torch.Tensor:
    """The loss of ``model`` on the windows ``idx`` of ``train`` (the global batch), mean over
    target columns ``cols``: 1 − CCC (``cfg.loss`` batch or window) or the squared error (mse);
    at sequence level the model gives one row per window. With ``cfg.modality_dropout`` the
    batch's modalities are dropped first (:mod:`fusion_bench.modality_dropout`, drawn for the
    global batch at optimizer ``step``). In one process the whole batch; on several ranks this
    rank's share (:func:`fusion_bench.distributed.shard`) goes through ``model`` (DDP), and the
    loss and the BatchNorm statistics are the global batch's (every rank returns the same)."""
    reduce = distributed.sum_across if distributed.active() else None
    mine = distributed.shard(idx)
    f, k, y, ok = train.batch(mine, device)
    if cfg.modality_dropout > 0:  # missing modalities at training time
        k = drop_modalities(k, cfg.modality_dropout, seed, step, len(idx), distributed.shard)
    if train.level == "sequence":
        # a window that shows no frame (every modality missing there, or dropped) pools nothing:
        # its prediction says nothing of its sequence, so it is not fitted (predict gives it
        # weight 0 likewise)
        ok = ok & observed(k, k).any(1, keepdim=True)
    with distributed.lockstep():
        # (b, L, len(cols)); sequence level (b, 1, len(cols)): one per window
        out = model(f, k, train.present_of(mine, device))
        y = y[..., cols.to(device)]
        if cfg.loss == "mse":
            return mse_loss(out, y, ok, reduce=reduce)
        return sum(ccc_loss(out[..., j], y[..., j], ok, per_window=cfg.loss == "window",
                            reduce=reduce) for j in range(len(cols))) / len(cols)


@dataclass
class FitResult:
    best_val: float
    best_epoch: int
    epochs: int
    seconds: float
    train_frames_per_s: float
    history: list[dict] = field(default_factory=list)
    steps: int = 0  # optimizer steps made (batches with nothing to fit are counted, not stepped)
    planned_epochs: int = 0
    stopped_early: bool = False
    resumed_from_epoch: int = 0  # epochs restored from a checkpoint (0: trained from the start)
    # the best epoch's overlap-averaged val predictions (one (n_frames, len(columns)) array per
    # val video), exactly what the returned weights predict: the run reuses them instead of
    # predicting val again. None when that epoch was trained before a resume. Not recorded.
    val_predictions: list[np.ndarray] | None = field(default=None, repr=False, compare=False)

    def summary(self) -> dict:
        """The recorded fields (the record's ``fits`` entry, a checkpoint's finished model)."""
        return {k: v for k, v in self.__dict__.items() if k != "val_predictions"}


def fit(model: torch.nn.Module, train: Windows, val: Windows, val_videos, columns: tuple[int, ...],
        cfg: TrainConfig, device: torch.device, seed: int, label: str = "train",
        on_epoch: Callable[[EpochEnd], object] | None = None,
        targets: Sequence[str] = TARGETS, resume: FitState | None = None,
        on_checkpoint: Callable[[FitState], object] | None = None,
        on_step: Callable[[StepEnd], object] | None = None) -> FitResult:
    """Train ``model`` to predict label ``columns`` (its output j is label column columns[j]) of
    a dataset whose label columns are ``targets``.

    The validation score is the mean CCC over ``columns`` on ``val`` (overlap-averaged frames).
    On return the model holds the weights of its best validation epoch. ``on_epoch`` receives
    each finished epoch's numbers (``label`` names the model in them), ``on_step`` each batch's
    (its loss is the float the loop reads anyway: no extra device sync). Padding past a video's
    end reaches neither the loss (the label mask) nor the encoders' normalisation statistics
    (the windows' frame-exists mask, :class:`fusion_bench.model.MaskedBatchNorm`).

    ``on_checkpoint`` receives the state after each validated epoch after which the fit goes on
    (its tensors are the live ones: save them before returning); ``resume``, such a state, makes
    the fit go on from it as it would have gone on then, bit for bit on CPU: the batch order is
    replayed from the seed, everything else is restored.

    Under torchrun (several ranks, :mod:`fusion_bench.distributed`), the model trains in
    DistributedDataParallel: each rank takes its share of every global batch, and the loss and
    the BatchNorm statistics are the global batch's, so the fit is one process's up to rounding.
    """
    model.to(device)
    trained = distributed.wrap(model, device)  # the model itself in one process
    ranks = distributed.world()
    opt = make_optimizer(model, cfg, device)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr
    )
    gen = torch.Generator().manual_seed(seed)
    n = len(train)
    sched = schedule(cfg, n)
    distributed.check_batch(sched.batch)
    warmup_steps, total_steps = sched.warmup_steps, sched.steps
    cols = torch.tensor(columns)
    best, best_epoch, best_state, stale = -float("inf"), 0, None, 0
    best_preds: list[np.ndarray] | None = None  # the best epoch's val predictions
    history: list[dict] = []
    frames, t_train, step = 0, 0.0, 0
    stopped = False
    done = 0 if resume is None else resume.epoch
    if resume is not None:
        _restore(resume, model, opt, plateau, label)
        best, best_epoch, best_state, stale = (resume.best, resume.best_epoch, resume.best_state,
                                               resume.stale)
        history, frames, t_train, step = (list(resume.history), resume.frames, resume.seconds,
                                          resume.step)
        restore_rng(resume.rng, device)
    distributed.own_stream(seed, done)  # ranks > 0: dropout masks of their own
    for epoch, batches in enumerate(_epoch_batches(sched, n, gen), start=1):
        if epoch <= done:  # drawn and dropped: the batch order goes on where it stopped
            continue
        model.train()
        t0 = time.perf_counter()
        losses = []
        for i, idx in enumerate(batches, start=1):
            if step < warmup_steps:
                set_lr(opt, cfg.lr * (step + 1) / warmup_steps)
            elif cfg.schedule == "cosine":
                set_lr(opt, cosine_lr(cfg, step - warmup_steps, total_steps - warmup_steps))
            # read on the windows' CPU mask: no device sync, and no transfer of a batch
            # that does not train
            # decided on the global batch: every rank skips or trains it alike (in lockstep)
            if not _learnable(train.valid[idx], cfg.loss == "window") or len(idx) < ranks:
                # no window with 2 valid frames: the loss is a constant, and an optimiser
                # step would still move the weights by Adam's momentum. The schedule still
                # counts the batch, so warm-up and cosine end where they were planned.
                step += 1
                if on_step is not None:
                    on_step(StepEnd(label, epoch, i, len(batches), None))
                continue
            loss = batch_loss(trained, train, idx, cols, cfg, seed, step, device)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            losses.append(float(loss.detach()))
            # frames trained on, the global batch's (read on the CPU masks): the labelled
            # frames, or at sequence level the windows' frames
            frames += int((train.valid if train.level == "frame" else train.present)[idx].sum())
            step += 1
            if on_step is not None:
                on_step(StepEnd(label, epoch, i, len(batches), losses[-1]))
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
        val_preds = predict(model, val, val_videos, device)
        val_scores = score(val_preds, val_videos, targets, columns)
        v = val_scores["mean"]
        lr = opt.param_groups[0]["lr"]
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val": val_scores, "lr": lr,
                        "step": step})
        if v > best:
            best, best_epoch, stale = v, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
            best_preds = val_preds
        else:
            stale += 1
        if epoch > cfg.warmup_epochs and cfg.schedule == "plateau":
            plateau.step(v)
        stop = bool(cfg.early_stop_patience) and stale >= cfg.early_stop_patience  # 0: never
        if on_checkpoint is not None and not stop and epoch < sched.epochs:
            # after validation and every decision on it: a resumed fit starts the next epoch
            on_checkpoint(FitState(epoch, model.state_dict(), opt.state_dict(),
                                   plateau.state_dict(), capture_rng(device), best, best_epoch,
                                   best_state, stale, history, step, frames, t_train))
        if on_epoch is not None:
            on_epoch(EpochEnd(label, epoch, sched.epochs, float(np.mean(losses)), val_scores, lr,
                              best, best_epoch, t_epoch))
        if stop:
            stopped = epoch < sched.epochs
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(best, best_epoch, len(history), t_train, frames / max(t_train, 1e-9), history,
                     step, sched.epochs, stopped, done, best_preds)


def _restore(state: FitState, model: torch.nn.Module, opt: torch.optim.Optimizer, plateau,
             label: str) -> None:
    """Load a checkpoint's weights, optimizer and scheduler state; one line if they do not fit."""
    try:
        model.load_state_dict(state.model)
        opt.load_state_dict(state.optimizer)
        plateau.load_state_dict(state.plateau)
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        raise DataError(f"{label}: its checkpoint does not fit the model ({error_line(e)}); run "
                        "again with --restart to train from the start") from None


class TrainingLengthWarning(UserWarning):
    """The validation history says the training length does not fit the data."""


def fit_warnings(res: FitResult, cfg: TrainConfig, label: str = "train") -> list[dict]:
    """What the validation history of ``res`` says about the training length, as
    ``{"model", "kind", "message"}`` dicts (none when it says nothing):

    * ``under-trained``: the best epoch was the last of two or more, the fit ran its whole
      budget: validation was still improving when training stopped;
    * ``over-fitting``: the best epoch was in the first quarter of four or more epochs run
      (best_epoch ≤ epochs // 4): validation peaked early and then got worse.
    """
    length = "train.steps" if cfg.epochs == 0 else "train.epochs"
    now = cfg.steps if cfg.epochs == 0 else cfg.epochs
    where = f"{label}: the best validation epoch was {res.best_epoch} of {res.epochs}"
    if res.epochs >= 2 and res.best_epoch == res.epochs:
        return [{"model": label, "kind": "under-trained",
                 "message": f"{where} (the last): still improving when training stopped; "
                            f"raise {length} (now {now})"}]
    if res.epochs >= 4 and res.best_epoch <= res.epochs // 4:
        # stopped early, the steps after the peak were not run: only a slower fit can help
        shorter = "" if res.stopped_early else f"lower {length} (now {now}) or "
        return [{"model": label, "kind": "over-fitting",
                 "message": f"{where}: validation peaked early and then fell (over-fitting"
                            f"{'; early stopping ended the fit' if res.stopped_early else ''}); "
                            f"{shorter}lower train.lr ({cfg.lr:g}), or raise "
                            f"train.weight_decay ({cfg.weight_decay:g})"}]
    return []
