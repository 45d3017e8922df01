"""The mmsa reader on files written here in MMSA's exact layout, with small arrays whose masks and
labels are worked out by hand."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from fusion_bench.data.mmsa import MMSADataset, MMSAOptions
from fusion_bench.errors import ConfigError, DataError, Note


def _split(n: int, *, aligned: bool, steps=(5, 6, 4), dims=(3, 2, 4), text_len=None,
           a_len=None, v_len=None, labels=None, seed=0) -> dict:
    """One split as MMSA stores it: text (N, L_t, d_t) with text_bert (N, 3, L_t); audio and
    vision zero-padded at the end; *_lengths only in unaligned files."""
    rng = np.random.default_rng(seed)
    lt, la, lv = (steps[0],) * 3 if aligned else steps
    dt, da, dv = dims
    text_len = text_len or [lt] * n
    a_len = (text_len if aligned else [la] * n) if a_len is None else a_len
    v_len = (text_len if aligned else [lv] * n) if v_len is None else v_len

    def padded(length, lens, d):
        x = rng.uniform(0.5, 1.5, (n, length, d)).astype(np.float32)  # never 0: padding is
        for i, k in enumerate(lens):
            x[i, k:] = 0
        return x

    tb = np.zeros((n, 3, lt), np.int64)
    for i, k in enumerate(text_len):
        tb[i, 0, :k] = 101 + np.arange(k)
        tb[i, 1, :k] = 1
    out = {
        "raw_text": np.array([f"words {i}" for i in range(n)]),
        "id": np.array([f"vid{seed}$_${i}" for i in range(n)]),
        "text": padded(lt, text_len, dt), "text_bert": tb.astype(np.float64),
        "audio": padded(la, a_len, da), "vision": padded(lv, v_len, dv),
        "regression_labels": np.asarray(labels if labels is not None else np.linspace(-3, 3, n), np.float32),
        "classification_labels": np.zeros(n),
    }
    if not aligned:
        out["audio_lengths"] = np.asarray(a_len)
        out["vision_lengths"] = list(v_len)  # MMSA-FET stores lists too
    return out


def _file(tmp_path, aligned=True, name="aligned_50.pkl", protocol=pickle.HIGHEST_PROTOCOL, **kw):
    data = {s: _split(3, aligned=aligned, seed=i, **kw) for i, s in enumerate(("train", "valid", "test"))}
    data["config"] = {"audio": {"tool": "librosa"}}  # MMSA-FET adds its config; ignored
    p = tmp_path / name
    p.write_bytes(pickle.dumps(data, protocol=protocol))
    return p, data


def _edit(tmp_path, data, name="x.pkl"):
    p = tmp_path / name
    p.write_bytes(pickle.dumps(data))
    return p


def test_aligned_masks_from_text_bert_and_padding_cut(tmp_path):
    p, data = _file(tmp_path, text_len=[5, 3, 1])
    ds = MMSADataset(p)
    assert ds.label_level == "sequence" and ds.targets == ("sentiment",)
    assert ds.dims == {"visual": 4, "audio": 2, "text": 3} and ds.aligned
    val = ds.splits()["val"]  # MMSA's "valid"
    assert [v.name for v in val] == ["vid1$_$0", "vid1$_$1", "vid1$_$2"]
    v = val[1]  # 3 real tokens of 5: the 2 padded steps are cut
    assert v.features["visual"].shape == (3, 4) and v.masks["audio"].tolist() == [True] * 3
    np.testing.assert_array_equal(v.features["audio"], data["valid"]["audio"][1, :3])
    assert v.labels.shape == (1, 1) and v.labels.dtype == np.float32
    assert v.labels[0, 0] == pytest.approx(0.0)  # linspace(-3, 3, 3)[1]
    assert v.meta["raw_text"] == "words 1"
    assert val[2].features["text"].shape == (1, 3)


def test_unaligned_lengths_become_masks(tmp_path):
    p, data = _file(tmp_path, aligned=False, name="unaligned.pkl", steps=(5, 6, 4),
                    text_len=[3, 5, 2], a_len=[2, 6, 0], v_len=[4, 1, 3])
    ds = MMSADataset(p)
    assert not ds.aligned
    v0, _, v2 = ds.splits()["train"]
    # longest real: vision 4 -> 4 steps; audio real on 2, text on 3
    assert v0.features["audio"].shape == (4, 2)
    assert v0.masks["audio"].tolist() == [True, True, False, False]
    assert v0.masks["text"].tolist() == [True, True, True, False]
    assert v0.masks["visual"].tolist() == [True] * 4
    assert (v0.features["audio"][2:] == 0).all()
    # an utterance whose audio has length 0: audio masked all False, not left out
    assert v2.masks["audio"].tolist() == [False, False, False]
    # vision is 4 steps in the file; the 6-step audio of utterance 1 sets its length to 6
    v1 = ds.splits()["train"][1]
    assert v1.features["visual"].shape == (6, 4)
    assert v1.masks["visual"].tolist() == [True] + [False] * 5


def test_padding_at_the_start(tmp_path):
    data = {s: _split(2, aligned=False, steps=(4, 5, 5), seed=i) for i, s in enumerate(("train", "valid", "test"))}
    tr = data["train"]
    tr["audio"][0] = 0
    tr["audio"][0, 3:] = 7.0  # length 2 of 5, padded at the start: steps 3 and 4 real
    tr["audio_lengths"] = np.array([2, 5])
    tr["vision_lengths"] = np.array([1, 5])
    tr["vision"][0, :4] = 0
    tr["text_bert"][0, 1] = [0, 0, 1, 1]
    p = _edit(tmp_path, data)
    v = MMSADataset(p, MMSAOptions(pad_location="start")).splits()["train"][0]
    # real steps: audio 3,4; vision 4; text (its mask) 2,3; each from step 0, 2 steps long
    assert v.masks["audio"].tolist() == [True, True]
    assert v.masks["visual"].tolist() == [True, False]
    assert v.masks["text"].tolist() == [True, True]
    assert (v.features["audio"] == 7.0).all()
    np.testing.assert_array_equal(v.features["visual"][0], tr["vision"][0, 4])
    assert (v.features["visual"][1] == 0).all()


def test_aligned_without_text_bert_uses_nonzero_rows_of_any_modality(tmp_path):
    data = {s: _split(2, aligned=True, seed=i, text_len=[4, 5]) for i, s in enumerate(("train", "valid", "test"))}
    for d in data.values():
        del d["text_bert"]
    data["train"]["audio"][0, 1] = 0  # a real step whose audio row is all zero: still real
    p = _edit(tmp_path, data)
    v = MMSADataset(p).splits()["train"][0]
    assert v.masks["audio"].tolist() == [True] * 4  # the union over modalities says step 1 is real


def test_audio_minus_inf_is_zero_and_other_nonfinite_values(tmp_path):
    data = {s: _split(2, aligned=True, seed=i, text_len=[3, 5]) for i, s in enumerate(("train", "valid", "test"))}
    data["train"]["audio"][0, 1, 0] = -np.inf  # as MMSA: 0
    data["train"]["vision"][0, 4, 0] = np.nan  # a padded step of utterance 0: ignored
    p = _edit(tmp_path, data)
    v = MMSADataset(p).splits()["train"][0]
    assert v.features["audio"][1, 0] == 0 and np.isfinite(v.features["visual"]).all()
    data["train"]["vision"][1, 2, 1] = np.nan  # a real step
    p = _edit(tmp_path, data)
    with pytest.raises(DataError, match=r"split 'train', key 'vision', utterance 1, step 2: NaN or "
                                        r"infinite feature on a real step.*nonfinite=zero"):
        MMSADataset(p)
    ds = MMSADataset(p, MMSAOptions(nonfinite="zero"))
    assert ds.splits()["train"][1].features["visual"][2, 1] == 0
    assert ds.info()["nonfinite_zeroed"] == 1


def test_sims_label_keys_and_range(tmp_path):
    data = {s: _split(2, aligned=True, seed=i, labels=[-0.5, 1.0]) for i, s in enumerate(("train", "valid", "test"))}
    for d in data.values():
        d["regression_labels_T"] = np.array([[0.2], [-1.0]], np.float32)  # (N, 1) also read
    p = _edit(tmp_path, data)
    ds = MMSADataset(p, MMSAOptions(labels=("regression_labels", "regression_labels_T"),
                                    label_range=(-1.0, 1.0)))
    assert ds.targets == ("sentiment", "sentiment_t")
    assert ds.splits()["test"][0].labels.tolist() == [[-0.5, pytest.approx(0.2)]]
    data["test"]["regression_labels"][1] = 1.5
    p = _edit(tmp_path, data)
    with pytest.raises(DataError, match=r"split 'test', key 'regression_labels', utterance 1: label "
                                        r"1.5, outside \[-1, 1\]; set dataset.mmsa.label_range"):
        MMSADataset(p, MMSAOptions(label_range=(-1.0, 1.0)))
    MMSADataset(p)  # within the default [-3, 3]
    data["test"]["regression_labels"][0] = np.nan
    p = _edit(tmp_path, data)
    with pytest.raises(DataError, match=r"utterance 0: label NaN"):
        MMSADataset(p)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("valid"), r"no 'valid' split \(top-level keys: 'train', 'test', 'config'\)"),
    (lambda d: d["test"].pop("vision"), r"split 'test': no key 'vision'"),
    (lambda d: d["train"].update(audio_lengths=np.array([2, 9, 1])),
     r"key 'audio_lengths', utterance 1: length 9 is not a whole number in 0..6"),
    (lambda d: d["train"].update(audio=d["train"]["audio"][:2]),
     r"key 'audio': 2 utterances but 'regression_labels' has 3"),
    (lambda d: d["valid"].update(text=d["valid"]["text"][:, :, :2]),
     r"key 'text': 2 features per step, but 3 in an earlier split"),
    (lambda d: d["train"].update(text_bert=d["train"]["text_bert"][:, :2]),
     r"key 'text_bert': shape \(3, 2, 5\), expected \(3, 3, 5\)"),
    (lambda d: d["train"].pop("regression_labels"), r"no label key 'regression_labels'"),
    (lambda d: d["train"].update(vision=np.array(["a", "b", "c"])), r"key 'vision': expected a numeric array"),
])
def test_bad_files_are_one_line_naming_split_and_key(tmp_path, edit, message):
    _, data = _file(tmp_path, aligned=False)
    edit(data)
    with pytest.raises(DataError, match=message):
        MMSADataset(_edit(tmp_path, data))


def test_aligned_file_with_unequal_steps_is_refused(tmp_path):
    _, data = _file(tmp_path, aligned=True)
    data["test"]["audio"] = np.ones((3, 7, 2), np.float32)
    with pytest.raises(DataError, match=r"no \*_lengths keys \(an aligned file\), but the modalities "
                                        r"have different step counts"):
        MMSADataset(_edit(tmp_path, data))


def test_utterance_without_any_real_step_is_left_out_with_a_note(tmp_path):
    p, _ = _file(tmp_path, aligned=False, text_len=[3, 5, 2], a_len=[0, 6, 1], v_len=[0, 4, 1])
    data = pickle.loads(p.read_bytes())
    data["valid"]["text_bert"][0, 1] = 0
    with pytest.warns(Note, match=r"split 'valid': 1 utterance\(s\) without a real step"):
        ds = MMSADataset(_edit(tmp_path, data))
    assert [v.meta["index"] for v in ds.splits()["val"]] == [1, 2]
    assert ds.info()["dropped"] == {"valid": 1}


def test_options_and_modalities_are_checked(tmp_path):
    p, _ = _file(tmp_path)
    with pytest.raises(ConfigError, match="text_bert holds BERT's token ids"):
        MMSADataset(p, MMSAOptions(text_key="text_bert"))
    with pytest.raises(ConfigError, match="pad_location must be end or start"):
        MMSAOptions(pad_location="middle").check()
    with pytest.raises(ConfigError, match="label_range must be two finite numbers"):
        MMSAOptions(label_range=(3.0, -3.0)).check()
    with pytest.raises(ConfigError, match="names 1 target"):
        MMSAOptions(targets=("a",), labels=("x", "y")).check()
    with pytest.raises(ConfigError, match=r"has modalities visual, audio, text; got 'face'"):
        MMSADataset(p, modalities=("face", "audio"))
    ds = MMSADataset(p, MMSAOptions(targets=("valence",)), modalities=("audio",))
    assert set(ds.splits()["train"][0].features) == {"audio"} and ds.targets == ("valence",)
    with pytest.raises(DataError, match="is a folder; give the pickled feature file itself"):
        MMSADataset(tmp_path)
    with pytest.raises(ConfigError, match="give --root FILE.pkl"):
        MMSADataset("")


def test_info_and_fingerprint(tmp_path):
    p, data = _file(tmp_path)
    info = MMSADataset(p).info()
    assert info["name"] == "mmsa" and info["videos"] == {"train": 3, "val": 3, "test": 3}
    assert info["steps"]["train"] == 15 and info["label_range"] == [-3.0, 3.0]
    assert len(info["fingerprint"]) == 16
    data["test"]["regression_labels"][0] = 0.25
    other = MMSADataset(_edit(tmp_path, data, "y.pkl")).info()["fingerprint"]
    assert other != info["fingerprint"]
    (tmp_path / "z.pkl").write_bytes(p.read_bytes())  # another name, the same bytes
    assert MMSADataset(tmp_path / "z.pkl").info()["fingerprint"] == info["fingerprint"]


def test_repeated_ids_get_suffixes_that_no_id_has(tmp_path):
    # predictions are keyed by name: ["a", "a", "a#2"] must not give two "a#2"
    p, _ = _file(tmp_path)
    data = pickle.loads(p.read_bytes())
    data["test"]["id"] = np.array(["a", "a", "a#2"])
    names = [v.name for v in MMSADataset(_edit(tmp_path, data)).splits()["test"]]
    assert names == ["a", "a#3", "a#2"]
