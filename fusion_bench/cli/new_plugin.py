"""``fusion-bench new-plugin NAME``: an installable plugin package to start from (the templates
and the rules for names are :mod:`fusion_bench.scaffold`'s)."""

from __future__ import annotations

import click

from .app import cli


@cli.command("new-plugin")
@click.argument("name")
@click.option("--dir", "folder", default=".", show_default=True, metavar="DIR",
              help="Folder to write fusion-bench-NAME/ into (made if missing).")
@click.option("--kind", type=click.Choice(["fusion"]), default="fusion", show_default=True,
              help="What the plugin registers (fusions, so far).")
def new_plugin(name, folder, kind):
    """Write fusion-bench-NAME/: an installable plugin package (pyproject with the entry point,
    a working fusion, a test that runs the contract kit) that passes its own tests as written."""
    from ..scaffold import PluginNames, write_plugin

    target = write_plugin(name, folder, kind)
    names = PluginNames.of(name)
    click.echo(f"wrote {target}/: the fusion {names.name} ({names.cls} in "
               f"src/{names.package}/__init__.py), its tests and pyproject.toml with the entry point")
    click.echo("next:")
    click.echo(f"  cd {target} && pip install -e . && pytest")
    click.echo(f"  fusion-bench run --fusion {names.name}")
