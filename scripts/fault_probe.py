#!/usr/bin/env python
"""Hostile inputs to every verb of the ``fusion-bench`` CLI (issue 16 item 8), each run as a
subprocess (``python -m fusion_bench``) in a fresh temporary folder that holds a results store
with one stored run, a features folder, a mini Aff-Wild2 tree and its feature cache, and a stub
backbone plugin. Prints a Markdown table: per case, the command, its exit status, whether a
traceback was printed, whether the store kept what it had (every record and model file byte for
byte, every run still listed by the index) and the last line the command printed to stderr.

A case passes when its exit status is the one due (2: the input is wrong, an ``Error:`` line;
0: it works, perhaps with a warning or note; 1: runs failed and were reported), no traceback is
printed, the store kept what it had, and the case's own check (a phrase in the output, a phrase
that must not be there, a file left whole) holds.

    python scripts/fault_probe.py [--jobs 2] [--only WORD] [--keep]

Exits 1 when a case fails. Cases that need a read-only or a full folder mount a tmpfs, which
needs root; without it they are skipped and the table says so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TINY = ["--set", "dataset.synthetic.n_train=4", "--set", "dataset.synthetic.n_val=2",
        "--set", "dataset.synthetic.n_test=2", "--set", "dataset.synthetic.min_frames=100",
        "--set", "dataset.synthetic.max_frames=160", "--set", "train.epochs=1", "--quiet"]
RUN = ["run", "--out", "store", *TINY]
FEAT = ["run", "--out", "store", "--root", "feat", "--set", "train.epochs=1", "--quiet"]
SWEEP = ["sweep", "--out", "store", *TINY[:-1]]
BENCH = ["bench", "--out", "store", "--preset", "quick", "--fusion", "concat", "--batch-size", "2",
         "--seq-len", "8", "--warmup", "0", "--repeats", "1", "--latency-repeats", "1", "--no-train"]
EXTRACT = ["--plugin", "stub_backbone.py", "extract", "--root", "aw", "--backbone", "visual=stub",
           "--random-init", "--quiet", "--device", "cpu"]
TIMEOUT_S = 240
MEMORY = 6 << 30  # address space of each case (a huge setting must not take the machine)

STUB_BACKBONE = '''
"""A backbone for the probe: the mean of each face crop's channels (3-d); FAIL_AT=k raises on
the k-th video it extracts, FAIL_AT=kill:k kills its own process there (kill -9)."""
import os
import signal

import numpy as np

import fusion_bench

SEEN = []


class Stub:
    modality = "visual"
    description = "channel means of the face crops"
    dim = 3

    def __init__(self, model=None, weights=None, random_init=False, device="cpu"):
        self.model = model or "mean"

    def describe(self):
        return {"backbone": "stub", "model": self.model, "dim": 3, "random_init": True}

    def extract(self, media):
        SEEN.append(media.name)
        fail = os.environ.get("FAIL_AT", "")
        if fail.startswith("kill:") and len(SEEN) == int(fail[5:]):
            os.kill(os.getpid(), signal.SIGKILL)
        if fail.isdigit() and len(SEEN) == int(fail):
            raise RuntimeError("planted backbone failure")
        x = media.crops.mean(axis=(1, 2)) if media.crops is not None else np.zeros((media.n_frames, 3))
        return x.astype(np.float32), media.crop_mask


@fusion_bench.hookimpl
def register_backbones(register):
    register("stub", Stub)
'''


# -- fixtures ------------------------------------------------------------------------------------
def make_features(root: Path, n_videos: int = 6, seed: int = 0) -> None:
    """A features folder: visual (n, 4) and audio (n, 3) of 40-60 frames, valence/arousal."""
    rng = np.random.default_rng(seed)
    names = [f"v{i}" for i in range(n_videos)]
    for name in names:
        n = int(rng.integers(40, 61))
        for m, d in (("visual", 4), ("audio", 3)):
            (root / "features" / m).mkdir(parents=True, exist_ok=True)
            np.save(root / "features" / m / f"{name}.npy", rng.normal(size=(n, d)).astype(np.float32))
        (root / "labels").mkdir(exist_ok=True)
        lab = np.clip(rng.normal(0, 0.3, (n, 2)), -1, 1)
        (root / "labels" / f"{name}.csv").write_text(
            "valence,arousal\n" + "".join(f"{v:.3f},{a:.3f}\n" for v, a in lab))
    split = ["train"] * (n_videos - 2) + ["val", "test"]
    (root / "splits.csv").write_text("video,split\n" + "".join(
        f"{v},{s}\n" for v, s in zip(names, split, strict=True)))


def make_affwild2(root: Path) -> None:
    """The official layout without videos: labels and face crops of three videos."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for video, folder, n in (("a", "Train_Set", 12), ("b", "Train_Set", 10), ("c", "Validation_Set", 9)):
        d = root / "VA_Estimation_Challenge" / folder
        d.mkdir(parents=True, exist_ok=True)
        lab = np.clip(rng.normal(0, 0.3, (n, 2)), -1, 1)
        (d / f"{video}.txt").write_text("valence,arousal\n" + "".join(f"{v:.3f},{a:.3f}\n" for v, a in lab))
        crops = root / "cropped_aligned" / video
        crops.mkdir(parents=True)
        for k in range(n):
            Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(crops / f"{k + 1:05d}.jpg")


def cli(args: list[str], cwd: Path, env: dict | None = None, timeout: float = TIMEOUT_S):
    return subprocess.run([sys.executable, "-m", "fusion_bench", *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                          timeout=timeout)


def build_base(base: Path) -> None:
    make_features(base / "feat")
    make_affwild2(base / "aw")
    (base / "stub_backbone.py").write_text(STUB_BACKBONE)
    for args in (RUN, ["--plugin", "stub_backbone.py", "extract", "--root", "aw", "--backbone",
                       "visual=stub", "--random-init", "--quiet"]):
        p = cli(args, base)
        if p.returncode != 0:
            sys.exit(f"fixture failed: fusion-bench {' '.join(args)}\n{p.stderr}")


def digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path → hex)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def store_digest(store: Path) -> dict[str, str]:
    """The store's records and kept models (the index is checked by listing the runs)."""
    return {k: v for k, v in digest(store).items() if k.startswith(("runs/", "models/"))}


def store_kept(store: Path, before: dict[str, str], run_ids: set[str]) -> str:
    """'yes', or what the store lost."""
    from fusion_bench.results import ResultsStore

    if not store.is_dir():
        return "no: store folder gone"
    now = store_digest(store)
    lost = [k for k in before if k not in now]
    changed = [k for k in before if k in now and now[k] != before[k]]
    if lost or changed:
        return f"no: {len(lost)} lost, {len(changed)} changed ({(lost + changed)[0]})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            listed = {r.get("run_id") for r in ResultsStore(store).records()}
    except Exception as e:  # noqa: BLE001 - the probe reports, it does not stop
        return f"no: the index fails: {type(e).__name__}: {e}"
    missing = run_ids - listed
    return f"no: {len(missing)} runs not listed" if missing else "yes"


