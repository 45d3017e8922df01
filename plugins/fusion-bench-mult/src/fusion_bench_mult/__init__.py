"""MulT, the Multimodal Transformer (Tsai et al., ACL 2019), as a fusion-bench plugin.

B batch, L frames, M modalities (two or more), d = ``width``, h = ``heads``:

1. Each modality is projected to d (a temporal 1×1 convolution in the paper):
   Z_m = X_m W_m + b_m                                             (B, L, d)
2. Each transformer stack, as the authors' encoder, first scales its inputs by √d and adds
   sinusoidal positions (E = √d·Z + PE), runs pre-norm blocks, and ends with a LayerNorm.
   For every target m and source n ≠ m, a crossmodal stack of ``layers`` blocks reads the
   source's low-level E_n at every layer, starting from Ẑ = E_m:
   Ẑ ← Ẑ + MHA(LN(Ẑ), LN(E_n), LN(E_n))   softmax(Q Kᵀ/√(d/h)) V, keys of missing n frames masked
   Ẑ ← Ẑ + FFN(LN(Ẑ))                      FFN: d → 4d → d, ReLU
   giving Z_{n→m} = LN(Ẑ)                                          (B, L, d)
3. H_m = [Z_{n→m}]_{n≠m} (concatenated), then a self-attention stack of ``self_layers`` blocks
   of the same form over H_m, keys of missing m frames masked     (B, L, (M−1)d)
4. Output: [H_m]_m per frame                                       (B, L, M(M−1)d)

MulT classifies from the last time step; here every frame is kept, as fusion-bench's heads
predict per frame. Missing frames are zeroed at the input; a sample whose source is missing for
the whole window attends to positions only (nothing it could read depends on the missing data).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

import fusion_bench

__version__ = "0.1.0"


def _positions(length: int, width: int, device, dtype) -> Tensor:
    """Sinusoidal position encoding (Vaswani et al. 2017), (L, width)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32)
                     * (-math.log(10000.0) / width))
    pe = torch.zeros(length, width, device=device)
    pe[:, 0::2] = torch.sin(pos * rate)
    pe[:, 1::2] = torch.cos(pos * rate[: width // 2])
    return pe.to(dtype)


def _key_padding(mask: Tensor | None) -> Tensor | None:
    """``key_padding_mask`` (True = ignore) from a modality mask (True = present), (B, L). A row
    with no present frame ignores nothing: a softmax over no key would be NaN."""
    if mask is None:
        return None
    pad = ~mask
    return pad & ~pad.all(dim=1, keepdim=True)


class _Block(nn.Module):
    """One pre-norm transformer block whose keys and values come from ``source``."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_ff = (nn.LayerNorm(width) for _ in range(3))
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(width, 4 * width), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(4 * width, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, z: Tensor, source: Tensor, pad: Tensor | None) -> Tensor:
        kv = self.norm_kv(source)
        attended, _ = self.attn(self.norm_q(z), kv, kv, key_padding_mask=pad, need_weights=False)
        z = z + self.drop(attended)
        return z + self.drop(self.ff(self.norm_ff(z)))


class _Stack(nn.Module):
    """√d scaling and positions on the inputs, ``depth`` blocks, a final LayerNorm."""

    def __init__(self, width: int, heads: int, depth: int, dropout: float):
        super().__init__()
        self.scale = math.sqrt(width)
        self.blocks = nn.ModuleList(_Block(width, heads, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, z: Tensor, source: Tensor | None, pad: Tensor | None) -> Tensor:
        """``source`` None: self-attention (keys from the stream itself at every block)."""
        pe = _positions(z.shape[1], z.shape[2], z.device, z.dtype)
        h = self.scale * z + pe
        kv = None if source is None else self.scale * source + pe
        for block in self.blocks:
            h = block(h, h if kv is None else kv, pad)
        return self.norm(h)


class MulT(nn.Module):
    """Crossmodal transformers for every ordered pair of modalities, then self-attention per
    target; ``forward(feats, mask)`` maps {m: (B, L, d_m)} to (B, L, M(M−1)·width)."""

    description = "MulT: crossmodal transformers for every ordered modality pair, then self-attention"
    reference = ("Y.-H. H. Tsai et al., Multimodal Transformer for Unaligned Multimodal Language "
                 "Sequences, ACL 2019")

    def __init__(self, dims: dict[str, int], seq_len: int, width: int = 32, heads: int = 4,
                 layers: int = 2, self_layers: int = 1, dropout: float = 0.1):
        super().__init__()
        if not isinstance(dims, dict) or len(dims) < 2:
            raise ValueError(f"MulT needs two or more modalities, got dims={dims!r}")
        if width % (2 * heads):
            raise ValueError(f"MulT width ({width}) must be a multiple of 2 × heads ({2 * heads})")
        self.dims = dict(dims)
        names = list(dims)
        self.project = nn.ModuleDict({m: nn.Linear(d, width) for m, d in dims.items()})
        self.cross = nn.ModuleDict({
            f"{n}_to_{m}": _Stack(width, heads, layers, dropout)
            for m in names for n in names if n != m
        })
        joint = (len(names) - 1) * width
        self.self_attn = nn.ModuleDict({m: _Stack(joint, heads, self_layers, dropout)
                                        for m in names})
        self.out_dim = len(names) * joint

    def forward(self, feats: dict[str, Tensor], mask: dict[str, Tensor] | None = None) -> Tensor:
        mask = mask or {}
        z, pads = {}, {}
        for m in self.dims:
            x = feats[m]
            if m in mask:  # a missing frame's values must not reach the output
                x = x.masked_fill(~mask[m].unsqueeze(-1), 0.0)
            z[m] = self.project[m](x)
            pads[m] = _key_padding(mask.get(m))
        out = []
        for m in self.dims:
            streams = [self.cross[f"{n}_to_{m}"](z[m], z[n], pads[n]) for n in self.dims if n != m]
            out.append(self.self_attn[m](torch.cat(streams, dim=-1), None, pads[m]))
        return torch.cat(out, dim=-1)


@fusion_bench.hookimpl
def register_fusions(register):
    register("mult", MulT)
