"""``fusion-bench new-plugin``: the package it writes passes its own tests as written, declares
the entry point that fusion-bench finds once installed, and bad names or an existing folder are
one line, exit 2, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fusion_bench import __version__, plugins
from fusion_bench.scaffold import DISTRIBUTION, PluginNames, render

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "fusion_bench" / "templates" / "plugin"


def _toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads(path.read_text())


def _env(*paths) -> dict:
    """This environment with ``paths`` (then this checkout) first on the import path."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, paths), str(ROOT)])}


def _pytest(package: Path, *paths) -> subprocess.CompletedProcess:
    """The generated package's own tests, run by pytest from inside it (its pyproject's
    settings, not ours), with ``paths`` on the import path."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"],
                          cwd=package, env=_env(*paths), capture_output=True, text=True,
                          timeout=600)


@pytest.fixture
def generated(cli_run, tmp_path) -> Path:
    code, out, err = cli_run("new-plugin", "gated-sum", "--dir", tmp_path / "work")
    assert code == 0, err
    package = tmp_path / "work" / "fusion-bench-gated-sum"
    assert f"wrote {package}/" in out and "pip install -e ." in out
    return package


def test_names_of_a_plugin():
    n = PluginNames.of("gated-sum")
    assert (n.name, n.dist, n.package, n.cls) == (
        "gated_sum", "fusion-bench-gated-sum", "fusion_bench_gated_sum", "GatedSum")
    n = PluginNames.of("my_fusion2")
    assert (n.name, n.dist, n.cls) == ("my_fusion2", "fusion-bench-my-fusion2", "MyFusion2")
    assert PluginNames.of("none").cls == "NoneFusion"  # `class None` would not compile


def test_the_generated_package_passes_its_own_tests(generated):
    """Not installed: its source folder on the path; the entry-point test skips (the slow test
    below installs it, and that test then runs)."""
    assert sorted(str(p.relative_to(generated)) for p in generated.rglob("*") if p.is_file()) == [
        ".gitignore", "README.md", "pyproject.toml", "src/fusion_bench_gated_sum/__init__.py",
        "tests/test_fusion_bench_gated_sum.py"]
    result = _pytest(generated, generated / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed, 1 skipped" in result.stdout, result.stdout
    assert "not installed" in result.stdout  # the skip is the uninstalled one, nothing else


def test_the_generated_pyproject_declares_the_entry_point(generated):
    project = _toml(generated / "pyproject.toml")["project"]
    assert project["name"] == "fusion-bench-gated-sum"
    # the entry point names the module holding the hook, in fusion-bench's group
    assert project["entry-points"] == {plugins.GROUP: {"gated_sum": "fusion_bench_gated_sum"}}
    assert project["dependencies"][0] == f"{DISTRIBUTION}>={__version__}"
    assert _toml(generated / "pyproject.toml")["tool"]["setuptools"]["packages"]["find"] == {
        "where": ["src"]}
    source = (generated / "src" / "fusion_bench_gated_sum" / "__init__.py").read_text()
    assert "class GatedSum(nn.Module):" in source
    assert 'register("gated_sum", GatedSum)' in source


def test_the_generated_module_registers_its_class(generated, monkeypatch):
    """Imported from the generated folder, its hook registers the class the entry point's
    module holds, under the plugin's name, and the class keeps the contract."""
    from fusion_bench.plugins import load_registry
    from fusion_bench.testing import check_fusion

    monkeypatch.syspath_prepend(str(generated / "src"))
    monkeypatch.delitem(sys.modules, "fusion_bench_gated_sum", raising=False)
    reg = load_registry(["fusion_bench_gated_sum"], strict=True, entry_points=False)
    entry = reg.get("fusions", "gated_sum")
    assert entry.obj.__name__ == "GatedSum" and entry.obj.__module__ == "fusion_bench_gated_sum"
    assert entry.description == "sigmoid-gated sum of the projected modalities"
    check_fusion(entry.obj, dims={"visual": 5, "audio": 3}, width=2)
    monkeypatch.delitem(sys.modules, "fusion_bench_gated_sum")


