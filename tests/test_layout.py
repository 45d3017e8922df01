"""The package's shape: no import cycle, nothing imports upward from the floor, and the report
side and the registry listing import no torch (an import graph read from the source, as the
modules are written: relative and absolute imports, also those inside functions)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "fusion_bench"
#: the floor: modules that import nothing of fusion_bench but these
FLOOR = {
    "fusion_bench.files": set(),
    "fusion_bench.provenance": set(),
    "fusion_bench.errors": set(),
    "fusion_bench.events": set(),
    "fusion_bench.costs": set(),
    "fusion_bench.runtime": {"fusion_bench", "fusion_bench.errors", "fusion_bench.provenance"},
}
MAX_LINES = 450


def modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The fusion_bench modules ``name`` imports (the deepest known module of each name)."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for n in names:
            while n and n not in known:
                n = n.rpartition(".")[0]
            if n and n != name and not name.startswith(n + "."):
                found.add(n)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports(m, p, set(mods)) for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in g:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_planted_cycle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_fusion_bench():
    g = graph()
    assert "fusion_bench.runs" in g and "fusion_bench.train" in g["fusion_bench.runs"]
    assert cycles(g) == []


def test_the_floor_imports_nothing_above_it():
    g = graph()
    for mod, allowed in FLOOR.items():
        assert g[mod] <= allowed, f"{mod} imports {sorted(g[mod] - allowed)}"


def test_the_library_imports_no_click_outside_the_cli():
    for name, path in modules().items():
        if name.startswith("fusion_bench.cli"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "click" or n.startswith("click.") for n in names), name


def test_the_report_side_imports_nothing_of_the_training_side():
    g = graph()
    training = {"fusion_bench.runs", "fusion_bench.train", "fusion_bench.model",
                "fusion_bench.runtime", "fusion_bench.costs", "fusion_bench.bench"}
    for mod, deps in g.items():
        if mod.startswith("fusion_bench.report"):
            assert not {d for d in deps if any(d == t or d.startswith(t + ".") for t in training)}, mod


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_too_long(name):
    n = len(modules()[name].read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{name} has {n} lines; split it along its seams"


NO_TORCH = [
    "import fusion_bench.report.leaderboard, fusion_bench.report.bench_table, "
    "fusion_bench.report.render, fusion_bench.report.statistics, fusion_bench.report.robustness, "
    "fusion_bench.report.bench_report, fusion_bench.report.plots, fusion_bench.results, "
    "fusion_bench.report.table, fusion_bench.report.formats, fusion_bench.report.html_page, "
    "fusion_bench.report.frame, fusion_bench.api, fusion_bench.config.arguments",
    "from fusion_bench.cli import main; assert main(['list', 'fusions']) == 0",
    "from fusion_bench.cli import main; assert main(['list', 'metrics']) == 0",
    "from fusion_bench.cli import main; assert main(['plugins']) == 0",
    "from fusion_bench.cli import main; assert main(['--help']) == 0",
]


@pytest.mark.parametrize("code", NO_TORCH, ids=["report", "list-fusions", "list-metrics",
                                                 "plugins", "help"])
def test_reading_side_imports_no_torch(code):
    check = code + "\nimport sys\nassert 'torch' not in sys.modules, 'torch was imported'\n"
    p = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                       cwd=PKG.parent)
    assert p.returncode == 0, p.stderr[-2000:]


def test_leaderboard_command_imports_no_torch(tmp_path):
    """On the committed records: the table comes out, and torch never loads."""
    folder = PKG.parent / "leaderboards" / "synthetic-cpu"
    code = ("import sys\nfrom fusion_bench.cli import main\n"
            f"assert main(['leaderboard', '--out', {str(folder)!r}]) == 0\n"
            "assert 'torch' not in sys.modules\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=PKG.parent)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "| rcma" in p.stdout
