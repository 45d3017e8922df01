"""Concat: per-frame concatenation of the encoded modalities (the no-interaction baseline)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fusion_bench.fusions._masking import apply_mask, check_dims, check_feats


class Concat(nn.Module):
    """``{m: (B, L, d_m)}`` -> ``(B, L, sum(dims))`` in ``dims`` order; missing frames are zero.

    No parameters: any interaction between modalities is left to the shared head.
    """

    description = "per-frame concatenation of the encoded modalities (no parameters)"
    reference = ""

    def __init__(self, dims: dict[str, int], seq_len: int):
        super().__init__()
        self.dims = check_dims("Concat", dims)
        self.seq_len = seq_len
        self.out_dim = sum(self.dims.values())

    def forward(self, feats: dict[str, Tensor], mask: dict[str, Tensor] | None = None) -> Tensor:
        check_feats("Concat", self.dims, feats)
        masked = apply_mask(feats, mask)
        return torch.cat([masked[m] for m in self.dims], dim=-1)