def test_the_generated_code_is_ruff_clean(generated):
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    # the project's rules, from inside the package (its src/ is first-party there)
    result = subprocess.run([ruff, "check", "--isolated", "--no-cache", "--select", "E,F,W,I,B,UP",
                             "--line-length", "100", "--target-version", "py310", "."],
                            cwd=generated, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name, why", [
    ("rcma", "built-in fusion"),
    ("cross-attention", "built-in fusion"),  # cross_attention once '-' is '_'
    ("2fast", "starting with"),
    ("Gated", "lowercase"),
    ("my.fusion", "lowercase"),
    ("../evil", "lowercase"),  # no path outside --dir
    ("naïve", "lowercase"),
    ("", "lowercase"),
])
def test_a_bad_name_is_one_line_and_writes_nothing(cli_run, tmp_path, name, why):
    code, out, err = cli_run("new-plugin", name, "--dir", tmp_path)
    assert code == 2 and err.startswith("Error: plugin name") and why in err
    assert len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_left_alone(cli_run, tmp_path):
    mine = tmp_path / "fusion-bench-gated-sum"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    code, out, err = cli_run("new-plugin", "gated_sum", "--dir", tmp_path)
    assert code == 2 and "already exists; nothing was written" in err
    assert len(err.strip().splitlines()) == 1
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fusion-bench-gated-sum"]  # no staging left


def test_a_dir_that_is_a_file_is_one_line(cli_run, tmp_path):
    (tmp_path / "f").write_text("x")
    code, out, err = cli_run("new-plugin", "gated", "--dir", tmp_path / "f")
    assert code == 2 and "is a file" in err and len(err.strip().splitlines()) == 1


def test_a_second_plugin_beside_the_first_leaves_no_staging_folder(cli_run, tmp_path):
    for name in ("one", "two"):
        assert cli_run("new-plugin", name, "--dir", tmp_path)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fusion-bench-one", "fusion-bench-two"]


def test_the_dependency_is_this_projects_distribution():
    """The name generated packages depend on is the one pyproject gives this project."""
    assert DISTRIBUTION == _toml(ROOT / "pyproject.toml")["project"]["name"]


def test_every_template_is_package_data_and_used():
    """A wheel carries the templates (pyproject's package-data patterns match each), and each
    template is rendered into the package."""
    patterns = _toml(ROOT / "pyproject.toml")["tool"]["setuptools"]["package-data"]["fusion_bench"]
    # setuptools globs each pattern in the package's folder ('*' stays within one folder)
    covered = {p for pattern in patterns for p in (ROOT / "fusion_bench").glob(pattern)}
    templates = set(TEMPLATES.iterdir())
    assert templates and templates <= covered, patterns
    assert len(render(PluginNames.of("x"))) == len(templates)


@pytest.mark.slow
def test_pip_installs_the_generated_package_and_fusion_bench_finds_it(generated, tmp_path):
    """A real install (into a folder; no network: the build backend is this environment's
    setuptools): `fusion-bench list fusions` shows it from its entry point, and its own tests,
    run against the installed copy, all pass, the entry-point one included."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(generated)], check=True)
    listing = subprocess.run([sys.executable, "-m", "fusion_bench", "list", "fusions"],
                             env=_env(site), capture_output=True, text=True, check=True).stdout
    row = next(line.split() for line in listing.splitlines() if line.startswith("gated_sum "))
    assert row[-1] == "gated_sum"  # the plugin column: the entry point's name
    store = tmp_path / "store"  # and it trains: a tiny run through the harness, recorded
    subprocess.run([sys.executable, "-m", "fusion_bench", "run", "--fusion", "gated_sum",
                    "--out", str(store), "--quiet", "--no-model",
                    "--set", "dataset.synthetic.n_train=4", "--set", "dataset.synthetic.n_val=2",
                    "--set", "dataset.synthetic.n_test=2", "--set", "train.steps=4",
                    "--set", "train.eval_every=2"], env=_env(site), check=True,
                   capture_output=True, text=True)
    (path,) = (store / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert record["plugins"]["fusion"]["name"] == "gated_sum"
    assert record["plugins"]["fusion"]["plugin"] == "gated_sum"
    shutil.rmtree(generated / "src")  # the tests must import the installed copy
    result = _pytest(generated, site)
    assert result.returncode == 0 and "4 passed" in result.stdout, result.stdout + result.stderr


@pytest.mark.slow
def test_a_wheel_of_fusion_bench_carries_the_templates(tmp_path):
    """Built from a copy of the checkout (pip builds in place)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "fusion_bench", source / "fusion_bench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(tmp_path / "dist"), str(source)],
                   check=True)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in TEMPLATES.iterdir():
        assert f"fusion_bench/templates/plugin/{template.name}" in names
