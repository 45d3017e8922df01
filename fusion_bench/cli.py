"""The ``fusion-bench`` command line.

Errors a user can cause (:class:`fusion_bench.errors.FusionBenchError`) are printed as one line
and exit with status 2; ``--debug`` shows the traceback instead. Heavy modules (torch, the
fusions, optional backbone packages) are imported inside commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import FusionBenchError

KIND_NAMES = ("fusions", "encoders", "backbones", "datasets")


class State:
    def __init__(self, plugins: tuple[str, ...], strict: bool, debug: bool):
        self.plugin_specs, self.strict, self.debug = plugins, strict, debug
        self._registry = None

    @property
    def registry(self):
        if self._registry is None:
            from .plugins import load_registry

            self._registry = load_registry(self.plugin_specs, strict=self.strict)
            for f in self._registry.failures:
                click.echo(f"warning: plugin {f.plugin!r} skipped: {f.error}", err=True)
        return self._registry


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fusion-bench")
@click.option("--plugin", "plugins", multiple=True, metavar="FILE_OR_MODULE",
              help="Load a plugin from a .py file or an importable module (repeatable).")
@click.option("--strict-plugins", is_flag=True, help="Fail when any plugin fails to load.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx, plugins, strict_plugins, debug):
    """Train, score and time multimodal fusion for valence/arousal recognition."""
    ctx.obj = State(tuple(plugins), strict_plugins, debug)


def _config(preset: str, config_file: str | None, flags: dict, sets, switches: dict | None = None):
    """The run configuration: preset, config file, the value flags, ``--set`` pairs, then the
    on/off switches (``flags``/``switches`` map a config key to the flag's value; None: not
    given)."""
    from .config import build_config, parse_set

    def given(d):
        return [(k, v) for k, v in (d or {}).items() if v is not None]

    return build_config(preset, config_file, given(flags) + parse_set(sets) + given(switches))


@cli.command()
@click.option("--fusion", default=None, help="Fusion plugin (default: concat). See `list fusions`.")
@click.option("--dataset", default=None, help="Dataset plugin (default: synthetic).")
@click.option("--encoder", default=None, help="Temporal encoder plugin (default: tcn).")
@click.option("--modalities", default=None, help="Comma-separated subset, e.g. visual,audio.")
@click.option("--root", default=None, help="Dataset folder (datasets read from disk).")
@click.option("--preset", default="quick", show_default=True, help="quick | paper.")
@click.option("--config", "config_file", default=None, metavar="FILE.toml", help="TOML config file.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, e.g. --set train.lr=1e-3 --set fusion.iterations=3.")
@click.option("--seed", type=int, default=None, help="Model seed (init, batch order).")
@click.option("--device", default=None, help="cpu | cuda | cuda:N | auto (default).")
@click.option("--out", default="results", show_default=True, help="Results store folder.")
@click.option("--robustness", is_flag=True,
              help="Also score the test split with each modality dropped and with Gaussian noise "
                   "(levels: robustness.levels).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
def run(state: State, fusion, dataset, encoder, modalities, root, preset, config_file, sets, seed,
        device, out, robustness, quiet):
    """Train and evaluate one configuration; print validation/test CCC and store the record."""
    from tabulate import tabulate

    from .results import ResultsStore
    from .sweep import run_and_store

    cfg = _config(preset, config_file, {
        "model.fusion": fusion, "data.name": dataset, "model.encoder": encoder,
        "data.modalities": modalities, "data.root": root, "seed": seed, "device": device,
    }, sets, {"train.progress": "false" if quiet else None,
              "robustness.enabled": "true" if robustness else None})
    record, path = run_and_store(cfg, state.registry, ResultsStore(out))
    m, ceiling = record["metrics"], record["dataset"].get("ceiling", {})
    rows = [[s, m[s]["valence"], m[s]["arousal"], m[s]["mean"]] for s in ("val", "test")]
    if "test" in ceiling:
        c = ceiling["test"]
        rows.append(["test ceiling", c["valence"], c["arousal"], c["mean"]])
    fusion_name = cfg.model.fusion if len(cfg.data.modalities) > 1 else "(single modality)"
    click.echo(f"\n{fusion_name} on {cfg.data.name} ({','.join(cfg.data.modalities)}), seed {cfg.seed}, "
               f"{record['wall']['total_s']:.1f} s on {record['environment']['device_name']}")
    click.echo(tabulate(rows, headers=["CCC", "valence", "arousal", "mean"], floatfmt=".3f"))
    if "test" in ceiling:
        click.echo(f"ceiling = CCC of the noiseless latent vs the noisy label; test mean is "
                   f"{m['test']['mean'] / ceiling['test']['mean']:.0%} of it")
    if "robustness" in record:
        click.echo("\n" + robustness_table(record["robustness"]))
    click.echo(f"record: {path}")


def robustness_table(rob: dict) -> str:
    """Test mean CCC with each modality dropped, and against noise level per noised modality."""
    from tabulate import tabulate

    lines = []
    if rob["drop"]:
        lines.append(tabulate([[m, s["valence"], s["arousal"], s["mean"]] for m, s in rob["drop"].items()],
                              headers=["test CCC, dropped", "valence", "arousal", "mean"], floatfmt=".3f"))
    rows = [[m, *[s["mean"] for s in curve], rob["area"][m]] for m, curve in rob["noise"].items()]
    lines.append(tabulate(rows, headers=["test mean CCC, noise on", *map(str, rob["noise_levels"]), "area"],
                          floatfmt=".3f"))
    return "\n\n".join(lines) + ("\nnoise level = std of the added noise in units of each feature's "
                                 "train-split std; area = mean CCC over the levels (trapezoid)")


@cli.command("list")
@click.argument("kind", type=click.Choice(KIND_NAMES))
@click.pass_obj
def list_(state: State, kind):
    """List registered fusions, encoders, backbones or datasets."""
    from tabulate import tabulate

    reg = state.registry
    rows = [[e.name, e.description, e.reference, e.plugin] for e in
            (reg.entries[kind][n] for n in reg.names(kind))]
    if not rows:
        click.echo(f"no {kind} registered")
        return
    click.echo(tabulate(rows, headers=["name", "description", "reference", "plugin"]))


@cli.command()
@click.pass_obj
def plugins(state: State):
    """List loaded plugins, their versions and what each registers, and any that failed."""
    from tabulate import tabulate

    reg = state.registry
    rows = []
    for p in reg.plugins.values():
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in p.registers.items()) or "-"
        rows.append([p.name, p.version, p.source, what])
    click.echo(tabulate(rows, headers=["plugin", "version", "source", "registers"]))
    for f in reg.failures:
        click.echo(f"FAILED {f.plugin}: {f.error}")


def _pairs(items, flag: str) -> dict[str, str]:
    """``("visual=timm:resnet50", ...)`` → {"visual": "timm:resnet50"}; ConfigError on bad syntax."""
    from .errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{flag} expects MODALITY=VALUE, e.g. {flag} visual=timm:resnet50; got {item!r}")
        out[key.strip()] = value.strip()
    return out


def build_backbones(registry, specs: dict[str, str], weights: dict[str, str], random_init: bool,
                    device: str) -> dict:
    """modality → built backbone, from ``NAME[:MODEL]`` specs (e.g. ``timm:resnet50``)."""
    from .errors import ConfigError

    unknown = set(weights) - set(specs)
    if unknown:
        raise ConfigError(f"--weights given for {', '.join(sorted(unknown))} but no --backbone for it")
    out = {}
    for modality, spec in specs.items():
        name, _, model = spec.partition(":")
        cls = registry.get("backbones", name).obj
        if getattr(cls, "modality", modality) != modality:
            raise ConfigError(f"backbone {name!r} extracts {cls.modality}, not {modality}; "
                              f"use --backbone {cls.modality}={spec}")
        out[modality] = cls(model=model or None, weights=weights.get(modality),
                            random_init=random_init, device=device)
    return out


@cli.command()
@click.option("--dataset", default="affwild2", show_default=True, help="Dataset with raw media.")
@click.option("--root", required=True, help="Dataset folder (official Aff-Wild2 layout).")
@click.option("--backbone", "backbones", multiple=True, metavar="MODALITY=NAME[:MODEL]",
              help="e.g. visual=timm:resnet50, audio=vggish, text=sbert (repeatable).")
@click.option("--weights", "weights", multiple=True, metavar="MODALITY=PATH",
              help="Local weights of a backbone (checkpoint file or model folder).")
@click.option("--random-init", is_flag=True,
              help="Allow backbones without weights on disk to use random weights (recorded).")
@click.option("--cache", default=None, help="Cache folder (default: ROOT/fusion_bench_cache).")
@click.option("--workers", type=int, default=2, show_default=True, help="Media-loading threads.")
@click.option("--device", default="auto", show_default=True, help="cpu | cuda | auto.")
@click.option("--skip-bad-lines", is_flag=True,
              help="Mark malformed label lines invalid (-5) and list them, instead of failing.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
def extract(state: State, dataset, root, backbones, weights, random_init, cache, workers, device,
            skip_bad_lines, quiet):
    """Extract per-frame features of every video once into a resumable cache."""
    from pathlib import Path

    from .errors import ConfigError

    if dataset != "affwild2":
        raise ConfigError(f"extract reads raw media of the affwild2 layout; got --dataset {dataset!r}")
    specs = _pairs(backbones, "--backbone")
    if not specs:
        raise ConfigError("give at least one --backbone, e.g. --backbone visual=timm:resnet50")
    from .data import affwild2
    from .data.cache import extract as run_extract

    root_p = Path(root)
    entries = affwild2.scan(root_p, skip_bad=skip_bad_lines)
    for e in entries:
        for line in e.bad_lines:
            click.echo(f"warning: {line}; frame marked invalid", err=True)
    built = build_backbones(state.registry, specs, _pairs(weights, "--weights"), random_init, device)
    for m, b in built.items():
        d = b.describe()
        note = " RANDOM WEIGHTS (--random-init)" if d.get("random_init") else f" weights {d.get('weights')}"
        click.echo(f"{m}: {d['backbone']}:{d['model']} ({b.dim}-d){note}", err=True)
    cache_root = Path(cache) if cache else root_p / affwild2.CACHE
    extra = {"test_set.txt": "".join(f"{e.name}\n" for e in entries if e.split == "test")}
    official = {s: [e.name for e in entries if e.split == s] for s in ("train", "val")}
    manifest = run_extract(entries, lambda e, mods: affwild2.load_media(root_p, e, mods), built,
                           cache_root, root_p, dataset, affwild2.fold_splits(official, {}, 0),
                           workers=workers, progress=not quiet, extra_files=extra)
    for m, t in manifest.get("throughput", {}).items():
        if m in built:
            click.echo(f"{m}: {t['frames']} frames in {t['seconds']:.1f} s = {t['frames_per_s']:.0f} frames/s")
    click.echo(f"cache: {cache_root} ({len(manifest['videos'])} videos)")


@cli.command()
@click.option("--dataset", default="affwild2", show_default=True, help="Dataset plugin.")
@click.option("--root", required=True, help="Dataset folder (with its feature cache).")
@click.option("--fusion", default=None, help="Fusion plugin.")
@click.option("--modalities", default=None, help="Comma-separated subset.")
@click.option("--preset", default="quick", show_default=True, help="quick | paper.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@click.option("--seed", type=int, default=None, help="Model seed.")
@click.option("--device", default=None, help="cpu | cuda | auto.")
@click.option("--out", "out_file", default="submission.csv", show_default=True, help="CSV to write.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
def submit(state: State, dataset, root, fusion, modalities, preset, sets, seed, device, out_file, quiet):
    """Train on the train split and write an ABAW submission CSV for the test list."""
    from .submission import train_and_predict, write_submission

    cfg = _config(preset, None, {
        "model.fusion": fusion, "data.name": dataset, "data.modalities": modalities,
        "data.root": root, "seed": seed, "device": device,
    }, sets, {"train.progress": "false" if quiet else None})
    preds, scores = train_and_predict(cfg, state.registry)
    rows = write_submission(out_file, preds)
    click.echo("val CCC: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    click.echo(f"submission: {out_file} ({rows} frames of {len(preds)} videos)")


@cli.command()
@click.option("--fusion", default=None, help="Fusion plugin to time (default: concat).")
@click.option("--all", "all_fusions", is_flag=True,
              help="Benchmark every registered fusion, each in a fresh subprocess.")
@click.option("--device", default=None, help="cpu | cuda | cuda:N | auto (default).")
@click.option("--amp", type=click.Choice(["bf16", "fp16"]), default=None,
              help="Run forward passes under torch.autocast with this dtype.")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the timed module; reports compile time and graph breaks.")
@click.option("--compile-mode", default=None,
              help="torch.compile mode, implies --compile: default | reduce-overhead (replays "
                   "CUDA graphs: no per-kernel launch cost) | max-autotune | "
                   "max-autotune-no-cudagraphs.")
@click.option("--batch-size", type=int, default=None, help="Run batch (default: the preset's).")
@click.option("--seq-len", type=int, default=None, help="Window length L (default: the preset's).")
@click.option("--preset", default="paper", show_default=True, help="quick | paper.")
@click.option("--config", "config_file", default=None, metavar="FILE.toml", help="TOML config file.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, e.g. --set fusion.iterations=3.")
@click.option("--modalities", default=None, help="Comma-separated subset, e.g. visual,audio.")
@click.option("--encoder", default=None, help="Temporal encoder plugin (default: tcn).")
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
@click.option("--threads", type=int, default=None,
              help="CPU threads (torch.set_num_threads; default: torch's choice).")
@click.option("--peak-tflops", type=float, default=None,
              help="The device's peak TFLOP/s, for the achieved fraction (default: a datasheet table).")
@click.option("--out", default="results", show_default=True, help="Results store folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON, not the table.")
@click.option("--group", default=None, hidden=True)  # set by --all on its subprocesses
@click.pass_context
def bench(ctx, fusion, all_fusions, device, amp, compile_, compile_mode, batch_size, seq_len, preset, config_file,
          sets, modalities, encoder, scope, warmup, repeats, latency_repeats, no_train,
          find_max_batch, max_batch, threads, peak_tflops, out, as_json, group):
    """Time inference and training steps of a model on synthetic tensors and store the record.

    The model is the configured one (the paper's by default: windows of 300 frames, TCN encoders,
    batch 12); see fusion_bench.throughput for what is measured and how.
    """
    import json

    from .errors import ConfigError
    from .results import ResultsStore
    from .sweep import plugins_used
    from .throughput import BenchSettings, format_report, make_bench_record, run_bench

    state: State = ctx.obj
    settings = BenchSettings(  # checks its values: before --all starts any process
        amp=amp, compile=compile_ or compile_mode is not None,
        compile_mode="default" if compile_mode is None else compile_mode, batch_size=batch_size, seq_len=seq_len, scope=scope,
        warmup=warmup, repeats=repeats, latency_repeats=latency_repeats, train=not no_train,
        find_max_batch=find_max_batch, max_batch=max_batch, threads=threads,
        peak_tflops=peak_tflops, group=group,
    )
    if all_fusions:
        if fusion is not None:
            raise ConfigError("give --fusion NAME or --all, not both")
        return _bench_all(ctx, state, out)
    cfg = _config(preset, config_file, {
        "model.fusion": fusion, "model.encoder": encoder, "data.modalities": modalities,
        "device": device}, sets)
    reg = state.registry
    plugins = plugins_used(reg, cfg)  # fails fast on an unknown name
    try:
        result = run_bench(cfg, reg, settings, log=lambda msg: click.echo(msg, err=True))
    except RuntimeError as e:  # out of memory is caught per phase; this is anything else
        what = cfg.model.fusion if "fusion" in plugins else cfg.model.encoder
        raise FusionBenchError(
            f"benchmarking {what} failed: {type(e).__name__}: {str(e).strip().splitlines()[0]} "
            f"(an unsupported --amp/--compile/--device combination? --debug shows the traceback)"
        ) from e
    record = make_bench_record(cfg, settings, result, plugins)
    path = ResultsStore(out).write(record)
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

    from . import bench_table
    from .results import ResultsStore

    group = uuid.uuid4().hex[:12]
    head = [sys.executable, "-m", "fusion_bench.cli"]
    for spec in state.plugin_specs:
        head += ["--plugin", spec]
    head += ["--strict-plugins"] * state.strict + ["--debug"] * state.debug
    args = _forwarded_options(ctx, drop=("all_fusions", "fusion", "group"))
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


def _forwarded_options(ctx, drop: tuple[str, ...]) -> list[str]:
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


@cli.command()
@click.option("--fusion", "fusions", required=True,
              help="Comma-separated fusions; only:MODALITY adds a single-modality row.")
@click.option("--seeds", type=int, default=5, show_default=True, help="Model seeds 0..N-1.")
@click.option("--dataset", default=None, help="Dataset plugin (default: synthetic).")
@click.option("--preset", default="quick", show_default=True)
@click.option("--config", "config_file", default=None, metavar="FILE.toml")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE")
@click.option("--out", default="results", show_default=True, help="Results store folder.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this machine's processes; ray: one Ray task per run "
                   "(RAY_ADDRESS for a cluster; pip install \"fusion-bench[ray]\").")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Runs at once [default: 1 for local, one per cluster CPU for ray].")
@click.option("--robustness", is_flag=True,
              help="Score every run with modalities dropped and noised, as `run --robustness`.")
@click.pass_obj
def sweep(state: State, fusions, seeds, dataset, preset, config_file, sets, out, executor, jobs,
          robustness):
    """Run fusions × seeds, skipping runs already stored; resumable after an interruption."""
    from .config import parse_set
    from .results import ResultsStore
    from .sweep import RegistrySpec, grid
    from .sweep import sweep as run_sweep

    base = parse_set(sets) + ([("data.name", dataset)] if dataset else [])
    if robustness:
        base.append(("robustness.enabled", "true"))
    names = [f.strip() for f in fusions.split(",") if f.strip()]
    configs = grid(names, list(range(seeds)), base, preset, config_file)
    res = run_sweep(configs, state.registry, ResultsStore(out), echo=click.echo, executor=executor,
                    jobs=jobs, spec=RegistrySpec.of(state.plugin_specs, state.strict))
    click.echo(f"{res.done} run, {res.skipped} already stored, {res.failed} failed")
    return 1 if res.failed else 0


@cli.command()
@click.option("--results", "results_dir", default="results", show_default=True, help="Results store.")
@click.option("--dataset", default=None, help="Only this dataset.")
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "latex", "html"]), default="md")
@click.option("--out", default=None, help="Folder to write leaderboard_<dataset>.<ext> into.")
@click.option("--sort", default="test_mean", show_default=True,
              help="Column to rank by: test_mean, test_valence, test_arousal, val_mean, "
                   "drop_<modality>, noise_area, params, flops, train_fps, infer_fps "
                   "(params and flops: lowest first; others: highest first).")
@click.option("--plots", "plots_dir", default=None, metavar="DIR",
              help="Also write pareto_<dataset>.png and noise_<dataset>.png into DIR "
                   '(needs pip install "fusion-bench[plots]").')
@click.option("--bench", "bench_tables", is_flag=True,
              help="Throughput tables of `fusion-bench bench` records instead, one per device "
                   "(throughput_<device>.<ext>).")
def leaderboard(results_dir, dataset, fmt, out, sort, plots_dir, bench_tables):
    """Tables of test CCC (mean ± sample std over seeds) per dataset from the results store."""
    from .errors import FusionBenchError
    from .leaderboard import build_rows, render, table
    from .results import ResultsStore

    ext = {"md": "md", "csv": "csv", "latex": "tex", "html": "html"}[fmt]
    if bench_tables:
        from . import bench_table

        if plots_dir or dataset or sort != "test_mean":
            raise click.UsageError("--bench takes none of --plots, --dataset, --sort")
        tables = bench_table.build_tables(ResultsStore(results_dir).records())
        if not tables:
            raise FusionBenchError(f"no benchmark records in {results_dir!r}; run "
                                   "`fusion-bench bench` first")
        for name, rows in tables.items():
            _emit(bench_table.render_table(rows, fmt), f"throughput_{name}.{ext}", name, out)
        return
    if plots_dir:  # fail before writing any table, not after
        from .plots import require_matplotlib, write_plots

        require_matplotlib()
    per_ds = build_rows(ResultsStore(results_dir).records(), dataset)
    if not per_ds:
        raise FusionBenchError(f"no successful runs in {results_dir!r}"
                               + (f" for dataset {dataset!r}" if dataset else "")
                               + "; run `fusion-bench run` or `fusion-bench sweep` first")
    tables = {}
    for ds, rows in per_ds.items():  # every table first: a bad --sort writes nothing at all
        try:  # the valid --sort keys depend on the dataset's modalities
            tables[ds] = table(rows, sort)
        except ValueError as e:
            raise click.BadParameter(f"dataset {ds!r}: {e}", param_hint="'--sort'") from e
    for ds, rows in per_ds.items():
        _emit(render(*tables[ds], fmt), f"leaderboard_{ds}.{ext}", ds, out)
        if plots_dir:
            write_plots(rows, plots_dir, echo=click.echo)


def _emit(text: str, filename: str, title: str, out: str | None) -> None:
    """Write a table to OUT/filename (atomically), or print it under a title."""
    from pathlib import Path

    from .results import atomic_write_text

    if out:
        path = Path(out) / filename
        atomic_write_text(path, text)
        click.echo(f"wrote {path}")
    else:
        click.echo(f"## {title}\n\n{text}")


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    builtin_commands = dict(cli.commands)
    try:
        _add_plugin_commands(argv)
        rv = cli.main(args=argv, prog_name="fusion-bench", standalone_mode=False)
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
        click.echo("Interrupted: finished runs are stored, nothing was written for unfinished "
                   "ones; run the same command again to complete a sweep.", err=True)
        return 130
    finally:
        cli.commands.clear()  # plugin verbs belong to this invocation only
        cli.commands.update(builtin_commands)


def _add_plugin_commands(argv: list[str]) -> None:
    """Let plugins add verbs (``register_commands(cli)``) when the verb asked for is not built
    in; built-in verbs, ``--help`` and ``list`` never pay for loading plugins here."""
    words = iter(argv)
    specs, verb = [], None
    for w in words:
        if w == "--plugin":
            specs.append(next(words, ""))
        elif w.startswith("--plugin="):
            specs.append(w.split("=", 1)[1])
        elif not w.startswith("-"):
            verb = w
            break
    if verb is None or verb in cli.commands:
        return
    from .plugins import load_registry

    reg = load_registry(specs, strict="--strict-plugins" in argv)
    for impl in reg.pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except Exception as e:  # noqa: BLE001 - one broken plugin must not break the CLI
            click.echo(f"warning: plugin {impl.plugin_name!r} skipped: register_commands raised "
                       f"{type(e).__name__}: {e}", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
