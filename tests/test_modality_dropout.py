"""train.modality_dropout: the drop pattern by hand, never all modalities, its rate, its seeding,
and its place in the training loop and the run's identity."""

from __future__ import annotations

import pytest
import torch

from fusion_bench.config import RunConfig
from fusion_bench.modality_dropout import drop_modalities, drop_pattern, step_uniforms

from .conftest import rcma_record, tiny_overrides


def test_drop_pattern_by_hand():
    u = torch.tensor([[0.1, 0.5, 0.9],    # only the first is below 0.3
                      [0.2, 0.1, 0.05],   # all below: the largest (0.2, the first) is kept
                      [0.6, 0.7, 0.8],    # none below
                      [0.3, 0.31, 0.0]])  # 0.3 itself is not below 0.3 (strict <)
    want = torch.tensor([[True, False, False],
                         [False, True, True],
                         [False, False, False],
                         [False, False, True]])
    assert torch.equal(drop_pattern(u, 0.3), want)


def test_never_all_modalities_and_the_kept_one_is_uniform():
    u = step_uniforms(30000, 3, seed=1, step=0)
    drop = drop_pattern(u, 0.999)  # nearly every draw drops: exactly one modality is kept
    assert bool((drop.sum(1) == 2).all())
    kept = (~drop).float().mean(0)
    assert torch.allclose(kept, torch.full((3,), 1 / 3), atol=0.015)


def test_effective_rate_is_rate_less_rate_cubed_over_three():
    # per modality: dropped when u < p, except the third of the all-dropped rows (p³) that
    # keeps it: p − p³/3 = 0.3 − 0.009 = 0.291 for p = 0.3 (std of the mean of 90000: 0.0015)
    drop = drop_pattern(step_uniforms(90000, 3, seed=0, step=5), 0.3)
    assert float(drop.float().mean()) == pytest.approx(0.291, abs=0.005)


def test_masks_seeded_by_run_seed_and_step():
    masks = {m: torch.ones(64, 10, dtype=torch.bool) for m in ("visual", "audio", "text")}
    a = drop_modalities(masks, 0.5, seed=3, step=7)
    b = drop_modalities(masks, 0.5, seed=3, step=7)
    c = drop_modalities(masks, 0.5, seed=3, step=8)
    assert all(torch.equal(a[m], b[m]) for m in masks)
    assert any(not torch.equal(a[m], c[m]) for m in masks)
    for m in masks:  # a modality is dropped for the whole window, or not at all
        rows = a[m].all(1) | ~a[m].any(1)
        assert bool(rows.all())
    seen = torch.stack([a[m].any(1) for m in masks]).any(0)
    assert bool(seen.all())  # never every modality of a window


def test_dropping_keeps_a_missing_frame_missing():
    masks = {"visual": torch.tensor([[True, False, True]]), "audio": torch.tensor([[True, True, True]])}
    out = drop_modalities(masks, 0.0, seed=0, step=0)
    assert out is masks  # rate 0: untouched
    one = {"visual": masks["visual"]}
    assert drop_modalities(one, 0.9, seed=0, step=0) is one  # one modality: nothing to drop


def test_fit_drops_modalities_with_the_step(monkeypatch):
    from fusion_bench import train as train_mod
    from fusion_bench.config import build_config
    from fusion_bench.plugins import load_registry
    from fusion_bench.runs import run

    def tiny(*extra):
        run(build_config("quick", None, tiny_overrides() + list(extra)),
            load_registry(entry_points=False))

    calls = []
    real = train_mod.drop_modalities

    def spy(masks, rate, seed, step, *share):
        calls.append((rate, seed, step))
        return real(masks, rate, seed, step, *share)

    monkeypatch.setattr(train_mod, "drop_modalities", spy)
    tiny(("train.modality_dropout", "0.25"), ("seed", "4"))
    assert calls and all(r == 0.25 and s == 4 for r, s, _ in calls)
    steps = [st for *_, st in calls]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # one draw per step
    calls.clear()
    tiny(("seed", "4"))
    assert calls == []  # rate 0 (the default): no draw at all


def test_a_ranks_share_drops_what_its_windows_drop_in_the_whole_batch():
    # DDP: each rank holds rows rank::world of the global batch and must draw their pattern,
    # not a pattern of its own for a batch of its size
    import torch

    from fusion_bench.modality_dropout import drop_modalities

    masks = {m: torch.ones(7, 5, dtype=torch.bool) for m in ("a", "b", "c")}
    whole = drop_modalities(masks, 0.5, seed=3, step=11)
    for rank in (0, 1):
        share = {m: k[rank::2] for m, k in masks.items()}
        got = drop_modalities(share, 0.5, 3, 11, 7, lambda rows, r=rank: rows[r::2])
        for m in masks:
            assert torch.equal(got[m], whole[m][rank::2])
    assert any(not bool(whole[m].all()) for m in masks)  # something was dropped


def test_identity_keeps_rates_apart_and_the_default_hashes_as_before():
    base = RunConfig()
    with_zero = RunConfig()
    with_zero.train.modality_dropout = 0.0
    rated = RunConfig()
    rated.train.modality_dropout = 0.3
    assert base.hash("2") == with_zero.hash("2")
    assert rated.hash("2") != base.hash("2")
    assert "modality_dropout" not in base.identity()["train"]
    assert rated.identity()["train"]["modality_dropout"] == 0.3


def test_leaderboard_rows_keep_rates_apart_and_name_them():
    from fusion_bench.report.grouping import row_key, row_labels

    plain, dropped = rcma_record(modality_dropout=0.0), rcma_record(modality_dropout=0.3)
    assert row_key(plain) != row_key(dropped)
    labels = row_labels([plain, dropped])
    # the default is left out of the identity (hashes as before); the label names its value
    assert labels == ["rcma (modality_dropout=0)", "rcma (modality_dropout=0.3)"]


@pytest.mark.parametrize("key,value,says", [
    ("train.modality_dropout", "1", "rate in [0, 1)"),
    ("train.modality_dropout", "-0.1", "rate in [0, 1)"),
    ("train.modality_dropout", "nan", "rate in [0, 1)"),
    ("model.pooling", "max", "model.pooling must be 'mean' or 'attention'"),
    ("train.loss", "l1", "'window', 'batch' or 'mse'"),
])
def test_bad_settings_are_one_line(key, value, says):
    from fusion_bench.config import build_config
    from fusion_bench.errors import ConfigError

    with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        build_config("quick", None, [(key, value)])
