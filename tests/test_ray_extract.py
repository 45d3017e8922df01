"""``extract --executor ray``: one task per video on a two-node Ray cluster (slow), with a stand-in
backbone from a plugin file (the real ones need timm/torchvggish) over a mini Aff-Wild2 tree of
face crops and labels. The driver alone writes the cache; a failing video is retried, then
named, and the others are extracted; a killed node's videos are retried elsewhere."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusion_bench.ray_executor import kill_node_mid_task

PLUGIN = '''
import os
import numpy as np
import fusion_bench

# the settings travel in the file's text: the workers' environment is the cluster's
FLAKY_DIR = {flags!r}
SLOW_S = {slow!r}


class MeanRGB:
    """the mean colour of each face crop, slowly (a stand-in for a CNN)"""

    modality = "visual"
    dim = 3

    def __init__(self, model=None, weights=None, random_init=False, device="cpu"):
        self.model = model or "plain"

    def describe(self):
        return {"backbone": "meanrgb", "model": self.model, "dim": 3, "weights": None}

    def extract(self, media):
        flag = os.path.join(FLAKY_DIR, media.name)
        if media.name == "vidBad":
            raise RuntimeError("this video always fails")
        if media.name == "vidFlaky" and not os.path.exists(flag):
            open(flag, "w").close()
            raise RuntimeError("first attempt fails")
        time.sleep(SLOW_S)
        x = media.crops.mean(axis=(1, 2)).astype(np.float32) * media.crop_mask[:, None]
        return x, media.crop_mask.copy()


import time  # noqa: E402


@fusion_bench.hookimpl
def register_backbones(register):
    register("meanrgb", MeanRGB)
'''


def make_tree(root, names_split, n=12):
    """Aff-Wild2's layout, crops and labels only (no videos, so no test split, whose frames
    the videos count): ``names_split`` video → split."""
    from PIL import Image

    ch = root / "VA_Estimation_Challenge"
    test = []
    for k, (name, split) in enumerate(names_split.items()):
        rng = np.random.default_rng(k)
        d = root / "cropped_aligned" / name
        d.mkdir(parents=True)
        for f in range(n):  # one colour a frame: its mean survives resizing (and JPEG, nearly)
            colour = rng.integers(0, 255, 3, dtype=np.uint8)
            Image.fromarray(np.broadcast_to(colour, (8, 8, 3)).copy()).save(d / f"{f + 1:05d}.jpg")
        if split == "test":
            test.append(name)
            continue
        folder = ch / {"train": "Train_Set", "val": "Validation_Set"}[split]
        folder.mkdir(parents=True, exist_ok=True)
        lab = rng.uniform(-1, 1, (n, 2))
        (folder / f"{name}.txt").write_text("valence,arousal\n" + "".join(
            f"{v:.3f},{a:.3f}\n" for v, a in lab))
    (ch / "Test_Set.txt").write_text("".join(f"{t}\n" for t in test))


def write_plugin(tmp_path, slow: float = 0.0):
    plugin = tmp_path / "meanrgb_plugin.py"
    (tmp_path / "flags").mkdir()
    plugin.write_text(PLUGIN.replace("{flags!r}", repr(str(tmp_path / "flags")))
                      .replace("{slow!r}", repr(slow)))
    return plugin


def _extract(cli_run, plugin, root, *extra):
    return cli_run("--plugin", str(plugin), "extract", "--root", str(root), "--backbone",
                   "visual=meanrgb", "--device", "cpu", "--quiet", "--executor", "ray", *extra)


@pytest.mark.slow
def test_ray_extraction_retries_names_the_failed_video_and_resumes(bare_cluster, tmp_path,
                                                                  cli_run, monkeypatch):
    from PIL import Image

    ray, c, _ = bare_cluster
    setup = write_plugin(tmp_path)
    monkeypatch.setenv("RAY_ADDRESS", c.address)
    root = tmp_path / "aw"
    videos = {"vidA": "train", "vidFlaky": "train", "vidBad": "train", "vidV": "val"}
    make_tree(root, videos)
    code, _, err = _extract(cli_run, setup, root)
    # vidFlaky failed once and was retried; vidBad failed every attempt: named, the rest done
    assert code == 2 and "1 of 4 videos failed after their retries: vidBad (" in err, err
    assert "always fails" in err
    assert not (root / "fusion_bench_cache").exists()  # nothing half-made in use
    partial = root / ".fusion_bench_cache.partial"
    man = json.loads((partial / "manifest.json").read_text())
    assert set(man["videos"]) == {"vidA", "vidFlaky", "vidV"}
    assert set(man["failed"]) == {"vidBad"}
    # the driver wrote what the task computed: the colour of each frame's crop, in order
    colours = [np.asarray(Image.open(root / "cropped_aligned" / "vidA" / f"{f:05d}.jpg"),
                          np.float32)[0, 0] / 255 for f in range(1, 13)]
    x = np.load(partial / "features" / "visual" / "vidA.npy")
    assert x.shape == (12, 3) and np.allclose(x, colours, atol=2 / 255)
    # fixed (the plugin now lets it through): the next extraction does vidBad alone, swaps in
    (root / "cropped_aligned" / "vidBad").rename(root / "cropped_aligned" / "vidGood")
    (root / "VA_Estimation_Challenge" / "Train_Set" / "vidBad.txt").rename(
        root / "VA_Estimation_Challenge" / "Train_Set" / "vidGood.txt")
    code, out, err = _extract(cli_run, setup, root)
    assert code == 0, err
    assert "3 of 4 videos already extracted" in err
    man = json.loads((root / "fusion_bench_cache" / "manifest.json").read_text())
    assert set(man["videos"]) >= {"vidA", "vidFlaky", "vidGood", "vidV"}
    assert "failed" not in man


@pytest.mark.slow
def test_killing_the_second_node_mid_extraction_leaves_one_complete_cache(cluster, tmp_path,
                                                                         cli_run):
    ray, c, second = cluster
    setup = write_plugin(tmp_path, slow=1.5)  # every video takes a while: the kill lands mid-task
    root = tmp_path / "aw"
    videos = {f"v{i}": ("train", "val")[i % 2] for i in range(8)}
    make_tree(root, videos)
    t, killed = kill_node_mid_task(ray, c, second, after_s=0.5)
    code, out, err = _extract(cli_run, setup, root, "--retries", "3")
    t.join(10)
    assert killed and code == 0, err
    assert "retried after a lost worker or node" in out
    cache = root / "fusion_bench_cache"
    man = json.loads((cache / "manifest.json").read_text())
    assert set(man["videos"]) == set(videos)  # every video once, in one cache
    assert sorted(p.stem for p in (cache / "features" / "visual").glob("*.npy")) == sorted(videos)
    assert not (root / ".fusion_bench_cache.partial").exists()


def test_task_resources_without_ray_say_to_add_it(cli_run, tmp_path):
    code, _, err = cli_run("extract", "--root", str(tmp_path), "--backbone", "visual=timm",
                           "--gpus-per-task", "0.5")
    assert code == 2 and "--executor ray" in err and "Traceback" not in err


def test_a_failed_video_is_recorded_and_named_while_the_others_are_written(tmp_path):
    # the writer's side, without Ray: a runner hands back one video's failure
    from types import SimpleNamespace

    from fusion_bench.data.cache import Extracted, ExtractionIncomplete, extract

    class Stub:
        dim = 1

        def describe(self):
            return {"backbone": "stub", "model": "x", "dim": 1}

    entries = [SimpleNamespace(name=n, split="train", labels=np.zeros((3, 2), np.float32),
                               bad_lines=[]) for n in ("a", "b", "c")]

    def runner(todo, load_media, backbones):  # out of order, as tasks finish
        yield 2, Extracted(3, 30.0, {"visual": (np.full((3, 1), 2, np.float32),
                                                np.ones(3, bool))}, {"visual": 0.1})
        yield 1, RuntimeError("decoder crashed\nmore lines")
        yield 0, Extracted(3, 30.0, {"visual": (np.zeros((3, 1), np.float32),
                                                np.ones(3, bool))}, {"visual": 0.1})

    cache = tmp_path / "cache"
    with pytest.raises(ExtractionIncomplete, match=r"1 of 3 videos failed .*: b \(decoder crashed\)"):
        extract(entries, None, {"visual": Stub()}, cache, "src", "toy",
                {"train": ["a", "b", "c"]}, runner=runner)
    assert not cache.exists()  # not swapped in
    partial = tmp_path / ".cache.partial"
    man = json.loads((partial / "manifest.json").read_text())
    assert set(man["videos"]) == {"a", "c"} and man["failed"] == {"b": "decoder crashed"}
    assert float(np.load(partial / "features" / "visual" / "c.npy")[0, 0]) == 2.0
