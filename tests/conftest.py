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


def rcma_record(**train) -> dict:
    """A leaderboard record (config and dataset only) of the default configuration with the
    fusion rcma and the ``train`` settings given, for tests of row keys and labels."""
    from fusion_bench.config import RunConfig

    cfg = RunConfig()
    cfg.model.fusion = "rcma"
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return {"config": cfg.to_dict(), "dataset": {"name": "synthetic", "version": "2"}}


def script(name: str):
    """``scripts/<name>.py`` as a module (scripts/ is no package), for the tests of a script."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


# -- a simulated two-node Ray cluster (tests/test_ray_*.py) ---------------------------------------
@pytest.fixture
def bare_cluster():
    """A head node and a second node, one CPU each, not joined; yields (ray, cluster, second
    node)."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        second = c.add_node(num_cpus=1)
        c.wait_for_nodes()
        yield ray, c, second
    finally:
        ray.shutdown()  # whoever joined it
        c.shutdown()


@pytest.fixture
def cluster(bare_cluster):
    """The two-node cluster, joined by this process (a Ray the sweep did not start)."""
    ray, c, second = bare_cluster
    ray.init(address=c.address, log_to_driver=False)
    return bare_cluster


def attempts_actor(ray, timeout: float = 60.0):
    """The attempts log (a named actor) of the sweep or extraction running, once it exists."""
    from fusion_bench.ray_executor import attempts_log

    actor = attempts_log(ray, timeout)
    if actor is None:
        raise AssertionError("no attempts actor")
    return actor
