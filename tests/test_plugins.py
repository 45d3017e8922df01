import csv
import inspect
import io
import textwrap

import numpy as np
import pytest

from fusion_bench import hookspecs
from fusion_bench.errors import PluginError
from fusion_bench.plugins import load_registry

from .conftest import TINY

GATED = '''
import torch
from torch import nn
import fusion_bench

class Gated(nn.Module):
    description = "test-only gated sum"
    def __init__(self, dims, seq_len, width: int = 8):
        super().__init__()
        self.proj = nn.ModuleDict({m: nn.Linear(d, width) for m, d in dims.items()})
        self.out_dim = width
    def forward(self, feats, mask=None):
        return sum(torch.sigmoid(self.proj[m](x)) * x.mean() for m, x in feats.items())

@fusion_bench.hookimpl
def register_fusions(register):
    register("{name}", Gated)
'''


def write_plugin(tmp_path, filename, body):
    p = tmp_path / filename
    p.write_text(textwrap.dedent(body))
    return str(p)


def test_every_hook_is_documented():
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("register_"):
            assert fn.__doc__ and len(fn.__doc__.strip()) > 20, f"hook {name} has no documentation"


def test_builtins_register_through_the_hooks():
    reg = load_registry(entry_points=False)
    assert "concat" in reg.names("fusions")
    assert {"tcn", "lstm"} <= set(reg.names("encoders"))
    assert reg.get("fusions", "concat").plugin == "builtins"
    assert reg.plugins["builtins"].registers["fusions"]


def test_a_lazy_entry_reads_its_source_only_when_described(monkeypatch):
    # a run reads no description: loading the registry must parse no plugin's source
    from fusion_bench import plugins
    from fusion_bench.fusions.rcma import RCMA

    parsed = []
    real = plugins._source_attributes
    monkeypatch.setattr(plugins, "_source_attributes", lambda path: parsed.append(path) or real(path))
    reg = load_registry(entry_points=False)
    assert parsed == []
    e = reg.get("fusions", "rcma")
    assert (e.description, e.reference) == (RCMA.description, RCMA.reference)
    assert e.description == RCMA.description
    assert parsed == ["fusion_bench.fusions.rcma:RCMA"]  # once, for both attributes


def test_plugin_file_adds_a_fusion(tmp_path):
    path = write_plugin(tmp_path, "gated.py", GATED.replace("{name}", "gated"))
    reg = load_registry([path], entry_points=False)
    e = reg.get("fusions", "gated")
    assert e.plugin == "gated" and e.description == "test-only gated sum"


def test_plugin_that_raises_on_import_is_skipped_and_named(tmp_path, monkeypatch):
    bad = write_plugin(tmp_path, "broken_plugin.py", "raise RuntimeError('boom at import')\n")
    good = write_plugin(tmp_path, "gated.py", GATED.replace("{name}", "gated"))
    reg = load_registry([bad, good], entry_points=False)
    assert "gated" in reg.names("fusions")  # the rest keeps working
    (fail,) = reg.failures
    assert fail.plugin == "broken_plugin" and "boom at import" in fail.error
    with pytest.raises(PluginError, match="broken_plugin"):
        load_registry([bad], strict=True, entry_points=False)


def test_plugin_file_without_py_suffix_is_skipped_with_a_message_that_says_why(tmp_path):
    path = write_plugin(tmp_path, "gated", GATED.replace("{name}", "gated"))
    reg = load_registry([path], entry_points=False)
    (fail,) = reg.failures
    assert "not a Python source file; name it gated.py" in fail.error
    assert "NoneType" not in fail.error


def test_plugin_that_raises_in_its_hook_registers_nothing(tmp_path):
    body = GATED.replace("{name}", "half") + textwrap.dedent('''
    @fusion_bench.hookimpl
    def register_encoders(register):
        raise ValueError("bad encoder")
    ''')
    reg = load_registry([write_plugin(tmp_path, "half.py", body)], entry_points=False)
    assert "half" not in reg.names("fusions")
    assert "bad encoder" in reg.failures[0].error


