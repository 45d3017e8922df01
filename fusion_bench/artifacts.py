"""What a run trained, kept beside its record: the best weights of each model and the test
split's per-frame predictions, so a model can be reloaded (:func:`load_model`), used on new
features (``fusion-bench predict``), and a new metric computed without retraining.

Layout under the store's root::

    models/<run_id>/<targets>.pt           a state dict per model (torch.save of tensors only)
    models/<run_id>/test_predictions.npz   video name -> (frames, targets) float32

The record's ``artifacts`` names these files relative to the store. Loading follows no path
outside the store's folder, and reads weights with ``torch.load(weights_only=True)`` and arrays
with ``allow_pickle=False``: a store may come from someone else.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, StorageError
from .files import atomic_write_bytes
from .results import ResultsStore, read_record_or_warn

#: the record key a run's result carries its artifacts under until the store writes them
PENDING = "_artifacts"


def save(root: Path, run_id: str, artifacts: dict) -> dict:
    """Write a run's ``artifacts`` (``models``: label -> state dict; ``test_predictions``:
    video -> array; ``dims``, ``targets``) under ``root``; return the record's ``artifacts``."""
    import torch

    folder = Path("models") / run_id
    models = {}
    for label, state in artifacts["models"].items():
        rel = folder / f"{label.replace(' ', '_').replace('/', '_')}.pt"
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in state.items()}, buf)
        atomic_write_bytes(root / rel, buf.getvalue())
        models[label] = str(rel)
    # the modalities' order as a list: the record's JSON sorts its keys, and the order of the
    # modalities is the order the fusion concatenates them in
    entry = {"models": models, "modalities": list(artifacts["dims"]), "dims": dict(artifacts["dims"]),
             "targets": list(artifacts["targets"]), "columns": artifacts["columns"]}
    if artifacts.get("label_level", "frame") != "frame":  # the head load_model must rebuild
        entry["label_level"] = artifacts["label_level"]
    if tuple(artifacts.get("label_range", (-1.0, 1.0))) != (-1.0, 1.0):
        entry["label_range"] = list(artifacts["label_range"])
    preds = artifacts.get("test_predictions")
    if preds:
        rel = folder / "test_predictions.npz"
        buf = io.BytesIO()
        arrays = {k: np.asarray(v, np.float32) for k, v in preds.items()}
        # the stubs type **kwds as if they could reach allow_pickle: they are arrays by name
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        atomic_write_bytes(root / rel, buf.getvalue())
        entry["test_predictions"] = str(rel)
    return entry


def write_run(store: ResultsStore, record: dict) -> Path:
    """Store a run's ``record`` with what it trained: the artifacts first (a record never names
    a file that is not there yet), then the record, which names them; return its path. The run's
    epochs go to ``epochs/<run_id>.csv`` too (:mod:`fusion_bench.trackers.epochs_csv`), whether
    or not the weights are kept."""
    from .trackers.epochs_csv import write_epochs_csv

    pending = record.pop(PENDING, None)
    try:
        if pending is not None:
            record["artifacts"] = save(store.root, record["run_id"], pending)
        write_epochs_csv(store.root, record)
        return store.write(record)
    except (OSError, StorageError) as e:  # a full disk: no record, so no files of it either
        shutil.rmtree(store.root / "models" / record["run_id"], ignore_errors=True)
        (store.root / "epochs" / f"{record['run_id']}.csv").unlink(missing_ok=True)
        if isinstance(e, StorageError):
            raise
        raise StorageError(f"{e.filename or store.root}: what the run trained cannot be stored "
                           f"({e.strerror or e}); the store is as it was") from None


def run_config(record: dict):
    """The record's configuration as its run used it: the window and hops the data gave where
    the configuration left them to it (0), read from the record's ``data_summary``."""
    from .config import RunConfig

    cfg = RunConfig.from_dict(record["config"])
    summary = record.get("data_summary") or {}
    for key in ("window", "hop", "eval_hop"):
        if getattr(cfg.data, key) == 0 and summary.get(key):
            setattr(cfg.data, key, int(summary[key]))
    return cfg


