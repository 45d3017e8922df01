"""ABAW valence/arousal submission files.

Format (one CSV for the whole test list): header ``image_location,valence,arousal``, then one row
per frame of every test video, in the test list's order, ``<video>/<00001>.jpg`` (1-based frame
numbers as in ``cropped_aligned``), predictions clipped to [-1, 1].

:func:`train_and_predict` trains the configured model with the one training loop
(:func:`fusion_bench.runs.fit_targets`, on the dataset's train split, validated on its val split) and
predicts videos that have no labels (the official test list from the cache).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import TARGETS, dataset_targets
from .errors import DataError


def write_submission(path: Path, predictions: dict[str, np.ndarray]) -> int:
    """Write ``predictions`` (video → (frames, 2) valence, arousal) to ``path``; return rows."""
    from .files import atomic_write_text

    lines = ["image_location,valence,arousal"]
    for video, p in predictions.items():
        p = np.clip(np.asarray(p, np.float64), -1.0, 1.0)
        if p.ndim != 2 or p.shape[1] != 2:
            raise DataError(f"submission: predictions of {video!r} must be (frames, 2); got {p.shape}")
        lines += [f"{video}/{i + 1:05d}.jpg,{v:.6f},{a:.6f}" for i, (v, a) in enumerate(p)]
    atomic_write_text(Path(path), "\n".join(lines) + "\n")
    return len(lines) - 1


def train_and_predict(cfg, registry, videos=None, events=None) -> tuple[dict[str, np.ndarray], dict]:
    """Train ``cfg``'s model(s) on the run path (:func:`fusion_bench.runs.fit_targets`); predict
    ``videos`` (default: the dataset's submission videos).

    Returns (video → (frames, 2) predictions, val scores of each fitted model).
    """
    from .data.features import load_video
    from .data.windows import make_windows
    from .evaluate import predict_into
    from .preflight import preflight
    from .runs import fit_targets, load_dataset, run_info, split_windows
    from .runtime import compute_device

    preflight([cfg], registry)
    device = compute_device(cfg.device)  # as a run: the same numerics
    ds, splits = load_dataset(registry, cfg)
    if dataset_targets(ds) != TARGETS:  # the ABAW format has a valence and an arousal column
        raise DataError(f"dataset {cfg.data.name!r} has the targets "
                        f"{','.join(dataset_targets(ds))}; an ABAW submission holds "
                        f"{','.join(TARGETS)}")
    if videos is None:
        names = ds.submission_videos() if hasattr(ds, "submission_videos") else []
        if not names:
            raise DataError(f"dataset {cfg.data.name!r} lists no test videos to predict "
                            "(affwild2: VA_Estimation_Challenge/Test_Set.txt before extract)")
        videos = [load_video(ds.root, n, ds.modalities, ds.dims) for n in names]
    mods = tuple(ds.dims)
    info = run_info(cfg, registry)
    cfg, wins = split_windows(cfg, splits, mods)  # window and hops as a run resolves them
    wtrain, wval = wins["train"], wins["val"]
    wtest = make_windows(videos, mods, cfg.data.window, cfg.data.hop_for("test"))
    preds = [np.zeros((v.n_frames, len(TARGETS))) for v in videos]
    scores = {}
    info = run_info(cfg, registry)
    if events is not None:
        events.run_start(info)
    for fitted in fit_targets(cfg, registry, ds.dims, wtrain, wval, splits["val"], device,
                              events, info):
        scores["+".join(TARGETS[c] for c in fitted.columns)] = fitted.fit.best_val
        predict_into(preds, fitted.columns, fitted.model, wtest, videos, device)
    if events is not None:  # no run record here: what a submission has instead
        events.run_end(info, {"kind": "submission", "val": scores, "videos": len(videos)})
    return {v.name: p for v, p in zip(videos, preds, strict=True)}, scores
