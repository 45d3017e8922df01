"""The store record of a benchmark (``kind: "bench"``) and its identity."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict

import torch

from ..config import RunConfig
from ..results import new_record
from ..runtime import environment
from .settings import BenchSettings


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
