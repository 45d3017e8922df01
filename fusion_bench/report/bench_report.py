"""A readable report of one benchmark record (``fusion-bench bench``'s output); no torch."""

from __future__ import annotations

from .bench_table import device_name
from .render import human


def _ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:,.1f}"


def _bytes(n: float | None) -> str:
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