# -- the cases -----------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    args: list[str]
    expect: int | str = 2
    setup: Callable[[Path], object] | None = None  # may return a clean-up callable
    want: str = ""  # a phrase the output must hold
    forbid: str = ""  # a phrase it must not hold
    check: Callable[[Path], str | None] | None = None  # another check: a problem, or None
    needs_root: bool = False
    env: dict = field(default_factory=dict)
    # expect="runs": a value that is valid but makes the work huge (10**12 videos); it must be
    # working, not failing, when stopped after ``timeout`` seconds
    timeout: float = TIMEOUT_S
    error_line: bool = True  # exit 2 must come with an "Error:" line
    store_check: bool = True  # False where the case itself damages the store's files


def write(rel: str, data: str | bytes) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        p = w / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data) if isinstance(data, bytes) else p.write_text(data)
    return setup


def save(rel: str, array) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        (w / rel).parent.mkdir(parents=True, exist_ok=True)
        np.save(w / rel, array)
    return setup


def steps(*fns) -> Callable[[Path], object]:
    def setup(w: Path):
        cleanups = [c for c in (f(w) for f in fns) if callable(c)]
        return (lambda: [c() for c in reversed(cleanups)]) if cleanups else None
    return setup


def remove(rel: str) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        p = w / rel
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    return setup


def frames(w: Path, video: str) -> int:
    """How many frames the fixture gave ``video``."""
    return len(np.load(w / "feat/features/visual" / f"{video}.npy"))


def per_video(fn: Callable[[Path, str, int], None], videos=("v0",)) -> Callable[[Path], None]:
    """A setup calling ``fn(work, video, its frame count)`` for each of ``videos``."""
    def setup(w: Path) -> None:
        for v in videos:
            fn(w, v, frames(w, v))
    return setup


def symlink(rel: str, target: str) -> Callable[[Path], None]:
    def setup(w: Path) -> None:
        p = w / rel
        if p.exists() or p.is_symlink():
            p.unlink()
        p.symlink_to(target)
    return setup


def mount_tmpfs(rel: str, size: str = "64k", readonly: bool = False, fill: bool = False,
                copy: str | None = None):
    """A tmpfs at ``rel`` (holding a copy of ``copy``), read-only or filled to the last byte."""
    def setup(w: Path):
        p = w / rel
        p.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(p)], check=True)
        unmount = lambda: subprocess.run(["umount", "-l", str(p)], check=False)  # noqa: E731
        try:
            if copy:
                shutil.copytree(w / copy, p, dirs_exist_ok=True)
            if fill:
                fill_disk(p)
            if readonly:
                subprocess.run(["mount", "-o", "remount,ro", str(p)], check=True)
        except BaseException:
            unmount()
            raise
        return unmount
    return setup


def fill_disk(folder: Path) -> None:
    """Write into ``folder`` until its filesystem has no byte left."""
    for name, chunk in (("filler", 1 << 16), ("filler-bytes", 1)):
        with open(folder / name, "wb", buffering=0) as f:  # unbuffered: no close to fail
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass


def cache_intact(w: Path) -> str | None:
    """The mini Aff-Wild2 tree's cache is as the fixture made it, with nothing beside it."""
    now, was = digest(w / "aw" / "fusion_bench_cache"), json.loads((w / "cache.digest").read_text())
    if now != was:
        return f"cache changed: {sorted(set(now) ^ set(was)) or 'contents'}"
    # the partial folder stays for resuming; a killed process's lock stays, to be taken over
    extra = [p.name for p in (w / "aw").iterdir() if p.name.startswith(".fusion_bench_cache")
             and not p.name.endswith((".partial", ".extract.lock"))]
    return f"left beside the cache: {extra}" if extra else None


def no_file(rel: str) -> Callable[[Path], str | None]:
    return lambda w: f"{rel} was written" if (w / rel).exists() else None


