"""``fusion-bench leaderboard``: tables (and plots) from the results store; no torch.

With ``--tables DIR`` each table is a file (``leaderboard_<dataset>.<ext>``). On stdout, md and latex
print each table under its name (``## name``, ``% name``); csv, json and html print one document
holding every table, with nothing else on stdout (a CSV with a ``dataset`` column, a JSON array,
one page), so ``fusion-bench leaderboard --format csv > t.csv`` is a file pandas reads as is.
"""

from __future__ import annotations

import click

from . import completion
from .app import cli
from .options import deprecated, given, store_option


@cli.command()
@store_option
@click.option("--results", "old_results", default=None, hidden=True)  # before --out, deprecated
@click.option("--dataset", default=None, help="Only this dataset.",
              shell_complete=completion.names("datasets"))
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "json", "latex", "html"]),
              default="md", show_default=True,
              help="md: the table and its caption; csv: numbers only (mean and std in their own "
                   "columns); json: every row's settings, per-seed values, mean, std and "
                   "verdicts; latex: booktabs, best values bold; html: a standalone page with "
                   "sortable columns and the plots.")
@click.option("--tables", "tables_to", default=None, metavar="DIR",
              help="Write leaderboard_<dataset>.<ext> into DIR instead of printing.")
@click.option("--sort", default="test_mean", show_default=True,
              help="Column to rank by: test_mean, test_<target> (test_valence, test_arousal, "
                   "or the dataset's own targets), val_mean, "
                   "drop_<modality>, noise_area, params, flops, train_fps, infer_fps "
                   "(params and flops: lowest first; test_*/val_mean: best --metric first; "
                   "others: highest first).")
@click.option("--metric", default="ccc", show_default=True, metavar="NAME",
              help="Metric the test/val columns show (`fusion-bench list metrics`), ranked in "
                   "its direction (e.g. rmse: lowest first); --plots stay CCC.")
@click.option("--compact", is_flag=True,
              help="Only the accuracy columns (model, n, the metric's test/val columns, ≈ best, "
                   "beats ridge), with the caption cut to match: a table that fits a paper.")
@click.option("--label", "latex_label", default=None, metavar="LABEL",
              help="The LaTeX \\label (--format latex); {dataset} is replaced by the table's "
                   "dataset  [default: tab:leaderboard-{dataset}]")
@click.option("--plots", "plots_dir", default=None, metavar="DIR",
              help="Also write pareto_<dataset>.png and noise_<dataset>.png into DIR "
                   '(needs pip install "fusion-bench-affect[plots]").')
@click.option("--explain", is_flag=True,
              help="After each table, every setting of each row's configuration (those that "
                   "differ between rows marked *).")
@click.option("--bench", "bench_tables", is_flag=True,
              help="Throughput tables of `fusion-bench bench` records instead, one per device "
                   "(throughput_<device>.<ext>).")
@click.pass_context
def leaderboard(ctx, out, old_results, dataset, fmt, tables_to, sort, metric, compact, latex_label,
                plots_dir, explain, bench_tables):
    """Tables of test CCC, or another --metric (mean ± sample std over seeds), per dataset from
    the results store."""
    from ..report import formats
    from ..results import ResultsStore

    results_dir, tables_dir = store_and_tables(ctx, out, old_results, tables_to)
    ext = formats.EXTENSIONS[fmt]
    if latex_label is not None and fmt != "latex":
        raise click.UsageError("--label is the LaTeX table's \\label: use it with --format latex")
    if explain and not tables_dir and fmt in ("csv", "json", "html"):
        raise click.UsageError(f"--explain prints text, which would break the {fmt} on stdout: "
                               "add --tables DIR (the json holds every row's settings)")
    if tables_dir:  # before any table is made: a file or an unwritable folder is one error
        ResultsStore(tables_dir).check_writable("--tables", "tables folder")
    if bench_tables:
        return bench(results_dir, fmt, tables_dir, ext, dataset or sort != "test_mean"
                     or metric != "ccc" or explain or plots_dir or compact or latex_label)
    if plots_dir:  # fail before writing any table, not after
        from ..report.plots import require_matplotlib

        require_matplotlib()
        ResultsStore(plots_dir).check_writable("--plots", "plots folder")
    per_ds, tables = make_tables(results_dir, dataset, sort, metric, compact, latex_label, fmt,
                                 hint=given(ctx, "out"))
    if not tables_dir and fmt in ("csv", "json", "html"):  # one document on stdout, nothing else
        click.echo(document(list(tables.values()), per_ds, fmt), nl=False)
    for ds, rows in per_ds.items():
        if tables_dir:
            # a table of another metric beside the CCC one, not over it
            name = f"leaderboard_{ds}{'' if metric == 'ccc' else '_' + metric}.{ext}"
            emit(render(tables[ds], rows, fmt, latex_label), name, ds, tables_dir)
        elif fmt in ("md", "latex"):
            emit(render(tables[ds], rows, fmt, latex_label), "", ds, None,
                 heading="% " if fmt == "latex" else "## ")
        if explain:  # in the table's order
            from ..report import grouping

            by_label = {r.label: r for r in rows}
            order = [r.label for r in tables[ds].rows if r.kind == "model"]
            click.echo("\n" + grouping.explain([(lab, by_label[lab].records) for lab in order]).rstrip())
        if plots_dir:
            from ..errors import StorageError
            from ..report.plots import write_plots

            try:
                write_plots(rows, plots_dir, echo=click.echo)
            except OSError as e:  # a full disk: each plot is written whole or not at all
                raise StorageError(f"{e.filename or plots_dir}: a plot cannot be written "
                                   f"({e.strerror or e})") from None


