"""Baselines: concat, lstm, cross_attention."""

from __future__ import annotations

import pytest
import torch

from fusion_bench.fusions.concat import Concat
from fusion_bench.fusions.cross_attention import CrossAttention
from fusion_bench.fusions.lstm import LSTMFusion
from fusion_bench.testing import check_compiles, check_fusion, make_inputs

DIMS = {"visual": 6, "audio": 4, "text": 5}


# the default options of every registered fusion: tests/test_contracts.py
@pytest.mark.parametrize(
    ("cls", "options"),
    [
        (LSTMFusion, {"hidden": 5, "layers": 1}),
        (CrossAttention, {"d_model": 8, "heads": 2, "dropout": 0.0}),
    ],
    ids=["lstm-1layer", "cross_attention-small"],
)
def test_contract_with_options(cls, options):
    check_fusion(cls, **options)


def test_concat_is_the_masked_concatenation():
    fusion = Concat(DIMS, 8)
    feats, mask = make_inputs(DIMS, seq_len=8)
    expected = torch.cat([feats[m] * mask[m][..., None] for m in DIMS], dim=-1)
    torch.testing.assert_close(fusion(feats, mask), expected)
    torch.testing.assert_close(fusion(feats, None), torch.cat(list(feats.values()), dim=-1))
    assert fusion.out_dim == 15 and not list(fusion.parameters())


def lstm_count(D, h, layers):
    """Per direction: 4h(input + h) weights and two 4h biases; layer 1 reads D, later ones 2h."""
    return sum(2 * (4 * h * ((D if i == 0 else 2 * h) + h) + 8 * h) for i in range(layers))


@pytest.mark.parametrize(("hidden", "layers"), [(64, 2), (5, 1), (7, 3)])
def test_lstm_parameter_count_and_width(hidden, layers):
    fusion = LSTMFusion(DIMS, 8, hidden=hidden, layers=layers)
    assert sum(p.numel() for p in fusion.parameters()) == lstm_count(15, hidden, layers)
    assert fusion.out_dim == 2 * hidden
    assert fusion(*make_inputs(DIMS, seq_len=8)).shape == (4, 8, 2 * hidden)


def test_lstm_reads_both_directions():
    """The first frame's output depends on the last frame's input (backward direction)."""
    fusion = LSTMFusion(DIMS, 8, hidden=4).eval()
    feats, _ = make_inputs(DIMS, seq_len=8)
    changed = {m: x.clone() for m, x in feats.items()}
    changed["visual"][:, -1] += 1.0
    with torch.no_grad():
        assert (fusion(feats, None)[:, 0] - fusion(changed, None)[:, 0]).abs().max() > 1e-4


def test_cross_attention_widths():
    fusion = CrossAttention(DIMS, 8, d_model=16, heads=4)
    assert fusion.out_dim == 3 * 16
    assert fusion(*make_inputs(DIMS, seq_len=8)).shape == (4, 8, 48)
    assert CrossAttention({"visual": 6, "audio": 4}, 8).out_dim == 2 * 64


def test_cross_attention_attends_only_to_other_modalities():
    """Changing a modality's own frames elsewhere in the window does not change what its
    queries attend to: only its own frame (residual) moves its output block."""
    fusion = CrossAttention(DIMS, 8, d_model=8, heads=2, dropout=0.0).eval()
    feats, _ = make_inputs(DIMS, seq_len=8)
    changed = {m: x.clone() for m, x in feats.items()}
    changed["visual"][:, 3] += 5.0
    with torch.no_grad():
        diff = (fusion(feats, None) - fusion(changed, None)).abs()
    visual_block = diff[..., :8]
    assert visual_block[:, 3].max() > 1e-3  # its own frame, through the residual
    assert visual_block[:, [0, 1, 2, 4, 5, 6, 7]].max() < 1e-6
    assert diff[..., 8:].max() > 1e-3  # the other modalities attend to it


def test_cross_attention_with_no_key_falls_back_to_the_residual():
    """A sample whose other modalities are all missing gets LayerNorm(P_m), finite, no NaN."""
    dims = {"visual": 6, "audio": 4}
    fusion = CrossAttention(dims, 8, d_model=8, heads=2).eval()
    feats, mask = make_inputs(dims, seq_len=8)
    mask["audio"][0] = False
    with torch.no_grad():
        out = fusion(feats, mask)
        alone = fusion.norm["visual"](
            fusion.proj["visual"](feats["visual"][0] * mask["visual"][0, :, None])
        )
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, :, :8], alone)


@pytest.mark.parametrize(
    ("cls", "options", "message"),
    [
        (CrossAttention, {"d_model": 10, "heads": 4}, "heads=4 must divide d_model=10"),
        (CrossAttention, {"heads": 0}, "heads must be a positive int"),
        (CrossAttention, {"dropout": -0.1}, "dropout must be a number"),
        (LSTMFusion, {"hidden": 0}, "hidden must be a positive int"),
        (LSTMFusion, {"layers": 2.5}, "layers must be a positive int"),
    ],
)
def test_bad_options_are_named(cls, options, message):
    with pytest.raises(ValueError, match=message):
        cls(DIMS, 8, **options)


@pytest.mark.parametrize("cls", [Concat, LSTMFusion, CrossAttention])
def test_needs_two_modalities(cls):
    with pytest.raises(ValueError, match="two or more modalities"):
        cls({"visual": 6}, 8)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("cls", "fullgraph"),
    # dynamo does not trace nn.LSTM (a graph break), so LSTMFusion compiles in pieces
    [(Concat, True), (CrossAttention, True), (LSTMFusion, False)],
)
def test_compiles(cls, fullgraph):
    check_compiles(cls, DIMS, 8, fullgraph=fullgraph)
