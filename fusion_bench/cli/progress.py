"""A progress bar per trained model on stderr, as a run-events plugin (``epoch_end``)."""

from __future__ import annotations

import sys

import click

from .. import hookimpl


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
    """The run events of ``reg``'s plugins, plus a progress display when ``show``; use as a
    context manager (the display is removed, and its bar closed, on the way out)."""
    import contextlib

    from ..events import Events

    @contextlib.contextmanager
    def scope():
        display = ProgressDisplay() if show else None
        if display is not None:
            reg.pm.register(display, name="fusion-bench-progress")
        try:
            yield Events(reg.pm)
        finally:
            if display is not None:
                display.close()
                reg.pm.unregister(display)

    return scope()
