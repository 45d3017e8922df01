"""The feature cache's writer, with a stand-in backbone (the real ones need timm/torchvggish)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

from fusion_bench.data.cache import extract


class _Backbone:
    dim = 3

    def describe(self):
        return {"backbone": "stub", "model": "ones", "dim": self.dim}

    def extract(self, media):
        return np.ones((media.n_frames, self.dim), np.float32), np.ones(media.n_frames, bool)


def test_extract_writes_the_splits_it_is_given_and_resumes(tmp_path):
    entries = [SimpleNamespace(name=n, split=s, labels=np.zeros((4, 2), np.float32), bad_lines=[])
               for n, s in (("a", "train"), ("b", "val"), ("c", "test"))]
    loaded = []

    def load(e, mods):
        loaded.append(e.name)
        return SimpleNamespace(n_frames=4, fps=30.0)

    splits = {"train": ["a"], "val": ["b"], "test": ["c"]}  # not Aff-Wild2's test = val rule
    man = extract(entries, load, {"visual": _Backbone()}, tmp_path, "src", "toy", splits,
                  workers=1)
    lines = (tmp_path / "splits.csv").read_text().splitlines()
    assert lines == ["video,split", "a,train", "b,val", "c,test"]
    assert set(man["videos"]) == {"a", "b", "c"} and sorted(loaded) == ["a", "b", "c"]
    assert np.load(tmp_path / "features" / "visual" / "c.npy").shape == (4, 3)
    assert json.loads((tmp_path / "manifest.json").read_text())["dataset"] == "toy"
    notes = []
    extract(entries, load, {"visual": _Backbone()}, tmp_path, "src", "toy", splits, workers=1,
            echo=notes.append)
    assert notes == ["cache: 3 of 3 videos already extracted; resuming"]
    assert len(loaded) == 3  # every video already cached: no media loaded again


def test_a_cache_being_extracted_by_a_live_process_is_refused_and_a_dead_ones_lock_taken(tmp_path):
    import socket
    import subprocess
    import sys

    import pytest

    from fusion_bench.errors import DataError

    entries = [SimpleNamespace(name="a", split="train", labels=np.zeros((4, 2), np.float32),
                               bad_lines=[])]

    def load(e, mods):
        return SimpleNamespace(n_frames=4, fps=30.0)

    def run():
        return extract(entries, load, {"visual": _Backbone()}, tmp_path, "src", "toy",
                       {"train": ["a"]}, workers=1, echo=lambda _: None)

    lock = tmp_path / ".extract.lock"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(),
                                    "time": 0}))
        with pytest.raises(DataError, match=f"being extracted by process {other.pid}"):
            run()
        assert not (tmp_path / "features").exists()  # nothing touched
    finally:
        other.kill()
        other.wait()
    assert "a" in run()["videos"]  # its process is gone: the lock is taken over
    assert not lock.exists()  # and released
