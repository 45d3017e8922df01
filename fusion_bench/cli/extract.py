"""``fusion-bench extract``: run backbones over raw media once, into a resumable feature cache."""

from __future__ import annotations

import sys

import click

from .app import State, cli
from .options import ray_resource_options, ray_resources


def pairs(items, flag: str) -> dict[str, str]:
    """``("visual=timm:resnet50", ...)`` → {"visual": "timm:resnet50"}; ConfigError on bad syntax."""
    from ..errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{flag} expects MODALITY=VALUE, e.g. {flag} visual=timm:resnet50; got {item!r}")
        out[key.strip()] = value.strip()
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
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Media-loading threads.")
@click.option("--device", default="auto", show_default=True, help="cpu | cuda | auto.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process; ray: one Ray task per video (RAY_ADDRESS for a "
                   "cluster whose nodes all read --root and --weights); this process alone "
                   "writes the cache.")
@ray_resource_options(
    "task",
    cpus="ray: CPUs each video's task asks for (its torch threads) [default: 1].",
    gpus="ray: GPUs each video's task asks for; a fraction packs tasks on a GPU "
         "[default: 1 where the cluster has GPUs and --device allows, else 0].",
    retries="ray: attempts after a video's task failed or its node died; a video still "
            "failing is recorded as failed and named at the end, the others go on.")
@click.option("--skip-bad-lines", is_flag=True,
              help="Mark malformed label lines invalid (-5) and list them, instead of failing.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
def extract(state: State, dataset, root, backbones, weights, random_init, cache, workers, device,
            executor, cpus_per_task, gpus_per_task, retries, skip_bad_lines, quiet):
    """Extract per-frame features of every video once into a resumable cache."""
    from ..backbones import build_backbones
    from ..data.affwild2 import extract_features
    from ..errors import ConfigError
    from ..runtime import resolve_device

    if dataset != "affwild2":
        raise ConfigError(f"extract reads raw media of the affwild2 layout; got --dataset {dataset!r}")
    specs = pairs(backbones, "--backbone")
    if not specs:
        raise ConfigError("give at least one --backbone, e.g. --backbone visual=timm:resnet50")
    resources = ray_resources(executor, "task", cpus_per_task, gpus_per_task, retries)
    resolve_device(device)  # an unknown device, or cuda without one: one line, whatever the backbone
    from .progress import third_party_quiet

    with third_party_quiet(quiet):  # transformers' loading bar, among others
        built = build_backbones(state.registry, specs, pairs(weights, "--weights"), random_init,
                                device)
    for m, b in built.items():
        d = b.describe()
        note = " RANDOM WEIGHTS (--random-init)" if d.get("random_init") else f" weights {d.get('weights')}"
        click.echo(f"{m}: {d['backbone']}:{d['model']} ({b.dim}-d){note}", err=True)
    bar = None

    def on_video(done: int, total: int, status: str) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            bar = click.progressbar(length=total, label="extract", file=sys.stderr, show_eta=True)
            bar.__enter__()
        bar.label = f"extract ({status})"
        bar.update(1)

    runner = None
    if executor == "ray":
        import os

        from ..ray_extract import Job, RayRunner
        from ..sweep import RegistrySpec

        job = Job(RegistrySpec.of(state.plugin_specs, state.strict), tuple(specs.items()),
                  tuple((m, os.path.abspath(p)) for m, p in pairs(weights, "--weights").items()),
                  random_init, device, os.path.abspath(root), dataset)
        runner = RayRunner(job, resources, lambda line: click.echo(line, err=True))
    try:
        with third_party_quiet(quiet):
            cache_root, manifest = extract_features(root, built, cache, workers, skip_bad_lines,
                                                    on_video,
                                                    lambda line: click.echo(line, err=True),
                                                    runner)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    for m, t in manifest.get("throughput", {}).items():
        if m in built:
            click.echo(f"{m}: {t['frames']} frames in {t['seconds']:.1f} s = {t['frames_per_s']:.0f} frames/s")
    note = runner.note() if runner is not None else ""
    click.echo(f"cache: {cache_root} ({len(manifest['videos'])} videos){note}")
