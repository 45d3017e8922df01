"""``fusion-bench predict``: per-frame predictions of a stored run's model on a features folder."""

from __future__ import annotations

import click

from .app import State, cli


@cli.command()
@click.option("--run", "run_id", required=True, help="Run id of a stored run (its record's run_id).")
@click.option("--results", default="results", show_default=True, help="Results store.")
@click.option("--root", required=True, help="A features folder (the format of --dataset features).")
@click.option("--out", required=True, help="Folder for one <video>.csv of predictions per video.")
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:N.")
@click.pass_obj
def predict(state: State, run_id, results, root, out, device):
    """Write per-frame predictions of a stored run's model for every video of a features folder
    (overlap-averaged as the run scored; one CSV per video, a column per target)."""
    from pathlib import Path

    from ..artifacts import load_model
    from ..data.features import FeaturesDataset, load_video
    from ..errors import ConfigError
    from ..files import atomic_write_text

    loaded = load_model(run_id, results, state.registry)
    art = loaded.record["artifacts"]
    dims = {m: art["dims"][m] for m in art["modalities"]}
    ds = FeaturesDataset(root, tuple(dims))
    missing = {m: d for m, d in ds.dims.items() if dims.get(m) != d}
    if missing:
        raise ConfigError(f"{root}: features of {', '.join(f'{m} ({d}-d)' for m, d in missing.items())} "
                          f"do not match the model's {dims}")
    names = sorted({n for s in ds.split_names.values() for n in s})
    videos = [load_video(ds.root, n, tuple(dims), dims) for n in names]
    preds = loaded.predict(videos, device)
    folder = Path(out)
    for name, p in preds.items():
        lines = [",".join(loaded.targets)] + [",".join(f"{x:.6f}" for x in row) for row in p]
        atomic_write_text(folder / f"{name}.csv", "\n".join(lines) + "\n")
    click.echo(f"predictions: {folder} ({len(preds)} videos, {sum(len(p) for p in preds.values())} "
               f"frames) from run {run_id}")
