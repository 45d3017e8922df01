"""One table per dataset, rows named by what differs, --explain, captions true of the dataset:
on records made in memory (today's config layout, made-up scores) and on tiny feature folders."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest

from fusion_bench.config import build_config
from fusion_bench.data.features import FeaturesDataset, fingerprint
from fusion_bench.report.grouping import row_key, row_labels
from fusion_bench.report.leaderboard import build_rows, table
from fusion_bench.results import ResultsStore

from .data.test_features import make_folder


def record(*overrides: tuple[str, str], seed: int = 0, mean: float = 0.5, folder: str = "mine",
           fp: str | None = "f" * 16) -> dict:
    """A run record on a features folder (``fp``: its fingerprint; None: a synthetic record)."""
    # windows set as the quick preset had them (0 now: derived from the data by the rule)
    over = [("data.name", "features" if fp else "synthetic"), ("data.window", "64"),
            ("data.hop", "64"), *overrides, ("seed", str(seed))]
    cfg = build_config("quick", None, over)
    ccc = {"valence": mean, "arousal": mean, "mean": mean}
    dataset = ({"name": "features", "version": "1", "root": f"/data/{folder}", "fingerprint": fp,
                "videos": {"train": 7, "val": 2, "test": 2}} if fp else
               {"name": "synthetic", "version": "2", "seed": 0, "generator": {"n_train": 192}})
    h = f"{abs(hash(json.dumps(cfg.to_dict(), sort_keys=True))):016x}"[:16]
    return {"run_id": f"{h}-s{seed}-{folder}-{fp}", "status": "ok", "created": f"2026-12-01T00:00:0{seed}Z",
            "config": cfg.to_dict(), "config_hash": h, "dataset": dataset,
            "environment": {"fusion_bench": "0.1.0", "commit": "abc", "device": "cpu"},
            "metrics": {"test": ccc, "val": ccc}}


def labels(tables) -> list[str]:
    return sorted(r.label for rows in tables.values() for r in rows)


# -- the fingerprint ------------------------------------------------------------------------------
def test_the_fingerprint_follows_the_data_not_the_path(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_folder(a)
    shutil.copytree(a, b)
    split = FeaturesDataset(a).split_names
    fp = FeaturesDataset(a).fingerprint()
    assert FeaturesDataset(b).fingerprint() == fp  # a copy elsewhere is the same data
    assert FeaturesDataset(a, ("audio",)).fingerprint() == fp  # any subset of its modalities
    assert len(fp) == 16 and fp == fingerprint(a, split, ("visual", "audio", "text"))
    name = split["train"][0]
    lab = b / "labels" / f"{name}.csv"
    header, first, rest = lab.read_text().split("\n", 2)
    lab.write_text(f"{header}\n0.5,0.5\n{rest}")  # one label edited (not the header)
    assert FeaturesDataset(b).fingerprint() != fp
    shutil.rmtree(b)
    shutil.copytree(a, b)
    x = np.load(b / "features" / "text" / f"{name}.npy")
    np.save(b / "features" / "text" / f"{name}.npy", np.zeros((x.shape[0], x.shape[1] + 1), np.float32))
    assert FeaturesDataset(b).fingerprint() != fp  # a shape
    shutil.rmtree(b)
    shutil.copytree(a, b)
    (b / "splits.csv").write_text((b / "splits.csv").read_text().replace(f"{name},train\n", ""))
    assert FeaturesDataset(b).fingerprint() != fp  # the splits


def test_two_feature_folders_never_share_a_table(cli_run, tmp_path):
    """Real runs on two folders, both named ``feats``: two tables, told apart by fingerprint."""
    out = tmp_path / "res"
    train = ["--set", "train.epochs=1", "--set", "encoder.channels=8", "--quiet", "--out", out]
    for parent, n in (("one", (5, 3, 3)), ("two", (6, 3, 3))):
        make_folder(tmp_path / parent / "feats", n=n)
        code, _, err = cli_run("run", "--root", tmp_path / parent / "feats", *train)
        assert code == 0, err
    recs = ResultsStore(out).records()
    fps = {r["dataset"]["fingerprint"] for r in recs}
    assert len(fps) == 2
    tables = build_rows(recs)
    assert sorted(tables) == sorted(f"features-feats-{fp[:8]}" for fp in fps)
    assert all(len(rows) == 1 and rows[0].label == "concat" for rows in tables.values())
    captions = {table(rows)[2] for rows in tables.values()}
    assert all(f"fingerprint {fp}" in "".join(captions) for fp in fps)
    code, stdout, err = cli_run("leaderboard", "--out", out)
    assert code == 0 and stdout.count("## features-feats-") == 2, err


def test_one_folder_at_two_paths_is_one_table_and_one_row():
    a = record(folder="mine", seed=0)
    b = record(("data.root", "/elsewhere/mine"), folder="mine", seed=1)
    ((key, rows),) = build_rows([a, b]).items()
    assert key == "features-mine-ffffffff" and len(rows) == 1 and len(rows[0].records) == 2


def test_records_of_another_fingerprint_are_another_table_even_with_one_configuration():
    a, b = record(fp="a" * 16), record(fp="b" * 16, seed=1)
    tables = build_rows([a, b])
    assert sorted(tables) == ["features-mine-aaaaaaaa", "features-mine-bbbbbbbb"]
    assert row_key(a) != row_key(b)  # nor one row, were they ever in one table


# -- labels -----------------------------------------------------------------------------------------
def test_rows_are_named_by_the_settings_that_differ():
    recs = [record(("model.encoder", "lstm")), record(("model.encoder", "tcn")),
            record(("model.encoder", "tcn"), ("data.window", "16"), ("data.hop", "8")),
            record(("data.modalities", "audio"), ("model.encoder", "tcn"))]
    got = labels(build_rows(recs))
    assert got == ["audio only (encoder=tcn, hop=64, window=64)",
                   "concat (encoder=lstm, hop=64, window=64)",
                   "concat (encoder=tcn, hop=64, window=64)",
                   "concat (encoder=tcn, hop=8, window=16)"]
    assert not any("[" in x for x in got)


def test_plugin_options_and_modalities_label_only_the_rows_they_concern():
    recs = [record(("model.fusion", "rcma"), ("fusion.rcma.iterations", "1")),
            record(("model.fusion", "rcma"), ("fusion.rcma.iterations", "3")),
            record(("model.fusion", "concat")),
            record(("model.fusion", "concat"), ("data.modalities", "visual,audio"))]
    assert labels(build_rows(recs)) == [
        "concat (modalities=visual,audio)", "concat (modalities=visual,audio,text)",
        "rcma (iterations=1)", "rcma (iterations=3)"]


def test_the_fusion_of_a_one_modality_row_is_no_setting():
    """``--fusion`` on one modality changes nothing: one row, its seeds pooled, no fusion named."""
    recs = [record(("data.modalities", "audio"), ("model.fusion", f), seed=s)
            for s, f in enumerate(("concat", "rcma", "lstm"))]
    ((rows),) = build_rows(recs).values()
    assert len(rows) == 1 and rows[0].label == "audio only" and len(rows[0].records) == 3
    assert row_labels([recs[0]]) == ["audio only"]


# -- --explain and the caption ---------------------------------------------------------------------
def test_explain_prints_each_rows_configuration_with_the_differing_keys_marked(cli_run, tmp_path):
    store = ResultsStore(tmp_path)
    for rec in (record(("data.window", "16"), ("data.hop", "16")), record(mean=0.6)):
        store.write(rec)
    code, out, err = cli_run("leaderboard", "--out", tmp_path, "--explain")
    assert code == 0, err
    expl = out[out.index("Configurations of the rows"):]
    blocks = [b for b in expl.split("\n\n")[1:] if b.strip()]
    assert [b.splitlines()[0].split("  (")[0] for b in blocks] == [
        "concat (hop=64, window=64)", "concat (hop=16, window=16)"]  # table order: best first
    assert "  * data.window = 16" in blocks[1] and "  * data.window = 64" in blocks[0]
    assert "  * data.hop = 16" in blocks[1]
    assert "    train.lr = 0.002" in blocks[0] and "    model.encoder = tcn" in blocks[0]
    assert "* train.lr" not in expl and "* model.encoder" not in expl


def test_a_folders_caption_names_it_and_no_data_seed():
    (rows,) = build_rows([record()]).values()
    caption = table(rows)[2]
    assert caption.startswith("Dataset features v1, folder mine (fingerprint ffffffffffffffff; "
                              "videos 7/2/2 (train/val/test)). CCC as mean")
    assert "data seed" not in caption and "data draw" not in caption
    (rows,) = build_rows([record(fp=None)]).values()
    assert table(rows)[2].startswith("Dataset synthetic v2 (data seed 0). CCC")


def test_a_plain_rerun_keeps_the_committed_record_layout_grouping():
    """Old-layout records still group by today's identity (the fingerprint path is additive)."""
    rec = record(fp=None)
    old = copy.deepcopy(rec)
    old["config"].pop("dataset")
    old["config"]["fusion"], old["config"]["encoder"] = {}, rec["config"]["encoder"].get("tcn", {})
    old["config"]["synthetic"] = {}
    old["config"]["seed"], old["run_id"] = 1, "old"
    ((rows),) = build_rows([rec, old]).values()
    assert len(rows) == 1 and len(rows[0].records) == 2


@pytest.mark.parametrize("dataset", ["features", "features-mine-aaaaaaaa"])
def test_dataset_filter_takes_the_name_or_the_table(dataset):
    tables = build_rows([record(fp="a" * 16), record(fp="b" * 16, seed=1)], dataset)
    assert "features-mine-aaaaaaaa" in tables and len(tables) == (2 if dataset == "features" else 1)
