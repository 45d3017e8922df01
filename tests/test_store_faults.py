"""The records are the truth: an unreadable index is rebuilt from them, and a file in runs/ that
is not a usable record is named and left out, never costing a command its result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fusion_bench.results import ResultsStore

COMMITTED = Path(__file__).resolve().parent.parent / "leaderboards" / "synthetic-cpu" / "runs"


def store_of(tmp_path, n=3) -> tuple[ResultsStore, list[dict]]:
    (tmp_path / "runs").mkdir(parents=True)
    paths = sorted(COMMITTED.glob("*.json"))[:n]
    for p in paths:
        shutil.copy(p, tmp_path / "runs" / p.name)
    return ResultsStore(tmp_path), [json.loads(p.read_text()) for p in paths]


@pytest.mark.parametrize("garbage", [b"\x00\x01 not sqlite at all" * 64,
                                     b"SQLite format 3\x00" + b"\xff" * 4000])
def test_an_unreadable_index_is_moved_aside_and_rebuilt(tmp_path, garbage):
    store, recs = store_of(tmp_path)
    assert len(store.records()) == 3  # builds the index
    store.db_path.write_bytes(garbage)
    fresh = ResultsStore(tmp_path)
    with pytest.warns(UserWarning, match="could not be read.*rebuilt from the records"):
        assert fresh.has(recs[0]["config_hash"])
    assert sorted(r["run_id"] for r in fresh.records()) == sorted(r["run_id"] for r in recs)
    (aside,) = tmp_path.glob("fusion_bench.sqlite.unreadable-*")
    assert aside.read_bytes() == garbage  # kept for inspection


def test_writing_into_a_store_with_an_unreadable_index_keeps_the_record(tmp_path):
    store, recs = store_of(tmp_path, n=1)
    store.db_path.write_bytes(b"garbage" * 100)
    new = dict(recs[0], run_id="new-run", config_hash="newhash")
    with pytest.warns(UserWarning, match="rebuilt"):
        path = ResultsStore(tmp_path).write(new)
    assert json.loads(path.read_text())["run_id"] == "new-run"
    assert ResultsStore(tmp_path).has("newhash")


def test_a_truncated_or_failed_record_is_not_a_stored_run(tmp_path):
    store, recs = store_of(tmp_path, n=2)
    h0, h1 = recs[0]["config_hash"], recs[1]["config_hash"]
    assert store.has(h0) and store.has(h1)  # indexed
    p0, p1 = (tmp_path / "runs" / f"{r['run_id']}.json" for r in recs)
    p0.write_text(p0.read_text()[:100])  # truncated after it was indexed
    edited = json.loads(p1.read_text())
    edited["status"] = "failed"
    p1.write_text(json.dumps(edited))  # edited in place: the folder's mtime need not change
    with pytest.warns(UserWarning, match="not a readable run record"):
        assert not store.has(h0)
    assert not store.has(h1)


@pytest.mark.parametrize("damage,problem", [
    (lambda r: r.update(config="a string"), "its config is not an object"),
    (lambda r: r["metrics"]["test"].update(mean=float("nan")), "test mean metric is nan"),
    (lambda r: r["metrics"]["test"].update(valence="0.9"), "test valence metric is '0.9'"),
    (lambda r: r.update(metrics=[1, 2]), "its metrics are not an object"),
])
def test_a_malformed_record_is_named_and_skipped_by_the_leaderboard(tmp_path, cli_run, damage,
                                                                    problem):
    store, recs = store_of(tmp_path)
    bad = json.loads(json.dumps(recs[0]))
    damage(bad)
    (tmp_path / "runs" / f"{bad['run_id']}.json").write_text(json.dumps(bad))
    code, out, err = cli_run("leaderboard", "--out", tmp_path)
    assert code == 0, err
    assert f"{bad['run_id']}.json: not a usable run record (" in err and problem in err
    assert err.count("\n") == 1 and err.startswith("warning: ")  # one line, no traceback


def test_a_foreign_file_does_not_fail_a_run_that_wrote_its_record(tmp_path, cli_run, tiny_args):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "notes.json").write_text("my notes")
    code, out, err = cli_run("run", "--fusion", "concat", "--out", tmp_path, *tiny_args)
    assert code == 0, err
    assert "notes.json: not a readable run record" in err and "record: " in out


# -- an index SQLite cannot use (locked, read-only, a full disk) is no damage: never set aside ------
def _unusable(monkeypatch, store):
    import sqlite3

    def locked(sync):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "_open", locked)


def test_a_locked_index_is_not_set_aside_and_the_records_answer(tmp_path, monkeypatch):
    store, recs = store_of(tmp_path)
    assert not store.has("nohash")  # the index is made
    index = store.db_path.read_bytes()
    fresh = ResultsStore(tmp_path)
    _unusable(monkeypatch, fresh)
    with pytest.warns(UserWarning, match="database is locked.*answered from the records"):
        assert fresh.has(recs[1]["config_hash"]) and not fresh.has("nohash")
    with pytest.warns(UserWarning, match="database is locked.*read the records without it"):
        assert sorted(r["run_id"] for r in fresh.records()) == sorted(r["run_id"] for r in recs)
    assert store.db_path.read_bytes() == index  # was: moved aside as if damaged
    assert not list(tmp_path.glob("fusion_bench.sqlite.unreadable-*"))


def test_a_record_written_while_the_index_is_unusable_is_stored_and_indexed_later(tmp_path,
                                                                                monkeypatch):
    store, recs = store_of(tmp_path, n=1)
    store.has("nohash")  # the index is made
    _unusable(monkeypatch, store)
    new = dict(recs[0], run_id="new-run", config_hash="newhash")
    with pytest.warns(UserWarning, match="new-run.json is stored, but .* could not be updated"):
        path = store.write(new)
    assert json.loads(path.read_text())["run_id"] == "new-run"
    assert ResultsStore(tmp_path).has("newhash")  # the next use indexes the file


def test_a_store_that_cannot_take_a_run_keeps_nothing_of_it(tmp_path, monkeypatch):
    """The disk fills while a run's models are written: no record, no models folder of it, and
    one StorageError (exit 2 at the CLI)."""
    import errno

    from fusion_bench import artifacts
    from fusion_bench.errors import StorageError

    store, recs = store_of(tmp_path, n=1)
    calls = []
    real = artifacts.atomic_write_bytes

    def fills_up(path, data):
        calls.append(path)
        if len(calls) == 2:  # the first model is written, the predictions are not
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(artifacts, "atomic_write_bytes", fills_up)
    record = dict(recs[0], run_id="full-run", config_hash="fullhash")
    record[artifacts.PENDING] = {"models": {"valence+arousal": {}}, "dims": {"visual": 3},
                                 "targets": ["valence", "arousal"], "columns": {},
                                 "test_predictions": {"v": [[0.0, 0.0]]}}
    with pytest.raises(StorageError, match="No space left on device.*the store is as it was"):
        artifacts.write_run(store, record)
    assert len(calls) == 2 and not (tmp_path / "models" / "full-run").exists()
    assert not (tmp_path / "runs" / "full-run.json").exists() and not store.has("fullhash")


def test_a_record_that_cannot_be_written_is_one_storage_error(tmp_path, monkeypatch):
    import errno

    from fusion_bench import results
    from fusion_bench.errors import StorageError

    store, recs = store_of(tmp_path, n=1)
    before = sorted((tmp_path / "runs").iterdir())

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results, "atomic_write_text", full)
    with pytest.raises(StorageError, match="full-run.json: the record cannot be written"):
        store.write(dict(recs[0], run_id="full-run"))
    assert sorted((tmp_path / "runs").iterdir()) == before


# -- kill -9 while the store is written: it stays readable -----------------------------------------
KILL_AT = '''
import os, signal, sys, json
from pathlib import Path
from fusion_bench import results
store = results.ResultsStore(sys.argv[1])
rec = json.loads(Path(sys.argv[2]).read_text())
rec.update(run_id="killed-run", config_hash="killedhash")
where = sys.argv[3]
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
if where == "record":  # at the record's fsync: its bytes written, not yet in place
    os.fsync = die
else:  # the record is in place; the index row not yet written
    results.ResultsStore._index = staticmethod(die)
store.write(rec)
'''


@pytest.mark.parametrize("where,stored", [("record", False), ("index", True)])
def test_kill_9_while_a_record_is_written_leaves_a_readable_store(tmp_path, where, stored):
    import os
    import signal
    import subprocess
    import sys

    store, recs = store_of(tmp_path / "s")
    store.has("nohash")  # the index exists: the killed writer had it open
    script = tmp_path / "kill.py"
    script.write_text(KILL_AT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    p = subprocess.run([sys.executable, str(script), str(tmp_path / "s"),
                        str(next((tmp_path / "s" / "runs").glob("*.json"))), where], env=env)
    assert p.returncode == -signal.SIGKILL
    fresh = ResultsStore(tmp_path / "s")
    ids = sorted(r["run_id"] for r in fresh.records())
    assert ids == sorted([r["run_id"] for r in recs] + (["killed-run"] if stored else []))
    assert fresh.has("killedhash") is stored  # the records are the truth: indexed on next use
    assert all(fresh.has(r["config_hash"]) for r in recs)
    assert not list((tmp_path / "s").glob("fusion_bench.sqlite.unreadable-*"))


# -- kill -9 while a checkpoint is written: the store stays readable, the run can be done again -----
KILL_AT_CHECKPOINT = '''
import os, signal, sys
real_fsync = os.fsync

def fsync(fd):  # the first file fsync'd into checkpoints/ (its bytes written, not yet in place)
    if "checkpoints" in os.readlink(f"/proc/self/fd/{fd}").split(os.sep):
        open(sys.argv[1], "w").close()  # says the kill came there
        os.kill(os.getpid(), signal.SIGKILL)
    real_fsync(fd)

os.fsync = fsync
from fusion_bench.cli import main
sys.exit(main(sys.argv[2:]))
'''


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the file by /proc/self/fd")
def test_kill_9_while_a_checkpoint_is_written_leaves_a_readable_store(tmp_path):
    """Format-free: whatever a checkpoint holds, a run killed while writing one leaves every
    record readable and none of its own, and the same command then completes. A run that
    writes no checkpoint (fusion_bench.checkpoint not in this tree) is skipped, saying so; one
    that has the module but never fsyncs into checkpoints/ fails (checkpoints must be written
    atomically, with fusion_bench.files)."""
    import importlib.util
    import os
    import signal
    import subprocess
    import sys

    from .conftest import TINY

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    store = tmp_path / "store"
    args = ["run", "--out", str(store), *TINY]

    def cli(*extra, wrapper=None):
        head = [sys.executable, str(wrapper), str(tmp_path / "killed")] if wrapper else \
            [sys.executable, "-m", "fusion_bench"]
        return subprocess.run([*head, *args, *extra], env=env, capture_output=True, text=True,
                              timeout=300)

    first = cli("--seed", "1")
    assert first.returncode == 0, first.stderr
    before = sorted((store / "runs").glob("*.json"))
    wrapper = tmp_path / "kill_at_checkpoint.py"
    wrapper.write_text(KILL_AT_CHECKPOINT)
    p = cli(wrapper=wrapper)
    if not (tmp_path / "killed").exists():
        assert p.returncode == 0, p.stderr
        if importlib.util.find_spec("fusion_bench.checkpoint") is None:
            pytest.skip("no checkpoint written: fusion_bench.checkpoint is not in this tree yet")
        pytest.fail("fusion_bench.checkpoint exists but nothing was fsync'd into checkpoints/: "
                    "checkpoints must be written atomically (fusion_bench.files)")
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert sorted((store / "runs").glob("*.json")) == before  # no record of the killed run
    rs = ResultsStore(store)
    assert [r["run_id"] for r in rs.records()] == [b.stem for b in before]
    again = cli()
    assert again.returncode == 0, again.stderr  # a torn checkpoint does not stop the same run
    assert len(ResultsStore(store).records()) == 2
