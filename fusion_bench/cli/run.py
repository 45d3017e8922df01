"""``fusion-bench run``: train and evaluate one configuration."""

from __future__ import annotations

import click

from .. import launch
from .app import State, cli
from .options import (
    build_run_config,
    config_options,
    json_option,
    log_option,
    set_threads,
    store_option,
    threads_option,
)
from .startup import import_training_modules


@cli.command()
@config_options("fusion", "dataset", "encoder", "modalities", "root", "seed", "device")
@store_option
@threads_option
@json_option("the stored record")
@click.option("--robustness", is_flag=True,
              help="Also score the test split with each modality dropped and with Gaussian noise "
                   "(levels: robustness.levels).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@log_option
@click.option("--no-model", is_flag=True,
              help="Keep only the record, not the trained weights and test predictions.")
@click.option("--restart", is_flag=True,
              help="Train from the start: remove this configuration's checkpoint instead of "
                   "resuming it.")
@click.option("--keep-checkpoint", is_flag=True,
              help="Keep the checkpoint once the record is written (it is removed by default).")
@click.pass_obj
def run(state: State, out, threads, as_json, robustness, quiet, log, no_model, restart,
        keep_checkpoint, **opts):
    """Train and evaluate one configuration; print validation/test CCC and store the record.

    The run writes a checkpoint into --out after each validated epoch
    (checkpoints/<config hash>.pt, atomically). An interrupted run (Ctrl-C, kill, crash)
    resumes from it when the same configuration runs again into the same --out, and ends
    with the record the run would have made uninterrupted (the same scores, bit for bit on
    CPU); a note says so. --restart trains from the start instead.

    Under `torchrun --nproc-per-node N -m fusion_bench run ...` the run trains with
    DistributedDataParallel (gloo on CPU, nccl on GPUs): each rank takes a share of every
    batch; loss and BatchNorm statistics are the whole batch's; rank 0 alone prints and writes.
    """
    import json

    from tabulate import tabulate

    from ..preflight import preflight
    from ..report.robustness import robustness_table
    from ..results import ResultsStore, display_name
    from ..trackers import parse_log

    cfg = build_run_config(opts, {"train.progress": "false" if quiet else None,
                                  "robustness.enabled": "true" if robustness else None})
    reg = state.registry
    trackers = parse_log(log)  # an unknown name or a missing library: before any training
    store = ResultsStore(out)
    if launch.env_rank() == 0:  # before any training; torchrun: rank 0 alone writes (and probes, as
        store.check_writable()  # two ranks probing one new folder would remove it under each other)
    set_threads(threads)
    # the preflight, then torch: a misspelt name fails at once, an option before torch._dynamo
    import_training_modules(checks=lambda: preflight([cfg], reg))
    from .. import distributed
    from ..runs import run_and_store
    from .progress import run_events
    if launch.env_rank() != 0:  # torchrun: rank 0 shows, tracks and writes; this one trains
        try:
            run_and_store(cfg, reg, store, None, keep_model=not no_model, restart=restart,
                          keep_checkpoint=keep_checkpoint)
        finally:
            distributed.close()
        return
    try:
        with run_events(reg, show=cfg.train.progress, log=trackers, root=out) as events:
            record, path = run_and_store(cfg, reg, store, events, keep_model=not no_model,
                                         restart=restart, keep_checkpoint=keep_checkpoint)
    finally:
        distributed.close()
    if as_json:  # the record as stored, alone on stdout (for jq and scripts)
        click.echo(json.dumps(record, indent=2, sort_keys=True, default=str))
        click.echo(f"record: {path}", err=True)
        return
    m, ceiling = record["metrics"], record["dataset"].get("ceiling", {})
    columns = [*record["dataset"]["targets"], "mean"]  # a column per target of the dataset
    rows = [[s, *(m[s][t] for t in columns)] for s in ("val", "test")]
    if "test" in ceiling:
        c = ceiling["test"]
        rows.append(["test ceiling", *(c[t] for t in columns)])
    if "baseline" in record:  # the linear probe on the same frames (fusion_bench.baseline)
        b = record["baseline"]["metrics"]["test"]
        rows.append(["test ridge (linear)", *(b[t] for t in columns)])
    click.echo(f"\n{display_name(cfg)} on {cfg.data.name} ({','.join(cfg.data.modalities)}), seed {cfg.seed}, "
               f"{record['wall']['total_s']:.1f} s on {record['environment']['device_name']}")
    click.echo(tabulate(rows, headers=["CCC", *columns], floatfmt=".3f"))
    if "test" in ceiling:
        click.echo(f"ceiling = CCC of the noiseless latent vs the noisy label; test mean is "
                   f"{m['test']['mean'] / ceiling['test']['mean']:.0%} of it")
    for line in fit_lines(record):
        click.echo(line)
    if "robustness" in record:
        click.echo("\n" + robustness_table(record["robustness"]))
    click.echo(f"record: {path}")
    if "artifacts" in record:
        click.echo(f"model: {record['run_id']} (fusion-bench predict --run {record['run_id']} "
                   f"--out {out} --root DIR --predictions DIR)")


def fit_lines(record: dict) -> list[str]:
    """One line per fit of ``record`` (one per target with ``model.per_target``): which
    validation epoch's weights it kept, at which step, and whether early stopping ended it.
    The numbers of a table mean little without the epoch they come from."""
    out = []
    for f in record.get("fits", []):
        try:
            best = next((h.get("step") for h in f.get("history", [])
                         if h.get("epoch") == f["best_epoch"]), None)
            line = (f"kept weights: {'+'.join(f.get('targets', []))} from validation epoch "
                    f"{f['best_epoch']} of {f['epochs']}"
                    + (f" (step {best} of {f['steps']})" if best is not None else ""))
            if f.get("stopped_early"):
                line += f"; early stopping ended the fit ({f.get('planned_epochs')} epochs planned)"
        except (KeyError, TypeError):  # a record of another shape: nothing to say
            continue
        out.append(line)
    return out
