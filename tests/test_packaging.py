"""What pip sees: the distribution's own name (``fusion-bench`` on PyPI is another project with
the same import name), every install hint naming it with an extra that exists, the plugin
package depending on it, the metadata, and TOML configs on Python 3.10 (tomli)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from fusion_bench.config import load_toml
from fusion_bench.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DIST = "fusion-bench-affect"


def toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads(path.read_text())


PROJECT = toml(ROOT / "pyproject.toml")["project"]

#: every text a user reads an install command in: the package's messages and help, the docs
HINT_FILES = sorted(
    [*(ROOT / "fusion_bench").rglob("*.py"), *(ROOT / "docs").rglob("*.md"),
     *(ROOT / "plugins").rglob("*.md"), *(ROOT / "plugins").rglob("*.py"),
     *(ROOT / "scripts").glob("*"), ROOT / "README.md", ROOT / "CONTRIBUTING.md",
     ROOT / "leaderboards" / "README.md", ROOT / ".ci" / "run", ROOT / "tox.ini"])
#: the name as a requirement: fusion-bench, then extras, a version specifier, a quote or the end
BARE = re.compile(r"""(?<![\w./-])fusion[-_.]bench(?=\[|[<>=~!]|["'`]|\s*$)""", re.I | re.M)
EXTRA_HINT = re.compile(rf"pip install [\"']?{DIST}\[([\w,-]+)\]")
CHECKOUT_EXTRAS = re.compile(r"""pip install .*-e ["']?\.\[([\w,-]+)\]""")  # -e ".[a,b]"


def hints() -> list[tuple[str, str]]:
    """(file, line) of every line holding ``pip install``."""
    return [(str(p.relative_to(ROOT)), line) for p in HINT_FILES if p.is_file()
            for line in p.read_text(errors="replace").splitlines() if "pip install" in line]


def test_the_distribution_has_its_own_name_and_keeps_the_command_and_package():
    assert PROJECT["name"] == DIST
    assert PROJECT["scripts"] == {"fusion-bench": "fusion_bench.cli:entry"}
    assert toml(ROOT / "pyproject.toml")["tool"]["setuptools"]["packages"]["find"]["include"] == [
        "fusion_bench*"]


def test_no_install_hint_names_the_other_project():
    found = [(f, line.strip()) for f, line in hints()
             for cmd in line.split("pip install")[1:]
             if BARE.search(cmd.split("#")[0].split("`")[0])]  # the command, not what follows
    assert not found, f"install commands naming PyPI's fusion-bench (another project): {found}"


def test_the_bare_name_check_catches_what_it_must():
    """The pattern itself: the old hints match, the new name, the command and paths do not."""
    assert BARE.search('"fusion-bench[plots]"') and BARE.search("fusion-bench==0.1")
    assert BARE.search("'fusion-bench'") and BARE.search("pip install -U fusion-bench")
    assert BARE.search("pip install fusion_bench") and BARE.search('"fusion.bench[ray]"')
    for ok in ('"fusion-bench-affect[plots]"', "fusion-bench run", "./plugins/fusion-bench-mult",
               "~/.cache/fusion-bench/weights"):
        assert not BARE.search(ok), ok


def test_every_hint_of_an_extra_names_this_distribution_and_an_extra_it_has():
    extras = set(PROJECT["optional-dependencies"])
    named = [(f, m.group(1)) for f, line in hints() for m in EXTRA_HINT.finditer(line)]
    in_package = {e for f, e in named if f.startswith("fusion_bench")}
    assert {"plots", "ray"} <= in_package  # the package's own hints (plots.py, sweep.py, help)
    named += [(f, m.group(1)) for f, line in hints() for m in CHECKOUT_EXTRAS.finditer(line)]
    assert ("README.md", "dev") in named and any(f == "README.md" and "visual" in e
                                                  for f, e in named)
    unknown = [(f, e) for f, e in named for x in e.split(",") if x not in extras]
    assert not unknown, f"hints name extras pyproject.toml does not have: {unknown}"


def test_the_plugin_package_depends_on_this_distribution():
    plugin = toml(ROOT / "plugins" / "fusion-bench-mult" / "pyproject.toml")["project"]
    names = [re.split(r"[\s<>=~!;\[]", d, maxsplit=1)[0] for d in plugin["dependencies"]]
    assert DIST in names and "fusion-bench" not in names


def test_metadata_declares_python_versions_and_tomli_for_310():
    assert PROJECT["requires-python"] == ">=3.10"
    versions = {c.rsplit(":: ", 1)[1] for c in PROJECT["classifiers"]
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert {"3.10", "3.11", "3.12"} <= versions
    assert "tomli>=1.1; python_version < '3.11'" in PROJECT["dependencies"]


def test_the_dev_extra_has_no_ray_and_ci_installs_what_its_tests_need():
    assert not any(d.startswith("ray") for d in PROJECT["optional-dependencies"]["dev"])
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"pip install .*-e \"\.\[dev,ray\]\"", ci), "CI runs the Ray executor's test"


def test_toml_config_on_python_310_reads_with_tomli(tmp_path, monkeypatch):
    """Python 3.10 has no tomllib: load_toml takes tomli (a declared dependency there)."""
    tomllib = pytest.importorskip("tomllib")  # the fake tomli below wraps it

    calls = []

    class FakeDecodeError(ValueError):
        pass

    def load(f):
        calls.append(f.name)
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise FakeDecodeError(str(e)) from None

    fake = types.ModuleType("tomli")
    fake.load, fake.TOMLDecodeError = load, FakeDecodeError  # type: ignore[attr-defined]
    monkeypatch.setattr(sys, "version_info", (3, 10, 13, "final", 0))
    monkeypatch.setitem(sys.modules, "tomli", fake)
    monkeypatch.setitem(sys.modules, "tomllib", None)  # as on 3.10: `import tomllib` fails
    good = tmp_path / "x.toml"
    good.write_text("[train]\nlr = 0.5\n[fusion.rcma]\niterations = 3\n")
    assert load_toml(good) == {"train.lr": 0.5, "fusion.rcma.iterations": 3}
    assert calls == [str(good)]
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):  # tomli's error class
        load_toml(bad)
