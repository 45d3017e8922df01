"""What a model costs: parameters and FLOPs per window.

FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode` on a meta-device copy,
so nothing is computed. Imports nothing of fusion_bench (the floor).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def count_parameters(model: nn.Module, trainable_only: bool = True) -> dict[str, int]:
    """Parameters (trainable ones by default): total and split into encoders (with their norms)
    / fusion / head, read from the model's ``encoders``, ``norms``, ``fusion`` and ``head``
    (:class:`fusion_bench.model.FusionModel`); a part the model lacks counts 0."""
    def n(mod):
        if mod is None:
            return 0
        return sum(p.numel() for p in mod.parameters() if p.requires_grad or not trainable_only)

    def part(name):
        return n(getattr(model, name, None))

    enc = part("encoders") + part("norms")
    fus, head = part("fusion"), part("head")
    return {"total": enc + fus + head, "encoders": enc, "fusion": fus, "head": head}


def parameter_counts(model) -> dict:
    """Parameters, total and trainable, of the whole model and of its encoders (with their
    BatchNorms) / fusion / head; the three parts add up to the whole."""

    every, trainable = count_parameters(model, trainable_only=False), count_parameters(model)
    split = {part: {"total": every[part], "trainable": trainable[part]}
             for part in ("encoders", "fusion", "head")}
    return {"total": every["total"], "trainable": trainable["total"], "split": split}


def count_flops(module: torch.nn.Module, feats: dict, masks: dict,
                inputs_require_grad: bool = False) -> dict:
    """FLOPs for ``module(feats, masks)`` as FlopCounterMode counts them (matmuls, convolutions,
    attention: 2 per multiply-add; elementwise ops are not counted).

    ``inference``: one forward in eval mode without grad; ``train``: forward and backward in train
    mode (the loss is a sum of squares, which the counter does not count; with
    ``inputs_require_grad`` the backward pass includes the inputs' gradients, as for a fusion
    inside the model). Counted on a
    meta-device copy, so nothing is computed. ``by_part``: the inference count per child module
    (encoders, norms, fusion, head) where the counter attributes it.
    """
    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(module).to("meta")
    mf = {m: x.to("meta").requires_grad_(inputs_require_grad) for m, x in feats.items()}
    mk = {m: x.to("meta") for m, x in masks.items()}
    meta.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(mf, mk)
    inference = counter.get_total_flops()
    # keys are module paths ("FusionModel.encoders.visual.net.0.conv1", ...), each counting its
    # whole subtree; a container that is never called itself (a ModuleDict) has no key, so each
    # part sums its shallowest keys
    root = type(meta).__name__
    depth: dict[str, int] = {}
    for name in counter.get_flop_counts():
        parts = name.split(".")
        if len(parts) >= 2 and parts[0] == root:
            depth[parts[1]] = min(depth.get(parts[1], len(parts)), len(parts))
    by_part = {part: 0 for part in depth}
    for name, ops in counter.get_flop_counts().items():
        parts = name.split(".")
        if len(parts) >= 2 and parts[0] == root and len(parts) == depth[parts[1]]:
            by_part[parts[1]] += sum(ops.values())
    meta.train()
    with FlopCounterMode(display=False) as counter:
        out = meta(mf, mk)
        if out.requires_grad:  # else nothing to differentiate (no parameters, no input grads)
            out.float().square().mean().backward()
    return {"inference": int(inference), "train": int(counter.get_total_flops()),
            "by_part": by_part}
