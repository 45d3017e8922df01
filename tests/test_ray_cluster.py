"""Sweeps (and extraction) on a simulated two-node Ray cluster: a head and a second node of one
CPU each (ray.cluster_utils.Cluster, on this machine), the second killed mid-work.

Slow (each test starts a cluster and Ray workers that import torch). Every test shuts its
cluster down (the fixture's teardown)."""

from __future__ import annotations

import collections
import threading
import time

import pytest

from fusion_bench import ray_executor
from fusion_bench import sweep as sweep_mod
from fusion_bench.errors import ConfigError
from fusion_bench.plugins import load_registry
from fusion_bench.ray_executor import kill_node_mid_task
from fusion_bench.results import ResultsStore

from .conftest import attempts_actor, tiny_overrides

NO_ENTRY_POINTS = sweep_mod.RegistrySpec(entry_points=False)


def configs(fusions=("concat", "lstm"), seeds=(0, 1), extra=()):
    return sweep_mod.grid(list(fusions), list(seeds), tiny_overrides() + list(extra), "quick", None)


def per_hash(store: ResultsStore) -> collections.Counter:
    return collections.Counter(r["config_hash"] for r in store.records())


@pytest.mark.slow
def test_a_sweep_spreads_over_both_nodes(cluster, tmp_path):
    ray, c, second = cluster
    store = ResultsStore(tmp_path)
    cfgs = configs()
    seen: dict = {}

    def watch():
        actor = attempts_actor(ray)
        while not seen.get("stop"):
            seen["where"] = ray.get(actor.where.remote())
            time.sleep(0.2)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    res = sweep_mod.sweep(cfgs, load_registry(entry_points=False), store, echo=lambda *_: None,
                          executor="ray", spec=NO_ENTRY_POINTS)
    seen["stop"] = True
    t.join(5)
    assert (res.done, res.failed, res.retried) == (4, 0, 0)
    nodes = {n for ns in seen["where"].values() for n in ns}
    assert nodes == {c.head_node.node_id, second.node_id}  # both nodes ran runs
    assert sorted(per_hash(store).values()) == [1, 1, 1, 1]


@pytest.mark.slow
def test_killing_the_second_node_mid_sweep_stores_every_run_exactly_once(cluster, tmp_path):
    ray, c, second = cluster
    store = ResultsStore(tmp_path)
    cfgs = configs(extra=[("train.epochs", "6")])  # runs long enough to be killed mid-way
    # mid-run: a run takes several seconds after it signs in on the node
    t, killed = kill_node_mid_task(ray, c, second, after_s=1.0)
    res = sweep_mod.sweep(cfgs, load_registry(entry_points=False), store, echo=lambda *_: None,
                          executor="ray", spec=NO_ENTRY_POINTS)
    t.join(10)
    assert killed, "the second node never ran a task"
    assert res.retried >= 1 and res.failed == 0 and res.done == 4
    counts = per_hash(store)
    assert len(counts) == 4 and set(counts.values()) == {1}  # exactly once each
    assert all(r["status"] == "ok" for r in store.records())


def test_resources_reach_every_task_and_bad_ones_are_one_line():
    class FakeSession:
        """What run_outcomes asks of a Session, without Ray: a 4-CPU node, one GPU."""

        attempts = None

        def __init__(self):
            self.asked = []

            class Task:
                def options(task, **opts):
                    self.asked.append(opts)
                    return task

                def remote(task, *args):
                    return object()

            class Ray:
                @staticmethod
                def remote(fn):
                    return Task()

            self.ray = Ray()

        def node_cpus(self):
            return 4, 4

        def gpus(self):
            return 1.0

        def options(self, cpus, gpus, retries):
            return {"num_cpus": cpus, "num_gpus": gpus, "max_retries": retries}

        def completed(self, refs):
            return iter(())

    s = FakeSession()
    list(ray_executor.run_outcomes(s, ["a", "b"], str, print, lambda x, n: (x, n), repr, None,
                                   ray_executor.Resources(cpus=2, gpus=0.25, retries=3),
                                   lambda x: True))
    assert s.asked == [{"num_cpus": 2, "num_gpus": 0.25, "max_retries": 3}] * 2
    s = FakeSession()  # defaults: the cluster's CPUs shared by --jobs 2, a whole GPU each
    list(ray_executor.run_outcomes(s, ["a"], str, print, lambda x, n: (x, n), repr, 2,
                                   ray_executor.Resources(), lambda x: True))
    assert s.asked == [{"num_cpus": 2, "num_gpus": 1, "max_retries": 2}]
    with pytest.raises(ConfigError, match="largest node .* 4 CPUs"):
        list(ray_executor.run_outcomes(FakeSession(), ["a"], str, print, lambda x, n: (x, n),
                                       repr, None, ray_executor.Resources(cpus=8), lambda x: True))
    for bad, match in [(dict(gpus=1.5), "fraction up to 1"), (dict(cpus=0), "more than 0"),
                       (dict(retries=-1), "0 or more")]:
        with pytest.raises(ConfigError, match=match):
            ray_executor.Resources(**bad)
    assert ray_executor.Resources(gpus=2).gpus == 2  # whole GPUs are fine


