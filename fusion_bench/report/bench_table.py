"""Throughput tables from ``fusion-bench bench`` records: one table per device and workload.

A table compares fusions × precision modes (fp32, bf16 autocast, + ``torch.compile``, + its
CUDA-graph mode) measured on one device at one shape (scope, batch, window), the newest record
of each. Like the CCC leaderboards it is a pure function of the stored records, so a committed
table regenerates byte for byte.

The ``× concat`` column is the training step time over concat's in the same mode on the same
device: the cost of a fusion over plain concatenation with everything else (encoders, head,
optimiser, precision, compiler) held equal.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter

from .leaderboard import lookup
from .render import MISSING, human, render

BASELINE = "concat"
HEADERS = ["fusion", "mode", "train ms/step", "train windows/s", "× concat", "infer ms (batch B)",
           "infer windows/s", "batch-1 p50 / p95 ms", "train peak mem", "train achieved",
           "compile s", "graph breaks"]


def mode(rec: dict) -> str:
    """"fp32", "bf16", "bf16 + compile", "bf16 + compile (reduce-overhead)", ..."""
    flags = rec["bench"]["flags"]
    out = flags.get("amp") or ("tf32" if flags.get("tf32_matmul") else "fp32")
    if flags.get("compile"):
        m = flags.get("compile_mode") or "default"
        out += " + compile" + ("" if m == "default" else f" ({m})")
    return out


def _mode_order(name: str) -> tuple:
    precision, _, rest = name.partition(" + ")
    return ({"fp32": 0, "tf32": 1, "bf16": 2, "fp16": 3}.get(precision, 9), precision, rest)


def device_name(rec: dict) -> str:
    env = rec["environment"]
    return env.get("gpu") or env.get("cpu") or env.get("device_name") or env.get("device") or "?"


def slug(text: str) -> str:
    """A file-name-safe lower-case form: "NVIDIA H100 80GB HBM3" → "nvidia-h100-80gb-hbm3";
    trademark signs, which CPU names carry, are dropped: "Intel(R) Xeon(R) Processor" →
    "intel-xeon-processor"."""
    text = re.sub(r"\((r|tm|c)\)|[®™©]", " ", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "device"


def workload(rec: dict) -> tuple:
    """What must be equal for two records to share a table: the device, what was timed (scope,
    shapes, widths, encoder, modalities) and how (threads, warm-up and repeat counts, training
    phase or not). Precision and compilation vary within a table (its rows)."""
    b, flags, model = rec["bench"], rec["bench"]["flags"], rec["config"]["model"]
    return (device_name(rec), b["scope"], b["batch_size"], b["seq_len"],
            tuple(sorted(b["input_dims"].items())), model["encoder"],
            json.dumps(rec["config"].get("encoder", {}), sort_keys=True),
            tuple(rec["config"]["data"]["modalities"]),
            flags["threads"], flags["warmup"], flags["repeats"], flags["latency_repeats"],
            "train" in b["phases"])


def build_tables(records: list[dict]) -> dict[str, list[dict]]:
    """Table name (device slug, plus the workload where a device has several) → the newest
    record per (fusion, mode), in table order. Records of failed benchmarks are skipped; records
    with an out-of-memory phase are kept (the cell says OOM)."""
    groups: dict[tuple, dict[tuple, dict]] = {}
    for rec in sorted(records, key=lambda r: (r["created"], r["run_id"])):
        if rec.get("kind") != "bench" or rec.get("status") not in ("ok", "oom"):
            continue
        groups.setdefault(workload(rec), {})[(rec["bench"]["fusion"], mode(rec))] = rec
    per_device = Counter(key[0] for key in groups)
    out = {}
    for key in sorted(groups, key=str):
        dev, scope, batch, length = key[:4]
        name = slug(dev)
        if per_device[dev] > 1:  # several workloads on one device: one table each
            name += f"-{scope}-b{batch}-l{length}"
            if name in out:  # the same shape measured two ways: tell the tables apart
                name += "-" + hashlib.sha256(repr(key).encode()).hexdigest()[:6]
        cells = groups[key]
        out[name] = [cells[k] for k in sorted(cells, key=lambda k: (_mode_order(k[1]), k[0]))]
    return out


def _phase(rec: dict, name: str) -> dict | None:
    return lookup(rec, "bench", "phases", name)


def _cell(rec: dict, name: str, fmt) -> str:
    p = _phase(rec, name)
    if p is None:
        return MISSING
    return "OOM" if p.get("status") != "ok" else fmt(p)


def _rate(x: float) -> str:
    """Windows/s with three significant digits at least: 6,722 / 98.4 / 2.84 (CPU rates are small)."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _ms_iqr(p: dict) -> str:
    return f"{p['median_s'] * 1e3:,.1f} ± {p['iqr_s'] * 1e3:,.1f}"


def _mem(p: dict) -> str:
    n = lookup(p, "peak_memory", "bytes")
    return MISSING if n is None else f"{n / 2**20:,.0f} MiB"


