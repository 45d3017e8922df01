"""The null temporal encoder."""

from __future__ import annotations

import torch
from torch import nn


class Identity(nn.Module):
    """No temporal encoding: features go to the fusion as they are."""

    description = "no temporal encoder (features passed through)"
    reference = ""

    def __init__(self, in_dim: int):
        super().__init__()
        self.out_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
