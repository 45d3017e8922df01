"""One leaderboard table as data: its columns, its rows (a configuration's seeds, or a reference
row) with their settings, per-seed values, mean and std, the verdict against the best row and the
'beats ridge' mark, and the caption as sentences by topic.

:func:`fusion_bench.report.leaderboard.build_table` makes it from records; the renderers
(:mod:`.formats`: md, csv, json, latex; :mod:`.html_page`) only read it, so a number is the same
number in every format. ``Cell.text`` is what a printed table shows (``0.812 ± 0.010``); the
numbers beside it (``mean``, ``std``, ``values``) are what csv and json carry. No torch.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field

from .render import MISSING
from .statistics import mean_std

SCHEMA = 1  # of Table.to_dict(); raised when a key changes meaning or goes

#: column kinds: a row's name, its seed count, mean ± sample std over seeds, one summary number
#: (a median or a count: no spread shown), a word about the row (≈ best, beats ridge)
KINDS = ("label", "count", "stat", "summary", "verdict")
#: the words of the '≈ best' column, and what json calls them
VERDICT_WORDS = {"best": "best", "yes": "indistinguishable", "no": "different", "?": None}
#: caption topics kept by :meth:`Table.compact` (the others explain columns it leaves out)
COMPACT_TOPICS = ("dataset", "statistic", "vs_best", "missing", "ceiling", "provenance", "ridge")
#: columns kept by :meth:`Table.compact`, besides the metric columns
COMPACT_COLUMNS = ("model", "n", "vs_best", "beats_ridge")


@dataclass
class Column:
    key: str  # machine name, as --sort and csv/json name it: test_valence, drop_audio, params
    header: str  # as a printed table heads it: "test valence"
    kind: str  # one of KINDS
    better: str | None = None  # "higher" | "lower": which value is the best; None: not ranked
    note: str | None = None  # what a cell's note says (csv: a <key>_<note> column): devices, levels


@dataclass
class Cell:
    text: str  # as md, latex and html show it (MISSING where the records lack it)
    mean: float | None = None  # the summary: mean over seeds (the median for costs and speeds)
    std: float | None = None  # sample std over seeds; None with fewer than two values
    values: list[float] = field(default_factory=list)  # per seed, seed order (per fit: reference)
    seeds: list[int] | None = None  # the seed of each value; None for a reference row's fits
    shown: str | None = None  # the summary as printed ("0.812"): equal shown values tie for best
    note: str | None = None  # devices of a speed, levels of a noise area

    @property
    def partial(self) -> bool:
        return "(n=" in self.text


@dataclass
class TableRow:
    label: str
    kind: str  # "model" (one configuration's seeds) | "reference" (the ridge baseline's fits)
    n: int  # seeds (model row) or distinct fits (reference row)
    cells: dict[str, Cell]
    seeds: list[int] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    settings: dict[str, typing.Any] = field(default_factory=dict)  # flattened configuration
    verdict: str | None = None  # '≈ best' word: best, yes, no, ? (None: a reference row)
    beats_ridge: bool | None = None  # None: no ridge fit in its records, or a reference row

    def cell(self, key: str) -> Cell:
        return self.cells.get(key) or Cell(MISSING)


@dataclass
class Table:
    dataset: str  # the table key (grouping.table_keys)
    metric: str
    higher_is_better: bool
    sort: str
    columns: list[Column]
    rows: list[TableRow]
    notes: list[tuple[str, str]]  # (topic, text): the caption is their texts joined

    def caption(self) -> str:
        return "".join(text for _, text in self.notes)

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)

    def display(self) -> tuple[list[str], list[list[str]], str]:
        """(headers, body, caption): the table as printed, every cell a string."""
        return ([c.header for c in self.columns],
                [[r.cell(c.key).text for c in self.columns] for r in self.rows], self.caption())

    def best(self, key: str) -> set[int]:
        """Indices of the rows holding the column's best value (every row that ties with it as
        printed); empty for a column without a direction or without finite values."""
        col = self.column(key)
        if col.better is None:
            return set()
        sign = 1 if col.better == "higher" else -1
        have = [(i, r.cells[key]) for i, r in enumerate(self.rows)
                if key in r.cells and _finite(r.cells[key].mean)]
        if not have:
            return set()
        top = max(have, key=lambda p: sign * typing.cast(float, p[1].mean))[1]
        return {i for i, c in have if c.shown == top.shown}

    def compact(self) -> Table:
        """The accuracy columns only (model, n, the metric columns, ≈ best, beats ridge), and
        the caption without the sentences about the columns left out."""
        keep = [c for c in self.columns if c.key in COMPACT_COLUMNS or c.key in self.metric_keys()]
        return dataclasses.replace(
            self, columns=keep,
            rows=[dataclasses.replace(r, cells={c.key: r.cells[c.key] for c in keep
                                                if c.key in r.cells}) for r in self.rows],
            notes=[(t, s) for t, s in self.notes if t in COMPACT_TOPICS])

    def metric_keys(self) -> list[str]:
        """The columns of the table's metric: test per target, test mean, val mean."""
        return [c.key for c in self.columns if c.key.startswith(("test_", "val_"))]

    def to_dict(self) -> dict:
        """The table as plain data (json): non-finite numbers as None."""
        return {
            "schema": SCHEMA,
            "dataset": self.dataset,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "sort": self.sort,
            "statistic": "mean and sample standard deviation over model seeds (per distinct "
                         "fit for a reference row); costs and speeds: median over seeds",
            "columns": [dataclasses.asdict(c) for c in self.columns],
            "rows": [_row_dict(r, self.columns) for r in self.rows],
            "caption": self.caption(),
        }


def partial(cell: str, have: int, n: int) -> str:
    """Mark a value that only some of the row's seeds recorded (a store mixing record formats)."""
    return cell if have == n else f"{cell} (n={have})"


def stat_cell(values: list[float], n: int, seeds: list[int] | None = None) -> Cell:
    """Mean ± sample std of ``values`` (of ``n`` seeds or fits; fewer: marked ``(n=k)``)."""
    if not values:
        return Cell(MISSING)
    m, s = mean_std(values)
    text = f"{m:.3f} ± {s:.3f}" if s == s else f"{m:.3f}"
    return Cell(partial(text, len(values), n), m, s if s == s else None, list(values), seeds,
                shown=f"{m:.3f}")


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def number(x) -> float | None:
    """``x`` as a float, None when absent or not finite (json has no NaN)."""
    return float(x) if _finite(x) else None


def _row_dict(r: TableRow, columns: list[Column]) -> dict:
    values = {}
    for c in columns:
        if c.kind not in ("stat", "summary") or c.key not in r.cells:
            continue
        cell = r.cells[c.key]
        values[c.key] = {"mean": number(cell.mean), "std": number(cell.std), "n": len(cell.values),
                         "values": [number(v) for v in cell.values], "seeds": cell.seeds,
                         "text": cell.text, **({c.note: cell.note} if c.note else {})}
    return {"label": r.label, "kind": r.kind, "n": r.n, "seeds": r.seeds, "run_ids": r.run_ids,
            "settings": r.settings,
            "verdict": VERDICT_WORDS.get(r.verdict) if r.verdict else None,
            "beats_ridge": r.beats_ridge, "values": values}
