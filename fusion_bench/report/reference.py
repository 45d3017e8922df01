"""The leaderboard's reference rows: the ridge regression each run recorded as its ``baseline``
(:mod:`fusion_bench.baseline`), and every row's 'beats ridge' mark. From records alone; no torch.

One ridge row per set of modalities the table's runs used (a one-modality run's probe sees that
modality only), labelled ``ridge (linear)`` for the widest set and ``ridge (linear, visual only)``
or ``ridge (linear, visual+audio)`` for the others. Runs on the same data record the same ridge
fit (it depends on the data only, not on the model seed or configuration), and a ridge row counts
each distinct fit once: its ``n`` is the number of distinct fits, 1 unless the table's runs were
made on different data (another data seed or folder); then the row shows their mean ± sd. Each
model row is compared with the ridge of its own records, so a row is never judged against a
probe fitted on other data.

Records without a ``baseline`` (made before it existed) add nothing: a table of such records
has no ridge row and no 'beats ridge' column, exactly as before.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field

from .render import MISSING
from .statistics import mean_std
from .table import Cell, Column, Table, TableRow, stat_cell

RIDGE = "ridge (linear)"
COLUMN = "beats ridge"


def stat_columns(targets) -> dict[str, tuple[str, str]]:
    """The stat columns a ridge row fills, key → (split, target), for a table of ``targets``:
    the test score of each target, the test mean, the val mean."""
    return {**{f"test_{t}": ("test", t) for t in targets},
            "test_mean": ("test", "mean"), "val_mean": ("val", "mean")}


def ridge_value(rec: dict, split: str, target: str, metric: str = "ccc") -> float | None:
    """The ridge baseline's ``metric`` of one record on ``split``/``target``; None if the record
    has no baseline or it did not score ``metric``."""
    base = rec.get("baseline")
    if not isinstance(base, dict):
        return None
    v = (base.get("scores") or {}).get(metric, {}).get(split, {}).get(target)
    if v is None and metric == "ccc":
        v = (base.get("metrics") or {}).get(split, {}).get(target)
    return None if v is None else float(v)


def _modalities(rec: dict) -> tuple[str, ...]:
    return tuple(rec["baseline"].get("modalities") or rec["config"]["data"]["modalities"])


def _fit_key(base: dict) -> str:
    """What makes two recorded ridge fits one: its λ and scores, to 6 decimals (the same data
    on another machine may differ in the last bits)."""
    def rounded(x):
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        return round(x, 6) if isinstance(x, float) else x
    return json.dumps(rounded({k: base.get(k) for k in ("lambda", "metrics", "scores")}),
                      sort_keys=True)


@dataclass
class Reference:
    """A ridge row: the distinct ridge fits recorded by a table's runs on one set of modalities."""

    modalities: tuple[str, ...]
    label: str = RIDGE
    fits: list[dict] = field(default_factory=list)  # one record per distinct fit

    def values(self, split: str, target: str, metric: str = "ccc") -> list[float]:
        return [v for r in self.fits if (v := ridge_value(r, split, target, metric)) is not None]


def references(records: list[dict]) -> list[Reference]:
    """The ridge rows of a table's records (none if no record has a baseline), widest
    modality set first."""
    refs: dict[tuple[str, ...], Reference] = {}
    seen: set[tuple[tuple[str, ...], str]] = set()
    for rec in sorted(records, key=lambda r: (r["created"], r["run_id"])):
        if not isinstance(rec.get("baseline"), dict):
            continue
        mods = _modalities(rec)
        key = (mods, _fit_key(rec["baseline"]))
        if key not in seen:
            seen.add(key)
            refs.setdefault(mods, Reference(mods)).fits.append(rec)
    out = sorted(refs.values(), key=lambda r: (-len(r.modalities), r.modalities))
    widest = set().union(*(r.modalities for r in out)) if out else set()
    for r in out:
        if set(r.modalities) != widest:
            r.label = f"{RIDGE[:-1]}, {r.modalities[0]} only)" if len(r.modalities) == 1 \
                else f"{RIDGE[:-1]}, {'+'.join(r.modalities)})"
    return out


