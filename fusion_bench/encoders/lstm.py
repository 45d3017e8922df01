"""Recurrent temporal encoder."""

from __future__ import annotations

import torch
from torch import nn


class LSTMEncoder(nn.Module):
    """Uni- or bidirectional LSTM over the window: ``(B, L, in_dim) -> (B, L, out_dim)``.

    ``out_dim = hidden * (2 if bidirectional else 1)``. Unidirectional by default, so the encoder
    is causal like the TCN.
    """

    description = "LSTM over time (causal unless bidirectional)"
    reference = "Hochreiter & Schmidhuber, Neural Computation (1997)"

    def __init__(self, in_dim: int, channels: int = 32, layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0):
        super().__init__()
        self.lstm = nn.LSTM(in_dim, channels, num_layers=layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        self.out_dim = channels * (2 if bidirectional else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]

