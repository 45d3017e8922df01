"""``fusion-bench submit``: train on the train split and write an ABAW submission CSV."""

from __future__ import annotations

import click

from .app import State, cli
from .options import build_run_config, config_options, deprecated, set_threads, threads_option


@cli.command()
@config_options("dataset", "root", "fusion", "encoder", "modalities", "seed", "device",
                required=("root",))
@click.option("--csv", "out_file", default="submission.csv", show_default=True, metavar="FILE",
              help="Submission CSV to write.")
@click.option("--out", "old_out", default=None, hidden=True)  # the CSV before --csv, deprecated
@threads_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
def submit(state: State, out_file, old_out, threads, quiet, **opts):
    """Train on the train split and write an ABAW submission CSV for the test list (dataset:
    affwild2 unless --dataset, --set data.name or the config file says otherwise)."""
    from pathlib import Path

    from ..errors import ConfigError, StorageError
    from ..results import ResultsStore
    from ..submission import train_and_predict, write_submission
    from .progress import run_events

    if old_out is not None:
        deprecated("submit --out FILE", "--csv FILE (--out is the results store of other verbs)")
        out_file = old_out
    csv = Path(out_file)
    if csv.is_dir():  # found now, not once the training is done
        raise ConfigError(f"--csv {out_file} is a folder; give a file name, e.g. "
                          f"{csv / 'submission.csv'}")
    ResultsStore(csv.parent).check_writable("--csv", "folder of the CSV", "a file in a folder")
    set_threads(threads)

    cfg = build_run_config(opts, {"train.progress": "false" if quiet else None},
                           fallbacks={"data.name": "affwild2"})
    reg = state.registry
    with run_events(reg, show=cfg.train.progress) as events:
        preds, scores = train_and_predict(cfg, reg, events=events)
    try:
        rows = write_submission(out_file, preds)
    except OSError as e:  # a full disk: an older CSV there is whole (atomic write)
        raise StorageError(f"{out_file}: cannot be written ({e.strerror or e})") from None
    click.echo("val CCC: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    click.echo(f"submission: {out_file} ({rows} frames of {len(preds)} videos)")
