"""fusion_bench.testing passes a correct fusion and catches broken ones, naming what failed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fusion_bench import testing
from fusion_bench.fusions.concat import Concat

DIMS = {"visual": 6, "audio": 4}


class Good(nn.Module):
    """Masked concatenation followed by a per-frame linear layer: satisfies the contract."""

    description = "a correct toy fusion"
    reference = ""

    def __init__(self, dims, seq_len, width=5):
        super().__init__()
        self.dims = dims
        self.linear = nn.Linear(sum(dims.values()), width)
        self.out_dim = width

    def masked(self, feats, mask):
        if mask is None:
            return [feats[m] for m in self.dims]
        return [feats[m].masked_fill(~mask[m][..., None], 0.0) for m in self.dims]

    def forward(self, feats, mask=None):
        return self.linear(torch.cat(self.masked(feats, mask), dim=-1))


class WrongOutDim(Good):
    def __init__(self, dims, seq_len):
        super().__init__(dims, seq_len)
        self.out_dim = 7


class IgnoresMask(Good):
    def forward(self, feats, mask=None):
        return super().forward(feats, None)


class LeaksAcrossBatch(Good):
    def forward(self, feats, mask=None):
        out = super().forward(feats, mask)
        return out - out.mean(dim=0, keepdim=True)  # a statistic over the batch


class UnusedParameter(Good):
    def __init__(self, dims, seq_len):
        super().__init__(dims, seq_len)
        self.spare = nn.Linear(3, 3)


class DropsModality(Good):
    def __init__(self, dims, seq_len):
        super().__init__(dims, seq_len)
        self.linear = nn.Linear(next(iter(dims.values())), self.out_dim)

    def forward(self, feats, mask=None):
        return self.linear(self.masked(feats, mask)[0])  # the other modalities never used


class DropoutInEval(Good):
    def forward(self, feats, mask=None):
        return F.dropout(super().forward(feats, mask), 0.5, training=True)


class NaNWhenMissing(Good):
    def forward(self, feats, mask=None):
        out = super().forward(feats, mask)
        if mask is None:
            return out
        # a per-sample average over the valid frames: 0/0 when a modality is missing throughout
        pooled = [
            (x * mask[m][..., None]).sum(1) / mask[m].sum(1, keepdim=True) for m, x in feats.items()
        ]
        return out + torch.cat(pooled, dim=-1).sum(-1)[:, None, None]


class ModifiesInput(Good):
    def forward(self, feats, mask=None):
        first = next(iter(self.dims))
        feats[first].add_(0.5)  # changes the caller's tensor
        return super().forward(feats, mask)


class NoDescription(Good):
    description = ""


@pytest.mark.parametrize("cls", [Good, Concat])
def test_a_correct_fusion_passes(cls):
    testing.check_fusion(cls)
    testing.check_fusion(cls, dims={"a": 3, "b": 2, "c": 4, "d": 1}, seq_len=5)


@pytest.mark.parametrize(
    ("cls", "check", "message"),
    [
        (WrongOutDim, testing.check_output_shape, r"expected \(B, L, out_dim\) = \(4, 16, 7\)"),
        (IgnoresMask, testing.check_masks_respected, "masks not respected"),
        (LeaksAcrossBatch, testing.check_batch_invariance, "not batch-size invariant"),
        (UnusedParameter, testing.check_gradients, r"spare.weight: no gradient"),
        (DropsModality, testing.check_gradients, r"input 'audio': no gradient"),
        (DropoutInEval, testing.check_deterministic, "not deterministic in eval mode"),
        (
            NaNWhenMissing,
            testing.check_missing_modality,
            "non-finite output when 'visual' is missing",
        ),
        (ModifiesInput, testing.check_output_shape, r"modified feats\['visual'\] in place"),
    ],
)
def test_each_check_catches_its_breakage(cls, check, message):
    with pytest.raises(AssertionError, match=message) as caught:
        check(cls, DIMS)
    assert str(caught.value).startswith(f"{cls.__name__}(dims={DIMS}")
    check(Good, DIMS)  # and passes the correct fusion


@pytest.mark.parametrize(
    "cls",
    [
        WrongOutDim,
        IgnoresMask,
        LeaksAcrossBatch,
        UnusedParameter,
        DropsModality,
        DropoutInEval,
        NaNWhenMissing,
        ModifiesInput,
    ],
)
def test_check_fusion_catches_every_breakage(cls):
    with pytest.raises(AssertionError, match=cls.__name__):
        testing.check_fusion(cls)


def test_metadata_is_checked():
    with pytest.raises(AssertionError, match="NoDescription: class attribute description"):
        testing.check_fusion(NoDescription)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_options_reach_the_constructor_and_the_message():
    testing.check_output_shape(Good, DIMS, width=3)
    with pytest.raises(
        AssertionError, match=r"^Good\(dims=.*, seq_len=16, width=0\): out_dim must"
    ):
        testing.check_output_shape(Good, DIMS, width=0)


def test_make_inputs_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, mask_a = testing.make_inputs(DIMS, seed=3)
    b, mask_b = testing.make_inputs(DIMS, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[m], b[m]) and torch.equal(mask_a[m], mask_b[m]) for m in DIMS)
    assert all(x.shape == (testing.BATCH, 16, DIMS[m]) for m, x in a.items())
    assert 0 < sum(int((~v).sum()) for v in mask_a.values())


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present: check_cuda runs for real")
def test_check_cuda_skips_without_cuda():
    assert testing.check_cuda(Good, DIMS) is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_check_cuda_runs_with_cuda():
    assert testing.check_cuda(Good, DIMS) is True


@pytest.mark.slow
def test_check_compiles():
    testing.check_compiles(Good, DIMS, fullgraph=True)


class Detached(nn.Module):
    description = "returns a detached output (a plugin bug)"
    reference = ""

    def __init__(self, dims, seq_len):
        super().__init__()
        self.proj = nn.ModuleDict({m: nn.Linear(d, 4) for m, d in dims.items()})
        self.out_dim = 4 * len(dims)

    def forward(self, feats, mask=None):
        return torch.cat([self.proj[m](x) for m, x in feats.items()], -1).detach()


def test_an_output_without_gradient_is_an_assertion_naming_the_fusion():
    with pytest.raises(AssertionError, match="Detached.*the output carries no gradient"):
        testing.check_gradients(Detached, {"a": 3, "b": 2})
