"""Floor: what torchrun told this process (``WORLD_SIZE``, ``RANK``), read from the environment
without importing torch, so the CLI can tell rank 0 from the others before anything heavy loads.
:mod:`fusion_bench.distributed` builds the process group on it."""

from __future__ import annotations

import os


def env_world() -> int:
    """The number of processes torchrun started (1 without torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def env_rank() -> int:
    """This process's rank as torchrun set it (``RANK``; 0 without torchrun), known before the
    process group is up."""
    try:
        return int(os.environ.get("RANK", "0")) if env_world() > 1 else 0
    except ValueError:
        return 0
