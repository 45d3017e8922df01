"""``fusion-bench list KIND`` and ``fusion-bench plugins``: what is registered, and by whom.
Neither imports torch (built-ins are registered lazily); ``list KIND --options`` imports the
plugins, to read their options."""

from __future__ import annotations

import click

from .app import State, cli
from .options import json_option

KINDS = ("fusions", "encoders", "backbones", "datasets", "metrics")


@cli.command("list")
@click.argument("kind", type=click.Choice(KINDS), required=False)
@click.option("--options", "show_options", is_flag=True,
              help="Also each one's options (--set <kind>.<name>.<option>=...), types and defaults.")
@json_option("the list")
@click.pass_obj
def list_(state: State, kind, show_options, as_json):
    """List registered fusions, encoders, backbones, datasets or metrics (every kind when no
    KIND is given)."""
    import json

    from tabulate import tabulate

    reg = state.registry
    kinds = (kind,) if kind else KINDS
    if as_json:
        click.echo(json.dumps({k: entries(reg, k, show_options) for k in kinds}, indent=2,
                              default=repr))
        return
    for i, k in enumerate(kinds):
        if kind is None:  # every kind, each under its title
            click.echo(("\n" if i else "") + f"## {k}\n")
        rows = [[e["name"], e["description"], e["reference"], e["plugin"]]
                for e in entries(reg, k, options=False)]
        if not rows:
            click.echo(f"no {k} registered")
            continue
        click.echo(tabulate(rows, headers=["name", "description", "reference", "plugin"]))
        if show_options:
            from ..options import options_table

            click.echo("\n" + options_table(reg, k))


def entries(reg, kind: str, options: bool) -> list[dict]:
    """The registered ``kind`` as ``list --json`` gives them; with ``options``, each one's
    options (those of kinds set through the configuration; imports the plugins)."""
    import inspect

    from ..options import KINDS as OPTION_KINDS
    from ..options import Option, plugin_parameters

    short = {rk: k for k, (rk, _) in OPTION_KINDS.items()}.get(kind)
    out = []
    for name in reg.names(kind):
        e = reg.entries[kind][name]
        item = {"name": e.name, "description": e.description, "reference": e.reference,
                "plugin": e.plugin}
        if options and short is not None:
            opts: list[Option] = plugin_parameters(short, e.obj)
            item["options"] = [{"key": f"{short}.{name}.{o.name}", "type": o.type,
                                "required": o.default is inspect.Parameter.empty,
                                "default": None if o.default is inspect.Parameter.empty
                                else o.default} for o in opts]
        out.append(item)
    return out


@cli.command()
@click.pass_obj
def plugins(state: State):
    """List loaded plugins, their versions, what each registers (verbs too), and any that failed."""
    from tabulate import tabulate

    reg = state.registry
    rows = []
    for p in reg.plugins.values():
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in p.registers.items()) or "-"
        rows.append([p.name, p.version, p.source, what])
    click.echo(tabulate(rows, headers=["plugin", "version", "source", "registers"]))
    for f in reg.failures:
        click.echo(f"FAILED {f.plugin}: {f.error}")
