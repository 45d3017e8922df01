"""What a run shows on stderr as it goes, as run-events plugins: the data summary before
training (``data_summary``) and a progress bar per trained model (``epoch_end``)."""

from __future__ import annotations

import sys

import click

from .. import hookimpl


def summary_lines(summary: dict) -> list[str]:
    """The data summary (``record["data_summary"]``) as the CLI prints it."""
    derived = summary.get("derived", [])
    how = ""
    rule = summary.get("window_rule")
    if derived and rule:
        how = (f" ({', '.join(derived)} derived from the train split's sequence lengths: largest "
               f"power of two ≤ their {rule['quantile']:.0%} quantile, at most {rule['cap']}; "
               f"hop window/2, eval hop window/4)")
    elif derived:
        how = " (eval hop = hop)"
    lines = [f"data: window {summary['window']}, hop {summary['hop']}, eval hop "
             f"{summary['eval_hop']}{how}"]
    for name, s in summary["splits"].items():
        lines.append(
            f"  {name:<5} {s['sequences']:>5} sequences, {s['frames']:>7} frames "
            f"({s['min_frames']}/{s['median_frames']:g}/{s['max_frames']} min/median/max, "
            f"{s['shorter_than_window']} shorter than a window), {s['windows']:>6} windows, "
            f"{s['padding']:.1%} padding")
    t = summary["schedule"]
    if t["mode"] == "steps":
        lines.append(f"training: {t['steps']} steps of {t['batch']} windows, validated every "
                     f"{t['steps_per_epoch']} ({t['epochs']} epochs; one pass over the windows is "
                     f"{t['steps_per_pass']} steps), warm-up {t['warmup_steps']}")
    else:
        lines.append(f"training: {t['epochs']} passes of {t['steps_per_epoch']} steps of "
                     f"{t['batch']} windows ({t['steps']} steps), warm-up {t['warmup_steps']}")
    return lines


class SummaryDisplay:
    """Prints each run's data summary to stderr before it trains."""

    @hookimpl
    def data_summary(self, run, summary):
        for line in summary_lines(summary):
            click.echo(line, err=True)


class ProgressDisplay:
    """Registered on the plugin manager for one command; one bar per model of the run."""

    def __init__(self):
        self.bar = None
        self.model: str | None = None
        self.status = ""

    @hookimpl
    def epoch_end(self, run, epoch):
        if self.bar is None or epoch.model != self.model:
            self.close()
            self.model = epoch.model
            self.bar = click.progressbar(length=epoch.epochs, label=epoch.model, file=sys.stderr,
                                         item_show_func=lambda _: self.status, show_eta=False)
            self.bar.__enter__()
            self.bar.update(epoch.epoch - 1)  # a resumed model starts past its first epoch
        self.status = (f"loss {epoch.loss:.3f}  val CCC {epoch.val.get('mean', float('nan')):.3f}"
                       f"  best {epoch.best:.3f}@{epoch.best_epoch}")
        self.bar.update(1)

    @hookimpl
    def run_end(self, run, record):
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
            self.model = None


def run_events(reg, show: bool):
    """The run events of ``reg``'s plugins, plus the data summary's display and, when ``show``,
    a progress display; use as a context manager (the display is removed, and its bar closed, on the way out)."""
    import contextlib

    from ..events import Events

    @contextlib.contextmanager
    def scope():
        display = ProgressDisplay() if show else None
        summary = SummaryDisplay()
        reg.pm.register(summary, name="fusion-bench-summary")
        if display is not None:
            reg.pm.register(display, name="fusion-bench-progress")
        try:
            yield Events(reg.pm)
        finally:
            reg.pm.unregister(summary)
            if display is not None:
                display.close()
                reg.pm.unregister(display)

    return scope()
