"""Shared fixtures: a tiny synthetic configuration that trains in a second or two."""

from __future__ import annotations

import pytest
import torch

# Tiny tensors: one thread is as fast, and timing-independent of whatever else runs.
torch.set_num_threads(1)

TINY = [
    "--set", "dataset.synthetic.n_train=6", "--set", "dataset.synthetic.n_val=3", "--set", "dataset.synthetic.n_test=3",
    "--set", "dataset.synthetic.min_frames=100", "--set", "dataset.synthetic.max_frames=160",
    "--set", "dataset.synthetic.dim_visual=8", "--set", "dataset.synthetic.dim_audio=6", "--set", "dataset.synthetic.dim_text=5",
    "--set", "train.epochs=2", "--set", "encoder.channels=8", "--set", "encoder.levels=2",
    "--quiet",
]


def tiny_overrides() -> list[tuple[str, str]]:
    """TINY as (key, value) pairs for build_config."""
    out = []
    it = iter(TINY)
    for a in it:
        if a == "--set":
            k, _, v = next(it).partition("=")
            out.append((k, v))
    out.append(("train.progress", "false"))
    return out


@pytest.fixture
def tiny_args():
    return list(TINY)


@pytest.fixture
def cli_run(tmp_path, capsys):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    from fusion_bench.cli import main

    def _run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run
