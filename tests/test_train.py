import numpy as np
import torch

from fusion_bench.config import build_config
from fusion_bench.plugins import load_registry
from fusion_bench.runs import run

from .conftest import tiny_overrides


def _run(*extra):
    cfg = build_config("quick", None, tiny_overrides() + list(extra))
    return cfg, run(cfg, load_registry(entry_points=False))


def test_same_seed_same_ccc_on_cpu():
    _, a = _run(("seed", "5"), ("device", "cpu"))
    _, b = _run(("seed", "5"), ("device", "cpu"))
    assert a["metrics"] == b["metrics"]
    _, c = _run(("seed", "6"), ("device", "cpu"))
    assert c["metrics"]["test"]["mean"] != a["metrics"]["test"]["mean"]


def test_per_target_trains_one_model_per_target():
    _, r = _run(("model.per_target", "true"))
    assert [f["targets"] for f in r["fits"]] == [["valence"], ["arousal"]]
    assert r["params"]["models"] == 2
    assert np.isfinite(r["metrics"]["test"]["mean"])


def test_best_epoch_weights_are_restored_and_history_kept():
    _, r = _run(("train.epochs", "4"), ("train.early_stop_patience", "1"))
    (f,) = r["fits"]
    vals = [h["val"]["mean"] for h in f["history"]]
    assert f["best_val"] == max(vals)
    assert f["best_epoch"] == 1 + int(np.argmax(vals))
    # validation score of the returned run equals the best epoch's (weights restored)
    assert abs(r["metrics"]["val"]["mean"] - f["best_val"]) < 1e-9
    assert f["epochs"] <= 4


def test_single_modality_runs_without_fusion():
    cfg, r = _run(("data.modalities", "audio"))
    assert r["params"]["fusion"] == 0
    assert r["options"]["fusion"] == {}


def test_warmup_ramps_lr():
    _, r = _run(("train.epochs", "3"), ("train.warmup_epochs", "2"), ("train.early_stop_patience", "9"))
    lrs = [h["lr"] for h in r["fits"][0]["history"]]
    assert lrs[0] < lrs[1] <= 2e-3 + 1e-12
    assert torch.isfinite(torch.tensor(lrs)).all()


def test_cosine_schedule_decays_to_min_lr_after_warmup():
    from fusion_bench.config import TrainConfig
    from fusion_bench.train import cosine_lr

    cfg = TrainConfig(lr=2e-3, min_lr=1e-6)
    assert cosine_lr(cfg, 0, 100) == 2e-3
    assert abs(cosine_lr(cfg, 50, 101) - (2e-3 + 1e-6) / 2) < 1e-12
    assert cosine_lr(cfg, 100, 101) == 1e-6
    # in a run: one warm-up epoch, then the epochs' last learning rates fall, ending at min_lr
    _, r = _run(("train.epochs", "4"), ("train.schedule", "cosine"), ("train.min_lr", "1e-5"),
                ("train.early_stop_patience", "9"))
    lrs = [h["lr"] for h in r["fits"][0]["history"]]
    assert lrs[0] == 2e-3  # the last warm-up step reaches lr
    assert lrs[1] > lrs[2] > lrs[3]
    assert abs(lrs[3] - 1e-5) < 1e-12


def test_eval_hop_sets_the_hop_of_validation_and_test_windows():
    cfg = build_config("quick", None, tiny_overrides() + [("data.hop", "32"), ("data.eval_hop", "8")])
    assert [cfg.data.hop_for(s) for s in ("train", "val", "test")] == [32, 8, 8]
    cfg = build_config("quick", None, tiny_overrides() + [("data.hop", "32"), ("data.eval_hop", "0")])
    assert [cfg.data.hop_for(s) for s in ("train", "val", "test")] == [32, 32, 32]
    # a denser evaluation changes the scores (more windows averaged per frame), validation's
    # included, not the training
    _, a = _run(("data.window", "32"), ("data.hop", "16"), ("data.eval_hop", "16"))
    _, b = _run(("data.window", "32"), ("data.hop", "16"), ("data.eval_hop", "4"))
    first_a, first_b = a["fits"][0]["history"][0], b["fits"][0]["history"][0]
    assert first_a["loss"] == first_b["loss"]
    assert first_a["val"]["mean"] != first_b["val"]["mean"]
    assert a["metrics"]["test"]["mean"] != b["metrics"]["test"]["mean"]


