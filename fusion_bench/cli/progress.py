"""What a run shows on stderr as it goes, as run-events plugins: the data summary before
training (``data_summary``) and, per trained model, a progress bar on a terminal or, without
one (Slurm, nohup, a pipe), a plain ``logging`` line per epoch (``epoch_end``); and the
trackers chosen with ``--log``."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from .. import hookimpl


def summary_lines(summary: dict) -> list[str]:
    """The data summary (``record["data_summary"]``) as the CLI prints it."""
    derived = summary.get("derived", [])
    how = ""
    rule = summary.get("window_rule")
    if derived and rule and "quantile" not in rule:  # sequence level: whole sequences
        how = (f" ({', '.join(derived)} derived from the train split's sequence lengths: the "
               f"longest, at most {rule['cap']}; hop window/2, eval hop window/4)")
    elif derived and rule:
        how = (f" ({', '.join(derived)} derived from the train split's sequence lengths: largest "
               f"power of two ≤ their {rule['quantile']:.0%} quantile, at most {rule['cap']}; "
               f"hop window/2, eval hop window/4)")
    elif derived:
        how = " (eval hop = hop)"
    lines = [f"data: window {summary['window']}, hop {summary['hop']}, eval hop "
             f"{summary['eval_hop']}{how}"]
    if summary.get("label_level") == "sequence":
        lines.append("  labels: one per sequence; the model pools each window into one "
                     "prediction, and every score is over sequences")
    unit = "sequences" if summary.get("label_level") == "sequence" else "frames"
    for name, s in summary["splits"].items():
        labelled = max(1, s["labelled_frames"])
        lines.append(
            f"  {name:<5} {s['sequences']:>5} sequences, {s['frames']:>7} frames "
            f"({s['min_frames']}/{s['median_frames']:g}/{s['max_frames']} min/median/max, "
            f"{s['shorter_than_window']} shorter than a window), {s['windows']:>6} windows, "
            f"{s['padding']:.1%} padding"
            + (f"; {s['labelled_unseen']} labelled {unit} ({s['labelled_unseen'] / labelled:.1%}) "
               "show no modality (a constant prediction there)"
               if s.get("labelled_unseen") else ""))
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
    if level == logging.NOTSET:  # a level the user set is theirs
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
    """On a terminal: a bar within each epoch of each model (steps, it/s, ETA, running loss),
    then the epoch's line (:func:`epoch_line`), which stays on screen. tqdm draws the bar when
    it is installed (the ``progress`` extra), click's otherwise."""

    #: the running loss shown is refreshed every this many steps (formatting costs, not syncs)
    LOSS_EVERY = 10

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.bar: _TqdmBar | _ClickBar | None = None
        self.key: tuple[str, int] | None = None  # (model, epoch) the bar is for
        self.total = 0.0  # the epoch's losses so far, and how many
        self.count = 0
        self.status = ""

    @hookimpl
    def step_end(self, run, step):
        if self.bar is None or self.key != (step.model, step.epoch):
            self.close()
            self.key = (step.model, step.epoch)
            self.total, self.count, self.status = 0.0, 0, ""
            self.bar = _bar(step.steps, f"{step.model} {step.epoch}", self.stream,
                            lambda: self.status)
        if step.loss is not None:
            self.total += step.loss
            self.count += 1
        if self.count and (step.step % self.LOSS_EVERY == 0 or step.step == step.steps):
            self.status = f"loss {self.total / self.count:.4f}"
            self.bar.status(self.status)
        self.bar.update(1)

    @hookimpl
    def epoch_end(self, run, epoch):
        self.close()
        self.stream.write(epoch_line(epoch) + "\n")
        self.stream.flush()

    @hookimpl
    def run_end(self, run, record):
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.key = None


class _TqdmBar:
    def __init__(self, total: int, label: str, stream):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=label, file=stream, leave=False, unit="step",
                        dynamic_ncols=True)

    def status(self, text: str) -> None:
        self.bar.set_postfix_str(text, refresh=False)

    def update(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


class _ClickBar:
    def __init__(self, total: int, label: str, stream, status):
        self.bar: Any = click.progressbar(length=total, label=label, file=stream, show_eta=True,
                                     item_show_func=lambda _: status())
        self.bar.__enter__()

    def status(self, text: str) -> None:
        pass  # read through item_show_func at the next update

    def update(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.__exit__(None, None, None)


def _bar(total: int, label: str, stream, status):
    """A bar of ``total`` steps: tqdm's when installed, else click's."""
    try:
        return _TqdmBar(total, label, stream)
    except ImportError:
        return _ClickBar(total, label, stream, status)


#: what silences other libraries' bars: tqdm's, Hugging Face Hub's and transformers' (each reads
#: it when first imported: the backbones import them lazily, after this is set)
QUIET_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
             "TRANSFORMERS_VERBOSITY": "error", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}


@contextlib.contextmanager
def third_party_quiet(on: bool = True):
    """``--quiet`` for other libraries too, for the scope: their progress bars (transformers'
    loading bar, sentence-transformers', tqdm's) are off; the environment is restored after."""
    if not on:
        yield
        return
    saved = {k: os.environ.get(k) for k in QUIET_ENV}
    os.environ.update(QUIET_ENV)
    hf = sys.modules.get("transformers")  # imported already: its switch, not the environment
    if hf is not None:
        hf.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def run_events(reg, show: bool, log: Sequence[str] = (), root: str = "."):
    """The run events of ``reg``'s plugins, plus the data summary's display, the trackers
    ``log`` (:func:`fusion_bench.trackers.parse_log`'s names, writing under the store ``root``)
    and, when ``show``, a progress display (a bar on a terminal, log lines without one); a
    context manager: the displays and trackers are removed, and closed, on the way out."""
    from ..events import Events, plugged
    from ..trackers import tracking

    display: ProgressDisplay | LogDisplay | None = None
    if show:
        display = ProgressDisplay() if _is_terminal(sys.stderr) else LogDisplay()
    plugins: list[tuple[str, object]] = [("fusion-bench-summary", SummaryDisplay())]
    if display is not None:
        plugins.append(("fusion-bench-progress", display))
    with plugged(reg.pm, plugins), \
            _log_to_stderr() if isinstance(display, LogDisplay) else contextlib.nullcontext(), \
            tracking(reg.pm, log, root):
        yield Events(reg.pm)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or odd stream
        return False
