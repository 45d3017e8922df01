"""The whole model: a temporal encoder and BatchNorm per modality, one fusion, the shared head.

The BatchNorm after each encoder normalises with statistics of real frames only
(:class:`MaskedBatchNorm`): the zero padding past a short video's end never enters them."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from . import distributed
from .config import RunConfig
from .errors import ConfigError, PluginError
from .heads import RegressionHead, SequenceHead, observed
from .options import check_channels, plugin_options
from .protocols import Encoder


class MaskedBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over ``(B, C, L)`` whose training statistics cover the positions where
    ``present`` (bool ``(B, L)``) is True only, so that padding cannot move them.

    Training: mean and biased variance over the present positions normalise the batch, and the
    running statistics take the unbiased variance (n / (n − 1)), as BatchNorm1d does over all
    positions. Evaluation, or ``present`` None (every position real), is BatchNorm1d itself,
    same numbers and same kernel. Positions not present get the same affine map of their
    (meaningless) values; nothing downstream reads them into a loss or a score.
    """

    def forward(self, x: Tensor, present: Tensor | None = None) -> Tensor:
        synced = self.training and distributed.summing()
        if (present is None and not synced) or not self.training:
            return super().forward(x)
        if present is None:  # several ranks: every position real, statistics still global
            present = torch.ones(x.shape[0], x.shape[2], dtype=torch.bool, device=x.device)
        w = present.unsqueeze(1).to(x.dtype)  # (B, 1, L)
        # a masked_fill, not a product: inf/NaN in a padded position cannot reach the sums
        xr = x.masked_fill(~present.unsqueeze(1), 0.0)
        # sums over this batch; on several ranks, sum_across adds them up into the global
        # batch's (fusion_bench.distributed; it is the identity in one process)
        s = distributed.sum_across(torch.cat([w.sum().reshape(1), xr.sum((0, 2))]))
        n, mean = s[0], s[1:] / s[0].clamp(min=1)
        var = distributed.sum_across(((xr - mean[:, None]) ** 2 * w).sum((0, 2))) / n.clamp(min=1)
        if self.track_running_stats and self.running_mean is not None \
                and self.running_var is not None and self.num_batches_tracked is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None \
                    else 1.0 / float(self.num_batches_tracked)
                unbiased = var * n / (n - 1).clamp(min=1)
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * unbiased)
        y = (x - mean[:, None]) * torch.rsqrt(var[:, None] + self.eps)
        if self.affine:
            y = y * self.weight[:, None] + self.bias[:, None]
        return y