def cases() -> list[Case]:
    c: list[Case] = []
    add = c.append
    # -- issue 16 item 8, as listed -------------------------------------------------------------
    add(Case("i8: train.lr=nan", [*RUN, "--set", "train.lr=nan"], want="train.lr"))
    add(Case("i8: --seed 2**63", [*RUN, "--seed", str(2**63)], want="2**63"))
    add(Case("i8: TOML not UTF-8", [*RUN, "--config", "bad.toml"],
             setup=write("bad.toml", b"seed = 1\n# \xff\xfe\n"), want="bad.toml"))
    add(Case("i8: --config a folder", [*RUN, "--config", "feat"], want="feat"))
    add(Case("i8: --root a file", [*FEAT[:3], "--root", "feat/splits.csv", *FEAT[5:]],
             want="not a folder"))
    for n in (1, 2, 3):
        add(Case(f"i8: synthetic.min_frames={n}", [*RUN, "--set", f"dataset.synthetic.min_frames={n}"],
                 expect=0))
        # videos of 1 or 2 frames: the generator's label gaps (20 frames or more) leave a split
        # without one labelled frame, which is said before training
        add(Case(f"i8: synthetic.min_frames=max_frames={n}", [*RUN, "--set", f"dataset.synthetic.min_frames={n}",
                                                             "--set", f"dataset.synthetic.max_frames={n}"],
                 expect=0 if n == 3 else 2, want="" if n == 3 else "no frame of the",
                 forbid="" if n == 3 else "training:"))
    add(Case("i8: .npz saved as .npy", FEAT, want="npz",
             setup=lambda w: np.savez(open(w / "feat/features/visual/v0.npy", "wb"), x=np.zeros((3, 4)))))
    add(Case("i8: complex features", FEAT, want="complex",
             setup=save("feat/features/visual/v1.npy", np.ones((50, 4), np.complex64))))
    add(Case("i8: train.batch_size=1", [*RUN, "--set", "train.batch_size=1"], want="batch_size"))
    add(Case("i8: manifest.json not JSON", FEAT, setup=write("feat/manifest.json", "{oops"),
             want="manifest.json", forbid="training:"))
    add(Case("i8: manifest.json a list", FEAT, setup=write("feat/manifest.json", "[1, 2]"),
             want="manifest.json", forbid="training:"))
    add(Case("i8: sweep --seeds 0", [*SWEEP, "--fusion", "concat", "--seeds", "0"]))
    add(Case("i8: sweep --seeds -3", [*SWEEP, "--fusion", "concat", "--seeds", "-3"]))
    add(Case("i8: sweep --fusion ''", [*SWEEP, "--fusion", "", "--seeds", "1"]))
    add(Case("i8: sweep --fusion ','", [*SWEEP, "--fusion", ",", "--seeds", "1"]))
    add(Case("i8: bench --peak-tflops -1", [*BENCH, "--peak-tflops", "-1"]))
    add(Case("i8: leaderboard --tables a file", ["leaderboard", "--out", "store", "--tables", "f.txt"],
             setup=write("f.txt", "keep me"), check=lambda w: None if (w / "f.txt").read_text() == "keep me"
             else "f.txt overwritten"))
    add(Case("i8: leaderboard --tables read-only", ["leaderboard", "--out", "store", "--tables", "ro"],
             setup=mount_tmpfs("ro", readonly=True), needs_root=True))
    add(Case("i8: --modalities visual --fusion rcma", [*RUN, "--modalities", "visual", "--fusion", "rcma"],
             expect=0, want="note: "))
    add(Case("i8: --modalities visual --fusion nope", [*RUN, "--modalities", "visual", "--fusion", "nope"],
             expect=0, want="note: "))
    add(Case("i8: one modality, fusion option", [*RUN, "--modalities", "audio", "--set",
                                                  "fusion.rcma.iterations=3"], expect=0, want="note: "))
    # -- global -------------------------------------------------------------------------------
    add(Case("no verb", [], want="Usage:", error_line=False))  # click's help, exit 2
    add(Case("unknown verb", ["trian"]))
    add(Case("--version", ["--version"], expect=0))
    add(Case("--plugin missing file", ["--plugin", "nope.py", "list", "fusions"], expect=0, want="warning"))
    add(Case("--strict-plugins, missing plugin", ["--strict-plugins", "--plugin", "nope.py", "list",
                                                  "fusions"]))
    add(Case("--plugin syntax error", ["--plugin", "bad.py", "list", "fusions"], expect=0,
             setup=write("bad.py", "def (:\n"), want="warning"))
    add(Case("--plugin a folder", ["--plugin", "feat", "list", "fusions"], expect=0, want="warning"))
    add(Case("--plugin binary file", ["--plugin", "bin.py", "list", "fusions"], expect=0,
             setup=write("bin.py", b"\x00\xff\xfe garbage"), want="warning"))
    add(Case("--plugin clashing name", ["--plugin", "clash.py", "run", *RUN[1:]], want="two plugins",
             setup=write("clash.py", "import fusion_bench\n@fusion_bench.hookimpl\ndef register_fusions"
                         "(register):\n    register('concat', 'fusion_bench.fusions.lstm:LSTMFusion')\n")))
    # -- run: numbers ---------------------------------------------------------------------------
    ints = ["train.epochs", "train.steps", "train.eval_every", "train.batch_size", "train.warmup_epochs",
            "train.plateau_patience", "train.early_stop_patience", "data.window", "data.hop",
            "data.eval_hop", "data.seed", "data.fold", "seed", "model.head_hidden"]
    for key in ints:
        for bad in ("", "abc", "1.5", "-1", "nan"):
            add(Case(f"run {key}={bad!r}", [*RUN, "--set", f"{key}={bad}"], want=key.split(".")[-1]))
    floats = ["train.lr", "train.weight_decay", "train.plateau_factor", "train.min_lr",
              "train.max_grad_norm", "model.head_dropout"]
    for key in floats:
        for bad in ("", "abc", "-1", "nan", "inf", "1e400"):
            add(Case(f"run {key}={bad!r}", [*RUN, "--set", f"{key}={bad}"], want=key.split(".")[-1]))
    for key, bad, expect in (("train.lr", "1e30", 2), ("train.plateau_factor", "0", 2),
                             ("model.head_dropout", "1", 2), ("seed", str(2**64), 2),
                             ("data.seed", str(2**63), 2), ("data.window", "1000000000", 2),
                             ("model.head_hidden", "10000000000", 2),  # out of memory: says so
                             ("train.batch_size", "1000000000000", 0),
                             ("train.eval_every", "1000000000000", 0), ("data.window", "1", 0),
                             ("data.hop", "1000", 2), ("data.fold", "99", 2)):
        add(Case(f"run {key}={bad}", [*RUN, "--set", f"{key}={bad}"], expect=expect,
                 want="out of memory" if key == "model.head_hidden" else
                 key.split(".")[-1] if expect == 2 else ""))
    for bad in ("0", "-1", "abc", ""):
        add(Case(f"run --threads {bad!r}", [*RUN, "--threads", bad], want="--threads"))
    # more threads than cores is allowed; far more (512) fails inside libgomp under this probe's
    # address-space limit (each thread reserves its stack), outside Python's reach
    add(Case("run --threads 64 (more than cores: allowed)", [*RUN, "--threads", "64"], expect=0))
    add(Case("FUSION_BENCH_RESULTS a file", RUN[:1] + RUN[3:], env={"FUSION_BENCH_RESULTS": "f.txt"},
             setup=write("f.txt", "keep"), want="is a file"))
    add(Case("run --log nope", [*RUN, "--log", "nope"], want="nope", forbid="training:"))
    add(Case("run --log ','", [*RUN, "--log", ","], expect=0))  # no tracker named: none used
    add(Case("run --seed abc", [*RUN, "--seed", "abc"]))
    add(Case("run --seed ''", [*RUN, "--seed", ""]))
    add(Case("run --seed -1", [*RUN, "--seed", "-1"]))
    # -- run: other values ------------------------------------------------------------------
    for key, bad in (("train.schedule", "step"), ("train.loss", ""), ("train.progress", "maybe"),
                     ("model.per_target", "2"), ("device", "tpu"), ("device", "cuda:99"),
                     ("device", ""), ("robustness.levels", "-1,0"), ("robustness.levels", "nan,1"),
                     ("robustness.levels", "1"), ("robustness.levels", "a,b"),
                     ("model.channels", "visual=-1"), ("model.channels", "nope=8"),
                     ("model.channels", "visual=abc"), ("model.encoder", ""), ("model.fusion", ""),
                     ("data.modalities", "visual,visual"), ("data.modalities", ""),
                     ("data.modalities", "smell"), ("data.name", "")):
        add(Case(f"run {key}={bad!r}", [*RUN, "--robustness", "--set", f"{key}={bad}"]))
    for args in (["--modalities", ""], ["--modalities", ","], ["--modalities", "visual,smell"],
                 ["--fusion", ""], ["--encoder", ""], ["--encoder", "nope"], ["--preset", ""],
                 ["--dataset", ""], ["--device", "cuda"], ["--set", "=1"], ["--set", "train.lr"],
                 ["--set", "train=3"], ["--set", "seed=1.5"], ["--set", "fusion=3"],
                 ["--set", "fusion.concat=3"], ["--set", "nope.key=1"], ["--set", "train.lr.x=1"]):
        add(Case(f"run {' '.join(args)!r}", [*RUN, *args]))
    # -- plugin options -------------------------------------------------------------------------
    for fusion, opt, bad in (("rcma", "iterations", "0"), ("rcma", "iterations", "-1"),
                             ("rcma", "dropout", "1.5"), ("rcma", "dropout", "nan"),
                             ("rcma", "joint", "nope"), ("cross_attention", "heads", "0"),
                             ("cross_attention", "heads", "3"), ("cross_attention", "d_model", "-8"),
                             ("lstm", "hidden", "0"), ("lstm", "layers", "0"), ("lstm", "dropout", "-1")):
        add(Case(f"run fusion.{fusion}.{opt}={bad}", [*RUN, "--fusion", fusion, "--set",
                                                       f"fusion.{fusion}.{opt}={bad}"], want=fusion))
    for enc, opt, bad in (("tcn", "kernel", "0"), ("tcn", "levels", "0"), ("tcn", "channels", "0"),
                          ("tcn", "dropout", "2"), ("tcn", "kernel", "100000"),
                          ("tcn", "channels", "100000000"),
                          ("lstm", "channels", "0"), ("lstm", "layers", "-1")):
        add(Case(f"run encoder.{enc}.{opt}={bad}", [*RUN, "--encoder", enc, "--set",
                                                     f"encoder.{enc}.{opt}={bad}"], want=enc))
    for key, bad in (("n_train", "0"), ("n_train", "-1"), ("n_val", "0"), ("n_test", "0"),
                     ("max_frames", "50"), ("dim_visual", "0"), ("dim_audio", "-1"),
                     ("noise", "-1"), ("noise", "nan"), ("label_noise", "inf"),
                     ("interaction", "2"), ("offset_leak", "nan"), ("max_frames", "100000000000")):
        add(Case(f"run dataset.synthetic.{key}={bad}", [*RUN, "--set", f"dataset.synthetic.{key}={bad}"],
                 want=key if key != "max_frames" or bad == "50" else "memory"))
    add(Case("run dataset.synthetic.n_train=10**12", [*RUN, "--set", "dataset.synthetic.n_train=1000000000000"],
             expect="runs", timeout=30))
    # -- TOML files -----------------------------------------------------------------------------
    for label, text in (("wrong type", '[train]\nlr = "fast"\n'), ("unknown key", "[train]\nlrr = 1\n"),
                        ("unknown section", "[trian]\nlr = 1\n"), ("float seed", "seed = 1.5\n"),
                        ("section as value", "train = 3\n"), ("value as section", "[seed]\nx = 1\n"),
                        ("syntax error", "[train\nlr = \n"), ("huge int", "seed = 99999999999999999999\n"),
                        ("nan lr", "[train]\nlr = nan\n"), ("modalities a string", '[data]\nmodalities = 3\n'),
                        ("list of tables", "[[train]]\nlr = 1\n"), ("date", "seed = 1979-05-27\n"),
                        ("nested plugin junk", "[fusion.rcma]\niterations = [1, 2]\n"),
                        ("binary", b"\x00\x01\x02"), ("BOM + valid", "\ufeffseed = 1\n")):
        name = "toml.toml"
        add(Case(f"TOML: {label}", [*RUN, "--config", name], setup=write(name, text),
                 expect=0 if label == "BOM + valid" else 2))
    add(Case("TOML: empty file", [*RUN, "--config", "e.toml"], setup=write("e.toml", ""), expect=0))
    add(Case("TOML: missing", [*RUN, "--config", "missing.toml"]))
    add(Case("TOML: /dev/null", [*RUN, "--config", "/dev/null"], want="not a regular file"))
    add(Case("TOML: a symlink loop", [*RUN, "--config", "loop.toml"], setup=symlink("loop.toml", "loop.toml")))
    # -- --root and features folders ----------------------------------------------------------------
    add(Case("--root missing", [*FEAT[:3], "--root", "nope", *FEAT[5:]], want="does not exist"))
    add(Case("--root empty folder", [*FEAT[:3], "--root", "empty", *FEAT[5:]],
             setup=lambda w: (w / "empty").mkdir()))
    add(Case("--root ''", [*FEAT[:3], "--root", "", "--dataset", "features", *FEAT[5:]]))
    add(Case("--root a symlink loop", [*FEAT[:3], "--root", "loop", *FEAT[5:]], setup=symlink("loop", "loop")))
    add(Case("--root /dev/null", [*FEAT[:3], "--root", "/dev/null", *FEAT[5:]]))
    add(Case("--root unknown dataset", [*FEAT, "--dataset", "nope"]))
    add(Case("--root + synthetic", [*FEAT, "--dataset", "synthetic"], expect=0))
    add(Case("labels: missing column", FEAT, setup=write("feat/labels/v0.csv", "valence\n" + "0.1\n" * 50)))
    add(Case("labels: a short line", FEAT, setup=write("feat/labels/v0.csv", "valence,arousal\n0.1\n0.2,0.3\n")))
    add(Case("labels: NaN", FEAT, setup=write("feat/labels/v0.csv", "valence,arousal\n" + "nan,0.1\n" * 50)))
    add(Case("labels: text", FEAT, setup=write("feat/labels/v0.csv", "valence,arousal\n" + "x,0.1\n" * 50)))
    add(Case("labels: out of range", FEAT, setup=write("feat/labels/v0.csv", "valence,arousal\n" + "3,0.1\n" * 50)))
    add(Case("labels: header only", FEAT, setup=write("feat/labels/v0.csv", "valence,arousal\n")))
    add(Case("labels: empty file", FEAT, setup=write("feat/labels/v0.csv", "")))
    add(Case("labels: not UTF-8", FEAT, setup=write("feat/labels/v0.csv", b"valence,arousal\n\xff\xfe,1\n")))
    add(Case("labels: all -5", FEAT, want="no frame of the", forbid="training:", setup=per_video(
        lambda w, v, n: (w / f"feat/labels/{v}.csv").write_text("valence,arousal\n" + "-5,-5\n" * n),
        [f"v{i}" for i in range(6)])))
    add(Case("labels: mismatched length", FEAT, setup=write("feat/labels/v0.csv", "valence,arousal\n" + "0.1,0.1\n" * 3)))
    add(Case("labels: missing file", FEAT, setup=remove("feat/labels/v0.csv")))
    add(Case("labels: a folder", FEAT, setup=steps(remove("feat/labels/v0.csv"),
                                                   lambda w: (w / "feat/labels/v0.csv").mkdir())))
    add(Case("labels: CRLF and BOM", FEAT, expect=0, setup=lambda w: (w / "feat/labels/v0.csv").write_bytes(
        b"\xef\xbb\xbf" + (w / "feat/labels/v0.csv").read_bytes().replace(b"\n", b"\r\n"))))
    add(Case("splits.json lists a missing video", FEAT, setup=steps(
        remove("feat/splits.csv"), write("feat/splits.json", json.dumps(
            {"train": ["v0", "v1", "v2", "v3", "ghost"], "val": ["v4"], "test": ["v5"]}))), want="ghost"))
    add(Case("splits.json not an object", FEAT, setup=steps(remove("feat/splits.csv"),
                                                            write("feat/splits.json", "[]"))))
    add(Case("splits.json a name with ..", FEAT, want="not a file name", setup=steps(
        remove("feat/splits.csv"), write("feat/splits.json", json.dumps(
            {"train": ["v0", "v1", "v2", "../../store/x"], "val": ["v4"], "test": ["v5"]})))))
    add(Case("splits.csv: an empty name", FEAT, want="not a file name",
             setup=write("feat/splits.csv", "video,split\nv0,train\n ,train\nv4,val\nv5,test\n")))
    add(Case("splits.csv: not UTF-8", FEAT, setup=write("feat/splits.csv", b"video,split\nv\xff,train\n")))
    add(Case("splits.json: not UTF-8", FEAT, setup=steps(remove("feat/splits.csv"),
                                                         write("feat/splits.json", b'{"train": ["\xff"]}'))))
    add(Case("splits.csv: unknown split", FEAT, setup=write("feat/splits.csv", "video,split\nv0,dev\n")))
    add(Case("splits.csv: no train video", FEAT, setup=write("feat/splits.csv", "video,split\nv4,val\nv5,test\n")))
    add(Case("splits.csv: no val video", FEAT, setup=write("feat/splits.csv", "video,split\nv0,train\nv1,train\nv5,test\n")))
    add(Case("splits.csv: video twice", FEAT, setup=write("feat/splits.csv",
                                                          "video,split\nv0,train\nv0,val\nv5,test\n")))
    add(Case("splits.csv: header only", FEAT, setup=write("feat/splits.csv", "video,split\n")))
    add(Case("splits.csv: missing", FEAT, setup=remove("feat/splits.csv")))
    add(Case("features: 1-D", FEAT, setup=save("feat/features/visual/v0.npy", np.zeros(50, np.float32))))
    add(Case("features: 3-D", FEAT, setup=save("feat/features/visual/v0.npy", np.zeros((50, 2, 2), np.float32))))
    add(Case("features: 0 frames", FEAT, want="no frames", setup=steps(save("feat/features/visual/v0.npy", np.zeros((0, 4), np.float32)),
                                                     save("feat/features/audio/v0.npy", np.zeros((0, 3), np.float32)),
                                                     write("feat/labels/v0.csv", "valence,arousal\n"))))
    add(Case("features: 0 columns", FEAT, want="no feature per frame", setup=per_video(lambda w, v, n: np.save(
        w / f"feat/features/visual/{v}.npy", np.zeros((n, 0), np.float32)), [f"v{i}" for i in range(6)])))
    add(Case("features: NaN", FEAT, want="NaN or inf", setup=per_video(lambda w, v, n: np.save(
        w / f"feat/features/visual/{v}.npy", np.full((n, 4), np.nan, np.float32)))))
    add(Case("features: strings", FEAT, setup=save("feat/features/visual/v0.npy", np.array([["a"] * 4] * 50))))
    add(Case("features: object (pickle)", FEAT, setup=lambda w: np.save(
        w / "feat/features/visual/v0.npy", np.array([{"a": 1}] * 50, dtype=object), allow_pickle=True)))
    add(Case("features: other dim", FEAT, want="dim 7", setup=per_video(lambda w, v, n: np.save(
        w / f"feat/features/visual/{v}.npy", np.zeros((n, 7), np.float32)), ["v3"])))
    add(Case("features: garbage bytes", FEAT, setup=write("feat/features/visual/v0.npy", b"\x93NUMPY garbage")))
    add(Case("features: empty file", FEAT, setup=write("feat/features/visual/v0.npy", b"")))
    add(Case("features: a folder named v0.npy", FEAT, setup=steps(remove("feat/features/visual/v0.npy"),
                                                                 lambda w: (w / "feat/features/visual/v0.npy").mkdir())))
    add(Case("features: missing file", FEAT, setup=remove("feat/features/visual/v0.npy")))
    add(Case("features: int64 (accepted)", FEAT, expect=0, setup=lambda w: np.save(
        w / "feat/features/visual/v0.npy", np.load(w / "feat/features/visual/v0.npy").astype(np.int64))))
    add(Case("features: symlink leaving the folder", FEAT, expect=0, setup=lambda w: (
        shutil.copy(w / "feat/features/visual/v0.npy", w / "outside.npy"),
        symlink("feat/features/visual/v0.npy", str(w / "outside.npy"))(w))))
    add(Case("features: dangling symlink", FEAT, setup=symlink("feat/features/visual/v0.npy", "/nonexistent.npy")))
    add(Case("features: a file, not a folder", FEAT, setup=steps(remove("feat/features"), write("feat/features", "x"))))
    add(Case("features: empty modality folder", FEAT, setup=lambda w: (w / "feat/features/text").mkdir()))
    add(Case("masks: wrong shape", FEAT, setup=save("feat/masks/visual/v0.npy", np.ones(3, bool)),
             want="mask"))
    add(Case("masks: garbage", FEAT, setup=write("feat/masks/visual/v0.npy", b"junk"), want="v0.npy"))
    add(Case("masks: 0.5", FEAT, want="0/1", setup=lambda w: (w / "feat/masks/visual").mkdir(parents=True) or np.save(
        w / "feat/masks/visual/v0.npy", np.full(len(np.load(w / "feat/features/visual/v0.npy")), 0.5))))
    add(Case("masks: 0/1 floats (accepted)", FEAT, expect=0, setup=lambda w: (w / "feat/masks/visual").mkdir(parents=True) or np.save(
        w / "feat/masks/visual/v0.npy", np.ones(len(np.load(w / "feat/features/visual/v0.npy")), np.float32))))
    add(Case("--modalities not in the folder", [*FEAT, "--modalities", "visual,smell"], want="smell"))
    # -- results store ------------------------------------------------------------------------------
    for label, setup, expect in (
            ("garbage record", write("store/runs/junk.json", "{not json"), 0),
            ("empty record", write("store/runs/empty.json", ""), 0),
            ("binary record", write("store/runs/bin.json", b"\x00\xff" * 100), 0),
            ("a folder as record", lambda w: (w / "store/runs/dir.json").mkdir(), 0),
            ("a record of a list", write("store/runs/list.json", "[1, 2, 3]"), 0),
            ("record with NaN metric", write("store/runs/nan.json", json.dumps(
                {"run_id": "nan", "config_hash": "x", "status": "ok", "metrics": {"test": {"mean": float("nan")}}})), 0),
            ("garbage index", write("store/fusion_bench.sqlite", b"garbage" * 100), 0),
            ("index is a folder", steps(remove("store/fusion_bench.sqlite"),
                                        lambda w: (w / "store/fusion_bench.sqlite").mkdir()), 0),
            ("garbage claim", write("store/claims/x.json", "{"), 0)):
        add(Case(f"store: {label} (run)", RUN, setup=setup, expect=expect))
        add(Case(f"store: {label} (leaderboard)", ["leaderboard", "--out", "store"], setup=setup,
                 expect=expect))
    add(Case("store: runs/ is a file", RUN, setup=steps(lambda w: shutil.move(w / "store/runs", w / "runs.bak"),
                                                        write("store/runs", "x")), store_check=False,
             check=lambda w: None if (w / "store/runs").read_text() == "x" else "store/runs changed"))
    add(Case("store: models/ is a file (run)", RUN, store_check=False, setup=steps(
        lambda w: shutil.move(w / "store/models", w / "models.bak"), write("store/models", "x")),
             check=lambda w: None if (w / "store/models").read_text() == "x" and len(
                 list((w / "store/runs").glob("*.json"))) == 1 else "a record or models/ changed"))
    add(Case("--out a file", [*RUN[:2], "f.txt", *RUN[3:]], setup=write("f.txt", "keep")))
    add(Case("--out under a file", [*RUN[:2], "f.txt/sub", *RUN[3:]], setup=write("f.txt", "keep")))
    add(Case("--out '' (the current folder)", [*RUN[:2], "", *RUN[3:]], expect=0))
    add(Case("--out read-only", [*RUN[:2], "ro", *RUN[3:]], setup=mount_tmpfs("ro", readonly=True),
             needs_root=True))
    add(Case("--out a full disk", [*RUN[:2], "full", *RUN[3:]], needs_root=True,
             setup=mount_tmpfs("full", size="1m", copy="store", fill=True), want="No space left",
             check=lambda w: full_disk_kept(w)))
    # -- sweep ----------------------------------------------------------------------------------------
    for args in (["--seeds", "abc"], ["--seeds", ""], ["--seeds", "1000000000000000000000000000000"],
                 ["--seeds", "100000000"], ["--jobs", "0"], ["--jobs", "-1"], ["--jobs", "abc"],
                 ["--executor", "slurm"], ["--fusion", "nope"], ["--fusion", "only:"],
                 ["--fusion", "only:smell"], ["--fusion", "concat,nope"], ["--out", "f.txt"],
                 ["--config", "missing.toml"], ["--set", "train.lr=nan"], ["--modalities", ""]):
        base = {"--seeds": "1", "--fusion": "concat"}
        base.update(dict(zip(args[::2], args[1::2], strict=True)) if args[0] in base else {})
        rest = [] if args[0] in base else args
        add(Case(f"sweep {' '.join(args)!r}", [*SWEEP, *sum(([k, v] for k, v in base.items()), []), *rest],
                 setup=write("f.txt", "keep") if "f.txt" in args else None))
    add(Case("sweep --jobs 1000000", [*SWEEP, "--fusion", "concat", "--seeds", "1", "--jobs", "1000000"],
             expect=0))
    add(Case("sweep only:visual with --modalities visual,audio", [*SWEEP, "--fusion", "only:visual",
                                                                 "--seeds", "1"], expect=0))
    add(Case("sweep --modalities visual --fusion rcma,concat", [*SWEEP, "--fusion", "rcma,concat",
                                                                "--modalities", "visual", "--seeds", "1"],
             expect=0, want="note: "))
    # -- leaderboard --------------------------------------------------------------------------------
    for args, expect in ((["--out", "nope"], 2), (["--out", "f.txt"], 2), (["--out", ""], 2),
                         (["--sort", "nope"], 2), (["--metric", "nope"], 2), (["--format", "pdf"], 2),
                         (["--dataset", "nope"], 2), (["--bench"], 2), (["--bench", "--sort", "params"], 2),
                         (["--plots", "f.txt"], 2), (["--tables", "f.txt/sub"], 2), (["--tables", ""], 0),
                         (["--explain", "--format", "html"], 2),  # text would break the html on stdout
                         (["--explain", "--format", "md"], 0), (["--metric", "rmse", "--sort", "test_valence"], 0),
                         (["--label", "x"], 2), (["--format", "json", "--compact"], 0)):
        base = [] if args[0] == "--out" else ["--out", "store"]
        add(Case(f"leaderboard {' '.join(args)!r}", ["leaderboard", *base, *args],
                 expect=expect, setup=write("f.txt", "keep")))
    add(Case("leaderboard, the old spelling --results S --out T", ["leaderboard", "--results", "store",
                                                                   "--out", "tables"], expect=0,
             want="deprecated", check=lambda w: None if list((w / "tables").glob("leaderboard_*"))
             else "no table in tables/"))
    add(Case("leaderboard into a full disk", ["leaderboard", "--out", "store", "--tables", "full"],
             needs_root=True, setup=mount_tmpfs("full", size="64k", fill=True),
             check=lambda w: None if not list((w / "full").glob("leaderboard*")) else "a table file left"))
    # -- bench ----------------------------------------------------------------------------------------
    for opt in ("--batch-size", "--seq-len", "--warmup", "--repeats", "--latency-repeats", "--threads",
                "--max-batch"):
        for bad in ("0", "-1", "abc", ""):
            if bad == "0" and opt == "--warmup":
                continue  # no warm-up is a valid choice
            add(Case(f"bench {opt} {bad!r}", [*BENCH, opt, bad]))
    add(Case("bench --batch-size 10**9 (out of memory, recorded)", [*BENCH, "--batch-size", "1000000000"],
             expect=0, want="out of memory"))
    for opt, bad in (("--seq-len", "1000000000"), ("--threads", "100000"),
                     ("--peak-tflops", "0"), ("--peak-tflops", "nan"),
                     ("--peak-tflops", "inf"), ("--peak-tflops", "abc"), ("--compile-mode", "nope"),
                     ("--amp", "fp8"), ("--device", "nope"), ("--device", "cuda"), ("--fusion", "nope"),
                     ("--scope", "nope"), ("--out", "f.txt")):
        add(Case(f"bench {opt} {bad}", [*BENCH, opt, bad], setup=write("f.txt", "keep")))
    add(Case("bench --repeats 10**12", [*BENCH, "--repeats", "1000000000000"], expect="runs", timeout=30))
    add(Case("bench --all --fusion concat", [*BENCH, "--all"]))
    add(Case("bench --modalities visual --scope fusion", [*BENCH, "--modalities", "visual", "--scope",
                                                           "fusion"]))
    # -- list -------------------------------------------------------------------------------------------
    add(Case("list nope", ["list", "nope"]))
    add(Case("list (every kind)", ["list"], expect=0, want="fusions"))
    add(Case("list fusions --options", ["list", "fusions", "--options"], expect=0))
    add(Case("list datasets --options", ["list", "datasets", "--options"], expect=0))
    add(Case("plugins extra arg", ["plugins", "x"]))
    # -- extract ----------------------------------------------------------------------------------------
    ex_root = EXTRACT.index("--root") + 1
    add(Case("extract: --root missing", [*EXTRACT[:ex_root], "nope", *EXTRACT[ex_root + 1:]]))
    add(Case("extract: --root a file", [*EXTRACT[:ex_root], "f.txt", *EXTRACT[ex_root + 1:]],
             setup=write("f.txt", "x")))
    add(Case("extract: --root empty", [*EXTRACT[:ex_root], "empty", *EXTRACT[ex_root + 1:]],
             setup=lambda w: (w / "empty").mkdir()))
    for args in (["--backbone", "visual"], ["--backbone", "=stub"], ["--backbone", "visual=nope"],
                 ["--backbone", "audio=stub"], ["--weights", "audio=x.pt"], ["--weights", "visual=missing.pt"],
                 ["--workers", "-1"], ["--workers", "0"], ["--workers", "abc"], ["--workers", "100000"],
                 ["--device", "nope"], ["--device", "cuda"], ["--dataset", "synthetic"],
                 ["--cache", "f.txt"], ["--cache", "feat"]):
        expect = 0 if args[:2] == ["--workers", "100000"] else 2
        add(Case(f"extract {' '.join(args)!r}", [*EXTRACT, *args], setup=write("f.txt", "keep"),
                 expect=expect, check=no_file("aw/fusion_bench_cache/features/visual/zz.npy")))
    add(Case("extract: labels malformed", EXTRACT,
             setup=write("aw/VA_Estimation_Challenge/Train_Set/a.txt", "valence,arousal\n0.1;0.2\n"),
             check=cache_intact))
    add(Case("extract: crop unreadable", [*EXTRACT, "--backbone", "visual=stub:other"],
             setup=write("aw/cropped_aligned/b/00002.jpg", b"junk"), check=cache_intact, want="00002.jpg"))
    add(Case("extract: backbone fails mid-way (re-extract)", [*EXTRACT, "--backbone", "visual=stub:other"],
             env={"FAIL_AT": "2"}, expect=2, check=cache_intact))
    add(Case("extract: killed mid-way (re-extract)", [*EXTRACT, "--backbone", "visual=stub:other"],
             env={"FAIL_AT": "kill:2"}, expect=-9, check=cache_intact))
    add(Case("extract: cache folder a (read-only) mount point", [*EXTRACT, "--cache", "ro"],
             setup=mount_tmpfs("ro", readonly=True), needs_root=True, want="mount point"))
    add(Case("extract: cache inside a read-only mount", [*EXTRACT, "--cache", "ro/cache"],
             setup=mount_tmpfs("ro", readonly=True), needs_root=True, want="Read-only"))
    add(Case("extract: cache on a full disk", [*EXTRACT, "--cache", "full/cache"],
             setup=mount_tmpfs("full", size="64k", fill=True), needs_root=True))
    # -- submit -------------------------------------------------------------------------------------------
    add(Case("submit: no --root", ["submit", *TINY]))
    add(Case("submit: --root missing", ["submit", "--root", "nope", *TINY]))
    add(Case("submit: features folder, no test list", ["submit", "--root", "feat", "--dataset", "features",
                                                       "--set", "train.epochs=1", "--quiet",
                                                       "--out", "s.csv"], want="lists no test videos"))
    add(Case("submit: --csv a folder", ["submit", "--root", "aw", "--modalities", "visual", "--csv", "feat",
                                        "--set", "train.epochs=1", "--quiet"], want="is a folder"))
    add(Case("submit: --csv under a file", ["submit", "--root", "aw", "--modalities", "visual", "--csv",
                                            "f.txt/s.csv", "--set", "train.epochs=1", "--quiet"],
             setup=write("f.txt", "x"), want="is a file, not a folder"))
    add(Case("submit: the old --out FILE spelling", ["submit", "--root", "aw", "--modalities", "visual",
                                                     "--out", "feat", "--set", "train.epochs=1", "--quiet"],
             want="is a folder"))
    add(Case("submit: synthetic", ["submit", "--root", "x", "--dataset", "synthetic", *TINY]))
    # -- predict ------------------------------------------------------------------------------------------
    add(Case("predict: unknown run", ["predict", "--run", "nope", "--out", "store", "--root", "feat",
                                      "--predictions", "p"]))
    add(Case("predict: run id with ..", ["predict", "--run", "../../etc/passwd", "--out", "store",
                                         "--root", "feat", "--predictions", "p"]))
    add(Case("predict: --run ''", ["predict", "--run", "", "--out", "store", "--root", "feat",
                                   "--predictions", "p"]))
    add(Case("predict: --out (the store) missing", ["predict", "--run", "RUN", "--out", "nope", "--root", "feat",
                                            "--predictions", "p"]))
    add(Case("predict: --root of other dims", ["predict", "--run", "RUN", "--out", "store", "--root",
                                               "feat", "--predictions", "p"]))
    add(Case("predict: --root missing", ["predict", "--run", "RUN", "--out", "store", "--root", "nope",
                                         "--predictions", "p"]))
    add(Case("predict: --predictions a file", ["predict", "--run", "RUN", "--out", "store", "--root", "synth",
                                       "--predictions", "f.txt"], setup=steps(write("f.txt", "x"), synth_folder)))
    add(Case("predict: --device nope", ["predict", "--run", "RUN", "--out", "store", "--root", "synth",
                                        "--predictions", "p", "--device", "nope"], setup=synth_folder))
    add(Case("predict: weights file garbage", ["predict", "--run", "RUN", "--out", "store", "--root",
                                               "synth", "--predictions", "p"],
             setup=steps(synth_folder, lambda w: [p.write_bytes(b"junk") for p in (w / "store/models").rglob("*.pt")]),
             store_check=False, want="not the weights of run"))
    add(Case("predict: weights missing", ["predict", "--run", "RUN", "--out", "store", "--root", "synth",
                                          "--predictions", "p"], setup=steps(synth_folder, remove("store/models")),
             store_check=False, want="not the weights of run"))
    add(Case("predict: works", ["predict", "--run", "RUN", "--out", "store", "--root", "synth", "--predictions", "p"],
             expect=0, setup=synth_folder))
    add(Case("predict: no --predictions", ["predict", "--run", "RUN", "--out", "store", "--root", "synth"],
             setup=synth_folder, want="--predictions"))
    c += later_cases()
    return c


