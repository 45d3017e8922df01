"""A new plugin package from templates (``fusion-bench new-plugin NAME``): the plugin authors'
path from nothing to an installable package that fusion-bench finds.

:func:`write_plugin` writes ``<folder>/fusion-bench-<name>/``: ``pyproject.toml`` with the entry
point (group ``fusion_bench``), ``src/fusion_bench_<name>/__init__.py`` with a working fusion
and its ``register_fusions`` hook, ``tests/`` running the contract kit
(:mod:`fusion_bench.testing`), a README and a ``.gitignore``. The package passes its own tests
as written. The templates are package data (``fusion_bench/templates/plugin/*.tmpl``,
:class:`string.Template` placeholders such as ``${name}``), listed in pyproject's package-data
so that a wheel carries them.

Standard library only, and no torch: the generated code imports torch, this module does not.
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import string
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import __version__
from .builtins import FUSIONS
from .errors import FusionBenchError
from .files import atomic_write_text

#: the distribution a generated package depends on (pyproject's ``project.name``; a test keeps
#: them equal): PyPI's "fusion-bench" is another project with the same import name
DISTRIBUTION = "fusion-bench-affect"
#: the kinds of plugin a scaffold can be made for
KINDS = ("fusion",)
_NAME = re.compile(r"[a-z][a-z0-9_]*")

#: template file → where it goes in the package, ``{package}`` filled in
_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "gitignore.tmpl": ".gitignore",
    "__init__.py.tmpl": "src/{package}/__init__.py",
    "test.py.tmpl": "tests/test_{package}.py",
}


@dataclass(frozen=True)
class PluginNames:
    """Every name a plugin called ``name`` goes by, e.g. for ``gated-sum``: the fusion
    ``gated_sum`` (also the entry point's name), the distribution and folder
    ``fusion-bench-gated-sum``, the import package ``fusion_bench_gated_sum`` and the class
    ``GatedSum``."""

    name: str
    dist: str
    package: str
    cls: str

    @classmethod
    def of(cls, name: str) -> PluginNames:
        """The names of plugin ``name``; :class:`FusionBenchError` (one line, what to do) for a
        name that is not lowercase letters, digits, ``-`` and ``_`` starting with a letter, or
        that is a built-in fusion's."""
        fusion = name.replace("-", "_")
        if not _NAME.fullmatch(fusion):
            raise FusionBenchError(
                f"plugin name {name!r}: use lowercase letters, digits, '-' or '_', starting with "
                f"a letter (it names the fusion, the package fusion_bench_<name> and the folder), "
                f"e.g. gated-sum")
        if fusion in FUSIONS:
            raise FusionBenchError(
                f"plugin name {name!r}: {fusion!r} is a built-in fusion of fusion-bench and "
                f"would clash with it; choose another name")
        camel = "".join(part.capitalize() for part in fusion.split("_"))
        if keyword.iskeyword(camel):  # none, true, false: None is no class name
            camel += "Fusion"
        return cls(name=fusion, dist="fusion-bench-" + fusion.replace("_", "-"),
                   package="fusion_bench_" + fusion, cls=camel)


def render(names: PluginNames) -> dict[str, str]:
    """The package's files: relative path → text, from the templates."""
    values = {"name": names.name, "dist": names.dist, "package": names.package,
              "cls": names.cls, "requirement": DISTRIBUTION, "version": __version__}
    folder = resources.files("fusion_bench") / "templates" / "plugin"
    return {target.format(package=names.package):
            string.Template((folder / template).read_text(encoding="utf-8")).substitute(values)
            for template, target in _FILES.items()}


def write_plugin(name: str, folder: str | os.PathLike = ".", kind: str = "fusion") -> Path:
    """Write the package of plugin ``name`` as ``<folder>/fusion-bench-<name>/``; return its path.

    The package is written in a hidden folder beside it and renamed into place, so an
    interruption leaves no half-made package. An existing target is never touched: that is an
    error, as is a ``folder`` that is a file, or a ``kind`` other than those in :data:`KINDS`.
    """
    if kind not in KINDS:
        raise FusionBenchError(f"--kind {kind!r}: new-plugin makes {', '.join(KINDS)} plugins")
    names = PluginNames.of(name)
    parent = Path(folder)
    if parent.exists() and not parent.is_dir():
        raise FusionBenchError(f"--dir {str(parent)!r} is a file; give a folder to create the "
                               f"package in")
    target = parent / names.dist
    if target.exists() or target.is_symlink():
        raise FusionBenchError(f"{str(target)!r} already exists; nothing was written (remove it, "
                               f"or give another --dir or name)")
    files = render(names)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{names.dist}.", suffix=".tmp"))
    try:
        for rel, text in files.items():
            atomic_write_text(staging / rel, text)
        # mkdtemp made it 0700; the package gets the mode a plain mkdir would give it
        mask = os.umask(0)
        os.umask(mask)
        staging.chmod(0o777 & ~mask)
        try:
            os.rename(staging, target)  # fails on a target that appeared since (unless empty)
        except OSError as e:
            raise FusionBenchError(f"{str(target)!r} could not be created ({e.strerror}); "
                                   f"nothing was written") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone after the rename; else half-made
    return target
