"""Test-time robustness: which inputs each perturbation touches, the area, and a run end to end."""

import numpy as np
import pytest
import torch
from torch import nn

import fusion_bench
from fusion_bench.config import build_config
from fusion_bench.data.windows import make_windows
from fusion_bench.errors import ConfigError
from fusion_bench.evaluate import feature_scale, noise_area, perturbations
from fusion_bench.plugins import load_registry
from fusion_bench.runs import run

from .conftest import tiny_overrides


def tiny_windows(mods=("visual", "audio")):
    from fusion_bench.data.synthetic import SyntheticDataset

    cfg = build_config("quick", None, tiny_overrides() + [("data.modalities", ",".join(mods))])
    splits = SyntheticDataset.from_config(cfg).splits()
    return splits, make_windows(splits["test"], mods, 32, 16)


def test_drop_masks_one_modality_and_noise_scales_with_level():
    splits, w = tiny_windows()
    scale = feature_scale(splits["train"], ["visual", "audio"])
    out = dict(perturbations(w, splits["test"], scale, (0.0, 1.0, 2.0), seed=0))
    assert set(out) == {("drop", "visual"), ("drop", "audio"), ("noise", "visual", 1.0),
                        ("noise", "audio", 1.0), ("noise", "all", 1.0), ("noise", "visual", 2.0),
                        ("noise", "audio", 2.0), ("noise", "all", 2.0)}
    d = out[("drop", "visual")]
    assert not d.masks["visual"].any() and not d.feats["visual"].any()
    assert torch.equal(d.feats["audio"], w.feats["audio"]) and torch.equal(d.masks["audio"], w.masks["audio"])
    n1, n2 = out[("noise", "audio", 1.0)], out[("noise", "audio", 2.0)]
    assert torch.equal(n1.feats["visual"], w.feats["visual"])  # only audio is noised
    e1, e2 = n1.feats["audio"] - w.feats["audio"], n2.feats["audio"] - w.feats["audio"]
    torch.testing.assert_close(e2, 2 * e1)  # the same draw, scaled by the level
    present = w.masks["audio"]
    assert not e1[~present].any()  # padding and missing frames stay zero
    ratio = e1[present].std(0) / scale["audio"]  # noise std in units of the feature's std
    assert ratio.min() > 0.8 and ratio.max() < 1.2
    both = out[("noise", "all", 1.0)]
    torch.testing.assert_close(both.feats["audio"], n1.feats["audio"])
    torch.testing.assert_close(both.feats["visual"], out[("noise", "visual", 1.0)].feats["visual"])


def test_a_frame_gets_the_same_noise_in_every_window_that_holds_it():
    splits, w = tiny_windows()  # window 32, hop 16: every inner frame is in two windows
    scale = feature_scale(splits["train"], ["visual", "audio"])
    noisy = dict(perturbations(w, splits["test"], scale, (0.0, 1.0), seed=0))[("noise", "audio", 1.0)]
    e = noisy.feats["audio"] - w.feats["audio"]
    seen: dict[tuple[int, int], torch.Tensor] = {}
    shared = 0
    for i in range(len(w)):
        for t in range(w.labels.shape[1]):
            if not w.masks["audio"][i, t]:
                continue
            key = (int(w.video[i]), int(w.start[i]) + t)
            if key in seen:
                torch.testing.assert_close(e[i, t], seen[key])
                shared += 1
            seen[key] = e[i, t]
    assert shared > 100  # the check ran over many shared frames


def test_single_modality_has_no_drop_and_no_separate_all():
    splits, w = tiny_windows(("visual",))
    keys = [k for k, _ in perturbations(w, splits["test"], feature_scale(splits["train"], ["visual"]),
                                       (0, 1), 0)]
    assert keys == [("noise", "visual", 1)]


def test_noise_area_is_the_mean_ccc_over_the_level_range():
    assert noise_area([0, 1, 2], [1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert noise_area([0, 0.5, 2], [0.8, 0.8, 0.8]) == pytest.approx(0.8)
    assert noise_area([0, 1, 3], [1.0, 1.0, 0.0]) == pytest.approx((1 + 1) / 3)  # uneven spacing


class VisualOnly(nn.Module):
    """Test fusion that reads the visual stream alone."""

    description = "test-only: ignores every modality but visual"

    def __init__(self, dims, seq_len):
        super().__init__()
        self.out_dim = dims["visual"]

    def forward(self, feats, mask=None):
        return feats["visual"]


class VisualOnlyPlugin:
    @fusion_bench.hookimpl
    def register_fusions(self, register):
        register("visual_only", VisualOnly)


def test_run_reports_what_the_model_depends_on():
    reg = load_registry(entry_points=False)
    reg.add(VisualOnlyPlugin(), "test-visual-only", "0", "test")
    over = tiny_overrides() + [("model.fusion", "visual_only"), ("robustness.enabled", "true"),
                               ("robustness.levels", "0,1,4"), ("data.modalities", "visual,audio")]
    rob = run(build_config("quick", None, over), reg)
    record = run(build_config("quick", None, over), reg)  # same seed: same numbers
    rob, metrics = rob["robustness"], record["metrics"]
    assert rob == record["robustness"]
    clean = metrics["test"]
    assert rob["noise"]["audio"] == [clean] * 3  # the model never reads audio
    assert rob["drop"]["audio"] == pytest.approx(clean, abs=1e-12)
    assert rob["drop"]["visual"]["mean"] != pytest.approx(clean["mean"], abs=1e-6)
    assert rob["noise"]["visual"][0] == clean and rob["noise"]["visual"][2] != clean
    assert rob["area"]["audio"] == pytest.approx(clean["mean"])
    assert np.isfinite(rob["area"]["all"])
    assert record["flops_per_window"]["inference"] > 0
    assert record["flops_per_window"]["train"] > record["flops_per_window"]["inference"]


def test_per_target_models_are_perturbed_alike_and_merged():
    over = tiny_overrides() + [("model.fusion", "concat"), ("robustness.enabled", "true"),
                               ("robustness.levels", "0,2"), ("model.per_target", "true"),
                               ("data.modalities", "visual,audio")]
    rec = run(build_config("quick", None, over), load_registry(entry_points=False))
    rob = rec["robustness"]
    assert rob["noise"]["all"][0] == rec["metrics"]["test"]
    for scores in [*rob["drop"].values(), *(c[1] for c in rob["noise"].values())]:
        assert set(scores) == {"valence", "arousal", "mean"}  # both models' columns filled
        assert all(np.isfinite(v) for v in scores.values())
        assert scores["valence"] != 0 and scores["arousal"] != 0  # an unfilled column is CCC 0
        assert scores["mean"] == pytest.approx((scores["valence"] + scores["arousal"]) / 2)
    assert rob["drop"]["visual"] != rec["metrics"]["test"]


def test_bad_levels_are_rejected_naming_the_key():
    for bad in ("1", "0,-1", "1,0.5", "0,1,1", "0,nan", "0,inf"):
        with pytest.raises(ConfigError, match="robustness.levels"):
            build_config("quick", None, [("robustness.levels", bad)])
    with pytest.raises(ConfigError, match="robustness.levels"):
        build_config("quick", None, [("robustness.levels", "0,abc")])


def test_cli_run_prints_the_robustness_tables(cli_run, tiny_args, tmp_path):
    code, out, _ = cli_run("run", "--fusion", "concat", "--robustness", "--out", tmp_path, *tiny_args)
    assert code == 0
    assert "dropped" in out and "noise on" in out and "area" in out
