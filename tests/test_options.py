"""Options that belong to their plugin: per-plugin keys, the preflight check, identity, listing."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fusion_bench.config import RunConfig, build_config
from fusion_bench.data.synthetic import VERSION, SyntheticDataset
from fusion_bench.errors import ConfigError
from fusion_bench.options import check, hashes
from fusion_bench.plugins import load_registry
from fusion_bench.sweep import grid, is_stored

from .conftest import TINY

SWEEP_TINY = [a for a in TINY if a != "--quiet"]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def reg():
    return load_registry(entry_points=False)


def _records(out: Path) -> list[dict]:
    runs = out / "runs"
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))] if runs.is_dir() else []


def test_a_sweep_carries_options_for_one_fusion_only(cli_run, tmp_path):
    code, out, err = cli_run("sweep", "--fusion", "rcma,concat", "--seeds", "1", "--out", tmp_path,
                             "--set", "fusion.rcma.iterations=1", *SWEEP_TINY)
    assert code == 0, err
    recs = {r["config"]["model"]["fusion"]: r for r in _records(tmp_path)}
    assert set(recs) == {"rcma", "concat"} and all(r["status"] == "ok" for r in recs.values())
    assert recs["rcma"]["options"]["fusion"]["iterations"] == 1
    assert recs["rcma"]["config"]["fusion"]["rcma"]["iterations"] == 1
    assert recs["concat"]["options"]["fusion"] == {} and recs["concat"]["config"]["fusion"] == {}


@pytest.mark.parametrize("sets, message", [
    (["fusion.rcma.iteratons=1"], "fusion 'rcma' has no option 'iteratons'; did you mean "
                                  "fusion.rcma.iterations"),
    (["fusion.iterations=1"], "fusion 'concat' has no option 'iterations'.*--set "
                              "fusion.rcma.iterations="),
    (["fusion.rcma.iterations=two"], "'fusion.rcma.iterations' expects int"),
    (["dataset.synthetic.n_trian=3"], "did you mean dataset.synthetic.n_train"),
])
def test_a_bad_plugin_option_in_a_sweep_is_one_error_before_any_run(cli_run, tmp_path, sets, message):
    import re

    args = [a for s in sets for a in ("--set", s)]
    code, out, err = cli_run("sweep", "--fusion", "rcma,concat", "--seeds", "2", "--out", tmp_path,
                             *SWEEP_TINY, *args)
    assert code == 2 and re.search(message, err), err
    assert err.count("Error:") == 1 and "Traceback" not in err
    assert _records(tmp_path) == []  # no failed record per run, no run at all


def test_run_checks_plugin_options_before_reading_data(cli_run, tmp_path, monkeypatch):
    def no_data(self):
        raise AssertionError("data read before the options were checked")

    monkeypatch.setattr(SyntheticDataset, "_generate", no_data)
    code, _, err = cli_run("run", "--fusion", "rcma", "--out", tmp_path, *TINY,
                           "--set", "fusion.rcma.iteratons=1")
    assert code == 2 and "did you mean fusion.rcma.iterations" in err, err
    assert _records(tmp_path) == []


def test_toml_tables_per_plugin(tmp_path, reg):
    f = tmp_path / "c.toml"
    f.write_text('[model]\nfusion = "concat"\n[fusion.rcma]\niterations = 1\n'
                 '[fusion.lstm]\nhidden = 8\n[encoder.tcn]\nkernel = 7\n'
                 '[dataset.synthetic]\nn_train = 20\n')
    cfg = build_config("quick", str(f))
    assert cfg.fusion["rcma"]["iterations"] == 1 and cfg.fusion["lstm"] == {"hidden": 8}
    assert cfg.options("fusion") == {} and cfg.options("encoder") == {"kernel": 7}
    assert cfg.options("dataset") == {"n_train": 20}
    check(cfg, reg)  # rcma's and lstm's options are not concat's business
    rcma = build_config("quick", str(f), [("model.fusion", "rcma")])
    assert rcma.options("fusion") == {"iterations": 1, "dropout": 0.1, "time_init": "identity"}


def test_short_form_means_the_chosen_plugin(reg):
    short = build_config("quick", None, [("fusion.iterations", "1"), ("model.fusion", "rcma")])
    long = build_config("quick", None, [("model.fusion", "rcma"), ("fusion.rcma.iterations", "1")])
    assert short.options("fusion")["iterations"] == 1 == long.options("fusion")["iterations"]
    assert hashes(short, reg) == hashes(long, reg)
    enc = build_config("quick", None, [("encoder.kernel", "7")])
    assert enc.encoder["tcn"]["kernel"] == 7 == build_config(
        "quick", None, [("encoder.tcn.kernel", "7")]).options("encoder")["kernel"]
    with pytest.raises(ConfigError, match="fusion.iterations and fusion.rcma.iterations both set"):
        build_config("quick", None, [("model.fusion", "rcma"), ("fusion.iterations", "1"),
                                     ("fusion.rcma.iterations", "3")])
    # in a sweep, the short form goes to each chosen fusion; one that lacks it is named
    rcma, concat = grid(["rcma", "concat"], [0], [("fusion.iterations", "1")], "quick", None)
    check(rcma, reg)
    with pytest.raises(ConfigError, match="fusion 'concat' has no option 'iterations'.*fusion.rcma"):
        check(concat, reg)


def test_dataset_options_change_the_data(reg):
    small = [("dataset.synthetic.n_train", "3"), ("dataset.synthetic.n_val", "2"),
             ("dataset.synthetic.n_test", "2"), ("dataset.synthetic.max_frames", "400")]
    base = SyntheticDataset.from_config(build_config("quick", None, small))
    wide = build_config("quick", None, [*small, ("dataset.synthetic.dim_visual", "16")])
    assert SyntheticDataset.from_config(wide).dims["visual"] == 16 and base.dims["visual"] == 32
    alias = build_config("quick", None, [*small, ("synthetic.dim_visual", "16")])  # old spelling
    assert alias.dataset == wide.dataset and hashes(alias, reg) == hashes(wide, reg)
    noisy = SyntheticDataset.from_config(build_config("quick", None, [*small, ("dataset.synthetic.noise", "3")]))
    a, b = base.splits()["train"][0].features["audio"], noisy.splits()["train"][0].features["audio"]
    assert a.shape == b.shape and not np.allclose(a, b)
    assert noisy.info()["generator"]["noise"] == 3.0  # coerced to the field's type
    assert hashes(build_config("quick", None, small), reg)["hash"] != hashes(wide, reg)["hash"]
    with pytest.raises(ConfigError, match="dataset 'affwild2' takes no options"):
        check(build_config("quick", None, [("data.name", "affwild2"), ("dataset.affwild2.x", "1")]), reg)
    with pytest.raises(ConfigError, match=r"dataset 'features' has no option 'x' \(its options: "
                                          r"dataset.features.label_range\)"):
        check(build_config("quick", None, [("data.name", "features"), ("dataset.features.x", "1")]), reg)
    with pytest.raises(ConfigError, match="'dataset.synthetic.noise' expects float"):
        check(build_config("quick", None, [("dataset.synthetic.noise", "loud")]), reg)


def test_hash_covers_only_the_options_of_the_plugins_used(reg):
    concat = build_config("quick", None, [("model.fusion", "concat")])
    with_rcma = build_config("quick", None, [("model.fusion", "concat"), ("fusion.rcma.iterations", "1"),
                                             ("encoder.lstm.layers", "2"), ("dataset.features.x", "1")])
    assert hashes(concat, reg)["hash"] == hashes(with_rcma, reg)["hash"]
    assert concat.to_dict() == with_rcma.to_dict()
    single = [("data.modalities", "audio")]
    plain, opts = (hashes(build_config("quick", None, o), reg)
                   for o in (single, [*single, ("fusion.dropout", "0.5")]))
    assert (plain["hash"], plain["model_hash"]) == (opts["hash"], opts["model_hash"])
    used = build_config("quick", None, [("model.fusion", "rcma"), ("fusion.rcma.iterations", "1")])
    assert hashes(used, reg)["hash"] != hashes(build_config("quick", None, [("model.fusion", "rcma")]), reg)["hash"]
    # 1 and 1.0 are one value
    assert (hashes(build_config("quick", None, [("dataset.synthetic.noise", "1")]), reg)["hash"]
            == hashes(build_config("quick", None, [("dataset.synthetic.noise", "1.0")]), reg)["hash"])
    assert RunConfig.from_dict(used.to_dict()).to_dict() == used.to_dict()


def _committed_runs() -> list[Path]:
    paths = [p for p in sorted(ROOT.glob("leaderboards/*/runs/*.json"))
             if json.loads(p.read_text()).get("kind") != "bench"]
    assert len(paths) >= 50  # the committed synthetic leaderboards
    return paths


# the quick preset's windows and length before they were derived from the data and counted in steps
OLD_QUICK = [("data.window", "64"), ("data.hop", "64"), ("data.eval_hop", "16"), ("train.epochs", "4")]


def test_committed_records_keep_their_identity(tmp_path, reg):
    from fusion_bench.results import ResultsStore

    (tmp_path / "runs").mkdir()
    paths = _committed_runs()
    for p in paths:
        shutil.copy(p, tmp_path / "runs" / p.name)
    store = ResultsStore(tmp_path)
    for p in paths:
        rec = json.loads(p.read_text())
        cfg = RunConfig.from_dict(rec["config"])  # the record's own config
        if "dataset" in rec["config"]:  # today's layout (synthetic-cpu's MulT rows): today's hash
            assert rec["config_hash"] == cfg.hash(VERSION), p.name
        else:  # the layout before plugin options: one of the older schemes
            assert rec["config_hash"] in cfg.legacy_hashes(VERSION), p.name
        assert is_stored(store, cfg, reg), p.name
    # and the configuration a user would give today finds them: the long sweep's first rcma run
    # (with the windows and passes the quick preset had then, which the data now derives)
    fresh = grid(["rcma"], [0], OLD_QUICK + [("train.epochs", "8")], "quick", None)[0]
    first = json.loads(sorted(ROOT.glob("leaderboards/synthetic-cpu-long/runs/*-rcma-s0-*.json"))[0].read_text())
    assert first["config_hash"] in fresh.legacy_hashes(VERSION) and is_stored(store, fresh, reg)
    other = grid(["rcma"], [0], OLD_QUICK + [("train.epochs", "8"), ("fusion.rcma.iterations", "1")],
                 "quick", None)[0]
    assert not is_stored(store, other, reg)


# hash() and model_hash() as commit b558dd0 (before plugin options) computed them; no committed
# record has this scheme's digest, so they were taken from that commit's code once.
B558DD0 = [
    ("quick", [("model.fusion", "rcma")], "b5cb45d9a56d1595", "b5cb45d9a56d1595"),
    ("quick", [("model.fusion", "rcma"), ("fusion.iterations", "1"), ("synthetic.n_train", "20"),
               ("synthetic.noise", "2")], "20bf08ca387e079e", "20bf08ca387e079e"),
    ("paper", [("model.encoder", "lstm"), ("model.fusion", "rcma")], "0e5e38bb1fe0ba5c", "0e5e38bb1fe0ba5c"),
    ("quick", [("data.modalities", "visual"), ("robustness.enabled", "true")],
     "babe39db9f977063", "c3fb33ba0be6861a"),
    ("quick", [("data.name", "affwild2"), ("model.fusion", "cross_attention"), ("fusion.heads", "2")],
     "154193b0ed4df1a0", "154193b0ed4df1a0"),
]


@pytest.mark.parametrize("preset, overrides, old_hash, old_model_hash", B558DD0)
def test_legacy_hashes_include_the_previous_scheme(reg, preset, overrides, old_hash, old_model_hash):
    # the quick preset of then, spelled out (its windows and length are derived and counted in
    # steps now); set before the case's own overrides, as that preset was
    h = hashes(build_config(preset, None, (OLD_QUICK if preset == "quick" else []) + overrides), reg)
    assert old_hash in h["legacy"] and old_model_hash in h["legacy"]
    assert h["hash"] != old_hash  # the current scheme is another layout


def test_list_shows_each_plugins_options(cli_run):
    code, out, _ = cli_run("list", "fusions", "--options")
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("fusion.rcma.iterations"))
    assert line.split() == ["fusion.rcma.iterations", "int", "2"]
    assert any(ln.startswith("fusion.concat ") and "(no options)" in ln for ln in out.splitlines())
    code, out, _ = cli_run("list", "datasets", "--options")
    assert code == 0 and any(ln.split() == ["dataset.synthetic.noise", "float", "1.0"]
                             for ln in out.splitlines())
    code, out, _ = cli_run("list", "encoders", "--options")
    assert code == 0 and any(ln.split() == ["encoder.tcn.kernel", "int", "5"] for ln in out.splitlines())


def test_a_one_modality_runs_identity_ignores_the_fusion(reg, tmp_path):
    """A single-modality run builds no fusion: --fusion (and fusion options) leave its hash, its
    model hash and its name alone; with two modalities the fusion is part of the identity."""
    import hashlib

    from fusion_bench.results import ResultsStore, display_name

    one = [("data.modalities", "audio"), *OLD_QUICK]  # settings a record before could have
    concat, rcma = (build_config("quick", None, [*one, ("model.fusion", f)]) for f in ("concat", "rcma"))
    assert hashes(concat, reg)["hash"] == hashes(rcma, reg)["hash"]
    assert hashes(concat, reg)["model_hash"] == hashes(rcma, reg)["model_hash"]
    assert display_name(rcma) == "audio only"
    two = [("data.modalities", "audio,text")]
    assert (hashes(build_config("quick", None, [*two, ("model.fusion", "concat")]), reg)["hash"]
            != hashes(build_config("quick", None, [*two, ("model.fusion", "rcma")]), reg)["hash"])
    # a run stored before (its hash covered model.fusion, here the default concat) is found by
    # the same run asked with another --fusion: the previous scheme, digested by hand
    d = concat.to_dict()
    d.pop("device"), d["train"].pop("progress"), d.pop("robustness")
    d["train"].pop("steps"), d["train"].pop("eval_every")  # unused by a run by passes
    d["train"].pop("eval_each_pass")  # likewise (and added since)
    d["train"].pop("precision")  # a key records of then did not have (its default, fp32)
    d["model"].pop("pooling"), d["train"].pop("modality_dropout")  # settings added since
    d["data_version"] = VERSION
    before = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
    assert before != hashes(concat, reg)["hash"] and before in hashes(rcma, reg)["legacy"]
    (tmp_path / "runs").mkdir()
    rec = {"run_id": "old-only-audio", "config_hash": before, "created": "2026-11-30T00:00:00Z",
           "config": concat.to_dict(), "status": "ok", "dataset": {"version": VERSION},
           "metrics": {}}
    (tmp_path / "runs" / "old-only-audio.json").write_text(json.dumps(rec))
    assert is_stored(ResultsStore(tmp_path), rcma, reg)
