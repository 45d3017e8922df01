"""Throughput: time a model on synthetic tensors of the configured shapes (DESIGN §8).

:func:`run_bench` builds the model of a run configuration (encoders + fusion + head, or the fusion
alone with ``scope="fusion"``), feeds it random tensors of the configured shapes (the paper's by
default: windows of 300 frames, visual 512, audio 128, text 768) and times

- inference at the run batch and at batch 1 (latency p50 / p95),
- training steps at the run batch: forward, the run's loss, backward and the run's optimiser
  (Adam with the configured learning rate and weight decay), as :func:`fusion_bench.train.fit`,

each as ``warmup`` untimed calls, then ``repeats`` calls timed one by one: with CUDA events and a
synchronisation per call on GPU, with ``time.perf_counter`` on CPU. A measurement reports the
median and the interquartile range (IQR = q75 − q25) of those calls: the spread of repeated
steps on one machine, not a spread over seeds or machines.

Also reported: frames/s and windows/s; peak memory per phase (GPU: ``max_memory_allocated``; CPU:
the process's peak RSS, reset before each phase where Linux allows); parameters, total and
trainable, split into encoders (with their BatchNorms) / fusion / head; FLOPs per window from
:class:`torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions; counted once on a
meta-device copy, so no compute); on GPU, achieved FLOP/s as a fraction of the device's peak; with
``compile=True`` (``compile_mode="reduce-overhead"``: CUDA graphs, which on a fast GPU remove the
kernel-launch cost that bounds these small models at batch 12), the first-call times and
dynamo's graph-break count. An out-of-memory error in a
phase is caught and reported in that phase (status ``"oom"``), and the other phases still run;
``find_max_batch`` searches the largest batch whose training step fits.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import hashlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .bench_table import device_name
from .config import RunConfig
from .errors import ConfigError
from .leaderboard import human
from .results import cpu_name, environment, new_record

SCOPES = ("model", "fusion")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

#: Dense peak TFLOP/s by device-name substring (first match wins) and math mode, from the vendors'
#: datasheets (SXM/PCIe as named by ``torch.cuda.get_device_name``). "tf32" is fp32 matmuls on
#: tensor cores (``torch.backends.cuda.matmul.allow_tf32``). Pass ``peak_tflops`` for others.
GPU_PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200", {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    ("H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0}),
    ("H100 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.0, "fp16": 835.0}),
    ("H100", {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    ("A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}),
    ("L40S", {"fp32": 91.6, "tf32": 183.0, "bf16": 362.0, "fp16": 362.0}),
    ("L4", {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0}),
    ("A10", {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0}),
    ("RTX 4090", {"fp32": 82.6, "tf32": 82.6, "bf16": 165.2, "fp16": 165.2}),
    ("V100", {"fp32": 15.7, "tf32": 15.7, "fp16": 125.0}),
    ("T4", {"fp32": 8.1, "tf32": 8.1, "fp16": 65.0}),
)


#: torch.compile's modes (``mode=None`` is "default")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class BenchSettings:
    """What :func:`run_bench` measures and how; ``None`` means "the default for the device"."""

    device: str | None = None  # None: the config's device (auto: cuda if available)
    amp: str | None = None  # "bf16" | "fp16": torch.autocast around forward passes
    compile: bool = False  # torch.compile the timed module
    # torch.compile's mode; "reduce-overhead" replays CUDA graphs, which removes the per-kernel
    # launch cost that dominates these small models on a fast GPU
    compile_mode: str = "default"
    batch_size: int | None = None  # None: train.batch_size
    seq_len: int | None = None  # None: data.window
    scope: str = "model"  # "model": encoders + fusion + head; "fusion": the fusion alone
    warmup: int | None = None  # untimed calls per measurement (CPU 1, GPU 10)
    repeats: int | None = None  # timed calls at the run batch (CPU 3, GPU 30)
    latency_repeats: int | None = None  # timed calls at batch 1 (CPU 10, GPU 100)
    train: bool = True  # also time training steps
    find_max_batch: bool = False
    max_batch: int = 4096  # upper bound of the search
    threads: int | None = None  # torch.set_num_threads on CPU (None: torch's default)
    peak_tflops: float | None = None  # device peak for the achieved fraction (None: table)
    group: str | None = None  # id shared by the records of one `bench --all`

    def __post_init__(self):
        if self.compile_mode not in COMPILE_MODES:
            raise ConfigError(f"unknown --compile-mode {self.compile_mode!r}; use one of "
                              + ", ".join(COMPILE_MODES))


def defaults_for(device: torch.device) -> dict[str, int]:
    """Warm-up and repeat counts: few on CPU, where one paper-shape training step takes seconds."""
    if device.type == "cpu":
        return {"warmup": 1, "repeats": 3, "latency_repeats": 10}
    return {"warmup": 10, "repeats": 30, "latency_repeats": 100}


# -------------------------------------------------------------------------------- statistics


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


# -------------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
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
        _sync(device)
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


# -------------------------------------------------------------------------------- memory


def is_oom(error: BaseException) -> bool:
    """Whether ``error`` is an out-of-memory error (CUDA, or a failed CPU allocation)."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def _short(error: BaseException) -> str:
    line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {line[:300]}"


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _read_status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class PeakMemory:
    """Peak memory of the code run between :meth:`reset` and :meth:`read`.

    GPU: ``torch.cuda.max_memory_allocated`` (tensors), after ``reset_peak_memory_stats``. CPU: the
    process's peak resident set (VmHWM), reset through ``/proc/self/clear_refs``; where that is
    not possible (not Linux), the peak since the process started (``ru_maxrss``), so labelled.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = "cuda_max_memory_allocated" if device.type == "cuda" else "process_peak_rss"

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS to the current
            self.kind = "process_peak_rss"
        except OSError:
            self.kind = "process_peak_rss_since_start"

    def read(self) -> dict:
        if self.device.type == "cuda":
            return {"bytes": int(torch.cuda.max_memory_allocated(self.device)), "kind": self.kind,
                    "reserved_bytes": int(torch.cuda.max_memory_reserved(self.device))}
        kb = _read_status_kb("VmHWM")
        if kb is None:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            kb = rss // 1024 if sys.platform == "darwin" else rss  # bytes on macOS, kB elsewhere
            self.kind = "process_peak_rss_since_start"
        return {"bytes": int(kb) * 1024, "kind": self.kind}


# -------------------------------------------------------------------------------- model parts


def parameter_counts(model) -> dict:
    """Parameters, total and trainable, of the whole model and of its encoders (with their
    BatchNorms) / fusion / head; the three parts add up to the whole."""

    from .model import count_parameters

    every, trainable = count_parameters(model, trainable_only=False), count_parameters(model)
    split = {part: {"total": every[part], "trainable": trainable[part]}
             for part in ("encoders", "fusion", "head")}
    return {"total": every["total"], "trainable": trainable["total"], "split": split}


def count_flops(module: torch.nn.Module, feats: dict, masks: dict,
                inputs_require_grad: bool = False) -> dict:
    """FLOPs for ``module(feats, masks)`` as FlopCounterMode counts them (matmuls, convolutions,
    attention: 2 per multiply-add; elementwise ops are not counted).

    ``inference``: one forward in eval mode without grad; ``train``: forward and backward in train
    mode (the loss is a sum of squares, which the counter does not count; with
    ``inputs_require_grad`` the backward pass includes the inputs' gradients, as for a fusion
    inside the model). Counted on a
    meta-device copy, so nothing is computed. ``by_part``: the inference count per child module
    (encoders, norms, fusion, head) where the counter attributes it.
    """
    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(module).to("meta")
    mf = {m: x.to("meta").requires_grad_(inputs_require_grad) for m, x in feats.items()}
    mk = {m: x.to("meta") for m, x in masks.items()}
    meta.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(mf, mk)
    inference = counter.get_total_flops()
    # keys are module paths ("FusionModel.encoders.visual.net.0.conv1", ...), each counting its
    # whole subtree; a container that is never called itself (a ModuleDict) has no key, so each
    # part sums its shallowest keys
    root = type(meta).__name__
    depth: dict[str, int] = {}
    for name in counter.get_flop_counts():
        parts = name.split(".")
        if len(parts) >= 2 and parts[0] == root:
            depth[parts[1]] = min(depth.get(parts[1], len(parts)), len(parts))
    by_part = {part: 0 for part in depth}
    for name, ops in counter.get_flop_counts().items():
        parts = name.split(".")
        if len(parts) >= 2 and parts[0] == root and len(parts) == depth[parts[1]]:
            by_part[parts[1]] += sum(ops.values())
    meta.train()
    with FlopCounterMode(display=False) as counter:
        out = meta(mf, mk)
        if out.requires_grad:  # else nothing to differentiate (no parameters, no input grads)
            out.float().square().mean().backward()
    return {"inference": int(inference), "train": int(counter.get_total_flops()),
            "by_part": by_part}


# -------------------------------------------------------------------------------- environment


def device_details(device: torch.device) -> dict:
    """What :func:`fusion_bench.results.environment` lacks for timings: driver, CUDA, cuDNN,
    GPU properties; CPU model, cores, vector ISA, threads and load."""
    out: dict = {}  # torch and CUDA versions are in environment() already
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update({
            "gpu": props.name,
            "gpu_memory_bytes": int(props.total_memory),
            "gpu_capability": f"{props.major}.{props.minor}",
            "gpu_multiprocessors": int(props.multi_processor_count),
            "driver": _nvidia_driver(),
            "cudnn": torch.backends.cudnn.version(),
            **tf32_switches(),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        })
    else:
        out.update({
            "driver": None,
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(),
        })
    if hasattr(os, "getloadavg"):
        out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    return out


def tf32_switches() -> dict[str, bool]:
    """Whether float32 matrix products (cuBLAS) and cuDNN convolutions run in TF32. cuDNN's
    default is on: convolutions and LSTMs use TF32 even without autocast. Read through the
    ``fp32_precision`` switches where the legacy flags refuse (a caller used the new API)."""
    b = torch.backends
    try:
        return {"tf32_matmul": bool(b.cuda.matmul.allow_tf32),
                "tf32_cudnn": bool(b.cudnn.allow_tf32)}
    except RuntimeError:  # torch >= 2.9 after torch.backends.*.fp32_precision was set
        return {"tf32_matmul": b.cuda.matmul.fp32_precision == "tf32",
                "tf32_cudnn": b.cudnn.conv.fp32_precision == "tf32"}


def _nvidia_driver() -> str | None:
    try:
        res = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return res.stdout.strip().splitlines()[0] if res.returncode == 0 and res.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def peak_flops(device: torch.device, amp: str | None, override_tflops: float | None = None) -> dict:
    """The device's dense peak FLOP/s for the math mode in use, or None where unknown (CPU)."""
    mode = amp or ("tf32" if device.type == "cuda" and tf32_switches()["tf32_matmul"] else "fp32")
    if override_tflops is not None:
        return {"flops_per_s": override_tflops * 1e12, "mode": mode, "source": "--peak-tflops"}
    if device.type != "cuda":
        return {"flops_per_s": None, "mode": mode, "source": "unknown for CPUs"}
    name = torch.cuda.get_device_name(device)
    for key, table in GPU_PEAK_TFLOPS:
        if key in name and mode in table:
            return {"flops_per_s": table[mode] * 1e12, "mode": mode, "source": f"datasheet ({key})"}
    return {"flops_per_s": None, "mode": mode, "source": f"no entry for {name!r}; pass --peak-tflops"}


