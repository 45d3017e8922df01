"""The documentation keeps up with the code: every hook has a section in docs/hooks.md
(datasette's way), and docs/plugins.md's example fusion passes the contract kit."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from fusion_bench import hookspecs
from fusion_bench.testing import check_fusion

DOCS = Path(__file__).resolve().parent.parent / "docs"
#: pluggy marks each hookspec function with an attribute named "<project>_spec"
SPEC_MARKER = f"{hookspecs.hookspec.project_name}_spec"


def hooks() -> dict[str, str]:
    """name → ``name(arg, ...)`` of every function in hookspecs.py carrying pluggy's spec mark."""
    return {
        name: f"{name}({', '.join(inspect.signature(fn).parameters)})"
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, SPEC_MARKER)
    }


def headings(path: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in path.read_text().splitlines()
            if re.match(r"#{1,6} ", line)]


def test_the_hookspecs_are_found():
    assert {"register_fusions", "register_datasets"} <= set(hooks())


@pytest.mark.parametrize("name", sorted(hooks()))
def test_hook_is_documented(name):
    signature = hooks()[name]
    titles = headings(DOCS / "hooks.md")
    assert any(name in t for t in titles), f"docs/hooks.md has no heading for hook {name}"
    assert signature in titles, (
        f"docs/hooks.md: the heading of {name} must give its signature as `{signature}`; "
        f"found {[t for t in titles if name in t]}"
    )


def test_no_heading_documents_a_hook_that_does_not_exist():
    documented = {m.group(1) for t in headings(DOCS / "hooks.md")
                  if (m := re.fullmatch(r"`?(\w+)\(.*\)`?", t))}
    assert documented <= set(hooks()), f"stale hooks in docs/hooks.md: {documented - set(hooks())}"


def test_the_plugin_example_passes_the_contract_kit():
    """docs/plugins.md's one-file plugin, run as written."""
    text = (DOCS / "plugins.md").read_text()
    source = re.search(r"```python\n(# gated_concat\.py\n.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(source, "docs/plugins.md", "exec"), namespace)  # noqa: S102 - our own docs
    check_fusion(namespace["GatedConcat"])
    check_fusion(namespace["GatedConcat"], dims={"a": 3, "b": 5}, bias=1.0)
