"""The closing table of "past one machine": sweeps and extraction on a simulated Ray cluster (one
node; two nodes, the second killed mid-work) and one run on two torchrun processes against one.

    OMP_NUM_THREADS=1 python scripts/scale_table.py [--seeds 3] [--out scale_table.md]

Everything runs on this machine: the "nodes" are Ray raylets of one CPU each
(ray.cluster_utils.Cluster), so the wall times measure overheads and contention, not speed-up.
Prints Markdown; every cluster is shut down at the end of its row.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fusion_bench.ray_executor import kill_node_mid_task  # noqa: E402 - after the path

TINY = [("dataset.synthetic.n_train", "6"), ("dataset.synthetic.n_val", "3"),
        ("dataset.synthetic.n_test", "3"), ("dataset.synthetic.min_frames", "100"),
        ("dataset.synthetic.max_frames", "160"), ("encoder.channels", "8"),
        ("encoder.levels", "2"), ("train.epochs", "6"), ("train.progress", "false")]

STUB = '''
import time
import numpy as np
import fusion_bench


class MeanRGB:
    """the mean colour of each face crop (a stand-in backbone; 1.5 s a video)"""

    modality = "visual"
    dim = 3

    def __init__(self, model=None, weights=None, random_init=False, device="cpu"):
        pass

    def describe(self):
        return {"backbone": "meanrgb", "model": "plain", "dim": 3, "weights": None}

    def extract(self, media):
        time.sleep(1.5)
        return media.crops.mean(axis=(1, 2)).astype(np.float32), media.crop_mask.copy()


@fusion_bench.hookimpl
def register_backbones(register):
    register("meanrgb", MeanRGB)
'''


def cluster(n_nodes: int):
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes = [c.add_node(num_cpus=1) for _ in range(n_nodes - 1)]
    c.wait_for_nodes()
    return c, nodes


def sweep_row(n_nodes: int, kill: bool, seeds: int) -> dict:
    import ray

    from fusion_bench import sweep as sweep_mod
    from fusion_bench.plugins import load_registry
    from fusion_bench.results import ResultsStore

    c, nodes = cluster(n_nodes)
    ray.init(address=c.address, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as d:
            store = ResultsStore(d)
            cfgs = sweep_mod.grid(["concat", "lstm"], list(range(seeds)), TINY, "quick", None)
            t, killed = kill_node_mid_task(ray, c, nodes[0], 1.0, 300) if kill else (None, {})
            t0 = time.perf_counter()
            res = sweep_mod.sweep(cfgs, load_registry(entry_points=False), store,
                                  echo=lambda *_: None, executor="ray",
                                  spec=sweep_mod.RegistrySpec(entry_points=False))
            wall = time.perf_counter() - t0
            if t is not None:
                t.join(10)
            counts = collections.Counter(r["config_hash"] for r in store.records())
            return {"what": f"sweep, {n_nodes} node(s)" + (", 2nd killed" if kill else ""),
                    "planned": len(cfgs), "done": res.done, "failed": res.failed,
                    "retried": res.retried, "stored": len(counts),
                    "duplicates": sum(n - 1 for n in counts.values()), "wall_s": wall,
                    "killed": "at" in killed}
    finally:
        ray.shutdown()
        c.shutdown()


def extract_row(n_nodes: int, kill: bool, videos: int) -> dict:
    import numpy as np
    import ray
    from PIL import Image

    from fusion_bench.cli import main

    c, nodes = cluster(n_nodes)
    ray.init(address=c.address, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as d:
            root = Path(d) / "aw"
            ch = root / "VA_Estimation_Challenge"
            for i in range(videos):
                name, split = f"v{i}", ("Train_Set", "Validation_Set")[i % 2]
                (root / "cropped_aligned" / name).mkdir(parents=True)
                for f in range(10):
                    Image.fromarray(np.full((8, 8, 3), (i * 20 + f) % 255, np.uint8)).save(
                        root / "cropped_aligned" / name / f"{f + 1:05d}.jpg")
                (ch / split).mkdir(parents=True, exist_ok=True)
                (ch / split / f"{name}.txt").write_text("valence,arousal\n" + "0.1,0.2\n" * 10)
            (ch / "Test_Set.txt").write_text("")
            plugin = Path(d) / "meanrgb_stub.py"
            plugin.write_text(STUB)
            t, killed = kill_node_mid_task(ray, c, nodes[0], 0.5, 300) if kill else (None, {})
            t0 = time.perf_counter()
            said = io.StringIO()
            with contextlib.redirect_stdout(said):
                code = main(["--plugin", str(plugin), "extract", "--root", str(root),
                             "--backbone", "visual=meanrgb", "--device", "cpu", "--quiet",
                             "--executor", "ray", "--retries", "3"])
            retried = re.search(r"(\d+) video\(s\) retried", said.getvalue())
            wall = time.perf_counter() - t0
            if t is not None:
                t.join(10)
            man = json.loads((root / "fusion_bench_cache" / "manifest.json").read_text())
            arrays = list((root / "fusion_bench_cache" / "features" / "visual").glob("*.npy"))
            return {"what": f"extract, {n_nodes} node(s)" + (", 2nd killed" if kill else ""),
                    "planned": videos, "done": len(man["videos"]), "failed": int(code != 0),
                    "retried": int(retried.group(1)) if retried else 0, "stored": len(arrays),
                    "duplicates": len(arrays) - len({p.stem for p in arrays}), "wall_s": wall,
                    "killed": "at" in killed}
    finally:
        ray.shutdown()
        c.shutdown()


def cli_run(out: Path, torchrun: bool, dropout: bool, threads: int = 1) -> dict:
    args = ["run", "--fusion", "rcma", "--device", "cpu", "--json", "--out", str(out),
            "--threads", str(threads)]
    if not dropout:
        args += ["--set", "encoder.dropout=0", "--set", "fusion.dropout=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    launch = ([str(Path(sys.executable).with_name("torchrun")), "--nproc-per-node", "2",
               "--master-port", "29533"] if torchrun else [sys.executable])
    t0 = time.perf_counter()
    p = subprocess.run([*launch, "-m", "fusion_bench", *args], capture_output=True, text=True,
                       env=env, check=True)
    wall = time.perf_counter() - t0
    rec = json.loads(p.stdout)
    return {"val": rec["metrics"]["val"]["mean"], "test": rec["metrics"]["test"]["mean"],
            "steps": rec["fits"][0]["steps"], "wall_s": wall,
            "records": len(list((out / "runs").glob("*.json")))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--out", default=None, help="also write the Markdown here")
    a = ap.parse_args()
    rows = [sweep_row(1, False, a.seeds), sweep_row(2, True, a.seeds),
            extract_row(1, False, a.videos), extract_row(2, True, a.videos)]
    lines = ["| work | planned | done | failed | retried | stored | duplicates | wall s | "
             "node killed |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['what']} | {r['planned']} | {r['done']} | {r['failed']} | "
                     f"{'-' if r['retried'] is None else r['retried']} | {r['stored']} | "
                     f"{r['duplicates']} | {r['wall_s']:.1f} | {'yes' if r['killed'] else 'no'} |")
    lines += ["", "| quick preset, rcma, seed 0 | processes × threads | val mean CCC | "
              "test mean CCC | steps | records | wall s |", "|---|---|---|---|---|---|---|"]
    # the control: one process on 2 threads differs from 1 thread by rounding alone
    plan = [(True, False, 1), (True, True, 1), (False, False, 1), (False, True, 1),
            (False, False, 2)]
    with tempfile.TemporaryDirectory() as d:
        for dropout, tr, threads in plan:
            r = cli_run(Path(d) / f"{dropout}-{tr}-{threads}", tr, dropout, threads)
            lines.append(f"| dropout {'on' if dropout else 'off'} | {2 if tr else 1} × "
                         f"{threads} | {r['val']:.5f} | {r['test']:.5f} | {r['steps']} | "
                         f"{r['records']} | {r['wall_s']:.1f} |")
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
