"""Forward and forward + backward of every registered fusion at the paper's shapes, on CPU.

Run with ``tox -e bench`` (or ``pytest tests/benchmarks -o addopts="" --benchmark-json=out.json``).
Each benchmark records the fusion's FLOPs per window batch in ``extra_info``, so the JSON gives
achieved FLOP/s too. ``rcma_reference`` is the straightforward transcription of DESIGN §5
(:mod:`tests.benchmarks.reference_rcma`), timed beside the real RCMA.
"""

from __future__ import annotations

import pytest
import torch

from fusion_bench.config import PRESET_FUSION_OPTIONS
from fusion_bench.costs import count_flops

from .conftest import PAPER_DIMS, SEQ_LEN
from .reference_rcma import ReferenceRCMA

BUILTIN_FUSIONS = ("concat", "cross_attention", "lstm", "rcma")
ROUNDS = {"forward": 5, "forward_backward": 3}  # a paper-shape RCMA step takes seconds here


def build(registry, name):
    torch.manual_seed(0)
    if name == "rcma_reference":
        return ReferenceRCMA(PAPER_DIMS, SEQ_LEN, **PRESET_FUSION_OPTIONS["paper"]["rcma"])
    options = PRESET_FUSION_OPTIONS["paper"].get(name, {})
    return registry.get("fusions", name).obj(dict(PAPER_DIMS), SEQ_LEN, **options)


@pytest.mark.parametrize("mode", ["forward", "forward_backward"])
@pytest.mark.parametrize("name", [*BUILTIN_FUSIONS, "rcma_reference"])
def test_fusion(benchmark, registry, paper_inputs, name, mode):
    feats, masks = paper_inputs
    fusion = build(registry, name)
    flops = count_flops(fusion, {m: x[:1].detach() for m, x in feats.items()},
                        {m: k[:1] for m, k in masks.items()}, inputs_require_grad=True)
    batch = next(iter(feats.values())).shape[0]
    benchmark.group = mode
    benchmark.extra_info.update({
        "fusion": name, "batch": batch, "seq_len": SEQ_LEN, "dims": PAPER_DIMS,
        "threads": torch.get_num_threads(),
        "flops": batch * flops["inference" if mode == "forward" else "train"],
    })
    if mode == "forward":
        fusion.eval()

        def run():
            with torch.no_grad():
                return fusion(feats, masks)
    else:
        fusion.train()
        params = list(fusion.parameters())

        def run():
            for p in params:
                p.grad = None
            for x in feats.values():
                x.grad = None
            fusion(feats, masks).square().mean().backward()

    benchmark.pedantic(run, rounds=ROUNDS[mode], warmup_rounds=1, iterations=1)