class FusionModel(nn.Module):
    """``feats {m: (B, L, d_m)}``, ``masks {m: bool (B, L)}`` → ``(B, L, n_targets)`` in the
    label range; with a :class:`fusion_bench.heads.SequenceHead` (sequence-level data)
    ``(B, 1, n_targets)``, the window's valid frames pooled (:func:`observed`).

    Each encoder sees the masked features plus the mask as one extra channel, so "missing" and
    "zero" are distinguishable. With a single modality ``fusion`` is None and the encoded
    features go straight to the head.
    """

    def __init__(self, encoders: dict[str, nn.Module], fusion: nn.Module | None, head: nn.Module,
                 fusion_name: str = "fusion", encoder_name: str = "encoder",
                 precision: str = "fp32"):
        super().__init__()
        self.fusion_name, self.encoder_name = fusion_name, encoder_name
        #: "fp32", or "bf16": forward under torch.autocast to bfloat16 (``train.precision``)
        self.precision = precision
        self._fusion_checked = False  # the plugin's output is checked on the first real batch
        self.encoders = nn.ModuleDict(encoders)
        self.norms = nn.ModuleDict({m: MaskedBatchNorm(int(cast(Encoder, e).out_dim))
                                    for m, e in encoders.items()})
        self.fusion = fusion
        self.head = head

    def encode(self, feats: dict[str, Tensor], masks: dict[str, Tensor],
               present: Tensor | None = None) -> dict[str, Tensor]:
        out = {}
        for m, enc in self.encoders.items():
            keep = masks[m].unsqueeze(-1)
            # masked_fill, not a product: inf/NaN in a missing or padded frame cannot leak
            x = feats[m].masked_fill(~keep, 0.0)
            h = self._call(f"encoder {self.encoder_name!r} ({m})", enc,
                           torch.cat([x, keep.to(x.dtype)], dim=-1))  # (B, L, c_m)
            # statistics in float32 whatever the encoder computed in (bf16 loses the variance)
            out[m] = self.norms[m](h.float().transpose(1, 2), present).transpose(1, 2)
        return out

    def forward(self, feats: dict[str, Tensor], masks: dict[str, Tensor],
                present: Tensor | None = None) -> Tensor:
        """``present``: bool ``(B, L)``, False on padding past a video's end (None: no padding);
        the normalisation statistics and a sequence head's pooling leave those positions out.
        Returns float32 whatever the precision (losses, scores and predictions are taken in
        float32)."""
        device = next(iter(feats.values())).device.type
        if self.precision == "fp32" or device == "meta":  # meta: FLOP counting, same products
            return self._forward(feats, masks, present)
        with torch.autocast(device, dtype=torch.bfloat16):
            return self._forward(feats, masks, present).float()

    def _forward(self, feats: dict[str, Tensor], masks: dict[str, Tensor],
                 present: Tensor | None) -> Tensor:
        z = self.encode(feats, masks, present)
        if self.fusion is None:
            (fused,) = z.values()
        else:
            fused = self._call(f"fusion {self.fusion_name!r}", self.fusion, z, masks)
            if not self._fusion_checked:
                self._check_fusion_output(fused, next(iter(z.values())))
        if isinstance(self.head, SequenceHead):  # pool the frames where some modality is seen
            return self.head(fused, observed(masks, self.encoders, present))
        return self.head(fused)  # per frame: any (B, L, D) -> (B, L, T) module

    @staticmethod
    def _call(what: str, plugin: nn.Module, *args):
        """``plugin(*args)``; an exception of the plugin's own is one line naming it (out of
        memory excepted: the device's limit, on which bench searches batch sizes)."""
        if torch.compiler.is_compiling():
            return plugin(*args)
        try:
            return plugin(*args)
        except (torch.OutOfMemoryError, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 - a plugin's fault: one line naming it
            text = str(e).strip()
            if isinstance(e, RuntimeError) and ("out of memory" in text.lower()
                                                or "can't allocate memory" in text.lower()):
                raise
            first = text.splitlines()[0] if text else ""
            raise PluginError(f"{what} raised {type(e).__name__} in forward: {first} "
                              "(--debug shows the traceback)") from e

    def _check_fusion_output(self, fused, like: Tensor) -> None:
        """A fusion plugin's output must be ``(B, L, out_dim)`` and finite: a wrong shape can
        otherwise train (broadcasting) and score a few frames, and store a result."""
        B, L = like.shape[:2]
        want = (B, L, int(getattr(self.fusion, "out_dim", -1)))
        got = tuple(fused.shape) if isinstance(fused, Tensor) else type(fused).__name__
        if got != want:
            raise PluginError(f"fusion {self.fusion_name!r} returned {got} for a batch of {B} "
                              f"windows of {L} frames; a fusion returns (B, L, out_dim) = {want}")
        if fused.is_meta or torch.compiler.is_compiling():
            return  # nothing to read on the meta device (FLOP counting); compiled: checked eager
        if not bool(torch.isfinite(fused).all()):  # one device sync, on the first batch only
            raise PluginError(f"fusion {self.fusion_name!r} returned NaN or inf on its first "
                              "batch of finite inputs; check its initialisation and operations")
        self._fusion_checked = True


def build_model(registry, cfg: RunConfig, dims: dict[str, int], n_targets: int,
                level: str = "frame", label_range: tuple[float, float] = (-1.0, 1.0)
                ) -> tuple[FusionModel, dict]:
    """Build the model of ``cfg`` for feature ``dims``; return it and the resolved plugin options.
    ``level`` "sequence" (a dataset labelled per sequence) gives it a pooling head
    (``model.pooling``); its outputs span the dataset's ``label_range``."""
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
        except Exception as e:  # noqa: BLE001 - a plugin's own fault, named as such
            raise PluginError(f"encoder {cfg.model.encoder!r} ({enc_entry.plugin}) raised "
                              f"{type(e).__name__} when built: {e}") from e
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
        except Exception as e:  # noqa: BLE001 - a plugin's own fault, named as such
            raise PluginError(f"fusion {cfg.model.fusion!r} ({fus_entry.plugin}) raised "
                              f"{type(e).__name__} when built: {e}") from e
        out_dim = int(fusion.out_dim)
    else:
        out_dim = next(iter(enc_dims.values()))
    head: nn.Module
    if level == "sequence":
        head = SequenceHead(out_dim, n_targets, cfg.model.head_hidden, cfg.model.head_dropout,
                            label_range, cfg.model.pooling)
    else:
        head = RegressionHead(out_dim, n_targets, cfg.model.head_hidden, cfg.model.head_dropout,
                              label_range)
    return (FusionModel(encoders, fusion, head, fusion_name=cfg.model.fusion,
                        encoder_name=cfg.model.encoder, precision=cfg.train.precision),
            {"encoder": enc_opts, "fusion": fus_opts})
