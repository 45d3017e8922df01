"""What a run trains on, settled once the data is read: the windows resolved from the train
split's sequence lengths where the configuration leaves them to the data (:func:`resolve`), and
the data summary every run prints and records (:func:`data_summary`, ``record["data_summary"]``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .config import RunConfig
from .config.schema import WINDOW_RULE_VERSION
from .data import Video
from .data.windows import WINDOW_CAP, WINDOW_QUANTILE, Windows, resolve_windows
from .errors import ConfigError
from .train import schedule


def check_level(cfg: RunConfig, level: str) -> None:
    """ConfigError for settings that mean nothing at the dataset's label ``level``: a per-window
    CCC loss at sequence level (a window has one prediction there), a pooling at frame level
    (there is none)."""
    if level == "sequence" and cfg.train.loss == "window":
        raise ConfigError(f"train.loss=window is 1 − CCC within each window, and dataset "
                          f"{cfg.data.name!r} has one label per sequence (one prediction per "
                          "window); use train.loss=batch (CCC over the batch's sequences) or mse")
    if level == "frame" and cfg.model.pooling != "mean":
        raise ConfigError(f"model.pooling={cfg.model.pooling} pools a sequence into one "
                          f"prediction, and dataset {cfg.data.name!r} is labelled per frame; "
                          "leave model.pooling unset")


def resolve(cfg: RunConfig, splits: dict[str, list[Video]], level: str = "frame") -> RunConfig:
    """``cfg`` with ``data.window``, ``data.hop`` and ``data.eval_hop`` as the run uses them
    (:func:`fusion_bench.data.windows.resolve_windows` on the train split's lengths, by the
    rule of the dataset's label ``level``); a copy.
    Its identity stays ``cfg``'s: hash the configuration as given, not this one."""
    d = cfg.data
    w, h, e = resolve_windows(d.window, d.hop, d.eval_hop, [v.n_frames for v in splits["train"]],
                              level)
    return dataclasses.replace(cfg, data=dataclasses.replace(d, window=w, hop=h, eval_hop=e))


def _unseen(v: Video, mods: list[str], level: str) -> int:
    """Labelled frames of ``v`` that no modality of ``mods`` shows (at sequence level: 1 if the
    sequence is labelled and no modality shows any of its frames)."""
    shown = np.logical_or.reduce([v.masks[m] for m in mods]) if mods else np.zeros(v.n_frames, bool)
    if level == "sequence":
        return int(bool(v.valid.any()) and not shown.any())
    return int((v.valid & ~shown).sum())


def _split(videos: list[Video], windows: Windows, level: str = "frame") -> dict:
    lengths = sorted(v.n_frames for v in videos)
    mods = list(windows.masks)  # the run's modalities
    frames = max(1, sum(lengths))
    return {
        "sequences": len(videos),
        "frames": int(sum(lengths)),
        "labelled_frames": int(sum(int(v.valid.sum()) for v in videos)),
        "min_frames": lengths[0] if lengths else 0,
        "median_frames": float(lengths[len(lengths) // 2]) if lengths else 0.0,
        "max_frames": lengths[-1] if lengths else 0,
        "shorter_than_window": sum(n < windows.present.shape[1] for n in lengths),
        "windows": len(windows),
        "padding": windows.padding_share(),
        "present": {m: sum(int(v.masks[m].sum()) for v in videos) / frames for m in mods},
        # a labelled frame no modality shows can only get a constant prediction (the model's and
        # the ridge row's alike), and it is scored: say how many there are
        "labelled_unseen": sum(_unseen(v, mods, level) for v in videos),
    }


def data_summary(given: RunConfig, cfg: RunConfig, splits: dict[str, list[Video]],
                 wins: dict[str, Windows], level: str = "frame") -> dict:
    """The record's ``data_summary``: per split, sequences and frames (with the shortest, median
    and longest), windows and the share of window positions that are padding, each modality's
    share of frames present (``present``) and the labelled frames no modality shows
    (``labelled_unseen``: any model can only predict a constant there); the window and
    hops the run used and which of them the rule derived; the training schedule (steps per
    epoch, epochs, steps in all; per trained model); at sequence level ``label_level`` (and
    ``labelled_frames`` counts labelled sequences). ``given``: the configuration as set;
    ``cfg``: as resolved (:func:`resolve`)."""
    sched = schedule(cfg.train, len(wins["train"]))
    derived = given.data.derived()
    return {
        **({"label_level": level} if level != "frame" else {}),
        "splits": {s: _split(splits[s], wins[s], level) for s in splits},
        "window": cfg.data.window,
        "hop": cfg.data.hop,
        "eval_hop": cfg.data.hop_for("test"),
        "derived": list(derived),
        "window_rule": ({"version": WINDOW_RULE_VERSION, "cap": WINDOW_CAP,
                         **({"quantile": WINDOW_QUANTILE} if level == "frame"
                            else {"longest": True})}
                        if "window" in derived or "hop" in derived else None),
        "schedule": {"mode": sched.mode, "batch": sched.batch, "steps_per_pass": sched.steps_per_pass,
                     "steps_per_epoch": sched.steps_per_epoch, "epochs": sched.epochs,
                     "steps": sched.steps, "warmup_steps": sched.warmup_steps},
    }
