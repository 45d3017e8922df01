"""``fusion-bench sweep``: fusions × seeds, resumable, on this machine or a Ray cluster."""

from __future__ import annotations

import click

from . import completion
from .app import State, cli
from .options import (
    config_options,
    log_option,
    pop_config_args,
    ray_resource_options,
    ray_resources,
    store_option,
    threads_option,
)
from .startup import import_training_modules


@cli.command()
@click.option("--fusion", "fusions", required=True, shell_complete=completion.fusion_list,
              help="Comma-separated fusions; only:MODALITY adds a single-modality row.")
@click.option("--seeds", type=click.IntRange(min=1, max=10_000), default=5, show_default=True,
              help="Model seeds 0..N-1.")  # the grid is made up front: 10**9 would never start
@config_options("dataset", "encoder", "modalities", "root", "device")
@store_option
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this machine's processes; ray: one Ray task per run "
                   "(RAY_ADDRESS for a cluster; pip install \"fusion-bench-affect[ray]\").")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Runs at once [default: 1 for local, one per cluster CPU for ray].")
@ray_resource_options(
    "run",
    cpus="ray: CPUs each run's task asks for (its torch threads) [default: the cluster's CPUs "
         "shared by --jobs].",
    gpus="ray: GPUs each run asks for; a fraction packs runs on one GPU (0.25: four at once) "
         "[default: 1 where the cluster has GPUs and --device allows, else 0].",
    retries="ray: attempts after a run's worker or node died (elsewhere, resuming its "
            "checkpoint where the store is shared); each run is stored once.")
@threads_option(default="each run's share of the cores, cores/--jobs")
@click.option("--robustness", is_flag=True,
              help="Score every run with modalities dropped and noised, as `run --robustness`.")
@click.option("--no-model", is_flag=True,
              help="Keep only the records, not the trained weights and test predictions.")
@click.option("--restart", is_flag=True,
              help="Train every run from the start: remove the checkpoints of interrupted runs "
                   "instead of resuming them.")
@click.option("--keep-checkpoints", is_flag=True,
              help="Keep each run's checkpoint once its record is written.")
@log_option
@click.pass_obj
def sweep(state: State, fusions, seeds, out, executor, jobs, cpus_per_run, gpus_per_run, retries,
          threads, robustness, no_model, restart, keep_checkpoints, log, **opts):
    """Run fusions × seeds, skipping runs already stored; resumable after an interruption.

    A run interrupted mid-training resumes from its checkpoint in --out (written after each
    validated epoch), not from the start; see `fusion-bench run --help`.
    """
    from ..preflight import check_names
    from ..results import ResultsStore
    from ..sweep import RegistrySpec, grid
    from ..sweep import sweep as run_sweep
    from ..trackers import parse_log

    preset, config_file, base = pop_config_args(opts)
    if robustness:
        base.append(("robustness.enabled", "true"))
    names = list(dict.fromkeys(f.strip() for f in fusions.split(",") if f.strip()))  # once each
    if not names:
        raise click.BadParameter("give at least one fusion, e.g. --fusion rcma,concat",
                                 param_hint="'--fusion'")
    resources = ray_resources(executor, "run", cpus_per_run, gpus_per_run, retries,
                              local=" (locally, --jobs and --threads share the cores)")
    trackers = tuple(parse_log(log))  # an unknown name or a missing library: before any run
    configs = grid(names, list(range(seeds)), base, preset, config_file)
    store = ResultsStore(out)
    store.check_writable()  # before any run
    check_names(configs, state.registry)  # every configuration's: a misspelt name fails at once
    import_training_modules()  # torch: after the checks
    res = run_sweep(configs, state.registry, store, echo=click.echo, executor=executor,
                    jobs=jobs, spec=RegistrySpec.of(state.plugin_specs, state.strict),
                    keep_models=not no_model, restart=restart,
                    keep_checkpoints=keep_checkpoints, threads=threads, resources=resources,
                    log=trackers)
    retried = f", {res.retried} retried after a lost worker or node" if res.retried else ""
    click.echo(f"{res.done} run, {res.skipped} already stored, {res.failed} failed{retried}")
    return 1 if res.failed else 0