def make_tables(results_dir, dataset, sort, metric, compact, latex_label, fmt, hint=False):
    """(dataset → rows, dataset → Table) of the store; every table is made (and a LaTeX label
    checked) before any is written, so a bad --sort writes nothing at all. ``hint``: an empty
    store says that --out is the store (it once named the tables' folder)."""
    from ..errors import FusionBenchError
    from ..report.formats import latex_label as check_label
    from ..report.leaderboard import build_rows, build_table, metric_direction
    from ..results import ResultsStore

    per_ds = build_rows(ResultsStore(results_dir).records(), dataset)
    if not per_ds:
        raise FusionBenchError(f"no successful runs in {results_dir!r}"
                               + (f" for dataset {dataset!r}" if dataset else "")
                               + "; run `fusion-bench run` or `fusion-bench sweep` first"
                               + (" (--out is the results store; tables go to --tables DIR)"
                                  if hint else ""))
    higher_is_better = metric_direction([rec for rows in per_ds.values() for r in rows
                                         for rec in r.records], metric, results_dir)
    tables = {}
    for ds, rows in per_ds.items():
        try:  # the valid --sort keys depend on the dataset's modalities
            tables[ds] = build_table(rows, sort, metric, higher_is_better)
        except ValueError as e:
            raise click.BadParameter(f"dataset {ds!r}: {e}", param_hint="'--sort'") from e
        if compact:
            tables[ds] = tables[ds].compact()
        if fmt == "latex":
            try:
                check_label(latex_label, ds)
            except ValueError as e:
                raise click.BadParameter(str(e), param_hint="'--label'") from e
    return per_ds, tables


def _figures(per_ds) -> tuple[dict, str]:
    """The plots to embed in an html page (dataset → [(title, PNG)]), or a note saying why none."""
    from ..errors import FusionBenchError
    from ..report import plots

    try:
        plots.require_matplotlib()
    except FusionBenchError:
        return {}, f"No plots: {plots.INSTALL_HINT}."
    return {ds: plots.figures(rows) for ds, rows in per_ds.items()}, ""


def render(table, rows, fmt: str, latex_label: str | None) -> str:
    """One table as a file's text."""
    from ..report import formats

    if fmt == "html":
        return document([table], {table.dataset: rows}, fmt)
    return formats.render_table(table, fmt, label=latex_label)


def document(tables: list, per_ds: dict, fmt: str) -> str:
    """Every table in one csv, json or html document."""
    from ..report import formats

    if fmt == "csv":
        return formats.csv_text(tables)
    if fmt == "json":
        return formats.json_text(tables)
    from ..report.html_page import leaderboard_page

    figures, note = _figures({t.dataset: per_ds[t.dataset] for t in tables})
    return leaderboard_page(tables, figures, note)


def bench(results_dir: str, fmt: str, out: str | None, ext: str, other_options) -> None:
    """``--bench``: the throughput tables, one per device and workload."""
    from ..errors import FusionBenchError
    from ..report import bench_table
    from ..results import ResultsStore

    if other_options:
        raise click.UsageError("--bench takes none of --plots, --dataset, --sort, --metric, "
                               "--explain, --compact, --label")
    if fmt == "json":
        raise click.UsageError("--bench tables come as md, csv, latex or html; json is for run "
                               "leaderboards")
    by_device = bench_table.build_tables(ResultsStore(results_dir).records())
    if not by_device:
        raise FusionBenchError(f"no benchmark records in {results_dir!r}; run "
                               "`fusion-bench bench` first")
    if not out and fmt in ("csv", "html"):  # one document on stdout
        click.echo(bench_table.document(by_device, fmt), nl=False)
        return
    for name, bench_records in by_device.items():
        text = (bench_table.document({name: bench_records}, fmt) if fmt == "html"
                else bench_table.render_table(bench_records, fmt))
        emit(text, f"throughput_{name}.{ext}", name, out,
             heading="% " if fmt == "latex" else "## ")


def store_and_tables(ctx, out: str, old_results: str | None, tables: str | None
                     ) -> tuple[str, str | None]:
    """(results store, tables folder) from ``--out``/``--tables`` and the old spelling: before
    ``--out`` named the store, ``--results`` did and ``--out`` was the tables folder."""
    if old_results is None:
        return out, tables
    if given(ctx, "out") and tables is None:
        deprecated(f"--results {old_results} --out {out}", f"--out {old_results} --tables {out}")
        return old_results, out
    deprecated("--results", "--out (the results store of every verb)")
    return old_results, tables


def emit(text: str, filename: str, title: str, out: str | None, heading: str = "## ") -> None:
    """Write a table to OUT/filename (atomically), or print it under a title."""
    from pathlib import Path

    from ..errors import StorageError
    from ..files import atomic_write_text

    if out:
        path = Path(out) / filename
        try:
            atomic_write_text(path, text)
        except OSError as e:  # a full disk: the old table, if any, is whole (atomic write)
            raise StorageError(f"{path}: cannot be written ({e.strerror or e}); nothing was "
                               "changed there") from None
        click.echo(f"wrote {path}")
    else:
        click.echo(f"{heading}{title}\n\n{text}")