def test_early_stop_patience_zero_never_stops_early():
    _, r = _run(("train.epochs", "3"), ("train.early_stop_patience", "0"))
    assert r["fits"][0]["epochs"] == 3  # 0 turns early stopping off, as 0 does for clipping


def test_batches_without_valid_labels_do_not_train(monkeypatch):
    import pytest

    from fusion_bench import runs as runs_mod
    from fusion_bench.data import INVALID_LABEL
    from fusion_bench.errors import DataError

    real = runs_mod.load_dataset

    def unlabelled_train(registry, cfg):
        ds, splits = real(registry, cfg)
        for v in splits["train"]:
            v.labels[:] = INVALID_LABEL
        return ds, splits

    monkeypatch.setattr(runs_mod, "load_dataset", unlabelled_train)
    with pytest.raises(DataError, match="no window with 2 valid labelled frames"):
        _run()  # before: "trained" on a constant loss, Adam's momentum moving the weights


def test_a_nan_loss_is_named_as_such(monkeypatch):
    import pytest

    from fusion_bench import train as train_mod
    from fusion_bench.errors import DataError

    monkeypatch.setattr(train_mod, "ccc_loss", lambda pred, *a, **k: pred.sum() * float("nan"))
    with pytest.raises(DataError, match="training loss or weights became NaN/inf at epoch 1; lower"):
        _run()


def test_learnable_needs_two_valid_frames_in_a_window_or_the_batch():
    from fusion_bench.train import _learnable

    one_each = torch.tensor([[True, False, False], [False, True, False]])
    assert not _learnable(one_each, per_window=True) and _learnable(one_each, per_window=False)
    assert _learnable(torch.tensor([[True, True, False]]), per_window=True)
    assert not _learnable(torch.zeros(2, 3, dtype=torch.bool), per_window=False)


# --------------------------------------------------------------- schedule and training length


def test_schedule_counts_steps_by_hand():
    from fusion_bench.config import TrainConfig
    from fusion_bench.train import schedule

    # passes: 65 windows in batches of 32 → 32, 32 and a last one of 1 that cannot train
    s = schedule(TrainConfig(epochs=4, batch_size=32, warmup_epochs=1), 65)
    assert (s.mode, s.steps_per_epoch, s.epochs, s.steps, s.warmup_steps) == ("epochs", 2, 4, 8, 2)
    # steps (the default): 135 windows (the short-sequence data at window 64) → 4 batches
    # a pass, the remainder dropped; a pass is shorter than eval_every (50), so an epoch is one
    # pass: 250 steps in ceil(250 / 4) = 63 epochs (the last of 2 steps), warm-up one epoch of 4
    s = schedule(TrainConfig(), 135)
    assert (s.mode, s.batch, s.steps_per_pass, s.steps_per_epoch, s.epochs, s.steps,
            s.warmup_steps) == ("steps", 32, 4, 4, 63, 250, 4)
    # without eval_each_pass (records before it): 5 epochs of 50, warm-up 50
    s = schedule(TrainConfig(eval_each_pass=False), 135)
    assert (s.steps_per_pass, s.steps_per_epoch, s.epochs, s.warmup_steps) == (4, 50, 5, 50)
    # the default synthetic data (3582 windows): 111 steps a pass, longer than eval_every: 5 of 50
    s = schedule(TrainConfig(), 3582)
    assert (s.steps_per_pass, s.steps_per_epoch, s.epochs, s.warmup_steps) == (111, 50, 5, 50)
    # a pass of exactly eval_every steps (1600 windows / 32 = 50): epochs of 50
    assert schedule(TrainConfig(), 1600).steps_per_epoch == 50
    assert schedule(TrainConfig(), 1599).steps_per_epoch == 49
    # fewer windows than a batch: the batch is all of them, a pass is one step (one epoch each)
    s = schedule(TrainConfig(steps=120, eval_every=50, warmup_epochs=0), 10)
    assert (s.batch, s.steps_per_pass, s.epochs, s.steps, s.warmup_steps) == (10, 1, 120, 120, 0)
    # and without eval_each_pass, epochs of 50 and a last, shorter one
    s = schedule(TrainConfig(steps=120, eval_every=50, warmup_epochs=0, eval_each_pass=False), 10)
    assert (s.batch, s.steps_per_pass, s.epochs, s.steps, s.warmup_steps) == (10, 1, 3, 120, 0)


