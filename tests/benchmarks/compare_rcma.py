"""RCMA against the straightforward transcription of DESIGN §5, training steps at the paper's shapes.

    python -m tests.benchmarks.compare_rcma [--threads N] [--repeats N] [--warmup N]
                                            [--scope fusion|model|both] [--amp bf16]

A training step is what ``fusion-bench bench`` times: forward, the loss, backward, the trainer's Adam
(fused where torch has it, :func:`fusion_bench.train.make_optimizer`). For the
fusion alone the inputs want gradients, as they do inside the model; for the whole model, the
paper preset's model with the RCMA fusion and the same model with the reference fusion in its
place, with the same weights. Steps of the two alternate (A, B, A, B, ...), so that a change in
the machine's load hits both; the ratio is reported per pair and of the medians. This is a
measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from fusion_bench.bench.timing import percentile
from fusion_bench.bench.workload import Workload, build_workload, make_inputs, train_step
from fusion_bench.config import build_config
from fusion_bench.plugins import load_registry
from fusion_bench.train import make_optimizer

from .reference_rcma import ReferenceRCMA


def workloads(scope: str) -> tuple[Workload, Workload, object]:
    cfg = build_config("paper", None, [("model.fusion", "rcma"), ("device", "cpu")])
    torch.manual_seed(cfg.seed)
    real = build_workload(cfg, load_registry(), scope)
    fusion = real.model.fusion
    reference = ReferenceRCMA(fusion.dims, fusion.seq_len, fusion.iterations, fusion.joint,
                              fusion.dropout)
    reference.load_state_dict(fusion.state_dict())
    if scope == "fusion":
        ref = Workload(real.model, reference, real.dims, real.n_targets, real.loss)
    else:
        model = copy.deepcopy(real.model)
        model.fusion = reference
        ref = Workload(model, model, real.dims, real.n_targets, real.loss)
    return real, ref, cfg


def compare(scope: str, warmup: int, repeats: int, amp: str | None = None) -> None:
    real, ref, cfg = workloads(scope)
    steps = {}
    for name, work in (("rcma", real), ("reference", ref)):
        work.timed.train()
        inputs = make_inputs(work.dims, cfg.train.batch_size, cfg.data.window, work.n_targets,
                             torch.device("cpu"), requires_grad=scope == "fusion")
        opt = make_optimizer(work.timed, cfg.train, torch.device("cpu"))  # as bench and fit
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        steps[name] = train_step(work, inputs, torch.device("cpu"), amp, cfg, opt, scaler)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(warmup + repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    what = "fusion alone" if scope == "fusion" else "whole model"
    print(f"\n{what}: training step, batch {cfg.train.batch_size}, L = {cfg.data.window}, "
          f"{'autocast ' + amp + ', ' if amp else ''}"
          f"{torch.get_num_threads()} threads, {warmup} warm-up + {repeats} timed steps each")
    for name, ts in times.items():
        iqr = percentile(ts, 75) - percentile(ts, 25)
        print(f"  {name:10s} median {statistics.median(ts) * 1e3:8.0f} ms   IQR {iqr * 1e3:6.0f} ms"
              f"   steps/s {1 / statistics.median(ts):.3f}   [{', '.join(f'{t * 1e3:.0f}' for t in ts)}]")
    pairs = [b / a for a, b in zip(times["rcma"], times["reference"], strict=True)]
    ratio = statistics.median(times["reference"]) / statistics.median(times["rcma"])
    print(f"  step rate rcma / reference: {ratio:.2f}x (medians); per pair "
          f"{', '.join(f'{p:.2f}' for p in pairs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scope", choices=["fusion", "model", "both"], default="both")
    parser.add_argument("--amp", choices=["bf16"], default=None,
                        help="both steps under torch.autocast to bfloat16 (as train.precision=bf16)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    for scope in (("fusion", "model") if args.scope == "both" else (args.scope,)):
        compare(scope, args.warmup, args.repeats, args.amp)


if __name__ == "__main__":
    main()
