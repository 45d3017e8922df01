"""Memory: peak memory per phase (GPU allocator, or the process's peak RSS on CPU),
out-of-memory detection, and the search for the largest batch that fits."""

from __future__ import annotations

import gc
import resource
import sys
from collections.abc import Callable
from pathlib import Path

import torch


def is_oom(error: BaseException) -> bool:
    """Whether ``error`` is an out-of-memory error (CUDA, or a failed CPU allocation)."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def short_error(error: BaseException) -> str:
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
            tried.append({"batch_size": b, "fits": False, "error": short_error(e)})
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
