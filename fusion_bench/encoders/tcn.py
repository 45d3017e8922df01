"""Temporal convolutional network (Bai et al., 2018), the per-modality encoder of the RCMA paper."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

from ..dropout import Dropout


def _conv(conv: nn.Conv1d, x: torch.Tensor, left: int, right: int,
          frames_last: bool) -> torch.Tensor:
    """``conv`` over time of ``x`` padded by ``left``/``right`` frames.

    ``frames_last=False``: ``x`` is (B, L, C), which viewed as (B, C, 1, L) is the channels-last
    layout of a 2-d convolution, with no transposes. ``frames_last=True``: ``x`` is (B, C, L),
    Conv1d's layout. Same weights and function either way; TCN.forward picks the faster.
    """
    if frames_last:
        return conv(F.pad(x, (left, right)))
    x = F.pad(x, (0, 0, left, right))
    y = F.conv2d(x.permute(0, 2, 1).unsqueeze(2), conv.weight.unsqueeze(2), conv.bias,
                 dilation=(1, conv.dilation[0]))
    return y.squeeze(2).permute(0, 2, 1)


class _Block(nn.Module):
    """Two dilated (causal) convolutions with LeakyReLU and dropout, plus a residual;
    (B, L, c_in) -> (B, L, c_out), or (B, c_in, L) -> (B, c_out, L) with ``frames_last``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, dropout: float,
                 causal: bool, weight_norm: bool):
        super().__init__()
        wn = _weight_norm if weight_norm else (lambda m: m)
        pad = (kernel - 1) * dilation
        # causal: all padding on the left so frame t sees only frames ≤ t
        self.left = pad if causal else pad // 2
        self.right = pad - self.left
        self.conv1 = wn(nn.Conv1d(c_in, c_out, kernel, dilation=dilation))
        self.conv2 = wn(nn.Conv1d(c_out, c_out, kernel, dilation=dilation))
        self.act = nn.LeakyReLU()
        self.drop = Dropout(dropout)  # nn.Dropout, with a cheaper mask on CPU
        self.down = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor, frames_last: bool = False) -> torch.Tensor:
        y = self.drop(self.act(_conv(self.conv1, x, self.left, self.right, frames_last)))
        y = self.drop(self.act(_conv(self.conv2, y, self.left, self.right, frames_last)))
        if self.down is None:
            res = x
        elif frames_last:
            res = self.down(x)
        else:  # the 1×1 convolution is a Linear over the channels of each frame
            res = F.linear(x, self.down.weight[..., 0], self.down.bias)
        return self.act(y + res)


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
        # oneDNN's channels-last 2-d convolutions (see _conv) beat Conv1d over (B, C, L) on CPU at
        # small widths (training step of one TCN, 2 cores: 32 channels 10-20 % faster, 64: 6 %),
        # tie at 128 and lose at the paper's 256-512 (5-15 % slower); GPUs get cuDNN's Conv1d.
        frames_last = not (x.device.type == "cpu" and self.out_dim <= 128)
        h = x.transpose(1, 2) if frames_last else x
        for block in self.net:
            h = block(h, frames_last)
        return h.transpose(1, 2) if frames_last else h
