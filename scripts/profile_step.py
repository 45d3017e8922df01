"""Where a bench step's time goes: torch.profiler over the steps `fusion-bench bench` times.

    PYTHONPATH=. python scripts/profile_step.py rcma concat --device cuda --amp none,bf16

Prints, per fusion and precision, the wall time per step, the device (kernel) time per step, the
kernels launched per step, and the operators taking the most device (or CPU) time. A step whose
wall time is far above its kernel time is bound by launches, not by arithmetic. On CPU it also
prints the matrix products' share: their time and FLOP rate, and the step time left to
everything else, i.e. how fast the step could be if only the products cost anything.
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

_MATMULS = {"aten::mm": 0, "aten::addmm": 1, "aten::addmm_": 1, "aten::bmm": 0,
             "aten::baddbmm": 1, "aten::baddbmm_": 1}  # name -> index of the first factor


def matmul_share(events, steps: int, wall_s: float) -> str:
    """One line: the CPU time and GF/s of the matrix products per step, and the rest of the step
    (``events``: ``key_averages(group_by_input_shape=True)`` of a profile with shapes)."""
    seconds = flop = 0.0
    for e in events:
        first = _MATMULS.get(e.key)
        if first is None or len(e.input_shapes) < first + 2:
            continue
        a, b = e.input_shapes[first], e.input_shapes[first + 1]
        batch = a[0] if len(a) == 3 else 1
        flop += 2.0 * batch * a[-2] * a[-1] * b[-1] * e.count
        seconds += e.self_cpu_time_total / 1e6
    if not seconds:
        return "matrix products: none recorded"
    per_step = seconds / steps
    return (f"matrix products {per_step * 1e3:.0f} ms/step ({flop / steps / 1e9:.1f} GFLOP at "
            f"{flop / seconds / 1e9:.0f} GFLOP/s, {per_step / wall_s:.0%} of the step); "
            f"everything else {(wall_s - per_step) * 1e3:.0f} ms/step")


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
                if device.type == "cuda":
                    torch.cuda.synchronize()
                with profile(activities=acts, record_shapes=device.type == "cpu") as prof:
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
                    print(matmul_share(prof.key_averages(group_by_input_shape=True), args.steps,
                                       wall))
                print(events.table(sort_by=key, row_limit=args.top, max_name_column_width=60))


if __name__ == "__main__":
    main()
