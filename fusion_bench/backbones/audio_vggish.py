"""Audio backbone: VGGish (128-d per frame).

VGGish (torchvggish's VGG, no PCA post-processing): the waveform is resampled to 16 kHz and turned
into VGGish's log-mel spectrogram (25 ms window, 10 ms hop, 64 mel bands 125–7500 Hz, log offset
0.01). Frame i (time i / fps) gets the embedding of the 0.96 s patch (96 mel frames) *starting* at
that time, so the hop between patches is 1 / fps; frames whose patch would run past the end reuse
the last full patch. Mask: True while the frame's time lies inside the audio.
Weights: a state dict of torchvggish's VGG (e.g. vggish-10086976.pth) at ``weights=PATH`` or
``<weights_dir>/audio/vggish.pth``; ``torchvggish.vggish()`` is never called (it downloads).
"""

from __future__ import annotations

import numpy as np

from . import Media, file_sha256, load_into, load_state_dict, pick_device, resample, resolve_weights

SAMPLE_RATE = 16000
PATCH = 96  # mel frames per patch (0.96 s)
MEL_HOP_S = 0.010


def frame_starts(n_frames: int, fps: float, n_mel: int, hop_s: float = MEL_HOP_S,
                 patch: int = PATCH) -> np.ndarray:
    """First mel frame of each video frame's patch: round(i / fps / hop), clipped so the patch
    fits (the last full patch repeats at the end). int (n_frames,)."""
    starts = np.round(np.arange(n_frames) / fps / hop_s).astype(np.int64)
    return np.clip(starts, 0, max(0, n_mel - patch))


class VGGishAudio:
    modality = "audio"
    description = "VGGish 128-d embedding of the 0.96 s log-mel patch starting at each frame"
    reference = "Hershey et al., ICASSP 2017 (torchvggish)"

    def __init__(self, model: str | None = None, weights: str | None = None, random_init: bool = False,
                 device: str = "cpu", batch_size: int = 512):
        import torch
        from torchvggish import torchvggish as tv

        self.weights = resolve_weights("audio", "vggish", weights, random_init, "vggish.pth",
                                       hint=" (torchvggish's vggish-10086976.pth)")
        if self.weights is None:
            torch.manual_seed(0)
        net = tv.VGG(tv.make_layers(), postprocess=False)
        if self.weights is not None:
            load_into(net, load_state_dict(self.weights, "audio"), self.weights, "audio")
        self.device = pick_device(device)
        self.net = net.eval().to(self.device)
        self.batch_size = int(batch_size)
        self.dim = 128
        self._sha = file_sha256(self.weights) if self.weights is not None else None

    def describe(self) -> dict:
        return {
            "backbone": "vggish", "model": "vggish", "dim": self.dim,
            "weights": str(self.weights) if self.weights else None, "weights_sha256": self._sha,
            "random_init": self.weights is None,
            "preprocessing": {"sample_rate": SAMPLE_RATE, "log_mel": "vggish (25 ms/10 ms, 64 bands)",
                              "patch_s": 0.96, "patch_start": "frame time", "hop": "1/fps",
                              "postprocess": False},
        }

    def log_mel(self, wave: np.ndarray, rate: int) -> np.ndarray:
        """(n_mel, 64) VGGish log-mel spectrogram of a mono waveform."""
        from torchvggish import mel_features
        from torchvggish import vggish_params as p

        x = resample(wave, rate, SAMPLE_RATE)
        if x.size < int(0.025 * SAMPLE_RATE):
            return np.zeros((0, p.NUM_MEL_BINS), np.float32)
        return mel_features.log_mel_spectrogram(
            x, audio_sample_rate=SAMPLE_RATE, log_offset=p.LOG_OFFSET,
            window_length_secs=p.STFT_WINDOW_LENGTH_SECONDS, hop_length_secs=p.STFT_HOP_LENGTH_SECONDS,
            num_mel_bins=p.NUM_MEL_BINS, lower_edge_hertz=p.MEL_MIN_HZ, upper_edge_hertz=p.MEL_MAX_HZ,
        ).astype(np.float32)

    def extract(self, media: Media) -> tuple[np.ndarray, np.ndarray]:
        import torch

        n = media.n_frames
        if media.audio is None or media.audio.size == 0:
            return np.zeros((n, self.dim), np.float32), np.zeros(n, bool)
        mel = self.log_mel(media.audio, media.sample_rate)
        if mel.shape[0] < PATCH:  # shorter than one patch: pad with silence
            floor = np.log(1e-2) if mel.size == 0 else mel.min()
            mel = np.concatenate([mel, np.full((PATCH - mel.shape[0], mel.shape[1]), floor, np.float32)])
        starts = frame_starts(n, media.fps, mel.shape[0])
        uniq, inverse = np.unique(starts, return_inverse=True)  # frames sharing a patch run once
        emb = np.zeros((len(uniq), self.dim), np.float32)
        with torch.inference_mode():
            for lo in range(0, len(uniq), self.batch_size):
                s = uniq[lo : lo + self.batch_size]
                patches = np.stack([mel[i : i + PATCH] for i in s])[:, None]  # (b, 1, 96, 64)
                emb[lo : lo + len(s)] = self.net(torch.from_numpy(patches).to(self.device)).float().cpu().numpy()
        duration = media.audio.size / media.sample_rate
        mask = np.arange(n) / media.fps < duration
        return emb[inverse] * mask[:, None], mask
