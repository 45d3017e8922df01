"""Throughput tables (fusion_bench.report.bench_table, `fusion-bench leaderboard --bench`) from real
bench records made at tiny shapes."""

from __future__ import annotations

import copy
import json

import pytest

from fusion_bench.bench.record import make_bench_record
from fusion_bench.bench.runner import run_bench
from fusion_bench.plugins import load_registry
from fusion_bench.report import bench_table
from fusion_bench.report.render import MISSING
from fusion_bench.results import ResultsStore

from .test_throughput import tiny_config, tiny_settings


@pytest.fixture(scope="module")
def records():
    reg = load_registry()
    out = {}
    for fusion in ("concat", "rcma"):
        settings = tiny_settings()
        res = run_bench(tiny_config(fusion), reg, settings)
        out[fusion] = make_bench_record(tiny_config(fusion), settings, res, {})
    return out


def variant(rec, created, **flags):
    """A copy of ``rec`` as if measured later with other flags."""
    rec = copy.deepcopy(rec)
    rec["created"] = created
    rec["run_id"] = f"{created}-{rec['bench']['fusion']}"
    rec["bench"]["flags"].update(flags)
    return rec


def test_mode_names():
    def mode(**flags):
        return bench_table.mode({"bench": {"flags": flags}})

    assert mode(amp=None, compile=False) == "fp32"
    assert mode(amp=None, compile=False, tf32_matmul=True) == "tf32"
    assert mode(amp="bf16", compile=True) == "bf16 + compile"
    assert mode(amp="bf16", compile=True, compile_mode="default") == "bf16 + compile"
    assert (mode(amp="bf16", compile=True, compile_mode="reduce-overhead")
            == "bf16 + compile (reduce-overhead)")


def test_newest_record_per_fusion_and_mode_in_mode_order(records):
    concat, rcma = records["concat"], records["rcma"]
    later = variant(rcma, "2099-01-01T00:00:00Z")
    later["bench"]["phases"]["train"]["median_s"] *= 2
    bf16 = variant(concat, "2099-01-02T00:00:00Z", amp="bf16")
    failed = variant(rcma, "2099-01-03T00:00:00Z")
    failed["status"] = "failed"
    run = {**copy.deepcopy(concat), "kind": "run"}
    (rows,) = bench_table.build_tables([bf16, later, rcma, concat, failed, run]).values()
    assert [(r["bench"]["fusion"], bench_table.mode(r)) for r in rows] == [
        ("concat", "fp32"), ("rcma", "fp32"), ("concat", "bf16")]
    assert rows[1] is later  # the newer of rcma's two fp32 records; the failed one is skipped


def test_cells_ratio_and_oom(records):
    concat, rcma = records["concat"], records["rcma"]
    headers, body, caption = bench_table.table([concat, rcma])
    col = {h: i for i, h in enumerate(headers)}
    ratio = rcma["bench"]["phases"]["train"]["median_s"] / concat["bench"]["phases"]["train"]["median_s"]
    assert body[0][col["× concat"]] == "1.00"
    assert body[1][col["× concat"]] == f"{ratio:.2f}"
    t = rcma["bench"]["phases"]["train"]
    assert body[1][col["train ms/step"]] == f"{t['median_s'] * 1e3:,.1f} ± {t['iqr_s'] * 1e3:,.1f}"
    assert body[1][col["compile s"]] == MISSING  # not compiled
    assert "batch B = 3" in caption and "windows of 16 frames" in caption

    oom = copy.deepcopy(rcma)
    oom["status"] = "oom"
    oom["bench"]["phases"]["train"] = {"status": "oom", "error": "CUDA out of memory"}
    _, body, _ = bench_table.table([concat, oom])
    assert body[1][col["train ms/step"]] == "OOM" and body[1][col["× concat"]] == MISSING
    _, body, _ = bench_table.table([rcma])  # no concat to compare with
    assert body[0][col["× concat"]] == MISSING


def test_one_table_per_device_and_workload(records):
    rcma = records["rcma"]
    other = copy.deepcopy(rcma)
    other["environment"]["gpu"] = "NVIDIA H100 80GB HBM3"
    longer = copy.deepcopy(rcma)
    longer["bench"]["seq_len"] = 300
    names = list(bench_table.build_tables([rcma, other, longer]))
    assert "nvidia-h100-80gb-hbm3" in names
    cpu = [n for n in names if n != "nvidia-h100-80gb-hbm3"]
    assert len(cpu) == 2 and all(n.endswith(("-model-b3-l16", "-model-b3-l300")) for n in cpu)


def test_leaderboard_bench_writes_tables(cli_run, tmp_path, records):
    store = tmp_path / "res"
    for rec in records.values():
        ResultsStore(store).write(copy.deepcopy(rec))
    out = tmp_path / "tables"
    for fmt, ext in (("md", "md"), ("csv", "csv"), ("latex", "tex")):
        code, stdout, err = cli_run("leaderboard", "--bench", "--out", store, "--format", fmt,
                                    "--tables", out)
        assert code == 0, err
        (path,) = out.glob(f"throughput_*.{ext}")
        (rows,) = bench_table.build_tables(ResultsStore(store).records()).values()
        assert path.read_text() == bench_table.render_table(rows, fmt)
    lines = (out / path.name.replace(".tex", ".csv")).read_text().splitlines()
    assert lines[0].split(",")[:3] == ["fusion", "mode", "train ms/step"]
    assert [line.split(",")[0] for line in lines[1:]] == ["concat", "rcma"]


def test_leaderboard_bench_without_records_is_an_error(cli_run, tmp_path):
    code, _, err = cli_run("leaderboard", "--bench", "--out", tmp_path / "empty")
    assert code != 0 and "no benchmark records" in err
    code, _, err = cli_run("leaderboard", "--bench", "--out", tmp_path, "--sort", "params")
    assert code == 2 and "--bench takes none of" in err


def test_records_round_trip_as_json(records):
    # what the table reads survives the store's JSON (no tuples or tensors left behind)
    rec = json.loads(json.dumps(records["rcma"], default=str))
    assert bench_table.table([rec])[1] == bench_table.table([records["rcma"]])[1]


@pytest.mark.parametrize("name, want", [
    ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3"),
    ("Intel(R) Xeon(R) Processor", "intel-xeon-processor"),
    ("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz", "intel-core-i7-8650u-cpu-1-90ghz"),
    ("AMD EPYC", "amd-epyc"),
    ("Ryzen™ 9 7950X", "ryzen-9-7950x"),
    ("(R)", "device"),  # nothing left: still a file name
])
def test_a_device_name_becomes_a_file_name_without_trademark_signs(name, want):
    assert bench_table.slug(name) == want
