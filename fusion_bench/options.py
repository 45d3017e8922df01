"""Options that belong to their plugin: what each plugin takes, and the check of a configuration's
options against the plugins it uses, before any data is read.

A fusion's or encoder's options are its constructor's keyword parameters with defaults (their
type is the default's, or the annotation's). A dataset's options are the fields of the dataclass
it exposes as ``Options`` (see :func:`dataset_options`); a dataset without one takes none.
:func:`check` is the preflight of ``run`` and of every configuration of a ``sweep``.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing

from .config import RunConfig, coerce
from .errors import ConfigError

# kind -> (registry kind, constructor parameters that are not options)
KINDS = {
    "dataset": ("datasets", ()),
    "encoder": ("encoders", ("in_dim",)),
    "fusion": ("fusions", ("dims", "seq_len")),
}


@dataclasses.dataclass
class Option:
    """One option of a plugin, as ``fusion-bench list ... --options`` shows it."""

    name: str
    type: str  # "int", "float", "str | None"...; "" when neither annotated nor defaulted
    default: typing.Any = inspect.Parameter.empty  # empty: required


def plugin_parameters(kind: str, obj) -> list[Option]:
    """The options of plugin ``obj`` of ``kind``: a dataset's ``Options`` fields, a fusion's or
    encoder's keyword parameters (less those fusion-bench passes itself)."""
    if kind == "dataset":
        spec = getattr(obj, "Options", None)
        if spec is None:
            return []
        hints = typing.get_type_hints(spec)
        return [Option(f.name, _type_name(hints.get(f.name)), _field_default(f))
                for f in dataclasses.fields(spec)]
    params, _ = keyword_options(obj, skip=KINDS[kind][1])
    try:
        hints = typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: show the default's type
        hints = {}
    out = []
    for p in params.values():
        ann = hints.get(p.name)
        name = _type_name(ann) if ann is not None else (
            type(p.default).__name__ if p.default not in (inspect.Parameter.empty, None) else "")
        out.append(Option(p.name, name, p.default))
    return out


def dataset_options(cfg: RunConfig, cls):
    """``cls.Options`` (a dataclass) built from ``cfg``'s ``dataset.<data.name>.*`` options,
    each coerced to its field's type, then checked by its ``check()`` method if it has one;
    None for a dataset without ``Options``. Raises ConfigError naming the key."""
    return options_of_dataset(cfg.data.name, cfg.dataset.get(cfg.data.name, {}), cls)


def options_of_dataset(name: str, given: dict, cls):
    """:func:`dataset_options` for dataset ``name`` (plugin class ``cls``) and its ``given``
    options."""
    spec = getattr(cls, "Options", None)
    if spec is None:
        if given:
            raise ConfigError(f"dataset {name!r} takes no options; got "
                              f"{', '.join(f'dataset.{name}.{k}' for k in given)}")
        return None
    fields = {f.name for f in dataclasses.fields(spec)}
    hints = typing.get_type_hints(spec)
    values = {}
    for k, v in given.items():
        if k not in fields:
            raise unknown_option("dataset", name, k, fields)
        values[k] = coerce(f"dataset.{name}.{k}", v, hints[k])
    opts = spec(**values)
    if callable(getattr(opts, "check", None)):
        opts.check()
    return opts


def data_version(cfg: RunConfig, reg) -> str | None:
    """The version of the data ``cfg``'s dataset plugin makes from its options alone (its
    ``data_version`` attribute; None for data read from disk), part of a run's identity."""
    return getattr(reg.get("datasets", cfg.data.name).obj, "data_version", None)


def hashes(cfg: RunConfig, reg) -> dict:
    """``cfg``'s identity with its dataset plugin's data version: ``hash``, ``model_hash`` and the
    ``legacy`` hashes (:meth:`fusion_bench.config.RunConfig.legacy_hashes`)."""
    v = data_version(cfg, reg)
    return {"hash": cfg.hash(v), "model_hash": cfg.model_hash(v), "legacy": cfg.legacy_hashes(v),
            "data_version": v}


def check(cfg: RunConfig, reg) -> dict[str, dict]:
    """Check every option of every plugin ``cfg`` uses, reading no data: unknown plugin names and
    options (with "did you mean"), wrong types, a dataset's out-of-range options, per-modality
    encoder widths. Return the checked options by kind (coerced, as the model is built with)."""
    unused_plugins(cfg, reg)
    out = {}
    for kind, name in cfg.used().items():
        entry = reg.get(KINDS[kind][0], name)
        if kind == "dataset":
            folds = getattr(entry.obj, "folds", 1)  # a dataset without folds has one split
            if not 0 <= cfg.data.fold < folds:
                raise ConfigError(f"data.fold is {cfg.data.fold}, but dataset {name!r} " + (
                    "has no cross-validation folds; leave data.fold at 0" if folds == 1 else
                    f"has folds 0..{folds - 1}"))
            opts = dataset_options(cfg, entry.obj)
            out[kind] = dataclasses.asdict(opts) if opts is not None else {}
            continue
        given = cfg.options(kind)
        params, takes_kwargs = keyword_options(entry.obj, skip=KINDS[kind][1])
        for option in given:
            if option not in params and not takes_kwargs and option in cfg.shorthand.get(kind, ()):
                raise short_form_error(kind, name, option, reg)
        out[kind] = plugin_options(kind, name, entry.obj, given, skip=KINDS[kind][1])
    check_channels(cfg, reg.get("encoders", cfg.model.encoder).obj)
    return out


