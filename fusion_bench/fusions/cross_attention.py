"""Vanilla cross-attention fusion: each modality's frames attend over the other modalities' frames."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fusion_bench.fusions._masking import apply_mask, check_dims, check_feats


class CrossAttention(nn.Module):
    """One pass of scaled dot-product multi-head cross-attention between modalities.

    For each modality m (``dims`` order), with D = ``d_model``:

        P_n = X_n W_n + b_n                          (B, L, D)        every modality projected
        C_m = concat over time of P_n, n != m        (B, (M-1)L, D)   keys and values
        A_m = MultiHead(Q=P_m, K=C_m, V=C_m)         (B, L, D)        softmax over the (M-1)L frames
        Y_m = LayerNorm(P_m + Dropout(A_m))          (B, L, D)

    Output: concat of Y_m per frame, (B, L, M * D). Missing frames are zeroed at the input and
    excluded as keys. A sample whose other modalities are all missing in the window has no key
    to attend to: its A_m is zero (Y_m = LayerNorm(P_m)) instead of the NaN a softmax over
    nothing gives. No positional encoding: the temporal encoders before the fusion carry time.

    Args:
        d_model: common width D the modalities are projected to (default 64).
        heads: attention heads (default 4); must divide ``d_model``.
        dropout: dropout on the attention weights and on A_m (default 0.1).
    """

    description = "vanilla multi-head cross-attention (softmax over time) + residual + LayerNorm"
    reference = "A. Vaswani et al., Attention Is All You Need, NeurIPS 2017"

    def __init__(
        self,
        dims: dict[str, int],
        seq_len: int,
        d_model: int = 64,
        heads: int = 4,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.dims = check_dims("CrossAttention", dims)
        for name, value in (("d_model", d_model), ("heads", heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"CrossAttention option {name} must be a positive int, got {value!r}"
                )
        if d_model % heads:
            raise ValueError(f"CrossAttention option heads={heads} must divide d_model={d_model}")
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, (int, float))
            or not 0 <= dropout < 1
        ):
            raise ValueError(
                f"CrossAttention option dropout must be a number in [0, 1), got {dropout!r}"
            )
        self.seq_len = seq_len
        self.dropout = float(dropout)
        self.proj = nn.ModuleDict({m: nn.Linear(d, d_model) for m, d in self.dims.items()})
        self.attn = nn.ModuleDict(
            {
                m: nn.MultiheadAttention(d_model, heads, dropout=self.dropout, batch_first=True)
                for m in self.dims
            }
        )
        self.norm = nn.ModuleDict({m: nn.LayerNorm(d_model) for m in self.dims})
        self.out_dim = len(self.dims) * d_model

    def forward(self, feats: dict[str, Tensor], mask: dict[str, Tensor] | None = None) -> Tensor:
        batch, length = check_feats("CrossAttention", self.dims, feats)
        masked = apply_mask(feats, mask)
        projected = {m: self.proj[m](masked[m]) for m in self.dims}
        valid = None
        if mask is not None:
            device = next(iter(feats.values())).device
            everywhere = torch.ones(batch, length, dtype=torch.bool, device=device)
            valid = {m: mask.get(m, everywhere) for m in self.dims}
        outs = []
        for m in self.dims:
            others = [n for n in self.dims if n != m]
            context = torch.cat([projected[n] for n in others], dim=1)
            padding, has_key = None, None
            if valid is not None:
                key_valid = torch.cat([valid[n] for n in others], dim=1)  # (B, (M-1)L)
                has_key = key_valid.any(dim=1)  # (B,)
                # No valid key at all: unmask every key so the softmax stays finite; the result
                # is zeroed below, so the (zeroed) masked values cannot reach the output.
                padding = ~(key_valid | ~has_key.unsqueeze(1))
            attended, _ = self.attn[m](
                projected[m], context, context, key_padding_mask=padding, need_weights=False
            )
            if has_key is not None:
                attended = attended * has_key.to(attended.dtype)[:, None, None]
            attended = F.dropout(attended, self.dropout, self.training)
            outs.append(self.norm[m](projected[m] + attended))
        return torch.cat(outs, dim=-1)
