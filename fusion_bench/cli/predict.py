"""``fusion-bench predict``: per-frame predictions of a stored run's model on a features folder."""

from __future__ import annotations

import click

from .app import State, cli
from .options import deprecated, given, set_threads, store_option, threads_option


@cli.command()
@click.option("--run", "run_id", required=True, help="Run id of a stored run (its record's run_id).")
@store_option
@click.option("--results", "old_results", default=None, hidden=True)  # before --out, deprecated
@click.option("--root", required=True, help="A features folder (the format of --dataset features).")
@click.option("--predictions", default=None, metavar="DIR",
              help="Folder for one <video>.csv of predictions per video.  [required]")
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:N.")
@threads_option
@click.pass_context
def predict(ctx, run_id, out, old_results, root, predictions, device, threads):
    """Write per-frame predictions of a stored run's model for every video of a features folder
    (overlap-averaged as the run scored; one CSV per video, a column per target; a model of a
    sequence-level dataset writes one row per video)."""
    from pathlib import Path

    import numpy as np

    from ..artifacts import load_model
    from ..data.features import FeaturesDataset, load_video
    from ..errors import ConfigError, StorageError
    from ..files import atomic_write_text
    from ..results import ResultsStore
    from ..runtime import resolve_device

    state: State = ctx.obj
    results = out
    if old_results is not None:  # the spelling before --out named the store
        if predictions is None and given(ctx, "out"):
            deprecated(f"--results {old_results} --out {out}",
                       f"--out {old_results} --predictions {out}")
            predictions = out
        else:
            deprecated("--results", "--out (the results store of every verb)")
        results = old_results
    if predictions is None:
        raise click.UsageError("Missing option '--predictions' (the folder to write into; --out "
                               "is the results store)")
    set_threads(threads)
    resolve_device(device)  # before the model is read: an unknown device is one line
    ResultsStore(predictions).check_writable("--predictions", "predictions folder")
    loaded = load_model(run_id, results, state.registry)
    art = loaded.record["artifacts"]
    dims = {m: art["dims"][m] for m in art["modalities"]}
    ds = FeaturesDataset(root, tuple(dims))
    missing = {m: d for m, d in ds.dims.items() if dims.get(m) != d}
    if missing:
        raise ConfigError(f"{root}: features of {', '.join(f'{m} ({d}-d)' for m, d in missing.items())} "
                          f"do not match the model's {dims}")
    names = sorted({n for s in ds.split_names.values() for n in s})
    # a sequence-level model predicts one row per video: read each as one sequence (its arrays
    # may differ in length), with a placeholder label (predictions need none)
    row = np.zeros(len(loaded.targets), np.float32) if art.get("label_level") == "sequence" else None
    videos = [load_video(ds.root, n, tuple(dims), dims, row=row) for n in names]
    preds = loaded.predict(videos, device)
    folder = Path(predictions)
    for name, p in preds.items():
        lines = [",".join(loaded.targets)] + [",".join(f"{x:.6f}" for x in row) for row in p]
        try:
            atomic_write_text(folder / f"{name}.csv", "\n".join(lines) + "\n")
        except OSError as e:  # a full disk: the files written so far are whole
            raise StorageError(f"{folder / name}.csv: cannot be written ({e.strerror or e})") from None
    per_sequence = row is not None
    click.echo(f"predictions: {folder} ({len(preds)} videos, "
               + ("one prediction each" if per_sequence else
                  f"{sum(len(p) for p in preds.values())} frames") + f") from run {run_id}")
