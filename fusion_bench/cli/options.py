"""The options every configuration-building verb shares (``run``, ``submit``, ``bench``,
``sweep``), as one decorator, and the configuration they make.

Precedence: defaults < ``--preset`` < ``--config`` file < the dedicated flags (``--fusion``,
``--seed``...) < ``--set`` < on/off switches (``--quiet``, ``--robustness``). A verb's own default
for a key (``submit``'s dataset) applies only where none of these sets that key.
"""

from __future__ import annotations

import click

from . import completion

#: dedicated flags: option name → (config key, click option arguments)
FLAGS: dict[str, tuple[str, dict]] = {
    "fusion": ("model.fusion", {"help": "Fusion plugin (default: concat). See `list fusions`.",
                                "shell_complete": completion.names("fusions")}),
    "dataset": ("data.name", {"help": "Dataset plugin (default: synthetic, or the verb's).",
                              "shell_complete": completion.names("datasets")}),
    "encoder": ("model.encoder", {"help": "Temporal encoder plugin (default: tcn).",
                                  "shell_complete": completion.names("encoders")}),
    "modalities": ("data.modalities", {"help": "Comma-separated subset, e.g. visual,audio."}),
    "root": ("data.root", {"help": "Dataset folder (datasets read from disk)."}),
    "seed": ("seed", {"type": int, "help": "Model seed (init, batch order)."}),
    "device": ("device", {"help": "cpu | cuda | cuda:N | auto (default)."}),
}
SHARED = ("preset", "config_file", "sets")

#: the environment variable that names the default results store of every verb
RESULTS_ENV = "FUSION_BENCH_RESULTS"


def store_option(fn):
    """``--out DIR``: the results store, the same option on every verb that reads or writes one
    (default: $FUSION_BENCH_RESULTS, else ``results``)."""
    return click.option("--out", "out", default="results", envvar=RESULTS_ENV, show_default=True,
                        show_envvar=True, metavar="DIR", help="Results store folder.")(fn)


def threads_option(fn=None, *, default: str = "torch's choice"):
    """``--threads N``: torch's CPU threads (``torch.set_num_threads``)."""
    option = click.option("--threads", type=int, default=None, metavar="N", callback=_positive,
                          help=f"CPU threads of torch (torch.set_num_threads; default: {default}).")
    return option(fn) if fn is not None else option


def _positive(ctx, param, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.BadParameter(f"must be at least 1, not {value}")
    return value


def log_option(fn):
    """``--log NAMES``: experiment trackers for each run (:mod:`fusion_bench.trackers`)."""
    return click.option(
        "--log", "log", metavar="NAMES", default=None,
        help="Experiment trackers, comma-separated: tensorboard (<out>/tensorboard), mlflow "
             "(MLFLOW_TRACKING_URI, or <out>/mlflow.db), wandb (<out>/wandb; WANDB_MODE=offline "
             "for no upload). Each epoch also goes to "
             "<out>/epochs/<run_id>.csv whatever this says.")(fn)


def json_option(what: str):
    """``--json``: ``what`` as JSON on stdout, and nothing else there."""
    return click.option("--json", "as_json", is_flag=True,
                        help=f"Print {what} as JSON on stdout (messages go to stderr).")


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` to this process (imports torch: for verbs that train)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def given(ctx, name: str) -> bool:
    """Whether option ``name`` was on the command line (not its default or environment)."""
    from click.core import ParameterSource

    return ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE


def deprecated(old: str, new: str) -> None:
    """One line on stderr: ``old`` still works, ``new`` is the spelling to use."""
    click.echo(f"note: {old} is deprecated; use {new}", err=True)


def config_options(*flags: str, preset: str = "quick", required: tuple[str, ...] = ()):
    """Add ``--preset``, ``--config``, ``--set`` and the named dedicated ``flags`` to a verb;
    ``required`` flags must be given."""

    def decorate(fn):
        for name in reversed(flags):
            key, kwargs = FLAGS[name]
            kw = dict(kwargs)
            fn = click.option(f"--{name}", name, required=name in required, **kw)(fn)
        fn = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                          shell_complete=completion.set_keys,
                          help="Override a config key, e.g. --set train.lr=1e-3 "
                               "--set fusion.rcma.iterations=3 (keys: docs/config.md).")(fn)
        fn = click.option("--config", "config_file", default=None, metavar="FILE.toml",
                          type=click.Path(), help="TOML config file.")(fn)
        fn = click.option("--preset", default=preset, show_default=True, help="quick | paper.",
                          shell_complete=completion.presets)(fn)
        return fn

    return decorate


def pop_config_args(opts: dict) -> tuple[str, str | None, list[tuple[str, str]]]:
    """Take the shared options and the dedicated flags out of a verb's ``opts``; return
    (preset, config file, (key, value) overrides of the flags that were given)."""
    from ..config import parse_set

    preset, config_file, sets = (opts.pop(k) for k in SHARED)
    flags = [(FLAGS[name][0], opts.pop(name)) for name in list(opts) if name in FLAGS]
    return preset, config_file, [(k, v) for k, v in flags if v is not None] + parse_set(sets)


def build_run_config(opts: dict, switches: dict | None = None, fallbacks: dict | None = None):
    """The run configuration of a verb's options (see the module docstring); ``switches`` maps
    a config key to a value, or None where the switch is off; ``fallbacks`` are the verb's own
    defaults, used for a key that neither the config file, a flag nor ``--set`` sets."""
    from ..config import build_config, load_toml

    preset, config_file, overrides = pop_config_args(opts)
    overrides += [(k, v) for k, v in (switches or {}).items() if v is not None]
    if fallbacks:
        given = {k for k, _ in overrides} | (set(load_toml(config_file)) if config_file else set())
        overrides = [(k, v) for k, v in fallbacks.items() if k not in given] + overrides
    return build_config(preset, config_file, overrides)


def ray_resource_options(noun: str, cpus: str, gpus: str, retries: str):
    """``--cpus-per-<noun>``, ``--gpus-per-<noun>`` and ``--retries``: what each Ray task asks
    for, and how often a failed one is tried again (:func:`ray_resources` checks them against
    the executor); ``cpus``, ``gpus`` and ``retries`` are each option's help."""
    def decorate(fn):
        fn = click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
                          help=retries)(fn)
        fn = click.option(f"--gpus-per-{noun}", type=click.FloatRange(min=0), default=None,
                          help=gpus)(fn)
        return click.option(f"--cpus-per-{noun}", type=click.FloatRange(min=0, min_open=True),
                            default=None, help=cpus)(fn)
    return decorate


def ray_resources(executor: str, noun: str, cpus: float | None, gpus: float | None,
                  retries: int, local: str = ""):
    """The :class:`fusion_bench.ray_executor.Resources` of :func:`ray_resource_options`' values;
    asking for CPUs or GPUs without ``--executor ray`` is a ConfigError (``local``: what to use
    instead, appended to its message)."""
    from ..errors import ConfigError
    from ..ray_executor import Resources

    if executor != "ray" and (cpus is not None or gpus is not None):
        raise ConfigError(f"--cpus-per-{noun} and --gpus-per-{noun} ask Ray for resources; add "
                          f"--executor ray{local}")
    return Resources(cpus, gpus, retries)
