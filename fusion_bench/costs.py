"""What a model costs: parameters and FLOPs per window.

FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode` on a CPU copy of the
model, one window through it (or on a meta-device copy, where nothing is computed). Imports
nothing of fusion_bench (the floor).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator

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


@contextlib.contextmanager
def _counted_kernels() -> Iterator[None]:
    """CPU kernels that FlopCounterMode can see, for a count equal to the meta device's: oneDNN off
    (its LSTM is one ``mkldnn_rnn_layer``, which the counter does not count), attention in
    SDPA's math form (the fused CPU kernel is not counted) and nn.MultiheadAttention's inference
    fast path off (``_native_multi_head_attention``, not counted either); the CPU random state
    (dropout in the train pass) is restored after."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=[]))
        with warnings.catch_warnings():  # setting the flags warns of TF32 on Intel GPUs
            warnings.simplefilter("ignore", UserWarning)
            stack.enter_context(torch.backends.mkldnn.flags(enabled=False))
        stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        stack.callback(torch.backends.mha.set_fastpath_enabled,
                       torch.backends.mha.get_fastpath_enabled())
        torch.backends.mha.set_fastpath_enabled(False)
        yield


def count_flops(module: torch.nn.Module, feats: dict, masks: dict,
                inputs_require_grad: bool = False, device: str = "cpu") -> dict:
    """FLOPs for ``module(feats, masks)`` as FlopCounterMode counts them (matmuls, convolutions,
    attention: 2 per multiply-add; elementwise ops are not counted).

    ``inference``: one forward in eval mode without grad; ``train``: forward and backward in train
    mode (the loss is a sum of squares, which the counter does not count; with
    ``inputs_require_grad`` the backward pass includes the inputs' gradients, as for a fusion
    inside the model). ``by_part``: the inference count per child module (encoders, norms,
    fusion, head) where the counter attributes it.

    Counted on a copy of ``module``: on the CPU (``device="cpu"``, pass one window) with the
    kernels of :func:`_counted_kernels`, or on the meta device, where nothing is computed but
    every operator runs through Python decompositions. The counts are the same (tested for
    every built-in encoder and fusion); the CPU count is 2× faster for the default RCMA model and
    5-7× for LSTM ones (1 s against 4-8 s). ``module`` itself, its BatchNorm statistics and the
    random state are left as they were.
    """
    with _counted_kernels() if device == "cpu" else contextlib.nullcontext():
        return _count(module, feats, masks, inputs_require_grad, device)


def _count(module: torch.nn.Module, feats: dict, masks: dict, inputs_require_grad: bool,
           device: str) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(module).to(device)
    mf = {m: x.detach().to(device).requires_grad_(inputs_require_grad) for m, x in feats.items()}
    mk = {m: x.to(device) for m, x in masks.items()}
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(mf, mk)
    inference = counter.get_total_flops()
    # keys are module paths ("FusionModel.encoders.visual.net.0.conv1", ...), each counting its
    # whole subtree; a container that is never called itself (a ModuleDict) has no key, so each
    # part sums its shallowest keys
    root = type(model).__name__
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
    model.train()
    with FlopCounterMode(display=False) as counter:
        out = model(mf, mk)
        if out.requires_grad:  # else nothing to differentiate (no parameters, no input grads)
            out.float().square().mean().backward()
    return {"inference": int(inference), "train": int(counter.get_total_flops()),
            "by_part": by_part}
