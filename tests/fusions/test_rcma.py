"""RCMA: the maths of DESIGN §5, pinned against hand-computed and independent numpy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fusion_bench.fusions.cross_attention import CrossAttention
from fusion_bench.fusions.rcma import RCMA
from fusion_bench.testing import check_compiles, check_fusion, make_inputs

DIMS = {"visual": 6, "audio": 4, "text": 5}
PAPER_DIMS = {"visual": 512, "audio": 128, "text": 512}

OPTION_SETS = [
    {},
    {"iterations": 1},
    {"iterations": 3},
    {"joint": "all"},
    {"joint": "all", "project_query": False},
    {"project_query": False},
    {"time_mixing": "none"},
    {"dropout": 0.0},
    {"variant": "paper"},
    {"variant": "paper", "joint": "all", "hidden": 7},
]


@pytest.mark.parametrize(
    "options", OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default"
)
def test_contract(options):
    check_fusion(RCMA, **options)


# ---------------------------------------------------------------- parameter counts


def linear(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


def code_count(dims, L, R, joint="others", project_query=True, time_mixing="linear"):
    """Per step: W_q (one per modality, or one shared with joint="all"), and per modality
    T_m (L×L + L), W_v (d_m×d_m + d_m), W_o (d_o×d_m + d_m)."""
    D = sum(dims.values())
    step = linear(D, D) if (joint == "all" and project_query) else 0
    for d_m in dims.values():
        d_o = D if joint == "all" else D - d_m
        if joint == "others" and project_query:
            step += linear(d_o, d_o)
        if time_mixing == "linear":
            step += linear(L, L)
        step += linear(d_m, d_m) + linear(d_o, d_m)
    return R * step


def paper_count(dims, L, R, k, joint="others"):
    """Per step and modality, no biases: W_j d_m×d_o, W_m k×d_m, W_c k×L, W_h d_m×k."""
    D = sum(dims.values())
    return R * sum(
        d_m * (D if joint == "all" else D - d_m) + k * d_m + k * L + d_m * k
        for d_m in dims.values()
    )


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def build_meta(dims, seq_len, **options):
    with torch.device("meta"):  # counting only: no memory, no init cost
        return RCMA(dims, seq_len, **options)


def test_paper_configuration_count_matches_authors():
    # (512, 128, 512), L=300, R=2, joint="others": per modality (d_o²+d_o) + (L²+L) + (d_m²+d_m)
    # + (d_o·d_m+d_m). 6,940,776 is also what the authors' first release (praveena2j/RJCMA,
    # DCNLayer(512, 128, 512, 2, 0.6)) counts.
    model = build_meta(PAPER_DIMS, 300)
    assert n_params(model) == code_count(PAPER_DIMS, 300, 2) == 6_940_776


def test_paper_configuration_count_joint_all():
    # The authors' later release counts 6,938,472 with its unused query_linear (1152²+1152 per
    # step); project_query=False does not build it.
    assert n_params(build_meta(PAPER_DIMS, 300, joint="all")) == 6_938_472
    unprojected = build_meta(PAPER_DIMS, 300, joint="all", project_query=False)
    assert n_params(unprojected) == 6_938_472 - 2 * linear(1152, 1152) == 4_281_960


@pytest.mark.parametrize("dims", [DIMS, {"visual": 3, "audio": 9}, PAPER_DIMS])
@pytest.mark.parametrize("R", [1, 2, 3])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"joint": "all"},
        {"joint": "all", "project_query": False},
        {"project_query": False},
        {"time_mixing": "none"},
        {"joint": "all", "time_mixing": "none"},
    ],
)
def test_code_count_formula(dims, R, options):
    assert n_params(build_meta(dims, 11, iterations=R, **options)) == code_count(
        dims, 11, R, **options
    )


@pytest.mark.parametrize("joint", ["others", "all"])
@pytest.mark.parametrize("hidden", [None, 5])
def test_paper_variant_count_formula(joint, hidden):
    model = build_meta(DIMS, 13, variant="paper", joint=joint, hidden=hidden, iterations=2)
    assert n_params(model) == paper_count(DIMS, 13, 2, hidden or 32, joint)


def test_iterations_differ_in_count_and_output():
    one, two = RCMA(DIMS, 8, iterations=1).eval(), RCMA(DIMS, 8, iterations=2).eval()
    assert n_params(two) - n_params(one) == n_params(one) == code_count(DIMS, 8, 1)
    # R=1 with R=2's first-step weights is exactly R=2's first step; the second step changes it
    one.steps[0].load_state_dict(two.steps[0].state_dict())
    feats, mask = make_inputs(DIMS, seq_len=8)
    with torch.no_grad():
        out_two, trace = two.forward_with_intermediates(feats, mask)
        out_one = one(feats, mask)
    first_step = torch.cat([trace[0][m]["output"] for m in DIMS], dim=-1)
    torch.testing.assert_close(out_one, first_step)
    assert (out_two - out_one).abs().max() > 1e-3


def test_no_weight_sharing_across_steps_or_modalities():
    model = RCMA(DIMS, 8, iterations=3)
    params = list(model.parameters())
    assert len({p.data_ptr() for p in params}) == len(params)
    assert len(list(model.named_parameters(remove_duplicate=False))) == len(params)
    s0, s1 = model.steps[0], model.steps[1]
    for m in DIMS:
        assert s0.value[m].weight is not s1.value[m].weight
        assert not torch.equal(s0.value[m].weight, s1.value[m].weight)  # initialised independently
        assert not torch.equal(s0.time[m].weight, s1.time[m].weight)


# ---------------------------------------------------------------- shapes per step


@pytest.mark.parametrize("joint", ["others", "all"])
def test_intermediate_shapes_follow_design_table(joint):
    B, L = 2, 7
    D = sum(DIMS.values())
    model = RCMA(DIMS, L, joint=joint, iterations=2)
    feats, mask = make_inputs(DIMS, batch=B, seq_len=L)
    out, trace = model.forward_with_intermediates(feats, mask)
    assert out.shape == (B, L, D) and model.out_dim == D
    assert len(trace) == 2
    for step in trace:
        assert list(step) == list(DIMS)
        for m, d_m in DIMS.items():
            d_o = D if joint == "all" else D - d_m
            q = step[m]
            assert q["query"].shape == (B, L, d_o)
            assert q["key"].shape == (B, d_m, L)
            assert q["value"].shape == (B, L, d_m)
            assert q["correlation"].shape == (B, d_m, d_o)
            assert q["attended"].shape == (B, L, d_o)
            assert q["update"].shape == q["output"].shape == (B, L, d_m)
    # output blocks are the modalities after the last step, in dims order
    torch.testing.assert_close(out, torch.cat([trace[-1][m]["output"] for m in DIMS], dim=-1))


def test_joint_changes_query_width():
    feats, _ = make_inputs(DIMS, seq_len=5)
    _, others = RCMA(DIMS, 5).forward_with_intermediates(feats, None)
    _, joint_all = RCMA(DIMS, 5, joint="all").forward_with_intermediates(feats, None)
    assert [others[0][m]["query"].shape[-1] for m in DIMS] == [9, 11, 10]
    assert [joint_all[0][m]["query"].shape[-1] for m in DIMS] == [15, 15, 15]


def test_paper_variant_shapes():
    B, L, k = 2, 6, 5
    model = RCMA(DIMS, L, variant="paper", hidden=k)
    out, trace = model.forward_with_intermediates(*make_inputs(DIMS, batch=B, seq_len=L))
    assert out.shape == (B, L, 15)
    for m, d_m in DIMS.items():
        assert trace[0][m]["correlation"].shape == (B, L, L)
        assert trace[0][m]["hidden"].shape == (B, L, k)
        assert trace[0][m]["output"].shape == (B, L, d_m)


# ---------------------------------------------------------------- the maths


def test_one_step_matches_hand_computation():
    """Two modalities of width 2, L = 3, one step, weights set by hand; expected output computed
    with float64 numpy straight from the DESIGN table (row vectors: x W + b)."""
    X = {
        "v": np.array([[1.0, 0.0], [0.5, -1.0], [0.0, 2.0]]),
        "a": np.array([[0.2, 0.1], [-0.3, 0.4], [1.0, -0.5]]),
    }
    W = {
        "v": dict(
            q=np.array([[1.0, 0.5], [-0.5, 1.0]]),
            bq=np.array([0.1, -0.1]),
            T=np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.2, 0.8]]),
            bT=np.array([0.0, 0.1, -0.1]),
            v=np.array([[0.8, -0.2], [0.3, 0.9]]),
            bv=np.array([0.05, 0.0]),
            o=np.array([[1.0, -0.5], [0.7, 0.4]]),
            bo=np.array([0.1, 0.2]),
        ),
        "a": dict(
            q=np.array([[0.6, -0.4], [0.2, 0.9]]),
            bq=np.array([0.0, 0.2]),
            T=np.array([[0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [-0.3, 0.3, 1.0]]),
            bT=np.array([0.1, 0.0, 0.0]),
            v=np.array([[1.1, 0.0], [-0.4, 0.7]]),
            bv=np.array([0.0, -0.05]),
            o=np.array([[0.5, 1.0], [-0.8, 0.6]]),
            bo=np.array([0.3, -0.1]),
        ),
    }
    other = {"v": "a", "a": "v"}
    expected = {}
    for m in X:
        w = W[m]
        Q = X[other[m]] @ w["q"] + w["bq"]  # (L, d_o)
        K = (w["T"] @ X[m] + w["bT"][:, None]).T  # (d_m, L)
        V = X[m] @ w["v"] + w["bv"]  # (L, d_m)
        S = np.tanh(K @ Q / math.sqrt(2))  # (d_m, d_o)
        G = np.maximum(np.tanh(V @ S), 0)  # (L, d_o)
        U = np.maximum(G @ w["o"] + w["bo"], 0)  # (L, d_m)
        assert np.abs(U).sum() > 0.5  # the example exercises the update
        expected[m] = X[m] + U

    model = RCMA({"v": 2, "a": 2}, 3, iterations=1).double().eval()
    step = model.steps[0]
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    with torch.no_grad():
        for m, w in W.items():
            step.query[m].weight.copy_(t(w["q"].T)), step.query[m].bias.copy_(t(w["bq"]))
            step.time[m].weight.copy_(t(w["T"])), step.time[m].bias.copy_(t(w["bT"]))
            step.value[m].weight.copy_(t(w["v"].T)), step.value[m].bias.copy_(t(w["bv"]))
            step.out[m].weight.copy_(t(w["o"].T)), step.out[m].bias.copy_(t(w["bo"]))
        out = model({m: t(x)[None] for m, x in X.items()}, None)[0].numpy()
    np.testing.assert_allclose(
        out, np.concatenate([expected["v"], expected["a"]], axis=-1), atol=1e-6, rtol=0
    )


def numpy_code_reference(model, feats, joint, project_query, time_mixing):
    """DESIGN §5's table in float64 numpy, simultaneous update, reading the module's weights."""
    sd = {k: v.double().numpy() for k, v in model.state_dict().items()}
    names = list(model.dims)
    xs = {m: feats[m].double().numpy() for m in names}
    for i in range(model.iterations):
        p = f"steps.{i}."
        new = {}
        for m in names:
            others = names if joint == "all" else [n for n in names if n != m]
            o_m = np.concatenate([xs[n] for n in others], axis=-1)  # (B, L, d_o)
            if not project_query:
                Q = o_m
            elif joint == "all":
                Q = o_m @ sd[p + "query.weight"].T + sd[p + "query.bias"]
            else:
                Q = o_m @ sd[p + f"query.{m}.weight"].T + sd[p + f"query.{m}.bias"]
            if time_mixing == "linear":
                T, bT = sd[p + f"time.{m}.weight"], sd[p + f"time.{m}.bias"]
                K = np.einsum("ts,bsc->bct", T, xs[m]) + bT[None, None, :]
            else:
                K = xs[m].transpose(0, 2, 1)
            V = xs[m] @ sd[p + f"value.{m}.weight"].T + sd[p + f"value.{m}.bias"]
            S = np.tanh(K @ Q / math.sqrt(o_m.shape[-1]))
            G = np.maximum(np.tanh(V @ S), 0)
            U = np.maximum(G @ sd[p + f"out.{m}.weight"].T + sd[p + f"out.{m}.bias"], 0)
            new[m] = xs[m] + U
        xs = new  # all modalities updated from the previous step's values
    return np.concatenate([xs[m] for m in names], axis=-1)


@pytest.mark.parametrize(
    "options",
    [{}, {"joint": "all"}, {"joint": "all", "project_query": False}, {"time_mixing": "none"}],
)
def test_recursion_matches_numpy_reference(options):
    opts = {"joint": "others", "project_query": True, "time_mixing": "linear", **options}
    model = RCMA(DIMS, 6, iterations=3, **options).double().eval()
    feats, _ = make_inputs(DIMS, batch=2, seq_len=6)
    with torch.no_grad():
        out = model({m: x.double() for m, x in feats.items()}, None).numpy()
    np.testing.assert_allclose(
        out, numpy_code_reference(model, feats, **opts), atol=1e-9, rtol=1e-9
    )


@pytest.mark.parametrize("joint", ["others", "all"])
def test_paper_variant_matches_numpy_reference(joint):
    """The JCA equations in their own layout: X_m (d_m × L), J (d_o × L)."""
    L, R = 5, 2
    model = RCMA(DIMS, L, variant="paper", joint=joint, iterations=R, hidden=4).double().eval()
    feats, _ = make_inputs(DIMS, batch=2, seq_len=L)
    with torch.no_grad():
        out = model({m: x.double() for m, x in feats.items()}, None).numpy()
    sd = {k: v.double().numpy() for k, v in model.state_dict().items()}
    names = list(DIMS)
    expected = []
    for b in range(2):
        X = {m: feats[m][b].double().numpy().T for m in names}  # (d_m, L)
        for i in range(R):
            p = f"steps.{i}."
            new = {}
            for m in names:
                J = np.concatenate([X[n] for n in names if joint == "all" or n != m], axis=0)
                C = np.tanh(X[m].T @ sd[p + f"w_j.{m}.weight"] @ J / math.sqrt(J.shape[0]))
                H = np.maximum(
                    sd[p + f"w_m.{m}.weight"] @ X[m] + sd[p + f"w_c.{m}.weight"] @ C.T, 0
                )
                new[m] = sd[p + f"w_h.{m}.weight"] @ H + X[m]
            X = new
        expected.append(np.concatenate([X[m].T for m in names], axis=-1))
    np.testing.assert_allclose(out, np.stack(expected), atol=1e-9, rtol=1e-9)


def softmax_ops(fn):
    """Names of the softmax kernels that ran during fn()."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages() if "softmax" in e.key.lower()}


