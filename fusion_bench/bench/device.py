"""The device a benchmark ran on: driver, GPU properties or CPU model, TF32 switches, and the
datasheet peak FLOP/s for the achieved fraction."""

from __future__ import annotations

import os
import subprocess

import torch

from ..provenance import cpu_name

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
        # cudnn.conv lives on torch's sys.modules replacement (CudnnModule), unseen by mypy
        conv = b.cudnn.conv  # type: ignore[attr-defined]
        return {"tf32_matmul": b.cuda.matmul.fp32_precision == "tf32",
                "tf32_cudnn": conv.fp32_precision == "tf32"}


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
