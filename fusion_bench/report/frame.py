"""The results store as one table for notebooks (``fusion_bench.results(path)``): a row per
record, with

- ``run_id``, ``created``, ``status``, ``kind``, ``error`` (a failed run's), ``dataset`` (the
  leaderboard's table key: one per dataset, folder or data draw), ``model`` (the fusion, or
  ``<modality> only``), ``seed``, ``config_hash``;
- ``config.<key>``: the run's whole configuration, flattened (``config.train.lr``; lists as
  tuples, so a column can be grouped by);
- ``<metric>.<split>.<target>``: every metric the run scored (``ccc.test.mean``,
  ``rmse.val.valence``; CCC from ``metrics`` in records made before ``scores``), and the ridge
  baseline's as ``ridge.<metric>.<split>.<target>``;
- ``params``, ``flops``, ``train_fps``, ``infer_fps``, ``noise_area``, ``wall_s`` where recorded.

:func:`rows` gives them as dicts (no pandas needed); :func:`frame` as a pandas DataFrame (the
``pandas`` extra). No torch.
"""

from __future__ import annotations

import typing

from .grouping import flatten, table_keys
from .leaderboard import lookup

PANDAS_HINT = ('fusion_bench.results() returns a pandas DataFrame, and pandas is not installed: '
               'pip install "fusion-bench-affect[pandas]" (fusion_bench.report.frame.rows(records) '
               'gives the same rows as dicts without it)')

#: column → path into a record
_SCALARS = {"params": ("params", "total"), "flops": ("flops_per_window", "inference"),
            "train_fps": ("throughput", "train_frames_per_s"),
            "infer_fps": ("throughput", "eval_frames_per_s"),
            "noise_area": ("robustness", "area", "all"), "wall_s": ("wall", "total_s")}


def _scores(scores: dict, prefix: str = "") -> dict[str, typing.Any]:
    """``{metric: {split: {target: x}}}`` → ``{"<prefix><metric>.<split>.<target>": x}``."""
    return {f"{prefix}{m}.{split}.{t}": x
            for m, splits in (scores or {}).items() if isinstance(splits, dict)
            for split, targets in splits.items() if isinstance(targets, dict)
            for t, x in targets.items()}


def _scores_of(section: dict) -> dict:
    """A record's (or its baseline's) scores: ``scores``, else CCC from ``metrics``."""
    return section.get("scores") or ({"ccc": section["metrics"]} if section.get("metrics") else {})


def _model(cfg: dict) -> str | None:
    """The fusion, or ``<modality> only`` (a one-modality run has no fusion)."""
    mods = lookup(cfg, "data", "modalities") or []
    return f"{mods[0]} only" if len(mods) == 1 else lookup(cfg, "model", "fusion")


def row(rec: dict, dataset: str | None) -> dict[str, typing.Any]:
    """One record as a flat row (see the module docstring); ``dataset``: its table key."""
    cfg = rec.get("config") or {}
    out: dict[str, typing.Any] = {
        "run_id": rec.get("run_id"), "created": rec.get("created"),
        "status": rec.get("status", "ok"), "kind": rec.get("kind", "run"),
        "error": rec.get("error"), "dataset": dataset,
        "model": _model(cfg),
        "seed": cfg.get("seed"), "config_hash": rec.get("config_hash"),
    }
    out |= {f"config.{k}": v for k, v in flatten(cfg).items()}
    out |= _scores(_scores_of(rec))
    base = rec.get("baseline")
    if isinstance(base, dict):
        out |= _scores(_scores_of(base), prefix="ridge.")
    out |= {k: v for k, path in _SCALARS.items() if (v := lookup(rec, *path)) is not None}
    return out


def rows(records: list[dict], kind: str | None = "run") -> list[dict[str, typing.Any]]:
    """A row per record of ``kind`` (``run``; ``bench`` for ``fusion-bench bench`` records;
    None: every record), oldest first."""
    chosen = sorted((r for r in records if kind is None or r.get("kind", "run") == kind),
                    key=lambda r: (r.get("created") or "", r.get("run_id") or ""))
    runs = [r for r in chosen if r.get("kind", "run") == "run"]
    keys = dict(zip((r["run_id"] for r in runs), table_keys(runs), strict=True)) if runs else {}
    return [row(r, keys.get(r.get("run_id"), (r.get("dataset") or {}).get("name")))
            for r in chosen]


def frame(records: list[dict], kind: str | None = "run"):
    """:func:`rows` as a pandas DataFrame (columns in order of first appearance); an
    ImportError that names the extra when pandas is missing."""
    try:
        import pandas as pd
    except ImportError as e:
        raise ImportError(PANDAS_HINT) from e
    return pd.DataFrame(rows(records, kind))
