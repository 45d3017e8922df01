"""The plugin manager and the registry of named components it fills.

Load order: the built-ins (:mod:`fusion_bench.builtins`), then the ``fusion_bench`` entry points of
installed packages, then each ``--plugin FILE_OR_MODULE``. ``FUSION_BENCH_PLUGINS`` (comma-separated
plugin names) is an allow-list for entry points and ``--plugin`` modules; names in
``FUSION_BENCH_DISABLE_PLUGINS`` are never loaded. A plugin that fails to import, fails validation
or raises in a hook is reported and skipped (``strict=True`` makes it fatal); two plugins
registering one name is always an error naming both.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pluggy

from . import __version__, hookspecs
from .errors import PluginError

GROUP = "fusion_bench"
KINDS = ("fusions", "encoders", "backbones", "datasets", "metrics")
BUILTIN = "fusion_bench.builtins"


class Entry:
    """One registered component. Registered as an object, or as a ``"module:Class"`` string
    that is imported the first time :attr:`obj` is read (built-ins: listing them imports no
    torch). A lazy entry's description and reference, when not given, are read from the class's
    source (its ``description = "..."`` line) without importing the module, the first time one
    of them is read: a run reads neither, so it parses no plugin's source."""

    def __init__(self, kind: str, name: str, obj: object, plugin: str,
                 description: str | None = None, reference: str | None = None):
        self.kind, self.name, self.plugin = kind, name, plugin
        self._obj = obj
        self._given = {"description": description, "reference": reference}
        self._source = obj if isinstance(obj, str) else None  # a lazy entry's "module:Class"
        self._meta: dict[str, str] | None = None  # its source's attributes, once read

    def _attribute(self, key: str) -> str:
        given = self._given[key]
        if given is not None:
            return given
        if self._source is None:
            return getattr(self._obj, key, "")
        if self._meta is None:
            self._meta = _source_attributes(self._source)
        return self._meta.get(key, "")

    @property
    def description(self) -> str:
        return self._attribute("description")

    @property
    def reference(self) -> str:
        return self._attribute("reference")

    @property
    def obj(self):
        if isinstance(self._obj, str):
            module, _, attr = self._obj.partition(":")
            try:
                self._obj = getattr(importlib.import_module(module), attr)
            except (Exception, SystemExit) as e:  # noqa: BLE001 - any failure at import
                raise PluginError(f"{self.kind[:-1]} {self.name!r} ({self.plugin}): cannot load "
                                  f"{self._obj}: {type(e).__name__}: {e}") from None
        return self._obj

    def __repr__(self) -> str:
        return f"Entry({self.kind}:{self.name} from {self.plugin})"


def _source_attributes(path: str) -> dict[str, str]:
    """String class attributes of ``"module:Class"`` read from the module's source (no import
    of the module itself; its parent packages are imported to find it). For a function: the
    string arguments of its decorator call (``@metric("description", ...)``: the first is the
    description) and module-level ``fn.description = "..."`` assignments."""
    module, _, cls = path.partition(":")
    try:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:  # not found, or a namespace package
            return {}
        source = Path(spec.origin).read_text(encoding="utf-8")
        tree = ast.parse(source)
    except (ImportError, AttributeError, OSError, TypeError, ValueError, SyntaxError):
        return {}
    def text(value) -> str | None:
        return value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else None

    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            return {t.id: v for stmt in node.body if isinstance(stmt, ast.Assign)
                    for t in stmt.targets if isinstance(t, ast.Name)
                    and (v := text(stmt.value)) is not None}
        if isinstance(node, ast.FunctionDef) and node.name == cls:
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and deco.args and text(deco.args[0]) is not None:
                    out["description"] = text(deco.args[0]) or ""
        if isinstance(node, ast.Assign) and (v := text(node.value)) is not None:
            for t in node.targets:
                if (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                        and t.value.id == cls and t.attr in ("description", "reference")):
                    out[t.attr] = v
    return out


@dataclass
class PluginInfo:
    name: str
    version: str
    source: str  # "builtin", "entry point <dist>", "--plugin <path>"
    registers: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Failure:
    plugin: str
    error: str


def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


