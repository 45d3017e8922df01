"""The straightforward transcription of DESIGN §5 computes what the real RCMA computes."""

from __future__ import annotations

import pytest
import torch

from fusion_bench.fusions.rcma import RCMA
from fusion_bench.testing import make_inputs

from .conftest import PAPER_DIMS, SEQ_LEN
from .reference_rcma import ReferenceRCMA

SMALL = {"visual": 6, "audio": 4, "text": 5}


def pair(dims, seq_len, **options):
    torch.manual_seed(0)
    real = RCMA(dims, seq_len, **options)
    reference = ReferenceRCMA(dims, seq_len, **options)
    reference.load_state_dict(real.state_dict())  # same names and shapes: an exact copy
    return real, reference


@pytest.mark.parametrize("options", [{}, {"joint": "all"}, {"iterations": 3}])
@pytest.mark.parametrize("seq_len", [3, 8])  # 8 > d_m: the real RCMA reassociates the query
def test_same_output_and_gradients_small(options, seq_len):
    real, reference = pair(SMALL, seq_len, dropout=0.0, **options)
    real.double(), reference.double()
    feats, mask = make_inputs(SMALL, batch=3, seq_len=seq_len)
    outs, grads = [], []
    for module in (real, reference):
        x = {m: f.double().requires_grad_() for m, f in feats.items()}
        out = module(x, mask)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        outs.append(out.detach())
        grads.append([p.grad for p in module.parameters()] + [x[m].grad for m in SMALL])
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-10, atol=1e-10)
    for g_real, g_ref in zip(*grads, strict=True):
        torch.testing.assert_close(g_real, g_ref, rtol=1e-9, atol=1e-9)


def test_same_output_at_paper_shapes():
    real, reference = pair(PAPER_DIMS, SEQ_LEN)
    feats, mask = make_inputs(PAPER_DIMS, batch=2, seq_len=SEQ_LEN)
    with torch.no_grad():
        out, expected = real.eval()(feats, mask), reference.eval()(feats, mask)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