# -------------------------------------------------------------------------------- the workload


@dataclass
class Workload:
    """The timed module, its inputs' widths and its loss; built by :func:`build_workload`."""

    model: torch.nn.Module  # the FusionModel (parameters are counted on it)
    timed: torch.nn.Module  # what is called: the model, the fusion, or a compiled wrapper of one
    dims: dict[str, int]  # input widths of ``timed``
    n_targets: int
    loss: str  # "window" | "batch" (the run's CCC loss) | "square" (fusion alone)


def input_dims(cfg: RunConfig, registry) -> dict[str, int]:
    """Raw feature widths per modality, from the dataset plugin (the synthetic one only reads its
    config: nothing is generated)."""
    entry = registry.get("datasets", cfg.data.name)
    try:
        ds = entry.obj.from_config(cfg)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"dataset {cfg.data.name!r} ({entry.plugin}): {e}") from None
    return dict(ds.dims)


def build_workload(cfg: RunConfig, registry, scope: str = "model") -> Workload:
    from .data import TARGETS
    from .model import build_model

    if scope not in SCOPES:
        raise ConfigError(f"unknown bench scope {scope!r}; use one of {', '.join(SCOPES)}")
    dims = input_dims(cfg, registry)
    n_targets = 1 if cfg.model.per_target else len(TARGETS)
    model, _ = build_model(registry, cfg, dims, n_targets)
    if scope == "fusion":
        if model.fusion is None:
            raise ConfigError("--scope fusion needs two or more modalities (there is no fusion)")
        enc = {m: int(e.out_dim) for m, e in model.encoders.items()}
        return Workload(model, model.fusion, enc, n_targets, "square")
    return Workload(model, model, dims, n_targets, cfg.train.loss)


