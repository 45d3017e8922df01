"""The ``fusion-bench`` click group, the state its verbs share, and :func:`main`.

Errors a user can cause (:class:`fusion_bench.errors.FusionBenchError`) are printed as one line
and exit with status 2; ``--debug`` shows the traceback instead. Verbs live one per module in
this package and import what they need inside the command, so ``--help``, ``list``, ``plugins``
and ``leaderboard`` never import torch.
"""

from __future__ import annotations

import signal
import sys
import threading
import warnings
from typing import TYPE_CHECKING

import click

from .. import __version__
from ..errors import FusionBenchError, Note

if TYPE_CHECKING:  # imported inside State.registry at run time (see above)
    from ..plugins import Registry


class State:
    """The global options, and the plugin registry built from them on first use."""

    def __init__(self, plugins: tuple[str, ...], strict: bool, debug: bool):
        self.plugin_specs, self.strict, self.debug = plugins, strict, debug
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from ..plugins import load_registry

            self._registry = load_registry(self.plugin_specs, strict=self.strict)
            for f in self._registry.failures:
                click.echo(f"warning: plugin {f.plugin!r} skipped: {f.error}", err=True)
            record_plugin_commands(self._registry)
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


BUILTIN_VERBS: set[str] = set()  # filled by fusion_bench.cli once every verb module is imported


def add_plugin_commands(reg) -> dict[str, list[str]]:
    """Let each plugin of ``reg`` add verbs to :data:`cli` (``register_commands(cli)``); return
    plugin → the verbs it added. A plugin whose hook raises is reported and skipped."""
    added: dict[str, list[str]] = {}
    for impl in reg.pm.hook.register_commands.get_hookimpls():
        before = set(cli.commands)
        try:
            impl.function(cli=cli)
        except Exception as e:  # noqa: BLE001 - one broken plugin must not break the CLI
            click.echo(f"warning: plugin {impl.plugin_name!r} skipped: register_commands raised "
                       f"{type(e).__name__}: {e}", err=True)
            continue
        added[impl.plugin_name] = sorted(set(cli.commands) - before)
    return added


def record_plugin_commands(reg) -> None:
    """Add the plugins' verbs and note them in each plugin's ``registers`` (``plugins`` lists them)."""
    for plugin, verbs in add_plugin_commands(reg).items():
        if verbs and plugin in reg.plugins:
            reg.plugins[plugin].registers["commands"] = verbs


def _verb_and_plugins(argv: list[str]) -> tuple[str | None, list[str]]:
    words = iter(argv)
    specs: list[str] = []
    for w in words:
        if w == "--plugin":
            specs.append(next(words, ""))
        elif w.startswith("--plugin="):
            specs.append(w.split("=", 1)[1])
        elif not w.startswith("-"):
            return w, specs
    return None, specs


def _load_plugin_verbs(argv: list[str]) -> None:
    """Plugin verbs join the group when they can matter: a verb that is not built in (a
    plugin's), or no verb at all (the group's help lists every verb). Built-in verbs never
    pay for loading plugins here."""
    verb, specs = _verb_and_plugins(argv)
    if verb is not None and verb in BUILTIN_VERBS:
        return
    from ..plugins import load_registry

    add_plugin_commands(load_registry(specs, strict="--strict-plugins" in argv))


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    builtin_commands = dict(cli.commands)
    shown = warnings.showwarning
    if not debug:  # a warning is one line, as an error is; --debug keeps Python's form
        warnings.showwarning = _one_line_warning
    on_term = _handle_sigterm()
    try:
        _load_plugin_verbs(argv)
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
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        click.echo("Interrupted: finished runs are stored; run the same command again to "
                   "resume an unfinished one from its last checkpoint.", err=True)
        return 130
    except Terminated:
        click.echo("Terminated (SIGTERM): finished runs are stored; run the same command "
                   "again to resume an unfinished one from its last checkpoint.", err=True)
        return 143
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)
        warnings.showwarning = shown
        cli.commands.clear()  # plugin verbs belong to this invocation only
        cli.commands.update(builtin_commands)


class Terminated(BaseException):
    """SIGTERM (what timeout, Slurm and docker send) arrived: unwinds like Ctrl-C, so a
    sweep's clean-up (cancel queued runs, end its workers) runs and nothing half-made is kept."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


def _handle_sigterm():
    """Install the SIGTERM handler; return the previous one (None off the main thread, where
    Python cannot set one)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warning: ...``, or ``note: ...`` for a :class:`fusion_bench.errors.Note` (no error)."""
    click.echo(f"{'note' if issubclass(category, Note) else 'warning'}: {message}", err=True)
