"""What a benchmark measures and how (:class:`BenchSettings`); no torch here, so the CLI
checks settings before anything heavy is imported."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch


SCOPES = ("model", "fusion")


#: torch.compile's modes (``mode=None`` is "default")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class BenchSettings:
    """What :func:`run_bench` measures and how; ``None`` means "the default for the device"."""

    device: str | None = None  # None: the config's device (auto: cuda if available)
    amp: str | None = None  # "bf16" | "fp16": torch.autocast around forward passes
    compile: bool = False  # torch.compile the timed module
    # torch.compile's mode; "reduce-overhead" replays CUDA graphs, which removes the per-kernel
    # launch cost that dominates these small models on a fast GPU
    compile_mode: str = "default"
    batch_size: int | None = None  # None: train.batch_size
    seq_len: int | None = None  # None: data.window (64, the window rule's cap, where it is 0)
    scope: str = "model"  # "model": encoders + fusion + head; "fusion": the fusion alone
    warmup: int | None = None  # untimed calls per measurement (CPU 1, GPU 10)
    repeats: int | None = None  # timed calls at the run batch (CPU 3, GPU 30)
    latency_repeats: int | None = None  # timed calls at batch 1 (CPU 10, GPU 100)
    train: bool = True  # also time training steps
    find_max_batch: bool = False
    max_batch: int = 4096  # upper bound of the search
    threads: int | None = None  # torch.set_num_threads on CPU (None: torch's default)
    peak_tflops: float | None = None  # device peak for the achieved fraction (None: table)
    group: str | None = None  # id shared by the records of one `bench --all`

    def __post_init__(self):
        if self.peak_tflops is not None and not 0 < self.peak_tflops < math.inf:  # NaN, inf too
            raise ConfigError(f"--peak-tflops must be a positive number, got {self.peak_tflops}")
        if self.compile_mode not in COMPILE_MODES:
            raise ConfigError(f"unknown --compile-mode {self.compile_mode!r}; use one of "
                              + ", ".join(COMPILE_MODES))


def defaults_for(device: torch.device) -> dict[str, int]:
    """Warm-up and repeat counts: few on CPU, where one paper-shape training step takes seconds."""
    if device.type == "cpu":
        return {"warmup": 1, "repeats": 3, "latency_repeats": 10}
    return {"warmup": 10, "repeats": 30, "latency_repeats": 100}
