"""Leaderboards from the results store: one table per dataset, mean ± sample std over seeds.

Runs are grouped by their configuration minus the model seed, so a row is one configuration
and its n seeds. The table is a pure function of the stored records (no clock, no machine
state), so a committed leaderboard regenerates byte for byte from the same records.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import statistics
from dataclasses import dataclass, field

import numpy as np

METRIC_COLUMNS = ("test_valence", "test_arousal", "test_mean", "val_mean")


@dataclass
class Row:
    label: str
    dataset: str
    records: list[dict] = field(default_factory=list)

    def values(self, column: str) -> list[float]:
        split, _, target = column.partition("_")
        return [r["metrics"][split][target] for r in self.records]

    def seeds(self) -> list[int]:
        return [r["config"]["seed"] for r in self.records]


def _group_key(rec: dict) -> str:
    cfg = json.loads(json.dumps(rec["config"]))
    cfg.pop("seed", None)
    cfg.pop("device", None)
    cfg["train"].pop("progress", None)
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:8]


def _label(rec: dict) -> str:
    mods = rec["config"]["data"]["modalities"]
    if len(mods) == 1:
        return f"{mods[0]} only"
    return rec["config"]["model"]["fusion"]


def build_rows(records: list[dict], dataset: str | None = None) -> dict[str, list[Row]]:
    """dataset name → rows (one per configuration), from successful run records."""
    groups: dict[tuple[str, str], Row] = {}
    for rec in records:
        if rec.get("status", "ok") != "ok" or rec.get("kind", "run") != "run":
            continue
        ds = rec["config"]["data"]["name"]
        if dataset and ds != dataset:
            continue
        key = (ds, _group_key(rec))
        groups.setdefault(key, Row(_label(rec), ds)).records.append(rec)
    out: dict[str, list[Row]] = {}
    for (ds, _key), row in sorted(groups.items()):
        row.records.sort(key=lambda r: r["config"]["seed"])
        out.setdefault(ds, []).append(row)
    for rows in out.values():  # disambiguate two configurations of one fusion
        labels = [r.label for r in rows]
        for r in rows:
            if labels.count(r.label) > 1:
                r.label = f"{r.label} [{_group_key(r.records[0])}]"
    return out


def mean_std(xs: list[float]) -> tuple[float, float]:
    return float(np.mean(xs)), (statistics.stdev(xs) if len(xs) > 1 else float("nan"))


def paired_indistinguishable(best: Row, other: Row, column: str = "test_mean",
                             resamples: int = 10_000) -> bool | None:
    """Paired bootstrap over the seeds both rows share: True when the 95 % interval of the mean
    difference (best − other) contains 0. None when fewer than 3 seeds are shared."""
    a = dict(zip(best.seeds(), best.values(column), strict=True))
    b = dict(zip(other.seeds(), other.values(column), strict=True))
    shared = sorted(set(a) & set(b))
    if len(shared) < 3:
        return None
    d = np.array([a[s] - b[s] for s in shared])
    rng = np.random.default_rng(0)  # fixed: the table must regenerate identically
    means = d[rng.integers(0, len(d), (resamples, len(d)))].mean(1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return bool(lo <= 0 <= hi)


def table(rows: list[Row], sort: str = "test_mean") -> tuple[list[str], list[list], str]:
    """(headers, body, caption) of one dataset's leaderboard; body cells are strings."""
    if sort not in METRIC_COLUMNS:
        raise ValueError(f"--sort must be one of {', '.join(METRIC_COLUMNS)}")
    rows = sorted(rows, key=lambda r: -mean_std(r.values(sort))[0])
    best = max(rows, key=lambda r: mean_std(r.values("test_mean"))[0])
    headers = ["model", "n", "test valence", "test arousal", "test mean", "val mean",
               "≈ best", "params", "train frames/s"]
    body = []
    for r in rows:
        cells = [r.label, str(len(r.records))]
        for c in METRIC_COLUMNS:
            m, s = mean_std(r.values(c))
            cells.append(f"{m:.3f} ± {s:.3f}" if s == s else f"{m:.3f}")
        same = paired_indistinguishable(best, r)
        cells.append("best" if r is best else {True: "yes", False: "no", None: "?"}[same])
        cells.append(f"{r.records[0]['params']['total']:,}")
        tp = [x["throughput"]["train_frames_per_s"] for x in r.records]
        cells.append(f"{np.median(tp):,.0f} ({r.records[0]['environment']['device']})")
        body.append(cells)
    rec = max((x for r in rows for x in r.records), key=lambda x: x["created"])
    info = rec["dataset"]
    ceiling = info.get("ceiling", {}).get("test", {}).get("mean")
    seeds = sorted({s for r in rows for s in r.seeds()})
    caption = (
        f"Dataset {info.get('name')} v{info.get('version')} (data seed {rec['config']['data']['seed']}). "
        f"CCC as mean ± sample standard deviation over n model seeds ({', '.join(map(str, seeds))}) "
        "on one fixed data draw: the spread is seed variance, not data variance. "
        "'≈ best': a paired bootstrap over shared seeds cannot tell the row's test mean from the "
        "best's (95 % interval of the difference contains 0); '?': fewer than 3 shared seeds."
        + (f" Ceiling (noiseless latent vs noisy label), test mean: {ceiling:.3f}." if ceiling else "")
        + f" fusion-bench {rec['environment']['fusion_bench']}, commit "
        f"{(rec['environment'].get('commit') or 'unknown')[:10]}, newest run {rec['created']}."
    )
    return headers, body, caption


def render(headers, body, caption, fmt: str) -> str:
    from tabulate import tabulate

    if fmt == "md":
        return tabulate(body, headers, tablefmt="github") + f"\n\n{caption}\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(headers)
        w.writerows(body)
        return buf.getvalue()
    if fmt == "latex":
        tex = tabulate(body, headers, tablefmt="latex_booktabs").replace("±", r"$\pm$").replace("≈", r"$\approx$")
        return ("\\begin{table}\n\\centering\n" + tex + "\n\\caption{" + caption.replace("%", r"\%")
                .replace("≈", r"$\approx$").replace("±", r"$\pm$").replace("_", r"\_") + "}\n\\end{table}\n")
    if fmt == "html":
        return tabulate(body, headers, tablefmt="html") + f"\n<p>{caption}</p>\n"
    raise ValueError(f"unknown format {fmt!r}; use md, csv, latex or html")
