"""The floor of the torch side: seeding, the compute device, and the environment a result
depends on. Imports nothing of fusion_bench but the errors and :mod:`fusion_bench.provenance`."""

from __future__ import annotations

import platform
import random

import numpy as np
import torch

from . import __version__
from .errors import ConfigError
from .provenance import cpu_name, git_commit


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:1 or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    return dev


def compute_device(name: str) -> torch.device:
    """:func:`resolve_device`, made ready to compute on: on CPU, subnormal floats are flushed to
    zero. They (e.g. a TCN over mostly-zero text features) slow CPU kernels ~6× here (a text-only
    run: 20.6 s -> 3.4 s), and values below 1e-38 cannot move a CCC."""
    device = resolve_device(name)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    return device


def environment(device: str) -> dict:
    """Versions and hardware that a result depends on."""
    dev = torch.device(device)
    name = cpu_name()
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    return {
        "fusion_bench": __version__,
        **git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(dev),
        "device_name": name,
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
