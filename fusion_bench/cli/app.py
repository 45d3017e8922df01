"""The ``fusion-bench`` click group, the state its verbs share, and :func:`main`.

Errors a user can cause (:class:`fusion_bench.errors.FusionBenchError`) are printed as one line
and exit with status 2, and so is running out of memory (a setting too large for the machine);
any other exception is a bug, printed as one line with exit status 1. ``--debug`` shows the
traceback instead. Verbs live one per module in this package and import what they need inside
the command, so ``--help``, ``list``, ``plugins`` and ``leaderboard`` never import torch.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import warnings
from typing import TYPE_CHECKING

import click

from .. import __version__
from ..errors import FusionBenchError, one_line_warning, out_of_memory

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


#: the group's options that may also follow the verb: option → whether it takes a value
GLOBAL_OPTIONS = {"--plugin": True, "--strict-plugins": False, "--debug": False}
GLOBAL_HELP = {
    "--plugin FILE_OR_MODULE": "Load a plugin from a .py file or an importable module (repeatable).",
    "--strict-plugins": "Fail when any plugin fails to load.",
    "--debug": "Show tracebacks for errors.",
}


class Verb(click.Command):
    """A verb: its help ends with the global options, which it accepts too (:class:`Group`)."""

    def format_options(self, ctx, formatter) -> None:
        super().format_options(ctx, formatter)
        with formatter.section("Global options (before or after the verb)"):
            formatter.write_dl(list(GLOBAL_HELP.items()))


class Group(click.Group):
    """The ``fusion-bench`` group: global options may come before or after the verb
    (``fusion-bench run --debug`` is ``fusion-bench --debug run``)."""

    command_class = Verb

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, hoist_global_options(self, ctx, list(args)))


def hoist_global_options(group: click.Group, ctx, args: list[str]) -> list[str]:
    """``args`` with the global options that follow the verb moved before it. A word that is
    the value of one of the verb's options stays (``--set --debug`` is not a flag), and so does
    everything after ``--`` and any option the verb declares itself."""
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        i += 2 if GLOBAL_OPTIONS.get(args[i]) else 1
    cmd = group.get_command(ctx, args[i]) if i < len(args) else None
    if cmd is None:
        return args
    own = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    takes_value = {o for p in cmd.params if isinstance(p, click.Option)
                   and not p.is_flag and not p.count for o in p.opts}
    head, tail = args[:i], [args[i]]
    j = i + 1
    while j < len(args):
        word = args[j]
        name = word.split("=", 1)[0]
        if word == "--":
            tail += args[j:]
            break
        if name in GLOBAL_OPTIONS and name not in own:
            takes = GLOBAL_OPTIONS[name] and "=" not in word
            head += args[j:j + 1 + takes]
            j += 1 + takes
            continue
        tail += args[j:j + 1 + (word in takes_value)]
        j += 1 + (word in takes_value)
    return head + tail


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fusion-bench")
@click.option("--plugin", "plugins", multiple=True, metavar="FILE_OR_MODULE",
              help=GLOBAL_HELP["--plugin FILE_OR_MODULE"])
@click.option("--strict-plugins", is_flag=True, help=GLOBAL_HELP["--strict-plugins"])
@click.option("--debug", is_flag=True, help=GLOBAL_HELP["--debug"])
@click.pass_context
def cli(ctx, plugins, strict_plugins, debug):
    """Train, score and time multimodal fusion for valence/arousal recognition.

    The global options may also follow the verb (fusion-bench run --debug ...).
    """
    ctx.obj = State(tuple(plugins), strict_plugins, debug)


#: click's shell-completion switch for the command ``fusion-bench`` (docs/cli.md)
COMPLETE_VAR = "_FUSION_BENCH_COMPLETE"

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
    """The verb, and the ``--plugin`` specs before or after it (a plugin's verb needs them)."""
    words = iter(argv)
    specs: list[str] = []
    verb = None
    for w in words:
        if w == "--":
            break
        if w == "--plugin":
            specs.append(next(words, ""))
        elif w.startswith("--plugin="):
            specs.append(w.split("=", 1)[1])
        elif verb is None and not w.startswith("-"):
            verb = w
    return verb, specs


def _load_plugin_verbs(argv: list[str]) -> None:
    """Plugin verbs join the group when they can matter: a verb that is not built in (a
    plugin's), or no verb at all (the group's help lists every verb). Built-in verbs never
    pay for loading plugins here."""
    if not argv and os.environ.get(COMPLETE_VAR):  # completing: the words typed so far
        from click.shell_completion import split_arg_string

        argv = split_arg_string(os.environ.get("COMP_WORDS", ""))[1:]
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
        warnings.showwarning = one_line_warning
    on_term = _handle_sigterm()
    try:
        _load_plugin_verbs(argv)
        rv = cli.main(args=argv, prog_name="fusion-bench", standalone_mode=False,
                      complete_var=COMPLETE_VAR)
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
    except Exception as e:  # noqa: BLE001 - no traceback reaches a user; --debug shows it
        if debug:
            raise
        first = (str(e).strip().splitlines() or [""])[0]
        if out_of_memory(e):  # a setting too large for this machine, most likely
            click.echo(f"Error: out of memory ({type(e).__name__}: {first}); lower what made the "
                       "work this large (batch size, window, model widths, dataset size); "
                       "--debug shows the traceback", err=True)
            return 2
        click.echo(f"Error: unexpected {type(e).__name__}: {first} (a bug in fusion-bench or a "
                   "plugin: run again with --debug for the traceback, and report it)", err=True)
        return 1
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)
        warnings.showwarning = shown
        cli.commands.clear()  # plugin verbs belong to this invocation only
        cli.commands.update(builtin_commands)


def entry() -> int:
    """The ``fusion-bench`` console script (and ``python -m fusion_bench``): :func:`main`, then
    the collector's objects frozen, so that leaving the interpreter skips its full collections.

    Why: once torch (and the ``torch._dynamo`` that ``torch.optim`` imports) is loaded, ~300k
    objects are alive, and the interpreter's exit collects over all of them after the command
    has written and closed everything: about 1.8 s of a default ``run`` on a 2-core CPU, 0.3 s
    frozen. Only the collection is skipped: atexit handlers (trackers, Ray), the standard
    streams' flush and reference-count teardown still run. Not in :func:`main`, which tests and
    scripts call in a process that goes on after it. For the same reason a command that trains
    freezes the objects torch leaves alive once they are loaded (:mod:`.startup`)."""
    from .startup import console_process

    console_process()
    status = main()
    gc.freeze()
    return status


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