def beats(records: list[dict], test_mean: float | None, metric: str = "ccc",
          higher_is_better: bool = True) -> str:
    """'yes' when ``test_mean`` (a row's, over its seeds) is strictly better than the mean test
    score of the ridge fits its ``records`` carry, 'no' when not, MISSING when either is
    unknown."""
    xs = [v for r in records if (v := ridge_value(r, "test", "mean", metric)) is not None]
    if test_mean is None or not xs:
        return MISSING
    ridge = mean_std(xs)[0]
    return "yes" if (test_mean > ridge if higher_is_better else test_mean < ridge) else "no"


def add_references(table: Table, rows: list, sign: int, targets=("valence", "arousal")) -> None:
    """Add to ``table`` (its model rows one per row of ``rows``, sorted as the table sorts: by
    ``sign`` × the ``table.sort`` column, missing last) the 'beats ridge' column after '≈ best',
    the ridge rows placed where their sort value falls (last when they have none, e.g. sorted
    by params), and the caption's sentence about them; nothing when no record has a baseline.
    ``targets``: the table's (a test column each)."""
    metric, hib, sort = table.metric, table.higher_is_better, table.sort
    refs = references([rec for r in rows for rec in r.records])
    if not refs:
        return
    at = [c.key for c in table.columns].index("vs_best") + 1
    table.columns.insert(at, Column(COLUMN.replace(" ", "_"), COLUMN, "verdict"))
    for r, row in zip(rows, table.rows, strict=True):
        word = beats(r.records, r.summary("test_mean", metric), metric, hib)
        row.cells["beats_ridge"] = Cell(word)
        row.beats_ridge = {"yes": True, "no": False}.get(word)
    keys = [(v is None, sign * (v or 0.0)) for v in (r.summary(sort, metric) for r in rows)]
    placed = []
    for order, ref in enumerate(refs):
        cells = {"model": Cell(ref.label), "n": Cell(str(len(ref.fits)), len(ref.fits))}
        for col, (split, target) in stat_columns(targets).items():
            xs = ref.values(split, target, metric)
            cells[col] = stat_cell(xs, len(xs))  # a fit without the metric: not a partial row
        xs = cells[sort].values if sort in cells else []
        key = (not xs, sign * (mean_std(xs)[0] if xs else 0.0))
        row = TableRow(ref.label, "reference", len(ref.fits), cells,
                       run_ids=[r["run_id"] for r in ref.fits],
                       settings={"modalities": list(ref.modalities), "kind": "ridge"})
        # before the rows it does not beat (an equal row does not beat it either)
        placed.append((bisect.bisect_left(keys, key), key, order, row))
    for i, *_, row in sorted(placed, key=lambda p: p[:3], reverse=True):  # last first
        table.rows.insert(i, row)
    several = any(len(r.fits) > 1 for r in refs)
    per_sequence = any(f.get("baseline", {}).get("inputs") == "sequence means"
                       for r in refs for f in r.fits)
    table.notes.append(("ridge", (
        f" '{RIDGE}': the ridge regression each run fitted on its own splits and targets, a "
        + ("closed-form linear probe of each sequence's time-averaged features (each modality "
           "averaged over the frames where it is present, the run's modalities concatenated, plus "
           "whether each is present at all; " if per_sequence else
           "closed-form linear probe of each frame's features (the run's modalities concatenated, "
           "a missing modality's frames zeroed, plus each modality's mask; ")
        + "standardised on the "
        "train split), its regularisation chosen per target by validation CCC; one row per set "
        "of modalities, n = distinct fits"
        + (" (runs on different data; the row shows mean ± sd over the fits)" if several else "")
        + f". '{COLUMN}': whether the row's test mean beats that of the ridge fitted on its own "
        "runs' data and modalities ('no': a linear probe does as well).")))
