"""SIGTERM (timeout, Slurm, docker) is handled like Ctrl-C: finished work kept, one line, exit
143, and no worker process of a parallel sweep left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LONG = ["--set", "train.epochs=500", "--set", "dataset.synthetic.n_train=8",
        "--set", "dataset.synthetic.n_val=2", "--set", "dataset.synthetic.n_test=2", "--quiet"]

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for child processes")


def children(pid: int) -> set[int]:
    out = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return out


def wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start(args, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "fusion_bench", *args, "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=tmp_path)


def read_until(p, text: str, timeout: float) -> list[str]:
    """Lines of ``p``'s stderr up to one containing ``text`` (read in a thread: never hangs)."""
    import threading

    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        for line in p.stderr:
            lines.append(line)
            if text in line:
                seen.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert seen.wait(timeout), "".join(lines)
    return lines


def test_sigterm_during_a_run_exits_143_with_one_line_and_keeps_nothing_half_made(tmp_path):
    p = start(["run", "--fusion", "concat", "--device", "cpu", *LONG], tmp_path)
    head = read_until(p, "training:", 120)  # the data summary: the run is about to train
    time.sleep(1)
    p.send_signal(signal.SIGTERM)
    _, rest = p.communicate(timeout=60)
    err = "".join(head) + rest
    assert p.returncode == 143, err
    assert "Terminated (SIGTERM)" in err and "Traceback" not in err
    assert not list(tmp_path.glob("runs/*.json"))  # an unfinished run writes no record


def start_parallel_sweep(tmp_path):
    """A 2-job sweep, once its workers run; return it and its child processes."""
    p = start(["sweep", "--fusion", "concat,lstm", "--seeds", "1", "--jobs", "2", *LONG[:-1]],
              tmp_path)
    # the spawned workers (and multiprocessing's resource tracker) are the driver's children
    assert wait_for(lambda: len(children(p.pid)) >= 2, 60), "the workers never started"
    time.sleep(2)
    return p, children(p.pid)


def assert_gone(kids, timeout: float) -> None:
    assert wait_for(lambda: not any(alive(k) for k in kids), timeout), \
        f"left behind: {[k for k in kids if alive(k)]}"


def test_sigterm_to_a_parallel_sweep_leaves_no_worker(tmp_path):
    p, kids = start_parallel_sweep(tmp_path)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "Terminated (SIGTERM)" in err
    assert_gone(kids, 20)


def test_sigkill_of_a_parallel_sweeps_driver_leaves_no_worker(tmp_path):
    """The driver cannot clean up after SIGKILL: its workers notice it is gone and end."""
    p, kids = start_parallel_sweep(tmp_path)
    p.kill()
    p.communicate(timeout=30)
    assert_gone(kids, 30)
