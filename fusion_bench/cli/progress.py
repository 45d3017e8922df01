"""What a run shows on stderr as it goes, as run-events plugins: the data summary before
training (``data_summary``) and, per trained model, a progress bar on a terminal or, without
one (Slurm, nohup, a pipe), a plain ``logging`` line per epoch (``epoch_end``); and the
trackers chosen with ``--log``."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Sequence

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


def epoch_line(epoch) -> str:
    """One finished epoch (a :class:`fusion_bench.events.EpochEnd`) as one line: loss, validation
    CCC per target and their mean, the best so far, learning rate and time."""
    val = " ".join(f"{k} {v:.3f}" for k, v in epoch.val.items() if k != "mean")
    mean = epoch.val.get("mean", float("nan"))
    return (f"{epoch.model} epoch {epoch.epoch}/{epoch.epochs}: loss {epoch.loss:.4f}, val CCC "
            f"{val + ' ' if val else ''}mean {mean:.3f} (best {epoch.best:.3f}@{epoch.best_epoch}), "
            f"lr {epoch.lr:.2e}, {epoch.seconds:.1f} s")


#: the logger of the per-epoch lines (``logging``: a handler of the user's, or ours on stderr)
LOG = logging.getLogger("fusion_bench.progress")


class LogDisplay:
    """Without a terminal: a ``logging`` INFO line per epoch, so a log file shows the run's course."""

    @hookimpl
    def epoch_end(self, run, epoch):
        LOG.info("%s", epoch_line(epoch))


@contextlib.contextmanager
def _log_to_stderr():
    """:data:`LOG` at INFO on stderr for the scope, unless logging is configured already (a root
    handler: the user's, a notebook's, pytest's), whose handlers then get the lines."""
    level = LOG.level
    if LOG.level == logging.NOTSET or LOG.level > logging.INFO:
        LOG.setLevel(logging.INFO)
    handler = None
    if not logging.getLogger().handlers and not LOG.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        LOG.addHandler(handler)
    try:
        yield
    finally:
        if handler is not None:
            LOG.removeHandler(handler)
        LOG.setLevel(level)


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


def run_events(reg, show: bool, trackers: Sequence[object] = ()):
    """The run events of ``reg``'s plugins, plus the data summary's display, the ``trackers``
    (:func:`fusion_bench.trackers.open_trackers`) and, when ``show``, a progress display (a bar
    on a terminal, log lines without one); use as a context manager (the displays and trackers
    are removed, and closed, on the way out)."""
    from ..events import Events

    @contextlib.contextmanager
    def scope():
        display: ProgressDisplay | LogDisplay | None = None
        if show:
            display = ProgressDisplay() if _is_terminal(sys.stderr) else LogDisplay()
        plugins: list[tuple[str, object]] = [("fusion-bench-summary", SummaryDisplay())]
        if display is not None:
            plugins.append(("fusion-bench-progress", display))
        plugins += [(f"fusion-bench-tracker-{i}", t) for i, t in enumerate(trackers)]
        for name, plugin in plugins:
            reg.pm.register(plugin, name=name)
        try:
            with _log_to_stderr() if isinstance(display, LogDisplay) else contextlib.nullcontext():
                yield Events(reg.pm)
        finally:
            for _, plugin in plugins:
                close = getattr(plugin, "close", None)
                if close is not None:
                    close()
                reg.pm.unregister(plugin)

    return scope()


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or odd stream
        return False
