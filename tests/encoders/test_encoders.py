"""Temporal encoders: causality and the TCN's receptive field (shapes of every encoder: tests/test_contracts.py)."""

import pytest
import torch

from fusion_bench.encoders.lstm import LSTMEncoder
from fusion_bench.encoders.tcn import TCN


def reach(enc, length=80, t=60):
    """Input frames whose change moves output frame t (eval mode: no dropout)."""
    enc.eval()
    x = torch.randn(1, length, 3, requires_grad=True)
    enc(x)[0, t].sum().backward()
    return set(torch.nonzero(x.grad[0].abs().sum(-1) > 0).flatten().tolist())


@pytest.mark.parametrize("levels,kernel", [(1, 3), (3, 5), (4, 5)])
def test_causal_tcn_sees_exactly_its_receptive_field_into_the_past(levels, kernel):
    torch.manual_seed(0)
    tcn = TCN(3, channels=4, levels=levels, kernel=kernel, causal=True)
    rf = 1 + 2 * (kernel - 1) * (2**levels - 1)  # the docstring's formula
    t = rf + 5  # far enough from the start that the left padding is not reached
    seen = reach(tcn, length=t + 10, t=t)
    assert max(seen) == t  # nothing from the future
    assert min(seen) == t - (rf - 1)  # and the whole receptive field of the past


def test_non_causal_tcn_also_sees_the_future():
    torch.manual_seed(0)
    seen = reach(TCN(3, channels=4, levels=2, kernel=3, causal=False), t=40)
    assert max(seen) > 40 and min(seen) < 40


def test_unidirectional_lstm_is_causal_and_bidirectional_is_not():
    torch.manual_seed(0)
    assert max(reach(LSTMEncoder(3, channels=5), t=30)) == 30
    bi = LSTMEncoder(3, channels=5, bidirectional=True)
    assert bi.out_dim == 10 and max(reach(bi, t=30)) == 79


@pytest.mark.parametrize("causal,weight_norm,kernel", [(True, False, 3), (False, True, 2),
                                                       (False, False, 5)])
def test_tcn_computes_the_conv1d_stack_it_holds(causal, weight_norm, kernel):
    """A narrow TCN on CPU runs its Conv1d weights as channels-last 2-d convolutions over
    (B, L, C); wide ones and GPUs as Conv1d over (B, C, L) (here: blocks called with
    frames_last=True). Both are the plain Conv1d computation with the same padding (an odd
    total padding, kernel 2, splits unevenly when not causal), forward and backward."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    tcn = TCN(5, channels=6, levels=3, kernel=kernel, causal=causal, weight_norm=weight_norm).eval()
    x = torch.randn(2, 30, 5, requires_grad=True)

    def reference(x):
        h = x.transpose(1, 2)
        for block in tcn.net:
            pad = (block.conv1.kernel_size[0] - 1) * block.conv1.dilation[0]
            left = pad if causal else pad // 2

            def conv(c, z, left=left, pad=pad):
                return c(F.pad(z, (left, pad - left)))

            y = F.leaky_relu(conv(block.conv2, F.leaky_relu(conv(block.conv1, h))))
            h = F.leaky_relu(y + (h if block.down is None else block.down(h)))
        return h.transpose(1, 2)

    def frames_last(x):
        h = x.transpose(1, 2)
        for block in tcn.net:
            h = block(h, frames_last=True)
        return h.transpose(1, 2)

    want = reference(x)
    (want_grad,) = torch.autograd.grad(want.square().sum(), x)
    for got in (tcn(x), frames_last(x)):
        assert got.shape == (2, 30, 6)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        (grad,) = torch.autograd.grad(got.square().sum(), x)
        torch.testing.assert_close(grad, want_grad, rtol=1e-4, atol=1e-5)
