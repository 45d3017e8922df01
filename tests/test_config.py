import pytest

from fusion_bench.config import PRESETS, build_config
from fusion_bench.errors import ConfigError
from fusion_bench.fusions.concat import Concat
from fusion_bench.options import plugin_options


def test_precedence_preset_file_set(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('seed = 11\n[train]\nlr = 0.5\nepochs = 3\n[fusion]\nwidth = 4\n')
    cfg = build_config("paper", str(f), [("train.epochs", "7")])
    assert cfg.seed == 11 and cfg.train.lr == 0.5 and cfg.train.epochs == 7
    assert cfg.data.window == 300 and cfg.train.batch_size == 12  # from the preset
    assert cfg.fusion["concat"] == {"width": 4}  # the short form: the chosen fusion's


def test_types_are_checked():
    assert build_config("quick", None, [("train.lr", "1e-4")]).train.lr == 1e-4
    assert build_config("quick", None, [("data.modalities", "visual,audio")]).data.modalities == ("visual", "audio")
    assert build_config("quick", None, [("model.channels", "visual:16,audio:8")]).model.channels == {"visual": 16, "audio": 8}
    assert build_config("quick", None, [("model.per_target", "yes")]).model.per_target is True
    with pytest.raises(ConfigError, match="expects float"):
        build_config("quick", None, [("train.lr", "fast")])
    with pytest.raises(ConfigError, match="expects int"):
        build_config("quick", None, [("data.window", "6.5")])
    with pytest.raises(ConfigError, match="expects bool"):
        build_config("quick", None, [("model.per_target", "maybe")])
    with pytest.raises(ConfigError, match="data.eval_hop must be"):
        build_config("quick", None, [("data.eval_hop", "-1")])
    with pytest.raises(ConfigError, match="train.schedule must be 'plateau' or 'cosine'"):
        build_config("quick", None, [("train.schedule", "linear")])


def test_bad_toml_names_the_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[train\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        build_config("quick", str(f))
    f.write_text("[train]\nlr = 'x'\n")
    with pytest.raises(ConfigError, match=r"bad.toml.*train.lr"):
        build_config("quick", str(f))


def test_hash_ignores_device_and_progress_bar_only():
    a = build_config("quick", None, [("device", "cpu")])
    b = build_config("quick", None, [("device", "cuda"), ("train.progress", "false")])
    c = build_config("quick", None, [("seed", "1")])
    assert a.hash("2") == b.hash("2") != c.hash("2") and a.model_hash("2") == b.model_hash("2")


def test_plugin_options_checked_against_signature():
    with pytest.raises(ConfigError, match="has no option"):
        plugin_options("fusion", "concat", Concat, {"width": 3}, skip=("dims", "seq_len"))


def test_paper_preset_is_the_papers_configuration():
    p = PRESETS["paper"]
    assert p["data.window"] == 300 and p["data.hop"] == 200 and p["seed"] == 3407
    assert p["train.lr"] == 1e-5 and p["train.weight_decay"] == 1e-3 and p["train.batch_size"] == 12


def test_preset_plugin_options_apply_to_their_plugin_only_and_yield_to_the_user():
    assert build_config("quick", None, [("model.fusion", "rcma")]).options("encoder") == {"kernel": 3}
    assert build_config("quick", None, [("encoder.kernel", "5")]).options("encoder") == {"kernel": 5}
    # another encoder does not get the TCN's option (an LSTM has no kernel)
    assert build_config("quick", None, [("model.encoder", "lstm")]).options("encoder") == {}
    cfg = build_config("quick", None, [("model.fusion", "rcma"), ("fusion.dropout", "0.3")])
    assert cfg.options("fusion") == {"dropout": 0.3, "time_init": "identity"}
    assert build_config("quick", None, [("model.fusion", "concat")]).options("fusion") == {}


def test_a_hop_longer_than_the_window_is_refused():
    with pytest.raises(ConfigError, match="data.hop \\(64\\) is longer than data.window \\(32\\)"):
        build_config("quick", None, [("data.window", "32"), ("data.hop", "64")])
    with pytest.raises(ConfigError, match="data.eval_hop \\(16\\) is longer than data.window \\(8\\)"):
        build_config("quick", None, [("data.window", "8"), ("data.hop", "8"), ("data.eval_hop", "16")])
    assert build_config("quick", None, [("data.window", "32"), ("data.hop", "32")]).data.eval_hop == 0
    # a window left to the data: a hop is checked once the data gives the window
    assert build_config("quick", None, [("data.hop", "64")]).data.hop == 64
    with pytest.raises(ConfigError, match="train.min_lr"):
        build_config("quick", None, [("train.min_lr", "0.1")])


def test_paper_preset_with_another_encoder():
    """The paper's TCN options go to the TCN only: --preset paper --encoder lstm builds."""
    cfg = build_config("paper", None, [("model.encoder", "lstm"), ("model.fusion", "rcma")])
    assert cfg.options("encoder") == {}
    assert cfg.data.window == 300 and cfg.options("fusion")["dropout"] == 0.6
    tcn = build_config("paper", None, [("model.fusion", "rcma")])
    assert tcn.options("encoder") == {"levels": 4, "kernel": 5, "dropout": 0.1, "causal": True,
                           "weight_norm": True}


def test_hash_names_the_synthetic_generator_version(monkeypatch):
    from fusion_bench.data.synthetic import SyntheticDataset
    from fusion_bench.options import hashes
    from fusion_bench.plugins import load_registry

    reg = load_registry(entry_points=False)
    cfg = build_config("quick")
    before = hashes(cfg, reg)
    feats = build_config("quick", None, [("data.name", "affwild2")])
    feats_before = hashes(feats, reg)
    monkeypatch.setattr(SyntheticDataset, "data_version", "999")
    after = hashes(cfg, reg)
    assert after["hash"] != before["hash"] and after["model_hash"] != before["model_hash"]  # re-run
    assert hashes(feats, reg) == feats_before  # not synthetic data: the generator is not its data


@pytest.mark.parametrize("key, value, message", [
    ("train.plateau_factor", "5", "train.plateau_factor .* between 0 and 1"),
    ("model.head_dropout", "2", r"model.head_dropout must be in \[0, 1\)"),
    ("data.seed", "-1", "data.seed must be ≥ 0"),
    ("seed", "-3", "seed must be ≥ 0"),
    ("train.warmup_epochs", "-1", "train.warmup_epochs must be ≥ 0"),
    ("synthetic.n_train", "-1", "synthetic.n_train must be ≥ 1"),
    ("synthetic.dim_visual", "0", "synthetic.dim_visual must be ≥ 1"),
    ("synthetic.noise", "-1", "synthetic.noise must be ≥ 0"),
    ("synthetic.offset_leak", "1.5", "synthetic.offset_leak is a share"),
    ("synthetic.max_frames", "10", r"synthetic.max_frames \(10\) is below"),
])
def test_out_of_range_numbers_name_their_key(key, value, message):
    from fusion_bench.options import check
    from fusion_bench.plugins import load_registry

    with pytest.raises(ConfigError, match=message):  # the dataset's options: in the preflight
        check(build_config("quick", None, [(key, value)]), load_registry(entry_points=False))


def test_head_dropout_without_a_hidden_layer_is_refused_not_ignored():
    """The head's dropout sits after its hidden layer: with head_hidden 0 there is none, and the
    setting would train exactly the model without it (it once did, silently)."""
    from fusion_bench.options import check
    from fusion_bench.plugins import load_registry

    reg = load_registry(entry_points=False)
    with pytest.raises(ConfigError, match=r"model.head_dropout \(0.3\).*model.head_hidden"):
        check(build_config("quick", None, [("model.head_dropout", "0.3")]), reg)
    check(build_config("quick", None, [("model.head_dropout", "0.3"), ("model.head_hidden", "8")]),
          reg)  # with a hidden layer it is a valid setting


def test_out_of_range_is_one_line_from_the_cli(cli_run):
    code, _, err = cli_run("run", "--set", "train.plateau_factor=5")
    assert code == 2 and "train.plateau_factor" in err and "Traceback" not in err


def test_paper_widths_on_an_encoder_without_width_say_where_they_come_from():
    from fusion_bench.model import build_model
    from fusion_bench.plugins import load_registry

    reg, dims = load_registry(entry_points=False), {"visual": 4, "audio": 3, "text": 2}
    cfg = build_config("paper", None, [("model.encoder", "identity")])
    with pytest.raises(ConfigError, match=r"model.channels=visual:512.*--preset paper sets it.*"
                                          r"--set model.channels="):
        build_model(reg, cfg, dims, 2)
    cleared = build_config("paper", None, [("model.encoder", "identity"), ("model.channels", "")])
    model, _ = build_model(reg, cleared, dims, 2)  # the hint works
    assert all(type(e).__name__ == "Identity" for e in model.encoders.values())


# ------------------------------------------- training length and windows left to the data


def test_defaults_leave_window_and_hops_to_the_data_and_train_by_steps():
    cfg = build_config()
    assert (cfg.data.window, cfg.data.hop, cfg.data.eval_hop) == (0, 0, 0)
    assert cfg.data.derived() == ("window", "hop", "eval_hop")
    assert (cfg.train.epochs, cfg.train.steps, cfg.train.eval_every) == (0, 250, 50)
    paper = build_config("paper")  # the paper keeps its settings exactly
    assert (paper.data.window, paper.data.hop, paper.data.eval_hop, paper.train.epochs) == (300, 200, 200, 100)
    assert paper.data.derived() == ()


def test_the_schedule_keys_do_not_enter_the_identity_of_a_run_by_passes():
    def h(*sets):
        return build_config(overrides=list(sets)).hash("2")

    passes = ("train.epochs", "30")
    assert h(passes, ("train.steps", "999")) == h(passes) == h(passes, ("train.eval_every", "7"))
    assert h(("train.steps", "999")) != h()  # by steps, the steps are the run
    assert h(passes) != h()
    assert h(passes, ("train.eval_each_pass", "false")) == h(passes)
    assert h(("train.eval_each_pass", "false")) != h()  # a small dataset validates differently


def test_a_record_made_before_eval_each_pass_validated_every_eval_every_steps():
    """Such a record's epochs were eval_every steps whatever a pass was: read back, its
    configuration says so, and it is not the same run (nor row) as today's default."""
    from fusion_bench.config import RunConfig

    now = build_config()
    d = now.to_dict()
    assert d["train"].pop("eval_each_pass") is True
    old = RunConfig.from_dict(d)
    assert old.train.eval_each_pass is False
    assert old.hash("2") != now.hash("2")
    # and it keeps the hash it was stored with (computed before the key existed)
    assert old.hash("2") == RunConfig._digest(d, "2", with_robustness=False)
    assert RunConfig.from_dict(now.to_dict()).hash("2") == now.hash("2")  # today's records: equal


def test_the_window_rule_version_is_part_of_the_identity_when_the_rule_is_used(monkeypatch):
    from fusion_bench.config import schema

    explicit = [("data.window", "64"), ("data.hop", "64"), ("data.eval_hop", "16")]
    same_hop = [("data.window", "64"), ("data.hop", "64"), ("data.eval_hop", "0")]
    before = {k: build_config(overrides=v).hash("2")
              for k, v in (("auto", []), ("explicit", explicit), ("same_hop", same_hop),
                           ("hop_only", [("data.hop", "8")]))}
    monkeypatch.setattr(schema, "WINDOW_RULE_VERSION", 99)
    after = {k: build_config(overrides=v).hash("2")
             for k, v in (("auto", []), ("explicit", explicit), ("same_hop", same_hop),
                          ("hop_only", [("data.hop", "8")]))}
    assert after["auto"] != before["auto"] and after["hop_only"] != before["hop_only"]
    assert after["explicit"] == before["explicit"] and after["same_hop"] == before["same_hop"]


@pytest.mark.parametrize("key,value,match", [
    ("data.window", "-1", "data.window must be ≥ 0"),
    ("data.hop", "-2", "data.hop must be ≥ 0"),
    ("train.steps", "0", "train.steps must be a positive integer"),
    ("train.eval_every", "0", "train.eval_every must be a positive integer"),
    ("train.epochs", "-1", "train.epochs must be ≥ 0"),
])
def test_training_length_and_window_ranges(key, value, match):
    with pytest.raises(ConfigError, match=match):
        build_config(overrides=[(key, value)])
