"""The ``fusion-bench`` command line.

Errors a user can cause (:class:`fusion_bench.errors.FusionBenchError`) are printed as one line
and exit with status 2; ``--debug`` shows the traceback instead. Heavy modules (torch, the
fusions, optional backbone packages) are imported inside commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import FusionBenchError

KIND_NAMES = ("fusions", "encoders", "backbones", "datasets")


class State:
    def __init__(self, plugins: tuple[str, ...], strict: bool, debug: bool):
        self.plugin_specs, self.strict, self.debug = plugins, strict, debug
        self._registry = None

    @property
    def registry(self):
        if self._registry is None:
            from .plugins import load_registry

            self._registry = load_registry(self.plugin_specs, strict=self.strict)
            for f in self._registry.failures:
                click.echo(f"warning: plugin {f.plugin!r} skipped: {f.error}", err=True)
        return self._registry


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fusion-bench")
@click.option("--plugin", "plugins", multiple=True, metavar="FILE_OR_MODULE",
              help="Load a plugin from a .py file or an importable module (repeatable).")
@click.option("--strict-plugins", is_flag=True, help="Fail when any plugin fails to load.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx, plugins, strict_plugins, debug):
    """Train, score and time multimodal fusion for valence/arousal recognition."""
    ctx.obj = State(tuple(plugins), strict_plugins, debug)


@cli.command()
@click.option("--fusion", default=None, help="Fusion plugin (default: concat). See `list fusions`.")
@click.option("--dataset", default=None, help="Dataset plugin (default: synthetic).")
@click.option("--encoder", default=None, help="Temporal encoder plugin (default: tcn).")
@click.option("--modalities", default=None, help="Comma-separated subset, e.g. visual,audio.")
@click.option("--root", default=None, help="Dataset folder (datasets read from disk).")
@click.option("--preset", default="quick", show_default=True, help="quick | paper.")
@click.option("--config", "config_file", default=None, metavar="FILE.toml", help="TOML config file.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, e.g. --set train.lr=1e-3 --set fusion.iterations=3.")
@click.option("--seed", type=int, default=None, help="Model seed (init, batch order).")
@click.option("--device", default=None, help="cpu | cuda | cuda:N | auto (default).")
@click.option("--out", default="results", show_default=True, help="Results store folder.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
def run(state: State, fusion, dataset, encoder, modalities, root, preset, config_file, sets, seed,
        device, out, quiet):
    """Train and evaluate one configuration; print validation/test CCC and store the record."""
    from tabulate import tabulate

    from .config import build_config, parse_set
    from .results import ResultsStore, make_record
    from .train import run as run_config

    overrides = []
    for key, val in (("model.fusion", fusion), ("data.name", dataset), ("model.encoder", encoder),
                     ("data.modalities", modalities), ("data.root", root), ("seed", seed),
                     ("device", device)):
        if val is not None:
            overrides.append((key, val))
    overrides += parse_set(sets)
    if quiet:
        overrides.append(("train.progress", "false"))
    cfg = build_config(preset, config_file, overrides)
    reg = state.registry
    # Fail fast on unknown names, before any data is generated.
    reg.get("datasets", cfg.data.name)
    reg.get("encoders", cfg.model.encoder)
    if len(cfg.data.modalities) > 1:
        reg.get("fusions", cfg.model.fusion)
    result = run_config(cfg, reg)
    used = {k: reg.get(kind, name) for k, kind, name in (
        ("dataset", "datasets", cfg.data.name), ("encoder", "encoders", cfg.model.encoder),
    )}
    if len(cfg.data.modalities) > 1:
        used["fusion"] = reg.get("fusions", cfg.model.fusion)
    plugins = {k: {"name": e.name, "plugin": e.plugin, "version": reg.plugins[e.plugin].version}
               for k, e in used.items()}
    record = make_record(cfg, result, plugins)
    path = ResultsStore(out).write(record)
    m, ceiling = result["metrics"], result["dataset"].get("ceiling", {})
    rows = [[s, m[s]["valence"], m[s]["arousal"], m[s]["mean"]] for s in ("val", "test")]
    if "test" in ceiling:
        c = ceiling["test"]
        rows.append(["test ceiling", c["valence"], c["arousal"], c["mean"]])
    fusion_name = cfg.model.fusion if len(cfg.data.modalities) > 1 else "(single modality)"
    click.echo(f"\n{fusion_name} on {cfg.data.name} ({','.join(cfg.data.modalities)}), seed {cfg.seed}, "
               f"{result['wall']['total_s']:.1f} s on {result['throughput']['device']}")
    click.echo(tabulate(rows, headers=["CCC", "valence", "arousal", "mean"], floatfmt=".3f"))
    if "test" in ceiling:
        click.echo(f"ceiling = CCC of the noiseless latent vs the noisy label; test mean is "
                   f"{m['test']['mean'] / ceiling['test']['mean']:.0%} of it")
    click.echo(f"record: {path}")


@cli.command("list")
@click.argument("kind", type=click.Choice(KIND_NAMES))
@click.pass_obj
def list_(state: State, kind):
    """List registered fusions, encoders, backbones or datasets."""
    from tabulate import tabulate

    reg = state.registry
    rows = [[e.name, e.description, e.reference, e.plugin] for e in
            (reg.entries[kind][n] for n in reg.names(kind))]
    if not rows:
        click.echo(f"no {kind} registered")
        return
    click.echo(tabulate(rows, headers=["name", "description", "reference", "plugin"]))


@cli.command()
@click.pass_obj
def plugins(state: State):
    """List loaded plugins, their versions and what each registers, and any that failed."""
    from tabulate import tabulate

    reg = state.registry
    rows = []
    for p in reg.plugins.values():
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in p.registers.items()) or "-"
        rows.append([p.name, p.version, p.source, what])
    click.echo(tabulate(rows, headers=["plugin", "version", "source", "registers"]))
    for f in reg.failures:
        click.echo(f"FAILED {f.plugin}: {f.error}")


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        rv = cli.main(args=argv, prog_name="fusion-bench", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except FusionBenchError as e:
        if debug:
            raise
        click.echo(f"Error: {e}", err=True)
        return 2
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("Interrupted; nothing was written for the unfinished run.", err=True)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
