"""``--log wandb``: each run as a Weights & Biases run (needs ``wandb``: the ``wandb`` extra).

Project ``WANDB_PROJECT``, else ``fusion-bench``; the mode is W&B's own (``WANDB_MODE``:
``offline`` writes only under the store, ``<store>/wandb/``, for ``wandb sync`` later). The run
is named as the fusion-bench run and gets the resolved configuration as its config. Each epoch
of each model is one history row of ``<model>/loss``, ``<model>/lr``, ``<model>/val_<target>``
(and ``val_mean``) and ``<model>/epoch`` (W&B's own step counts rows: models trained one after
the other each start at epoch 1); at the end the summary gets ``test/<target>``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import hookimpl


class WandbTracker:
    """A run-events plugin logging each run to W&B."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.run: Any = None

    @hookimpl
    def run_start(self, run):
        import wandb  # the extra: imported when chosen

        self.close()
        self.root.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or "fusion-bench",
                              name=run.name, config=run.config, dir=str(self.root),
                              tags=[f"config-{run.config_hash[:8]}"],
                              settings=wandb.Settings(silent=True, console="off"))

    @hookimpl
    def epoch_end(self, run, epoch):
        if self.run is None:
            return
        key = epoch.model.replace(" ", "_")
        self.run.log({f"{key}/epoch": epoch.epoch, f"{key}/loss": epoch.loss,
                      f"{key}/lr": epoch.lr, **{f"{key}/val_{k}": v for k, v in epoch.val.items()}})

    @hookimpl
    def run_end(self, run, record):
        if self.run is None:
            return
        for k, v in record.get("metrics", {}).get("test", {}).items():
            self.run.summary[f"test/{k}"] = v
        self.run.summary["fusion_bench/run_id"] = str(record.get("run_id", ""))
        self.run.finish()
        self.run = None

    def close(self) -> None:
        """A run still open (it stopped on an error before ``run_end``) finishes as failed."""
        if self.run is not None:
            self.run.finish(exit_code=1)
            self.run = None
