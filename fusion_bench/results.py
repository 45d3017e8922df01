"""The results store: one self-describing JSON record per run, indexed in SQLite.

Layout under the store's root (default ``results/``)::

    runs/<run_id>.json       the record, written atomically (temp file + os.replace)
    fusion_bench.sqlite      index: run_id, config_hash, model_hash, dataset, fusion, seed,
                             metrics, path

A record is written only when a run finished; a failed or interrupted run leaves nothing behind.
The JSON files are the truth and the index only a cache of them: each use of the store first
adds the records it lacks (files copied in, a folder of records committed without its index)
and drops rows whose file is gone.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import platform
import sqlite3
import subprocess
import tempfile
import typing
from pathlib import Path

import torch

from . import __version__
from .errors import DataError

SCHEMA_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a torn one
    (a temporary file in the same folder, fsync'd, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
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


@functools.lru_cache(maxsize=1)
def git_commit() -> dict:
    """The commit of the fusion-bench checkout, if it is one (``None`` for an installed wheel).

    Read once per process, when this module is imported (see the end of the module): the code a
    process runs is the code it imported, so a commit made while a long sweep runs must not be
    written into that sweep's records."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return {"commit": None, "dirty": None}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    cwd=root, capture_output=True, text=True, timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; ``platform.processor()`` there says
    only "x86_64"), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str) -> dict:
    """Versions and hardware that a result depends on."""
    dev = torch.device(device)
    name = cpu_name()
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    return {
        "fusion_bench": __version__,
        **git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(dev),
        "device_name": name,
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_COLUMNS = """
    run_id TEXT PRIMARY KEY, config_hash TEXT NOT NULL, created TEXT NOT NULL, dataset TEXT,
    fusion TEXT, seed INTEGER, status TEXT, val_mean REAL, test_valence REAL, test_arousal REAL,
    test_mean REAL, path TEXT NOT NULL, model_hash TEXT
"""


class ResultsStore:
    """Records under ``root``; see the module docstring."""

    def __init__(self, root: str | Path = "results"):
        self.root = Path(root)
        self.db_path = self.root / "fusion_bench.sqlite"
        self._synced_at: int | None = None  # mtime of runs/ when this object last synced

    def _connect(self, sync: bool = True) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)  # autocommit
        con.execute(f"CREATE TABLE IF NOT EXISTS runs ({_COLUMNS})")
        if "model_hash" not in {row[1] for row in con.execute("PRAGMA table_info(runs)")}:
            con.execute("ALTER TABLE runs ADD COLUMN model_hash TEXT")  # a store made before it
        con.execute("CREATE INDEX IF NOT EXISTS runs_hash ON runs(config_hash)")
        if sync:
            self._sync(con)
        return con

    def _runs_mtime(self) -> int | None:
        try:
            return (self.root / "runs").stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def _files(self) -> set[str]:
        runs = self.root / "runs"
        return {str(Path("runs") / p.name) for p in runs.glob("*.json")} if runs.is_dir() else set()

    def _sync(self, con: sqlite3.Connection) -> None:
        """Make the index agree with the files: index the records it lacks, forget rows whose
        file is gone. Skipped while ``runs/`` is unchanged since this object's last sync (a file
        added, removed or replaced changes the folder's mtime), so a sweep's many ``has`` calls
        cost one scan."""
        mtime = self._runs_mtime()  # read before the scan: a change during it re-syncs next time
        if mtime is not None and mtime == self._synced_at:
            return
        con.execute("BEGIN IMMEDIATE")  # one syncing writer at a time: none deletes another's rows
        try:
            on_disk = self._files()
            indexed = {p for (p,) in con.execute("SELECT path FROM runs")}
            con.executemany("DELETE FROM runs WHERE path=?",
                            [(p,) for p in sorted(indexed - on_disk)])
            for rel in sorted(on_disk - indexed):
                self._index(con, _read_record(self.root / rel), rel)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._synced_at = mtime

    @staticmethod
    def _index(con: sqlite3.Connection, record: dict, rel: str) -> None:
        def get(*path):
            obj = record
            for k in path:
                obj = obj.get(k) if isinstance(obj, dict) else None
            return obj

        con.execute(
            "INSERT OR REPLACE INTO runs (run_id, config_hash, created, dataset, fusion, seed, "
            "status, val_mean, test_valence, test_arousal, test_mean, path, model_hash) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (record["run_id"], record["config_hash"], record["created"],
             get("config", "data", "name"), get("config", "model", "fusion"),
             get("config", "seed"), record.get("status", "ok"), get("metrics", "val", "mean"),
             get("metrics", "test", "valence"), get("metrics", "test", "arousal"),
             get("metrics", "test", "mean"), rel, record.get("model_hash")),
        )

    def write(self, record: dict) -> Path:
        """Store ``record`` (which must have run_id, config_hash, config, metrics); return its path.
        A record of the same run_id is replaced, file and index row."""
        path = self.root / "runs" / f"{record['run_id']}.json"
        atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        con = self._connect(sync=False)
        try:
            # indexed from memory first, so that the sync finds its row and does not read the
            # file back
            self._index(con, record, str(path.relative_to(self.root)))
            self._sync(con)
        finally:
            con.close()
        return path

    def has(self, config_hash: str, model_hash: str | None = None,
            legacy: typing.Iterable[str] = (), data_version: str | None = None) -> bool:
        """Whether a successful run of ``config_hash`` is stored; with ``model_hash``, a run of
        the same trained model with more test-time evaluation (robustness) also counts.
        ``legacy``: the configuration's hashes in an older scheme
        (:meth:`fusion_bench.config.RunConfig.legacy_hashes`); a record stored under one counts
        if its dataset version is ``data_version`` (None: any)."""
        if not self.db_path.exists() and self._runs_mtime() is None:  # no store here yet
            return False
        legacy = list(legacy)
        con = self._connect()
        try:
            row = con.execute("SELECT 1 FROM runs WHERE status='ok' AND (config_hash=? OR "
                              "(? IS NOT NULL AND model_hash=?)) LIMIT 1",
                              (config_hash, model_hash, model_hash)).fetchone()
            if row is not None or not legacy:
                return row is not None
            marks = ",".join("?" * len(legacy))
            paths = [p for (p,) in con.execute(
                f"SELECT path FROM runs WHERE status='ok' AND (config_hash IN ({marks}) OR "
                f"model_hash IN ({marks}))", legacy + legacy)]
        finally:
            con.close()
        for p in paths:
            dataset = _read_record(self.root / p).get("dataset")
            version = dataset.get("version") if isinstance(dataset, dict) else None
            if data_version is None or version == data_version:
                return True
        return False

    def records(self) -> list[dict]:
        """Every stored record, oldest first. Without the SQLite index (e.g. records committed
        to git without it) the ``runs/*.json`` files are read directly, and no index is made."""
        if not self.db_path.exists():
            recs = [_read_record(self.root / p) for p in self._files()]
            return sorted(recs, key=lambda r: (r["created"], r["run_id"]))
        con = self._connect()
        try:
            paths = [r[0] for r in con.execute("SELECT path FROM runs ORDER BY created, run_id")]
        finally:
            con.close()
        return [_read_record(self.root / p) for p in paths]


