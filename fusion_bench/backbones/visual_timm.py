"""Visual backbone: any timm model by name, run on aligned face crops.

Preprocessing (the RCMA paper's, for its ResNet-50/IR-50 face model): each crop resized to
``image_size`` (48) then centre-cropped to ``crop`` (40), normalised with the model's mean/std.
The pooled penultimate features (``model.num_features``) are the frame's vector; a frame without a
crop gets zeros and mask False. On a GPU the model runs channels-last under autocast (bf16).
Weights: a local checkpoint (``weights=PATH`` or ``<weights_dir>/visual/<model>.pth``); timm's
downloader is never called.
"""

from __future__ import annotations

import numpy as np

from . import Media, file_sha256, load_into, load_state_dict, pick_device, resolve_weights


class TimmVisual:
    modality = "visual"
    description = "any timm image model on face crops (48→40 px), pooled features per frame"
    reference = "timm (Wightman); paper: ResNet-50/IR-50 face model"

    def __init__(self, model: str | None = None, weights: str | None = None, random_init: bool = False,
                 device: str = "cpu", image_size: int = 48, crop: int = 40, batch_size: int = 256):
        import timm
        import torch

        self.model_name = model or "resnet50"
        self.image_size, self.crop, self.batch_size = int(image_size), int(crop), int(batch_size)
        self.weights = resolve_weights("visual", self.model_name, weights, random_init,
                                       f"{self.model_name}.pth")
        if self.weights is None:
            torch.manual_seed(0)  # before the init is drawn: reproducible random features
        try:
            net = timm.create_model(self.model_name, pretrained=False, num_classes=0)
        except RuntimeError as e:  # unknown model name
            raise_unknown(self.model_name, e)
        if self.weights is not None:
            load_into(net, load_state_dict(self.weights, "visual"), self.weights, "visual")
        self.device = pick_device(device)
        self.net = net.eval().to(self.device)
        if self.device.type == "cuda":
            self.net = self.net.to(memory_format=torch.channels_last)
        cfg = getattr(net, "pretrained_cfg", {}) or {}
        self.mean = np.asarray(cfg.get("mean", (0.485, 0.456, 0.406)), np.float32)
        self.std = np.asarray(cfg.get("std", (0.229, 0.224, 0.225)), np.float32)
        self.dim = int(net.num_features)
        self._sha = file_sha256(self.weights) if self.weights is not None else None

    def describe(self) -> dict:
        return {
            "backbone": "timm", "model": self.model_name, "dim": self.dim,
            "weights": str(self.weights) if self.weights else None, "weights_sha256": self._sha,
            "random_init": self.weights is None,
            "preprocessing": {"resize": self.image_size, "center_crop": self.crop,
                              "mean": self.mean.tolist(), "std": self.std.tolist()},
        }

    def preprocess(self, crops: np.ndarray):
        """(n, H, W, 3) in [0, 1] → normalised (n, 3, crop, crop) tensor."""
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(crops, np.float32)).permute(0, 3, 1, 2)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False, antialias=True)
        o = (self.image_size - self.crop) // 2
        x = x[:, :, o : o + self.crop, o : o + self.crop]
        mean = torch.from_numpy(self.mean).view(1, 3, 1, 1)
        std = torch.from_numpy(self.std).view(1, 3, 1, 1)
        return (x - mean) / std

    def extract(self, media: Media) -> tuple[np.ndarray, np.ndarray]:
        import torch

        n = media.n_frames
        out = np.zeros((n, self.dim), np.float32)
        if media.crops is None:
            return out, np.zeros(n, bool)
        mask = np.asarray(media.crop_mask, bool)
        idx = np.flatnonzero(mask)
        cuda = self.device.type == "cuda"
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cuda):
            for lo in range(0, len(idx), self.batch_size):
                sel = idx[lo : lo + self.batch_size]
                x = self.preprocess(media.crops[sel]).to(self.device)
                if cuda:
                    x = x.contiguous(memory_format=torch.channels_last)
                out[sel] = self.net(x).float().cpu().numpy()
        return out, mask


def raise_unknown(name: str, err: Exception):
    import difflib

    import timm

    from ..errors import ConfigError

    near = difflib.get_close_matches(name, timm.list_models(), n=3)
    raise ConfigError(f"timm has no model {name!r}"
                      + (f"; did you mean {', '.join(near)}?" if near else f" ({err})")) from None
