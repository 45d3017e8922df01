"""Do the defaults serve data we did not make? Write feature folders of several shapes, run
``fusion-bench run --root DIR`` with the defaults for a few seeds, and print test CCC per target
against the ridge row each run records.

    python scripts/defaults_check.py --out /tmp/shapes [--seeds 3] [--only many-short-1m,...]

Shapes (none is the default synthetic configuration):
- many-short-1m / many-short-2m: 100 sequences of 10-300 frames (the synthetic generator with
  short videos), one modality (visual) / two (visual, audio);
- few-long-2m: 12 sequences of 2000-4000 frames, two modalities;
- ar-1m: a generator of its own (not the synthetic one): smoothed random-walk valence/arousal,
  features a fixed random projection of the labels' recent history, squared terms and noise,
  60 sequences of 50-500 frames, one 20-d modality.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def synthetic_folder(root: Path, n: int, lo: int, hi: int, mods: tuple[str, ...], seed: int):
    from fusion_bench.data.features import write_splits, write_video
    from fusion_bench.data.synthetic import SyntheticConfig, SyntheticDataset

    n_val = n_test = max(2, n // 6)
    ds = SyntheticDataset(SyntheticConfig(n_train=n - 2 * n_val, n_val=n_val, n_test=n_test,
                                          min_frames=lo, max_frames=hi), mods, seed=seed)
    splits = ds.splits()
    for videos in splits.values():
        for v in videos:
            write_video(root, v)
    write_splits(root, {s: [v.name for v in vs] for s, vs in splits.items()})


def ar_folder(root: Path, n: int = 60, lo: int = 50, hi: int = 500, dim: int = 20, seed: int = 0):
    from fusion_bench.data import Video
    from fusion_bench.data.features import write_splits, write_video

    rng = np.random.default_rng(seed)
    proj = rng.normal(size=(6, dim)) / np.sqrt(6)
    names = {"train": [], "val": [], "test": []}
    for i in range(n):
        T = int(rng.integers(lo, hi + 1))
        walk = np.cumsum(rng.normal(scale=0.08, size=(T, 2)), axis=0) + rng.normal(scale=0.3, size=2)
        kernel = np.ones(15) / 15
        lab = np.stack([np.convolve(walk[:, j], kernel, mode="same") for j in range(2)], 1)
        lab = np.tanh(lab)
        lagged = np.vstack([lab[:1].repeat(10, 0), lab[:-10]])  # the features lag the labels
        basis = np.hstack([lagged, lagged**2, np.abs(lagged - lab)])
        x = basis @ proj + rng.normal(scale=0.5, size=(T, dim))
        labels = lab.astype(np.float32)
        labels[rng.random(T) < 0.05] = -5.0  # some frames unlabelled
        name = f"seq{i:03d}"
        split = "train" if i < int(n * 0.7) else "val" if i < int(n * 0.85) else "test"
        names[split].append(name)
        write_video(root, Video(name, {"visual": x.astype(np.float32)},
                                {"visual": np.ones(T, bool)}, labels))
    write_splits(root, names)


#: shape -> writer of its folder for a data seed (the seed draws the sequences and the split)
SHAPES = {
    "many-short-1m": lambda r, s: synthetic_folder(r, 100, 10, 300, ("visual",), s),
    "many-short-2m": lambda r, s: synthetic_folder(r, 100, 10, 300, ("visual", "audio"), s + 1),
    "few-long-2m": lambda r, s: synthetic_folder(r, 12, 2000, 4000, ("visual", "audio"), s + 2),
    "ar-1m": lambda r, s: ar_folder(r, seed=s - 1),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, default=3, help="model seeds 0..N-1 per folder")
    ap.add_argument("--data-seeds", default="1",
                    help="comma list: one folder per shape and data seed (1: the folders of the "
                         "closing notes; others draw other sequences and splits)")
    ap.add_argument("--only", default="")
    ap.add_argument("--extra", default="", help="extra arguments for every run, e.g. '--set ...'")
    args = ap.parse_args()
    out = Path(args.out)
    shapes = [s for s in SHAPES if not args.only or s in args.only.split(",")]
    print("shape | data seed | seed | test valence (ridge) | test arousal (ridge) | epochs | wall s")
    results: dict[str, list[tuple[dict, dict]]] = {}  # folder -> (test CCC, ridge's) per seed
    for shape, data_seed in [(s, int(d)) for s in shapes for d in args.data_seeds.split(",")]:
        name = shape if data_seed == 1 else f"{shape}-d{data_seed}"
        root = out / name
        if not (root / "splits.csv").exists():
            SHAPES[shape](root, data_seed)
        for seed in range(args.seeds):
            store = out / f"results-{name}"
            cmd = [sys.executable, "-m", "fusion_bench", "run", "--root", str(root), "--seed",
                   str(seed), "--quiet", "--out", str(store), *args.extra.split()]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                print(f"{shape} | {data_seed} | {seed} | FAILED: {p.stderr.strip().splitlines()[-1]}")
                continue
            path = next(line.split("record: ", 1)[1] for line in p.stdout.splitlines()
                        if line.startswith("record: "))
            rec = json.loads(Path(path).read_text())
            t, b = rec["metrics"]["test"], rec.get("baseline", {}).get("metrics", {}).get("test", {})
            results.setdefault(name, []).append((t, b))
            length = ", ".join(str(f.get("epochs")) for f in rec["fits"])
            print(f"{shape} | {data_seed} | {seed} | {t['valence']:.3f} ({b.get('valence', float('nan')):.3f}) | "
                  f"{t['arousal']:.3f} ({b.get('arousal', float('nan')):.3f}) | {length} | "
                  f"{rec['wall']['total_s']:.0f}", flush=True)
    print_totals(results)
    return 0


def print_totals(results: dict[str, list[tuple[dict, dict]]]) -> None:
    """Per target: the runs that beat the ridge row, the folders whose mean over seeds does, and
    the mean margin over the ridge (the counts README "Real data" quotes)."""
    targets = sorted({k for runs in results.values() for t, _ in runs for k in t} - {"mean"})
    for k in targets:
        runs = [(t[k], b[k]) for rs in results.values() for t, b in rs if k in t and k in b]
        folders = [(np.mean([t[k] for t, _ in rs]), rs[0][1][k]) for rs in results.values()
                   if rs and k in rs[0][1]]
        if not runs:
            continue
        print(f"{k}: beats the ridge in {sum(m > r for m, r in runs)} of {len(runs)} runs, "
              f"on the seeds' mean in {sum(m > r for m, r in folders)} of {len(folders)} "
              f"folders; mean margin {np.mean([m - r for m, r in runs]):+.3f}")


if __name__ == "__main__":
    sys.exit(main())
