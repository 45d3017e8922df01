"""Typed run configuration: dataclasses, presets, TOML files and ``--set key=value`` overrides.

Keys are ``section.field``: ``data.window``, ``train.lr``, ``synthetic.interaction``... Options of
the chosen plugins are ``fusion.<option>`` and ``encoder.<option>``; they are checked against the
plugin's constructor signature when the model is built (:func:`plugin_options`).
Precedence: defaults < preset < ``--config`` file < ``--set`` / dedicated CLI flags.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import inspect
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .data.synthetic import SyntheticConfig
from .errors import ConfigError


@dataclass
class DataConfig:
    name: str = "synthetic"  # dataset plugin
    root: str = ""  # folder of a dataset on disk (unused by the synthetic one)
    modalities: tuple[str, ...] = ("visual", "audio", "text")
    window: int = 64  # L, frames per window
    hop: int = 64  # H, frames between the starts of training windows
    # frames between the starts of validation/test windows (0: the same as hop); a frame covered
    # by several windows is scored with the mean of their predictions
    eval_hop: int = 16
    seed: int = 0  # draws the data (synthetic videos, fold split); `seed` draws the model
    fold: int = 0  # cross-validation fold of datasets that have them (Aff-Wild2: 0-5)

    def hop_for(self, split: str) -> int:
        """Hop of ``split``'s windows: ``hop`` for training, ``eval_hop`` (if set) otherwise."""
        return self.hop if split == "train" or self.eval_hop == 0 else self.eval_hop


@dataclass
class ModelConfig:
    encoder: str = "tcn"  # temporal encoder plugin, one per modality
    fusion: str = "concat"  # fusion plugin
    channels: dict[str, int] = field(default_factory=dict)  # per-modality encoder width override
    head_hidden: int = 0  # 0: Linear + tanh (the paper's head)
    head_dropout: float = 0.0
    per_target: bool = False  # one model per target (the paper's protocol) vs one joint model


@dataclass
class TrainConfig:
    # The quick schedule is 4 passes over 192 videos at a constant lr after a 1-epoch warm-up:
    # its plateau decay and early stopping (patience 3 and 6) cannot trigger within 4 epochs;
    # they act in longer runs (--set train.epochs=...) and in the paper preset.
    epochs: int = 4
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup_epochs: int = 1  # linear warm-up of the learning rate, in epochs
    # after warm-up: "plateau" (lr × plateau_factor after plateau_patience epochs without val
    # improvement) or "cosine" (half a cosine from lr down to min_lr at the last step)
    schedule: str = "plateau"
    plateau_patience: int = 3  # epochs without val improvement before lr × plateau_factor
    plateau_factor: float = 0.1
    min_lr: float = 1e-6
    early_stop_patience: int = 6  # epochs without val improvement before stopping (0: never)
    loss: str = "batch"  # "window": 1 − CCC per window (paper); "batch": over the batch's frames
    max_grad_norm: float = 0.0  # 0: no clipping
    progress: bool = True


@dataclass
class RobustnessConfig:
    """Test-time perturbations of a trained model (``fusion-bench run --robustness``).

    Each modality is dropped (masked for every frame) in turn, and Gaussian noise of each level
    is added to one modality at a time and to all of them; a level is the noise's standard
    deviation in units of each feature's standard deviation over the train split.
    """

    enabled: bool = False
    levels: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)


