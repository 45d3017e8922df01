"""The results store: one self-describing JSON record per run, indexed in SQLite.

Layout under the store's root (default ``results/``)::

    runs/<run_id>.json       the record, written atomically (temp file + os.replace)
    checkpoints/<hash>.pt    a run in training, until its record is written (fusion_bench.checkpoint)
    fusion_bench.sqlite      index: run_id, config_hash, model_hash, dataset, fusion, seed,
                             metrics, path

A record is written only when a run finished; an interrupted run leaves no record, only its
last checkpoint, which the next run of its configuration resumes.
The JSON files are the truth and the index only a cache of them: each use of the store first
adds the records it lacks (files copied in, a folder of records committed without its index)
and drops rows whose file is gone. A file in ``runs/`` that is not a readable record (truncated,
foreign, malformed) is left out with a warning naming it, never an error: it cannot cost a
command its result. ``has`` answers from the record files themselves (a record truncated or
edited to failed after it was indexed does not count), and an index SQLite cannot read is moved
aside and rebuilt from ``runs/``.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import sys
import types
import typing
import uuid
import warnings
from pathlib import Path

from .errors import DataError, StorageError
from .files import atomic_write_text, claim, release
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
        self.root = Path(os.path.expanduser(str(root) or "."))
        self.db_path = self.root / "fusion_bench.sqlite"
        self._synced_at: int | None = None  # mtime of runs/ when this object last synced

    def check_writable(self, flag: str = "--out", kind: str = "results folder",
                       wants: str = "a folder") -> None:
        """Fail now, not after hours of training, if records cannot be written here: a file is
        written into the folder and removed, and folders made for it are removed again (a
        command that fails later leaves nothing behind); ConfigError naming the ``kind`` of
        folder and ``flag``, the option that gave it (which ``wants`` a folder, or a file in
        one), otherwise."""
        from .errors import ConfigError

        made = [d for d in (self.root, *self.root.parents) if not d.exists()]
        probe = self.root / f".write-check-{os.getpid()}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
            for d in made:  # deepest first
                d.rmdir()
        except OSError as e:
            what = "is a file, not a folder" if self.root.is_file() else (
                f"cannot be written ({e.strerror or e})")
            raise ConfigError(f"{kind} {str(self.root)!r} {what}; give {flag} {wants} you can "
                              "write to") from None

    # -- claims: one process trains a configuration at a time -----------------------------------
    def claim(self, key: str, stale_after_s: float = 7 * 24 * 3600) -> dict | None:
        """Claim configuration ``key`` for this process (``claims/<key>.json``, see
        :func:`fusion_bench.files.claim`); None when claimed, else the live holder's claim."""
        return claim(self.root / "claims" / f"{key}.json", stale_after_s)

    def release(self, key: str) -> None:
        """Drop this process's claim of ``key`` (another's is left alone)."""
        release(self.root / "claims" / f"{key}.json")

    def _connect(self, sync: bool = True) -> sqlite3.Connection:
        """The index, synced with ``runs/``; an index SQLite cannot read (random bytes, a
        malformed page) is moved aside and rebuilt from the records."""
        try:
            return self._open(sync)
        except sqlite3.OperationalError as e:  # a full disk, a read-only or locked file: not damage
            raise self._unusable(e) from None
        except sqlite3.DatabaseError as e:
            self._set_aside(e)
            try:
                return self._open(sync)
            except sqlite3.OperationalError as e2:
                raise self._unusable(e2) from None

    def _open(self, sync: bool) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)  # autocommit
        try:
            con.execute(f"CREATE TABLE IF NOT EXISTS runs ({_COLUMNS})")
            if "model_hash" not in {row[1] for row in con.execute("PRAGMA table_info(runs)")}:
                con.execute("ALTER TABLE runs ADD COLUMN model_hash TEXT")  # a store made before it
            con.execute("CREATE INDEX IF NOT EXISTS runs_hash ON runs(config_hash)")
            if sync:
                self._sync(con)
        except BaseException:
            con.close()
            raise
        return con

    def _set_aside(self, error: Exception) -> None:
        """Move an unreadable index out of the way (kept for inspection), so the next open
        rebuilds it from the records, which are the truth."""
        from .provenance import now_utc as _now

        aside = self.db_path.with_name(f"{self.db_path.name}.unreadable-{_now().replace(':', '')}")
        try:
            self.db_path.replace(aside)
        except OSError as e:  # a read-only store: the damaged index stays; records() reads files
            raise StorageError(f"{self.db_path}: the index could not be read ({error}) nor moved "
                             f"aside ({e.strerror or e})") from None
        self._synced_at = None
        warnings.warn(f"{self.db_path}: the index could not be read ({error}); moved to "
                      f"{aside.name} and rebuilt from the records in runs/", stacklevel=3)

    def _unusable(self, error: Exception) -> StorageError:
        return StorageError(f"{self.db_path}: the index cannot be used ({error}); is the disk full "
                          "or the folder read-only? The records in runs/ are untouched")

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of ``sql`` on the synced index, rebuilt once if SQLite cannot read it;
        :class:`StorageError` if SQLite cannot use it (a full disk, a read-only folder)."""
        for attempt in (1, 2):
            con = self._connect()
            try:
                return con.execute(sql, args).fetchall()
            except sqlite3.OperationalError as e:
                raise self._unusable(e) from None
            except sqlite3.DatabaseError as e:
                if attempt == 2:
                    raise
                con.close()
                self._set_aside(e)
            finally:
                con.close()
        raise AssertionError("unreachable")

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
                record = read_record_or_warn(self.root / rel)
                if record is not None:  # an unreadable file is left out, and named
                    self._index(con, record, rel)
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

        def number(v):  # what SQLite can hold; a record's odd value is indexed as NULL
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return None
            return v if isinstance(v, float) or -2**63 <= v < 2**63 else None

        con.execute(
            "INSERT OR REPLACE INTO runs (run_id, config_hash, created, dataset, fusion, seed, "
            "status, val_mean, test_valence, test_arousal, test_mean, path, model_hash) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (record["run_id"], record["config_hash"], record["created"],
             get("config", "data", "name"), get("config", "model", "fusion"),
             number(get("config", "seed")), record.get("status", "ok"),
             number(get("metrics", "val", "mean")), number(get("metrics", "test", "valence")),
             number(get("metrics", "test", "arousal")), number(get("metrics", "test", "mean")),
             rel, record.get("model_hash")),
        )

    def write(self, record: dict) -> Path:
        """Store ``record`` (which must have run_id, config_hash, config, metrics); return its path.
        A record of the same run_id is replaced, file and index row."""
        path = self.root / "runs" / f"{record['run_id']}.json"
        try:
            atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        except OSError as e:  # nothing was written (atomic): the store holds what it held
            raise StorageError(f"{path}: the record cannot be written ({e.strerror or e}); the "
                             "store is as it was") from None
        for attempt in (1, 2):  # the record is written: an unreadable index must not fail it
            try:
                con = self._connect(sync=False)
                try:
                    # indexed from memory first, so that the sync finds its row and does not
                    # read the file back
                    self._index(con, record, str(path.relative_to(self.root)))
                    self._sync(con)
                finally:
                    con.close()
                break
            except (StorageError, sqlite3.OperationalError) as e:  # the next use indexes the file
                warnings.warn(f"{path} is stored, but {self.db_path} could not be updated "
                              f"({e}); the next command on the store indexes it", stacklevel=2)
                break
            except sqlite3.DatabaseError as e:
                if attempt == 2:
                    raise
                self._set_aside(e)
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
        try:
            current = [p for (p,) in self._query(
                "SELECT path FROM runs WHERE status='ok' AND (config_hash=? OR "
                "(? IS NOT NULL AND model_hash=?))", (config_hash, model_hash, model_hash))]
        except StorageError as e:  # the records answer without their index
            warnings.warn(f"{e}; answered from the records in runs/", stacklevel=2)
            return self._has_in_files(config_hash, model_hash, legacy, data_version)
        # the files decide: a record truncated or edited to failed since it was indexed is not
        # a stored run (the index cannot see an in-place edit)
        if any(_stored_ok(self.root / p, {config_hash, model_hash}) for p in current):
            return True
        if not legacy:
            return False
        marks = ",".join("?" * len(legacy))
        paths = [p for (p,) in self._query(
            f"SELECT path FROM runs WHERE status='ok' AND (config_hash IN ({marks}) OR "
            f"model_hash IN ({marks}))", tuple(legacy + legacy))]
        for p in paths:
            record = read_record_or_warn(self.root / p)
            if record is None or not _stored_ok(self.root / p, set(legacy), record):
                continue
            dataset = record.get("dataset")
            version = dataset.get("version") if isinstance(dataset, dict) else None
            if data_version is None or version == data_version:
                return True
        return False

    def _has_in_files(self, config_hash: str, model_hash: str | None, legacy: list[str],
                      data_version: str | None) -> bool:
        """:meth:`has`, reading every record file instead of asking the index."""
        hashes = {h for h in (config_hash, model_hash) if h is not None}
        for rel in sorted(self._files()):
            path = self.root / rel
            record = read_record_or_warn(path)
            if record is None:
                continue
            if _stored_ok(path, hashes, record):
                return True
            if legacy and _stored_ok(path, set(legacy), record):
                dataset = record.get("dataset")
                version = dataset.get("version") if isinstance(dataset, dict) else None
                if data_version is None or version == data_version:
                    return True
        return False

    def records(self) -> list[dict]:
        """Every stored record, oldest first. Without the SQLite index (e.g. records committed
        to git without it) the ``runs/*.json`` files are read directly, and no index is made; so
        they are, with a warning, when SQLite cannot use the index (a read-only folder)."""
        if self.db_path.exists():
            try:
                paths = [r[0] for r in self._query("SELECT path FROM runs ORDER BY created, run_id")]
                return [r for r in (read_record_or_warn(self.root / p) for p in paths) if r is not None]
            except StorageError as e:  # a read-only store: its records are there all the same
                warnings.warn(f"{e}; read the records without it", stacklevel=2)
        found = [read_record_or_warn(self.root / p) for p in self._files()]
        recs = [r for r in found if r is not None]
        return sorted(recs, key=lambda r: (str(r["created"]), str(r["run_id"])))


_WARNED: set[tuple[str, str]] = set()  # (file, problem): each said once per process


def read_record_or_warn(path: Path) -> dict | None:
    """The record in ``path``, or None with a warning naming the file (once per process)."""
    try:
        return _read_record(path)
    except DataError as e:
        key = (str(path), str(e))
        if key not in _WARNED:
            _WARNED.add(key)
            warnings.warn(f"{e}; left out", stacklevel=2)
        return None


def _stored_ok(path: Path, hashes: set, record: dict | None = None) -> bool:
    """Whether the file at ``path`` is a readable, successful record of one of ``hashes``."""
    record = record if record is not None else read_record_or_warn(path)
    return (record is not None and record.get("status", "ok") == "ok"
            and (record.get("config_hash") in hashes or record.get("model_hash") in hashes))


def _malformed(record: dict) -> str | None:
    """What makes a JSON object unusable as a run record, or None. A successful run's metrics
    must be finite numbers per split and target (a NaN or a string would print as a score)."""
    if not isinstance(record.get("config"), dict):
        return "its config is not an object"
    if not isinstance(record["config"].get("data", {}), dict):
        return "its config's data section is not an object"
    if record.get("status", "ok") != "ok" or record.get("kind", "run") != "run":
        return None
    metrics = record.get("metrics")
    if metrics is None:
        return None  # a record of the oldest format without metrics: indexed with NULLs
    if not isinstance(metrics, dict):
        return "its metrics are not an object"
    for split, values in metrics.items():
        if not isinstance(values, dict):
            return f"its {split} metrics are not an object"
        for target, v in values.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                return f"its {split} {target} metric is {v!r}, not a finite number"
    return None


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
    problem = _malformed(record)
    if problem is not None:
        raise DataError(f"{path}: not a usable run record ({problem}); fix or move it out of "
                        f"the store's runs/ folder")
    return record


def model_name(cfg, sep: str = "-") -> str:
    """The fusion, or ``only<sep><modality>`` for a single-modality run (which uses no fusion):
    ``only-audio`` in run ids (file names), ``only:audio`` as ``sweep --fusion`` spells it."""
    mods = cfg.data.modalities
    return cfg.model.fusion if len(mods) > 1 else f"only{sep}{'+'.join(mods)}"


def display_name(cfg) -> str:
    """How tables, progress and ``run`` name a run's model: its fusion, or ``<modality> only``
    for a single-modality run (which has no fusion, whatever ``model.fusion`` says)."""
    mods = cfg.data.modalities
    return cfg.model.fusion if len(mods) > 1 else f"{mods[0]} only"


def new_record(config: dict, config_hash: str, plugins: dict, env: dict, name: str,
               status: str = "ok") -> dict:
    """The fields every stored record starts with; ``run_id`` is ``<UTC time stamp>-<name>``."""
    created = now_utc()
    stamp = created.replace(":", "").replace("-", "")
    return {
        "schema_version": SCHEMA_VERSION,
        # a random tail: two runs of one configuration in one second get two records
        "run_id": f"{stamp}-{name}-{uuid.uuid4().hex[:4]}",
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


def as_frame(path: str | Path = "results", kind: str | None = "run"):
    """The records of store ``path`` as a pandas DataFrame, a row per record of ``kind``
    (:func:`fusion_bench.report.frame.frame`); ``fusion_bench.results(path)`` calls this."""
    from .report.frame import frame

    if not Path(os.path.expanduser(str(path))).is_dir():
        raise DataError(f"no results store at {str(path)!r}; give the folder `run` or `sweep` "
                        "wrote into (out=..., default results)")
    return frame(ResultsStore(path).records(), kind)


class _CallableModule(types.ModuleType):
    """This module, callable: ``fusion_bench.results(path)`` (the notebook API) is
    :func:`as_frame` (an import of this module sets the package's attribute of its name, so a
    function of that name could not stay there)."""

    def __call__(self, path: str | Path = "results", kind: str | None = "run"):
        return as_frame(path, kind)


sys.modules[__name__].__class__ = _CallableModule
