"""Two sweeps on one store never train one configuration twice (claims), and run ids stay
unique within a second."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fusion_bench.results import ResultsStore, new_record

ROOT = Path(__file__).resolve().parent.parent
# A fusion that sleeps in forward: the first sweep is still training, with little CPU, when
# the second starts (the first claims both configurations before it trains either).
SLEEPY = '''
import time
import torch
import fusion_bench


class Sleepy(torch.nn.Module):
    description = "concatenation that sleeps (a test's slow fusion)"

    def __init__(self, dims, seq_len):
        super().__init__()
        self.out_dim = sum(dims.values())

    def forward(self, feats, mask=None):
        if not next(iter(feats.values())).is_meta:
            time.sleep(0.5)
        return torch.cat(list(feats.values()), dim=-1)


@fusion_bench.hookimpl
def register_fusions(register):
    register("sleepy", Sleepy)
'''
SWEEP = ["sweep", "--fusion", "sleepy,concat", "--seeds", "1", "--set", "train.epochs=1",
         "--set", "dataset.synthetic.n_train=4", "--set", "dataset.synthetic.n_val=2",
         "--set", "dataset.synthetic.n_test=2", "--set", "dataset.synthetic.max_frames=300",
         "--set", "encoder.tcn.channels=8", "--set", "encoder.tcn.levels=2"]


def test_a_claim_is_exclusive_released_and_taken_over_when_its_process_is_gone(tmp_path):
    store = ResultsStore(tmp_path)
    assert store.claim("h1") is None  # ours now
    other = ResultsStore(tmp_path)
    path = tmp_path / "claims" / "h1.json"
    holder = json.loads(path.read_text())
    assert holder["pid"] == os.getpid()
    assert other.claim("h1") == holder  # held by a live process (this one)
    store.release("h1")
    assert not path.exists() and other.claim("h1") is None
    other.release("h1")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    path.write_text(json.dumps({"pid": int(dead), "host": holder["host"], "time": time.time()}))
    assert store.claim("h1") is None  # its process is gone: taken over
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "time": time.time() - 10}))
    assert store.claim("h1", stale_after_s=3600) is not None  # another host, recent: respected
    assert store.claim("h1", stale_after_s=5) is None  # older than the limit: taken over


def test_two_concurrent_sweeps_train_each_configuration_once(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    plugin = tmp_path / "sleepy.py"
    plugin.write_text(SLEEPY)
    cmd = [sys.executable, "-m", "fusion_bench", "--plugin", str(plugin), *SWEEP, "--out",
           str(tmp_path / "store")]
    tmp_path = tmp_path / "store"
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
    claims = tmp_path / "claims"
    end = time.monotonic() + 60
    while len(list(claims.glob("*.json"))) < 2 and time.monotonic() < end:
        time.sleep(0.1)
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    out1, err1 = first.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, (err1, second.stderr)
    assert second.stdout.count("being trained by process") == 2, second.stdout
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*.json")]
    assert sorted(r["config"]["model"]["fusion"] for r in records) == ["concat", "sleepy"]
    assert not list(claims.glob("*.json"))  # released


def test_run_ids_of_one_configuration_in_one_second_differ():
    a = new_record({}, "h", {}, {}, "concat-s0-h")
    b = new_record({}, "h", {}, {}, "concat-s0-h")
    assert a["run_id"] != b["run_id"] and a["run_id"].startswith(a["created"].replace(":", "")
                                                                  .replace("-", ""))
