"""CONTRIBUTING.md's layout drawing names every module of fusion_bench, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def drawn() -> set[str]:
    """The files of the drawing, as paths: a line ``  name/`` opens a folder at its indent."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    block = re.search(r"## Layout.*?```\n(fusion_bench/\n.*?)```", text, re.S).group(1)
    out, stack = set(), []  # (indent, folder)
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip())
        name = line.split()[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if name.endswith("/"):
            stack.append((indent, name.rstrip("/")))
        else:
            out.add("/".join([f for _, f in stack] + [name]))
    return out


def test_the_drawing_parser_reads_nesting():
    assert {"fusion_bench/plugins.py", "fusion_bench/cli/run.py",
            "fusion_bench/report/leaderboard.py"} <= drawn()


def test_the_layout_drawing_matches_the_tree():
    tree = {str(p.relative_to(ROOT)) for p in (ROOT / "fusion_bench").rglob("*.py")}
    drawing = drawn()
    assert not tree - drawing, f"modules missing from CONTRIBUTING.md's drawing: {sorted(tree - drawing)}"
    assert not drawing - tree, f"CONTRIBUTING.md draws modules that do not exist: {sorted(drawing - tree)}"
