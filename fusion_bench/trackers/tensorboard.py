"""``--log tensorboard``: each run's epochs as TensorBoard scalars, through
``torch.utils.tensorboard`` (needs the ``tensorboard`` package: the ``tensorboard`` extra).

A run writes to ``<store>/tensorboard/<run name>-<config hash[:8]>/``; per model (its label with
spaces as ``_``) the tags ``<model>/loss``, ``<model>/lr`` and ``<model>/val_<target>`` (and
``val_mean``), at the epoch number as the step; at the run's end ``test/<target>`` (and
``test/mean``): the record's test CCC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import hookimpl


def _tag(label: str) -> str:
    return label.replace(" ", "_").replace("/", "_")


class TensorBoardTracker:
    """A run-events plugin writing TensorBoard event files under ``root/tensorboard``."""

    def __init__(self, root: Path):
        self.root = Path(root) / "tensorboard"
        self.writer: Any = None  # a SummaryWriter while a run is on

    @hookimpl
    def run_start(self, run):
        from torch.utils.tensorboard import SummaryWriter  # the extra: imported when chosen

        self.close()
        self.writer = SummaryWriter(log_dir=str(self.root / f"{run.name}-{run.config_hash[:8]}"))

    @hookimpl
    def epoch_end(self, run, epoch):
        if self.writer is None:
            return
        tag = _tag(epoch.model)
        self.writer.add_scalar(f"{tag}/loss", epoch.loss, epoch.epoch)
        self.writer.add_scalar(f"{tag}/lr", epoch.lr, epoch.epoch)
        for k, v in epoch.val.items():
            self.writer.add_scalar(f"{tag}/val_{k}", v, epoch.epoch)

    @hookimpl
    def run_end(self, run, record):
        if self.writer is None:
            return
        for k, v in record.get("metrics", {}).get("test", {}).items():
            self.writer.add_scalar(f"test/{k}", v, 0)
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
