"""Figures from leaderboard rows: accuracy against inference speed (with its Pareto front), and
accuracy under added noise.

matplotlib is the optional ``plots`` extra, imported only when a figure is made. Figures are
drawn on a bare ``Figure`` (no pyplot: no global backend switch, no figure registry) under
matplotlib's default style (a user's matplotlibrc does not leak in), with a fixed size and dpi,
and saved without the Software tag, so the same rows give the same PNG bytes with the same
matplotlib. Files are written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FusionBenchError
from ..files import atomic_write_bytes
from .leaderboard import Row, device, lookup, modality_order, value
from .statistics import mean_std

DPI = 120
INSTALL_HINT = 'plots need matplotlib: pip install "fusion-bench-affect[plots]"'


@dataclass
class Plot:
    """What a plot function drew: ``series`` maps panel → row label → the numbers plotted;
    ``png`` the figure (None when no row had the data); ``path`` where it was written (None
    when no path was given or no row had the data)."""

    path: Path | None
    series: dict[str, dict[str, tuple]] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)  # rows without the data
    front: list[str] = field(default_factory=list)  # pareto: labels on the front, fastest last
    png: bytes | None = None


def require_matplotlib():
    """The matplotlib module, or a FusionBenchError that says how to install it."""
    try:
        import matplotlib  # first, so a missing package fails here and not half-way
        import matplotlib.figure
        import matplotlib.style
    except ImportError as e:
        raise FusionBenchError(INSTALL_HINT) from e
    return matplotlib


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates, where (x, y) dominates when its x and y
    are both ≥ and one is >; higher is better on both axes. Ordered by x, then y descending."""
    def dominated(i: int) -> bool:
        xi, yi = points[i]
        return any(x >= xi and y >= yi and (x, y) != (xi, yi) for x, y in points)

    return sorted((i for i in range(len(points)) if not dominated(i)),
                  key=lambda i: (points[i][0], -points[i][1]))


def _colors(rows: list[Row]) -> dict[str, str]:
    """One colour per row label, by sorted label, so a row looks the same in every figure."""
    return {label: f"C{i % 10}" for i, label in enumerate(sorted(r.label for r in rows))}


def _device_label(recs: list[dict]) -> str:
    names = {f"{device(r)}: {n}" if (n := lookup(r, "environment", "device_name")) else device(r)
             for r in recs}
    return ", ".join(sorted(names))