@dataclass
class RunConfig:
    seed: int = 0
    device: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    fusion: dict[str, typing.Any] = field(default_factory=dict)  # options of model.fusion
    encoder: dict[str, typing.Any] = field(default_factory=dict)  # options of model.encoder

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Identity of a run: everything but where it runs (``device``) and whether it shows a
        progress bar (``train.progress``), with the robustness settings only when robustness is
        evaluated (so a plain run hashes as it did before robustness existed). On synthetic
        data, the generator's version too: a changed generator is another dataset, and a sweep
        must not skip to a run made on the old one."""
        return self._digest(with_robustness=self.robustness.enabled)

    def model_hash(self) -> str:
        """Identity of the trained model: :meth:`hash` without the test-time robustness
        settings. A stored run with robustness also stands for the same run without it."""
        return self._digest(with_robustness=False)

    def data_version(self) -> str | None:
        """The version of the data a run reads, where fusion-bench makes the data (synthetic)."""
        if self.data.name == "synthetic":
            from .data.synthetic import VERSION

            return VERSION
        return None

    def legacy_hashes(self) -> list[str]:
        """:meth:`hash` and :meth:`model_hash` as records made before 2026-11-30 have them: with
        ``train.progress`` (either value) and without the data version. A store holding such a
        record of this configuration still has the run, if the record's data version is this
        one (:meth:`fusion_bench.results.ResultsStore.has` checks)."""
        out = []
        for with_robustness in dict.fromkeys((self.robustness.enabled, False)):
            for progress in (True, False):
                out.append(self._digest(with_robustness, progress=progress))
        return out

    def _digest(self, with_robustness: bool, progress: bool | None = None) -> str:
        """``progress``: None for the current scheme; a value for the legacy one (above)."""
        d = self.to_dict()
        d.pop("device")
        if progress is None:
            d["train"].pop("progress")  # a progress bar changes no result
            if self.data_version() is not None:
                d["data_version"] = self.data_version()
        else:
            d["train"]["progress"] = progress
        if not with_robustness:
            d.pop("robustness")
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


# Presets: dicts of overrides. ``quick`` is the default, sized for a laptop CPU; ``paper`` is the
# RCMA paper's configuration (Praveen & Alam 2024, DESIGN section 5), on any dataset whose dims match.
PRESETS: dict[str, dict[str, typing.Any]] = {
    "quick": {},  # the dataclass defaults are the quick configuration
    "paper": {
        "seed": 3407,
        "data.window": 300,
        "data.hop": 200,
        "data.eval_hop": 200,
        "synthetic.dim_visual": 512,
        "synthetic.dim_audio": 128,
        "synthetic.dim_text": 768,
        "model.channels": {"visual": 512, "audio": 128, "text": 512},
        "model.per_target": True,
        "model.head_hidden": 0,
        "train.loss": "window",
        "train.lr": 1e-5,
        "train.weight_decay": 1e-3,
        "train.batch_size": 12,
        "train.warmup_epochs": 5,
        "train.plateau_patience": 5,
        "train.plateau_factor": 0.1,
        "train.min_lr": 1e-8,
        "train.epochs": 100,
        "train.early_stop_patience": 50,
    },
}

# Plugin options a preset sets for one fusion or encoder only (others may lack the option).
# Applied after all overrides, only where the user did not set the option.
PRESET_FUSION_OPTIONS: dict[str, dict[str, dict[str, typing.Any]]] = {
    # The paper's p = 0.6 is tuned for L = 300 and 512-d features; with the quick model's 32-d
    # features and L = 64 it starves RCMA's updates of signal (DESIGN section 6 prototype: 0.1).
    # A random L×L time map scrambles frame alignment, so RCMA's cross-modal correlation starts
    # as noise; starting from the identity lets it see synchrony from step one (see rcma.py).
    "quick": {"rcma": {"dropout": 0.1, "time_init": "identity"}},
    "paper": {"rcma": {"dropout": 0.6, "iterations": 2, "joint": "others"}},
}
PRESET_ENCODER_OPTIONS: dict[str, dict[str, dict[str, typing.Any]]] = {
    # Kernel 3 (receptive field 29 frames, ~1 s): 3/5 of kernel 5's convolutions, and on the
    # default data at least as good (RCMA seed 0: validation mean 0.902 against 0.884).
    "quick": {"tcn": {"kernel": 3}},
    # the paper's TCN; another encoder (--encoder lstm) keeps its own options
    "paper": {"tcn": {"levels": 4, "kernel": 5, "dropout": 0.1, "causal": True, "weight_norm": True}},
}

_SECTIONS = {"data", "synthetic", "model", "train", "robustness"}
_FREE = {"fusion", "encoder"}  # plugin options, checked against the plugin later


def _fields(obj) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(obj)}


def _unknown(key: str, known: typing.Iterable[str]) -> ConfigError:
    known = list(dict.fromkeys(known))  # callers may pass a section's keys and all keys
    near = difflib.get_close_matches(key, known, n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else f"; known keys: {', '.join(sorted(known))}"
    return ConfigError(f"unknown config key {key!r}{hint}")


def all_keys(cfg: RunConfig | None = None) -> list[str]:
    cfg = cfg or RunConfig()
    keys = [k for k in ("seed", "device")]
    for s in sorted(_SECTIONS):
        keys += [f"{s}.{f}" for f in _fields(getattr(cfg, s))]
    return keys


def coerce(key: str, value, annotation) -> typing.Any:
    """Convert ``value`` (a string from the CLI, or a TOML value) to the annotated type."""
    if isinstance(annotation, str):
        annotation = eval(annotation, {"typing": typing, "tuple": tuple, "dict": dict})  # noqa: S307
    origin = typing.get_origin(annotation)
    try:
        if annotation is bool:
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if annotation is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value) if not isinstance(value, str) else int(value.strip())
        if annotation is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if annotation is str:
            if not isinstance(value, str):
                raise ValueError
            return value
        if origin is tuple:
            items = value if isinstance(value, (list, tuple)) else [v for v in str(value).split(",") if v.strip()]
            item_type = typing.get_args(annotation)[0]
            if item_type is str:
                return tuple(str(v).strip() for v in items)
            return tuple(coerce(key, v.strip() if isinstance(v, str) else v, item_type) for v in items)
        if origin is dict:
            if isinstance(value, dict):
                pairs = value.items()
            else:
                pairs = [p.split(":", 1) for p in str(value).split(",") if p.strip()]
                if any(len(p) != 2 for p in pairs):
                    raise ValueError
            vt = typing.get_args(annotation)[1]
            return {str(k).strip(): coerce(f"{key}.{k}", v, vt) for k, v in pairs}
        if annotation is typing.Any:
            return value
    except (ValueError, TypeError):
        pass
    else:
        return value
    name = getattr(annotation, "__name__", str(annotation))
    example = {"int": "an integer, e.g. 64", "float": "a number, e.g. 0.001", "bool": "true or false",
               "str": "text"}.get(name, "k:v,k:v" if origin is dict else "a,b,c")
    raise ConfigError(f"config key {key!r} expects {name}; got {value!r} (use {example})")


def parse_literal(value: str):
    """Best-effort typing of a plugin option given on the command line (checked again later)."""
    s = value.strip()
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(s)
        except ValueError:
            pass
    return s


def set_value(cfg: RunConfig, key: str, value) -> None:
    """Set ``key`` (``section.field``) on ``cfg`` with type checking; raise ConfigError."""
    if key in ("seed", "device"):
        setattr(cfg, key, coerce(key, value, int if key == "seed" else str))
        return
    section, _, name = key.partition(".")
    if not name:
        raise _unknown(key, all_keys(cfg))
    if section in _FREE:
        getattr(cfg, section)[name] = parse_literal(value) if isinstance(value, str) else value
        return
    if section not in _SECTIONS:
        raise _unknown(key, all_keys(cfg))
    obj = getattr(cfg, section)
    fields = _fields(obj)
    if name not in fields:
        raise _unknown(key, [f"{section}.{f}" for f in fields] + all_keys(cfg))
    hints = typing.get_type_hints(type(obj))
    setattr(obj, name, coerce(key, value, hints[name]))


def flatten(table: dict, prefix: str = "") -> dict[str, typing.Any]:
    """``{"train": {"lr": 1e-3}}`` → ``{"train.lr": 1e-3}`` (one level of nesting, plus dict fields)."""
    out = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not prefix and k in _SECTIONS | _FREE:
            out.update(flatten(v, prefix=f"{k}."))
        else:
            out[key] = v
    return out


def load_toml(path: str | Path) -> dict[str, typing.Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        with p.open("rb") as f:
            return flatten(tomllib.load(f))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None


def build_config(preset: str = "quick", config_file: str | None = None,
                 overrides: typing.Iterable[tuple[str, typing.Any]] = ()) -> RunConfig:
    """Defaults, then the preset, then the TOML file, then ``overrides`` (key, value) in order."""
    if preset not in PRESETS:
        near = difflib.get_close_matches(preset, PRESETS, n=1)
        raise ConfigError(
            f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}"
            + (f" (did you mean {near[0]}?)" if near else "")
        )
    cfg = RunConfig()
    for k, v in PRESETS[preset].items():
        set_value(cfg, k, v)
    if config_file:
        for k, v in load_toml(config_file).items():
            try:
                set_value(cfg, k, v)
            except ConfigError as e:
                raise ConfigError(f"{config_file}: {e}") from None
    for k, v in overrides:
        set_value(cfg, k, v)
    for table, name, options in ((PRESET_FUSION_OPTIONS, cfg.model.fusion, cfg.fusion),
                                 (PRESET_ENCODER_OPTIONS, cfg.model.encoder, cfg.encoder)):
        for k, v in table.get(preset, {}).get(name, {}).items():
            options.setdefault(k, v)
    validate(cfg)
    return cfg


def parse_set(items: typing.Iterable[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, e.g. --set train.lr=0.001; got {item!r}")
        out.append((key.strip(), value))
    return out


def validate(cfg: RunConfig) -> None:
    """Reject impossible settings with a message naming the key."""
    d, t = cfg.data, cfg.train
    if d.eval_hop < 0:
        raise ConfigError(f"data.eval_hop must be ≥ 0 (0: the same as data.hop), got {d.eval_hop}")
    for key, val in (("data.window", d.window), ("data.hop", d.hop), ("train.batch_size", t.batch_size),
                     ("train.epochs", t.epochs)):
        if val <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {val}")
    # a hop longer than the window leaves frames in no window: never trained on, or scored as 0
    for key, hop in (("data.hop", d.hop_for("train")), ("data.eval_hop", d.hop_for("test"))):
        if hop > d.window:
            raise ConfigError(
                f"{key} ({hop}) is longer than data.window ({d.window}): the frames between "
                f"windows would be skipped; set {key} to at most {d.window}"
            )
    if t.lr <= 0:
        raise ConfigError(f"train.lr must be positive, got {t.lr}")
    if t.min_lr > t.lr:
        raise ConfigError(f"train.min_lr ({t.min_lr}) is above train.lr ({t.lr}); lower it")
    if t.schedule not in ("plateau", "cosine"):
        raise ConfigError(f"train.schedule must be 'plateau' or 'cosine', got {t.schedule!r}")
    if t.loss not in ("window", "batch"):
        raise ConfigError(f"train.loss must be 'window' or 'batch', got {t.loss!r}")
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


def _check_ranges(cfg: RunConfig) -> None:
    """Numbers outside the range their meaning allows: a message naming the key, instead of a
    library's traceback later (a negative seed in numpy, a plateau factor in torch) or a run
    that means nothing (a negative patience; in the synthetic knobs, a 0-feature modality)."""
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
    if not 0 <= m.head_dropout < 1:
        raise ConfigError(f"model.head_dropout must be in [0, 1), got {m.head_dropout}")
    if not 0 < t.plateau_factor < 1:
        raise ConfigError(f"train.plateau_factor multiplies the learning rate on a plateau; it must "
                          f"be between 0 and 1 (exclusive), got {t.plateau_factor}")
    if cfg.data.name == "synthetic":
        cfg.synthetic.check()


def keyword_options(cls, skip: typing.Iterable[str] = ()) -> tuple[dict[str, inspect.Parameter], bool]:
    """``cls(...)``'s keyword parameters by name (less ``skip``), and whether it takes **kwargs."""
    sig = inspect.signature(cls)
    params = {p.name: p for p in sig.parameters.values()
              if p.name not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return params, any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())


def plugin_options(kind: str, name: str, cls, options: dict, skip: typing.Iterable[str] = ()) -> dict:
    """Check ``options`` against ``cls.__init__``'s keyword parameters; coerce them to the type of
    each default. Unknown options get a "did you mean" listing the plugin's options."""
    params, takes_kwargs = keyword_options(cls, skip)
    out = {}
    for k, v in options.items():
        if k not in params:
            if takes_kwargs:
                out[k] = v
                continue
            near = difflib.get_close_matches(k, list(params), n=3)
            valid = ", ".join(f"{kind}.{p}" for p in params) or "none"
            raise ConfigError(
                f"{kind} {name!r} has no option {k!r}"
                + (f"; did you mean {', '.join(f'{kind}.{n}' for n in near)}?" if near else "")
                + f" (its options: {valid})"
            )
        p = params[k]
        if p.default is not inspect.Parameter.empty and p.default is not None and v is not None:
            ann = type(p.default)
            if ann in (int, float, bool, str):
                if ann is float and isinstance(v, int) and not isinstance(v, bool):
                    v = float(v)
                v = coerce(f"{kind}.{k}", v, ann)
        out[k] = v
    return out
