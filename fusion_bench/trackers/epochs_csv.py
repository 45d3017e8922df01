"""The epochs CSV every stored run gets: ``<store>/epochs/<run_id>.csv``, a row per trained epoch
of each model, read from the record's fit histories and written atomically with the record (so a
CSV is whole or absent, never half a run; an interrupted run has its checkpoint, not a CSV).

Columns: ``targets`` (the model's, ``+``-joined: one model per group of targets), ``epoch`` (1-based), ``step``
(optimizer steps so far), ``loss`` (mean training 1 − CCC of the epoch), ``lr`` (at the epoch's
end), then ``val_<target>`` per target of the dataset and ``val_mean`` (validation CCC; empty
for a target the model does not predict). Numbers are written as Python's ``repr`` of the float,
which reads back to the same float.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..files import atomic_write_text

FOLDER = "epochs"


def epoch_rows(record: dict) -> tuple[list[str], list[dict]]:
    """The CSV's header and rows for ``record`` (a run record with ``fits`` and ``dataset``)."""
    targets = list(record.get("dataset", {}).get("targets") or [])
    seen = [k for f in record.get("fits", []) for h in f.get("history", []) for k in h.get("val", {})]
    keys = [t for t in targets if t in seen] + sorted({k for k in seen if k not in targets and k != "mean"})
    header = ["targets", "epoch", "step", "loss", "lr", *(f"val_{k}" for k in keys),
              "val_mean"]
    rows = []
    for f in record.get("fits", []):
        for h in f.get("history", []):
            val = h.get("val", {})
            rows.append({"targets": "+".join(f["targets"]), "epoch": h["epoch"],
                         "step": h.get("step", ""), "loss": h["loss"], "lr": h.get("lr", ""),
                         **{f"val_{k}": val.get(k, "") for k in keys},
                         "val_mean": val.get("mean", "")})
    return header, rows


def epochs_csv(record: dict) -> str:
    """The CSV text of ``record``'s epochs."""
    header, rows = epoch_rows(record)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_epochs_csv(root: str | Path, record: dict) -> Path | None:
    """Write ``record``'s epochs to ``<root>/epochs/<run_id>.csv`` atomically; return its path
    (None for a record that trained nothing, e.g. a failed run's)."""
    if not record.get("fits"):
        return None
    path = Path(root) / FOLDER / f"{record['run_id']}.csv"
    atomic_write_text(path, epochs_csv(record))
    return path
