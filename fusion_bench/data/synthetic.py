"""The embedded synthetic dataset: deterministic, generated in well under a second, fusion matters.

Generative process (one video of n frames at 30 fps; n uniform in [min_frames, max_frames]):

Latents (smooth, in [-1, 1]):
  * valence   v(t) = tanh(0.9 ṽ(t) + 0.4 ℓ_v)          ṽ: Gaussian-smoothed noise (σ = 45 frames)
  * arousal   a(t) = tanh(0.9 (√(1−ι) b̃(t) + √ι c(t)/0.75) + 0.4 ℓ_a)
    - b̃: the "base" arousal (σ = 30 frames), carried by audio (and weakly by the face);
    - c(t) = tanh(1.5 c̃(t)) ∈ (−1, 1), c̃ smoothed noise (σ = 60 frames): **audio–visual
      synchrony** (std ≈ 0.75, hence /0.75: unit variance like b̃). ι = ``interaction`` is the
      share of the arousal drive that only synchrony carries;
    - ℓ_v, ℓ_a ~ N(0, 1): per-video levels ("this speaker is calm"), carried by the same features
      as the time-varying part, so every label component is carried by some modality.
Fast "gesture" signals (band-pass noise, ~1–8 Hz, unit variance):
  * g_v(t) drives the face; g_a(t) = c(t) g_v(t) + √(1 − c(t)²) n(t) drives the voice, n an
    independent band-pass noise of the same spectrum. So g_a has the same law whatever c is: neither
    modality alone says anything about c, and the per-frame product g_v g_a has mean c but variance
    ≈ 1 + c², so only integrating the cross-modal product over time (≈ 1–2 s) recovers c.
    :func:`interaction_check` measures exactly this (see the test of the same name).
Features (per modality: a fixed random mixing of its sources, per-video speaker offset, noise):
  the drives carry the levels: v* = 0.9 ṽ + 0.4 ℓ_v (so v = tanh v*), b* = b̃ + 0.45 ℓ_a, and
  g_v, g_a are scaled by ``sync_strength``.
  * visual (d_v): sources [v*, 0.3 b*, g_v] at lag 2 frames; occlusions: 0–2 segments of 1–5 s masked;
  * audio  (d_a): sources [b*, 0.3 v*, g_a] at lag 4 frames; silences: 1–3 segments of 0.7–3 s masked;
  * text   (d_t): sparse word events (~1.5 words/s while not silent, 6–12 frames each; mask False
    and zeros between words), each word a vector carrying v* 12 frames before its onset, plus
    a per-word noise vector.
  Every feature channel gets N(0, ``noise``²) frame noise, and each video a constant speaker
  offset of std ``offset`` per channel, all but an ``offset_leak`` share of it outside the span of
  the modality's sources (identity is mostly orthogonal to expression; see ``_speaker_offset``).
Labels: latent + smoothed annotation noise (σ = 5 frames, scale ``label_noise``), clipped to
[-1, 1]; about half the videos get 1–2 runs of 20–100 frames labelled -5 (invalid), as Aff-Wild2.

The **ceiling** reported with each run is the CCC of the noiseless latent against the noisy label
over a split's valid frames: what a model that recovered the latents exactly would score.

``label_level = "sequence"``: the same videos cut into utterances, one label each (mean latent
plus noise: :func:`fusion_bench.data.utterances.utterances`); the ceiling is over utterances.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ConfigError
from ..metrics import ccc
from . import INVALID_LABEL, LABEL_LEVELS, TARGETS, Video
from .utterances import utterances

VERSION = "2"  # 2: one seed sequence per split
_LAGS = {"visual": 2, "audio": 4}  # frames between a latent and the feature that shows it
FPS = 30


@dataclass
class SyntheticConfig:
    """Knobs of the generator: the dataset's options (``--set dataset.synthetic.<name>=...``, TOML
    ``[dataset.synthetic]``; ``synthetic.<name>`` is the old spelling)."""

    n_train: int = 192
    n_val: int = 16
    n_test: int = 48
    min_frames: int = 300
    max_frames: int = 900
    dim_visual: int = 32
    dim_audio: int = 16
    dim_text: int = 24
    interaction: float = 0.5  # share of the arousal drive carried only by AV synchrony
    noise: float = 1.0  # per-frame feature noise std
    label_noise: float = 0.15  # annotation noise std
    sync_strength: float = 1.0  # amplitude of the gesture sources in the features
    offset: float = 0.5  # std of the per-video speaker offset per channel
    offset_leak: float = 0.1  # share of the offset inside the sources' span (irreducible bias)
    # "frame": a label per frame; "sequence": each video cut into utterances, a label each
    label_level: str = "frame"
    utterance_min_frames: int = 20  # shortest utterance (sequence level)
    utterance_max_frames: int = 100  # longest utterance (sequence level)

    def check(self) -> None:
        """ConfigError naming the first knob outside its range."""
        if self.label_level not in LABEL_LEVELS:
            raise ConfigError("dataset.synthetic.label_level must be 'frame' or 'sequence', "
                              f"got {self.label_level!r}")
        for key, low in (("n_train", 1), ("n_val", 1), ("n_test", 1), ("min_frames", 1),
                         ("dim_visual", 1), ("dim_audio", 1), ("dim_text", 1), ("noise", 0),
                         ("utterance_min_frames", 1), ("label_noise", 0), ("sync_strength", 0),
                         ("offset", 0)):
            value = getattr(self, key)
            if not value >= low:  # also catches NaN
                raise ConfigError(f"dataset.synthetic.{key} must be ≥ {low}, got {value}")
            if not math.isfinite(value):  # inf noise: NaN features
                raise ConfigError(f"dataset.synthetic.{key} must be a finite number, got {value}")
        for lo, hi in (("min_frames", "max_frames"), ("utterance_min_frames", "utterance_max_frames")):
            if getattr(self, hi) < getattr(self, lo):
                raise ConfigError(f"dataset.synthetic.{hi} ({getattr(self, hi)}) is below "
                                  f"dataset.synthetic.{lo} ({getattr(self, lo)})")
        for key in ("interaction", "offset_leak"):
            if not 0 <= getattr(self, key) <= 1:
                raise ConfigError(f"dataset.synthetic.{key} is a share, between 0 and 1; got "
                                  f"{getattr(self, key)}")


def _smooth(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Unit-variance Gaussian-smoothed white noise of length n."""
    half = int(3 * sigma) + 1
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    k /= np.sqrt((k * k).sum())  # unit variance for unit white noise
    return np.convolve(rng.standard_normal(n + 2 * half), k, mode="valid")


