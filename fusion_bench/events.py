"""Run events: what a run tells progress displays and experiment trackers as it goes.

A plugin implements any of the hooks ``run_start(run)``, ``data_summary(run, summary)``,
``step_end(run, step)``, ``epoch_end(run, epoch)`` and ``run_end(run, record)`` (:mod:`fusion_bench.hookspecs`); the run path calls them through
:class:`Events`. A hook that raises is reported once and then left out: a tracker's fault must not
cost a result. No torch here: events carry plain numbers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

HOOKS = ("run_start", "data_summary", "step_end", "epoch_end", "run_end")


@dataclass(frozen=True)
class RunInfo:
    """The run the events are about."""

    name: str  # "<fusion>-s<seed>", as in the run id
    config: dict  # the resolved configuration (RunConfig.to_dict())
    config_hash: str
    models: tuple[str, ...]  # the labels of the models the run trains, in order


@dataclass(frozen=True)
class StepEnd:
    """One batch of a training epoch of one model, done (a progress bar's tick)."""

    model: str  # its label, as in EpochEnd
    epoch: int  # 1-based
    step: int  # the batch's place in the epoch, 1-based
    steps: int  # batches in this epoch
    loss: float | None  # the batch's training loss; None: a batch with nothing to fit, skipped


@dataclass(frozen=True)
class EpochEnd:
    """One finished training epoch of one model of a run."""

    model: str  # its label, one of RunInfo.models (e.g. "rcma valence+arousal")
    epoch: int  # 1-based
    epochs: int  # planned (passes, or train.steps / train.eval_every); early stopping may end sooner
    loss: float  # mean training loss (1 − CCC) over the epoch's batches
    val: dict[str, float] = field(default_factory=dict)  # validation CCC per target and "mean"
    lr: float = 0.0  # learning rate at the epoch's end
    best: float = float("-inf")  # best validation mean so far
    best_epoch: int = 0
    seconds: float = 0.0  # training time of the epoch (validation excluded)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def eta(elapsed: float, done: int, total: int) -> str:
    """What is left of a sweep after ``done`` of its ``total`` runs took ``elapsed`` seconds, as a
    line's tail: `` (3 runs left, ETA 0:01:30)``, at the pace so far (with runs in parallel too,
    as it is measured on the wall clock); empty once none is left."""
    left = total - done
    if left <= 0 or done <= 0:
        return ""
    s = round(elapsed / done * left)
    return f" ({left} run{'s' if left > 1 else ''} left, ETA {s // 3600}:{s // 60 % 60:02d}:{s % 60:02d})"


class Events:
    """Calls the run-event hooks of a plugin manager's plugins (or none: ``Events(None)``)."""

    def __init__(self, pm=None):
        self.pm = pm
        self._broken: set[str] = set()

    def _call(self, hook: str, **kwargs) -> None:
        if self.pm is None:
            return
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.plugin_name in self._broken:
                continue
            try:
                impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as e:  # noqa: BLE001 - a display or tracker must not fail the run
                self._broken.add(impl.plugin_name)
                warnings.warn(f"plugin {impl.plugin_name!r}: {hook} raised {type(e).__name__}: "
                              f"{e}; its run-event hooks are off for the rest of this run",
                              stacklevel=3)

    def run_start(self, run: RunInfo) -> None:
        self._call("run_start", run=run)

    def data_summary(self, run: RunInfo, summary: dict) -> None:
        self._call("data_summary", run=run, summary=summary)

    def wants(self, hook: str) -> bool:
        """Whether any plugin (not switched off) implements ``hook``: the run path asks before
        it sends an event per training step."""
        return self.pm is not None and any(
            impl.plugin_name not in self._broken for impl in getattr(self.pm.hook, hook).get_hookimpls())

    def step_end(self, run: RunInfo, step: StepEnd) -> None:
        self._call("step_end", run=run, step=step)

    def epoch_end(self, run: RunInfo, epoch: EpochEnd) -> None:
        self._call("epoch_end", run=run, epoch=epoch)

    def run_end(self, run: RunInfo, record: dict) -> None:
        self._call("run_end", run=run, record=record)


@contextlib.contextmanager
def plugged(pm, plugins: Sequence[tuple[str, object]]) -> Iterator[None]:
    """Each ``(name, plugin)`` of ``plugins`` registered on the plugin manager ``pm`` for the
    scope, so that the run events inside reach it; on the way out each is closed (its
    ``close()``, where it has one) and unregistered. No plugins: ``pm`` is not touched."""
    for name, plugin in plugins:
        pm.register(plugin, name=name)
    try:
        yield
    finally:
        for _, plugin in plugins:
            close = getattr(plugin, "close", None)
            if close is not None:
                close()
            pm.unregister(plugin)
