"""Experiment trackers: the epochs CSV every stored run gets (:mod:`.epochs_csv`) and the
optional ones chosen with ``--log NAME,...`` (TensorBoard, MLflow, Weights & Biases), which are run-events plugins
(:mod:`fusion_bench.events`) importing their library only when chosen."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import ConfigError
from ..events import plugged

#: --log name -> (module of this package, its class, the library it imports, the extra)
TRACKERS = {
    "tensorboard": ("tensorboard", "TensorBoardTracker", "tensorboard", "tensorboard"),
    "mlflow": ("mlflow", "MlflowTracker", "mlflow", "mlflow"),
    "wandb": ("wandb", "WandbTracker", "wandb", "wandb"),
}


def parse_log(spec: str | Iterable[str] | None) -> list[str]:
    """The tracker names of a ``--log`` value (comma-separated; empty: none; the notebook API's
    ``log=`` may also be a list of names), each checked: an unknown name, or one whose library
    is not installed, is a :class:`ConfigError` naming the extra to install."""
    import importlib.util

    text = spec if spec is None or isinstance(spec, str) else ",".join(spec)
    names = list(dict.fromkeys(n.strip().lower() for n in (text or "").split(",") if n.strip()))
    # Every name is checked before any library, so a typo is reported as a typo even when an
    # earlier tracker's library is also missing.
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"--log: unknown tracker {name!r}; choose from "
                              f"{', '.join(sorted(TRACKERS))} (comma-separated)")
    for name in names:
        lib, extra = TRACKERS[name][2], TRACKERS[name][3]
        if importlib.util.find_spec(lib) is None:
            raise ConfigError(f"--log {name}: the {lib} package is not installed; "
                              f'pip install "fusion-bench-affect[{extra}]"')
    return names


def open_trackers(names: list[str], root: str | Path) -> list[object]:
    """The tracker plugins of ``names`` (from :func:`parse_log`), writing under the store
    folder ``root``; register them on the plugin manager for the run's events."""
    import importlib

    out = []
    for name in names:
        module, cls, _, _ = TRACKERS[name]
        out.append(getattr(importlib.import_module(f"{__name__}.{module}"), cls)(Path(root)))
    return out


def tracking(pm, names: Sequence[str], root: str | Path) -> contextlib.AbstractContextManager:
    """The trackers ``names`` (from :func:`parse_log`), writing under the store folder ``root``,
    on the plugin manager ``pm`` for the scope (:func:`fusion_bench.events.plugged`), so every
    run inside sends them its events; one tracker serves the runs one after another (each
    ``run_start`` opens that run's log). No names: nothing is opened or registered."""
    return plugged(pm, [(f"fusion-bench-tracker-{i}", t)
                        for i, t in enumerate(open_trackers(list(names), root))])
