"""Config keys and their values: which keys exist, typing a value given as text (``--set``) or
in TOML, setting it on a :class:`RunConfig`, and reading a TOML file."""

from __future__ import annotations

import dataclasses
import difflib
import sys
import typing
from pathlib import Path

from ..errors import ConfigError
from .schema import PLUGIN_KINDS, RunConfig

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
            pairs: list[tuple[typing.Any, typing.Any]]
            if isinstance(value, dict):
                pairs = list(value.items())
            else:
                split = [p.split(":", 1) for p in str(value).split(",") if p.strip()]
                if any(len(p) != 2 for p in split):
                    raise ValueError
                pairs = [(p[0], p[1]) for p in split]
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
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {str(p)!r} is a folder; give the TOML file in it")
    if not p.exists():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    if not p.is_file():  # a pipe (<(...)) reads once, and a sweep reads the file per run
        raise ConfigError(f"config file {str(p)!r} is not a regular file (a pipe or a device); "
                          "give a TOML file")
    try:
        with p.open("rb") as f:
            if f.read(3) != b"\xef\xbb\xbf":  # the byte-order mark some Windows editors write
                f.seek(0)
            return flatten(tomllib.load(f))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte {e.start}); TOML files are UTF-8") from None
    except OSError as e:
        raise ConfigError(f"config file {str(p)!r} cannot be read: {e.strerror or e}") from None


def parse_set(items: typing.Iterable[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, e.g. --set train.lr=0.001; got {item!r}")
        out.append((key.strip(), value))
    return out
