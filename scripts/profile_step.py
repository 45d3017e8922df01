"""Where a bench step's time goes: torch.profiler over the steps `fusion-bench bench` times.

    PYTHONPATH=. python scripts/profile_step.py rcma concat --device cuda --amp none,bf16

Prints, per fusion and precision, the wall time per step, the device (kernel) time per step, the
kernels launched per step, and the operators taking the most device (or CPU) time. A step whose
wall time is far above its kernel time is bound by launches, not by arithmetic. On CPU it also
prints the share of the matrix products and convolutions (oneDNN's GEMMs): their time, their
FLOPs (counted on one extra step) and rate, and the step time left to everything else. Their
FLOPs at their rate is the step's floor: how fast it could be if nothing else cost anything.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from fusion_bench.bench.workload import build_workload, infer_step, make_inputs, train_step
from fusion_bench.config import build_config
from fusion_bench.data.windows import WINDOW_CAP
from fusion_bench.plugins import load_registry
from fusion_bench.runtime import resolve_device, seed_everything
from fusion_bench.train import make_optimizer

#: the operators that multiply matrices on CPU: products, and the convolutions (oneDNN's GEMMs)
_PRODUCTS = ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm",
             "aten::baddbmm_", "aten::mkldnn_convolution", "aten::convolution_backward")


def step_flops(step) -> float:
    """FLOPs of one call of ``step`` (matrix products and convolutions, forward and backward, 2
    per multiply-add), counted by torch's FlopCounterMode on a call outside the timed ones."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def matmul_share(events, steps: int, wall_s: float, flop: float) -> str:
    """One line: the CPU time and GFLOP/s of the matrix products and convolutions per step, and
    the rest of the step (``events``: ``key_averages()`` of the profile; ``flop``: one step's
    FLOPs, :func:`step_flops`). Their FLOPs at their own rate is the step's floor."""
    seconds = sum(e.self_cpu_time_total for e in events if e.key in _PRODUCTS) / 1e6
    if not seconds:
        return "matrix products: none recorded"
    per_step = seconds / steps
    return (f"matrix products and convolutions {per_step * 1e3:.1f} ms/step ({flop / 1e9:.2f} "
            f"GFLOP at {flop / per_step / 1e9:.0f} GFLOP/s, {per_step / wall_s:.0%} of the step); "
            f"everything else {(wall_s - per_step) * 1e3:.1f} ms/step")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fusions", nargs="+")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--amp", default="none,bf16", help="comma list of none, bf16, fp16")
    ap.add_argument("--phases", default="inference,train")
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--scope", default="model", choices=["model", "fusion"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--sort", default="device", choices=["device", "self_cpu"],
                    help="rank operators by kernel time, or by their own host time (launch-bound "
                         "steps)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    reg = load_registry()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    key = ("device_time_total" if device.type == "cuda" and args.sort == "device"
           else "self_cpu_time_total")
    for name in args.fusions:
        for amp in args.amp.split(","):
            amp = None if amp == "none" else amp
            for phase in args.phases.split(","):
                cfg = build_config(args.preset, None, [("model.fusion", name)])
                if cfg.data.window == 0:  # left to the data, which a profile does not read
                    cfg.data.window = WINDOW_CAP  # as `fusion-bench bench` does
                seed_everything(cfg.seed)
                work = build_workload(cfg, reg, args.scope)
                work.model.to(device)
                inputs = make_inputs(work.dims, cfg.train.batch_size, cfg.data.window,
                                     work.n_targets, device,
                                     requires_grad=args.scope == "fusion" and phase == "train")
                if phase == "train":
                    work.timed.train()
                    trainable = any(p.requires_grad for p in work.timed.parameters())
                    opt = make_optimizer(work.timed, cfg.train, device) if trainable else None
                    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
                    step = train_step(work, inputs, device, amp, cfg, opt, scaler)
                else:
                    work.timed.eval()
                    step = infer_step(work, inputs, device, amp)
                for _ in range(3):
                    step()
                flop = step_flops(step) if device.type == "cpu" else 0.0
                if device.type == "cuda":
                    torch.cuda.synchronize()
                with profile(activities=acts) as prof:
                    t0 = time.perf_counter()
                    for _ in range(args.steps):
                        step()
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    wall = (time.perf_counter() - t0) / args.steps
                events = prof.key_averages()
                kernels = [e for e in prof.events()  # kernels, and the copies/memsets among them
                           if e.device_type == torch.autograd.DeviceType.CUDA]
                dev_ms = sum(e.device_time for e in kernels) / 1e3 / args.steps
                print(f"\n### {name} {phase} amp={amp} batch={cfg.train.batch_size} "
                      f"L={cfg.data.window} scope={args.scope}: wall {wall * 1e3:.2f} ms/step, "
                      f"kernels {dev_ms:.2f} ms/step, {len(kernels) / args.steps:.0f} device activities/step")
                if device.type == "cpu":
                    print(matmul_share(prof.key_averages(), args.steps, wall, flop))
                print(events.table(sort_by=key, row_limit=args.top, max_name_column_width=60))


if __name__ == "__main__":
    main()
