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


PLUGIN_KINDS = ("dataset", "encoder", "fusion")  # kinds whose options are ``<kind>.<name>.<option>``

# The synthetic generator's knobs and defaults as every record made before plugin options had them
# (a full ``synthetic`` section): frozen here, for :meth:`RunConfig.legacy_hashes` only.
_LEGACY_SYNTHETIC = {
    "n_train": 192, "n_val": 16, "n_test": 48, "min_frames": 300, "max_frames": 900,
    "dim_visual": 32, "dim_audio": 16, "dim_text": 24, "interaction": 0.5, "noise": 1.0,
    "label_noise": 0.15, "sync_strength": 1.0, "offset": 0.5, "offset_leak": 0.1,
}


@dataclass
class RunConfig:
    seed: int = 0
    device: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    # plugin name -> its options, for any number of plugins; a run uses those of its own plugins
    fusion: dict[str, dict[str, typing.Any]] = field(default_factory=dict)
    encoder: dict[str, dict[str, typing.Any]] = field(default_factory=dict)
    dataset: dict[str, dict[str, typing.Any]] = field(default_factory=dict)
    # kind -> options given in the short form (``fusion.<option>``): for messages only, no identity
    shorthand: dict[str, set[str]] = field(default_factory=dict, repr=False, compare=False)

    def used(self) -> dict[str, str]:
        """The plugin of each kind this run uses: dataset, encoder, and the fusion where there are
        two or more modalities (a single-modality run has none)."""
        out = {"dataset": self.data.name, "encoder": self.model.encoder}
        if len(self.data.modalities) > 1:
            out["fusion"] = self.model.fusion
        return out

    def options(self, kind: str) -> dict[str, typing.Any]:
        """The options of the ``kind`` plugin this run uses (empty if it uses none)."""
        name = self.used().get(kind)
        return dict(getattr(self, kind).get(name, {})) if name is not None else {}

    def to_dict(self) -> dict:
        """The run as a record stores it: the sections, and under ``fusion``/``encoder``/``dataset``
        the options of the plugins the run uses only (``{name: options}``)."""
        d = {"seed": self.seed, "device": self.device}
        for s in ("data", "model", "train", "robustness"):
            d[s] = dataclasses.asdict(getattr(self, s))
        used = self.used()
        for kind in PLUGIN_KINDS:
            opts = self.options(kind)
            d[kind] = {used[kind]: opts} if opts else {}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """A configuration from :meth:`to_dict`'s output, or from a record made before plugin
        options (``fusion``/``encoder``: the chosen plugin's options; a ``synthetic`` section)."""
        cfg = cls(seed=d["seed"], device=d["device"], data=_section(DataConfig, d["data"]),
                  model=_section(ModelConfig, d["model"]), train=_section(TrainConfig, d["train"]),
                  robustness=_section(RobustnessConfig, d.get("robustness", {})))
        if "dataset" in d:
            for kind in PLUGIN_KINDS:
                setattr(cfg, kind, {n: dict(o) for n, o in d.get(kind, {}).items()})
            return cfg
        cfg.fusion = {cfg.model.fusion: dict(d["fusion"])} if d.get("fusion") else {}
        cfg.encoder = {cfg.model.encoder: dict(d["encoder"])} if d.get("encoder") else {}
        synthetic = {k: v for k, v in d.get("synthetic", {}).items() if _LEGACY_SYNTHETIC.get(k) != v}
        cfg.dataset = {"synthetic": synthetic} if synthetic else {}
        return cfg

    def hash(self, data_version: str | None) -> str:
        """Identity of a run: everything but where it runs (``device``) and whether it shows a
        progress bar (``train.progress``); of plugin options, only those of the plugins the run
        uses; the robustness settings only when robustness is evaluated (so a plain run hashes
        as it did before robustness existed). ``data_version``: the dataset plugin's version of
        data it makes from its options (:func:`fusion_bench.options.data_version`; None for
        data read from disk): a changed generator is another dataset, and a sweep must not skip
        to a run made on the old one."""
        return self._digest(self._identity(), data_version, with_robustness=self.robustness.enabled)

    def model_hash(self, data_version: str | None) -> str:
        """Identity of the trained model: :meth:`hash` without the test-time robustness
        settings. A stored run with robustness also stands for the same run without it."""
        return self._digest(self._identity(), data_version, with_robustness=False)

    def legacy_hashes(self, data_version: str | None) -> list[str]:
        """:meth:`hash` and :meth:`model_hash` as older records have them, in the layout before
        plugin options (the chosen fusion's and encoder's options flat, a full ``synthetic``
        section whatever the dataset): as records made from 2026-11-30 have them (with the data
        version), and as records made before (with ``train.progress``, either value, and without
        the data version). A store holding such a record of this configuration still has the
        run, if the record's data version is this one
        (:meth:`fusion_bench.results.ResultsStore.has` checks)."""
        old = self._legacy_layout()
        out = []
        for with_robustness in dict.fromkeys((self.robustness.enabled, False)):
            out.append(self._digest(old, data_version, with_robustness))
            for progress in (True, False):
                out.append(self._digest(old, None, with_robustness, progress=progress))
        return out

    def _identity(self) -> dict:
        d = self.to_dict()
        for kind in PLUGIN_KINDS:  # 1 and 1.0 are one value (a CLI string parses to either)
            d[kind] = {n: {k: _canonical(v) for k, v in o.items()} for n, o in d[kind].items()}
        return d

    def _legacy_layout(self) -> dict:
        d = {"seed": self.seed, "device": self.device}
        for s in ("data", "model", "train", "robustness"):
            d[s] = dataclasses.asdict(getattr(self, s))
        d["fusion"] = dict(self.fusion.get(self.model.fusion, {}))
        d["encoder"] = dict(self.encoder.get(self.model.encoder, {}))
        synthetic = dict(_LEGACY_SYNTHETIC)
        for k, v in self.dataset.get("synthetic", {}).items():  # typed as the dataclass had them
            default = _LEGACY_SYNTHETIC.get(k)
            synthetic[k] = type(default)(v) if isinstance(default, (int, float)) and \
                isinstance(v, (int, float)) and not isinstance(v, bool) else v
        d["synthetic"] = synthetic
        return d

    @staticmethod
    def _digest(d: dict, data_version: str | None, with_robustness: bool,
                progress: bool | None = None) -> str:
        """``progress``: None for the current schemes; a value for the oldest one (above)."""
        d = json.loads(json.dumps(d, default=str))  # a copy
        d.pop("device")
        if progress is None:
            d["train"].pop("progress")  # a progress bar changes no result
            if data_version is not None:
                d["data_version"] = data_version
        else:
            d["train"]["progress"] = progress
        if not with_robustness:
            d.pop("robustness")
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _section(cls, values: dict):
    """A section dataclass from a record's dict (lists back to tuples, as the fields are)."""
    hints = typing.get_type_hints(cls)
    return cls(**{k: tuple(v) if typing.get_origin(hints[k]) is tuple else v for k, v in values.items()})


