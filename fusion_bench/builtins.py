"""The built-in components, registered through the same hooks as third-party plugins.

Each is registered as a ``"module:Class"`` string: the registry imports it when it is first
used, so listing components (``fusion-bench list``) imports no torch. Adding a built-in is one
line in one of these tables; the contract tests pick it up from the registry.
"""

from __future__ import annotations

from . import hookimpl

# name -> "module:Class" of each built-in component, by kind
FUSIONS = {
    "concat": "fusion_bench.fusions.concat:Concat",
    "rcma": "fusion_bench.fusions.rcma:RCMA",
    "lstm": "fusion_bench.fusions.lstm:LSTMFusion",
    "cross_attention": "fusion_bench.fusions.cross_attention:CrossAttention",
}
ENCODERS = {
    "tcn": "fusion_bench.encoders.tcn:TCN",
    "lstm": "fusion_bench.encoders.lstm:LSTMEncoder",
    "identity": "fusion_bench.encoders.identity:Identity",
}
DATASETS = {
    "synthetic": "fusion_bench.data.synthetic:SyntheticDataset",
    "features": "fusion_bench.data.features:FeaturesDataset",
    "affwild2": "fusion_bench.data.affwild2:AffWild2Dataset",
    "mmsa": "fusion_bench.data.mmsa:MMSADataset",
    "csd": "fusion_bench.data.csd:CSDDataset",
}
# backbones: their heavy libraries (timm, torchvggish, sentence_transformers, opensmile) are
# imported only when one is built, so listing them stays cheap.
BACKBONES = {
    "timm": "fusion_bench.backbones.visual_timm:TimmVisual",
    "vggish": "fusion_bench.backbones.audio_vggish:VGGishAudio",
    "egemaps": "fusion_bench.backbones.audio_egemaps:EGeMAPSAudio",
    "sbert": "fusion_bench.backbones.text_sbert:SBertText",
}
# metrics: functions (pred (n,), target (n,)) -> float with higher_is_better and description
METRICS = {
    "ccc": "fusion_bench.metrics:ccc",
    "rmse": "fusion_bench.metrics:rmse",
    "pearson": "fusion_bench.metrics:pearson",
    # MMSA's utterance-level set (sequence-level datasets only; 5/7-class on [-3, 3] only)
    "mae": "fusion_bench.mmsa_metrics:mae",
    "has0_acc_2": "fusion_bench.mmsa_metrics:has0_acc_2",
    "has0_f1": "fusion_bench.mmsa_metrics:has0_f1",
    "non0_acc_2": "fusion_bench.mmsa_metrics:non0_acc_2",
    "non0_f1": "fusion_bench.mmsa_metrics:non0_f1",
    "mult_acc_5": "fusion_bench.mmsa_metrics:mult_acc_5",
    "mult_acc_7": "fusion_bench.mmsa_metrics:mult_acc_7",
}


@hookimpl
def register_fusions(register):
    for name, path in FUSIONS.items():
        register(name, path)


@hookimpl
def register_encoders(register):
    for name, path in ENCODERS.items():
        register(name, path)


@hookimpl
def register_datasets(register):
    for name, path in DATASETS.items():
        register(name, path)


@hookimpl
def register_backbones(register):
    for name, path in BACKBONES.items():
        register(name, path)


@hookimpl
def register_metrics(register):
    for name, path in METRICS.items():
        register(name, path)