def test_misspelled_hook_is_caught_at_registration(tmp_path):
    body = '''
    import fusion_bench
    @fusion_bench.hookimpl
    def register_fusion(register):  # missing "s"
        pass
    '''
    reg = load_registry([write_plugin(tmp_path, "typo.py", body)], entry_points=False)
    assert reg.failures and "register_fusion" in reg.failures[0].error


def test_duplicate_name_names_both_plugins(tmp_path):
    a = write_plugin(tmp_path, "first.py", GATED.replace("{name}", "concat"))
    with pytest.raises(PluginError, match=r"'builtins' and 'first'"):
        load_registry([a], entry_points=False)


def test_unknown_name_suggests(tmp_path):
    reg = load_registry(entry_points=False)
    with pytest.raises(PluginError, match="did you mean concat"):
        reg.get("fusions", "conact")


def test_allow_and_deny_lists(tmp_path, monkeypatch):
    path = write_plugin(tmp_path, "gated.py", GATED.replace("{name}", "gated"))
    monkeypatch.setenv("FUSION_BENCH_PLUGINS", "something_else")
    reg = load_registry([path], entry_points=False)
    assert "gated" not in reg.names("fusions")
    # an explicit --plugin that a list filters out is said, not silently dropped
    assert [f.plugin for f in reg.failures] == ["gated"]
    assert "FUSION_BENCH_PLUGINS (the allow-list) does not list 'gated'" in reg.failures[0].error
    monkeypatch.setenv("FUSION_BENCH_PLUGINS", "gated")
    reg = load_registry([path], entry_points=False)
    assert "gated" in reg.names("fusions") and not reg.failures
    monkeypatch.delenv("FUSION_BENCH_PLUGINS")
    monkeypatch.setenv("FUSION_BENCH_DISABLE_PLUGINS", "gated")
    reg = load_registry([path], entry_points=False)
    assert "gated" not in reg.names("fusions")
    assert "FUSION_BENCH_DISABLE_PLUGINS lists 'gated'" in reg.failures[0].error


def test_module_name_plugin(tmp_path, monkeypatch):
    write_plugin(tmp_path, "my_fb_plugin.py", GATED.replace("{name}", "modgated"))
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = load_registry(["my_fb_plugin"], entry_points=False)
    assert "modgated" in reg.names("fusions")


def test_the_readme_plugin_passes_the_contract_kit_and_runs(tmp_path, cli_run):
    """The README's one-file plugin, as printed there: the checks it recommends, then a run."""
    import re
    from pathlib import Path

    from fusion_bench.testing import check_fusion

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    (code,) = re.findall(r"```python\n(# my_fusion\.py\n.*?)```", readme, re.S)
    path = write_plugin(tmp_path, "my_fusion.py", code)
    reg = load_registry([path], entry_points=False)
    check_fusion(reg.get("fusions", "gated_sum").obj)
    code, out, err = cli_run("--plugin", path, "run", "--fusion", "gated_sum", "--set",
                             "fusion.width=8", "--out", tmp_path / "res", *TINY)
    assert code == 0 and "test" in out, err


def test_installed_package_entry_point_is_loaded(tmp_path, monkeypatch):
    """The installable-package path of the README: an entry point in the fusion_bench group."""
    import importlib.metadata

    from fusion_bench import plugins

    write_plugin(tmp_path, "my_ep_plugin.py", GATED.replace("{name}", "epgated"))
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint("my_ep_plugin", "my_ep_plugin", plugins.GROUP)
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points",
                        lambda group: [ep] if group == plugins.GROUP else [])
    reg = load_registry()
    assert reg.get("fusions", "epgated").plugin == "my_ep_plugin"
    assert reg.plugins["my_ep_plugin"].source.startswith("entry point")
    monkeypatch.setenv("FUSION_BENCH_DISABLE_PLUGINS", "my_ep_plugin")
    assert "epgated" not in load_registry().names("fusions")


