"""RCMA: recursive cross-modal attention (Praveen & Alam, CVPRW-ABAW 2024, arXiv:2403.13659).

Notation: B batch, L window length (frames), d_m the width of modality m, M the modalities in
``dims`` order, O(m) the joint that modality m attends with and d_o its width:

- ``joint="others"`` (default): O(m) = concat of the *other* modalities, d_o = sum of their dims
  (the authors' first release, ``DenseCoAttn`` with ``query_linear_va/at/tv``);
- ``joint="all"``: O(m) = J = concat of *all* modalities, d_o = D = sum(dims), one query
  projection per step shared by all modalities (the joint form of the paper text and of the
  authors' later release, "RJCMA").

``variant="code"`` (default): the form the authors' code computes. One step, for each m,
all right-hand sides read the previous step's values (simultaneous update)::

    Q_m = O(m) W_q + b_q                       (B, L, d_o)   project_query=False: Q_m = O(m)
    K_m = (T_m X_m + b_T 1ᵀ)ᵀ                  (B, d_m, L)   T_m: learned L×L map over time;
                                                             time_mixing="none": K_m = X_mᵀ
    V_m = X_m W_v + b_v                        (B, L, d_m)
    S_m = Dropout_p(tanh(K_m Q_m / √d_o))      (B, d_m, d_o) a feature×feature correlation
    G_m = ReLU(tanh(V_m S_m))                  (B, L, d_o)
    X_m ← X_m + Dropout_p(ReLU(G_m W_o + b_o)) (B, L, d_m)

``variant="paper"``: the equations of the JCA papers, written there with X_m as (d_m × L) and
the joint J_m = O(m)ᵀ as (d_o × L); here in the (B, L, ·) layout, i.e. transposed::

    C_m = tanh(X_mᵀ W_j J_m / √d_o)            (B, L, L)     a time×time correlation, W_j: d_m×d_o
    H_m = ReLU(W_m X_m + W_c C_mᵀ)             (B, L, k)     W_m: k×d_m, W_c: k×L (tied to L)
    X_m ← X_m + W_h H_m                        (B, L, d_m)   W_h: d_m×k

with no biases (as written), k = ``hidden`` (default 32, the width of ``W_ca``/``W_a`` in the
authors' released JCA code), and Dropout_p on C_m and on the update W_h H_m to mirror the code
variant. After the last step either variant concatenates the modalities per frame:
output (B, L, sum(dims)). No softmax anywhere: scores are bounded by tanh.

Every step has its own weights, and every modality its own W_q (``joint="others"``), T_m, W_v and
W_o. Missing frames (mask False) are zeroed at the input; after a step they hold what the other
modalities' update wrote there (the authors apply no mask at all), which never depends on the
values that were masked out.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fusion_bench.dropout import add_dropout as _add_dropout
from fusion_bench.dropout import dropout as _dropout
from fusion_bench.fusions._masking import apply_mask, check_dims, check_feats
from fusion_bench.tanh import tanh, tanh_

_JOINTS = ("others", "all")
_TIME_MIXINGS = ("linear", "none")
_VARIANTS = ("code", "paper")
_TIME_INITS = ("default", "identity")
DEFAULT_PAPER_HIDDEN = 32


def _joint_dims(dims: dict[str, int], joint: str) -> dict[str, int]:
    """d_o per modality: the width of the joint O(m) that modality m correlates with."""
    total = sum(dims.values())
    return {m: total if joint == "all" else total - d for m, d in dims.items()}


def _joint(xs: dict[str, Tensor], m: str, joint: str, cache: dict[str, Tensor]) -> Tensor:
    """O(m), (B, L, d_o): the other modalities (or all of them) concatenated along features."""
    if joint == "all":
        if "all" not in cache:
            cache["all"] = torch.cat(list(xs.values()), dim=-1)
        return cache["all"]
    return torch.cat([x for n, x in xs.items() if n != m], dim=-1)


class _CodeStep(nn.Module):
    """One recursion step of ``variant="code"`` (see the module docstring for the equations).

    Computed as written, with three rewrites that change the cost, not the function:

    - the scale 1/√d_o is folded into the weights of T_m (or else of W_q): an L×L multiply
      instead of a pass over every (B, d_m, d_o) score, forward and backward;
    - K_m is kept as s·(T_m X_m + b_T), (B, L, d_m), one batched GEMM from X_m as it lies, and
      read transposed by the next GEMM (no transposed copy of X_m);
    - where d_m < L (audio at the paper's shapes: 128 < 300) the query projection is applied
      after the correlation, ``K_m Q_m = (K_m O(m)) W_qᵀ + (K_m 1) b_qᵀ``, which costs
      d_m·d_o² instead of L·d_o² per window (same product, summed in another order).
    """

    def __init__(self, dims, seq_len, joint, dropout, time_mixing, project_query,
                 time_init="default"):
        super().__init__()
        self.joint = joint
        self.p = dropout
        self.dims = dict(dims)
        self.total = sum(dims.values())
        d_o = _joint_dims(dims, joint)
        self.scale = {m: 1.0 / math.sqrt(d_o[m]) for m in dims}
        self.query: nn.Module | None = None
        if project_query and joint == "all":
            self.query = nn.Linear(self.total, self.total)
        elif project_query:
            self.query = nn.ModuleDict({m: nn.Linear(d_o[m], d_o[m]) for m in dims})
        self.time: nn.ModuleDict | None = None
        if time_mixing == "linear":
            time_maps = {m: nn.Linear(seq_len, seq_len) for m in dims}
            if time_init == "identity":
                # T_m = I, b_T = 0: at initialisation K_m Q_m correlates X_m and the joint frame
                # by frame (a synchrony measure). nn.Linear's default init mixes the L frames at
                # random, so the cross-modal correlation starts as noise and the map must learn
                # alignment.
                with torch.no_grad():
                    for lin in time_maps.values():
                        lin.weight.copy_(torch.eye(seq_len))
                        lin.bias.zero_()
            self.time = nn.ModuleDict(time_maps)
        self.value = nn.ModuleDict({m: nn.Linear(d, d) for m, d in dims.items()})
        self.out = nn.ModuleDict({m: nn.Linear(d_o[m], d) for m, d in dims.items()})

    def _query_linear(self, m: str) -> nn.Linear:
        """W_q, b_q of modality ``m`` (only with project_query): with ``joint="all"`` the one
        projection shared by every modality."""
        query = self.query
        if isinstance(query, nn.ModuleDict):
            query = query[m]
        if not isinstance(query, nn.Linear):
            raise TypeError("this RCMA step has no query projection (project_query=False)")
        return query

    def _reassociate(self, m: str, length: int) -> bool:
        """Whether (K O) W_qᵀ is cheaper than K (O W_qᵀ): the rows of K (d_m, or with
        ``joint="all"``, where one query serves every modality, D) fewer than L."""
        if self.query is None:
            return False
        return (self.total if self.joint == "all" else self.dims[m]) < length

    def forward(self, xs: dict[str, Tensor], record: dict | None = None) -> dict[str, Tensor]:
        cache: dict[str, Tensor] = {}
        new = {}
        for m, x in xs.items():
            batch, length, _ = x.shape
            joint = _joint(xs, m, self.joint, cache)
            scale = self.scale[m]
            if self.time is not None:
                # s·(T_m X_m + b_T 1ᵀ), (B, L, d_m); its transpose (a view) is s·K_m
                t = cast(nn.Linear, self.time[m])  # nn.ModuleDict types its items nn.Module
                mixed = torch.baddbmm(
                    (t.bias * scale).unsqueeze(-1), (t.weight * scale).expand(batch, -1, -1), x
                )
                key, key_scale, rest_scale = mixed.mT, scale, 1.0
            else:
                key, key_scale, rest_scale = x.mT, 1.0, scale
            query = None
            if self.query is None:  # project_query=False: Q_m = O(m)
                query = joint
                corr = torch.bmm(key, joint)
            else:
                lin = self._query_linear(m)
                weight: Tensor = lin.weight
                bias: Tensor = lin.bias
                if rest_scale != 1.0:  # no T_m to carry the scale: fold it into W_q, b_q
                    weight, bias = weight * rest_scale, bias * rest_scale
                    rest_scale = 1.0
                if self._reassociate(m, length):
                    corr = torch.addcmul(
                        F.linear(torch.bmm(key, joint), weight),
                        key.sum(-1, keepdim=True),
                        bias,
                    )
                else:
                    if self.joint == "all":
                        if "query" not in cache:
                            cache["query"] = F.linear(joint, weight, bias)
                        query = cache["query"]
                    else:
                        query = F.linear(joint, weight, bias)
                    corr = torch.bmm(key, query)
            if rest_scale != 1.0:  # neither T_m nor W_q to carry the scale
                corr = corr * rest_scale
            # S_m; in place: neither bmm nor addcmul keeps its output for the backward pass.
            # tanh and tanh_ are fusion_bench.tanh's: on CPU through the sigmoid, at half the cost
            corr = _dropout(tanh_(corr), self.p, self.training)
            value = self.value[m](x)
            # G_m = ReLU(tanh(V_m S_m)) = tanh(ReLU(V_m S_m)), the ReLU in place on the GEMM output
            attended = tanh(torch.relu_(torch.bmm(value, corr)))
            # out of place: a Linear's 3-d output is a view, and an in-place op on a view costs
            # autograd a copy of its base in the backward pass
            update = torch.relu(self.out[m](attended))
            if record is None:
                new[m] = _add_dropout(x, update, self.p, self.training)
                continue
            update = _dropout(update, self.p, self.training)
            new[m] = x + update
            record[m] = {  # Q_m and K_m as the table has them: unscaled, always computed
                "joint": joint,
                "query": joint if self.query is None else self._query_linear(m)(joint),
                "key": key / key_scale if key_scale != 1.0 else key,
                "value": value,
                "correlation": corr,
                "attended": attended,
                "update": update,
                "output": new[m],
            }
        return new


class _PaperStep(nn.Module):
    """One recursion step of ``variant="paper"`` (see the module docstring for the equations)."""

    def __init__(self, dims, seq_len, joint, dropout, hidden):
        super().__init__()
        self.joint = joint
        self.p = dropout
        d_o = _joint_dims(dims, joint)
        self.scale = {m: 1.0 / math.sqrt(d_o[m]) for m in dims}
        # nn.Linear(a, b) holds a (b × a) matrix: each weight below has the paper's shape.
        self.w_j = nn.ModuleDict({m: nn.Linear(d_o[m], d, bias=False) for m, d in dims.items()})
        self.w_m = nn.ModuleDict({m: nn.Linear(d, hidden, bias=False) for m, d in dims.items()})
        self.w_c = nn.ModuleDict({m: nn.Linear(seq_len, hidden, bias=False) for m in dims})
        self.w_h = nn.ModuleDict({m: nn.Linear(hidden, d, bias=False) for m, d in dims.items()})

    def forward(self, xs: dict[str, Tensor], record: dict | None = None) -> dict[str, Tensor]:
        cache: dict[str, Tensor] = {}
        new = {}
        for m, x in xs.items():
            joint = _joint(xs, m, self.joint, cache)
            projected = self.w_j[m](joint)  # (B, L, d_m): (W_j J)ᵀ
            corr = tanh_((x @ projected.mT) * self.scale[m])  # (B, L, L): C_m
            corr = F.dropout(corr, self.p, self.training)
            hidden = torch.relu(self.w_m[m](x) + self.w_c[m](corr))  # (B, L, k): H_mᵀ
            update = F.dropout(self.w_h[m](hidden), self.p, self.training)
            new[m] = x + update
            if record is not None:
                record[m] = {
                    "joint": joint,
                    "correlation": corr,
                    "hidden": hidden,
                    "update": update,
                    "output": new[m],
                }
        return new


class RCMA(nn.Module):
    """Recursive cross-modal attention over ``dims`` modalities; output (B, L, sum(dims)).

    Args:
        dims: modality name -> feature width d_m (two or more); the order is the order of the
            output's feature blocks and of the modalities inside each joint.
        seq_len: window length L; the learned L×L temporal map (``time_mixing="linear"``) and
            ``variant="paper"``'s W_c only work at this length.
        iterations: recursion steps R (``1`` = non-recursive joint cross-attention); each step
            has its own weights.
        joint: ``"others"`` (RCMA) or ``"all"`` (RJCMA); see the module docstring.
        dropout: p of the two dropouts in every step (on the correlation and on the update).
        time_mixing: ``"linear"`` (learned L×L map with bias) or ``"none"`` (identity; any L).
            ``variant="code"`` only.
        variant: ``"code"`` (the authors' implementation) or ``"paper"`` (the JCA equations).
        project_query: ``False`` correlates with the unprojected joint, as the authors' last
            release does with ``joint="all"`` (it builds ``query_linear`` and never uses it; it is
            not built here). ``variant="code"`` only.
        hidden: k, the width of H_m in ``variant="paper"`` (default 32).
        time_init: initial T_m of ``time_mixing="linear"``: ``"default"`` (nn.Linear's uniform
            init, as the authors) or ``"identity"`` (T_m = I, b_T = 0; same parameters, but the
            step starts as a frame-aligned cross-modal correlation; see ``_CodeStep``).

    ``forward(feats, mask)`` maps ``{m: (B, L, d_m)}`` and ``{m: bool (B, L)}`` to
    ``(B, L, out_dim)``; :meth:`forward_with_intermediates` also returns every step's tensors.
    """

    description = "recursive cross-modal attention: tanh-bounded joint cross-correlation, R steps"
    reference = (
        "R. G. Praveen and J. Alam, Recursive Joint Cross-Modal Attention for Multimodal Fusion "
        "in Dimensional Emotion Recognition, CVPR Workshops (ABAW) 2024, arXiv:2403.13659"
    )

    def __init__(
        self,
        dims: dict[str, int],
        seq_len: int,
        iterations: int = 2,
        joint: str = "others",
        dropout: float = 0.6,
        time_mixing: str = "linear",
        variant: str = "code",
        project_query: bool = True,
        hidden: int | None = None,
        time_init: str = "default",
    ):
        super().__init__()
        self.dims = check_dims("RCMA", dims)
        _check_options(
            seq_len, iterations, joint, dropout, time_mixing, variant, project_query, hidden
        )
        if time_init not in _TIME_INITS:
            raise ValueError(
                f"RCMA option time_init={time_init!r} is not one of {', '.join(map(repr, _TIME_INITS))}"
            )
        self.time_init = time_init
        self.seq_len = seq_len
        self.iterations = iterations
        self.joint = joint
        self.dropout = float(dropout)
        self.time_mixing = time_mixing
        self.variant = variant
        self.project_query = project_query
        self.hidden = (hidden or DEFAULT_PAPER_HIDDEN) if variant == "paper" else None
        #: whether the weights only fit windows of exactly ``seq_len`` frames
        self.tied_to_seq_len = variant == "paper" or time_mixing == "linear"
        self.out_dim = sum(self.dims.values())
        steps: list[nn.Module]
        if variant == "code":
            steps = [
                _CodeStep(
                    self.dims, seq_len, joint, self.dropout, time_mixing, project_query, time_init
                )
                for _ in range(iterations)
            ]
        else:
            steps = [
                _PaperStep(self.dims, seq_len, joint, self.dropout, self.hidden)
                for _ in range(iterations)
            ]
        self.steps = nn.ModuleList(steps)

    def forward(self, feats: dict[str, Tensor], mask: dict[str, Tensor] | None = None) -> Tensor:
        return self._run(feats, mask, None)

    def forward_with_intermediates(
        self, feats: dict[str, Tensor], mask: dict[str, Tensor] | None = None
    ) -> tuple[Tensor, list[dict[str, dict[str, Tensor]]]]:
        """Like ``forward``, plus ``trace[step][modality][quantity]`` for every step.

        Quantities (shapes in the module docstring): ``variant="code"``: joint, query, key,
        value, correlation, attended, update, output; ``variant="paper"``: joint, correlation,
        hidden, update, output.
        """
        trace: list[dict[str, dict[str, Tensor]]] = []
        return self._run(feats, mask, trace), trace

    def _run(self, feats, mask, trace):
        _, length = check_feats("RCMA", self.dims, feats)
        if self.tied_to_seq_len and length != self.seq_len:
            what = (
                "variant='paper' (W_c is hidden×L)"
                if self.variant == "paper"
                else ("time_mixing='linear' (a learned L×L map over time)")
            )
            raise ValueError(
                f"RCMA with {what} was built for windows of seq_len={self.seq_len} frames but got "
                f"L={length}; use the window length it was trained with, or build it with "
                f"variant='code', time_mixing='none' to accept any length"
            )
        masked = apply_mask(feats, mask)
        xs = {m: masked[m] for m in self.dims}
        for step in self.steps:
            record: dict[str, dict[str, Tensor]] | None = None if trace is None else {}
            xs = step(xs, record)
            if trace is not None:
                trace.append(record)
        return torch.cat(list(xs.values()), dim=-1)

    def extra_repr(self) -> str:
        return (
            f"dims={self.dims}, seq_len={self.seq_len}, iterations={self.iterations}, "
            f"joint={self.joint!r}, dropout={self.dropout}, time_mixing={self.time_mixing!r}, "
            f"variant={self.variant!r}, project_query={self.project_query}, hidden={self.hidden}, "
            f"time_init={self.time_init!r}"
        )


def _check_options(
    seq_len, iterations, joint, dropout, time_mixing, variant, project_query, hidden
):
    def positive_int(name, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"RCMA option {name} must be a positive int, got {value!r}")

    def one_of(name, value, allowed):
        if value not in allowed:
            raise ValueError(
                f"RCMA option {name}={value!r} is not one of {', '.join(map(repr, allowed))}"
            )

    positive_int("seq_len", seq_len)
    positive_int("iterations", iterations)
    one_of("joint", joint, _JOINTS)
    one_of("time_mixing", time_mixing, _TIME_MIXINGS)
    one_of("variant", variant, _VARIANTS)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"RCMA option dropout must be a number in [0, 1), got {dropout!r}")
    if not isinstance(project_query, bool):
        raise ValueError(f"RCMA option project_query must be True or False, got {project_query!r}")
    if variant == "paper":
        if time_mixing != "linear":
            raise ValueError(
                "RCMA option time_mixing='none' needs variant='code': variant='paper' has W_c of "
                "shape hidden×L, which ties it to seq_len"
            )
        if not project_query:
            raise ValueError(
                "RCMA option project_query=False needs variant='code': in variant='paper' the "
                "joint is always projected by W_j"
            )
        if hidden is not None:
            positive_int("hidden", hidden)
    elif hidden is not None:
        raise ValueError(
            f"RCMA option hidden={hidden!r} only applies to variant='paper'; drop it, or set "
            f"variant='paper'"
        )
