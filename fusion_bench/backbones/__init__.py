"""Backbones: feature extractors that turn one video's raw media into per-frame features.

A backbone plugin registers a class through ``register_backbones``; ``cls(model=None,
weights=None, random_init=False, device="cpu", **options)`` builds it and
``extract(media) -> (features float32 (n, dim), mask bool (n,))`` runs it on a
:class:`Media` of n frames. Class attributes: ``modality`` ("visual", "audio" or "text"),
``description``; instance attributes: ``dim`` and ``describe()`` (a JSON-able dict naming the
model, weights file, its SHA-256, the preprocessing and whether the weights are random; the cache
manifest is keyed by it).

Weights never come from the network: a backbone whose weights are not on disk raises
:class:`WeightsError` saying which file to put where; ``random_init=True`` (CLI ``--random-init``)
builds it with random weights instead, and ``describe()`` records ``"random_init": true``.

This module imports no heavy package; each backbone imports its library inside its methods.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FusionBenchError
from ..files import file_sha256  # noqa: F401 - the backbones import it from here


class WeightsError(FusionBenchError):
    """A backbone's weights are missing or unreadable; the message says which file goes where."""


def weights_dir() -> Path:
    """Where backbones look for weights by default: ``$FUSION_BENCH_WEIGHTS`` or
    ``~/.cache/fusion-bench/weights``."""
    env = os.environ.get("FUSION_BENCH_WEIGHTS")
    return Path(env) if env else Path.home() / ".cache" / "fusion-bench" / "weights"


@dataclass
class Media:
    """One video's raw media, frame-indexed at ``fps``.

    crops: float32 (n, H, W, 3) RGB in [0, 1] or None; crop_mask: bool (n,) True where a face
    crop exists; audio: float32 mono waveform or None, at ``sample_rate`` Hz, starting at frame
    0's time; words: (word, start_s, end_s) tuples of the transcript.
    """

    name: str
    n_frames: int
    fps: float
    crops: np.ndarray | None = None
    crop_mask: np.ndarray | None = None
    audio: np.ndarray | None = None
    sample_rate: int = 16000
    words: list[tuple[str, float, float]] = field(default_factory=list)


def resolve_weights(kind: str, model: str, weights: str | None, random_init: bool,
                    default_name: str, hint: str = "") -> Path | None:
    """The weights path to load, or None for random init.

    ``weights`` given: it must exist. Otherwise the default ``weights_dir()/<kind>/<default_name>``
    is used when present. Neither and no ``random_init``: :class:`WeightsError`.
    """
    if weights:
        p = Path(weights).expanduser()
        if not p.exists():
            raise WeightsError(f"backbone {kind} {model!r}: weights file {p} does not exist")
        return p
    default = weights_dir() / kind / default_name
    if default.exists():
        return default
    if random_init:
        return None
    raise WeightsError(
        f"backbone {kind} {model!r}: no weights on disk; put the checkpoint at {default} "
        f"(or pass --weights {kind}=PATH){hint}, or pass --random-init to extract with random "
        "weights (the record will say so)"
    )


def load_state_dict(path: Path, kind: str):
    """A state dict from a checkpoint file; unwraps ``state_dict``/``model`` and ``module.``."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling/format error is the user's file
        raise WeightsError(f"backbone {kind}: cannot read weights {path}: {type(e).__name__}: {e}") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise WeightsError(f"backbone {kind}: {path} holds a {type(obj).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_into(module, state: dict, path: Path, kind: str) -> None:
    """Load ``state`` into ``module`` ignoring classifier heads; fail when most keys do not match."""
    own = module.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in usable]
    if len(usable) < 0.9 * len(own):
        raise WeightsError(
            f"backbone {kind}: {path} matches only {len(usable)} of the model's {len(own)} "
            f"tensors (first missing: {', '.join(missing[:3])}); is it a checkpoint of this model?"
        )
    module.load_state_dict(usable, strict=False)


def pick_device(device: str):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Mono float waveform at ``rate`` → at ``target`` (polyphase if scipy is present)."""
    if rate == target or wave.size == 0:
        return wave.astype(np.float32)
    try:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(rate), int(target))
        return resample_poly(wave, target // g, int(rate) // g).astype(np.float32)
    except ImportError:
        n = int(round(wave.size * target / rate))
        return np.interp(np.arange(n) * rate / target, np.arange(wave.size), wave).astype(np.float32)


def build_backbones(registry, specs: dict[str, str], weights: dict[str, str], random_init: bool,
                    device: str) -> dict:
    """modality → built backbone, from ``NAME[:MODEL]`` specs (e.g. ``timm:resnet50``) and local
    ``weights`` paths per modality."""
    from ..errors import ConfigError

    unknown = set(weights) - set(specs)
    if unknown:
        raise ConfigError(f"--weights given for {', '.join(sorted(unknown))} but no --backbone for it")
    for modality, path in weights.items():  # whether or not the backbone would look
        if not Path(path).expanduser().exists():
            raise WeightsError(f"--weights {modality}={path}: {Path(path).expanduser()} does not exist")
    out = {}
    for modality, spec in specs.items():
        name, _, model = spec.partition(":")
        cls = registry.get("backbones", name).obj
        if getattr(cls, "modality", modality) != modality:
            raise ConfigError(f"backbone {name!r} extracts {cls.modality}, not {modality}; "
                              f"use --backbone {cls.modality}={spec}")
        out[modality] = cls(model=model or None, weights=weights.get(modality),
                            random_init=random_init, device=device)
    return out
