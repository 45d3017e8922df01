"""LSTM fusion: per-frame concatenation, then a bidirectional LSTM over time."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fusion_bench.fusions._masking import apply_mask, check_dims, check_feats


class LSTMFusion(nn.Module):
    """Concat the modalities per frame, (B, L, D) with D = sum(dims), then an ``layers``-layer
    bidirectional LSTM with ``hidden`` units per direction: output (B, L, 2 * hidden).

    Parameters: each direction of layer 1 has 4h(D + h) weights and 8h biases (b_ih and b_hh),
    each direction of a later layer 4h(2h + h) + 8h. Missing frames enter as zeros.

    Args:
        hidden: units per direction (default 64).
        layers: stacked LSTM layers (default 2).
        dropout: dropout between LSTM layers (default 0.1; unused with one layer).
    """

    description = "per-frame concatenation, then a 2-layer bidirectional LSTM over time"
    reference = ""

    def __init__(
        self,
        dims: dict[str, int],
        seq_len: int,
        hidden: int = 64,
        layers: int = 2,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.dims = check_dims("LSTMFusion", dims)
        for name, value in (("hidden", hidden), ("layers", layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LSTMFusion option {name} must be a positive int, got {value!r}")
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, (int, float))
            or not 0 <= dropout < 1
        ):
            raise ValueError(
                f"LSTMFusion option dropout must be a number in [0, 1), got {dropout!r}"
            )
        self.seq_len = seq_len
        self.lstm = nn.LSTM(
            sum(self.dims.values()),
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=True,
            dropout=float(dropout) if layers > 1 else 0.0,
        )
        self.out_dim = 2 * hidden

    def forward(self, feats: dict[str, Tensor], mask: dict[str, Tensor] | None = None) -> Tensor:
        check_feats("LSTMFusion", self.dims, feats)
        masked = apply_mask(feats, mask)
        x = torch.cat([masked[m] for m in self.dims], dim=-1)
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and not _cpu_lstm_supports(
            torch.get_autocast_dtype("cpu")
        ):
            # CPU autocast sends the LSTM to oneDNN in bf16/fp16, which fails on CPUs without
            # those instructions ("could not create a primitive descriptor"): run it in float32
            with torch.autocast("cpu", enabled=False):
                out, _ = self.lstm(x.float())
            return out
        out, _ = self.lstm(x)
        return out


def _cpu_lstm_supports(dtype: torch.dtype) -> bool:
    """Whether oneDNN can run an LSTM in ``dtype`` on this CPU."""
    if dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if dtype == torch.float16:
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    return True
