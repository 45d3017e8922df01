"""Temporal convolutional network (Bai et al., 2018), the per-modality encoder of the RCMA paper."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

from ..dropout import Dropout


class _Block(nn.Module):
    """Two dilated (causal) convolutions with LeakyReLU and dropout, plus a residual."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, dropout: float,
                 causal: bool, weight_norm: bool):
        super().__init__()
        wn = _weight_norm if weight_norm else (lambda m: m)
        self.pad = (kernel - 1) * dilation
        self.causal = causal
        self.conv1 = wn(nn.Conv1d(c_in, c_out, kernel, dilation=dilation))
        self.conv2 = wn(nn.Conv1d(c_out, c_out, kernel, dilation=dilation))
        self.act = nn.LeakyReLU()
        self.drop = Dropout(dropout)  # nn.Dropout, with a cheaper mask on CPU
        self.down = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        # causal: all padding on the left so frame t sees only frames ≤ t
        left = self.pad if self.causal else self.pad // 2
        return nn.functional.pad(x, (left, self.pad - left))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, L)
        y = self.drop(self.act(self.conv1(self._pad(x))))
        y = self.drop(self.act(self.conv2(self._pad(y))))
        return self.act(y + self.down(x))


class TCN(nn.Module):
    """Stack of residual dilated-convolution blocks, dilation 2^i at level i.

    ``(B, L, in_dim) -> (B, L, channels)``; receptive field 1 + 2 (kernel − 1)(2^levels − 1) frames.
    The paper's setting: levels 4, kernel 5, dropout 0.1, causal, weight-normed.
    """

    description = "temporal convolutional network (dilated residual conv blocks)"
    reference = "Bai, Kolter & Koltun, arXiv 1803.01271 (2018)"

    def __init__(self, in_dim: int, channels: int = 32, levels: int = 3, kernel: int = 5,
                 dropout: float = 0.1, causal: bool = True, weight_norm: bool = False):
        super().__init__()
        if channels <= 0 or levels <= 0 or kernel <= 0:
            raise ValueError("tcn: channels, levels and kernel must be positive")
        dims = [in_dim] + [channels] * levels
        self.net = nn.Sequential(*[
            _Block(dims[i], dims[i + 1], kernel, 2**i, dropout, causal, weight_norm)
            for i in range(levels)
        ])
        self.out_dim = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2)).transpose(1, 2)