def make_inputs(dims: dict[str, int], batch: int, length: int, n_targets: int,
                device: torch.device, seed: int = 0, requires_grad: bool = False):
    """Random features (B, L, d_m), all-True masks, labels in [-1, 1] and an all-True valid mask.

    ``requires_grad``: the features want gradients, as a fusion's inputs do inside the model
    (they come from the encoders), so that timing the fusion alone includes its input gradients.
    """
    gen = torch.Generator().manual_seed(seed)
    feats = {m: torch.randn(batch, length, d, generator=gen).to(device).requires_grad_(requires_grad)
             for m, d in dims.items()}
    masks = {m: torch.ones(batch, length, dtype=torch.bool, device=device) for m in dims}
    labels = (torch.rand(batch, length, n_targets, generator=gen) * 2 - 1).to(device)
    valid = torch.ones(batch, length, dtype=torch.bool, device=device)
    return feats, masks, labels, valid


def _autocast(device: torch.device, amp: str | None):
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


def _loss(work: Workload, out, labels, valid):
    from .metrics import ccc_loss

    if work.loss == "square":
        return out.float().square().mean()
    return sum(
        ccc_loss(out[..., j], labels[..., j], valid, per_window=work.loss == "window")
        for j in range(work.n_targets)
    ) / work.n_targets


