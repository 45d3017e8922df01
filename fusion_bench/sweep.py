"""Run one configuration into the store, or a grid of them (fusions × seeds), resumably.

A sweep skips every configuration whose hash (:meth:`RunConfig.hash`) the store already holds,
so running it again after Ctrl-C or a kill completes only the missing runs. A run that fails is
recorded with ``status = "failed"`` and its error, and the sweep goes on.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from .config import RunConfig, build_config
from .results import ResultsStore, make_record


def plugins_used(reg, cfg: RunConfig) -> dict:
    """Name, providing plugin and version of the dataset, encoder and fusion of ``cfg``."""
    used = {"dataset": reg.get("datasets", cfg.data.name), "encoder": reg.get("encoders", cfg.model.encoder)}
    if len(cfg.data.modalities) > 1:
        used["fusion"] = reg.get("fusions", cfg.model.fusion)
    return {k: {"name": e.name, "plugin": e.plugin, "version": reg.plugins[e.plugin].version}
            for k, e in used.items()}


def run_and_store(cfg: RunConfig, reg, store: ResultsStore) -> tuple[dict, str]:
    """Train/evaluate ``cfg`` and write its record; return (record, path). Nothing is written
    if the run raises."""
    from .train import run

    plugins = plugins_used(reg, cfg)  # fail fast on unknown names, before generating data
    record = make_record(cfg, run(cfg, reg), plugins)
    return record, str(store.write(record))


@dataclass
class GridResult:
    done: int = 0
    skipped: int = 0
    failed: int = 0


def grid(fusions: list[str], seeds: list[int], base: list[tuple[str, str]], preset: str,
         config_file: str | None) -> list[RunConfig]:
    """The configurations of a sweep, in run order (seed-major, so partial sweeps are balanced)."""
    out = []
    for seed in seeds:
        for fusion in fusions:
            over = list(base) + [("seed", str(seed)), ("train.progress", "false")]
            if fusion.startswith("only:"):  # a single-modality row, e.g. only:visual
                over.append(("data.modalities", fusion[5:]))
            else:
                over.append(("model.fusion", fusion))
            out.append(build_config(preset, config_file, over))
    return out


def sweep(configs: list[RunConfig], reg, store: ResultsStore, echo=print) -> GridResult:
    """Run every configuration not yet stored; record failures and continue."""
    res = GridResult()
    for i, cfg in enumerate(configs, 1):
        name = cfg.model.fusion if len(cfg.data.modalities) > 1 else f"only:{','.join(cfg.data.modalities)}"
        tag = f"[{i}/{len(configs)}] {name} seed {cfg.seed}"
        if store.has(cfg.hash()):
            res.skipped += 1
            echo(f"{tag}: already stored, skipped")
            continue
        try:
            record, path = run_and_store(cfg, reg, store)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
            res.failed += 1
            failed = make_record(cfg, {"device": "cpu", "metrics": {}}, {})
            failed.update(status="failed", error=f"{type(e).__name__}: {e}",
                          traceback=traceback.format_exc())
            store.write(failed)
            echo(f"{tag}: FAILED ({type(e).__name__}: {e})")
            continue
        res.done += 1
        echo(f"{tag}: test mean CCC {record['metrics']['test']['mean']:.3f} -> {path}")
    return res
