"""``--log mlflow``: each run as an MLflow run (needs ``mlflow``: the ``mlflow`` extra).

Where: ``MLFLOW_TRACKING_URI`` when set, else a local SQLite store ``<store>/mlflow.db`` (MLflow
3 refuses its old file store by default), artifacts under ``<store>/mlartifacts``; experiment
``fusion-bench``. The MLflow run is named as the fusion-bench run (``<fusion>-s<seed>``), tagged
with the config hash, and gets the resolved configuration as parameters (dotted keys); per model
(its label, characters MLflow refuses as ``_``) the metrics ``<model>/loss``, ``<model>/lr``,
``<model>/val_<target>`` (and ``val_mean``) at the epoch as the step; at the end ``test/<target>``
and the status FINISHED (FAILED if the run stopped on an error).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .. import hookimpl

EXPERIMENT = "fusion-bench"


def metric_key(label: str) -> str:
    """``label`` with what MLflow refuses in a metric name (not alphanumerics, ``_-. /``) as ``_``,
    and spaces too (``concat valence+arousal`` -> ``concat_valence_arousal``)."""
    return re.sub(r"[^A-Za-z0-9_\-./]", "_", label)


def _flat(d: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = str(v)[:500]
    return out


class MlflowTracker:
    """A run-events plugin logging each run to MLflow through its client (no global state)."""

    def __init__(self, root: Path):
        root = Path(root).resolve()
        given = os.environ.get("MLFLOW_TRACKING_URI")
        self.uri = given or f"sqlite:///{root / 'mlflow.db'}"
        # the store's folder, not MLflow's default ./mlartifacts; a server of the user's decides
        self.artifacts = None if given else (root / "mlartifacts").as_uri()
        self.client: Any = None
        self.run_id: str | None = None

    @hookimpl
    def run_start(self, run):
        from mlflow.tracking import MlflowClient  # the extra: imported when chosen

        self.close()
        self.client = MlflowClient(tracking_uri=self.uri)
        exp = self.client.get_experiment_by_name(EXPERIMENT)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(
            EXPERIMENT, artifact_location=self.artifacts)
        self.run_id = self.client.create_run(exp_id, run_name=run.name,
                                             tags={"fusion_bench.config_hash": run.config_hash}
                                             ).info.run_id
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in _flat(run.config).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    @hookimpl
    def epoch_end(self, run, epoch):
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        key, now = metric_key(epoch.model), _millis()
        values = {"loss": epoch.loss, "lr": epoch.lr, **{f"val_{k}": v for k, v in epoch.val.items()}}
        self.client.log_batch(self.run_id, metrics=[
            Metric(f"{key}/{name}", float(v), now, epoch.epoch) for name, v in values.items()])

    @hookimpl
    def run_end(self, run, record):
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        now = _millis()
        self.client.log_batch(self.run_id, metrics=[
            Metric(f"test/{metric_key(k)}", float(v), now, 0)
            for k, v in record.get("metrics", {}).get("test", {}).items()])
        self.client.set_tag(self.run_id, "fusion_bench.run_id", str(record.get("run_id", "")))
        self.client.set_terminated(self.run_id, "FINISHED")
        self.run_id = None

    def close(self) -> None:
        """A run still open (it stopped on an error before ``run_end``) is marked FAILED."""
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, "FAILED")
            self.run_id = None


def _millis() -> int:
    import time

    return int(time.time() * 1000)
