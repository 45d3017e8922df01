"""Presets: named sets of overrides (``quick``, the default; ``paper``, the RCMA paper's
configuration), and the plugin options a preset sets for one plugin only."""

from __future__ import annotations

import typing

# Presets: dicts of overrides. ``quick`` is the default, sized for a laptop CPU; ``paper`` is the
# RCMA paper's configuration (Praveen & Alam 2024, DESIGN section 5), on any dataset whose dims match.
PRESETS: dict[str, dict[str, typing.Any]] = {
    "quick": {},  # the dataclass defaults are the quick configuration
    "paper": {
        "seed": 3407,
        "data.window": 300,
        "data.hop": 200,
        "data.eval_hop": 200,
        "dataset.synthetic.dim_visual": 512,
        "dataset.synthetic.dim_audio": 128,
        "dataset.synthetic.dim_text": 768,
        "model.channels": {"visual": 512, "audio": 128, "text": 512},
        "model.per_target": True,
        "model.head_hidden": 0,
        "train.loss": "window",
        "train.lr": 1e-5,
        "train.weight_decay": 1e-3,
        "train.batch_size": 12,
        "train.warmup_epochs": 5,
        "train.plateau_patience": 5,
        "train.plateau_factor": 0.1,
        "train.min_lr": 1e-8,
        "train.epochs": 100,
        "train.early_stop_patience": 50,
    },
}


# Plugin options a preset sets for one fusion or encoder only (others may lack the option): set as
# ``fusion.<name>.<option>`` right after the preset, so the user's settings override them.
PRESET_FUSION_OPTIONS: dict[str, dict[str, dict[str, typing.Any]]] = {
    # The paper's p = 0.6 is tuned for L = 300 and 512-d features; with the quick model's 32-d
    # features and L = 64 it starves RCMA's updates of signal (DESIGN section 6 prototype: 0.1).
    # A random L×L time map scrambles frame alignment, so RCMA's cross-modal correlation starts
    # as noise; starting from the identity lets it see synchrony from step one (see rcma.py).
    "quick": {"rcma": {"dropout": 0.1, "time_init": "identity"}},
    "paper": {"rcma": {"dropout": 0.6, "iterations": 2, "joint": "others"}},
}


PRESET_ENCODER_OPTIONS: dict[str, dict[str, dict[str, typing.Any]]] = {
    # Kernel 3 (receptive field 29 frames, ~1 s): 3/5 of kernel 5's convolutions, and on the
    # default data at least as good (RCMA seed 0: validation mean 0.902 against 0.884).
    "quick": {"tcn": {"kernel": 3}},
    # the paper's TCN; another encoder (--encoder lstm) keeps its own options
    "paper": {"tcn": {"levels": 4, "kernel": 5, "dropout": 0.1, "causal": True, "weight_norm": True}},
}
