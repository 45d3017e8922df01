"""Contract tests of every registered component, parametrised over the registry (timm's way).

The names come from :func:`fusion_bench.plugins.load_registry` at collection time: a new built-in
(or an installed plugin) is tested here without anyone adding it to a list, and
:func:`test_every_registered_component_has_contract_tests` fails when a kind or a built-in has
none. Tests of one component's own maths stay in ``tests/fusions``, ``tests/encoders``, ...
What each kind must do is written down in :mod:`fusion_bench.protocols`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from fusion_bench import builtins, protocols
from fusion_bench.backbones import Media, WeightsError
from fusion_bench.config import RunConfig
from fusion_bench.data import Video, dataset_label_level, dataset_label_range, dataset_targets
from fusion_bench.data.affwild2 import CACHE
from fusion_bench.errors import ConfigError
from fusion_bench.plugins import KINDS, load_registry
from fusion_bench.testing import check_fusion

from .data.test_features import make_folder

REGISTRY = load_registry()
NAMES = {kind: REGISTRY.names(kind) for kind in KINDS}


def _entry(kind, name):
    return REGISTRY.get(kind, name)


# --------------------------------------------------------------------------------- fusions
#: small widths, distinct so that mixing up modalities shows; two and three modalities
FUSION_DIMS = ({"visual": 6, "audio": 4}, {"visual": 6, "audio": 4, "text": 5})


@pytest.mark.parametrize("name", NAMES["fusions"])
def test_fusion_contract(name):
    cls = _entry("fusions", name).obj
    fusion = cls(dict(FUSION_DIMS[0]), 8)
    assert isinstance(fusion, nn.Module), f"fusion {name!r} must be a torch.nn.Module"
    assert isinstance(fusion, protocols.Fusion)
    check_fusion(cls, dims=FUSION_DIMS, seq_len=8)


# -------------------------------------------------------------------------------- encoders
IN_DIM, B, L = 7, 3, 20


def _build_encoder(cls, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(IN_DIM)


def _x(seed=0):
    return torch.randn(B, L, IN_DIM, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", NAMES["encoders"])
def test_encoder_output_shape(name):
    enc = _build_encoder(_entry("encoders", name).obj).eval()
    assert isinstance(enc, nn.Module), f"encoder {name!r} must be a torch.nn.Module"
    assert isinstance(enc, protocols.Encoder)
    assert isinstance(enc.out_dim, int) and not isinstance(enc.out_dim, bool) and enc.out_dim > 0
    with torch.no_grad():
        out = enc(_x())
    assert tuple(out.shape) == (B, L, enc.out_dim)
    assert out.is_floating_point() and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES["encoders"])
def test_encoder_gradients_flow(name):
    enc = _build_encoder(_entry("encoders", name).obj).train()
    x = _x().requires_grad_()
    out = enc(x)
    # random weights, not a plain sum: a sum over a normalised output can have zero gradient
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0, "no gradient reaches the input"
    for pname, p in enc.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{pname}: no gradient (unused?)"
            assert torch.isfinite(p.grad).all(), f"{pname}: non-finite gradient"
            assert p.grad.any(), f"{pname}: gradient all zero"


@pytest.mark.parametrize("name", NAMES["encoders"])
def test_encoder_is_deterministic_under_a_seed(name):
    cls = _entry("encoders", name).obj
    a, b = _build_encoder(cls), _build_encoder(cls)
    for (key, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), f"{key}: the initialisation does not follow torch's seed"
    with torch.no_grad():
        a.eval(), b.eval()
        assert torch.equal(a(_x()), b(_x())), "eval-mode output differs between two builds"
        a.train()
        outs = []
        for _ in range(2):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(3)
                outs.append(a(_x()))
        assert torch.equal(*outs), "train-mode output (dropout) does not follow torch's seed"


@pytest.mark.parametrize("name", NAMES["encoders"])
def test_encoder_keeps_samples_apart(name):
    enc = _build_encoder(_entry("encoders", name).obj).eval()
    x = _x()
    with torch.no_grad():
        together = enc(x)
        for i in range(B):
            torch.testing.assert_close(enc(x[i : i + 1])[0], together[i], atol=1e-5, rtol=1e-5)


# -------------------------------------------------------------------------------- datasets
def _features_root(tmp_path):
    root = tmp_path / "features"
    make_folder(root)  # tests/data/test_features.py: tiny synthetic videos as a features folder
    return root


def _affwild2_root(tmp_path):
    """An Aff-Wild2 folder holding only what training reads: the feature cache that
    ``fusion-bench extract`` writes (the features format plus a manifest). Making the raw media
    needs av, soundfile and three backbones (tests/data/test_affwild2.py does that end to end)."""
    root = tmp_path / "affwild2"
    make_folder(root / CACHE)
    (root / CACHE / "manifest.json").write_text(json.dumps(
        {"format": 1, "dataset": "affwild2", "modalities": {}, "videos": {}}))
    return root


def _mmsa_root(tmp_path):
    """An unaligned MMSA pickle (tests/data/test_readers_cli.py writes it to the format)."""
    from .data.test_readers_cli import _mmsa_file

    return _mmsa_file(tmp_path)


def _csd_root(tmp_path):
    """A folder of CMU-SDK computational sequences (needs h5py; skipped without it)."""
    from .data.test_csd import _folder

    (tmp_path / "csd").mkdir()
    return _folder(tmp_path / "csd", videos=("a", "b", "c", "d"))


#: datasets that read a folder: how to make a tiny one (others must build from the defaults)
ROOTS = {"features": _features_root, "affwild2": _affwild2_root, "mmsa": _mmsa_root,
         "csd": _csd_root}


def _dataset_config(name, root=""):
    cfg = RunConfig()
    cfg.data.name = name
    cfg.data.root = str(root)
    if name == "synthetic":  # the defaults generate 256 videos; a few short ones will do
        cfg.dataset["synthetic"] = {"n_train": 3, "n_val": 2, "n_test": 2, "min_frames": 60,
                                    "max_frames": 90}
    return cfg


@pytest.mark.parametrize("name", NAMES["datasets"])
def test_dataset_without_a_root_builds_or_asks_for_one(name, tmp_path, monkeypatch):
    """From the default configuration (no --root) a dataset builds, or raises a ConfigError
    that asks for --root; never an error about the current folder."""
    monkeypatch.chdir(tmp_path)
    cls = _entry("datasets", name).obj
    try:
        ds = cls.from_config(RunConfig())
    except ConfigError as e:
        assert "--root" in str(e), f"dataset {name!r}: unclear error without a root: {e}"
        return
    assert name not in ROOTS, f"dataset {name!r} reads a folder, yet built without --root"
    assert isinstance(ds, protocols.Dataset)


@pytest.mark.parametrize("name", NAMES["datasets"])
def test_dataset_contract(name, tmp_path):
    cls = _entry("datasets", name).obj
    if name in ROOTS:
        cfg = _dataset_config(name, ROOTS[name](tmp_path))
    else:
        cfg = _dataset_config(name)
        try:
            cls.from_config(cfg)
        except ConfigError as e:
            pytest.skip(f"dataset {name!r} needs data this test cannot make ({e}); add a maker "
                        "to ROOTS in tests/test_contracts.py")
    for modalities in (("visual", "audio", "text"), ("audio",)):
        cfg.data.modalities = modalities
        ds = cls.from_config(cfg)
        assert isinstance(ds, protocols.Dataset)
        assert list(ds.dims) == list(modalities)
        assert all(isinstance(d, int) and d > 0 for d in ds.dims.values()), ds.dims
        splits = ds.splits()
        assert set(splits) >= {"train", "val", "test"}
        for split in ("train", "val", "test"):
            assert splits[split], f"dataset {name!r}: no {split} videos"
            for video in splits[split]:
                assert isinstance(video, Video)
                # a label column per target; a row per frame, or one per sequence
                video.validate(ds.dims, dataset_targets(ds), level=dataset_label_level(ds),
                               label_range=dataset_label_range(ds))
        info = json.loads(json.dumps(ds.info()))  # JSON-able: it goes into the run record
        assert info["name"] == name and "version" in info


# ------------------------------------------------------------------------------- backbones
N_FRAMES = 6


def _media():
    """Every kind of media for one short video; each backbone reads its own part."""
    rng = np.random.default_rng(0)
    return Media(
        "clip", N_FRAMES, fps=10.0,
        crops=rng.random((N_FRAMES, 48, 48, 3), dtype=np.float32),
        crop_mask=np.array([1, 1, 0, 1, 1, 1], bool),
        audio=(0.1 * np.sin(np.arange(16000 // 2) / 5)).astype(np.float32), sample_rate=16000,
        words=[("hello", 0.0, 0.25), ("there", 0.3, 0.45)],
    )


@pytest.mark.parametrize("name", NAMES["backbones"])
def test_backbone_maps_media_to_frames_by_dim(name):
    cls = _entry("backbones", name).obj
    assert isinstance(getattr(cls, "modality", None), str) and cls.modality
    try:
        backbone = cls(random_init=True, device="cpu")
    except ImportError as e:  # the heavy library is an optional extra
        pytest.skip(f"backbone {name!r} needs {e.name or e} (not installed)")
    except WeightsError as e:  # random_init cannot stand in for a model's files (sbert)
        pytest.skip(f"backbone {name!r}: {e}")
    assert isinstance(backbone, protocols.Backbone)
    desc = json.loads(json.dumps(backbone.describe()))  # JSON-able: it keys the cache
    assert desc.get("dim", backbone.dim) == backbone.dim
    features, mask = backbone.extract(_media())
    assert features.shape == (N_FRAMES, backbone.dim) and features.dtype == np.float32
    assert mask.shape == (N_FRAMES,) and mask.dtype == bool
    assert np.isfinite(features).all() and not features[~mask].any()


# --------------------------------------------------------------------------------- metrics
if "metrics" in KINDS:

    @pytest.mark.parametrize("name", NAMES["metrics"])
    def test_metric_contract(name):
        entry = _entry("metrics", name)
        metric = entry.obj
        higher = getattr(metric, "higher_is_better", getattr(entry, "higher_is_better", None))
        assert isinstance(higher, bool), f"metric {name!r} needs a bool higher_is_better"
        rng = np.random.default_rng(0)
        target = np.clip(np.cumsum(rng.normal(0, 0.1, 200)), -1, 1)
        noisy = np.clip(target + rng.normal(0, 0.5, 200), -1, 1)
        perfect, worse = metric(target.copy(), target), metric(noisy, target)
        assert isinstance(perfect, float) and np.isfinite([perfect, worse]).all()
        assert (perfect > worse) if higher else (perfect < worse), (perfect, worse)


# ------------------------------------------------------------------------------- coverage
CONTRACT_TESTS = {
    "fusions": [test_fusion_contract],
    "encoders": [test_encoder_output_shape, test_encoder_gradients_flow,
                 test_encoder_is_deterministic_under_a_seed, test_encoder_keeps_samples_apart],
    "datasets": [test_dataset_without_a_root_builds_or_asks_for_one, test_dataset_contract],
    "backbones": [test_backbone_maps_media_to_frames_by_dim],
}
if "metrics" in KINDS:
    CONTRACT_TESTS["metrics"] = [test_metric_contract]  # noqa: F821 - defined above when so


def _parametrised_names(test) -> list[str]:
    (mark,) = [m for m in test.pytestmark if m.name == "parametrize"]
    return list(mark.args[1])


@pytest.mark.parametrize("kind", KINDS)
def test_every_registered_component_has_contract_tests(kind):
    """Each kind has contract tests, parametrised over exactly the registry's names, which
    include every built-in of :mod:`fusion_bench.builtins`."""
    assert kind in CONTRACT_TESTS, f"no contract test for {kind}: add one to tests/test_contracts.py"
    builtin = set(getattr(builtins, kind.upper(), {}))
    assert builtin, f"fusion_bench.builtins lists no {kind} (expected a dict {kind.upper()})"
    for test in CONTRACT_TESTS[kind]:
        names = _parametrised_names(test)
        assert names and names == REGISTRY.names(kind), test.__name__
        assert builtin <= set(names), f"{test.__name__} misses built-ins {builtin - set(names)}"
