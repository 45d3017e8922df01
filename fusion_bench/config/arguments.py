"""A configuration from Python arguments (the notebook API, :mod:`fusion_bench.api`): the named
arguments that the CLI has as flags (``fusion="rcma"``, ``seed=1``), and overrides as a dict of
config keys, flat (``{"train.steps": 20, "fusion.rcma.iterations": 3}``) or nested as in a TOML
file (``{"train": {"steps": 20}}``), values typed (``20``) or as text (``"20"``).

Precedence, as on the command line (:mod:`fusion_bench.cli.options`): defaults < preset < config
file < named arguments < overrides < switches (``robustness=True``). :func:`.build.build_config`
does the rest, so a configuration made here is the one the CLI makes of the same settings (same
checks, same hash).
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping

from ..errors import ConfigError
from .build import build_config
from .keys import flatten
from .schema import RunConfig

#: named argument → config key: the CLI's dedicated flags (``--fusion``, ``--seed``...)
ARGUMENT_KEYS = {
    "fusion": "model.fusion", "dataset": "data.name", "encoder": "model.encoder",
    "modalities": "data.modalities", "root": "data.root", "seed": "seed", "device": "device",
}


def _value(v):
    """A path as text; a list of modalities as it is (the config key types it)."""
    return os.fspath(v) if isinstance(v, os.PathLike) else v


def override_pairs(arguments: Mapping[str, typing.Any] | None = None,
                   overrides: Mapping[str, typing.Any] | None = None,
                   switches: Mapping[str, typing.Any] | None = None) -> list[tuple[str, typing.Any]]:
    """(key, value) pairs in precedence order: the named ``arguments`` given (not None), then
    ``overrides``, then the ``switches`` that are on (not None)."""
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ConfigError(f"overrides must be a dict of config keys, e.g. {{'train.steps': 20}}; "
                          f"got {type(overrides).__name__}")
    unknown = sorted(set(arguments or {}) - set(ARGUMENT_KEYS))
    if unknown:
        raise ConfigError(f"unknown argument {unknown[0]!r}; the named ones are "
                          f"{', '.join(ARGUMENT_KEYS)}, any other key goes in overrides")
    pairs = [(ARGUMENT_KEYS[k], _value(v)) for k, v in (arguments or {}).items() if v is not None]
    for key, v in flatten(dict(overrides or {})).items():
        if not isinstance(key, str):
            raise ConfigError(f"overrides: a config key is text, e.g. 'train.steps'; got {key!r}")
        pairs.append((key, _value(v)))
    return pairs + [(k, v) for k, v in (switches or {}).items() if v is not None]


def config_of(preset: str = "quick", config_file: str | os.PathLike | None = None,
              arguments: Mapping[str, typing.Any] | None = None,
              overrides: Mapping[str, typing.Any] | None = None,
              switches: Mapping[str, typing.Any] | None = None) -> RunConfig:
    """The run configuration of the named ``arguments``, ``overrides`` and ``switches`` over
    ``preset`` and ``config_file`` (see the module docstring); a ConfigError names what is wrong."""
    return build_config(preset, None if config_file is None else os.fspath(config_file),
                        override_pairs(arguments, overrides, switches))