def _achieved(p: dict, peak_mode: str | None) -> str:
    f = p.get("achieved_flops_per_s")
    if f is None:
        return MISSING
    frac = p.get("peak_fraction")
    return f"{human(f)}FLOP/s" + (f" ({frac:.0%} of {peak_mode})" if frac is not None else "")


def _ratio(rec: dict, rows: list[dict]) -> str:
    base = next((r for r in rows if r["bench"]["fusion"] == BASELINE and mode(r) == mode(rec)),
                None)
    mine, ref = _phase(rec, "train"), base and _phase(base, "train")
    if not mine or not ref or mine.get("status") != "ok" or ref.get("status") != "ok":
        return MISSING
    return f"{mine['median_s'] / ref['median_s']:.2f}"


def _compile(rec: dict) -> tuple[str, str]:
    c = rec["bench"].get("compile")
    if not c:
        return MISSING, MISSING
    return f"{sum(c['compile_s'].values()):.0f}", str(c["graph_breaks"])


def table(rows: list[dict]) -> tuple[list[str], list[list[str]], str]:
    """(headers, body, caption) of one device's throughput table."""
    body = []
    for rec in rows:
        body.append([
            rec["bench"]["fusion"], mode(rec),
            _cell(rec, "train", _ms_iqr),
            _cell(rec, "train", lambda p: _rate(p['windows_per_s'])),
            _ratio(rec, rows),
            _cell(rec, "inference", _ms_iqr),
            _cell(rec, "inference", lambda p: _rate(p['windows_per_s'])),
            _cell(rec, "inference_batch1", lambda p: f"{p['p50_s'] * 1e3:,.1f} / {p['p95_s'] * 1e3:,.1f}"),
            _cell(rec, "train", _mem),
            _cell(rec, "train", lambda p, r=rec: _achieved(p, lookup(r, "bench", "peak_flops", "mode"))),
            *_compile(rec),
        ])
    first = rows[0]
    b, env = first["bench"], first["environment"]
    versions = sorted({(r["environment"]["torch"], r["environment"].get("cuda") or "-",
                        r["environment"].get("driver") or "-") for r in rows})
    commits = sorted({(r["environment"].get("commit") or "unknown")[:10]
                      + (" (with local changes)" if r["environment"].get("dirty") else "")
                      for r in rows})
    dates = sorted(r["created"][:10] for r in rows)
    flags = b["flags"]
    caption = (
        f"{device_name(first)}: {'whole model (encoders + fusion + head)' if b['scope'] == 'model' else 'fusion alone'}"
        f" on synthetic tensors, windows of {b['seq_len']} frames, batch B = {b['batch_size']}; "
        f"widths {', '.join(f'{m} {d}' for m, d in b['input_dims'].items())}. "
        "A training step is forward, loss, backward and the optimiser step. "
        "Times: median ± IQR over the timed calls of one fresh process per row "
        f"({flags['repeats']} at batch B, {flags['latency_repeats']} at batch 1, after "
        f"{flags['warmup']} warm-up calls), "
        + ("CUDA events, device synchronised after each call. " if env.get("gpu")
           else "wall clock. ")
        + "'× concat': training step time over concat's in the same mode. "
        "'train achieved': counted FLOPs (torch.utils.flop_counter) per second, and the fraction "
        "of the device's datasheet dense peak for the named precision. 'compile s': first calls "
        "minus a step, summed over the three phases. bf16: torch.autocast. fp32: no autocast and "
        "no TF32 in matrix products"
        + (", but cuDNN's convolutions and LSTMs in TF32 (PyTorch's default), so an fp32 row "
           "whose FLOPs are mostly convolutions can pass 100 % of the fp32 peak"
           if env.get("gpu") and any(lookup(r, "environment", "tf32_cudnn") is not False
                                     for r in rows) else "")
        + f". '{MISSING}': not measured. "
        + "Versions (torch, CUDA, driver): " + "; ".join(", ".join(v) for v in versions)
        + f". fusion-bench {env['fusion_bench']}, commit {', '.join(commits)}; "
        f"measured {dates[0]}" + (f" to {dates[-1]}" if dates[-1] != dates[0] else "") + "."
    )
    return list(HEADERS), body, caption


def render_table(rows: list[dict], fmt: str) -> str:
    """One throughput table as md, csv, latex or html, every cell as written."""
    return render(*table(rows), fmt, numparse=False)


def document(tables: dict[str, list[dict]], fmt: str) -> str:
    """Every throughput table (name → rows) in one csv, a ``table`` column first, or one
    standalone html page (:mod:`.html_page`)."""
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["table", *HEADERS])
        for name, rows in tables.items():
            w.writerows([name, *cells] for cells in table(rows)[1])
        return buf.getvalue()
    if fmt == "html":
        from .html_page import Section, page, text_table_markup

        sections = []
        for name, rows in tables.items():
            headers, body, caption = table(rows)
            sections.append(Section(name, text_table_markup(headers, body), caption))
        return page("fusion-bench throughput", sections)
    raise ValueError(f"unknown document format {fmt!r}; use csv or html")
