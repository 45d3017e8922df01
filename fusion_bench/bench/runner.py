"""Run a benchmark (:func:`run_bench`): build the workload, count FLOPs, time each phase,
optionally search the largest batch; return everything the record holds."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from ..config import RunConfig
from ..costs import count_flops, parameter_counts
from ..data.windows import WINDOW_CAP
from ..errors import ConfigError
from ..runtime import compute_device, seed_everything
from ..train import make_optimizer
from .device import device_details, peak_flops, tf32_switches
from .memory import free_memory, search_max_batch, short_error
from .settings import BenchSettings, defaults_for
from .timing import measure, sync
from .workload import AMP_DTYPES, build_workload, infer_step, make_inputs, train_step


def run_bench(cfg: RunConfig, registry, settings: BenchSettings,
              log: Callable[[str], None] | None = None) -> dict:
    """Benchmark ``cfg``'s model; return the result (see :func:`make_bench_record`)."""

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
    elif cfg.data.window == 0:  # left to the data, which a benchmark does not read: the rule's cap
        cfg.data.window = WINDOW_CAP
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
    except Exception as e:  # noqa: BLE001 - a module its CPU copy cannot run: no count
        flops = {"inference": None, "train": None, "by_part": {}, "error": short_error(e)}
    work.model.to(device)
    compile_info = None
    if settings.compile:
        from torch import _dynamo
        from torch._dynamo.utils import counters

        _dynamo.reset()
        counters.clear()
        # compiling a Module returns an OptimizedModule (a Module); the stubs say a Callable
        work.timed = torch.compile(  # type: ignore[assignment]
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
                sync(device)
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