@pytest.mark.parametrize("variant", ["code", "paper"])
def test_no_softmax(monkeypatch, variant):
    model = RCMA(DIMS, 8, variant=variant, joint="all")
    feats, mask = make_inputs(DIMS, seq_len=8)

    def forbidden(*args, **kwargs):
        raise AssertionError("softmax called")

    for owner, name in [
        (torch, "softmax"),
        (F, "softmax"),
        (F, "log_softmax"),
        (torch.Tensor, "softmax"),
    ]:
        monkeypatch.setattr(owner, name, forbidden)
    assert not softmax_ops(lambda: model(feats, mask).sum().backward())
    monkeypatch.undo()
    # the detector does see the softmax of vanilla attention
    attention = CrossAttention(DIMS, 8)
    assert softmax_ops(lambda: attention(feats, mask))


# ---------------------------------------------------------------- lengths, masks, options


def test_time_mixing_none_works_at_any_length():
    model = RCMA(DIMS, 16, time_mixing="none").eval()
    assert not model.tied_to_seq_len
    for L in (1, 5, 23):
        feats, mask = make_inputs(DIMS, seq_len=L)
        assert model(feats, mask).shape == (4, L, 15)


@pytest.mark.parametrize("options", [{}, {"variant": "paper"}])
def test_window_length_mismatch_says_what_to_do(options):
    model = RCMA(DIMS, 16, **options)
    with pytest.raises(ValueError, match=r"seq_len=16.*L=8.*time_mixing='none'"):
        model(*make_inputs(DIMS, seq_len=8))


