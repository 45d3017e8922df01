"""Checkpoints of a run in training, so that an interrupted run resumes where it stopped and ends
with the record an uninterrupted run makes (bit-identical scores on CPU).

Layout under the store's root::

    checkpoints/<config_hash>.pt    the run of that configuration, as of its last finished epoch

One file per configuration (:meth:`fusion_bench.config.RunConfig.hash`), rewritten atomically
(:func:`fusion_bench.files.atomic_write_bytes`: a reader, or a run killed mid-write, sees the
old file or the new one) after each validated epoch that is not its model's last, and when a
model's training ends. It holds the models the run has finished (their fit and best weights)
and the state of the one in training (:class:`FitState`): weights, optimizer, plateau
scheduler, every random generator, early-stopping state, history, steps, frames and training
time. The batch order is not stored: it is drawn from a generator seeded with the run's seed
and replayed (:func:`fusion_bench.train.fit`).

A run that finds its configuration's checkpoint resumes from it (:class:`RunCheckpoint`). A
checkpoint that cannot be read, or that was written for other models or another schedule, is
moved aside (``<hash>.pt.unusable-<time>``) with a one-line warning and the run starts from the
beginning. Loading uses ``torch.load(weights_only=True)``: a checkpoint holds tensors, plain
containers, numbers and strings only.

Two processes training one configuration at once (a ``run`` beside a sweep that claimed it)
share its file: each write is whole, and any of them is a point of the same training, so a
resume from either is right; the first to finish removes it, the other's next epoch writes it
again.
"""

from __future__ import annotations

import dataclasses
import io
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import Note
from .files import atomic_write_bytes
from .provenance import now_utc

FOLDER = "checkpoints"
FORMAT = 1  # raised when what a checkpoint holds changes; another format is set aside


