"""One run on several processes (``torchrun --nproc-per-node N -m fusion_bench run ...``):
DistributedDataParallel through the one training loop, :func:`fusion_bench.train.fit`.

How the work splits, and why the result is one process's up to rounding:

* **Batches.** Every rank draws the same batch order from the run's seed (the same generator
  one process uses) and takes a disjoint share of each global batch, ``idx[rank::world]``
  (:func:`shard`). The global batch size, the number of optimizer steps, the warm-up and the
  learning-rate schedule are one process's. A global batch smaller than ``world`` would leave
  a rank nothing, so every rank skips it (only the last batch of a pass in epochs mode, with
  more than two ranks, can be that small).
* **The loss.** The CCC loss of a global batch is computed from sums added up across ranks
  (:func:`sum_across`, differentiable): pooled over the batch's frames (``train.loss=batch``),
  its means, variances and covariance are the global batch's; per window (``window``), the
  mean over all its windows. Every rank holds the global batch's loss; its gradient reaches
  each rank's share world times (the sum's backward adds the ranks' gradients), and DDP's
  average divides by world: the gradient of the global batch, as one process computes it.
* **BatchNorm.** :class:`fusion_bench.model.MaskedBatchNorm` normalises with the global batch's
  statistics (its sums added up across ranks, as SyncBatchNorm does, which works on gloo), so
  batch statistics and running statistics are one process's, not each rank's share's.
* **Validation** runs on every rank over the whole validation split: no communication, and the
  same weights give every rank the same scores, so the plateau and early-stopping decisions
  agree. Test prediction likewise; rank 0 alone writes the record, the checkpoint and the
  epochs CSV (:func:`is_main`).

What differs from one process: dropout masks, which each rank draws for its share from a
stream of its own (:func:`own_stream`), not one process's masks for the whole batch; and the
order of floating-point additions (sums of shares, then across ranks). Without dropout the
two agree to rounding (measured: ``scripts/scale_table.py``); with it, as two seeds' dropout
draws differ. A loss or a plugin that is not one of these (a fusion with its own
batch statistics) sees only its rank's share.

The loss and BatchNorm sums use a process group of their own, so their collectives never
interleave with DDP's gradient buckets.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import warnings
from collections.abc import Iterator

import torch

from .errors import ConfigError
from .launch import env_world

_SUMS: object | None = None  # the process group of the loss and BatchNorm sums
_LOCKSTEP = False  # True while fit trains: every rank runs the same forward passes


def active() -> bool:
    """Whether this process is one of several ranks of a run (a process group is up)."""
    return (torch.distributed.is_available() and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1)


def rank() -> int:
    return torch.distributed.get_rank() if active() else 0


def world() -> int:
    return torch.distributed.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process writes (rank 0, or the only process)."""
    return rank() == 0


def init(device: torch.device) -> torch.device:
    """Join torchrun's process group (gloo on CPU, nccl on CUDA) when ``WORLD_SIZE`` > 1 and
    return the device this rank computes on (``cuda:LOCAL_RANK`` for a CUDA run); without
    torchrun, ``device`` as it is."""
    global _SUMS
    if env_world() <= 1:
        return device
    if not torch.distributed.is_available():
        raise ConfigError("torchrun started several processes, but this torch has no "
                          "torch.distributed; run without torchrun")
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ConfigError(f"torchrun rank {local} has no GPU of its own "
                              f"({torch.cuda.device_count()} visible); lower --nproc-per-node")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                             timeout=datetime.timedelta(minutes=30))
    if _SUMS is None:  # every rank creates it, once (a collective call)
        _SUMS = torch.distributed.new_group(backend="gloo" if device.type == "cpu" else None)
    return device


def close() -> None:
    """Leave the process group (a no-op without one)."""
    global _SUMS
    if active():
        torch.distributed.destroy_process_group()
    _SUMS = None


def shard(idx: torch.Tensor) -> torch.Tensor:
    """This rank's share of the global batch ``idx`` (all of it in one process)."""
    return idx[rank()::world()] if active() else idx


def check_batch(batch: int) -> None:
    """Every rank needs a share of each global batch of ``batch`` windows."""
    if world() > batch:
        raise ConfigError(f"train.batch_size is {batch} windows (as the data allows), fewer than "
                          f"the {world()} torchrun processes, each of which needs a share; raise "
                          "train.batch_size or lower --nproc-per-node")


def sum_across(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the ranks, differentiably (its backward sums the ranks' gradients);
    ``t`` itself outside :func:`lockstep` or in one process."""
    if not (_LOCKSTEP and active()):
        return t
    from torch.distributed.nn.functional import all_reduce

    with warnings.catch_warnings():  # its deprecation names a private successor: not for us yet
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(t, group=_SUMS)


def summing() -> bool:
    """Whether :func:`sum_across` communicates now (several ranks, training in lockstep)."""
    return _LOCKSTEP and active()


@contextlib.contextmanager
def lockstep() -> Iterator[None]:
    """While training: the loss and BatchNorm add their sums up across ranks."""
    global _LOCKSTEP
    before, _LOCKSTEP = _LOCKSTEP, True
    try:
        yield
    finally:
        _LOCKSTEP = before


def own_stream(seed: int, epoch: int) -> None:
    """Give ranks other than 0 random streams of their own (dropout masks), from the run's seed,
    the rank and the epoch training starts at: seeded alike, every rank would drop the same
    positions of its share. Rank 0 keeps one process's stream."""
    if active() and rank() > 0:
        torch.manual_seed(seed + 1_000_003 * rank() + 7919 * epoch)


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when several ranks train it, else itself.
    Buffers are not broadcast: the synchronised BatchNorm keeps them equal on every rank. A
    static graph: the same parameters take part in every step (a plugin may leave some unused)."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    with warnings.catch_warnings():  # broadcast_buffers=False is what its deprecation advises
        warnings.simplefilter("ignore", FutureWarning)  # keeping until init_sync_buffers exists
        return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda"
                                       else None, broadcast_buffers=False, static_graph=True)


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. opening a checkpoint, which may set it aside); the
    other ranks wait, then run it (reading what rank 0 left)."""
    if not active():
        yield
        return
    if not is_main():
        torch.distributed.barrier()
    yield
    if is_main():
        torch.distributed.barrier()
