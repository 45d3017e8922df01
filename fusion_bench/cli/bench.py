"""``fusion-bench bench``: time inference and training steps of a model on synthetic tensors."""

from __future__ import annotations

import sys

import click

from ..errors import FusionBenchError
from .app import State, cli
from .options import build_run_config, config_options, json_option, store_option, threads_option
from .startup import import_training_modules

#: the options that become :class:`fusion_bench.bench.settings.BenchSettings` fields
SETTINGS = ("amp", "compile", "compile_mode", "batch_size", "seq_len", "scope", "warmup",
            "repeats", "latency_repeats", "no_train", "find_max_batch", "max_batch", "threads",
            "peak_tflops", "group")


@cli.command()
@config_options("fusion", "encoder", "modalities", "device", preset="paper")
@click.option("--all", "all_fusions", is_flag=True,
              help="Benchmark every registered fusion, each in a fresh subprocess.")
@click.option("--amp", type=click.Choice(["bf16", "fp16"]), default=None,
              help="Run forward passes under torch.autocast with this dtype.")
@click.option("--compile", "compile", is_flag=True,
              help="torch.compile the timed module; reports compile time and graph breaks.")
@click.option("--compile-mode", default=None,
              help="torch.compile mode, implies --compile: default | reduce-overhead (replays "
                   "CUDA graphs: no per-kernel launch cost) | max-autotune | "
                   "max-autotune-no-cudagraphs.")
@click.option("--batch-size", type=int, default=None, help="Run batch (default: the preset's).")
@click.option("--seq-len", type=int, default=None, help="Window length L (default: the preset's).")
@click.option("--scope", type=click.Choice(["model", "fusion"]), default="model", show_default=True,
              help="model: encoders + fusion + head; fusion: the fusion alone, on tensors of the "
                   "encoders' output widths.")
@click.option("--warmup", type=int, default=None,
              help="Untimed calls before each measurement (default: CPU 1, GPU 10).")
@click.option("--repeats", type=int, default=None,
              help="Timed calls at the run batch (default: CPU 3, GPU 30).")
@click.option("--latency-repeats", type=int, default=None,
              help="Timed calls at batch 1 (default: CPU 10, GPU 100).")
@click.option("--no-train", is_flag=True, help="Time inference only.")
@click.option("--find-max-batch", is_flag=True,
              help="Search the largest batch whose training step fits in memory.")
@click.option("--max-batch", type=int, default=4096, show_default=True,
              help="Upper bound of --find-max-batch.")
@threads_option
@click.option("--peak-tflops", type=float, default=None,
              help="The device's peak TFLOP/s, for the achieved fraction (default: a datasheet table).")
@store_option
@json_option("the record, not the table,")
@click.option("--group", default=None, hidden=True)  # set by --all on its subprocesses
@click.pass_context
def bench(ctx, all_fusions, out, as_json, **opts):
    """Time inference and training steps of a model on synthetic tensors and store the record.

    The model is the configured one (the paper's by default: windows of 300 frames, TCN encoders,
    batch 12); see fusion_bench.bench for what is measured and how.
    """
    import json

    from ..bench.settings import BenchSettings
    from ..errors import ConfigError

    state: State = ctx.obj
    s = {k: opts.pop(k) for k in SETTINGS}
    settings = BenchSettings(  # checks its values: before --all starts any process
        **{k: v for k, v in s.items() if k not in ("no_train", "compile", "compile_mode")},
        train=not s["no_train"], compile=s["compile"] or s["compile_mode"] is not None,
        compile_mode="default" if s["compile_mode"] is None else s["compile_mode"])
    if all_fusions:
        if opts["fusion"] is not None:
            raise ConfigError("give --fusion NAME or --all, not both")
        return _bench_all(ctx, state, out)
    from ..preflight import preflight
    from ..results import ResultsStore

    cfg = build_run_config(opts)
    reg = state.registry
    preflight([cfg], reg)  # names and options, as a run checks them (a name before torch loads)
    store = ResultsStore(out)
    store.check_writable()
    from ..bench.record import make_bench_record
    from ..bench.runner import run_bench
    from ..report.bench_report import format_report
    from ..runs import plugins_used
    if settings.train or settings.compile:  # both import torch._dynamo; inference alone need not
        import_training_modules()
    plugins = plugins_used(reg, cfg)
    try:
        result = run_bench(cfg, reg, settings, log=lambda msg: click.echo(msg, err=True))
    except RuntimeError as e:  # out of memory is caught per phase; this is anything else
        what = cfg.model.fusion if "fusion" in plugins else cfg.model.encoder
        raise FusionBenchError(
            f"benchmarking {what} failed: {type(e).__name__}: {str(e).strip().splitlines()[0]} "
            f"(an unsupported --amp/--compile/--device combination? --debug shows the traceback)"
        ) from e
    record = make_bench_record(cfg, settings, result, plugins)
    path = store.write(record)
    if as_json:
        click.echo(json.dumps(record, indent=2, sort_keys=True, default=str))
    else:
        click.echo(format_report(record))
    click.echo(f"record: {path}", err=as_json)


def _bench_all(ctx, state: State, out: str) -> int:
    """``bench --all``: one fresh ``fusion-bench bench --fusion NAME`` process per fusion (so no
    fusion inherits another's memory, threads or compiled graphs), then one summary table."""
    import subprocess
    import uuid

    from ..report import bench_table
    from ..results import ResultsStore

    group = uuid.uuid4().hex[:12]
    head = [sys.executable, "-m", "fusion_bench.cli"]
    for spec in state.plugin_specs:
        head += ["--plugin", spec]
    head += ["--strict-plugins"] * state.strict + ["--debug"] * state.debug
    args = forwarded_options(ctx, drop=("all_fusions", "fusion", "group"))
    failed = []
    for name in state.registry.names("fusions"):
        click.echo(f"\n== {name} ==", err=True)
        rc = subprocess.run([*head, "bench", "--fusion", name, *args, "--group", group]).returncode
        if rc != 0:
            failed.append(f"{name} (exit {rc})")
    records = [r for r in ResultsStore(out).records()
               if r.get("kind") == "bench" and r.get("bench", {}).get("group") == group]
    tables = bench_table.build_tables(records)
    for rows in tables.values():
        click.echo("\n" + bench_table.render_table(rows, "md"))
    if not tables:
        click.echo(f"no benchmark records of this --all in {out}", err=True)
    if failed:
        click.echo(f"failed: {', '.join(failed)}", err=True)
        return 1
    return 0


def forwarded_options(ctx, drop: tuple[str, ...]) -> list[str]:
    """The command's options as given, as command-line arguments (for a subprocess)."""
    args: list[str] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name in drop:
            continue
        value = ctx.params.get(param.name)
        flag = param.opts[0]
        if param.is_flag:
            args += [flag] if value else []
        elif param.multiple:
            for v in value or ():
                args += [flag, str(v)]
        elif value is not None:
            args += [flag, str(value)]
    return args