def _save(fig, path: str | Path | None) -> tuple[bytes, Path | None]:
    """The figure as PNG bytes, also written to ``path`` if one is given."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    if path is not None:
        atomic_write_bytes(Path(path), buf.getvalue())
    return buf.getvalue(), None if path is None else Path(path)


def pareto(rows: list[Row], path: str | Path | None = None) -> Plot:
    """Mean test CCC (error bar: sample std over seeds) against median inference frames/s (log
    x), one labelled point per row, with the Pareto front (higher CCC and faster) as a step line.
    Rows without inference throughput are left out. Written to ``path`` if given."""
    mpl = require_matplotlib()
    pts: dict[str, tuple[float, float, float]] = {}
    left_out, used = [], []
    for r in rows:
        fps = r.summary("infer_fps")  # the median over seeds, as the table shows
        if fps is None:
            left_out.append(r.label)
            continue
        m, s = mean_std(r.values("test_mean"))
        pts[r.label] = (fps, m, s if s == s else 0.0)
        used += [x for x in r.records if value(x, "infer_fps") is not None]
    if not pts:
        return Plot(None, left_out=left_out)
    labels = list(pts)
    front = [labels[i] for i in pareto_front([pts[k][:2] for k in labels])]
    colors = _colors(rows)
    with mpl.style.context("default"):
        fig = mpl.figure.Figure(figsize=(7, 4.5), dpi=DPI)
        ax = fig.add_subplot()
        for k, (x, y, s) in pts.items():
            ax.errorbar([x], [y], yerr=[s], fmt="o", color=colors[k], capsize=3)
            ax.annotate(k, (x, y), xytext=(5, 4), textcoords="offset points", fontsize=8)
        # where="pre": from one front point to the next (faster, lower CCC) the line drops at
        # the slower point, then runs level at the faster one's CCC: the edge of the region
        # the front dominates, never claiming a CCC no row reaches at that speed.
        ax.step([pts[k][0] for k in front], [pts[k][1] for k in front], where="pre",
                color="0.4", linestyle="--", linewidth=1, label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel(f"inference frames/s, median over seeds (log scale; {_device_label(used)})")
        ax.set_ylabel("test mean CCC (± sample std over seeds)")
        ax.set_title(f"{rows[0].dataset}: accuracy against inference speed", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        png, written = _save(fig, path)
    return Plot(written, {"pareto": pts}, left_out, front, png)


def _curve(recs: list[dict], mod: str) -> tuple[list[float], list[float], list[float]] | None:
    """(levels, mean, std) over the records of the test mean CCC with noise on ``mod``."""
    have = [r for r in recs if lookup(r, "robustness", "noise", mod)]
    if not have:
        return None
    levels = have[0]["robustness"]["noise_levels"]
    # Only records measured at the same levels can be averaged level by level.
    ys = np.array([[p["mean"] for p in r["robustness"]["noise"][mod]] for r in have
                   if r["robustness"]["noise_levels"] == levels], float)
    std = ys.std(0, ddof=1) if len(ys) > 1 else np.zeros(ys.shape[1])
    return [float(x) for x in levels], ys.mean(0).tolist(), std.tolist()


def noise_curves(rows: list[Row], path: str | Path | None = None) -> Plot:
    """Mean test CCC against noise level, one line per row with a ±1 std band over seeds, one
    panel per noised modality (each modality alone, then all together) that any row recorded.
    Rows without robustness data are left out. Written to ``path`` if given."""
    mpl = require_matplotlib()
    series: dict[str, dict[str, tuple]] = {}
    left_out = []
    for r in rows:
        mods = list(dict.fromkeys(m for x in r.records for m in lookup(x, "robustness", "noise") or {}))
        curves = {m: c for m in mods if (c := _curve(r.records, m))}
        if not curves:
            left_out.append(r.label)
        for m, c in curves.items():
            series.setdefault(m, {})[r.label] = c
    if not series:
        return Plot(None, left_out=left_out)
    order = [m for m in modality_order(rows) if m in series]
    panels = order + sorted(m for m in series if m not in order and m != "all")
    panels += ["all"] if "all" in series else []
    series = {m: series[m] for m in panels}
    colors = _colors(rows)
    with mpl.style.context("default"):
        fig = mpl.figure.Figure(figsize=(3.2 * len(panels) + 1.2, 3.8), dpi=DPI)
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, m in zip(axes, panels, strict=True):
            for label, (x, y, s) in series[m].items():
                ax.plot(x, y, marker="o", markersize=3, color=colors[label], label=label)
                ax.fill_between(x, np.subtract(y, s), np.add(y, s), color=colors[label], alpha=0.2,
                                linewidth=0)
            ax.set_title(f"noise on {m}" if m != "all" else "noise on all modalities", fontsize=9)
            ax.set_xlabel("noise std / feature std")
            ax.grid(True, alpha=0.3)
        axes[0].set_ylabel("test mean CCC (± std over seeds)")
        handles = {h.get_label(): h for ax in axes for h in ax.get_lines()}
        fig.legend([handles[k] for k in sorted(handles)], sorted(handles), fontsize=7,
                   loc="center right")
        fig.suptitle(f"{rows[0].dataset}: test CCC under Gaussian noise", fontsize=10)
        fig.tight_layout(rect=(0, 0, 1 - 1.2 / (3.2 * len(panels) + 1.2), 1))
        png, written = _save(fig, path)
    return Plot(written, series, left_out, png=png)


def figures(rows: list[Row]) -> list[tuple[str, bytes]]:
    """(title, PNG) of each plot that some row has the data for (for a page that embeds them)."""
    ds = rows[0].dataset
    out = [(f"{ds}: accuracy against inference speed", pareto(rows).png),
           (f"{ds}: test CCC under Gaussian noise", noise_curves(rows).png)]
    return [(title, png) for title, png in out if png is not None]


def write_plots(rows: list[Row], folder: str | Path, echo: Callable[[str], None] = print) -> None:
    """``pareto_<dataset>.png`` and ``noise_<dataset>.png`` in ``folder``, with a note for each
    row left out and for a plot skipped because no row has its data."""
    ds = rows[0].dataset
    for name, fn, needs in ((f"pareto_{ds}.png", pareto, "inference throughput"),
                            (f"noise_{ds}.png", noise_curves, "robustness.noise")):
        res = fn(rows, Path(folder) / name)
        if res.png is None:
            echo(f"skipped {name}: no run of {ds!r} has {needs}")
            continue
        if res.left_out:
            echo(f"{name}: left out (no {needs}): {', '.join(res.left_out)}")
        echo(f"wrote {res.path}")
