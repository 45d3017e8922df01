"""The feature cache's writer, with a stand-in backbone (the real ones need timm/torchvggish)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

from fusion_bench.data.cache import extract
from fusion_bench.errors import PluginError


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

    cache = tmp_path / "cache"

    def run():
        return extract(entries, load, {"visual": _Backbone()}, cache, "src", "toy",
                       {"train": ["a"]}, workers=1, echo=lambda _: None)

    lock = tmp_path / ".cache.extract.lock"  # beside the cache: the cache folder is swapped
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(),
                                    "time": 0}))
        with pytest.raises(DataError, match=f"being extracted by process {other.pid}"):
            run()
        assert not cache.exists() and not (tmp_path / ".cache.partial").exists()  # nothing touched
    finally:
        other.kill()
        other.wait()
    assert "a" in run()["videos"]  # its process is gone: the lock is taken over
    assert not lock.exists()  # and released


# -- a failed re-extraction never changes a good cache (issue 16 item 2) ------------------------
ENTRIES = [SimpleNamespace(name=n, split=s, labels=np.zeros((4, 2), np.float32), bad_lines=[])
           for n, s in (("a", "train"), ("b", "train"), ("c", "val"))]
SPLITS = {"train": ["a", "b"], "val": ["c"], "test": ["c"]}


class _Valued(_Backbone):
    """Features all equal to ``value``; raises ``fail`` on its ``fail_at``-th video."""

    def __init__(self, value, fail_at=None, fail=None):
        self.value, self.fail_at, self.seen = value, fail_at, []
        self.fail = fail if fail is not None else RuntimeError("planted backbone failure")

    def describe(self):
        return {"backbone": "stub", "model": f"value{self.value}", "dim": self.dim}

    def extract(self, media):
        self.seen.append(media.name)
        if len(self.seen) == self.fail_at:
            raise self.fail
        return np.full((media.n_frames, self.dim), self.value, np.float32), np.ones(media.n_frames, bool)


def _media(e, mods):
    return SimpleNamespace(name=e.name, n_frames=4, fps=30.0)


def _files(root):
    """Relative path → bytes of every file under root."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _extract_into(cache, backbone, notes=None):
    return extract(ENTRIES, _media, {"visual": backbone}, cache, "src", "toy", SPLITS, workers=1,
                   echo=(notes.append if notes is not None else lambda _: None))


def test_a_reextraction_that_fails_midway_leaves_the_cache_as_it_was_and_resumes(tmp_path):
    import pytest

    cache = tmp_path / "cache"
    _extract_into(cache, _Valued(1.0))
    good = _files(cache)
    assert np.load(cache / "features" / "visual" / "a.npy")[0, 0] == 1.0
    # a changed backbone, failing on the second video: the old arrays of visual must survive
    with pytest.raises(PluginError, match="backbone 'stub' \\(visual\\) raised RuntimeError on "
                                          "video 'b': planted backbone failure"):
        _extract_into(cache, _Valued(2.0, fail_at=2))
    assert _files(cache) == good
    partial = tmp_path / ".cache.partial"
    assert np.load(partial / "features" / "visual" / "a.npy")[0, 0] == 2.0  # kept for resuming
    assert not (tmp_path / ".cache.old").exists() and not (tmp_path / ".cache.extract.lock").exists()
    # Ctrl-C midway: the same
    with pytest.raises(KeyboardInterrupt):
        _extract_into(cache, _Valued(2.0, fail_at=1, fail=KeyboardInterrupt()))
    assert _files(cache) == good
    # run again: resumes in the partial folder (a is done), then swaps it in
    notes, again = [], _Valued(2.0)
    man = _extract_into(cache, again, notes)
    assert again.seen == ["b", "c"]
    assert f"cache: resuming the unfinished extraction in {partial}" in notes
    assert all(np.load(cache / "features" / "visual" / f"{v}.npy")[0, 0] == 2.0 for v in "abc")
    assert json.loads((cache / "manifest.json").read_text()) == man
    assert man["modalities"]["visual"]["model"] == "value2.0"
    assert not partial.exists() and not (tmp_path / ".cache.old").exists()


def test_a_first_extraction_shows_no_cache_until_it_is_complete(tmp_path):
    import pytest

    cache = tmp_path / "cache"
    with pytest.raises(PluginError):
        _extract_into(cache, _Valued(1.0, fail_at=3))
    assert not cache.exists()  # training finds no cache, rather than a third of one
    _extract_into(cache, _Valued(1.0))
    assert sorted(p.name for p in (cache / "features" / "visual").iterdir()) == ["a.npy", "b.npy", "c.npy"]