def infer_step(work: Workload, inputs, device: torch.device, amp: str | None) -> Callable:
    feats, masks, _, _ = inputs

    def step():
        with torch.no_grad(), _autocast(device, amp):
            return work.timed(feats, masks)

    return step


def train_step(work: Workload, inputs, device: torch.device, amp: str | None, cfg: RunConfig,
               optimizer: torch.optim.Optimizer | None, scaler) -> Callable:
    """One step as the trainer takes it: forward, loss, backward, (clip,) optimiser step.
    ``optimizer`` is None for a module without parameters (e.g. concat alone)."""
    feats, masks, labels, valid = inputs
    params = [p for p in work.timed.parameters() if p.requires_grad]

    def step():
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        for x in feats.values():
            x.grad = None
        with _autocast(device, amp):
            out = work.timed(feats, masks)
        loss = _loss(work, out, labels, valid)
        scaler.scale(loss).backward()
        if optimizer is not None:
            if cfg.train.max_grad_norm > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, cfg.train.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
        return loss

    return step


# -------------------------------------------------------------------------------- measurements


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
        return {"status": "oom", "batch_size": batch, "error": _short(e)}
    finally:
        del step
        free_memory(device)


def search_max_batch(fits: Callable[[int], None], start: int, limit: int) -> dict:
    """The largest batch size ``b`` ≤ ``limit`` for which ``fits(b)`` raises no out-of-memory
    error: doubling from ``start``, then bisection. Every try is reported; an OOM at one size
    does not stop the search (other errors propagate)."""
    tried: list[dict] = []

    def attempt(b: int) -> bool:
        try:
            fits(b)
        except Exception as e:  # noqa: BLE001
            if not is_oom(e):
                raise
            tried.append({"batch_size": b, "fits": False, "error": _short(e)})
            return False
        tried.append({"batch_size": b, "fits": True})
        return True

    lo, hi = 0, None  # largest size that fits, smallest that does not
    b = max(1, min(start, limit))
    while True:
        if attempt(b):
            lo = b
            if b >= limit:
                break
            b = min(2 * b, limit)
        else:
            hi = b
            break
    if hi is not None:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if attempt(mid):
                lo = mid
            else:
                hi = mid
    return {"max_batch": lo, "first_oom": hi, "limit": limit, "limit_reached": hi is None,
            "tried": tried}