def inside(root: Path, rel: str) -> Path:
    """``root / rel``, refused if it leads outside ``root`` (``..``, an absolute path, a link)."""
    base = Path(root).resolve()
    path = (base / rel).resolve()
    if not path.is_relative_to(base):
        raise DataError(f"{rel!r}: a record's file outside its store {str(base)!r}; not read")
    return path


@dataclass
class LoadedRun:
    """A stored run with its trained models, ready to predict."""

    record: dict
    models: list  # [(label columns, nn.Module in eval mode)], in the run's order
    targets: tuple[str, ...]

    def predict(self, videos: list, device: str = "cpu") -> dict[str, np.ndarray]:
        """Per-frame predictions, video name -> (frames, targets), overlap-averaged as a run
        scores them (windows of ``data.window`` frames every ``data.eval_hop``); a run on a
        sequence-level dataset predicts (1, targets) per sequence."""
        import torch

        from .data.windows import make_windows
        from .evaluate import predict_into

        cfg = run_config(self.record)
        mods = tuple(self.record["artifacts"]["modalities"])
        level = self.record["artifacts"].get("label_level", "frame")
        wins = make_windows(videos, mods, cfg.data.window, cfg.data.hop_for("test"), level)
        out = [np.zeros((1 if level == "sequence" else v.n_frames, len(self.targets)))
               for v in videos]
        dev = torch.device(device)
        for cols, model in self.models:
            model.to(dev)
            predict_into(out, cols, model, wins, videos, dev)
        return {v.name: p for v, p in zip(videos, out, strict=True)}


def load_model(run_id: str, results: str | Path = "results", registry=None) -> LoadedRun:
    """The trained models of stored run ``run_id`` (rebuilt from its record's configuration
    through the plugin ``registry``, default: the installed plugins) with their best weights."""
    import torch

    from .model import build_model
    from .plugins import load_registry
    root = Path(results)
    record = read_record_or_warn(inside(root, f"runs/{run_id}.json"))
    if record is None:
        raise DataError(f"no readable record of run {run_id!r} in {str(root)!r}")
    art = record.get("artifacts")
    if not isinstance(art, dict) or not art.get("models"):
        raise DataError(f"run {run_id!r} kept no model (it ran with --no-model, or before "
                        "runs kept them); train it again to get one")
    reg = registry if registry is not None else load_registry()
    cfg = run_config(record)
    dims = {m: int(art["dims"][m]) for m in art["modalities"]}  # in the run's order
    models = []
    for label, rel in art["models"].items():
        path = inside(root, rel)
        if label not in art.get("columns", {}):
            raise DataError(f"run {run_id!r}: its record names no target columns of model {label!r}")
        cols = tuple(art["columns"][label])
        model, _ = build_model(reg, cfg, dims, n_targets=len(cols),
                               level=art.get("label_level", "frame"),
                               label_range=tuple(art.get("label_range", (-1.0, 1.0))))
        try:  # weights only: a file from elsewhere cannot run code when it is read
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as e:  # noqa: BLE001 - any failure to read it (struct.error too): the file
            raise DataError(f"{rel}: not the weights of run {run_id!r} "
                            f"({type(e).__name__}: {str(e).strip().splitlines()[0][:200]})") from None
        model.eval()
        models.append((cols, model))
    return LoadedRun(record, models, tuple(art["targets"]))


def stored_predictions(run_id: str, results: str | Path = "results") -> dict[str, np.ndarray]:
    """The stored test split's per-frame predictions of run ``run_id`` (video -> array)."""
    root = Path(results)
    record = read_record_or_warn(inside(root, f"runs/{run_id}.json")) or {}
    rel = (record.get("artifacts") or {}).get("test_predictions")
    if rel is None:
        raise DataError(f"run {run_id!r} kept no test predictions")
    with np.load(inside(root, rel), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