def test_resource_flags_without_ray_say_to_add_it(cli_run):
    code, _, err = cli_run("sweep", "--fusion", "concat", "--seeds", "1", "--gpus-per-run", "0.5")
    assert code == 2 and "--executor ray" in err


def test_plugin_files_are_copied_into_a_content_named_package(tmp_path):
    a = tmp_path / "my_fusion.py"
    a.write_text("X = 1\n")
    folder, names = ray_executor.ship_files([str(a), "some_module"], tmp_path / "stage")
    assert names == ["my_fusion.py"] and folder is not None
    assert (tmp_path / "stage").joinpath(folder.rsplit("/", 1)[1], "my_fusion.py").read_text() == "X = 1\n"
    again, _ = ray_executor.ship_files([str(a)], tmp_path / "stage")
    a.write_text("X = 2\n")
    changed, _ = ray_executor.ship_files([str(a)], tmp_path / "stage")
    assert again == folder and changed != folder  # named after the contents


def test_the_project_settings_travel_in_the_runtime_environment(monkeypatch):
    monkeypatch.setenv("FUSION_BENCH_DISABLE_PLUGINS", "evil")
    monkeypatch.delenv("FUSION_BENCH_PLUGINS", raising=False)
    env = ray_executor.runtime_env("/stage/fusion_bench_shipped_abc")
    assert env == {"env_vars": {"FUSION_BENCH_DISABLE_PLUGINS": "evil"},
                   "py_modules": ["/stage/fusion_bench_shipped_abc"]}


PLUGIN = '''
import os
import fusion_bench
from fusion_bench.fusions.concat import Concat

__version__ = os.path.dirname(os.path.abspath(__file__))  # where the worker loaded it from


class Shipped(Concat):
    """concat, from a plugin file"""


@fusion_bench.hookimpl
def register_fusions(register):
    register("shipped_concat", Shipped)
'''


@pytest.mark.slow
def test_a_plugin_file_is_shipped_to_the_workers(bare_cluster, tmp_path, monkeypatch):
    ray, c, _ = bare_cluster
    plugin = tmp_path / "src" / "shipped_plugin.py"
    plugin.parent.mkdir()
    plugin.write_text(PLUGIN)
    spec = sweep_mod.RegistrySpec.of([str(plugin)], entry_points=False)
    reg = load_registry(spec.plugins, entry_points=False)

    def one_run(store: ResultsStore, seed: int) -> str:
        res = sweep_mod.sweep(configs(fusions=("shipped_concat",), seeds=(seed,)), reg, store,
                              echo=lambda *_: None, executor="ray", spec=spec)
        assert (res.done, res.failed) == (1, 0)
        (record,) = store.records()
        where = record["plugins"]["fusion"]["version"]
        assert str(plugin.parent) not in where  # the worker's copy, not the driver's file
        return where

    # RAY_ADDRESS: the sweep joins the cluster itself, and ships the file in the job's
    # runtime environment (py_modules)
    monkeypatch.setenv("RAY_ADDRESS", c.address)
    assert "fusion_bench_shipped_" in one_run(ResultsStore(tmp_path / "a"), 0)
    assert not ray.is_initialized()  # it left the cluster it joined
    # a Ray the caller joined: its runtime environment is fixed, so the text goes in each task
    monkeypatch.delenv("RAY_ADDRESS")
    ray.init(address=c.address, log_to_driver=False)
    assert "fusion-bench-shipped-" in one_run(ResultsStore(tmp_path / "b"), 0)

