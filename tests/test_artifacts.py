"""What a run trained is kept with its record (best weights, test predictions) and can be
reloaded to predict: the reloaded model reproduces the run's own scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusion_bench.artifacts import load_model, stored_predictions
from fusion_bench.errors import DataError

from .conftest import TINY


def run_one(cli_run, tmp_path, *extra):
    out = tmp_path / "res"
    code, stdout, err = cli_run("run", "--fusion", "concat", "--out", out, *TINY, *extra)
    assert code == 0, err
    (path,) = (out / "runs").glob("*.json")
    return out, json.loads(path.read_text())


@pytest.mark.parametrize("per_target", ["false", "true"])
def test_the_reloaded_model_reproduces_the_runs_test_predictions(cli_run, tmp_path, per_target):
    from fusion_bench.config import RunConfig
    from fusion_bench.evaluate import score
    from fusion_bench.plugins import load_registry
    from fusion_bench.runs import load_dataset

    out, rec = run_one(cli_run, tmp_path, "--set", f"model.per_target={per_target}")
    art = rec["artifacts"]
    assert len(art["models"]) == (2 if per_target == "true" else 1)
    for rel in art["models"].values():
        assert (out / rel).is_file()
    stored = stored_predictions(rec["run_id"], out)
    reg = load_registry(entry_points=False)
    videos = load_dataset(reg, RunConfig.from_dict(rec["config"]))[1]["test"]
    assert sorted(stored) == sorted(v.name for v in videos)
    # the stored predictions score as the record says
    assert score([stored[v.name] for v in videos], videos) == pytest.approx(rec["metrics"]["test"],
                                                                          abs=1e-6)
    loaded = load_model(rec["run_id"], out, reg)
    again = loaded.predict(videos)
    for v in videos:
        np.testing.assert_allclose(again[v.name], stored[v.name], atol=1e-5)


def test_no_model_keeps_the_record_only(cli_run, tmp_path):
    out, rec = run_one(cli_run, tmp_path, "--no-model")
    assert "artifacts" not in rec and not (out / "models").exists()
    with pytest.raises(DataError, match="kept no model"):
        load_model(rec["run_id"], out)


def test_predict_writes_a_csv_per_video_of_a_features_folder(cli_run, tmp_path):
    from fusion_bench.config import build_config
    from fusion_bench.data.features import write_splits, write_video
    from fusion_bench.plugins import load_registry
    from fusion_bench.runs import load_dataset

    from .conftest import tiny_overrides

    out, rec = run_one(cli_run, tmp_path)
    folder = tmp_path / "feats"
    cfg = build_config("quick", None, tiny_overrides())
    splits = load_dataset(load_registry(entry_points=False), cfg)[1]
    for v in splits["test"]:
        write_video(folder, v)
    write_splits(folder, {"train": [], "val": [], "test": [v.name for v in splits["test"]]})
    code, stdout, err = cli_run("predict", "--run", rec["run_id"], "--out", out, "--root",
                                folder, "--predictions", tmp_path / "preds")
    assert code == 0, err
    stored = stored_predictions(rec["run_id"], out)
    for v in splits["test"]:
        lines = (tmp_path / "preds" / f"{v.name}.csv").read_text().splitlines()
        assert lines[0] == "valence,arousal" and len(lines) == v.n_frames + 1
        got = np.array([[float(x) for x in line.split(",")] for line in lines[1:]])
        np.testing.assert_allclose(got, stored[v.name], atol=2e-6)


def test_a_record_pointing_outside_its_store_is_refused(cli_run, tmp_path):
    out, rec = run_one(cli_run, tmp_path)
    path = out / "runs" / f"{rec['run_id']}.json"
    evil = dict(rec)
    evil["artifacts"] = {**rec["artifacts"], "models": {"x": "../../outside.pt"}}
    path.write_text(json.dumps(evil))
    with pytest.raises(DataError, match="outside its store"):
        load_model(rec["run_id"], out)


def test_weights_that_would_run_code_are_not_loaded(cli_run, tmp_path):
    import pickle

    out, rec = run_one(cli_run, tmp_path)
    (rel,) = rec["artifacts"]["models"].values()

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    (out / rel).write_bytes(pickle.dumps(Payload()))
    with pytest.raises(DataError, match="not the weights of run"):
        load_model(rec["run_id"], out)
