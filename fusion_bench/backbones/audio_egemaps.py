"""Audio backbone: eGeMAPS low-level descriptors (``egemaps``, needs the ``opensmile`` package).

The 25 eGeMAPSv02 low-level descriptors, which openSMILE computes every 10 ms from 16 kHz audio,
sampled at each frame's time. Mask: True while the frame's time lies inside the audio. No weights.
"""

from __future__ import annotations

import numpy as np

from . import Media, resample

SAMPLE_RATE = 16000
LLD_HOP_S = 0.010  # openSMILE's eGeMAPSv02 low-level descriptors: one every 10 ms


class EGeMAPSAudio:
    modality = "audio"
    description = "eGeMAPSv02 low-level descriptors (25) at each frame's time (opensmile)"
    reference = "Eyben et al., IEEE TAC 2016"

    def __init__(self, model: str | None = None, weights: str | None = None, random_init: bool = False,
                 device: str = "cpu"):
        import opensmile

        self.smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                     feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
        self.dim = len(self.smile.feature_names)

    def describe(self) -> dict:
        return {"backbone": "egemaps", "model": "eGeMAPSv02 LLD", "dim": self.dim, "weights": None,
                "weights_sha256": None, "random_init": False,
                "preprocessing": {"sample_rate": SAMPLE_RATE, "hop_s": LLD_HOP_S}}

    def extract(self, media: Media) -> tuple[np.ndarray, np.ndarray]:
        n = media.n_frames
        if media.audio is None or media.audio.size == 0:
            return np.zeros((n, self.dim), np.float32), np.zeros(n, bool)
        x = resample(media.audio, media.sample_rate, SAMPLE_RATE)
        lld = self.smile.process_signal(x, SAMPLE_RATE).to_numpy(np.float32)
        idx = np.clip(np.round(np.arange(n) / media.fps / LLD_HOP_S).astype(int), 0, len(lld) - 1)
        mask = np.arange(n) / media.fps < x.size / SAMPLE_RATE
        return np.nan_to_num(lld[idx]) * mask[:, None], mask