def test_masked_frames_read_as_zero():
    model = RCMA(DIMS, 8).eval()
    feats, mask = make_inputs(DIMS, seq_len=8)
    zeroed = {m: x * mask[m][..., None] for m, x in feats.items()}
    with torch.no_grad():
        torch.testing.assert_close(model(feats, mask), model(zeroed, None))


def test_wrong_inputs_are_named():
    model = RCMA(DIMS, 8)
    feats, mask = make_inputs(DIMS, seq_len=8)
    with pytest.raises(ValueError, match="missing \\['text'\\]"):
        model({m: x for m, x in feats.items() if m != "text"}, None)
    feats["audio"] = feats["audio"][..., :3]
    with pytest.raises(ValueError, match="feats\\['audio'\\] has shape \\(4, 8, 3\\)"):
        model(feats, mask)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"joint": "pairs"}, "joint='pairs' is not one of 'others', 'all'"),
        ({"time_mixing": "conv"}, "time_mixing='conv' is not one of 'linear', 'none'"),
        ({"variant": "v2"}, "variant='v2' is not one of 'code', 'paper'"),
        ({"iterations": 0}, "iterations must be a positive int"),
        ({"dropout": 1.0}, "dropout must be a number in \\[0, 1\\)"),
        ({"project_query": "no"}, "project_query must be True or False"),
        ({"hidden": 8}, "hidden=8 only applies to variant='paper'"),
        ({"variant": "paper", "time_mixing": "none"}, "time_mixing='none' needs variant='code'"),
        ({"variant": "paper", "project_query": False}, "project_query=False needs variant='code'"),
        ({"variant": "paper", "hidden": 0}, "hidden must be a positive int"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        RCMA(DIMS, 8, **options)


def test_needs_two_modalities():
    with pytest.raises(ValueError, match="two or more modalities"):
        RCMA({"visual": 4}, 8)


def test_bf16_autocast():
    model = RCMA(DIMS, 8).eval()
    feats, mask = make_inputs(DIMS, seq_len=8)
    with torch.no_grad():
        reference = model(feats, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(feats, mask)
    assert out.shape == reference.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), reference, atol=0.1, rtol=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("options", [{}, {"variant": "paper", "joint": "all"}])
def test_compiles_without_graph_breaks(options):
    check_compiles(RCMA, DIMS, 8, fullgraph=True, **options)


def test_identity_time_init_starts_as_no_time_mixing():
    """time_init="identity": same parameters as the default init, but T_m = I, b_T = 0, so the
    first forward equals time_mixing="none" with the same other weights."""
    dims = {"visual": 6, "audio": 4, "text": 5}
    torch.manual_seed(0)
    ident = RCMA(dims, 7, time_init="identity", dropout=0.0).eval()
    none = RCMA(dims, 7, time_mixing="none", dropout=0.0).eval()
    assert sum(p.numel() for p in ident.parameters()) == sum(
        p.numel() for p in RCMA(dims, 7).parameters()
    )
    missing = none.load_state_dict(ident.state_dict(), strict=False)
    assert all(".time." in k for k in missing.unexpected_keys) and not missing.missing_keys
    for step in ident.steps:
        for lin in step.time.values():
            assert torch.equal(lin.weight, torch.eye(7)) and not lin.bias.any()
    feats = {m: torch.randn(3, 7, d) for m, d in dims.items()}
    torch.testing.assert_close(ident(feats), none(feats))
    with pytest.raises(ValueError, match="time_init"):
        RCMA(dims, 7, time_init="zeros")