class _RunsCode:
    """Pickled, it would run a shell command when loaded (what the mmsa reader must refuse)."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def later_cases() -> list[Case]:
    """The settings and readers added after the probe was first written: utterance-level data
    (issue 18), precision and modality dropout, Ray resources (issue 20)."""
    import pickle

    seq = ["--set", "dataset.synthetic.label_level=sequence"]
    c = [
        Case("seq: train.modality_dropout=1.5", [*RUN, "--set", "train.modality_dropout=1.5"],
             want="train.modality_dropout"),
        Case("seq: train.modality_dropout=nan", [*RUN, "--set", "train.modality_dropout=nan"],
             want="train.modality_dropout"),
        Case("seq: model.pooling=max", [*RUN, *seq, "--set", "model.pooling=max"], want="model.pooling"),
        Case("seq: model.pooling at frame level", [*RUN, "--set", "model.pooling=attention"],
             want="model.pooling"),
        Case("seq: train.loss=window at sequence level", [*RUN, *seq, "--set", "train.loss=window"],
             want="train.loss"),
        Case("seq: label_level=utterance", [*RUN, "--set", "dataset.synthetic.label_level=utterance"],
             want="label_level"),
        Case("seq: a sequence-level run works", [*RUN, *seq, "--set", "train.modality_dropout=0.3"],
             expect=0),
        Case("precision: fp16", [*RUN, "--set", "train.precision=fp16"], want="train.precision"),
        Case("mmsa: a pickle that runs code", ["run", "--out", "store", "--dataset", "mmsa", "--root", "evil.pkl"],
             setup=write("evil.pkl", pickle.dumps({"train": _RunsCode()})),
             want="refused to load the global", check=no_file("PWNED")),
        Case("mmsa: --root a folder", ["run", "--out", "store", "--dataset", "mmsa", "--root", "feat"],
             want="is a folder"),
        Case("mmsa: not a pickle", ["run", "--out", "store", "--dataset", "mmsa", "--root", "x.pkl"],
             setup=write("x.pkl", b"\x80\x04garbage"), want="x.pkl"),
        Case("csd: --root missing", ["run", "--out", "store", "--dataset", "csd", "--root", "nope"]),
        Case("csd: an empty folder", ["run", "--out", "store", "--dataset", "csd", "--root", "empty"],
             setup=lambda w: (w / "empty").mkdir()),
        Case("labels.csv: no row for the videos", FEAT,
             setup=steps(remove("feat/labels"), write("feat/labels.csv", "video,valence,arousal\n")),
             want="no row for video"),
        Case("sweep: --gpus-per-run without ray", [*SWEEP, "--fusion", "concat", "--gpus-per-run", "0.5"],
             want="--executor ray"),
        Case("sweep: --cpus-per-run 0", [*SWEEP, "--fusion", "concat", "--executor", "ray",
                                          "--cpus-per-run", "0"]),
    ]
    return c


def synth_folder(w: Path) -> None:
    """A features folder with the stored run's dims (the synthetic data of TINY, as the run had)."""
    make = ("from fusion_bench.config import build_config\n"
            "from fusion_bench.data.synthetic import SyntheticDataset\n"
            "from fusion_bench.data.features import write_video, write_splits\n"
            "import sys\n"
            f"cfg = build_config('quick', None, {tiny_pairs()!r})\n"
            "ds = SyntheticDataset(cfg.dataset.get('synthetic', {}), cfg.data.modalities, 0)\n"
            "sp = ds.splits()\n"
            "for vs in sp.values():\n"
            "    for v in vs: write_video(sys.argv[1], v)\n"
            "write_splits(sys.argv[1], {s: [v.name for v in vs] for s, vs in sp.items()})\n")
    subprocess.run([sys.executable, "-c", make, str(w / "synth")], check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})


