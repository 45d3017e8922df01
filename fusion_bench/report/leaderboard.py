"""Leaderboards from the results store: one table per dataset, mean ± sample std over seeds.

A table never mixes data: runs on two folders, or two draws of generated data, are two tables.
Runs are grouped by their configuration minus the model seed, so a row is one configuration
and its n seeds, labelled by the settings that tell it from the other rows (:mod:`.grouping`).
The table is a pure function of the stored records (no clock, no machine state), so a committed
leaderboard regenerates byte for byte from the same records.

Fields added to the record format later (robustness, FLOPs) are optional: a row whose records
lack one shows ``MISSING`` in that column, so old stores keep working.

The stat columns show one metric (``table(metric=...)``, default CCC) from the record's
``scores``; records made before ``scores`` existed hold CCC only, under ``metrics``. There is a
test column per target of the table's records (``record["dataset"]["targets"]``; valence and
arousal in records made before targets were recorded), then the test and val means.

:func:`build_table` makes the table as data (:class:`.table.Table`: every cell's per-seed values,
mean and std beside the text printed); :mod:`.formats` and :mod:`.html_page` render it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np

from .grouping import (
    dataset_sentence,
    draws_data,
    flatten,
    row_config,
    row_key,
    row_labels,
    table_keys,
)
from .reference import add_references
from .render import MISSING, human
from .statistics import mean_std, paired_contains_zero
from .table import Cell, Column, Table, TableRow, partial, stat_cell

#: the targets of a record that names none (every record made before targets were recorded)
LEGACY_TARGETS = ("valence", "arousal")
SPLITS = ("test", "val")  # the splits a metric column (``<split>_<target>``) is of

# Sort key → path into a record. drop_<modality> is resolved in value().
_PATHS: dict[str, tuple[str, ...]] = {
    "noise_area": ("robustness", "area", "all"),
    "params": ("params", "total"),
    "flops": ("flops_per_window", "inference"),
    "train_fps": ("throughput", "train_frames_per_s"),
    "infer_fps": ("throughput", "eval_frames_per_s"),
}
_MEDIAN = {"params", "flops", "train_fps", "infer_fps"}  # summarised by the median over seeds
_LOWER_IS_BETTER = {"params", "flops"}  # --sort puts the cheapest first


def lookup(obj, *path):
    """obj[path[0]][path[1]]…, or None where a key is absent (older record formats)."""
    for k in path:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def record_targets(rec: dict) -> tuple[str, ...]:
    """The targets a record's run scored, in its dataset's order."""
    return tuple(lookup(rec, "dataset", "targets") or LEGACY_TARGETS)


def table_targets(rows: list[Row]) -> tuple[str, ...]:
    """The targets of the rows' records, in order of first appearance (one dataset's, usually)."""
    return tuple(dict.fromkeys(t for r in rows for rec in r.records for t in record_targets(rec)))


def metric_columns(targets) -> tuple[str, ...]:
    """The metric columns of a table of ``targets``: ``test_<target>`` each, ``test_mean``,
    ``val_mean`` (the split, then the target or ``mean``, as the record's scores hold them)."""
    return (*(f"test_{t}" for t in targets), "test_mean", "val_mean")


def value(rec: dict, column: str, metric: str = "ccc") -> float | None:
    """One record's number for a sort key (see :func:`sort_columns`; the metric columns,
    ``<split>_<target>``, are of ``metric``, the others do not depend on it); None when not
    recorded."""
    split, _, target = column.partition("_")
    if split in SPLITS and target:
        v = lookup(rec, "scores", metric, split, target)
        if v is None and metric == "ccc":  # a record made before `scores`: CCC only
            v = lookup(rec, "metrics", split, target)
    elif column.startswith("drop_"):
        v = lookup(rec, "robustness", "drop", column[len("drop_"):], "mean")
    else:
        v = lookup(rec, *_PATHS[column])
    return None if v is None else float(v)


def device(rec: dict) -> str:
    """The device a record's throughput was measured on."""
    return lookup(rec, "throughput", "device") or lookup(rec, "environment", "device") or "?"


@dataclass
class Row:
    label: str
    dataset: str
    records: list[dict] = field(default_factory=list)

    def values(self, column: str, metric: str = "ccc") -> list[float]:
        """The column's value of each record that has it (seed order)."""
        return [v for r in self.records if (v := value(r, column, metric)) is not None]

    def seeds(self) -> list[int]:
        return [r["config"]["seed"] for r in self.records]

    def modalities(self) -> list[str]:
        return list(self.records[0]["config"]["data"]["modalities"])

    def summary(self, column: str, metric: str = "ccc") -> float | None:
        """What the table shows for the column: mean (median for costs and speeds), or None."""
        xs = self.values(column, metric)
        if not xs:
            return None
        return float(np.median(xs)) if column in _MEDIAN else mean_std(xs)[0]


def build_rows(records: list[dict], dataset: str | None = None) -> dict[str, list[Row]]:
    """table key → rows (one per configuration), from successful run records; a seed run more
    than once counts once, with its newest record. One table per dataset: records on different
    data (another folder, another draw) never share one (:mod:`.grouping`: table keys, row
    configurations and labels). ``dataset``: only the tables of this dataset name (or key)."""
    records = [r for r in records
               if r.get("status", "ok") == "ok" and r.get("kind", "run") == "run"]
    groups: dict[tuple[str, str], Row] = {}
    for rec, ds in zip(records, table_keys(records), strict=True):
        if dataset and dataset not in (ds, rec["config"]["data"]["name"]):
            continue
        groups.setdefault((ds, row_key(rec)), Row("", ds)).records.append(rec)
    out: dict[str, list[Row]] = {}
    for (ds, _key), row in sorted(groups.items()):
        # One record per seed: the newest with robustness results if any has them, else the
        # newest (a rerun of a seed with --robustness replaces the older record of the same
        # trained configuration, and a later plain rerun does not hide its robustness columns).
        newest: dict[int, dict] = {}
        for rec in sorted(row.records,
                          key=lambda r: ("robustness" in r, r["created"], r["run_id"])):
            newest[rec["config"]["seed"]] = rec
        row.records = [newest[s] for s in sorted(newest)]
        out.setdefault(ds, []).append(row)
    for rows in out.values():  # named by the settings that tell them apart
        for r, label in zip(rows, row_labels([r.records[0] for r in rows]), strict=True):
            r.label = label
    return out


def modality_order(rows: list[Row]) -> list[str]:
    """The union of the rows' modalities, in the order of the widest configuration's list (so
    a dataset's usual visual, audio, text order), extras after; independent of row order."""
    ordered = sorted(rows, key=lambda r: (-len(r.modalities()), r.label))
    return list(dict.fromkeys(m for r in ordered for m in r.modalities()))


def sort_columns(rows: list[Row]) -> tuple[str, ...]:
    """Valid ``--sort`` keys for these rows."""
    drops = tuple(f"drop_{m}" for m in modality_order(rows))
    return (*metric_columns(table_targets(rows)), *drops, *_PATHS)


def metric_direction(records: list[dict], metric: str, where: str = "the store") -> bool:
    """Whether a higher ``metric`` is better, as the records that scored it say (each run
    records ``metric_info``); CCC is higher-is-better in records older than that. A metric no
    record scored is an error listing the ones they did."""
    from ..errors import FusionBenchError

    for rec in records:
        info = lookup(rec, "metric_info", metric)
        if info is not None and lookup(rec, "scores", metric) is not None:
            return bool(info.get("higher_is_better", True))
    if metric == "ccc":
        return True
    known = sorted({m for rec in records for m in (rec.get("scores") or {})} | {"ccc"})
    near = difflib.get_close_matches(metric, known, n=3)
    raise FusionBenchError(
        f"no run in {where} recorded metric {metric!r}"
        + (f"; did you mean {', '.join(near)}?" if near else "")
        + f" (recorded: {', '.join(known)}); runs score every metric registered when they ran, "
        "so rerun them with the metric's plugin loaded")


def paired_indistinguishable(best: Row, other: Row, column: str = "test_mean",
                             metric: str = "ccc") -> bool | None:
    """Paired t-test over the seeds both rows share: True when the 95 % interval of the mean
    difference (best − other), mean ± t_{0.975, n−1} · sd / √n, contains 0. None when fewer
    than 3 seeds are shared. (A percentile bootstrap of 3–8 seeds gives intervals far too
    narrow: with no true difference it separated rows 14–27 % of the time, not 5 %.)"""
    def finite(row):
        return {r["config"]["seed"]: v for r in row.records
                if (v := value(r, column, metric)) is not None and np.isfinite(v)}

    a, b = finite(best), finite(other)
    shared = sorted(set(a) & set(b))
    if len(shared) < 3:
        return None
    return paired_contains_zero([a[s] - b[s] for s in shared])


def _seeded(row: Row, column: str, metric: str = "ccc") -> tuple[list[int], list[float]]:
    """(seeds, values) of the row's records that have the column, in seed order."""
    pairs = [(r["config"]["seed"], v) for r in row.records
             if (v := value(r, column, metric)) is not None]
    return [s for s, _ in pairs], [v for _, v in pairs]


def _stat_cell(row: Row, column: str, metric: str = "ccc") -> Cell:
    seeds, xs = _seeded(row, column, metric)
    return stat_cell(xs, len(row.records), seeds)


def _speed_cell(row: Row, column: str) -> Cell:
    seeds, xs = _seeded(row, column)
    if not xs:
        return Cell(MISSING)
    devices = ", ".join(sorted({device(r) for r in row.records if value(r, column) is not None}))
    med = float(np.median(xs))
    return Cell(partial(f"{med:,.0f} ({devices})", len(xs), len(row.records)), med, None, xs,
                seeds, shown=f"{med:,.0f}", note=devices)


def _cost_cell(row: Row, column: str) -> Cell:
    """Parameters (the first seed's: a configuration has one count) or FLOPs (median)."""
    seeds, xs = _seeded(row, column)
    if not xs:
        return Cell(MISSING)
    if column == "params":
        text = f"{int(xs[0]):,}"
        return Cell(text, xs[0], None, xs, seeds, shown=text)
    med = float(np.median(xs))
    return Cell(human(med), med, None, xs, seeds, shown=human(med))


def _level_sets(records: list[dict]) -> set[tuple[float, ...]]:
    return {tuple(lv) for r in records if (lv := lookup(r, "robustness", "noise_levels"))}


def _level_text(levels: tuple[float, ...]) -> str:
    return ", ".join(f"{x:g}" for x in levels)


def _noise_cell(row: Row, with_levels: bool) -> Cell:
    """The noise area, unless the row's seeds were scored at different noise levels: an area
    over other levels is another number, and their mean would be neither. ``with_levels``: the
    table's rows differ in levels (the caption names none), so each cell names its own."""
    sets = _level_sets(row.records)
    cell = _stat_cell(row, "noise_area")
    if len(sets) > 1:
        return Cell("mixed levels", None, None, cell.values, cell.seeds, note="mixed")
    if sets:
        cell.note = _level_text(next(iter(sets)))
        if with_levels and cell.text != MISSING:
            cell.text += f" (levels {cell.note})"
    return cell


def columns(targets, mods) -> list[Column]:
    """The columns of a table of ``targets`` and modalities ``mods`` (no 'beats ridge': the
    reference rows add it, :mod:`.reference`)."""
    stats = [Column(c, c.replace("_", " ", 1), "stat") for c in metric_columns(targets)]
    return [Column("model", "model", "label"), Column("n", "n", "count"), *stats,
            Column("vs_best", "≈ best", "verdict"),
            *(Column(f"drop_{m}", f"drop {m}", "stat", "higher") for m in mods),
            Column("noise_area", "noise area", "stat", "higher", note="levels"),
            Column("params", "params", "summary", "lower"),
            Column("flops", "FLOPs/window", "summary", "lower"),
            Column("train_fps", "train frames/s", "summary", "higher", note="devices"),
            Column("infer_fps", "infer frames/s", "summary", "higher", note="devices")]


def table(rows: list[Row], sort: str = "test_mean", metric: str = "ccc",
          higher_is_better: bool = True) -> tuple[list[str], list[list], str]:
    """(headers, body, caption) of one dataset's leaderboard as printed, body cells strings
    (:func:`build_table`, displayed)."""
    return build_table(rows, sort, metric, higher_is_better).display()


def build_table(rows: list[Row], sort: str = "test_mean", metric: str = "ccc",
                higher_is_better: bool = True) -> Table:
    """One dataset's leaderboard as data (:class:`.table.Table`). The test/val columns show
    ``metric`` (a registered metric's name), ranked and compared with the best row in its
    direction (``higher_is_better``)."""
    valid = sort_columns(rows)
    if sort not in valid:
        raise ValueError(f"--sort must be one of {', '.join(valid)}; got {sort!r}")
    targets = table_targets(rows)
    stats = metric_columns(targets)
    lower_first = sort in _LOWER_IS_BETTER or (sort in stats and not higher_is_better)
    sign = 1 if lower_first else -1
    # Rows without the sort value go last; ties keep build_rows' (deterministic) order.
    rows = sorted(rows, key=lambda r: (r.summary(sort, metric) is None,
                                       sign * (r.summary(sort, metric) or 0.0)))
    scored = [r for r in rows if r.values("test_mean", metric)]
    direction = 1 if higher_is_better else -1
    best = max(scored, key=lambda r: direction * mean_std(r.values("test_mean", metric))[0],
               default=None)
    level_sets = _level_sets([rec for r in rows for rec in r.records])
    cols = columns(targets, modality_order(rows))
    for c in cols:
        if c.key in stats:
            c.better = "higher" if higher_is_better else "lower"
    out_rows = []
    for r in rows:
        cells = {"model": Cell(r.label), "n": Cell(str(len(r.records)), len(r.records))}
        cells |= {c: _stat_cell(r, c, metric) for c in stats}
        same = None if best is None else paired_indistinguishable(best, r, metric=metric)
        verdict = "best" if r is best else {True: "yes", False: "no", None: "?"}[same]
        cells["vs_best"] = Cell(verdict)
        cells |= {c.key: _stat_cell(r, c.key) for c in cols if c.key.startswith("drop_")}
        cells["noise_area"] = _noise_cell(r, with_levels=len(level_sets) > 1)
        cells |= {c: _cost_cell(r, c) for c in ("params", "flops")}
        cells |= {c: _speed_cell(r, c) for c in ("train_fps", "infer_fps")}
        out_rows.append(TableRow(r.label, "model", len(r.records), cells, r.seeds(),
                                 [x["run_id"] for x in r.records],
                                 settings(r.records[0]), verdict))
    levels = _level_text(next(iter(level_sets))) if len(level_sets) == 1 else None
    out = Table(rows[0].dataset, metric, higher_is_better, sort, cols, out_rows,
                caption_notes(rows, metric, higher_is_better, levels))
    add_references(out, rows, sign, targets)  # if the records have ridge fits
    return out


def settings(rec: dict) -> dict:
    """A row's configuration, flattened (``data.window``), as its json shows it."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in flatten(row_config(rec)).items()}


def caption_notes(rows: list[Row], metric: str, higher_is_better: bool,
                  levels: str | None) -> list[tuple[str, str]]:
    """The caption's sentences, (topic, text), in order; joined they are the caption."""
    rec = max((x for r in rows for x in r.records), key=lambda x: x["created"])
    info = rec["dataset"]
    ceiling = info.get("ceiling", {}).get("test", {}).get("mean")
    seeds = sorted({s for r in rows for s in r.seeds()})
    return [
        ("dataset", dataset_sentence(rec)),
        ("statistic",
         (f"Metric {metric} ({'higher' if higher_is_better else 'lower'} is better)"
          if metric != "ccc" else "CCC")
         + f" as mean ± sample standard deviation over n model seeds ({', '.join(map(str, seeds))}) "
         + ("on one fixed data draw" if draws_data(rec) else "on the dataset's fixed splits")
         + ": the spread is seed variance, not data variance. "),
        ("vs_best",
         "'≈ best': a paired t-test over shared seeds cannot tell the row's test mean from the "
         "best's (95 % interval of the difference contains 0); '?': fewer than 3 shared seeds. "),
        ("robustness",
         "'drop m': test mean CCC of the trained model with modality m masked out at test time; "
         "'noise area': its test mean CCC averaged over the level of Gaussian noise added to all "
         "modalities (normalised area under CCC against level; levels "
         + (f"{levels} × " if levels else "in units of ")
         + "each feature's std), the clean CCC if noise did no harm. "),
        ("costs",
         "FLOPs: one window through the whole model at inference; frames/s: median over seeds; "
         "infer frames/s counts video frames scored, each in every evaluation window covering it "
         "(window/eval hop of them). "),
        ("missing",
         f"'{MISSING}': not in the records (runs made before it was measured, or nothing to drop "
         "from one modality); '(n=k)': from only k of the n seeds."),
        ("ceiling",
         f" Ceiling (noiseless latent vs noisy label), test mean{'' if metric == 'ccc' else ' CCC'}: "
         f"{ceiling:.3f}." if ceiling else ""),
        ("provenance",
         f" fusion-bench {rec['environment']['fusion_bench']}, commit "
         f"{(rec['environment'].get('commit') or 'unknown')[:10]}, newest run {rec['created']}."),
    ]
