"""Typed run configuration: dataclasses, presets, TOML files and ``--set key=value`` overrides.

Keys are ``section.field``: ``data.window``, ``train.lr``... Options of plugins belong to their
plugin: ``fusion.<name>.<option>``, ``encoder.<name>.<option>``, ``dataset.<name>.<option>`` (TOML
tables ``[fusion.rcma]``, ``[dataset.synthetic]``), so one sweep can carry options for several
fusions. The short form ``fusion.<option>`` (``encoder.<option>``, ``dataset.<option>``) means the
chosen plugin (``model.fusion``, ``model.encoder``, ``data.name``) once every other key is set;
``synthetic.<option>`` is an old spelling of ``dataset.synthetic.<option>``. This module knows no
plugin: :func:`fusion_bench.options.check` checks the options against the plugins (before any data
is read).
Precedence: defaults < preset < ``--config`` file < ``--set`` / dedicated CLI flags; a preset's
options of a plugin apply where the user did not set that option.

The package: :mod:`.schema` (the typed sections and the run's identity), :mod:`.presets`,
:mod:`.keys` (key names, typing values, TOML), :mod:`.build` (the precedence and the checks).
"""

from .build import build_config, validate
from .keys import all_keys, coerce, flatten, load_toml, parse_literal, parse_set, set_value
from .presets import PRESET_ENCODER_OPTIONS, PRESET_FUSION_OPTIONS, PRESETS
from .schema import (
    PLUGIN_KINDS,
    DataConfig,
    ModelConfig,
    RobustnessConfig,
    RunConfig,
    TrainConfig,
)

__all__ = [
    "PLUGIN_KINDS", "PRESETS", "PRESET_ENCODER_OPTIONS", "PRESET_FUSION_OPTIONS", "DataConfig",
    "ModelConfig", "RobustnessConfig", "RunConfig", "TrainConfig", "all_keys", "build_config",
    "coerce", "flatten", "load_toml", "parse_literal", "parse_set", "set_value", "validate",
]
