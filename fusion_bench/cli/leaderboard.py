"""``fusion-bench leaderboard``: tables (and plots) from the results store; no torch."""

from __future__ import annotations

import click

from .app import cli


@cli.command()
@click.option("--results", "results_dir", default="results", show_default=True, help="Results store.")
@click.option("--dataset", default=None, help="Only this dataset.")
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "latex", "html"]), default="md")
@click.option("--out", default=None, help="Folder to write leaderboard_<dataset>.<ext> into.")
@click.option("--sort", default="test_mean", show_default=True,
              help="Column to rank by: test_mean, test_<target> (test_valence, test_arousal, "
                   "or the dataset's own targets), val_mean, "
                   "drop_<modality>, noise_area, params, flops, train_fps, infer_fps "
                   "(params and flops: lowest first; test_*/val_mean: best --metric first; "
                   "others: highest first).")
@click.option("--metric", default="ccc", show_default=True, metavar="NAME",
              help="Metric the test/val columns show (`fusion-bench list metrics`), ranked in "
                   "its direction (e.g. rmse: lowest first); --plots stay CCC.")
@click.option("--plots", "plots_dir", default=None, metavar="DIR",
              help="Also write pareto_<dataset>.png and noise_<dataset>.png into DIR "
                   '(needs pip install "fusion-bench[plots]").')
@click.option("--explain", is_flag=True,
              help="After each table, every setting of each row's configuration (those that "
                   "differ between rows marked *).")
@click.option("--bench", "bench_tables", is_flag=True,
              help="Throughput tables of `fusion-bench bench` records instead, one per device "
                   "(throughput_<device>.<ext>).")
def leaderboard(results_dir, dataset, fmt, out, sort, metric, plots_dir, explain, bench_tables):
    """Tables of test CCC, or another --metric (mean ± sample std over seeds), per dataset from
    the results store."""
    from ..errors import FusionBenchError
    from ..report import grouping
    from ..report.leaderboard import build_rows, metric_direction, table
    from ..report.render import render
    from ..results import ResultsStore

    ext = {"md": "md", "csv": "csv", "latex": "tex", "html": "html"}[fmt]
    if out:  # before any table is made: a file or an unwritable folder is one error
        ResultsStore(out).check_writable()
    if bench_tables:
        from ..report import bench_table

        if plots_dir or dataset or sort != "test_mean" or metric != "ccc" or explain:
            raise click.UsageError("--bench takes none of --plots, --dataset, --sort, --metric, "
                                   "--explain")
        by_device = bench_table.build_tables(ResultsStore(results_dir).records())
        if not by_device:
            raise FusionBenchError(f"no benchmark records in {results_dir!r}; run "
                                   "`fusion-bench bench` first")
        for name, bench_records in by_device.items():
            emit(bench_table.render_table(bench_records, fmt), f"throughput_{name}.{ext}", name,
                 out)
        return
    if plots_dir:  # fail before writing any table, not after
        from ..report.plots import require_matplotlib, write_plots

        require_matplotlib()
    per_ds = build_rows(ResultsStore(results_dir).records(), dataset)
    if not per_ds:
        raise FusionBenchError(f"no successful runs in {results_dir!r}"
                               + (f" for dataset {dataset!r}" if dataset else "")
                               + "; run `fusion-bench run` or `fusion-bench sweep` first")
    higher_is_better = metric_direction([rec for rows in per_ds.values() for r in rows
                                         for rec in r.records], metric, results_dir)
    tables = {}
    for ds, rows in per_ds.items():  # every table first: a bad --sort writes nothing at all
        try:  # the valid --sort keys depend on the dataset's modalities
            tables[ds] = table(rows, sort, metric, higher_is_better)
        except ValueError as e:
            raise click.BadParameter(f"dataset {ds!r}: {e}", param_hint="'--sort'") from e
    for ds, rows in per_ds.items():
        emit(render(*tables[ds], fmt), f"leaderboard_{ds}.{ext}", ds, out)
        if explain:  # in the table's order
            by_label = {r.label: r for r in rows}
            order = [b[0] for b in tables[ds][1] if b[0] in by_label]  # a reference row has none
            click.echo("\n" + grouping.explain([(lab, by_label[lab].records) for lab in order]).rstrip())
        if plots_dir:
            write_plots(rows, plots_dir, echo=click.echo)


def emit(text: str, filename: str, title: str, out: str | None) -> None:
    """Write a table to OUT/filename (atomically), or print it under a title."""
    from pathlib import Path

    from ..files import atomic_write_text

    if out:
        path = Path(out) / filename
        atomic_write_text(path, text)
        click.echo(f"wrote {path}")
    else:
        click.echo(f"## {title}\n\n{text}")
