"""Building a configuration: defaults < preset < ``--config`` file < overrides, then what a
dataset folder decides where the user did not (:func:`folder_defaults`), then the checks of what
cannot work together (a message naming the key)."""

from __future__ import annotations

import difflib
import math
import typing
import warnings

from ..errors import ConfigError, Note
from .keys import chosen, load_toml, set_value, split_plugin_key
from .presets import PRESET_ENCODER_OPTIONS, PRESET_FUSION_OPTIONS, PRESETS
from .schema import PRECISIONS, RunConfig


def build_config(preset: str = "quick", config_file: str | None = None,
                 overrides: typing.Iterable[tuple[str, typing.Any]] = ()) -> RunConfig:
    """Defaults, then the preset, then the TOML file, then ``overrides`` (key, value) in order;
    then :func:`folder_defaults` for the keys none of them set."""
    if preset not in PRESETS:
        near = difflib.get_close_matches(preset, PRESETS, n=1)
        raise ConfigError(
            f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}"
            + (f" (did you mean {near[0]}?)" if near else "")
        )
    cfg = RunConfig()
    for k, v in PRESETS[preset].items():
        set_value(cfg, k, v)
    for kind, table in (("fusion", PRESET_FUSION_OPTIONS), ("encoder", PRESET_ENCODER_OPTIONS)):
        for name, options in table.get(preset, {}).items():
            for k, v in options.items():
                set_value(cfg, f"{kind}.{name}.{k}", v)
    given = [(k, v, config_file) for k, v in (load_toml(config_file) if config_file else {}).items()]
    given += [(k, v, None) for k, v in overrides]
    short: list[tuple[str, str, str, typing.Any, str | None]] = []
    explicit: dict[tuple, str | None] = {}  # (kind, name, option) -> the source that set it
    for k, v, origin in given:
        plugin = split_plugin_key(k)
        if plugin is not None and plugin[1] is None:
            short.append((k, plugin[0], plugin[2], v, origin))  # once the chosen plugins are known
            continue
        if plugin is not None:
            explicit[plugin] = origin
        _set(cfg, k, v, origin)
    for k, kind, option, v, origin in short:
        target = (kind, chosen(cfg, kind), option)
        if target in explicit:
            if explicit[target] == origin:  # one source says it twice: which did it mean?
                raise ConfigError(f"{k} and {kind}.{target[1]}.{option} both set the option of "
                                  f"{kind} {target[1]!r}{f' in {origin}' if origin else ''}; "
                                  "keep one")
            if origin is not None:
                continue  # the file's short form yields to the command line's explicit key
        _set(cfg, k, v, origin)  # the command line's short form beats the file's explicit key
    folder_defaults(cfg, set(PRESETS[preset]) | {k for k, _, _ in given})
    validate(cfg)
    _note_unused_fusion(cfg, [k for k, _, _ in given])
    return cfg


def _note_unused_fusion(cfg: RunConfig, given: list[str]) -> None:
    """A run of one modality has no fusion (the encoder feeds the head; its identity leaves the
    fusion out): a fusion or fusion option the user gave is accepted, unused, with a note."""
    if len(cfg.data.modalities) != 1:
        return
    keys = [k for k in given if k == "model.fusion" or k.split(".")[0] == "fusion"]
    if keys:
        warnings.warn(Note(
            f"a run of one modality ({cfg.data.modalities[0]}) has no fusion: "
            f"{', '.join(dict.fromkeys('model.fusion ' + repr(cfg.model.fusion) if k == 'model.fusion' else k for k in keys))} "
            "not used (the run is the encoder alone, as sweep --fusion only:MODALITY)"),
            stacklevel=2)


def folder_defaults(cfg: RunConfig, given: set[str]) -> None:
    """The user's folder is the user's dataset: ``data.root`` without ``data.name`` means the
    ``features`` dataset (a ConfigError saying why not, if the folder is not in its format), and
    a ``features`` run without ``data.modalities`` uses every modality the folder has. ``given``:
    the keys the preset, file or overrides set."""
    from ..data.folder import folder_modalities, format_problem

    root = cfg.data.root
    if not root:
        return
    if "data.name" not in given:
        problem = format_problem(root)
        if problem is not None:
            raise ConfigError(f"--root without --dataset reads a 'features' folder, but {problem}; "
                              "for another dataset give --dataset NAME (fusion-bench list datasets)")
        cfg.data.name = "features"
    if cfg.data.name == "features" and "data.modalities" not in given:
        cfg.data.modalities = folder_modalities(root) or cfg.data.modalities


def _set(cfg: RunConfig, key: str, value, origin: str | None) -> None:
    try:
        set_value(cfg, key, value)
    except ConfigError as e:
        raise ConfigError(f"{origin}: {e}" if origin else str(e)) from None


_ZERO = {"data.window": "derived from the train split's sequence lengths",
         "data.hop": "data.window / 2", "data.eval_hop": "data.hop if set, else data.window / 4",
         "train.epochs": "train for train.steps optimizer steps"}


