"""Backbones: frame alignment, local weights, missing weights, --random-init recorded."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_bench.backbones import Media, WeightsError, resolve_weights
from fusion_bench.backbones.audio_vggish import PATCH, frame_starts
from fusion_bench.backbones.text_sbert import align_words


def test_audio_patch_starts_at_each_frame_and_repeats_the_last():
    s = frame_starts(n_frames=60, fps=25.0, n_mel=200)  # 2 s of audio, hop 10 ms
    assert s[0] == 0 and s[1] == 4 and s[25] == 100  # frame i starts at i / fps
    assert s.max() == 200 - PATCH and (s[-10:] == 200 - PATCH).all()  # last full patch repeated


def test_words_align_to_frames_with_gaps():
    idx = align_words([("hi", 0.1, 0.3), ("you", 0.5, 0.6)], n_frames=30, fps=10.0)
    assert idx.tolist()[:8] == [-1, 0, 0, -1, -1, 1, -1, -1]


def test_missing_weights_say_which_file_goes_where(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSION_BENCH_WEIGHTS", str(tmp_path / "w"))
    with pytest.raises(WeightsError) as e:
        resolve_weights("visual", "resnet50", None, False, "resnet50.pth")
    msg = str(e.value)
    assert str(tmp_path / "w" / "visual" / "resnet50.pth") in msg and "--random-init" in msg
    assert resolve_weights("visual", "resnet50", None, True, "resnet50.pth") is None
    with pytest.raises(WeightsError, match="nope.pth does not exist"):
        resolve_weights("visual", "resnet50", str(tmp_path / "nope.pth"), True, "resnet50.pth")
    (tmp_path / "w" / "visual").mkdir(parents=True)
    (tmp_path / "w" / "visual" / "resnet50.pth").write_bytes(b"x")
    assert resolve_weights("visual", "resnet50", None, False, "resnet50.pth").name == "resnet50.pth"


def test_timm_loads_a_local_checkpoint_and_records_its_hash(tmp_path):
    timm = pytest.importorskip("timm")
    import torch

    from fusion_bench.backbones.visual_timm import TimmVisual

    net = timm.create_model("resnet18", pretrained=False, num_classes=7)
    ckpt = tmp_path / "face.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, ckpt)
    b = TimmVisual("resnet18", weights=str(ckpt))
    d = b.describe()
    assert d["random_init"] is False and d["weights"] == str(ckpt) and len(d["weights_sha256"]) == 64
    torch.testing.assert_close(b.net.conv1.weight, net.conv1.weight)
    crops = np.random.default_rng(0).random((5, 48, 48, 3), dtype=np.float32)
    x, k = b.extract(Media("v", 5, 30.0, crops=crops, crop_mask=np.array([1, 1, 0, 1, 1], bool)))
    assert x.shape == (5, 512) and not x[2].any() and x[0].any() and k.tolist() == [1, 1, 0, 1, 1]
    torch.save({"fc.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="matches only 0 of"):
        TimmVisual("resnet18", weights=str(tmp_path / "other.pth"))


def test_vggish_gives_128_per_frame_and_masks_after_the_audio():
    pytest.importorskip("torchvggish")
    from fusion_bench.backbones.audio_vggish import VGGishAudio

    b = VGGishAudio(random_init=True)
    assert b.describe()["random_init"] is True
    wave = np.sin(np.arange(16000) / 5).astype(np.float32)  # 1 s
    x, k = b.extract(Media("v", 40, 30.0, audio=wave, sample_rate=16000))
    assert x.shape == (40, 128) and k[:30].all() and not k[30:].any()
    np.testing.assert_allclose(x[5], x[6])  # both past the last full patch start → same patch


def test_extract_without_weights_fails_with_the_path(cli_run, tmp_path, monkeypatch):
    pytest.importorskip("timm")
    monkeypatch.setenv("FUSION_BENCH_WEIGHTS", str(tmp_path / "w"))
    root = tmp_path / "aw" / "VA_Estimation_Challenge"
    for d in ("Train_Set", "Validation_Set"):
        (root / d).mkdir(parents=True)
        (root / d / f"{d}.txt").write_text("valence,arousal\n0.1,0.2\n")
    code, _, err = cli_run("extract", "--root", tmp_path / "aw", "--backbone", "visual=timm:resnet18")
    assert code == 2 and f"put the checkpoint at {tmp_path / 'w' / 'visual' / 'resnet18.pth'}" in err
    code, _, err = cli_run("extract", "--root", tmp_path / "aw", "--backbone", "visual=timm:resnet18",
                           "--weights", f"visual={tmp_path / 'missing.pth'}")
    assert code == 2 and "missing.pth does not exist" in err
    code, _, err = cli_run("extract", "--root", tmp_path / "aw", "--backbone", "audio=timm")
    assert code == 2 and "extracts visual, not audio" in err


def test_timm_random_init_is_the_same_network_every_time():
    """--random-init features must be reproducible (an interrupted extract resumes into the
    same cache), so the seed is set before timm draws the weights."""
    pytest.importorskip("timm")
    import torch

    from fusion_bench.backbones.visual_timm import TimmVisual

    a = TimmVisual("resnet18", random_init=True)
    torch.manual_seed(123)  # whatever the global RNG did in between
    b = TimmVisual("resnet18", random_init=True)
    for (name, x), y in zip(a.net.state_dict().items(), b.net.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_resample_keeps_duration_and_pitch():
    from fusion_bench.backbones import resample

    rate, target = 44100, 16000
    t = np.arange(rate) / rate  # one second of 440 Hz
    y = resample(np.sin(2 * np.pi * 440 * t), rate, target)
    assert y.dtype == np.float32 and abs(y.size - target) <= 1
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * target / y.size - 440) < 2
    same = np.ones(5, np.float64)
    assert resample(same, target, target).dtype == np.float32
