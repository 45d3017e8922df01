"""tanh that is cheaper on CPU when nothing is differentiated: ``tanh(x) = 2·σ(2x) − 1``.

torch's CPU tanh (Sleef's ``tanhf8_u10`` under AVX2) costs ~3.5× its sigmoid: over 1M float32
values on a 2-core AMD EPYC, 2.2 ms against 0.64 ms. Through the sigmoid, with the scaling and
the shift as in-place passes, a (256, 64, 64) tensor costs 0.81 ms against 1.79 ms. Prediction
(validation every epoch, the test split, every robustness condition) runs the quick RCMA in
batches of 256 windows, where torch.tanh was ~23 % of the forward pass; the whole forward is
~6 % faster this way (same process, alternating, 20 pairs).

Only where autograd records nothing (``torch.no_grad``, or an input without grad): a training
step keeps torch.tanh, because an autograd Function around this costs more in Python than the
sigmoid saves at training batch sizes (measured: a slower step), and training stays bit for bit
what it was.

Accuracy: the absolute error against float64 tanh is at most ~2e-7 over [-20, 20] and down to
|x| = 1e-30 (torch.tanh: ~5e-8): the sigmoid's rounding near 0.5 is ~6e-8, doubled. So the
*relative* error is large where |tanh(x)| ≪ 1e-6: exact 0 maps to exact 0, but 1e-9 may come
out as 0 or ±1.2e-7. Every caller here feeds the result into sums of O(1) terms or scores it
against labels, where that is below float32 rounding; it is not a general tanh for tiny values.
On other devices, other dtypes (bf16 under autocast) and inside a compiled graph it is
torch.tanh.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _fast(x: Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32
            and not (x.requires_grad and torch.is_grad_enabled())
            and not torch.compiler.is_compiling())


def tanh(x: Tensor) -> Tensor:
    """``torch.tanh(x)``; without autograd on CPU float32, through the sigmoid (module docstring)."""
    return torch.sigmoid_(x * 2.0).mul_(2.0).sub_(1.0) if _fast(x) else torch.tanh(x)


def tanh_(x: Tensor) -> Tensor:
    """``torch.tanh_(x)`` (in place); without autograd on CPU float32, through the sigmoid."""
    return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0) if _fast(x) else torch.tanh_(x)
