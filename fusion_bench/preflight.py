"""What every run checks before it reads any data or trains: the names of the plugins a
configuration uses, their options, the metrics, and that its dataset opens. ``run``, ``sweep``,
``bench`` and ``submit`` check here first; :func:`fusion_bench.runs.run_record` checks again.

This module imports no torch (the plugins it looks at may): the commands call it before they load
the training modules (:mod:`fusion_bench.cli.startup`), so that a misspelt name fails in a
fraction of a second, not after seconds of imports.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable

from .config import RunConfig
from .errors import ConfigError
from .options import KINDS
from .options import check as check_options


def check_names(configs: Iterable[RunConfig], reg) -> None:
    """Raise on the first plugin name of ``configs`` (dataset, encoder, fusion where used) that
    the registry lacks, with its "did you mean"; looks names up only, importing no plugin."""
    for cfg in configs:
        for kind, name in cfg.used().items():
            reg.get(KINDS[kind][0], name)


def open_dataset(reg, cfg: RunConfig):
    """The dataset plugin of ``cfg``, built (its videos not yet read: ``splits()`` does that)."""
    entry = reg.get("datasets", cfg.data.name)
    try:
        return entry.obj.from_config(cfg)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"dataset {cfg.data.name!r} ({entry.plugin}): {e}") from None


def preflight(configs: Iterable[RunConfig], reg) -> None:
    """Raise what every run of ``configs`` would fail on, before any run and before any video is
    read: an unknown dataset, encoder or fusion (:func:`check_names`, first: no plugin is imported
    for it), a plugin option they lack or of a wrong type (:func:`fusion_bench.options.check`), a
    modality the dataset lacks, a dataset that cannot be opened.
    :func:`fusion_bench.sweep.sweep` passes the configurations still to run."""
    configs = list(configs)
    check_names(configs, reg)
    from .evaluate import metric_functions  # torch: after the names

    metric_functions(reg)  # every metric importable before any training (a run records them all)
    opened = set()
    for cfg in configs:
        check_options(cfg, reg)
        key = json.dumps([dataclasses.asdict(cfg.data), cfg.options("dataset")], sort_keys=True)
        if key not in opened:  # opening reads no videos: cheap
            opened.add(key)
            open_dataset(reg, cfg)
