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

import json
import sqlite3
import typing
from pathlib import Path

from .errors import DataError
from .files import atomic_write_text
from .provenance import git_commit, now_utc

SCHEMA_VERSION = 1


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
            obj: typing.Any = record  # a nested value of any JSON type, or None
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


def make_record(cfg, result: dict, plugins: dict, data_version: str | None) -> dict:
    """The full record of a finished run: config, result, plugins and environment;
    ``data_version`` is the dataset plugin's (:func:`fusion_bench.options.data_version`)."""
    from .runtime import environment  # torch: only a run, never a report, makes a record

    h = cfg.hash(data_version)
    return {
        **new_record(cfg.to_dict(), h, plugins, environment(result["device"]),
                     f"{model_name(cfg)}-s{cfg.seed}-{h[:8]}"),
        "model_hash": cfg.model_hash(data_version),
        **{k: v for k, v in result.items() if k != "device"},
    }


git_commit()  # pin the commit of the code this process imported
