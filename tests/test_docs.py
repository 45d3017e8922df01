"""The documentation keeps up with the code: every hook has a section in docs/hooks.md
(datasette's way), and docs/plugins.md's example fusion passes the contract kit."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from fusion_bench import hookspecs
from fusion_bench.testing import check_fusion

from .conftest import script

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


def _gen_docs():
    """scripts/gen_docs.py as a module."""
    return script("gen_docs")


@pytest.mark.parametrize("name", ["config.md", "cli.md"])
def test_generated_reference_is_current(name):
    """docs/config.md and docs/cli.md are what scripts/gen_docs.py writes from the code today."""
    wanted = _gen_docs().documents()[DOCS / name]
    assert (DOCS / name).read_text() == wanted, (
        f"docs/{name} is out of date: run python scripts/gen_docs.py")


def test_config_reference_has_every_key_with_its_meaning():
    from fusion_bench.config import all_keys

    text = (DOCS / "config.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([\w.]+)` \|.*\| ([^|]*) \|$", text,
                                                          re.M)}
    keys = [k for k in all_keys() if "<" not in k]
    assert keys and [k for k in keys if k not in rows] == []
    undocumented = [k for k in keys if not rows[k].strip()]
    assert not undocumented, ("config fields without a comment in fusion_bench/config/schema.py "
                              f"(docs/config.md takes its meaning from there): {undocumented}")


def test_cli_reference_has_every_verb_and_option():
    from fusion_bench.cli import cli

    text = (DOCS / "cli.md").read_text()
    for name, cmd in cli.commands.items():
        assert f"## fusion-bench {name}\n" in text
        section = text.split(f"## fusion-bench {name}\n", 1)[1].split("\n## ", 1)[0]
        for p in cmd.params:
            if not getattr(p, "hidden", False) and p.opts[0].startswith("-"):
                assert p.opts[0] in section, f"{name} {p.opts[0]}"


def test_option_types_are_spelt_alike_on_every_python():
    """`int | None = None` reads as Optional[int] on Python 3.10: docs/config.md and `list
    --options` must not change with the interpreter."""
    import typing

    from fusion_bench.options import _type_name

    assert _type_name(typing.Optional[int]) == _type_name(int | None) == "int | None"  # noqa: UP045
    assert _type_name(typing.Union[str, float]) == "str | float"  # noqa: UP007
    assert _type_name(tuple[int, ...]) == "tuple[int, ...]" and _type_name(bool) == "bool"
