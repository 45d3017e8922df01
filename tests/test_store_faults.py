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