def validate(cfg: RunConfig) -> None:
    """Reject impossible settings with a message naming the key."""
    d, t = cfg.data, cfg.train
    for key, val in (("data.window", d.window), ("data.hop", d.hop), ("data.eval_hop", d.eval_hop),
                     ("train.epochs", t.epochs)):
        if val < 0:
            raise ConfigError(f"{key} must be ≥ 0 (0: {_ZERO[key]}), got {val}")
    for key, val in (("train.batch_size", t.batch_size), ("train.steps", t.steps),
                     ("train.eval_every", t.eval_every)):
        if val <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {val}")
    # a hop longer than the window leaves frames in no window: never trained on, or scored as 0
    # (a window derived from the data is checked once it is known: data.windows.resolve_windows)
    for key, hop in (("data.hop", d.hop_for("train")), ("data.eval_hop", d.hop_for("test"))):
        if d.window > 0 and hop > d.window:
            raise ConfigError(
                f"{key} ({hop}) is longer than data.window ({d.window}): the frames between "
                f"windows would be skipped; set {key} to at most {d.window}"
            )
    if not (t.lr > 0 and math.isfinite(t.lr)):  # also NaN and inf
        raise ConfigError(f"train.lr must be positive, got {t.lr}")
    if t.min_lr > t.lr:
        raise ConfigError(f"train.min_lr ({t.min_lr}) is above train.lr ({t.lr}); lower it")
    if t.schedule not in ("plateau", "cosine"):
        raise ConfigError(f"train.schedule must be 'plateau' or 'cosine', got {t.schedule!r}")
    if t.precision not in PRECISIONS:
        raise ConfigError(f"train.precision must be one of {', '.join(PRECISIONS)}, got "
                          f"{t.precision!r} (fp16 would need loss scaling; use bf16)")
    if t.loss not in ("window", "batch", "mse"):
        raise ConfigError(f"train.loss must be 'window', 'batch' or 'mse', got {t.loss!r}")
    if cfg.model.pooling not in ("mean", "attention"):
        raise ConfigError(f"model.pooling must be 'mean' or 'attention', got {cfg.model.pooling!r}")
    if not 0 <= t.modality_dropout < 1:  # also NaN; 1 would drop every modality it may
        raise ConfigError(f"train.modality_dropout is a rate in [0, 1), got {t.modality_dropout}")
    if len(d.modalities) == 0:
        raise ConfigError("data.modalities is empty; give at least one, e.g. visual,audio")
    if len(set(d.modalities)) != len(d.modalities):
        raise ConfigError(f"data.modalities lists a modality twice: {','.join(d.modalities)}")
    _check_ranges(cfg)
    lv = cfg.robustness.levels
    if len(lv) < 2 or not all(math.isfinite(x) and x >= 0 for x in lv) or list(lv) != sorted(set(lv)):
        raise ConfigError(
            f"robustness.levels must be at least two distinct non-negative noise levels in "
            f"increasing order, e.g. 0,0.5,1,2; got {','.join(map(str, lv))}"
        )


SEED_MAX = 2**63 - 1


def _check_ranges(cfg: RunConfig) -> None:
    """Numbers outside the range their meaning allows: a message naming the key, instead of a
    library's traceback later (a negative seed in numpy, a plateau factor in torch) or a run
    that means nothing (a negative patience). Plugin options are the plugin's to check
    (:func:`fusion_bench.options.check`)."""
    m, t = cfg.model, cfg.train
    at_least = {  # key: (value, smallest allowed)
        "seed": (cfg.seed, 0), "data.seed": (cfg.data.seed, 0), "data.fold": (cfg.data.fold, 0),
        "model.head_hidden": (m.head_hidden, 0), "train.weight_decay": (t.weight_decay, 0),
        "train.warmup_epochs": (t.warmup_epochs, 0), "train.min_lr": (t.min_lr, 0),
        "train.plateau_patience": (t.plateau_patience, 0),
        "train.early_stop_patience": (t.early_stop_patience, 0),
        "train.max_grad_norm": (t.max_grad_norm, 0),
    }
    for key, (value, low) in at_least.items():
        if not value >= low:  # also catches NaN
            raise ConfigError(f"{key} must be ≥ {low}, got {value}")
        if isinstance(value, float) and not math.isfinite(value):  # inf: NaN weights, not a run
            raise ConfigError(f"{key} must be a finite number, got {value}")
    for key, value in (("seed", cfg.seed), ("data.seed", cfg.data.seed)):
        if value > SEED_MAX:  # torch, numpy and the index's integers take 63 bits
            raise ConfigError(f"{key} must be at most 2**63 - 1 ({SEED_MAX}), got {value}")
    if t.batch_size == 1:
        raise ConfigError("train.batch_size must be at least 2: the BatchNorm after each encoder "
                          "cannot train on one window; use 2 or more")
    if not 0 <= m.head_dropout < 1:
        raise ConfigError(f"model.head_dropout must be in [0, 1), got {m.head_dropout}")
    if m.head_dropout > 0 and m.head_hidden == 0:  # the dropout sits in the hidden layer
        raise ConfigError(f"model.head_dropout ({m.head_dropout:g}) acts after the head's hidden "
                          f"layer, and model.head_hidden is 0 (no hidden layer): set "
                          f"model.head_hidden too (e.g. 128), or leave head_dropout at 0")
    if not 0 < t.plateau_factor < 1:
        raise ConfigError(f"train.plateau_factor multiplies the learning rate on a plateau; it must "
                          f"be between 0 and 1 (exclusive), got {t.plateau_factor}")