def test_steps_mode_makes_the_steps_whatever_the_data_size():
    from fusion_bench.config import TrainConfig
    from fusion_bench.train import _epoch_batches, schedule

    for n, lengths in ((3, [1] * 7), (40, [3, 3, 1]), (1000, [3, 3, 1])):  # windows
        # 3 windows: one batch a pass, so an epoch (one validation) per step
        s = schedule(TrainConfig(steps=7, eval_every=3, batch_size=8), n)
        epochs = list(_epoch_batches(s, n, torch.Generator().manual_seed(0)))
        assert [len(e) for e in epochs] == lengths
        batches = [b for e in epochs for b in e]
        assert all(len(b) == min(8, n) and len(set(b.tolist())) == len(b) for b in batches)
    # a pass is a permutation: 40 windows of batch 8 → 5 batches cover each window once
    s = schedule(TrainConfig(steps=5, eval_every=5, batch_size=8), 40)
    (first,) = _epoch_batches(s, 40, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(first).tolist()) == list(range(40))


def test_a_run_validates_after_each_pass_where_a_pass_is_shorter_than_eval_every():
    _, r = _run(("train.epochs", "0"), ("train.steps", "7"), ("train.eval_every", "50"),
                ("train.early_stop_patience", "0"), ("train.batch_size", "8"))
    n = r["data_summary"]["splits"]["train"]["windows"]
    per_pass = n // 8
    assert 1 <= per_pass < 7  # the tiny data: a pass ends before the 7 steps do
    (f,) = r["fits"]
    ends = [*range(per_pass, 7, per_pass), 7]  # a validation after each pass and at the end
    assert [h["step"] for h in f["history"]] == ends
    assert (f["epochs"], f["steps"]) == (len(ends), 7)


def test_a_default_run_trains_the_planned_steps_and_records_them():
    _, r = _run(("train.epochs", "0"), ("train.steps", "7"), ("train.eval_every", "3"),
                ("train.early_stop_patience", "0"), ("train.eval_each_pass", "false"))
    (f,) = r["fits"]
    assert (f["epochs"], f["planned_epochs"], f["steps"]) == (3, 3, 7)
    assert [h["step"] for h in f["history"]] == [3, 6, 7]
    sched = r["data_summary"]["schedule"]
    assert (sched["mode"], sched["steps"], sched["steps_per_epoch"], sched["epochs"]) == ("steps", 7, 3, 3)


def _fit_result(best_epoch: int, epochs: int):
    from fusion_bench.train import FitResult

    return FitResult(0.5, best_epoch, epochs, 1.0, 1.0)