def error_line(e: BaseException) -> str:
    """``e`` in one line: its first line that says something (``load_state_dict`` opens with a
    line ending in a colon, then names each mismatch on a line of its own), at most 200
    characters, after its type."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]
    return f"{type(e).__name__}: {(lines or [''])[0][:200]}"


# -- random generators -----------------------------------------------------------------------------
def capture_rng(device: torch.device) -> dict:
    """Torch's (CPU, and ``device``'s when CUDA), numpy's and Python's global random states, as
    tensors and plain values (what ``torch.load(weights_only=True)`` reads back)."""
    version, internal, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    out = {"torch": torch.get_rng_state(),
           "python": {"version": version, "state": list(internal), "gauss": gauss},
           "numpy": {"keys": torch.from_numpy(np.asarray(keys, np.int64)), "pos": int(pos),
                     "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def restore_rng(state: dict, device: torch.device) -> None:
    """Set the generators :func:`capture_rng` captured (CUDA's when both runs used CUDA)."""
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# -- one model's training --------------------------------------------------------------------------
@dataclass
class FitState:
    """A fit after its ``epoch``-th validated epoch: what :func:`fusion_bench.train.fit` needs to
    go on as if it had not stopped."""

    epoch: int  # epochs finished
    model: dict  # the weights now (state dict)
    optimizer: dict  # Adam's state dict
    plateau: dict  # ReduceLROnPlateau's state dict
    rng: dict  # capture_rng()
    best: float  # best validation mean so far (-inf before any)
    best_epoch: int
    best_state: dict | None  # the weights of the best epoch
    stale: int  # epochs since the best (early stopping)
    history: list  # the fit's history so far
    step: int  # optimizer steps counted so far
    frames: int  # labelled frames trained on so far
    seconds: float  # training time so far

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> FitState:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


_FIT_KEYS = {f.name for f in dataclasses.fields(FitState)}


def _malformed(obj, config_hash: str) -> str | None:
    """What makes a loaded object unusable as a checkpoint of ``config_hash``, or None."""
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        return f"not a fusion-bench checkpoint of format {FORMAT}"
    if obj.get("config_hash") != config_hash:
        return f"written for configuration {obj.get('config_hash')!r}, not {config_hash!r}"
    models = obj.get("finished")
    current = obj.get("current")
    if not isinstance(obj.get("plan"), dict) or not isinstance(models, list):
        return "no schedule or no list of finished models"
    for m in models + ([current] if current is not None else []):
        if not isinstance(m, dict) or not isinstance(m.get("label"), str) \
                or not isinstance(m.get("columns"), list):
            return "a model without its label or columns"
    for m in models:
        if not isinstance(m.get("fit"), dict) or not isinstance(m.get("weights"), dict):
            return f"finished model {m['label']!r} without its fit or weights"
    if current is not None and not (isinstance(current.get("state"), dict)
                                    and _FIT_KEYS <= set(current["state"])):
        return f"model {current['label']!r} without its training state"
    return None


# -- where checkpoints live ------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoints:
    """Where runs keep checkpoints (a results store's root), and what a run does with them:
    ``restart``: remove the checkpoint it finds instead of resuming it; ``keep``: keep a run's
    checkpoint after its record is written (by default it is removed then); ``readonly``: read
    a checkpoint, never write, remove or set one aside (the ranks other than 0 of a torchrun
    run, which resume what rank 0 resumes)."""

    root: str
    restart: bool = False
    keep: bool = False
    readonly: bool = False

    def path(self, config_hash: str) -> Path:
        return Path(self.root) / FOLDER / f"{config_hash}.pt"

    def open(self, config_hash: str, name: str) -> RunCheckpoint:
        """The checkpoint of a run of ``config_hash`` (``name`` names the run in messages)."""
        return RunCheckpoint(self, config_hash, name)

    def stored(self, config_hash: str) -> None:
        """The run of ``config_hash`` has its record: its checkpoint goes, unless ``keep``."""
        if not self.keep and not self.readonly:
            self.path(config_hash).unlink(missing_ok=True)


class RunCheckpoint:
    """One run's checkpoint: the one it found (checked by :meth:`check`, then handed out model
    by model) and the ones it writes as it trains."""

    def __init__(self, where: Checkpoints, config_hash: str, name: str):
        self.path, self.hash, self.name = where.path(config_hash), config_hash, name
        self.finished: list[dict] = []  # models this run has finished, as the file holds them
        self.found: dict | None = None
        self.plan: dict = {}
        self._write_failed = False
        self.readonly = where.readonly
        if where.restart and not where.readonly:
            self.path.unlink(missing_ok=True)
        elif self.path.exists() and not (where.restart and where.readonly):
            self.found = self._read()

    def _read(self) -> dict | None:
        try:
            with warnings.catch_warnings():  # torch's own words on a foreign file: ours suffice
                warnings.simplefilter("ignore")
                obj = torch.load(self.path, map_location="cpu", weights_only=True)
            problem = _malformed(obj, self.hash)
        except FileNotFoundError:
            return None  # removed since exists(): by a run of the same configuration finishing
        except Exception as e:  # noqa: BLE001 - any unreadable file: set aside, never a traceback
            problem = f"not readable ({error_line(e)})"
        if problem is not None:
            self._set_aside(problem)
            return None
        return obj

    def _set_aside(self, problem: str) -> None:
        if self.readonly:  # rank 0 sets it aside (and says so)
            return
        aside = self.path.with_name(f"{self.path.name}.unusable-{now_utc().replace(':', '')}")
        try:
            self.path.replace(aside)
            where = f"moved to {aside.name}"
        except OSError as e:
            where = f"left in place ({e.strerror or e})"
        warnings.warn(f"checkpoint {self.path}: {problem}; {where}, {self.name} trains from the "
                      f"start", stacklevel=3)

    def check(self, models: list[tuple[str, list[int]]], plan: dict) -> None:
        """Keep the checkpoint found only if it was written for these ``models`` (label, target
        columns; in training order) and this ``plan`` (the schedule and the number of training
        windows), else set it aside; say what resumes (a note)."""
        self.plan = plan
        found = self.found
        if found is None:
            return
        done = [(m["label"], m["columns"]) for m in found["finished"]]
        if found["current"] is not None:
            done.append((found["current"]["label"], found["current"]["columns"]))
        if found["plan"] != plan:
            self.found = None
            self._set_aside(f"written for another schedule ({_diff(found['plan'], plan)}): the "
                            "data or the training settings changed")
            return
        if done != models[:len(done)]:
            self.found = None
            self._set_aside("written for other models than this run trains")
            return
        n = len(found["finished"])
        of = f" of model {n + 1} of {len(models)} ({models[n][0]})" if len(models) > 1 else ""
        if found["current"] is not None:
            what = f"from epoch {found['current']['state']['epoch']} of {plan['epochs']}{of}"
        elif n < len(models):
            what = f"after {n} of its {len(models)} models"
        else:
            what = "with every model trained (evaluating only)"
        warnings.warn(f"resuming {self.name} {what} (checkpoint {self.path})", Note, stacklevel=2)

    def finished_model(self, label: str) -> tuple[dict, dict] | None:
        """(fit result as a dict, best weights) of model ``label``, if the checkpoint found has
        it finished; it is then part of the checkpoints this run writes."""
        for m in (self.found or {}).get("finished", []):
            if m["label"] == label:
                self.finished.append(m)
                return m["fit"], m["weights"]
        return None

    def fit_state(self, label: str) -> FitState | None:
        """Where model ``label`` stopped, if the checkpoint found was written during its fit."""
        current = (self.found or {}).get("current")
        if current is None or current["label"] != label:
            return None
        return FitState.from_dict(current["state"])

    def epoch_done(self, label: str, columns: tuple[int, ...], state: FitState) -> None:
        """Write the checkpoint: the finished models and ``label``'s ``state``."""
        self._write({"label": label, "columns": list(columns), "state": state.as_dict()})

    def model_done(self, label: str, columns: tuple[int, ...], fit: dict, weights: dict) -> None:
        """Model ``label`` is trained: write the checkpoint with it among the finished."""
        self.finished.append({"label": label, "columns": list(columns), "fit": fit,
                              "weights": {k: v.detach().cpu().clone() for k, v in weights.items()}})
        self._write(None)

    def _write(self, current: dict | None) -> None:
        if self.readonly:
            return
        buf = io.BytesIO()
        torch.save({"format": FORMAT, "config_hash": self.hash, "plan": self.plan,
                    "finished": self.finished, "current": current}, buf)
        try:
            atomic_write_bytes(self.path, buf.getvalue())
        except OSError as e:  # a full disk must not cost the training: it goes on without
            if not self._write_failed:
                self._write_failed = True
                warnings.warn(f"checkpoint {self.path} not written ({e.strerror or e}); {self.name} "
                              "trains on, but an interruption now loses its training", stacklevel=3)


def _diff(old: dict, new: dict) -> str:
    """The keys of two plans that differ, as ``key old -> new``."""
    return ", ".join(f"{k} {old.get(k)} -> {new.get(k)}" for k in sorted(set(old) | set(new))
                     if old.get(k) != new.get(k))
