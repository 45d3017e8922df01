"""A straightforward transcription of DESIGN §5's table: the baseline the real RCMA is timed against.

Written the way the table reads, one line per row, with the usual building blocks (``nn.Linear``,
``nn.Dropout``, ``torch.cat``, ``torch.bmm``), and no attention paid to speed. Its parameters have
the same names and shapes as :class:`fusion_bench.fusions.rcma.RCMA` (``variant="code"``,
``time_mixing="linear"``, ``project_query=True``), so ``load_state_dict`` copies weights from one
to the other and the two must compute the same function (checked in ``test_reference_rcma.py``).

Per step, for each modality m, with O(m) the other modalities (``joint="others"``) or all of them
(``joint="all"``) concatenated along features::

    Q_m = O(m) W_q + b_q                        (B, L, d_o)
    K_m = (T_m X_m + b_T)ᵀ                      (B, d_m, L)
    V_m = X_m W_v + b_v                         (B, L, d_m)
    S_m = Dropout(tanh(K_m Q_m / √d_o))         (B, d_m, d_o)
    G_m = ReLU(tanh(V_m S_m))                   (B, L, d_o)
    X_m ← X_m + Dropout(ReLU(G_m W_o + b_o))    (B, L, d_m)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ReferenceStep(nn.Module):
    def __init__(self, dims: dict[str, int], seq_len: int, joint: str, dropout: float):
        super().__init__()
        self.joint = joint
        total = sum(dims.values())
        d_o = {m: total if joint == "all" else total - d for m, d in dims.items()}
        self.d_o = d_o
        if joint == "all":
            self.query = nn.Linear(total, total)
        else:
            self.query = nn.ModuleDict({m: nn.Linear(d_o[m], d_o[m]) for m in dims})
        self.time = nn.ModuleDict({m: nn.Linear(seq_len, seq_len) for m in dims})
        self.value = nn.ModuleDict({m: nn.Linear(d, d) for m, d in dims.items()})
        self.out = nn.ModuleDict({m: nn.Linear(d_o[m], d) for m, d in dims.items()})
        self.drop = nn.Dropout(dropout)

    def forward(self, xs: dict[str, Tensor]) -> dict[str, Tensor]:
        new = {}
        for m, x in xs.items():
            if self.joint == "all":
                joint = torch.cat([xs[n] for n in xs], dim=-1)
                q = self.query(joint)
            else:
                joint = torch.cat([xs[n] for n in xs if n != m], dim=-1)
                q = self.query[m](joint)
            k = self.time[m](x.transpose(1, 2))  # (T_m X_m + b_T)ᵀ: a Linear over the time axis
            v = self.value[m](x)
            s = self.drop(torch.tanh(torch.bmm(k, q) / math.sqrt(self.d_o[m])))
            g = torch.relu(torch.tanh(torch.bmm(v, s)))
            new[m] = x + self.drop(torch.relu(self.out[m](g)))
        return new


class ReferenceRCMA(nn.Module):
    """``{m: (B, L, d_m)}`` + masks → ``(B, L, sum(dims))``, R steps with their own weights."""

    def __init__(self, dims: dict[str, int], seq_len: int, iterations: int = 2,
                 joint: str = "others", dropout: float = 0.6):
        super().__init__()
        self.dims = dict(dims)
        self.out_dim = sum(dims.values())
        self.steps = nn.ModuleList(
            [ReferenceStep(self.dims, seq_len, joint, dropout) for _ in range(iterations)]
        )

    def forward(self, feats: dict[str, Tensor], mask: dict[str, Tensor] | None = None) -> Tensor:
        xs = {m: feats[m] if mask is None else feats[m] * mask[m].unsqueeze(-1) for m in self.dims}
        for step in self.steps:
            xs = step(xs)
        return torch.cat([xs[m] for m in self.dims], dim=-1)