# -------------------------------------------------------------------------------- the benchmark


def run_bench(cfg: RunConfig, registry, settings: BenchSettings,
              log: Callable[[str], None] | None = None) -> dict:
    """Benchmark ``cfg``'s model; return the result (see :func:`make_bench_record`)."""
    from .train import compute_device, make_optimizer, seed_everything

    log = log or (lambda _msg: None)
    device = compute_device(settings.device or cfg.device)  # as the trainer's
    if settings.amp is not None and settings.amp not in AMP_DTYPES:
        raise ConfigError(f"unknown --amp {settings.amp!r}; use bf16 or fp16")
    if device.type == "cpu" and settings.threads:
        torch.set_num_threads(settings.threads)
    for name in ("batch_size", "seq_len", "max_batch", "threads"):
        value = getattr(settings, name)
        if value is not None and value < 1:
            raise ConfigError(f"bench {name.replace('_', '-')} must be ≥ 1, got {value}")
    counts = {k: v if getattr(settings, k) is None else getattr(settings, k)
              for k, v in defaults_for(device).items()}
    if counts["repeats"] < 1 or counts["latency_repeats"] < 1 or counts["warmup"] < 0:
        raise ConfigError("bench repeats must be ≥ 1 and warmup ≥ 0")
    cfg = copy.deepcopy(cfg)  # the shapes measured are written back into the returned config
    if settings.seq_len is not None:
        cfg.data.window = settings.seq_len
    if settings.batch_size is not None:
        cfg.train.batch_size = settings.batch_size
    batch, length = cfg.train.batch_size, cfg.data.window
    seed_everything(cfg.seed)

    work = build_workload(cfg, registry, settings.scope)
    params = parameter_counts(work.model)
    one = make_inputs(work.dims, 1, length, work.n_targets, torch.device("cpu"))
    log("counting FLOPs ...")
    try:
        flops = count_flops(work.timed, one[0], one[1],
                            inputs_require_grad=settings.scope == "fusion")
    except Exception as e:  # noqa: BLE001 - a module the meta device cannot run: no count
        flops = {"inference": None, "train": None, "by_part": {}, "error": _short(e)}
    work.model.to(device)
    compile_info = None
    if settings.compile:
        from torch import _dynamo
        from torch._dynamo.utils import counters

        _dynamo.reset()
        counters.clear()
        work.timed = torch.compile(
            work.timed, mode=None if settings.compile_mode == "default" else settings.compile_mode)
    peak = peak_flops(device, settings.amp, settings.peak_tflops)

    def inputs(b, requires_grad=False):
        return make_inputs(work.dims, b, length, work.n_targets, device,
                           requires_grad=requires_grad)

    def infer_factory(b):
        work.timed.eval()
        return infer_step(work, inputs(b), device, settings.amp)

    trainable = any(p.requires_grad for p in work.timed.parameters())
    optimizer = make_optimizer(work.timed, cfg.train, device) if trainable else None  # as fit
    scaler = torch.amp.GradScaler(device.type, enabled=settings.amp == "fp16")

    def train_factory(b):
        work.timed.train()
        return train_step(work, inputs(b, requires_grad=settings.scope == "fusion"), device,
                          settings.amp, cfg, optimizer, scaler)

    phases: dict[str, dict] = {}
    fi, ft = flops.get("inference"), flops.get("train")
    log(f"inference, batch {batch} ...")
    phases["inference"] = measure(infer_factory, batch, counts["warmup"], counts["repeats"],
                                  device, length, fi, peak["flops_per_s"])
    log("inference, batch 1 ...")
    phases["inference_batch1"] = measure(infer_factory, 1, max(counts["warmup"], 2),
                                         counts["latency_repeats"], device, length, fi,
                                         peak["flops_per_s"])
    if settings.train:
        log(f"training steps, batch {batch} ...")
        phases["train"] = measure(train_factory, batch, counts["warmup"], counts["repeats"],
                                  device, length, ft, peak["flops_per_s"])
    max_batch = None
    if settings.find_max_batch:
        log("searching the largest batch ...")
        factory = train_factory if settings.train else infer_factory

        def fits(b):
            step = factory(b)
            try:
                step()
                _sync(device)
            finally:
                del step
                free_memory(device)

        max_batch = search_max_batch(fits, batch, settings.max_batch)
        max_batch["phase"] = "train" if settings.train else "inference"
    if settings.compile:
        from torch._dynamo.utils import counters

        reasons = dict(counters["graph_break"])
        compile_info = {
            "graph_breaks": int(sum(reasons.values())),
            "graph_break_reasons": [str(r)[:300] for r in list(reasons)[:20]],
            "unique_graphs": int(counters["stats"].get("unique_graphs", 0)),
            # the first call of a phase compiles (and runs once): its time minus a step's median
            "compile_s": {name: max(0.0, p["first_call_s"] - p["median_s"])
                          for name, p in phases.items()
                          if p.get("status") == "ok" and p.get("first_call_s") is not None},
        }
    status = "oom" if any(p.get("status") == "oom" for p in phases.values()) else "ok"
    dtype = str(AMP_DTYPES[settings.amp]).replace("torch.", "") if settings.amp else "float32"
    return {
        "status": status,
        "device": str(device),
        "config": cfg,
        "params": params,
        "bench": {
            "fusion": cfg.model.fusion,
            "scope": settings.scope,
            "batch_size": batch,
            "seq_len": length,
            "input_dims": work.dims,
            "n_targets": work.n_targets,
            "loss": work.loss,
            "optimizer": {"name": "Adam", "lr": cfg.train.lr,
                          "weight_decay": cfg.train.weight_decay},
            "dtype": dtype,
            "flags": {
                "amp": settings.amp, "compile": settings.compile,
                "compile_mode": settings.compile_mode if settings.compile else None,
                "scope": settings.scope,
                "threads": torch.get_num_threads(), "flush_denormal": device.type == "cpu",
                "tf32_matmul": tf32_switches()["tf32_matmul"],
                "find_max_batch": settings.find_max_batch, **counts,
            },
            "timing": ("CUDA events around each call, device synchronised after each"
                       if device.type == "cuda" else "time.perf_counter around each call"),
            "spread": "IQR (q75 - q25) over the timed calls of one process",
            "flops_per_window": flops,
            "peak_flops": peak,
            "phases": phases,
            "max_batch": max_batch,
            "compile": compile_info,
            "group": settings.group,
            "device_details": device_details(device),
        },
    }


