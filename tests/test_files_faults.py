"""Atomic writes under faults, beside tests/test_files.py (modes, a failing os.replace): what a
reader can see when the write succeeds, when the disk fills mid-write, and when the writer is
killed mid-write. A plain ``open(path, "w").write(...)`` or a write that leaves its temporary
file fails here (issue 16 item 11)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fusion_bench.files import atomic_write_bytes, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
OLD = b'{"old": true}\n'
NEW = b"x" * (1 << 20)  # 1 MiB: more than one write() of any buffer


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("exists", [False, True])
def test_a_write_leaves_the_file_and_nothing_else(tmp_path, exists):
    """Bug: the temporary file left behind (copied instead of renamed, or never removed)."""
    path = tmp_path / "r.json"
    if exists:
        path.write_bytes(OLD)
    atomic_write_bytes(path, NEW)
    assert path.read_bytes() == NEW
    assert listing(tmp_path) == ["r.json"]
    atomic_write_text(path, "é\n")
    assert path.read_bytes() == "é\n".encode() and listing(tmp_path) == ["r.json"]


def test_the_new_bytes_appear_at_once_by_a_rename_in_the_same_folder(tmp_path, monkeypatch):
    """Bug: a plain write. Until the rename the reader sees the old file whole; the file
    renamed into place already holds every new byte, and lives in the same folder (a rename
    across filesystems is a copy, not atomic)."""
    path = tmp_path / "r.json"
    path.write_bytes(OLD)
    real = os.replace
    seen = []

    def replace(src, dst, *a, **k):
        seen.append((Path(src).parent, Path(dst), path.read_bytes(), Path(src).read_bytes()))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    atomic_write_bytes(path, NEW)
    assert len(seen) == 1
    folder, dst, before, staged = seen[0]
    assert folder == tmp_path and dst == path
    assert before == OLD and staged == NEW
    assert path.read_bytes() == NEW and listing(tmp_path) == ["r.json"]


def child(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    """Run ``body`` in a fresh Python with ``path`` (tmp_path / r.json) and NEW defined."""
    code = textwrap.dedent(f"""
        import os, resource, signal, sys
        from pathlib import Path
        from fusion_bench.files import atomic_write_bytes
        path = Path({str(tmp_path / "r.json")!r})
        NEW = b"x" * (1 << 20)
    """) + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE as on Linux")
def test_a_disk_full_mid_write_keeps_the_old_file_whole(tmp_path):
    """A write that fails part-way (the process may write at most 64 KiB per file, as a full
    disk would stop it): the old file is intact, the error reaches the caller, and no
    temporary file is left."""
    path = tmp_path / "r.json"
    path.write_bytes(OLD)
    r = child(tmp_path, """
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG as an OSError, not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        try:
            atomic_write_bytes(path, NEW)
        except OSError as e:
            print("failed:", e.errno)
            sys.exit(3)
    """)
    assert r.returncode == 3, r.stdout + r.stderr
    assert path.read_bytes() == OLD
    assert listing(tmp_path) == ["r.json"]


def test_a_writer_killed_mid_write_leaves_the_old_file_whole(tmp_path):
    """kill -9 once the new bytes are written but before they are in place (at the fsync): a
    reader finds the old file, whole. The temporary file a killed writer cannot remove is
    hidden and not a ``*.json`` (the results store lists ``runs/*.json``)."""
    path = tmp_path / "r.json"
    path.write_bytes(OLD)
    r = child(tmp_path, """
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
        atomic_write_bytes(path, NEW)
    """)
    assert r.returncode == -signal.SIGKILL, r.stdout + r.stderr
    assert path.read_bytes() == OLD
    left = [p for p in listing(tmp_path) if p != "r.json"]
    assert all(p.startswith(".") and not p.endswith(".json") for p in left), left


def test_exchange_swaps_two_folders_in_one_step_or_says_it_cannot(tmp_path):
    from fusion_bench.files import exchange, replace_folder

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("A")
    (b / "x").write_text("B")
    if not exchange(a, b):
        pytest.skip("this OS or filesystem has no renameat2(RENAME_EXCHANGE)")
    assert (a / "x").read_text() == "B" and (b / "x").read_text() == "A"
    replace_folder(a, b)  # b gets a's folder (holding "B"), the old b is removed
    assert (b / "x").read_text() == "B" and not a.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
