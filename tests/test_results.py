"""Record identity: run ids name what was run."""

from fusion_bench.config import build_config
from fusion_bench.results import make_record


def test_run_id_names_the_fusion_or_the_single_modality():
    fused = make_record(build_config("quick", None, [("model.fusion", "rcma"), ("seed", "3")]),
                        {"device": "cpu", "metrics": {}}, {})
    single = make_record(build_config("quick", None, [("data.modalities", "audio")]),
                         {"device": "cpu", "metrics": {}}, {})
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
    store = ResultsStore(tmp_path)
    assert store.has("h1") and not store.has("h2", "m2")
    cfg = build_config("quick", None, [("robustness.enabled", "true")])
    rec = make_record(cfg, {"device": "cpu", "metrics": {}}, {})
    store.write(rec)
    assert store.has("other", rec["model_hash"]) and not store.has("other")
    plain = build_config("quick")
    assert rec["model_hash"] == plain.model_hash() == plain.hash() != cfg.hash()