def bench_hash(cfg: RunConfig, settings: BenchSettings) -> str:
    """Identity of a benchmark: the config and what was measured, prefixed so that it can never
    equal a training run's config hash (the store skips runs by hash)."""
    d = cfg.to_dict()
    d.pop("device")
    s = asdict(settings)
    for k in ("group", "device", "peak_tflops"):
        s.pop(k)
    if s["compile_mode"] == "default":  # records from before the option keep their hash
        s.pop("compile_mode")
    blob = json.dumps({"config": d, "bench": s}, sort_keys=True, default=str).encode()
    return "bench-" + hashlib.sha256(blob).hexdigest()[:16]


def make_bench_record(cfg: RunConfig, settings: BenchSettings, result: dict,
                      plugins: dict) -> dict:
    """The store record (``kind: "bench"``, empty ``metrics``) of :func:`run_bench`'s result."""
    cfg = result.get("config", cfg)
    dev = torch.device(result["device"])
    return {
        **new_record(cfg.to_dict(), bench_hash(cfg, settings), plugins,
                     {**environment(result["device"]), **result["bench"]["device_details"]},
                     f"bench-{cfg.model.fusion}-{dev.type}-{uuid.uuid4().hex[:8]}",
                     status=result["status"]),
        "kind": "bench",
        "metrics": {},
        "params": result["params"],
        "bench": {k: v for k, v in result["bench"].items() if k != "device_details"},
    }


# -------------------------------------------------------------------------------- report


def _ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:,.1f}"


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _count(n: float | None) -> str:
    return "-" if n is None else human(n, digits=2)


def _compiled(flags: dict) -> str:
    if not flags.get("compile"):
        return ""
    mode = flags.get("compile_mode") or "default"
    return ", compiled" + ("" if mode == "default" else f" ({mode})")