def _bandpass(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-variance noise with energy between ~1 and ~8 Hz at 30 fps (difference of Gaussians)."""
    w = rng.standard_normal(n + 40)
    t = np.arange(-20, 21)
    fast = np.exp(-0.5 * (t / 1.0) ** 2)
    slow = np.exp(-0.5 * (t / 5.0) ** 2)
    k = fast / fast.sum() - slow / slow.sum()
    k /= np.sqrt((k * k).sum())
    return np.convolve(w, k, mode="valid")[:n]


def _lag(x: np.ndarray, lag: int) -> np.ndarray:
    """x delayed by ``lag`` frames (the first frames repeat x[0]); as long as x, also when x
    is shorter than the lag (every frame is then x[0])."""
    lag = min(lag, len(x))
    if lag == 0:
        return x
    return np.concatenate([np.repeat(x[:1], lag, axis=0), x[: len(x) - lag]], axis=0)


def _speaker_offset(rng, q: np.ndarray, scale: float, leak: float) -> np.ndarray:
    """A per-video constant feature vector ("speaker identity"). Like real identity features it
    lies mostly outside the span of the expression sources (the mixing matrix's rows; ``q`` (d, k)
    is its orthonormal basis), where a linear read-out can ignore it; a ``leak`` share lies inside
    it and biases the read-out for the whole video, which no model can undo from one window."""
    z = rng.standard_normal(q.shape[0])
    inside = q @ (q.T @ z)
    return scale * ((z - inside) + leak * inside)


def _segments(rng, n: int, count: int, lo: int, hi: int) -> np.ndarray:
    """bool (n,), True inside ``count`` random segments of length in [lo, hi]."""
    out = np.zeros(n, bool)
    for _ in range(count):
        length = int(rng.integers(lo, hi + 1))
        s = int(rng.integers(0, max(1, n - length)))
        out[s : s + length] = True
    return out


class SyntheticDataset:
    """The default dataset (see the module docstring for the generative process).

    Its options are :class:`SyntheticConfig` (``Options``); ``data_version`` names the generator,
    so that runs on data of another generator are other runs (the dataset plugin contract is in
    :mod:`fusion_bench.data`)."""

    name = "synthetic"
    description = "embedded synthetic AV+text data where fusion matters (deterministic from a seed)"
    reference = ""
    targets = TARGETS
    all_modalities = ("visual", "audio", "text")
    Options = SyntheticConfig
    data_version = VERSION

    def __init__(self, options: dict | None = None, modalities=("visual", "audio", "text"), seed: int = 0):
        self.seed = int(seed)
        self.config: SyntheticConfig
        if isinstance(options, SyntheticConfig):
            self.config = options
        else:
            try:
                self.config = SyntheticConfig(**(options or {}))
            except TypeError as e:
                raise ConfigError(f"synthetic dataset: {e}") from None
        self.config.check()
        self.label_level = self.config.label_level  # the dataset contract's
        for m in modalities:
            if m not in self.all_modalities:
                raise ConfigError(
                    f"the synthetic dataset has modalities {', '.join(self.all_modalities)}; "
                    f"got {m!r} in data.modalities"
                )
        self.modalities = tuple(modalities)
        self.dims = {m: getattr(self.config, f"dim_{m}") for m in self.modalities}
        self._splits: dict[str, list[Video]] | None = None

    @classmethod
    def from_config(cls, cfg) -> SyntheticDataset:
        """Build from a :class:`fusion_bench.config.RunConfig` (``dataset.synthetic.*``, ``data.*``)."""
        from ..options import dataset_options

        return cls(dataset_options(cfg, cls), cfg.data.modalities, seed=cfg.data.seed)

    # -- generation -------------------------------------------------------------------------
    def _mixing(self) -> dict[str, np.ndarray]:
        """Fixed per-dataset mixing matrices (sources × dim), scaled so each source has unit gain."""
        rng = np.random.default_rng([self.seed, 0])
        c = self.config
        mats = {}
        for m, k in (("visual", 3), ("audio", 3), ("text", 1)):
            d = getattr(c, f"dim_{m}")
            mats[m] = rng.standard_normal((k, d)) / np.sqrt(d) * 2.0
        return mats

    def _video(self, rng: np.random.Generator, name: str, mix: dict,
               basis: dict) -> tuple[Video, np.ndarray]:
        c = self.config
        n = int(rng.integers(c.min_frames, c.max_frames + 1))
        iota = c.interaction
        lv, la = rng.standard_normal(2)
        v_drive = 0.9 * _smooth(rng, n, 45) + 0.4 * lv
        v = np.tanh(v_drive)
        base = _smooth(rng, n, 30)
        sync = np.tanh(1.5 * _smooth(rng, n, 60))  # std ≈ 0.75
        a = np.tanh(0.9 * (np.sqrt(1 - iota) * base + np.sqrt(iota) * sync / 0.75) + 0.4 * la)
        base_drive = base + 0.45 * la  # what the voice carries: base arousal and its level
        g_v = _bandpass(rng, n)
        g_a = sync * g_v + np.sqrt(1 - sync**2) * _bandpass(rng, n)
        s = c.sync_strength

        feats, masks = {}, {}
        # visual: valence, a little base arousal (its per-video level too), gesture
        src_v = np.stack([v_drive, 0.3 * base_drive, s * g_v], 1)
        occl = _segments(rng, n, int(rng.integers(0, 3)), 30, 150)
        # audio: base arousal with its level, a little valence, gesture
        src_a = np.stack([base_drive, 0.3 * v_drive, s * g_a], 1)
        silence = _segments(rng, n, int(rng.integers(1, 4)), 20, 90)
        for m, src, off_mask in (("visual", src_v, occl), ("audio", src_a, silence)):
            lag = _LAGS[m]
            d = mix[m].shape[1]
            offset = _speaker_offset(rng, basis[m], c.offset, c.offset_leak)
            x = _lag(src, lag) @ mix[m] + offset + c.noise * rng.standard_normal((n, d))
            keep = ~_lag(off_mask, lag)
            feats[m], masks[m] = (x * keep[:, None]).astype(np.float32), keep
        # text: word events while someone speaks; each word carries valence 12 frames earlier
        d = mix["text"].shape[1]
        words = np.zeros(n, bool)
        x = np.zeros((n, d))
        t = int(rng.integers(0, 20))
        while t < n:
            length = int(rng.integers(6, 13))
            if not silence[t]:
                e = min(n, t + length)
                vec = v_drive[max(0, t - 12)] * mix["text"][0] + 0.5 * c.noise * rng.standard_normal(d)
                x[t:e] = vec
                words[t:e] = True
            t += length + int(rng.geometric(1.0 / 12))
        offset = _speaker_offset(rng, basis["text"], c.offset, c.offset_leak)
        feats["text"] = ((x + offset) * words[:, None]).astype(np.float32)
        masks["text"] = words

        latent = np.stack([v, a], 1)
        labels = np.clip(
            latent + c.label_noise * np.stack([_smooth(rng, n, 5), _smooth(rng, n, 5)], 1), -1, 1
        ).astype(np.float32)
        if rng.random() < 0.5:
            labels[_segments(rng, n, int(rng.integers(1, 3)), 20, 100)] = INVALID_LABEL
        meta = {"sync": sync.astype(np.float32)}
        video = Video(
            name=name,
            features={m: feats[m] for m in self.modalities},
            masks={m: masks[m] for m in self.modalities},
            labels=labels,
            meta=meta,
        )
        return video, latent.astype(np.float32)

    def _generate(self) -> None:
        c = self.config
        mix = self._mixing()
        basis = {m: np.linalg.qr(x.T)[0] for m, x in mix.items()}  # (d, k) each, for the offsets
        sizes = {"train": c.n_train, "val": c.n_val, "test": c.n_test}
        self._splits, self._latents = {}, {}
        for number, (split, k) in enumerate(sizes.items()):
            # one seed sequence per split: a split's videos do not depend on the other splits'
            # sizes (more training videos leave the test split as it was). numpy mixes a trailing
            # 0 away, so [seed, 1, 0] is version 1's [seed, 1]: the first 112 training videos are
            # version 1's train, val and test videos (in that order). Val and test are new draws,
            # so within one version no split overlaps another; never score a version-2 model on
            # version-1 test videos.
            children = np.random.SeedSequence([self.seed, 1, number]).spawn(k)
            vids, lats = [], []
            for j, child in enumerate(children):
                vid, lat = self._video(np.random.default_rng(child), f"{split}_{j:03d}", mix, basis)
                vids.append(vid)
                lats.append(lat)
            if c.label_level == "sequence":
                vids, lats = utterances(vids, lats, [self.seed, 2, number], c)
            self._splits[split], self._latents[split] = vids, lats

    # -- dataset interface --------------------------------------------------------------------
    def splits(self) -> dict[str, list[Video]]:
        if self._splits is None:
            self._generate()
        assert self._splits is not None  # _generate fills it
        return self._splits

    def ceiling(self, split: str) -> dict[str, float]:
        """CCC of the noiseless latent against the noisy label over ``split``'s valid frames."""
        vids = self.splits()[split]
        lab = np.concatenate([v.labels for v in vids])
        lat = np.concatenate(self._latents[split])
        ok = (lab != INVALID_LABEL).all(1)
        out = {t: ccc(lat[ok, i], lab[ok, i]) for i, t in enumerate(TARGETS)}
        out["mean"] = float(np.mean([out[t] for t in TARGETS]))
        return out

    def info(self) -> dict:
        splits = self.splits()
        return {
            "name": self.name,
            "version": self.data_version,
            "seed": self.seed,
            "generator": {k: v for k, v in asdict(self.config).items()  # as before the sequence
                          if self.label_level == "sequence" or "utterance" not in k  # level
                          and k != "label_level"},  # existed, at frame level
            "videos": {s: len(v) for s, v in splits.items()},
            "frames": {s: int(sum(x.n_frames for x in v)) for s, v in splits.items()},
            "ceiling": {s: self.ceiling(s) for s in splits},
        }


def _window_mean(x: np.ndarray, w: int, ok: np.ndarray | None = None,
                 centred: bool = False) -> np.ndarray:
    """Mean along axis 0 over the last ``w`` frames (fewer at the start), or over the ``w``
    frames centred on each frame; with ``ok``, over the frames where ``ok`` only (0 where the
    window holds none)."""
    if ok is not None:
        x = x * ok.reshape((-1,) + (1,) * (x.ndim - 1))
    c = np.cumsum(np.concatenate([np.zeros((1,) + x.shape[1:]), x]), axis=0)
    t = np.arange(len(x))
    lo, hi = (np.maximum(t - w // 2, 0), np.minimum(t + w - w // 2, len(x))) if centred \
        else (np.maximum(t + 1 - w, 0), t + 1)
    if ok is None:
        n = hi - lo
    else:
        k = np.concatenate([[0], np.cumsum(ok)])
        n = np.maximum(k[hi] - k[lo], 1)
    return (c[hi] - c[lo]) / n.reshape((-1,) + (1,) * (x.ndim - 1))


def _r2(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> float:
    """Out-of-sample R² of a least-squares fit (with intercept) trained on ``train``."""
    (xa, ya), (xb, yb) = train, test
    xa = np.hstack([xa, np.ones((len(xa), 1))])
    xb = np.hstack([xb, np.ones((len(xb), 1))])
    coef = np.linalg.lstsq(xa, ya, rcond=None)[0]
    resid = yb - xb @ coef
    return float(1.0 - np.mean(resid**2) / yb.var())  # out of sample: a biased fit counts


def _sync_sources(dataset: SyntheticDataset, videos: list[Video]) -> list[dict]:
    """Per video: the gesture sources of visual and audio, the visual×audio source products per
    frame (``product``), the frames where both modalities are present (``ok``) and the
    synchrony c(t) itself (``sync``).

    Each modality's features are denoised to its sources by the least-squares inverse of the
    generator's mixing (the best linear read-out) and centred per video; visual is shifted by the
    modalities' lag difference so that both gesture sources refer to the same instant.
    """
    mix = dataset._mixing()
    pinv = {m: np.linalg.pinv(mix[m]) for m in ("visual", "audio")}  # (d, k)
    out = []
    for v in videos:
        ok = v.masks["visual"] & v.masks["audio"]
        src = {}
        for m in ("visual", "audio"):
            x = v.features[m].astype(np.float64) @ pinv[m]
            src[m] = x - x[ok].mean(0)
        src["visual"] = _lag(src["visual"], _LAGS["audio"] - _LAGS["visual"])
        prod = (src["visual"][:, :, None] * src["audio"][:, None, :]).reshape(len(ok), -1)
        out.append({**src, "product": prod, "ok": ok, "sync": v.meta["sync"].astype(np.float64)})
    return out


def interaction_check(dataset: SyntheticDataset, window: int = 45) -> dict[str, float]:
    """How much of the synchrony latent c(t) each kind of feature statistic recovers.

    Out-of-sample R² (fit on train videos, scored on test videos, frames where visual and audio
    are both present) of a linear read-out of c(t) from the denoised sources (see
    :func:`_sync_sources`; the best linear read-out, so these numbers are upper bounds for
    that kind of statistic):
      * ``visual_alone`` / ``audio_alone``: each source's causal rolling mean and rolling energy
        over ``window`` frames (what a single-modality temporal encoder could compute);
      * ``per_frame_product``: every visual×audio source product at one frame (a per-frame
        fusion followed by a multiplicative head);
      * ``windowed_product``: those products averaged over the last ``window`` frames
        (cross-modal integration over time, what a fusion is meant to learn).
    By construction the first three stay near 0 and the last is large.
    """
    splits = dataset.splits()

    def stacked(split):
        stats: dict[str, list] = {}
        ys = []
        for p in _sync_sources(dataset, splits[split]):
            ok = p["ok"]
            for m in ("visual", "audio"):
                x = p[m]
                stats.setdefault(f"{m}_alone", []).append(
                    np.hstack([_window_mean(x, window), _window_mean(x * x, window)])[ok])
            stats.setdefault("per_frame_product", []).append(p["product"][ok])
            stats.setdefault("windowed_product", []).append(_window_mean(p["product"], window)[ok])
            ys.append(p["sync"][ok])
        return {k: np.concatenate(x) for k, x in stats.items()}, np.concatenate(ys)

    (tr, ytr), (te, yte) = stacked("train"), stacked("test")
    return {k: _r2((tr[k], ytr), (te[k], yte)) for k in tr}


def synchrony_oracle(dataset: SyntheticDataset, window: int = 64, split: str = "test") -> float:
    """Arousal CCC on ``split`` of an oracle that knows every latent except the synchrony c(t),
    which it estimates from the features: the visual×audio products of the denoised sources (as
    in :func:`interaction_check`) averaged over the frames with both modalities present in the
    ``window`` frames centred on each frame (default 64: the context one window of the ``quick``
    preset gives a model), read out linearly (least squares on train frames, clipped to (−1, 1)).

    The noiseless-latent ceiling assumes c(t) is known exactly; no model knows it, since only a
    noisy cross-modal correlation over a short context carries it. This is a reference point for
    what that costs, not a proof of a bound: a nonlinear read-out may do somewhat better, a
    model that must also learn the unmixing and the other latents will do worse.
    """
    splits = dataset.splits()

    def estimates(videos):
        for p in _sync_sources(dataset, videos):
            wp = _window_mean(p["product"], window, ok=p["ok"], centred=True)
            yield np.hstack([wp, np.ones((len(wp), 1))]), p

    train = list(estimates(splits["train"]))
    x = np.concatenate([a[p["ok"]] for a, p in train])
    y = np.concatenate([p["sync"][p["ok"]] for _, p in train])
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    iota, preds, labels = dataset.config.interaction, [], []
    for (a, p), v, lat in zip(estimates(splits[split]), splits[split], dataset._latents[split],
                              strict=True):
        c_hat = np.clip(a @ coef, -0.999, 0.999)
        # a = tanh(0.9 (√(1−ι) b̃ + √ι c / 0.75) + 0.4 ℓ_a): swap the exact c for its estimate
        drive = np.arctanh(np.clip(lat[:, 1].astype(np.float64), -1 + 1e-7, 1 - 1e-7))
        drive += 0.9 * np.sqrt(iota) * (c_hat - p["sync"]) / 0.75
        preds.append(np.tanh(drive))
        labels.append(v.labels[:, 1])
    pred, lab = np.concatenate(preds), np.concatenate(labels)
    ok = lab != INVALID_LABEL
    return float(ccc(pred[ok], lab[ok]))
