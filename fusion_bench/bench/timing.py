"""Timing calls: warm-up, then repeats timed one by one (CUDA events on GPU, perf_counter on
CPU); median and interquartile range; one phase's measurement with its memory peak."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch

from .memory import PeakMemory, free_memory, is_oom, short_error


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation between order statistics."""
    if not samples:
        raise ValueError("percentile of no samples")
    s = sorted(samples)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(samples: list[float]) -> dict:
    """Median, IQR (q75 − q25), p50, p95, min, max and mean of per-call times in seconds."""
    return {
        "n": len(samples),
        "median_s": statistics.median(samples),
        "q25_s": percentile(samples, 25),
        "q75_s": percentile(samples, 75),
        "iqr_s": percentile(samples, 75) - percentile(samples, 25),
        "p50_s": percentile(samples, 50),
        "p95_s": percentile(samples, 95),
        "min_s": min(samples),
        "max_s": max(samples),
        "mean_s": statistics.fmean(samples),
        "samples_s": list(samples),
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], warmup: int, repeats: int,
               device: torch.device) -> tuple[list[float], list[float]]:
    """Run ``fn`` ``warmup`` times, then ``repeats`` times; return (warm-up wall times, timed
    times), in seconds. Each timed call is bracketed by CUDA events on GPU (and the device is
    synchronised after each, so a call's time is its latency) or by perf_counter on CPU."""
    warm = []
    for _ in range(warmup):
        t0 = time.perf_counter()
        fn()
        sync(device)
        warm.append(time.perf_counter() - t0)
    times = []
    if device.type == "cuda":
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000.0)
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return warm, times


def _rates(stats: dict, batch: int, length: int, flops_per_window: int | None,
           peak: float | None) -> dict:
    t = stats["median_s"]
    out = {"windows_per_s": batch / t, "frames_per_s": batch * length / t}
    if flops_per_window:
        achieved = flops_per_window * batch / t
        out["achieved_flops_per_s"] = achieved
        out["peak_fraction"] = achieved / peak if peak else None
    return out


def measure(step_factory: Callable[[int], Callable], batch: int, warmup: int, repeats: int,
            device: torch.device, length: int, flops_per_window: int | None,
            peak: float | None) -> dict:
    """Time ``step_factory(batch)()``; an out-of-memory error gives ``{"status": "oom"}``."""
    probe = PeakMemory(device)
    step = None
    try:
        free_memory(device)
        probe.reset()
        step = step_factory(batch)
        warm, times = time_calls(step, warmup, repeats, device)
        stats = summarize(times)
        return {"status": "ok", "batch_size": batch, **stats,
                "warmup_s": warm, "first_call_s": warm[0] if warm else None,
                **_rates(stats, batch, length, flops_per_window, peak),
                "peak_memory": probe.read()}
    except Exception as e:  # noqa: BLE001 - only out-of-memory is caught, the rest re-raised
        if not is_oom(e):
            raise
        return {"status": "oom", "batch_size": batch, "error": short_error(e)}
    finally:
        del step
        free_memory(device)