def unused_plugins(cfg: RunConfig, reg) -> None:
    """Options given for a plugin this run does not use (one sweep carries several fusions'
    options): the plugin must exist (a misspelt ``fusion.rcmaa.iterations`` would otherwise be
    ignored in silence) and have those options."""
    from .config import PRESET_ENCODER_OPTIONS, PRESET_FUSION_OPTIONS

    preset = {"fusion": PRESET_FUSION_OPTIONS, "encoder": PRESET_ENCODER_OPTIONS}
    used = cfg.used()
    for kind, (rkind, skip) in KINDS.items():
        for name, given in getattr(cfg, kind).items():
            if used.get(kind) == name or not given:
                continue
            from_presets = [t.get(name, {}) for t in preset.get(kind, {}).values()]
            if name not in reg.entries[rkind] and any(given.items() <= p.items() for p in from_presets):
                continue  # a preset's options for a plugin that is not loaded: not the user's
            if name not in reg.entries[rkind]:
                near = difflib.get_close_matches(name, reg.names(rkind), n=3)
                key = f"{kind}.{name}.{next(iter(given))}"
                raise ConfigError(
                    f"{key}: there is no {kind} {name!r}"
                    + (f"; did you mean {' or '.join(f'{kind}.{n}' for n in near)}?" if near else "")
                    + f" (see `fusion-bench list {rkind}`)")
            obj = reg.get(rkind, name).obj
            if kind == "dataset":
                options_of_dataset(name, given, obj)
            else:
                plugin_options(kind, name, obj, given, skip=skip)


def short_form_error(kind: str, name: str, option: str, reg) -> ConfigError:
    """A short-form option (``fusion.<option>``, meaning the chosen plugin) that this run's plugin
    lacks: where other plugins of the kind have it (one fusion of a sweep over several), say how
    to give it to them alone; else the plain unknown-option error with its "did you mean"."""
    rkind, skip = KINDS[kind]
    have = [n for n in reg.names(rkind) if option in keyword_options(reg.get(rkind, n).obj, skip)[0]]
    if not have:
        return unknown_option(kind, name, option, keyword_options(reg.get(rkind, name).obj, skip)[0])
    use = " or ".join(f"{kind}.{n}.{option}" for n in have)
    return ConfigError(
        f"{kind} {name!r} has no option {option!r}: {kind}.{option} sets the option of every chosen "
        f"{kind}; to set it for {', '.join(have)} alone, use --set {use}=... (TOML: [{kind}.{have[0]}])")


def check_channels(cfg: RunConfig, encoder) -> None:
    """``model.channels`` (a width per modality) needs modalities of the run and an encoder with
    a ``channels`` option."""
    from .config import PRESETS

    widths = cfg.model.channels
    if not widths:
        return
    unknown = set(widths) - set(cfg.data.modalities)
    if unknown:
        raise ConfigError(f"model.channels names {sorted(unknown)}, which are not among "
                          f"data.modalities {list(cfg.data.modalities)}")
    params, takes_kwargs = keyword_options(encoder)
    if "channels" not in params and not takes_kwargs:
        text = ",".join(f"{k}:{v}" for k, v in widths.items())
        preset = [name for name, p in PRESETS.items() if p.get("model.channels") == widths]
        origin = f" (--preset {preset[0]} sets it)" if preset else ""
        raise ConfigError(
            f"model.channels={text} gives each modality's encoder a width{origin}, but "
            f"encoder {cfg.model.encoder!r} has no option 'channels'; clear it with "
            f"--set model.channels= or use an encoder with a width (tcn, lstm)"
        )


def options_table(reg, kind: str) -> str:
    """The options of every registered plugin of ``kind`` (registry kind, e.g. ``fusions``): one
    row per option, ``--set`` key, type and default."""
    from tabulate import tabulate

    if kind not in {k for k, _ in KINDS.values()}:
        return f"{kind} have no options set through the configuration"
    short = next(k for k, (rk, _) in KINDS.items() if rk == kind)
    rows = []
    for name in reg.names(kind):
        opts = plugin_parameters(short, reg.get(kind, name).obj)
        rows += [[f"{short}.{name}.{o.name}", o.type, format_default(o.default)] for o in opts]
        if not opts:
            rows.append([f"{short}.{name}", "", "(no options)"])
    return tabulate(rows, headers=["option", "type", "default"], disable_numparse=True)


def format_default(default) -> str:
    return "(required)" if default is inspect.Parameter.empty else repr(default)


def _field_default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return inspect.Parameter.empty


def _type_name(ann) -> str:
    if ann is None:
        return ""
    if typing.get_origin(ann) in (typing.Union, types.UnionType):  # one spelling on every Python:
        # 3.10's get_type_hints turns `int | None = None` into Optional[int]
        return " | ".join("None" if a is type(None) else _type_name(a) for a in typing.get_args(ann))
    if isinstance(ann, type) and typing.get_origin(ann) is None:  # 3.10: tuple[int] is a type
        return ann.__name__
    return str(ann).replace("typing.", "")


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