class Registry:
    """Named fusions, encoders, backbones, datasets and metrics, with the plugins that provided
    them."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        self.plugins: dict[str, PluginInfo] = {}
        self.failures: list[Failure] = []

    # -- loading --------------------------------------------------------------------------------
    def _fail(self, plugin: str, error: str) -> None:
        if self.strict:
            raise PluginError(f"plugin {plugin!r} failed: {error} (drop --strict-plugins to skip it)")
        self.failures.append(Failure(plugin, error))

    def add(self, module, name: str, version: str, source: str) -> None:
        """Register ``module`` (an object with hookimpls) and run its register hooks."""
        if name in self.plugins:
            raise PluginError(
                f"two plugins are named {name!r} ({self.plugins[name].source} and {source}); "
                "rename one or disable it with FUSION_BENCH_DISABLE_PLUGINS"
            )
        try:
            self.pm.register(module, name=name)
            self.pm.check_pending()
        except Exception as e:  # pluggy validation: unknown hook, wrong argument names
            if self.pm.is_registered(module):
                self.pm.unregister(module)
            self._fail(name, f"{type(e).__name__}: {e}")
            return
        info = PluginInfo(name, version, source)
        staged: list[Entry] = []
        for kind in KINDS:
            for impl in getattr(self.pm.hook, f"register_{kind}").get_hookimpls():
                if impl.plugin_name != name:
                    continue

                def register(reg_name, obj, description=None, reference=None, _kind=kind):
                    staged.append(Entry(_kind, str(reg_name), obj, name, description, reference))

                try:
                    impl.function(register=register)
                except Exception as e:
                    self.pm.unregister(module)
                    self._fail(name, f"register_{kind} raised {type(e).__name__}: {e}")
                    return
        for entry in staged:  # all-or-nothing: a plugin that failed above registered nothing
            other = self.entries[entry.kind].get(entry.name)
            if other is not None:
                raise PluginError(
                    f"{entry.kind[:-1]} {entry.name!r} is registered by two plugins: "
                    f"{other.plugin!r} and {name!r}; uninstall or disable one "
                    f"(FUSION_BENCH_DISABLE_PLUGINS={name})"
                )
            self.entries[entry.kind][entry.name] = entry
            info.registers.setdefault(entry.kind, []).append(entry.name)
        self.plugins[name] = info

    def load_entry_points(self, allow: set[str] | None, deny: set[str]) -> None:
        for ep in importlib.metadata.entry_points(group=GROUP):
            if ep.name in deny or (allow is not None and ep.name not in allow):
                continue
            dist = getattr(ep, "dist", None)
            version = dist.version if dist is not None else "?"
            try:
                module = ep.load()
            except (Exception, SystemExit) as e:  # a plugin calling sys.exit() at import too
                self._fail(ep.name, f"import failed: {type(e).__name__}: {e}")
                continue
            self.add(module, ep.name, version, f"entry point {dist.name if dist else ep.value}")

    def load_path(self, spec: str, allow: set[str] | None, deny: set[str]) -> None:
        """Load ``spec``, a ``.py`` file or an importable module name."""
        path = Path(spec)
        name = path.stem if spec.endswith(".py") else spec
        # asked for by name, yet filtered out: said (a failure), not silently dropped
        if name in deny:
            self._fail(name, f"--plugin {spec} not loaded: FUSION_BENCH_DISABLE_PLUGINS lists "
                             f"{name!r}; remove it from that list to load the plugin")
            return
        if allow is not None and name not in allow:
            self._fail(name, f"--plugin {spec} not loaded: FUSION_BENCH_PLUGINS (the allow-list) "
                             f"does not list {name!r}; add it to load the plugin")
            return
        try:
            if spec.endswith(".py") or os.sep in spec:
                if not path.is_file():
                    raise FileNotFoundError(f"no such file {spec!r}")
                mod_name = f"fusion_bench_plugin_{name}"
                file_spec = importlib.util.spec_from_file_location(mod_name, path)
                if file_spec is None or file_spec.loader is None:  # no loader for its suffix
                    raise ImportError(f"{spec!r} is not a Python source file; name it "
                                      f"{path.stem}.py")
                module = importlib.util.module_from_spec(file_spec)
                sys.modules[mod_name] = module
                try:
                    file_spec.loader.exec_module(module)
                except BaseException:
                    sys.modules.pop(mod_name, None)
                    raise
            else:
                module = importlib.import_module(spec)
        except (Exception, SystemExit) as e:  # a plugin calling sys.exit() at import too
            self._fail(name, f"import of {spec!r} failed: {type(e).__name__}: {e}")
            return
        if not any(self.pm.parse_hookimpl_opts(module, attr) for attr in dir(module)):
            # e.g. a folder, imported as a namespace package: loaded, it would do nothing unseen
            self._fail(name, f"--plugin {spec} has no function marked @fusion_bench.hookimpl "
                             "(register_fusions, ...): nothing to load from it")
            return
        self.add(module, name, str(getattr(module, "__version__", "-")), f"--plugin {spec}")

    # -- lookup ---------------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Entry:
        """The entry ``name`` of ``kind``; an unknown name raises with a "did you mean" list."""
        try:
            return self.entries[kind][name]
        except KeyError:
            pass
        known = self.names(kind)
        near = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        raise PluginError(
            f"unknown {kind[:-1]} {name!r}; {hint}Available: {', '.join(known) or 'none'} "
            f"(see `fusion-bench list {kind}`)"
        )


def load_registry(extra: tuple[str, ...] | list[str] = (), strict: bool = False,
                  entry_points: bool = True) -> Registry:
    """Build a registry: built-ins, entry points, then each of ``extra`` (files or modules)."""
    allow = _env_list("FUSION_BENCH_PLUGINS")
    deny = _env_list("FUSION_BENCH_DISABLE_PLUGINS") or set()
    reg = Registry(strict=strict)
    if "builtins" not in deny:
        from . import builtins

        reg.add(builtins, "builtins", __version__, "builtin")
    if entry_points:
        reg.load_entry_points(allow, deny)
    for spec in extra:
        reg.load_path(spec, allow, deny)
    return reg
