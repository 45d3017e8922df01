"""The shared regression head: the same for every fusion so only the fusion differs.

Frame level (:class:`RegressionHead`): one prediction per frame. Sequence level
(:class:`SequenceHead`): the fused frames of a window pooled into one prediction (mean over the
window's frames, or attention pooling), then the same head.
"""

from __future__ import annotations

import torch
from torch import nn

from .tanh import tanh

#: the pooling a sequence-level head offers (``model.pooling``)
POOLINGS = ("mean", "attention")


class RegressionHead(nn.Module):
    """``(B, L, in_dim) -> (B, L, n_targets)`` in the label range (default [-1, 1]).

    ``hidden = 0`` is the paper's head, Linear(in_dim → n_targets) + tanh; ``hidden > 0`` adds one
    hidden layer (Linear, ReLU, dropout) before it. A ``label_range`` (lo, hi) other than
    (-1, 1) maps the tanh onto it: mid + half · tanh, so the loss and the metrics see raw label
    units (MOSI sentiment in [-3, 3]).
    """

    def __init__(self, in_dim: int, n_targets: int, hidden: int = 0, dropout: float = 0.0,
                 label_range: tuple[float, float] = (-1.0, 1.0)):
        super().__init__()
        self.net: nn.Module
        if hidden > 0:
            self.net = nn.Sequential(
                nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_targets)
            )
        else:
            self.net = nn.Linear(in_dim, n_targets)
        lo, hi = (float(x) for x in label_range)
        # (-1, 1): tanh itself, no extra ops (the frame-level model as it always was)
        self.affine = None if (lo, hi) == (-1.0, 1.0) else ((hi + lo) / 2, (hi - lo) / 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = tanh(self.net(x))  # torch.tanh, at half the cost on CPU (fusion_bench.tanh)
        if self.affine is not None:
            y = self.affine[0] + self.affine[1] * y
        return y


class SequenceHead(nn.Module):
    """``(B, L, in_dim)``, valid bool ``(B, L)`` → ``(B, 1, n_targets)``: one prediction per
    window of a sequence-level dataset.

    The window's fused frames are pooled over its valid frames only (the model passes the
    frames of the sequence where some modality is present,
    :func:`observed`: the zero padding past its end never enters), then
    :class:`RegressionHead`:

    * ``pooling="mean"``: p = Σ_t valid_t x_t / Σ_t valid_t;
    * ``pooling="attention"``: p = Σ_t α_t x_t with α = softmax over the valid frames of
      s_t = wᵀ tanh(W x_t + b) (attention pooling as in attention-based multiple-instance
      learning, Ilse et al. 2018), W: in_dim × in_dim.

    ``valid`` None: every position counts.
    """

    def __init__(self, in_dim: int, n_targets: int, hidden: int = 0, dropout: float = 0.0,
                 label_range: tuple[float, float] = (-1.0, 1.0), pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"model.pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        self.pooling = pooling
        self.score = (nn.Sequential(nn.Linear(in_dim, in_dim), nn.Tanh(), nn.Linear(in_dim, 1))
                      if pooling == "attention" else None)
        self.head = RegressionHead(in_dim, n_targets, hidden, dropout, label_range)

    def pool(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, L, D)`` → ``(B, D)``, over the valid frames (a window without one: zeros)."""
        if valid is None:
            valid = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        keep = valid.unsqueeze(-1)
        x = x.masked_fill(~keep, 0.0)  # padding cannot reach the sums, even as inf/NaN
        if self.score is None:
            return x.sum(1) / keep.sum(1).clamp(min=1).to(x.dtype)
        s = self.score(x).masked_fill(~keep, float("-inf"))  # (B, L, 1)
        alpha = torch.softmax(s, dim=1).nan_to_num(0.0)  # a window of no frame: all -inf → 0
        return (alpha * x).sum(1)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.pool(x, valid).unsqueeze(1))


def observed(masks: dict[str, torch.Tensor], modalities,
             present: torch.Tensor | None = None) -> torch.Tensor:
    """bool ``(B, L)``: the frames a sequence head pools, those where at least one of
    ``modalities`` is present (its mask True; masks are False on padding already), and
    ``present`` where given. A frame no modality shows carries nothing of the sequence."""
    seen = torch.stack([masks[m] for m in modalities]).any(0)
    return seen if present is None else seen & present
