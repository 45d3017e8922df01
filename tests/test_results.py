"""Record identity: run ids name what was run; the store's files are the truth."""

import json
import shutil
from pathlib import Path

import pytest

from fusion_bench.config import build_config
from fusion_bench.data.synthetic import VERSION
from fusion_bench.results import make_record


def test_run_id_names_the_fusion_or_the_single_modality():
    fused = make_record(build_config("quick", None, [("model.fusion", "rcma"), ("seed", "3")]),
                        {"device": "cpu", "metrics": {}}, {}, VERSION)
    single = make_record(build_config("quick", None, [("data.modalities", "audio")]),
                         {"device": "cpu", "metrics": {}}, {}, VERSION)
    assert "-rcma-s3-" in fused["run_id"]
    assert "-only-audio-s0-" in single["run_id"] and "concat" not in single["run_id"]


def test_a_store_made_before_model_hash_still_opens_and_answers(tmp_path):
    import sqlite3

    from fusion_bench.results import ResultsStore

    con = sqlite3.connect(tmp_path / "fusion_bench.sqlite")  # the schema of the first release
    con.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, config_hash TEXT NOT NULL, created "
                "TEXT NOT NULL, dataset TEXT, fusion TEXT, seed INTEGER, status TEXT, val_mean "
                "REAL, test_valence REAL, test_arousal REAL, test_mean REAL, path TEXT NOT NULL)")
    con.execute("INSERT INTO runs VALUES ('old', 'h1', 't', 'synthetic', 'concat', 0, 'ok', "
                "0, 0, 0, 0, 'runs/old.json')")
    con.commit()
    con.close()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "old.json").write_text(json.dumps(
        {"run_id": "old", "config_hash": "h1", "created": "t", "status": "ok",
         "config": {"seed": 0, "data": {"name": "synthetic"}, "model": {"fusion": "concat"}}}))
    store = ResultsStore(tmp_path)
    assert store.has("h1") and not store.has("h2", "m2")
    cfg = build_config("quick", None, [("robustness.enabled", "true")])
    rec = make_record(cfg, {"device": "cpu", "metrics": {}}, {}, VERSION)
    store.write(rec)
    assert store.has("other", rec["model_hash"]) and not store.has("other")
    plain = build_config("quick")
    assert rec["model_hash"] == plain.model_hash(VERSION) == plain.hash(VERSION) != cfg.hash(VERSION)


LONG = Path(__file__).resolve().parent.parent / "leaderboards" / "synthetic-cpu-long" / "runs"


def test_records_copied_into_an_indexed_store_are_seen_and_deleted_ones_forgotten(tmp_path):
    from fusion_bench.results import ResultsStore

    store = ResultsStore(tmp_path)
    rec = make_record(build_config("quick"), {"device": "cpu", "metrics": {}}, {}, VERSION)
    store.write(rec)  # the index exists now
    committed = sorted(LONG.glob("*.json"))[:3]  # records committed without an index
    for p in committed:
        shutil.copy(p, tmp_path / "runs" / p.name)
    ids = {r["run_id"] for r in store.records()}
    assert ids == {rec["run_id"]} | {json.loads(p.read_text())["run_id"] for p in committed}
    first = json.loads(committed[0].read_text())
    assert store.has(first["config_hash"])  # indexed from the copied file
    (tmp_path / "runs" / committed[0].name).unlink()
    assert len(store.records()) == 3 and not store.has(first["config_hash"])


def test_a_sweep_skips_runs_stored_under_the_older_hash_on_the_same_data(tmp_path, monkeypatch):
    from fusion_bench.config import RunConfig
    from fusion_bench.data.synthetic import SyntheticDataset
    from fusion_bench.plugins import load_registry
    from fusion_bench.results import ResultsStore
    from fusion_bench.sweep import is_stored

    reg = load_registry(entry_points=False)
    path = sorted(LONG.glob("*.json"))[0]  # made before the data version entered the hash
    rec = json.loads(path.read_text())
    cfg = RunConfig.from_dict(rec["config"])
    assert rec["config_hash"] in cfg.legacy_hashes(VERSION) and rec["config_hash"] != cfg.hash(VERSION)
    (tmp_path / "runs").mkdir()
    shutil.copy(path, tmp_path / "runs" / path.name)
    store = ResultsStore(tmp_path)
    assert is_stored(store, cfg, reg)  # same configuration, same data version: not run again
    monkeypatch.setattr(SyntheticDataset, "data_version", "999")
    assert not is_stored(ResultsStore(tmp_path), cfg, reg)  # new data: run again


def test_rewriting_a_record_updates_the_index_and_new_files_are_seen(tmp_path):
    from fusion_bench.results import ResultsStore

    store = ResultsStore(tmp_path)
    rec = make_record(build_config("quick"), {"device": "cpu", "metrics": {}}, {}, VERSION)
    store.write({**rec, "status": "failed"})
    assert not store.has(rec["config_hash"])
    store.write(rec)  # the same run_id, now a success
    assert store.has(rec["config_hash"])
    other = json.loads(sorted(LONG.glob("*.json"))[1].read_text())
    (tmp_path / "runs" / "copied.json").write_text(json.dumps(other))  # after the last sync
    assert store.has(other["config_hash"])


def test_a_record_without_optional_fields_is_indexed(tmp_path):
    from fusion_bench.results import ResultsStore

    (tmp_path / "runs").mkdir()
    bare = {"run_id": "bare", "config_hash": "hb", "created": "t", "config": {}, "metrics": None}
    (tmp_path / "runs" / "bare.json").write_text(json.dumps(bare))
    store = ResultsStore(tmp_path)
    assert store.has("hb") and [r["run_id"] for r in store.records()] == ["bare"]


def test_a_store_of_files_alone_answers_has(tmp_path):
    from fusion_bench.results import ResultsStore

    (tmp_path / "runs").mkdir()
    p = sorted(LONG.glob("*.json"))[0]
    shutil.copy(p, tmp_path / "runs" / p.name)
    assert ResultsStore(tmp_path).has(json.loads(p.read_text())["config_hash"])


def test_a_foreign_file_in_runs_is_named_and_left_out(tmp_path):
    from fusion_bench.results import ResultsStore

    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "notes.json").write_text("[1, 2]")
    with pytest.warns(UserWarning, match=r"notes.json: not a fusion-bench run record.*left out"):
        assert ResultsStore(tmp_path).records() == []
    (tmp_path / "runs" / "notes.json").write_text("{")
    with pytest.warns(UserWarning, match=r"notes.json: not a readable run record"):
        assert not ResultsStore(tmp_path).has("x")