def format_report(record: dict) -> str:
    """A readable table of a bench record."""
    from tabulate import tabulate

    b, env, p = record["bench"], record["environment"], record["params"]
    what = "whole model" if b["scope"] == "model" else "fusion alone"
    device = device_name(record)
    n = b["flags"]["threads"]
    threads = f", {n} thread{'s' * (n != 1)}" if env.get("device", "").startswith("cpu") else ""
    head = (f"{b['fusion']} ({what}) on {env['device']} ({device}{threads}), {b['dtype']}"
            f"{' autocast' if b['flags']['amp'] else ''}{_compiled(b['flags'])}, "
            f"windows of {b['seq_len']} frames, torch {env['torch']}"
            + (f", CUDA {env['cuda']}, driver {env.get('driver')}" if env.get("gpu") else ""))
    rows = []
    labels = {"inference": f"inference, batch {b['batch_size']}", "inference_batch1": "inference, batch 1",
              "train": f"training step, batch {b['batch_size']}"}
    for name, ph in b["phases"].items():
        if ph.get("status") != "ok":
            rows.append([labels.get(name, name), f"OUT OF MEMORY: {ph.get('error', '')[:60]}"] + [""] * 7)
            continue
        frac = ph.get("peak_fraction")
        rows.append([
            labels.get(name, name), _ms(ph["median_s"]), _ms(ph["iqr_s"]), _ms(ph["p50_s"]),
            _ms(ph["p95_s"]), f"{ph['windows_per_s']:,.2f}", f"{ph['frames_per_s']:,.0f}",
            _bytes(ph["peak_memory"]["bytes"]),
            "-" if ph.get("achieved_flops_per_s") is None else
            _count(ph["achieved_flops_per_s"]) + "FLOP/s" + (f" ({frac:.1%} of peak)" if frac else ""),
        ])
    table = tabulate(rows, headers=["", "median ms", "IQR ms", "p50 ms", "p95 ms", "windows/s",
                                    "frames/s", "peak mem", "achieved"], disable_numparse=True)
    s = p["split"]
    lines = [head, table,
             f"spread: IQR over {b['flags']['repeats']} timed calls ({b['flags']['latency_repeats']} at "
             f"batch 1) after {b['flags']['warmup']} warm-up; memory: "
             + next(iter(ph["peak_memory"]["kind"] for ph in b["phases"].values()
                         if ph.get("status") == "ok"), "-"),
             f"parameters: {_count(p['total'])} total, {_count(p['trainable'])} trainable "
             f"(encoders {_count(s['encoders']['total'])}, fusion {_count(s['fusion']['total'])}, "
             f"head {_count(s['head']['total'])})"]
    f = b["flops_per_window"]
    if f.get("inference") is not None:
        parts = ", ".join(f"{k} {_count(v)}" for k, v in f.get("by_part", {}).items() if v)
        lines.append(f"FLOPs per window: {_count(f['inference'])}FLOP inference"
                     + (f" ({parts})" if parts else "")
                     + f", {_count(f['train'])}FLOP training step (forward + backward)")
    else:
        lines.append(f"FLOPs per window: not counted ({f.get('error', '-')})")
    pk = b["peak_flops"]
    if pk["flops_per_s"]:
        lines.append(f"device peak: {_count(pk['flops_per_s'])}FLOP/s {pk['mode']} ({pk['source']})")
    if b.get("compile"):
        c = b["compile"]
        lines.append(f"torch.compile: {c['graph_breaks']} graph breaks, {c['unique_graphs']} graphs; "
                     "compile time " + ", ".join(f"{k} {v:.1f} s" for k, v in c["compile_s"].items()))
    if b.get("max_batch"):
        m = b["max_batch"]
        tried = ", ".join(f"{t['batch_size']}{'' if t['fits'] else ' (OOM)'}" for t in m["tried"])
        lines.append(f"largest {m['phase']} batch: {m['max_batch']}"
                     + (" (search limit reached)" if m["limit_reached"] else "") + f"; tried {tried}")
    if env.get("load_avg"):
        lines.append(f"load average at the end: {', '.join(map(str, env['load_avg']))}")
    return "\n".join(lines)