def test_training_length_warnings_trigger_as_documented():
    from fusion_bench.config import TrainConfig
    from fusion_bench.train import fit_warnings

    steps, passes = TrainConfig(), TrainConfig(epochs=30)
    (w,) = fit_warnings(_fit_result(5, 5), steps, "rcma valence+arousal")
    assert w["kind"] == "under-trained" and "raise train.steps (now 250)" in w["message"]
    assert "best validation epoch was 5 of 5" in w["message"]
    (w,) = fit_warnings(_fit_result(30, 30), passes)
    assert "raise train.epochs (now 30)" in w["message"]
    # over-fitting: best in the first quarter (best ≤ epochs // 4) of 4 or more epochs run
    assert fit_warnings(_fit_result(1, 4), steps)[0]["kind"] == "over-fitting"
    assert fit_warnings(_fit_result(2, 8), steps)[0]["kind"] == "over-fitting"
    assert "lower train.steps" in fit_warnings(_fit_result(2, 8), steps)[0]["message"]
    # stopped early, the steps after the peak never ran: not "lower train.steps", but lr, decay
    stopped = _fit_result(2, 8)
    stopped.stopped_early = True
    (w,) = fit_warnings(stopped, steps)
    assert w["kind"] == "over-fitting" and "lower train.steps" not in w["message"]
    assert "early stopping ended the fit" in w["message"] and "lower train.lr" in w["message"]
    for best, ran in ((3, 8), (1, 3), (1, 1), (2, 3), (4, 5)):  # neither
        assert fit_warnings(_fit_result(best, ran), steps) == [], (best, ran)


def test_a_run_warns_and_records_what_the_history_says(monkeypatch):
    import warnings as w

    from fusion_bench import runs
    from fusion_bench.train import TrainingLengthWarning

    note = {"model": "m", "kind": "under-trained", "message": "m: raise train.steps"}
    monkeypatch.setattr(runs, "fit_warnings", lambda res, cfg, label: [dict(note, model=label)])
    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        _, r = _run()
    assert [str(c.message) for c in caught if c.category is TrainingLengthWarning] == \
        ["m: raise train.steps"]
    assert r["training_warnings"] == [dict(note, model="concat valence+arousal")]


def test_a_training_length_warning_names_the_seed(monkeypatch):
    """A sweep prints one such line per seed: each says which."""
    from fusion_bench import runs
    from fusion_bench.train import fit_warnings

    said = []
    monkeypatch.setattr(runs, "fit_warnings",
                        lambda res, cfg, label: said.append(label) or fit_warnings(res, cfg, label))
    _, r = _run(("seed", "5"))
    assert said == ["concat valence+arousal (seed 5)"]
    for n in r["training_warnings"]:  # the record's model is the model's label alone
        assert n["model"] == "concat valence+arousal" and "(seed 5)" in n["message"]


def test_the_val_predictions_a_run_reuses_are_those_of_the_returned_weights(monkeypatch):
    """The run scores val with the best epoch's validation predictions instead of predicting
    again: they must be exactly what the restored weights predict. The fake scores make epoch 1
    the best of 3, so keeping the last epoch's predictions (or not restoring) would differ."""
    from fusion_bench import train
    from fusion_bench.evaluate import predict
    from fusion_bench.model import build_model
    from fusion_bench.runs import load_dataset, split_windows
    from fusion_bench.runtime import seed_everything

    cfg = build_config("quick", None, tiny_overrides() + [("train.epochs", "3"),
                                                          ("train.early_stop_patience", "0")])
    reg = load_registry(entry_points=False)
    ds, splits = load_dataset(reg, cfg)
    cfg, wins = split_windows(cfg, splits, tuple(ds.dims))
    seed_everything(cfg.seed)
    model, _ = build_model(reg, cfg, dict(ds.dims), n_targets=2)
    epochs = iter([0.9, 0.5, 0.1])  # validation gets worse: epoch 1 is the best
    real = train.score
    monkeypatch.setattr(train, "score", lambda *a, **k: {**real(*a, **k), "mean": next(epochs)})
    res = train.fit(model, wins["train"], wins["val"], splits["val"], (0, 1), cfg.train,
                    torch.device("cpu"), cfg.seed)
    assert (res.best_epoch, res.epochs) == (1, 3)
    again = predict(model, wins["val"], splits["val"], torch.device("cpu"))
    assert res.val_predictions is not None
    for a, b in zip(res.val_predictions, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert "val_predictions" not in res.summary()
