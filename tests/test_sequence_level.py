"""Sequence-level (utterance-level) targets: the contract's checks, the window rule, windows
carrying a sequence's label, pooling over valid frames only, window averaging weighted by valid
frames, scores over sequences, and the ridge row on time-averaged features; each number by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fusion_bench.baseline import ridge_baseline, sequence_means
from fusion_bench.data import Video, dataset_label_level, dataset_label_range
from fusion_bench.data.windows import make_windows, resolve_windows, sequence_window_rule
from fusion_bench.errors import DataError
from fusion_bench.evaluate import predict, score
from fusion_bench.heads import SequenceHead
from fusion_bench.metrics import ccc, ccc_loss, mse_loss


def seq(name, n, label, d=2, mask=None):
    """A sequence of n frames whose feature j at frame t is t (visual), one label row."""
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None], d, axis=1)
    k = np.ones(n, bool) if mask is None else np.asarray(mask, bool)
    return Video(name, {"visual": x}, {"visual": k}, np.array([label], np.float32))


# -- the contract -------------------------------------------------------------------------------
def test_validate_takes_one_label_row_at_sequence_level():
    v = seq("a", 5, [0.5, -0.5])
    v.validate({"visual": 2}, ("valence", "arousal"), level="sequence")
    assert v.n_frames == 5 and v.valid.shape == (1,)
    with pytest.raises(DataError, match="5 feature frames but 1 label frames.*declares "
                                        "label_level = 'sequence'"):
        v.validate({"visual": 2}, ("valence", "arousal"))  # one row is not one per frame
    per_frame = Video("b", v.features, v.masks, np.zeros((5, 2), np.float32))
    with pytest.raises(DataError, match=r"'b': labels must have shape \(1, 2\)"):
        per_frame.validate({"visual": 2}, ("valence", "arousal"), level="sequence")


def test_label_range_checks_the_labels_and_keeps_the_invalid_marker():
    v = seq("s", 3, [2.5])
    with pytest.raises(DataError, match=r"outside \[-1, 1\]"):
        v.validate({"visual": 2}, ("sentiment",), level="sequence")
    v.validate({"visual": 2}, ("sentiment",), level="sequence", label_range=(-3.0, 3.0))
    seq("x", 3, [-5.0]).validate({"visual": 2}, ("sentiment",), level="sequence",
                                 label_range=(-3.0, 3.0))  # -5: invalid, not out of range
    with pytest.raises(DataError, match=r"outside \[-3, 3\]"):
        seq("y", 3, [3.5]).validate({"visual": 2}, ("sentiment",), level="sequence",
                                    label_range=(-3.0, 3.0))


class _DS:
    name = "mosi"


def test_dataset_label_level_and_range_name_the_dataset():
    ds = _DS()
    assert dataset_label_level(ds) == "frame" and dataset_label_range(ds) == (-1.0, 1.0)
    ds.label_level, ds.label_range = "sequence", (-3, 3)
    assert dataset_label_level(ds) == "sequence" and dataset_label_range(ds) == (-3.0, 3.0)
    ds.label_level = "utterance"
    with pytest.raises(DataError, match="dataset 'mosi': label_level must be"):
        dataset_label_level(ds)
    ds.label_range = (-6, 6)
    with pytest.raises(DataError, match="dataset 'mosi': label_range .* contains the invalid marker -5"):
        dataset_label_range(ds)
    ds.label_range = (1, -1)
    with pytest.raises(DataError, match="lo < hi"):
        dataset_label_range(ds)


# -- windows ------------------------------------------------------------------------------------
def test_sequence_window_rule_covers_the_longest_up_to_the_cap():
    assert sequence_window_rule([20, 37, 30]) == 37  # the longest, not a quartile's power of two
    assert sequence_window_rule([20, 100, 30]) == 64  # capped
    assert resolve_windows(0, 0, 0, [20, 37], level="sequence") == (37, 18, 9)
    assert resolve_windows(0, 0, 0, [20, 37]) == (16, 8, 4)  # frame level: as it was


def test_windows_of_a_sequence_carry_its_label():
    vids = [seq("a", 10, [0.1]), seq("b", 4, [-5.0])]
    w = make_windows(vids, ("visual",), length=8, hop=2, level="sequence")
    assert w.level == "sequence" and w.labels.shape == (len(w), 1, 1) and w.valid.shape == (len(w), 1)
    assert w.video.tolist() == [0, 0, 1] and w.start.tolist() == [0, 2, 0]
    assert w.labels[:, 0, 0].tolist() == pytest.approx([0.1, 0.1, -5.0])
    assert w.valid[:, 0].tolist() == [True, True, False]
    assert w.present[2].tolist() == [True] * 4 + [False] * 4


# -- the head: pooling over valid frames only ---------------------------------------------------
def _identity_head(pooling):
    head = SequenceHead(1, 1, pooling=pooling)
    with torch.no_grad():
        head.head.net.weight.fill_(1.0)
        head.head.net.bias.zero_()
    return head


def test_mean_pooling_leaves_out_frames_not_valid():
    head = _identity_head("mean")
    x = torch.tensor([[[0.2], [0.4], [50.0]]])  # the last frame is padding
    valid = torch.tensor([[True, True, False]])
    out = head(x, valid)
    assert out.shape == (1, 1, 1)
    assert float(out) == pytest.approx(np.tanh(0.3))  # (0.2 + 0.4) / 2, not (50.6) / 3
    assert float(head(x)) == pytest.approx(np.tanh(50.6 / 3))  # None: every frame


def test_attention_pooling_weights_only_valid_frames():
    head = _identity_head("attention")
    with torch.no_grad():  # scores s_t = x_t (W = 1, b = 0, w = 1 after the tanh: s = tanh x)
        head.score[0].weight.fill_(1.0)
        head.score[0].bias.zero_()
        head.score[2].weight.fill_(1.0)
        head.score[2].bias.zero_()
    x = torch.tensor([[[0.0], [1.0], [9.0]]])
    valid = torch.tensor([[True, True, False]])
    # α = softmax(tanh 0, tanh 1) over the two valid frames; p = α₂ · 1
    a2 = np.exp(np.tanh(1.0)) / (np.exp(0.0) + np.exp(np.tanh(1.0)))
    assert float(head(x, valid)) == pytest.approx(np.tanh(a2), abs=1e-6)
    nothing = torch.zeros(1, 3, dtype=torch.bool)
    assert float(head(x, nothing)) == pytest.approx(0.0)  # no valid frame: no NaN


def test_label_range_maps_the_head_onto_it():
    head = SequenceHead(1, 1, label_range=(-3.0, 3.0))
    with torch.no_grad():
        head.head.net.weight.fill_(1.0)
        head.head.net.bias.zero_()
    assert float(head(torch.tensor([[[0.5]]]))) == pytest.approx(3 * np.tanh(0.5))


# -- prediction: windows averaged into the sequence, weighted by valid frames --------------------
class FirstFrame(nn.Module):
    """A stub model: each window's prediction is its first frame's visual feature (its start)."""

    def forward(self, feats, masks, present=None):
        return feats["visual"][:, :1, :1]


def test_window_predictions_average_weighted_by_valid_frames():
    # 80 frames, windows of 64 every 16: starts 0 and 16. Visual present on frames 0-19 and
    # 70-79 only: window 0 (frames 0-63) sees 20 frames, window 1 (16-79) sees 4 + 10 = 14.
    mask = np.zeros(80, bool)
    mask[:20] = mask[70:] = True
    v = seq("a", 80, [0.0], d=1, mask=mask)
    w = make_windows([v], ("visual",), 64, 16, level="sequence")
    assert w.start.tolist() == [0, 16]
    (out,) = predict(FirstFrame(), w, [v], "cpu")
    assert out.shape == (1, 1)
    # (20 · 0 + 14 · 16) / 34; equal weights would give 8
    assert out[0, 0] == pytest.approx(14 * 16 / 34)


def test_a_sequence_no_window_saw_gets_the_plain_mean():
    v = seq("a", 80, [0.0], d=1, mask=np.zeros(80, bool))
    (out,) = predict(FirstFrame(), make_windows([v], ("visual",), 64, 16, level="sequence"), [v], "cpu")
    assert out[0, 0] == pytest.approx(8.0)


# -- scores and losses over sequences -----------------------------------------------------------
def test_scores_are_over_sequences_not_frames():
    # three sequences of 10, 2 and 2 frames; predictions 0.2, 0.4, -0.1 for labels 0.1, 0.5, -0.3
    vids = [seq("a", 10, [0.1]), seq("b", 2, [0.5]), seq("c", 2, [-0.3])]
    preds = [np.array([[0.2]]), np.array([[0.4]]), np.array([[-0.1]])]
    # by hand: mx = 0.5/3, my = 0.1; s_xy = (0.0333·0 + 0.2333·0.4 + (−0.2667)(−0.4)) / 3 = 0.066667
    # s_x² = (0.0333² + 0.2333² + 0.2667²)/3 = 0.042222, s_y² = (0 + 0.16 + 0.16)/3 = 0.106667,
    # (mx − my)² = 0.004444: CCC = 0.133333 / 0.153333 = 0.869565
    got = score(preds, vids, ("valence",))
    assert got["valence"] == pytest.approx(0.8695652, abs=1e-6)
    # each sequence's label repeated per frame (a frame-weighted score) would give another number
    frames = ccc(np.repeat([0.2, 0.4, -0.1], [10, 2, 2]), np.repeat([0.1, 0.5, -0.3], [10, 2, 2]))
    assert abs(frames - got["valence"]) > 0.01


def test_the_batch_loss_at_sequence_level_is_ccc_over_the_batchs_sequences():
    out = torch.tensor([[[0.2]], [[0.4]], [[-0.1]], [[0.9]]])  # (b, 1, T): one per window
    y = torch.tensor([[[0.1]], [[0.5]], [[-0.3]], [[-5.0]]])
    ok = torch.tensor([[True], [True], [True], [False]])
    loss = ccc_loss(out[..., 0], y[..., 0], ok, per_window=False)
    assert float(loss) == pytest.approx(1 - 0.8695652, abs=1e-5)
    # MSE over the valid ones: (0.01 + 0.01 + 0.04) / 3
    assert float(mse_loss(out, y, ok)) == pytest.approx(0.02, abs=1e-7)


def test_a_window_that_shows_no_frame_is_not_fitted():
    # sequence b's window has its modality missing at every frame: pooled, it is nothing, and
    # the batch loss leaves it out (mse over a and c only: (0.2-0.1)² and (0.9-0.5)², mean 0.085)
    from fusion_bench.config import TrainConfig
    from fusion_bench.train import batch_loss

    videos = [seq("a", 4, [0.1]), seq("b", 4, [0.7], mask=[False] * 4), seq("c", 4, [0.5])]
    w = make_windows(videos, ("visual",), 4, 4, level="sequence")

    class Fixed(nn.Module):  # predicts 0.2, 0.3, 0.9 for the windows in order
        def forward(self, feats, masks, present=None):
            return torch.tensor([[[0.2]], [[0.3]], [[0.9]]])

    cfg = TrainConfig(loss="mse")
    loss = batch_loss(Fixed(), w, torch.arange(3), torch.tensor([0]), cfg, 0, 0, torch.device("cpu"))
    assert float(loss) == pytest.approx((0.01 + 0.16) / 2)


# -- the ridge row on each sequence's time-averaged features ------------------------------------
def test_sequence_means_average_over_the_frames_a_modality_is_present():
    x = np.array([[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], np.float32)
    v = Video("a", {"visual": x, "audio": x[:, :1]},
              {"visual": np.array([True, True, False]), "audio": np.zeros(3, bool)},
              np.array([[0.3]], np.float32))
    (m,) = sequence_means([v], ("visual", "audio"))
    assert m.features["visual"].tolist() == [[2.0, 3.0]]  # not (104/3, 106/3)
    assert m.features["audio"].tolist() == [[0.0]] and m.masks["audio"].tolist() == [False]
    assert m.masks["visual"].tolist() == [True] and m.labels.tolist() == [[pytest.approx(0.3)]]


def test_ridge_row_at_sequence_level_reads_the_label_off_the_mean_feature():
    # label = mean feature / 40 exactly; frame-level noise of mean zero around it per frame
    rng = np.random.default_rng(0)

    def make(k, n_seq):
        out = []
        for i in range(n_seq):
            n = int(rng.integers(5, 30))
            level = rng.uniform(-30, 30)
            x = (level + rng.standard_normal((n, 1))).astype(np.float32)
            x -= x.mean() - level  # the mean over frames is exactly the level
            out.append(Video(f"{k}{i}", {"visual": x}, {"visual": np.ones(n, bool)},
                             np.array([[level / 40]], np.float32)))
        return out

    splits = {"train": make("tr", 40), "val": make("va", 15), "test": make("te", 15)}
    base = ridge_baseline(splits, ("visual",), targets=("sentiment",), level="sequence")
    assert base["inputs"] == "sequence means" and base["train_frames"] == 40  # sequences
    assert base["metrics"]["test"]["sentiment"] == pytest.approx(1.0, abs=1e-4)
