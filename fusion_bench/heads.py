"""The shared regression head: the same for every fusion so only the fusion differs."""

from __future__ import annotations

import torch
from torch import nn


class RegressionHead(nn.Module):
    """``(B, L, in_dim) -> (B, L, n_targets)`` in [-1, 1].

    ``hidden = 0`` is the paper's head, Linear(in_dim → n_targets) + tanh; ``hidden > 0`` adds one
    hidden layer (Linear, ReLU, dropout) before it.
    """

    def __init__(self, in_dim: int, n_targets: int, hidden: int = 0, dropout: float = 0.0):
        super().__init__()
        self.net: nn.Module
        if hidden > 0:
            self.net = nn.Sequential(
                nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_targets)
            )
        else:
            self.net = nn.Linear(in_dim, n_targets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(x))
