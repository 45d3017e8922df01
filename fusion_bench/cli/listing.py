"""``fusion-bench list KIND`` and ``fusion-bench plugins``: what is registered, and by whom.
Neither imports torch (built-ins are registered lazily); ``list KIND --options`` imports the
plugins, to read their options."""

from __future__ import annotations

import click

from .app import State, cli


@cli.command("list")
@click.argument("kind", type=click.Choice(("fusions", "encoders", "backbones", "datasets", "metrics")))
@click.option("--options", "show_options", is_flag=True,
              help="Also each one's options (--set <kind>.<name>.<option>=...), types and defaults.")
@click.pass_obj
def list_(state: State, kind, show_options):
    """List registered fusions, encoders, backbones, datasets or metrics."""
    from tabulate import tabulate

    reg = state.registry
    rows = [[e.name, e.description, e.reference, e.plugin] for e in
            (reg.entries[kind][n] for n in reg.names(kind))]
    if not rows:
        click.echo(f"no {kind} registered")
        return
    click.echo(tabulate(rows, headers=["name", "description", "reference", "plugin"]))
    if show_options:
        from ..options import options_table

        click.echo("\n" + options_table(reg, kind))


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
