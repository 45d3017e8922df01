"""The pytest-benchmark suite: every registered fusion at the paper's shapes on CPU (tox -e bench).

Not part of the default test run (pyproject's addopts ignore this folder). Shapes: batch 12,
windows of L = 300 frames, the encoders' output widths of the paper preset (visual 512, audio 128,
text 512). ``FUSION_BENCH_THREADS`` sets torch's CPU threads (default: all CPUs available); the
machine's load shows in the timings, so compare runs made on the same, otherwise idle, machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

BATCH, SEQ_LEN = 12, 300
PAPER_DIMS = {"visual": 512, "audio": 128, "text": 512}  # after the paper's TCN encoders


def pytest_configure(config):
    # tests/conftest.py runs the unit tests on one thread; benchmarks use every CPU this process
    # may run on, unless FUSION_BENCH_THREADS says otherwise
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = os.environ.get("FUSION_BENCH_THREADS") or cpus
    torch.set_num_threads(int(threads))
    torch.set_flush_denormal(True)  # as the trainer does on CPU
    out = config.getoption("benchmark_json", None)
    if out is not None:  # tox writes to .benchmarks/, which may not exist yet
        path = Path(out.name) if hasattr(out, "write") else Path(out)  # a file in old versions
        path.parent.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def registry():
    from fusion_bench.plugins import load_registry

    return load_registry()


@pytest.fixture
def paper_inputs():
    """Encoded features (B, L, d_m) that want gradients (as they do inside the model) and masks
    with 10 % of frames missing."""
    gen = torch.Generator().manual_seed(0)
    feats = {m: torch.randn(BATCH, SEQ_LEN, d, generator=gen).requires_grad_()
             for m, d in PAPER_DIMS.items()}
    masks = {m: torch.rand(BATCH, SEQ_LEN, generator=gen) >= 0.1 for m in PAPER_DIMS}
    return feats, masks
