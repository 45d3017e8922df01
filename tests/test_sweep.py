import csv
import io
import os
import re
import sqlite3
import sys

import pytest

from fusion_bench import ray_executor
from fusion_bench import runs as runs_mod
from fusion_bench import sweep as sweep_mod
from fusion_bench.data.synthetic import VERSION
from fusion_bench.plugins import load_registry
from fusion_bench.report.leaderboard import build_rows, table
from fusion_bench.report.render import render
from fusion_bench.results import ResultsStore

from .conftest import TINY, tiny_overrides


def configs(fusions=("concat", "lstm"), seeds=(0, 1)):
    return sweep_mod.grid(list(fusions), list(seeds), tiny_overrides(), "quick", None)


def test_interrupted_sweep_resumes_with_only_the_missing_runs(tmp_path, monkeypatch):
    store, reg = ResultsStore(tmp_path), load_registry(entry_points=False)
    cfgs = configs()
    real = runs_mod.run_record  # what the sweep calls for each run
    calls = []

    def dies_on_third(cfg, reg, *args):
        calls.append(cfg.hash(VERSION))
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C / kill in the middle of run 3
        return real(cfg, reg, *args)

    monkeypatch.setattr(runs_mod, "run_record", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        sweep_mod.sweep(cfgs, reg, store, echo=lambda *_: None)
    assert len(store.records()) == 2  # the interrupted run left nothing
    monkeypatch.setattr(runs_mod, "run_record", real)
    res = sweep_mod.sweep(cfgs, reg, store, echo=lambda *_: None)
    assert (res.done, res.skipped, res.failed) == (2, 2, 0)
    assert sorted(r["config_hash"] for r in store.records()) == sorted(c.hash(VERSION) for c in cfgs)


def test_failed_run_is_recorded_and_sweep_continues(tmp_path, monkeypatch):
    store, reg = ResultsStore(tmp_path), load_registry(entry_points=False)
    cfgs = configs(fusions=("lstm",), seeds=(0, 1))
    cfgs[0].fusion["lstm"] = {"layers": 0}  # passes the preflight; fails when the model is built
    res = sweep_mod.sweep(cfgs, reg, store, echo=lambda *_: None)
    assert (res.done, res.failed) == (1, 1)
    statuses = sorted(r["status"] for r in store.records())
    assert statuses == ["failed", "ok"]
    failed = next(r for r in store.records() if r["status"] == "failed")
    assert "layers must be a positive int" in failed["error"]
    assert not store.has(cfgs[0].hash(VERSION))  # a failed run is retried by the next sweep


TINY_SETS = [a for a in TINY if a != "--quiet"]  # sweep has no --quiet (its runs are quiet)
NO_ENTRY_POINTS = sweep_mod.RegistrySpec(entry_points=False)  # as load_registry(entry_points=False)


def _count_writes(monkeypatch) -> list[str]:
    """Hashes written by ResultsStore.write in this (the driver's) process; a worker process
    writing the store would not show up here."""
    written, real = [], ResultsStore.write

    def write(self, record):
        written.append(record["config_hash"])
        return real(self, record)

    monkeypatch.setattr(ResultsStore, "write", write)
    return written


def _test_ccc(store) -> dict[str, tuple[float, float, float]]:
    return {r["config_hash"]: tuple(r["metrics"]["test"][k] for k in ("valence", "arousal", "mean"))
            for r in store.records()}


def test_cli_sweep_with_two_jobs_matches_a_sequential_sweep(tmp_path, cli_run, monkeypatch):
    seq, par = ResultsStore(tmp_path / "seq"), ResultsStore(tmp_path / "par")
    res = sweep_mod.sweep(configs(seeds=(0,)), load_registry(entry_points=False), seq,
                          echo=lambda *_: None)
    assert (res.done, res.failed) == (2, 0)
    written = _count_writes(monkeypatch)
    code, out, err = cli_run("sweep", "--fusion", "concat,lstm", "--seeds", "1", "--jobs", "2",
                             "--out", par.root, *TINY_SETS)
    assert code == 0, err
    assert len(re.findall(r"^\[[12]/2\] (concat|lstm) seed 0: test mean CCC", out, re.M)) == 2
    assert "2 run, 0 already stored, 0 failed" in out
    got, want = _test_ccc(par), _test_ccc(seq)
    assert got.keys() == want.keys() and sorted(written) == sorted(want)
    for h in want:  # deterministic per seed, whichever process trained it
        assert got[h] == pytest.approx(want[h], abs=1e-6)
    code, out, _ = cli_run("sweep", "--fusion", "concat,lstm", "--seeds", "1", "--jobs", "2",
                           "--out", par.root, *TINY_SETS)
    assert code == 0 and "0 run, 2 already stored, 0 failed" in out


def test_failed_run_in_a_process_sweep_is_recorded_and_the_others_succeed(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    cfgs = configs(fusions=("lstm",), seeds=(0, 1))
    cfgs[0].fusion["lstm"] = {"layers": 0}  # passes the preflight; fails when the model is built
    written = _count_writes(monkeypatch)
    res = sweep_mod.sweep(cfgs, load_registry(entry_points=False), store, echo=lambda *_: None,
                          jobs=2, spec=NO_ENTRY_POINTS)
    assert (res.done, res.failed) == (1, 1)
    by_hash = {r["config_hash"]: r for r in store.records()}
    assert sorted(written) == sorted(by_hash) == sorted(c.hash(VERSION) for c in cfgs)
    failed, ok = by_hash[cfgs[0].hash(VERSION)], by_hash[cfgs[1].hash(VERSION)]
    assert failed["status"] == "failed" and "layers must be a positive int" in failed["error"]
    assert "Traceback" in failed["traceback"]
    assert ok["status"] == "ok" and store.has(cfgs[1].hash(VERSION)) and not store.has(cfgs[0].hash(VERSION))


def test_ray_executor_stores_every_run_from_the_driver(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="the Ray executor needs pip install 'fusion-bench-affect[ray]'")
    store = ResultsStore(tmp_path)
    cfgs = configs(seeds=(0,))
    written = _count_writes(monkeypatch)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        res = sweep_mod.sweep(cfgs, load_registry(entry_points=False), store, echo=lambda *_: None,
                              executor="ray", spec=NO_ENTRY_POINTS, log=("tensorboard",))
        assert ray.is_initialized()  # the sweep leaves a Ray it did not start running
    finally:
        ray.shutdown()
    assert (res.done, res.failed) == (2, 0)
    con = sqlite3.connect(store.db_path)
    try:
        indexed = sorted(h for (h,) in con.execute("SELECT config_hash FROM runs WHERE status='ok'"))
    finally:
        con.close()
    assert indexed == sorted(written) == sorted(c.hash(VERSION) for c in cfgs)
    assert all(r["status"] == "ok" and r["environment"]["cpu_threads"] == 1 for r in store.records())
    # each task logged its run to the trackers asked for, under the store
    assert sorted(p.name for p in (tmp_path / "tensorboard").iterdir()) == sorted(
        f"{r['config']['model']['fusion']}-s{r['config']['seed']}-{r['config_hash'][:8]}"
        for r in store.records())


def test_ray_executor_without_ray_says_how_to_install_it(tmp_path, cli_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    code, _, err = cli_run("sweep", "--fusion", "concat", "--seeds", "1", "--executor", "ray",
                           "--out", tmp_path, *TINY_SETS)
    assert code == 2 and 'pip install "fusion-bench-affect[ray]"' in err
    assert not ResultsStore(tmp_path).records()


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory):
    store = ResultsStore(tmp_path_factory.mktemp("store"))
    over = tiny_overrides() + [("robustness.enabled", "true")]
    cfgs = sweep_mod.grid(["concat", "rcma", "only:audio"], [0, 1, 2], over, "quick", None)
    sweep_mod.sweep(cfgs, load_registry(entry_points=False), store, echo=lambda *_: None)
    return store


def _stored_means(store):
    out = {}
    for r in store.records():
        mods = r["config"]["data"]["modalities"]
        label = f"{mods[0]} only" if len(mods) == 1 else r["config"]["model"]["fusion"]
        out.setdefault(label, []).append(r["metrics"]["test"]["mean"])
        # its ridge baseline: one fit per set of modalities (the same in each of its records)
        ridge = "ridge (linear)" if len(mods) > 1 else f"ridge (linear, {mods[0]} only)"
        out.setdefault(ridge, []).append(r["baseline"]["metrics"]["test"]["mean"])
    return {k: sum(v) / len(v) for k, v in out.items()}


def test_tables_parse_back_to_the_stored_numbers(filled_store):
    rows = build_rows(filled_store.records())["synthetic"]
    headers, body, caption = table(rows)
    expected = _stored_means(filled_store)
    assert "sample standard deviation" in caption and "n model seeds" in caption
    col = headers.index("test mean")
    # CSV
    parsed = list(csv.reader(io.StringIO(render(headers, body, caption, "csv"))))
    assert parsed[0] == headers
    got = {r[0]: float(r[col].split("±")[0]) for r in parsed[1:]}
    assert got.keys() == expected.keys()
    for k in got:
        assert got[k] == pytest.approx(expected[k], abs=5e-4)
        assert [r for r in parsed[1:] if r[0] == k][0][1] == ("1" if k.startswith("ridge") else "3")
    # cost, speed and robustness columns, from the same records ("–" where not measured)
    import numpy as np

    from fusion_bench.report.render import MISSING, human

    by_label = {r.label: r for r in rows}
    for line in parsed[1:]:
        if line[0].startswith("ridge"):  # a reference row: no model, no costs
            assert line[headers.index("FLOPs/window"):] == [MISSING] * (len(headers) - headers.index("FLOPs/window"))
            continue
        cells, recs = dict(zip(headers, line, strict=True)), by_label[line[0]].records
        flops = [x["flops_per_window"]["inference"] for x in recs]
        assert cells["FLOPs/window"] == human(float(np.median(flops)))
        fps = np.median([x["throughput"]["eval_frames_per_s"] for x in recs])
        assert cells["infer frames/s"] == f"{fps:,.0f} (cpu)"
        def pm(xs):
            return f"{np.mean(xs):.3f} ± {np.std(xs, ddof=1):.3f}"

        assert cells["noise area"] == pm([x["robustness"]["area"]["all"] for x in recs])
        for m in ("visual", "audio", "text"):
            drops = [x["robustness"]["drop"][m]["mean"] for x in recs if m in x["robustness"]["drop"]]
            assert cells[f"drop {m}"] == (pm(drops) if drops else MISSING)
        assert (cells["drop audio"] == MISSING) == (line[0] == "audio only")
    # Markdown
    md = render(headers, body, caption, "md")
    md_rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()[2:] if line.startswith("|")]
    assert {r[0]: float(r[col].split("±")[0]) for r in md_rows} == got
    # LaTeX
    tex = render(headers, body, caption, "latex")
    tex_rows = [line.rstrip("\\ ").split("&") for line in tex.splitlines() if line.count("&") == len(headers) - 1]
    tex_vals = {r[0].strip(): float(re.split(r"\$\\pm\$", r[col])[0]) for r in tex_rows[1:]}
    assert tex_vals == got


def test_leaderboard_regenerates_byte_for_byte(filled_store, tmp_path, cli_run):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        code, _, err = cli_run("leaderboard", "--out", filled_store.root, "--tables", out)
        assert code == 0, err
    assert (a / "leaderboard_synthetic.md").read_bytes() == (b / "leaderboard_synthetic.md").read_bytes()


def test_leaderboard_on_empty_store_is_a_clear_error(tmp_path, cli_run):
    code, _, err = cli_run("leaderboard", "--out", tmp_path)
    assert code == 2 and "no successful runs" in err


def test_robustness_runs_stand_for_plain_runs_but_not_the_reverse(tmp_path):
    store, reg = ResultsStore(tmp_path), load_registry(entry_points=False)
    plain = sweep_mod.grid(["concat"], [0], tiny_overrides(), "quick", None)
    robust = sweep_mod.grid(["concat"], [0], tiny_overrides() + [("robustness.enabled", "true")],
                            "quick", None)
    quiet = {"echo": lambda *_: None}
    assert sweep_mod.sweep(plain, reg, store, **quiet).done == 1
    assert sweep_mod.sweep(robust, reg, store, **quiet).done == 1  # plain run lacks robustness
    assert sweep_mod.sweep(plain, reg, store, **quiet).skipped == 1
    other = ResultsStore(tmp_path / "other")
    sweep_mod.sweep(robust, reg, other, **quiet)
    assert sweep_mod.sweep(plain, reg, other, **quiet).skipped == 1  # robust run stands for it
    (rows,) = build_rows(store.records()).values()
    assert len(rows) == 1 and "robustness" in rows[0].records[0]  # one row, robust record kept


def test_a_dead_worker_stops_the_sweep_without_storing_false_failures(tmp_path):
    from fusion_bench.errors import FusionBenchError

    plugin = tmp_path / "crashing.py"
    plugin.write_text(
        "import os\nimport fusion_bench\n\n"
        "class Crash:\n    description = 'test-only: the process dies when it is built'\n"
        "    def __init__(self, dims, seq_len):\n        os._exit(3)\n\n"
        "@fusion_bench.hookimpl\ndef register_fusions(register):\n    register('crash', Crash)\n")
    spec = sweep_mod.RegistrySpec.of([str(plugin)], entry_points=False)
    reg = load_registry([str(plugin)], entry_points=False)
    store = ResultsStore(tmp_path / "store")
    cfgs = configs(fusions=("crash",), seeds=(0, 1))
    with pytest.raises(FusionBenchError, match="worker process died"):
        sweep_mod.sweep(cfgs, reg, store, echo=lambda *_: None, jobs=2, spec=spec)
    assert [r for r in store.records() if r["status"] == "failed"] == []


@pytest.mark.parametrize("cpus, node, jobs, threads, capped", [
    (8, 8, None, 1, False),  # default: one run per cluster CPU
    (8, 8, 2, 4, False),     # 2 at once share the 8 CPUs
    (16, 4, 2, 4, False),    # but a task never asks more than one node has
    (4, 4, 8, 1, True),      # more jobs than CPUs: said, not silently capped
])
def test_ray_threads_per_task_and_the_cap_is_said(cpus, node, jobs, threads, capped):
    got, note = ray_executor.ray_threads(cpus, node, jobs)
    assert got == threads and (note is not None) == capped
    if capped:
        assert f"--jobs {jobs}" in note and f"at most {cpus} runs at once" in note


@pytest.mark.parametrize("args, message", [
    (["--fusion", "concat", "--dataset", "nope"], "nope"),
    (["--fusion", "concat,only:foo"], "'foo' in data.modalities"),
    (["--fusion", "rcmaa"], "rcmaa"),
    (["--fusion", "concat", "--set", "model.encoder=tcnn"], "tcnn"),
])
def test_a_wrong_name_stops_the_sweep_before_any_run(tmp_path, cli_run, args, message):
    code, out, err = cli_run("sweep", *args, "--seeds", "2", "--out", tmp_path, *TINY[:-1])
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()  # no failed records written


def test_a_finished_sweep_reruns_nothing_and_opens_no_dataset(tmp_path, cli_run, monkeypatch):
    args = ("sweep", "--fusion", "concat", "--seeds", "1", "--out", tmp_path, *TINY[:-1])
    code, out, err = cli_run(*args)
    assert code == 0, err

    def unreachable(reg, cfg):
        raise AssertionError("a stored configuration's dataset was opened")

    monkeypatch.setattr("fusion_bench.preflight.open_dataset", unreachable)  # the checks'
    monkeypatch.setattr("fusion_bench.runs.open_dataset", unreachable)  # the run's
    code, out, err = cli_run(*args)  # e.g. on a machine without the feature cache
    assert code == 0 and "0 run, 1 already stored" in out, err


WARNER = (  # a fusion plugin whose every build warns, in whichever process builds it
    "import warnings\nimport fusion_bench\nfrom fusion_bench.fusions.concat import Concat\n\n"
    "class Warner(Concat):\n    description = 'test-only: concat that warns when built'\n"
    "    def __init__(self, dims, seq_len):\n"
    "        warnings.warn('warner: built once per run', UserWarning)\n"
    "        super().__init__(dims, seq_len)\n\n"
    "@fusion_bench.hookimpl\ndef register_fusions(register):\n    register('warner', Warner)\n")


@pytest.mark.parametrize("debug", [False, True])
def test_a_warning_in_a_sweep_worker_is_one_line_as_in_the_cli(tmp_path, debug):
    """Spawned workers start with Python's warning format (file, line number, source line); they
    take the CLI's one-line form unless --debug, which keeps Python's form in both."""
    import subprocess

    plugin = tmp_path / "warner.py"
    plugin.write_text(WARNER)
    cmd = [sys.executable, "-m", "fusion_bench.cli", *(["--debug"] if debug else []),
           "--plugin", str(plugin), "sweep", "--fusion", "warner", "--seeds", "2", "--jobs", "2",
           "--out", str(tmp_path / "store"), *TINY_SETS]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr
    said = [line for line in p.stderr.splitlines() if "built once per run" in line]
    if debug:  # Python's form: the file and line, then the source line
        assert len([s for s in said if "warner.py:8: UserWarning: warner:" in s]) == 2, p.stderr
        assert "  warnings.warn('warner: built once per run'" in p.stderr
    else:  # one line per run, each run trained in a worker process
        assert said == ["warning: warner: built once per run"] * 2, p.stderr
        assert "warnings.warn(" not in p.stderr and "warner.py" not in p.stderr, p.stderr
