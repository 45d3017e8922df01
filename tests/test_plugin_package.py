"""plugins/fusion-bench-mult: a fusion shipped as its own installable package (entry point)."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fusion_bench import plugins
from fusion_bench.plugins import load_registry
from fusion_bench.testing import check_fusion

from .conftest import TINY

PACKAGE = Path(__file__).resolve().parent.parent / "plugins" / "fusion-bench-mult"


def _declared_entry_points():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    return project["entry-points"][plugins.GROUP]


@pytest.fixture
def as_installed(monkeypatch):
    """The package's own declared entry points, its sources importable: what pip gives."""
    monkeypatch.syspath_prepend(str(PACKAGE / "src"))
    eps = [importlib.metadata.EntryPoint(name, value, plugins.GROUP)
           for name, value in _declared_entry_points().items()]
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points",
                        lambda group: eps if group == plugins.GROUP else [])


def test_the_declared_entry_point_registers_mult_which_keeps_the_contract(as_installed):
    reg = load_registry()
    entry = reg.get("fusions", "mult")
    assert entry.plugin == "mult" and "Tsai" in entry.reference
    check_fusion(entry.obj)  # shapes, gradients, masks, missing modality, determinism, batch
    check_fusion(entry.obj, dims={"visual": 8, "audio": 6}, width=16, heads=2, layers=1)


def test_mult_trains_from_the_cli_without_a_plugin_flag(as_installed, cli_run, tmp_path):
    code, out, err = cli_run("run", "--fusion", "mult", "--set", "fusion.width=16", "--out",
                             tmp_path, *TINY)
    assert code == 0 and "test" in out, err
    code, out, err = cli_run("list", "fusions")
    assert code == 0 and "mult" in out


def test_mult_rejects_a_width_its_heads_cannot_split(as_installed):
    from fusion_bench_mult import MulT

    with pytest.raises(ValueError, match="multiple of 2 × heads"):
        MulT({"visual": 4, "audio": 3}, 16, width=30, heads=4)


@pytest.mark.slow
def test_pip_installs_the_package_and_fusion_bench_finds_it(tmp_path):
    """A real install (into a folder, no network: the build backend is the venv's setuptools)."""
    source, target = tmp_path / "source", tmp_path / "site"
    # a copy: pip builds a local folder in place (build/, *.egg-info), not in our tree
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(source)], check=True)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from fusion_bench.plugins import load_registry; "
            "print(load_registry().get('fusions', 'mult').plugin)")
    out = subprocess.run([sys.executable, "-c", code, str(target)], check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "mult"