def tiny_pairs() -> list[tuple[str, str]]:
    it = iter(TINY)
    return [tuple(next(it).split("=", 1)) for a in it if a == "--set"]  # type: ignore[misc]


def full_disk_kept(w: Path) -> str | None:
    """The store copied onto the full disk holds what it held."""
    before = json.loads((w / "store.digest").read_text())
    now = store_digest(w / "full")
    bad = [k for k in before if now.get(k) != before[k]]
    return f"records on the full disk lost or changed: {bad[:2]}" if bad else None


# -- running ---------------------------------------------------------------------------------------
@dataclass
class Outcome:
    case: Case
    rc: int | str
    traceback: bool
    kept: str
    message: str
    problems: list[str]


def run_case(case: Case, base: Path, work: Path, run_id: str, before: dict, run_ids: set) -> Outcome:
    shutil.copytree(base, work, symlinks=True)
    (work / "store.digest").write_text(json.dumps(before))
    (work / "cache.digest").write_text(json.dumps(digest(base / "aw" / "fusion_bench_cache")))
    made = case.setup(work) if case.setup else None
    cleanup = made if callable(made) else None  # a setup's lambda may return what it wrote
    args = [a.replace("RUN", run_id) if a == "RUN" else a for a in case.args]
    try:
        proc = subprocess.Popen([sys.executable, "-m", "fusion_bench", *args], cwd=work, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", **case.env},
                                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY)))
        try:
            out, err = proc.communicate(timeout=case.timeout)
            rc: int | str = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            rc = "runs"  # still running at the case's time limit: killed
        text = out + err
        tb = "Traceback (most recent call last)" in text
        kept = store_kept(work / "store", before, run_ids) if case.store_check else "(damaged by the case)"
        problems = []
        if rc != case.expect:
            problems.append(f"exit {rc}, {case.expect} due")
        if tb:
            problems.append("traceback")
        if "Error: unexpected" in err:  # the CLI's last net: a bug, not a message for the user
            problems.append("unexpected exception")
        if case.store_check and kept != "yes":
            problems.append(f"store: {kept}")
        if case.expect == 2 and case.error_line and "Error:" not in err:
            problems.append("no 'Error:' line")
        if case.want and case.want.lower() not in text.lower():
            problems.append(f"no {case.want!r} in the output")
        if case.forbid and case.forbid in text:
            problems.append(f"{case.forbid!r} in the output")
        if case.check is not None:
            extra = case.check(work)
            if extra:
                problems.append(extra)
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        message = next((ln for ln in reversed(lines) if ln.startswith(("Error", "note", "warning"))),
                       lines[-1] if lines else "")
        return Outcome(case, rc, tb, kept, message, problems)
    finally:
        if cleanup:
            cleanup()


