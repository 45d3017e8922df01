"""``python -m fusion_bench`` and what the installed package ships."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fusion_bench import __version__

ROOT = Path(__file__).resolve().parent.parent


def test_python_m_fusion_bench_runs_the_cli():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-m", "fusion_bench", "--version"], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"fusion-bench, version {__version__}"


def test_py_typed_is_shipped():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    assert (ROOT / "fusion_bench" / "py.typed").is_file()
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py.typed" in setuptools["package-data"]["fusion_bench"]