def _read_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable run record ({e}); move it out of the store's "
                        f"runs/ folder") from None
    missing = [k for k in ("run_id", "config_hash", "created", "config")
               if not isinstance(record, dict) or k not in record]
    if missing:
        raise DataError(f"{path}: not a fusion-bench run record (no {', '.join(missing)}); move "
                        f"it out of the store's runs/ folder")
    return record


def model_name(cfg, sep: str = "-") -> str:
    """The fusion, or ``only<sep><modality>`` for a single-modality run (which uses no fusion):
    ``only-audio`` in run ids (file names), ``only:audio`` as ``sweep --fusion`` spells it."""
    mods = cfg.data.modalities
    return cfg.model.fusion if len(mods) > 1 else f"only{sep}{'+'.join(mods)}"


def new_record(config: dict, config_hash: str, plugins: dict, env: dict, name: str,
               status: str = "ok") -> dict:
    """The fields every stored record starts with; ``run_id`` is ``<UTC time stamp>-<name>``."""
    created = now_utc()
    stamp = created.replace(":", "").replace("-", "")
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": f"{stamp}-{name}",
        "status": status,
        "created": created,
        "config": config,
        "config_hash": config_hash,
        "plugins": plugins,
        "environment": env,
    }


def make_record(cfg, result: dict, plugins: dict) -> dict:
    """The full record of a finished run: config, result, plugins and environment."""
    h = cfg.hash()
    return {
        **new_record(cfg.to_dict(), h, plugins, environment(result["device"]),
                     f"{model_name(cfg)}-s{cfg.seed}-{h[:8]}"),
        "model_hash": cfg.model_hash(),
        **{k: v for k, v in result.items() if k != "device"},
    }


git_commit()  # pin the commit of the code this process imported
