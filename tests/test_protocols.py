"""fusion_bench.protocols: importable without torch, and true of the built-ins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_protocols_import_neither_torch_nor_numpy():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    code = ("import sys, fusion_bench.protocols; "
            "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_metric_is_a_function_marked_with_its_direction():
    from fusion_bench.metrics import ccc
    from fusion_bench.protocols import Metric

    def mse(pred, target):
        return float(((pred - target) ** 2).mean())

    assert not isinstance(mse, Metric)  # the direction of improvement is part of a metric
    mse.higher_is_better = False
    assert isinstance(mse, Metric)

    def score(pred, target):
        return ccc(pred, target)

    score.higher_is_better = True
    assert isinstance(score, Metric)
