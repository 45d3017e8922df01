"""Atomic file writes: a reader sees the old file or the new one, never a torn one; and the
SHA-256 of a file or folder (:func:`file_sha256`).

Standard library only (the floor: nothing in fusion_bench is imported here).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path


def _umask() -> int:
    """The process's umask (read by setting and restoring it: there is no getter before 3.13's
    ``os.umask`` peek; single-threaded callers only, which a write's set-up is)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync'd, then
    ``os.replace``. The file gets the mode a plain ``open(path, "w")`` would give it: an existing
    file keeps its mode, a new one gets 0666 less the umask (``mkstemp`` alone makes every file
    0600, unreadable by a group that shares a results folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


# -- folders built aside, swapped in whole ----------------------------------------------------------
def aside(path: Path, what: str) -> Path:
    """The hidden sibling ``.<name>.<what>`` of ``path`` (same folder, so same filesystem: a
    rename between them is one step)."""
    path = Path(path)
    return path.parent / f".{path.name}.{what}"


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths of one filesystem in one step (Linux ``renameat2`` with
    ``RENAME_EXCHANGE``); False where the OS or the filesystem cannot, and nothing was done."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a C library without it (glibc < 2.28, musl)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def replace_folder(new: Path, path: Path) -> None:
    """Put the complete folder ``new`` (a sibling of ``path``) at ``path``, and remove what was
    there. A reader of ``path`` sees the old folder or the new one: the two are swapped in one
    step where the OS can (:func:`exchange`); elsewhere the old one is first renamed to its
    ``.old`` sibling, and a process killed between the two renames leaves it there for
    :func:`recover_folder` to put back."""
    new, path = Path(new), Path(path)
    old = aside(path, "old")
    if not path.exists():
        os.rename(new, path)
    else:
        if old.exists():
            shutil.rmtree(old)
        if exchange(new, path):
            os.rename(new, old)  # ``new`` now names the old folder
        else:
            os.rename(path, old)
            os.rename(new, path)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_folder(path.parent)


def recover_folder(path: Path) -> None:
    """Finish what a :func:`replace_folder` killed midway left: the old folder back at ``path``
    if nothing is there, else removed."""
    old = aside(path, "old")
    if old.exists():
        if Path(path).exists():
            shutil.rmtree(old)
        else:
            os.rename(old, path)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a power cut after it keeps it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every filesystem syncs a folder; the rename itself is done
    finally:
        os.close(fd)


# -- claims: one live process holds a key at a time ----------------------------------------------
def claim(path: Path, stale_after_s: float = 7 * 24 * 3600) -> dict | None:
    """Claim ``path`` for this process: an exclusive-create file holding its pid, host and time.
    Return None when claimed, or the holder's claim when another live process holds it. A claim
    whose process is gone (same host, pid not running) or older than ``stale_after_s`` (another
    host, whose processes cannot be seen) is taken over."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            holder = _read_claim(path)
            if holder is not None and not _claim_is_stale(holder, mine, stale_after_s):
                return holder
            path.unlink(missing_ok=True)  # a stale claim: taken over
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(mine, f)
        return None
    return _read_claim(path) or {"pid": None, "host": "?"}


def release(path: Path) -> None:
    """Drop this process's claim ``path`` (another process's claim is left alone)."""
    holder = _read_claim(Path(path))
    if holder is not None and holder.get("pid") == os.getpid() \
            and holder.get("host") == socket.gethostname():
        Path(path).unlink(missing_ok=True)


def _read_claim(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # gone, or being written: treated as stale only if it stays unreadable
    return holder if isinstance(holder, dict) else None


def _claim_is_stale(holder: dict, mine: dict, stale_after_s: float) -> bool:
    if holder.get("host") == mine["host"]:
        pid = holder.get("pid")
        if not isinstance(pid, int):
            return True
        try:
            os.kill(pid, 0)  # signal 0: does the process exist?
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # exists, another user's
        return False
    return mine["time"] - float(holder.get("time", 0)) > stale_after_s


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, or of every file under a folder (sorted relative paths and contents)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
