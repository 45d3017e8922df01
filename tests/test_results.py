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
