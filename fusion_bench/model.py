"""The whole model: a temporal encoder and BatchNorm per modality, one fusion, the shared head."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from .config import RunConfig
from .errors import ConfigError
from .heads import RegressionHead
from .options import check_channels, plugin_options
from .protocols import Encoder


class FusionModel(nn.Module):
    """``feats {m: (B, L, d_m)}``, ``masks {m: bool (B, L)}`` → ``(B, L, n_targets)`` in [-1, 1].

    Each encoder sees the masked features plus the mask as one extra channel, so "missing" and
    "zero" are distinguishable. With a single modality ``fusion`` is None and the encoded
    features go straight to the head.
    """

    def __init__(self, encoders: dict[str, nn.Module], fusion: nn.Module | None, head: nn.Module):
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.norms = nn.ModuleDict({m: nn.BatchNorm1d(int(cast(Encoder, e).out_dim))
                                    for m, e in encoders.items()})
        self.fusion = fusion
        self.head = head

    def encode(self, feats: dict[str, Tensor], masks: dict[str, Tensor]) -> dict[str, Tensor]:
        out = {}
        for m, enc in self.encoders.items():
            k = masks[m].unsqueeze(-1).to(feats[m].dtype)
            h = enc(torch.cat([feats[m] * k, k], dim=-1))  # (B, L, c_m)
            out[m] = self.norms[m](h.transpose(1, 2)).transpose(1, 2)
        return out

    def forward(self, feats: dict[str, Tensor], masks: dict[str, Tensor]) -> Tensor:
        z = self.encode(feats, masks)
        if self.fusion is None:
            (fused,) = z.values()
        else:
            fused = self.fusion(z, masks)
        return self.head(fused)


def build_model(registry, cfg: RunConfig, dims: dict[str, int], n_targets: int) -> tuple[FusionModel, dict]:
    """Build the model of ``cfg`` for feature ``dims``; return it and the resolved plugin options."""
    enc_entry = registry.get("encoders", cfg.model.encoder)
    enc_opts = plugin_options("encoder", cfg.model.encoder, enc_entry.obj, cfg.options("encoder"),
                              skip=("in_dim",))
    check_channels(cfg, enc_entry.obj)
    encoders = {}
    for m, d in dims.items():
        opts = enc_opts
        if m in cfg.model.channels:  # per-modality width, checked like any encoder option
            opts = plugin_options("encoder", cfg.model.encoder, enc_entry.obj,
                                  {**cfg.options("encoder"), "channels": cfg.model.channels[m]}, skip=("in_dim",))
        try:
            encoders[m] = enc_entry.obj(d + 1, **opts)  # +1: the mask channel
        except (TypeError, ValueError) as e:
            raise ConfigError(f"encoder {cfg.model.encoder!r} ({enc_entry.plugin}): {e}") from None
    enc_dims = {m: int(e.out_dim) for m, e in encoders.items()}
    fusion, fus_opts = None, {}
    if len(dims) > 1:
        fus_entry = registry.get("fusions", cfg.model.fusion)
        fus_opts = plugin_options("fusion", cfg.model.fusion, fus_entry.obj, cfg.options("fusion"),
                                  skip=("dims", "seq_len"))
        try:
            fusion = fus_entry.obj(enc_dims, cfg.data.window, **fus_opts)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"fusion {cfg.model.fusion!r} ({fus_entry.plugin}): {e}") from None
        out_dim = int(fusion.out_dim)
    else:
        out_dim = next(iter(enc_dims.values()))
    head = RegressionHead(out_dim, n_targets, cfg.model.head_hidden, cfg.model.head_dropout)
    return FusionModel(encoders, fusion, head), {"encoder": enc_opts, "fusion": fus_opts}