def test_the_partial_folder_links_the_caches_files_and_never_writes_through_them(tmp_path):
    """Hard links cost no space; a file rewritten in the partial folder must be a new file,
    not a write into the cache's (a write in place would change the good cache)."""
    cache = tmp_path / "cache"
    _extract_into(cache, _Valued(1.0))
    good = _files(cache)
    ino = (cache / "labels" / "a.csv").stat().st_ino
    import pytest

    with pytest.raises(PluginError):  # rewrites labels/a.csv and features of a in the partial
        _extract_into(cache, _Valued(2.0, fail_at=2))
    assert _files(cache) == good
    partial = tmp_path / ".cache.partial"
    assert (partial / "labels" / "c.csv").stat().st_ino == (cache / "labels" / "c.csv").stat().st_ino
    assert (partial / "labels" / "a.csv").stat().st_ino != ino


def test_a_folder_that_is_no_cache_is_refused_and_left_alone(tmp_path):
    import pytest

    from fusion_bench.errors import DataError

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="holds files but no manifest.json"):
        _extract_into(mine, _Valued(1.0))
    assert _files(mine) == {"thesis.tex": b"precious"}
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="a file, not a feature cache folder"):
        _extract_into(tmp_path / "f", _Valued(1.0))


KILLED = '''
import os, signal, sys
from types import SimpleNamespace
import numpy as np
from fusion_bench.data.cache import extract

class B:
    dim = 3
    def __init__(self, value, kill_at=None):
        self.value, self.kill_at, self.n = value, kill_at, 0
    def describe(self):
        return {"backbone": "stub", "model": f"value{self.value}", "dim": 3}
    def extract(self, media):
        self.n += 1
        if self.n == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return np.full((4, 3), self.value, np.float32), np.ones(4, bool)

entries = [SimpleNamespace(name=n, split="train", labels=np.zeros((4, 2), np.float32), bad_lines=[])
           for n in "abc"]
kill_at = int(sys.argv[3]) if len(sys.argv) > 3 else None
extract(entries, lambda e, m: SimpleNamespace(name=e.name, n_frames=4, fps=30.0),
        {"visual": B(float(sys.argv[2]), kill_at)}, sys.argv[1], "src", "toy",
        {"train": list("abc")}, workers=1, echo=lambda _: None)
'''


def test_kill_9_midway_through_a_reextraction_leaves_the_cache_and_the_next_one_completes(tmp_path):
    import signal
    import subprocess
    import sys

    cache = tmp_path / "cache"
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    assert subprocess.run([sys.executable, str(script), str(cache), "1"]).returncode == 0
    good = _files(cache)
    p = subprocess.run([sys.executable, str(script), str(cache), "2", "2"])
    assert p.returncode == -signal.SIGKILL
    assert _files(cache) == good
    assert (tmp_path / ".cache.extract.lock").exists()  # the killed process's lock, left
    assert subprocess.run([sys.executable, str(script), str(cache), "2"]).returncode == 0
    assert np.load(cache / "features" / "visual" / "b.npy")[0, 0] == 2.0
    assert not (tmp_path / ".cache.partial").exists()


def test_a_swap_killed_between_its_two_renames_is_undone_by_the_next_extraction(tmp_path, monkeypatch):
    """Where the OS cannot exchange two folders, the old cache is renamed aside, then the new
    one in: a process killed between the two leaves no cache at its path, which the next
    extraction puts back before it starts (and then completes)."""
    import os

    import pytest

    from fusion_bench import files

    cache = tmp_path / "cache"
    _extract_into(cache, _Valued(1.0))
    good = _files(cache)
    monkeypatch.setattr(files, "exchange", lambda a, b: False)
    renames = []
    real_rename = os.rename

    def rename_then_die(a, b):
        renames.append((a, b))
        if len(renames) == 2:  # the old cache is aside; the new one not yet in
            raise KeyboardInterrupt
        real_rename(a, b)

    monkeypatch.setattr(os, "rename", rename_then_die)
    with pytest.raises(KeyboardInterrupt):
        _extract_into(cache, _Valued(2.0))
    monkeypatch.setattr(os, "rename", real_rename)
    assert not cache.exists() and _files(tmp_path / ".cache.old") == good
    files.recover_folder(cache)
    assert _files(cache) == good and not (tmp_path / ".cache.old").exists()
    _extract_into(cache, _Valued(2.0))  # the partial folder was complete: swapped in now
    assert np.load(cache / "features" / "visual" / "c.npy")[0, 0] == 2.0