FRAMES_METRIC = '''
import fusion_bench

def frames(pred, target):
    """A test-only metric that is easy to check by hand: the number of frames it is given."""
    return float(len(pred))

frames.higher_is_better = False
frames.description = "test-only: frames scored"

@fusion_bench.hookimpl
def register_metrics(register):
    register("frames", frames)
'''


def test_a_plugin_metric_is_recorded_and_ranks_a_leaderboard(tmp_path, cli_run):
    """A metric from a plugin file lands in the record's `scores` (all splits, over the valid
    frames only) and `leaderboard --metric` shows it, named in the caption with its direction."""
    from fusion_bench.config import build_config
    from fusion_bench.results import ResultsStore
    from fusion_bench.runs import load_dataset

    from .conftest import tiny_overrides

    path = write_plugin(tmp_path, "frames_metric.py", FRAMES_METRIC)
    res = tmp_path / "res"
    code, _, err = cli_run("--plugin", path, "run", "--fusion", "concat", "--out", res, *TINY)
    assert code == 0, err
    (rec,) = ResultsStore(res).records()
    _, splits = load_dataset(load_registry(entry_points=False),
                             build_config("quick", None, tiny_overrides()))
    for s in ("val", "test"):
        n_valid = float(sum(v.valid.sum() for v in splits[s]))
        assert n_valid < sum(v.n_frames for v in splits[s])  # the synthetic data has -5 runs
        assert rec["scores"]["frames"][s] == {"valence": n_valid, "arousal": n_valid, "mean": n_valid}
    assert set(rec["scores"]) == {"ccc", "rmse", "pearson", "frames"}
    assert rec["scores"]["ccc"] == rec["metrics"]  # the old key keeps CCC, unchanged

    code, out, err = cli_run("--plugin", path, "leaderboard", "--out", res, "--metric", "frames",
                             "--format", "csv")
    assert code == 0, err
    rows = {r["model"]: r for r in csv.DictReader(io.StringIO(out))}  # stdout: the csv alone
    assert set(rows) == {"concat", "ridge (linear)"}  # the run and its ridge baseline
    for row in rows.values():  # both scored by the plugin's metric, on the same valid frames
        assert float(row["test_mean"]) == sum(v.valid.sum() for v in splits["test"])
        assert float(row["val_mean"]) == sum(v.valid.sum() for v in splits["val"])
    code, out, err = cli_run("--plugin", path, "leaderboard", "--out", res, "--metric", "frames")
    assert code == 0 and "Metric frames (lower is better) as mean" in out, err
    # the records say the metric's direction (metric_info): the table needs no plugin loaded
    assert rec["metric_info"]["frames"] == {"higher_is_better": False,
                                            "description": rec["metric_info"]["frames"]["description"]}
    code, out, err = cli_run("leaderboard", "--out", res, "--metric", "frames")  # no plugin
    assert code == 0 and "Metric frames (lower is better) as mean" in out, err
    code, _, err = cli_run("leaderboard", "--out", res, "--metric", "frame")
    assert code == 2 and "did you mean frames" in err and "ccc, frames, pearson, rmse" in err


def test_the_readme_metric_plugin_registers_its_metric(tmp_path):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    (code,) = re.findall(r"```python\n(# medae_metric\.py\n.*?)```", readme, re.S)
    builtin = set(load_registry(entry_points=False).names("metrics"))
    reg = load_registry([write_plugin(tmp_path, "medae_metric.py", code)], entry_points=False)
    e = reg.get("metrics", "medae")
    assert e.plugin == "medae_metric" and e.description == "median absolute error"
    assert e.obj.higher_is_better is False
    # |errors| 0.5, 0, 2: median 0.5 (their mean would be 2.5 / 3)
    assert e.obj(np.array([0.0, 1.0, -1.0]), np.array([0.5, 1.0, 1.0])) == pytest.approx(0.5)
    assert set(reg.names("metrics")) == builtin | {"medae"}
