"""The timed workload: the run configuration's model (or its fusion alone) built through the
run path's model builder, random inputs of the configured shapes, and one inference or
training step as the trainer takes it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch

from ..config import RunConfig
from ..errors import ConfigError
from ..protocols import Encoder
from .settings import SCOPES

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Workload:
    """The timed module, its inputs' widths and its loss; built by :func:`build_workload`."""

    model: torch.nn.Module  # the FusionModel (parameters are counted on it)
    timed: torch.nn.Module  # what is called: the model, the fusion, or a compiled wrapper of one
    dims: dict[str, int]  # input widths of ``timed``
    n_targets: int
    loss: str  # "window" | "batch" (the run's CCC loss) | "square" (fusion alone)


def input_dims(cfg: RunConfig, registry) -> dict[str, int]:
    """Raw feature widths per modality, from the dataset plugin."""
    from ..preflight import open_dataset  # the run path's: one way to build a dataset plugin

    return dict(open_dataset(registry, cfg).dims)


def build_workload(cfg: RunConfig, registry, scope: str = "model") -> Workload:
    from ..data import dataset_targets
    from ..model import build_model
    from ..preflight import open_dataset

    if scope not in SCOPES:
        raise ConfigError(f"unknown bench scope {scope!r}; use one of {', '.join(SCOPES)}")
    ds = open_dataset(registry, cfg)
    dims = dict(ds.dims)
    n_targets = 1 if cfg.model.per_target else len(dataset_targets(ds))
    model, _ = build_model(registry, cfg, dims, n_targets)
    if scope == "fusion":
        if model.fusion is None:
            raise ConfigError("--scope fusion needs two or more modalities (there is no fusion)")
        # nn.ModuleDict types its items nn.Module; every encoder has out_dim (protocols.Encoder)
        enc = {m: int(cast(Encoder, e).out_dim) for m, e in model.encoders.items()}
        return Workload(model, model.fusion, enc, n_targets, "square")
    return Workload(model, model, dims, n_targets, cfg.train.loss)


def make_inputs(dims: dict[str, int], batch: int, length: int, n_targets: int,
                device: torch.device, seed: int = 0, requires_grad: bool = False):
    """Random features (B, L, d_m), all-True masks, labels in [-1, 1] and an all-True valid mask.

    ``requires_grad``: the features want gradients, as a fusion's inputs do inside the model
    (they come from the encoders), so that timing the fusion alone includes its input gradients.
    """
    gen = torch.Generator().manual_seed(seed)
    feats = {m: torch.randn(batch, length, d, generator=gen).to(device).requires_grad_(requires_grad)
             for m, d in dims.items()}
    masks = {m: torch.ones(batch, length, dtype=torch.bool, device=device) for m in dims}
    labels = (torch.rand(batch, length, n_targets, generator=gen) * 2 - 1).to(device)
    valid = torch.ones(batch, length, dtype=torch.bool, device=device)
    return feats, masks, labels, valid


def _autocast(device: torch.device, amp: str | None):
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


def _loss(work: Workload, out, labels, valid):
    from ..metrics import ccc_loss

    if work.loss == "square":
        return out.float().square().mean()
    return sum(
        ccc_loss(out[..., j], labels[..., j], valid, per_window=work.loss == "window")
        for j in range(work.n_targets)
    ) / work.n_targets


def infer_step(work: Workload, inputs, device: torch.device, amp: str | None) -> Callable:
    feats, masks, _, _ = inputs

    def step():
        with torch.no_grad(), _autocast(device, amp):
            return work.timed(feats, masks)

    return step


def train_step(work: Workload, inputs, device: torch.device, amp: str | None, cfg: RunConfig,
               optimizer: torch.optim.Optimizer | None, scaler) -> Callable:
    """One step as the trainer takes it: forward, loss, backward, (clip,) optimiser step.
    ``optimizer`` is None for a module without parameters (e.g. concat alone)."""
    feats, masks, labels, valid = inputs
    params = [p for p in work.timed.parameters() if p.requires_grad]

    def step():
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        for x in feats.values():
            x.grad = None
        with _autocast(device, amp):
            out = work.timed(feats, masks)
        loss = _loss(work, out, labels, valid)
        scaler.scale(loss).backward()
        if optimizer is not None:
            if cfg.train.max_grad_norm > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, cfg.train.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
        return loss

    return step