def _canonical(v):
    return int(v) if isinstance(v, float) and v.is_integer() else v


# Presets: dicts of overrides. ``quick`` is the default, sized for a laptop CPU; ``paper`` is the
# RCMA paper's configuration (Praveen & Alam 2024, DESIGN section 5), on any dataset whose dims match.
PRESETS: dict[str, dict[str, typing.Any]] = {
    "quick": {},  # the dataclass defaults are the quick configuration
    "paper": {
        "seed": 3407,
        "data.window": 300,
        "data.hop": 200,
        "data.eval_hop": 200,
        "dataset.synthetic.dim_visual": 512,
        "dataset.synthetic.dim_audio": 128,
        "dataset.synthetic.dim_text": 768,
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

# Plugin options a preset sets for one fusion or encoder only (others may lack the option): set as
# ``fusion.<name>.<option>`` right after the preset, so the user's settings override them.
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

_SECTIONS = {"data", "model", "train", "robustness"}
_FREE = set(PLUGIN_KINDS)  # plugin options, checked against the plugin later (options.check)
_ALIASES = {"synthetic": "dataset.synthetic"}  # old spelling -> new, of a whole section


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
    return keys + [f"{k}.<name>.<option>" for k in PLUGIN_KINDS]


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


def split_plugin_key(key: str) -> tuple[str, str | None, str] | None:
    """``fusion.rcma.iterations`` → ("fusion", "rcma", "iterations"); the short form
    ``fusion.iterations`` → ("fusion", None, "iterations"); None if ``key`` is no plugin option."""
    head, _, rest = key.partition(".")
    if head in _ALIASES and rest:
        return split_plugin_key(f"{_ALIASES[head]}.{rest}")
    if head not in _FREE or not rest:
        return None
    name, _, option = rest.partition(".")
    return (head, name, option) if option else (head, None, name)


def chosen(cfg: RunConfig, kind: str) -> str:
    """The plugin of ``kind`` that ``cfg`` names (whether or not the run uses it)."""
    return {"fusion": cfg.model.fusion, "encoder": cfg.model.encoder, "dataset": cfg.data.name}[kind]


def set_value(cfg: RunConfig, key: str, value) -> None:
    """Set ``key`` (``section.field``, or a plugin option) on ``cfg`` with type checking; raise
    ConfigError. A short-form plugin option (``fusion.iterations``) goes to the plugin ``cfg``
    names now (:func:`build_config` sets those last)."""
    if key in ("seed", "device"):
        setattr(cfg, key, coerce(key, value, int if key == "seed" else str))
        return
    plugin = split_plugin_key(key)
    if plugin is not None:
        kind, name, option = plugin
        if name is None:
            name = chosen(cfg, kind)
            cfg.shorthand.setdefault(kind, set()).add(option)
        value = parse_literal(value) if isinstance(value, str) else value
        getattr(cfg, kind).setdefault(name, {})[option] = value
        return
    section, _, name = key.partition(".")
    if not name or section not in _SECTIONS:
        raise _unknown(key, all_keys(cfg))
    obj = getattr(cfg, section)
    fields = _fields(obj)
    if name not in fields:
        raise _unknown(key, [f"{section}.{f}" for f in fields] + all_keys(cfg))
    hints = typing.get_type_hints(type(obj))
    setattr(obj, name, coerce(key, value, hints[name]))


def flatten(table: dict, prefix: str = "") -> dict[str, typing.Any]:
    """``{"train": {"lr": 1e-3}}`` → ``{"train.lr": 1e-3}``: one level of nesting, and two for
    plugin options (``{"fusion": {"rcma": {"iterations": 1}}}`` → ``fusion.rcma.iterations``;
    a value that is not a table is a short-form option, ``fusion.iterations``)."""
    out = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not prefix and k in _SECTIONS | set(_ALIASES):
            out.update(flatten(v, prefix=f"{k}."))
        elif isinstance(v, dict) and not prefix and k in _FREE:
            for name, opts in v.items():
                if isinstance(opts, dict):
                    out.update({f"{k}.{name}.{o}": x for o, x in opts.items()})
                else:
                    out[f"{k}.{name}"] = opts
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
    for kind, table in (("fusion", PRESET_FUSION_OPTIONS), ("encoder", PRESET_ENCODER_OPTIONS)):
        for name, options in table.get(preset, {}).items():
            for k, v in options.items():
                set_value(cfg, f"{kind}.{name}.{k}", v)
    given = [(k, v, config_file) for k, v in (load_toml(config_file) if config_file else {}).items()]
    given += [(k, v, None) for k, v in overrides]
    short, explicit = [], set()
    for k, v, origin in given:
        plugin = split_plugin_key(k)
        if plugin is not None and plugin[1] is None:
            short.append((k, v, origin))  # once the chosen plugins are known
            continue
        if plugin is not None:
            explicit.add(plugin)
        _set(cfg, k, v, origin)
    for k, v, origin in short:
        kind, _, option = split_plugin_key(k)
        if (kind, chosen(cfg, kind), option) in explicit:
            raise ConfigError(f"{k} and {kind}.{chosen(cfg, kind)}.{option} both set the option of "
                              f"{kind} {chosen(cfg, kind)!r}; keep one")
        _set(cfg, k, v, origin)
    validate(cfg)
    return cfg


def _set(cfg: RunConfig, key: str, value, origin: str | None) -> None:
    try:
        set_value(cfg, key, value)
    except ConfigError as e:
        raise ConfigError(f"{origin}: {e}" if origin else str(e)) from None


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
    if not 0 <= m.head_dropout < 1:
        raise ConfigError(f"model.head_dropout must be in [0, 1), got {m.head_dropout}")
    if not 0 < t.plateau_factor < 1:
        raise ConfigError(f"train.plateau_factor multiplies the learning rate on a plateau; it must "
                          f"be between 0 and 1 (exclusive), got {t.plateau_factor}")


def keyword_options(cls, skip: typing.Iterable[str] = ()) -> tuple[dict[str, inspect.Parameter], bool]:
    """``cls(...)``'s keyword parameters by name (less ``skip``), and whether it takes **kwargs."""
    sig = inspect.signature(cls)
    params = {p.name: p for p in sig.parameters.values()
              if p.name not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return params, any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())


def unknown_option(kind: str, name: str, option: str, known: typing.Iterable[str]) -> ConfigError:
    """``kind`` plugin ``name`` has no ``option``: a "did you mean" among ``known``."""
    known = list(known)
    near = difflib.get_close_matches(option, known, n=3)
    valid = ", ".join(f"{kind}.{name}.{p}" for p in known) or "none"
    return ConfigError(
        f"{kind} {name!r} has no option {option!r}"
        + (f"; did you mean {', '.join(f'{kind}.{name}.{n}' for n in near)}?" if near else "")
        + f" (its options: {valid})"
    )


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
            raise unknown_option(kind, name, k, params)
        p = params[k]
        if p.default is not inspect.Parameter.empty and p.default is not None and v is not None:
            ann = type(p.default)
            if ann in (int, float, bool, str):
                if ann is float and isinstance(v, int) and not isinstance(v, bool):
                    v = float(v)
                v = coerce(f"{kind}.{name}.{k}", v, ann)
        out[k] = v
    return out