def md(text: str, width: int = 110) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="", help="only the cases whose name holds this")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    ap.add_argument("--failures", action="store_true", help="print only the failing cases")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds: mounts and folders go
    tmp = Path(tempfile.mkdtemp(prefix="fault_probe_"))
    root_ok = os.geteuid() == 0 and shutil.which("mount") is not None
    try:
        base = tmp / "base"
        base.mkdir()
        t0 = time.time()
        build_base(base)
        before = store_digest(base / "store")
        run_ids = {Path(k).stem for k in before if k.startswith("runs/")}
        (run_id,) = run_ids
        todo = [c for c in cases() if a.only.lower() in c.name.lower()]
        skipped = [c for c in todo if c.needs_root and not root_ok]
        todo = [c for c in todo if c not in skipped]
        def one(i: int, case: Case) -> Outcome:
            try:
                o = run_case(case, base, tmp / f"case{i}", run_id, before, run_ids)
            except Exception as e:  # noqa: BLE001 - a probe bug is one failing row, not a lost run
                o = Outcome(case, "probe error", False, "?", f"{type(e).__name__}: {e}", ["probe error"])
            print(f"[{i + 1}/{len(todo)}] {case.name}: {'ok' if not o.problems else o.problems}",
                  file=sys.stderr, flush=True)
            if not a.keep:
                shutil.rmtree(tmp / f"case{i}", ignore_errors=True)
            return o

        with ThreadPoolExecutor(max_workers=a.jobs) as pool:
            outcomes = list(pool.map(lambda ic: one(*ic), enumerate(todo)))
        failed = [o for o in outcomes if o.problems]
        print("| case | command | exit | traceback | store kept | last line of stderr | verdict |")
        print("|---|---|---|---|---|---|---|")
        for o in outcomes:
            if a.failures and not o.problems:
                continue
            command = "fusion-bench " + " ".join(x if x and " " not in x else repr(x)
                                                 for x in o.case.args if x not in TINY[-1:])
            command = command.replace(" ".join(TINY[:-1]), "TINY")
            print(f"| {md(o.case.name, 60)} | `{md(command, 90)}` | {o.rc} | {'yes' if o.traceback else 'no'} "
                  f"| {md(o.kept, 40)} | {md(o.message)} | {'ok' if not o.problems else 'FAIL: ' + md('; '.join(o.problems), 80)} |")
        for c in skipped:
            print(f"| {md(c.name, 60)} | - | - | - | - | skipped: needs root to mount a tmpfs | skipped |")
        print(f"\n{len(outcomes)} cases, {len(failed)} failing, {len(skipped)} skipped, "
              f"{time.time() - t0:.0f} s; TINY = {' '.join(TINY[:-1])}")
        return 1 if failed else 0
    finally:
        if a.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
