"""The csd reader on computational sequences written here as the SDK's write_CSD writes them,
with frame times chosen so that each segment's frames are known by hand."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from fusion_bench.data.csd import CSDDataset, CSDOptions
from fusion_bench.errors import ConfigError, DataError, Note

h5py = pytest.importorskip("h5py")


def write_csd(path, data: dict, root_name: str = "seq", metadata: dict | None = None) -> None:
    """The SDK's layout: <root>/data/<vid>/{features,intervals}, <root>/metadata/<key> holding
    one variable-length string, json.dumps(value)."""
    with h5py.File(path, "w") as f:
        root = f.create_group(root_name)
        d = root.create_group("data")
        for vid, (intervals, features) in data.items():
            g = d.create_group(vid)
            g.create_dataset("features", data=features, compression="gzip", compression_opts=9)
            g.create_dataset("intervals", data=intervals)
        meta = root.create_group("metadata")
        for k, v in {"root name": root_name, **(metadata or {})}.items():
            ds = meta.create_dataset(k, (1,), dtype=h5py.special_dtype(vlen=str))
            ds[0] = json.dumps(v)


def _frames(step: float, end: float, dim: int, offset: float = 0.0):
    starts = np.arange(0, end, step)
    t = np.stack([starts, starts + step], axis=1)
    x = (offset + np.arange(len(starts)))[:, None] * np.ones((1, dim))
    return t, x.astype(np.float32)


def _folder(tmp_path, videos=("a", "b", "c"), labels_meta=None, label_rows=None):
    """audio every 0.5 s (feature = frame index), visual every 1 s (index + 100), text: two
    words per 2 s segment at [0, 0.6] and [0.6, 2]; labels: two segments [0, 2], [2, 4]."""
    audio, visual, text, labels = {}, {}, {}, {}
    for vid in videos:
        audio[vid] = _frames(0.5, 4, 2)
        visual[vid] = _frames(1.0, 4, 3, offset=100)
        w = np.array([[0, 0.6], [0.6, 2.0], [2.0, 2.6], [2.6, 4.0]])
        text[vid] = (w, np.arange(4, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32) + 10)
        labels[vid] = (np.array([[0.0, 2.0], [2.0, 4.0]]),
                       np.array(label_rows if label_rows is not None else [[1.5], [-2.0]], np.float32))
    write_csd(tmp_path / "audio.csd", audio, "COVAREP")
    write_csd(tmp_path / "visual.csd", visual, "FACET")
    write_csd(tmp_path / "text.csd", text, "glove_vectors")
    write_csd(tmp_path / "labels.csd", labels, "Opinion Segment Labels", labels_meta)
    (tmp_path / "splits.json").write_text(json.dumps(
        {"train": [videos[0]], "valid": [videos[1]], "test": list(videos[2:])}))
    return tmp_path


def test_segments_collect_each_modalitys_frames(tmp_path):
    ds = CSDDataset(_folder(tmp_path))
    assert ds.label_level == "sequence" and ds.targets == ("sentiment",)
    assert ds.dims == {"visual": 3, "audio": 2, "text": 4}
    s0, s1 = ds.splits()["train"]
    assert (s0.name, s1.name) == ("a[0]", "a[1]")
    # segment [0, 2]: audio frames 0-3 (the one starting at 2.0 only touches it), visual 0-1
    assert s0.features["audio"][:, 0].tolist() == [0, 1, 2, 3]
    assert s0.masks["visual"].tolist() == [True, True, False, False]
    assert s0.features["visual"][:, 0].tolist() == [100, 101, 0, 0]
    assert s1.features["audio"][:, 0].tolist() == [4, 5, 6, 7]
    assert s0.labels.tolist() == [[1.5]] and s1.labels.tolist() == [[-2.0]]
    assert s0.labels.dtype == np.float32 and s0.meta == {"video": "a", "interval": [0.0, 2.0]}


def test_a_frame_across_a_boundary_belongs_to_both_segments(tmp_path):
    _folder(tmp_path)
    t = np.array([[0.0, 1.0], [1.5, 2.5], [3.0, 4.0]])
    write_csd(tmp_path / "visual.csd", {v: (t, np.array([[1.0] * 3, [2.0] * 3, [3.0] * 3], np.float32))
                                        for v in "abc"})
    s0, s1 = CSDDataset(tmp_path).splits()["val"]
    assert s0.features["visual"][:2, 0].tolist() == [1, 2] and s1.features["visual"][:2, 0].tolist() == [2, 3]


def test_align_to_words_averages_the_other_modalities(tmp_path):
    ds = CSDDataset(_folder(tmp_path), CSDOptions(align_to="text"))
    s0 = ds.splits()["test"][0]
    assert s0.features["text"][:, 0].tolist() == [10, 11]  # two words: two steps
    # word [0, 0.6]: audio frames [0, .5] and [.5, 1] -> mean 0.5; word [0.6, 2]: frames 1-3 -> 2
    assert s0.features["audio"][:, 0].tolist() == [0.5, 2.0]
    # visual: [0, 1] alone, then [0, 1] and [1, 2] -> 100, 100.5
    assert s0.features["visual"][:, 0].tolist() == [100, 100.5]
    assert all(k.all() for k in s0.masks.values())
    with pytest.raises(ConfigError, match="align_to='face' is not one of the run's modalities"):
        CSDDataset(tmp_path, CSDOptions(align_to="face"))


def test_missing_frames_are_masked_and_empty_segments_left_out(tmp_path):
    _folder(tmp_path)
    labels = {v: (np.array([[0.0, 2.0], [2.0, 4.0], [5.0, 5.0], [6.0, 7.0]]),
                  np.array([[1.0], [2.0], [0.0], [0.5]], np.float32)) for v in "abc"}
    write_csd(tmp_path / "labels.csd", labels)
    t, x = _frames(0.5, 2, 2)  # audio only in the first segment
    write_csd(tmp_path / "audio.csd", {v: (t, x) for v in "abc"})
    with pytest.warns(Note, match=r"2 train segment\(s\) of zero length or without a frame"):
        ds = CSDDataset(tmp_path)
    s0, s1 = ds.splits()["train"]  # [5, 5] (zero length) and [6, 7] (no frame) are left out
    assert s1.masks["audio"].tolist() == [False, False] and s1.masks["visual"].all()
    assert (s1.features["audio"] == 0).all()


def test_targets_from_dimension_names_and_options(tmp_path):
    meta = {"dimension names": ["sentiment", "happy", "sad"]}
    _folder(tmp_path, labels_meta=meta, label_rows=[[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]])
    assert CSDDataset(tmp_path).targets == ("sentiment", "happy", "sad")
    ds = CSDDataset(tmp_path, CSDOptions(targets=("sad", "sentiment"), label_range=(-3.0, 3.0)))
    assert ds.targets == ("sad", "sentiment")
    assert ds.splits()["train"][0].labels.tolist() == [[0.5, 1.0]]
    with pytest.raises(ConfigError, match=r"'anger' is not a column of .*labels.csd \(its dimension "
                                          r"names: sentiment, happy, sad\)"):
        CSDDataset(tmp_path, CSDOptions(targets=("anger",)))
    _folder(tmp_path, label_rows=[[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]])  # no names
    with pytest.raises(ConfigError, match="3 label columns and no dimension names; name them"):
        CSDDataset(tmp_path)
    assert CSDDataset(tmp_path, CSDOptions(targets=("v", "a", "d"))).targets == ("v", "a", "d")


@pytest.mark.parametrize("row, message", [
    ([np.nan], r"video 'b', segment 1: label \[nan\] is NaN or outside \[-3, 3\]"),
    ([3.5], r"video 'b', segment 1: label \[3.5\] is NaN or outside \[-3, 3\]; set dataset.csd.label_range"),
])
def test_bad_labels_are_refused_naming_video_and_segment(tmp_path, row, message):
    _folder(tmp_path)
    labels = {v: (np.array([[0.0, 2.0], [2.0, 4.0]]), np.array([[1.0], row], np.float32)) for v in "bc"}
    labels["a"] = (np.array([[0.0, 2.0]]), np.array([[1.0]], np.float32))
    write_csd(tmp_path / "labels.csd", labels)
    with pytest.raises(DataError, match=message):
        CSDDataset(tmp_path)


def test_splits_file(tmp_path):
    _folder(tmp_path, videos=("a", "b", "c", "d"))
    (tmp_path / "splits.json").unlink()
    with pytest.raises(DataError, match=r"splits.json: no split file; write the video ids of each "
                                        r"split as JSON"):
        CSDDataset(tmp_path)
    (tmp_path / "folds.json").write_text(json.dumps({"train": ["a", "zz"], "val": ["b"], "test": ["c", "d"]}))
    with pytest.warns(Note, match=r"1 train video\(s\) absent from the labels or a modality's file "
                                  r"left out \(first: 'zz'\)"):
        ds = CSDDataset(tmp_path, CSDOptions(splits="folds.json"))
    assert [v.name for v in ds.splits()["test"]] == ["c[0]", "c[1]", "d[0]", "d[1]"]
    assert ds.info()["left_out"] == {"train": 1}
    (tmp_path / "folds.json").write_text(json.dumps({"train": ["a"], "valid": ["b"], "test": ["a"]}))
    with pytest.raises(DataError, match="video 'a' is in train and in test"):
        CSDDataset(tmp_path, CSDOptions(splits="folds.json"))
    (tmp_path / "folds.json").write_text(json.dumps({"train": ["a"], "test": ["c"]}))
    with pytest.raises(DataError, match="no 'val' or 'valid' list"):
        CSDDataset(tmp_path, CSDOptions(splits="folds.json"))
    (tmp_path / "folds.json").write_text(json.dumps({"train": ["a"], "valid": ["zz"], "test": ["c"]}))
    with pytest.raises(DataError, match="split 'val' has no segment with data"), pytest.warns(Note):
        CSDDataset(tmp_path, CSDOptions(splits="folds.json"))


@pytest.mark.parametrize("options", [
    CSDOptions(labels="../labels.csd"), CSDOptions(splits="../splits.json"),
    CSDOptions(files={"visual": "../visual.csd"}), CSDOptions(labels="/etc/passwd"),
])
def test_no_path_outside_the_folder(tmp_path, options):
    (tmp_path / "inner").mkdir()
    _folder(tmp_path / "inner")
    for name in ("labels.csd", "splits.json", "visual.csd"):
        (tmp_path / name).write_bytes((tmp_path / "inner" / name).read_bytes())
    with pytest.raises(ConfigError, match=r"name a file inside .*inner \(no folder outside it, no '..'\)"):
        CSDDataset(tmp_path / "inner", options)


def test_files_option_maps_modalities_and_names_the_missing_one(tmp_path):
    _folder(tmp_path)
    (tmp_path / "visual.csd").rename(tmp_path / "CMU_MOSI_Visual_Facet_41.csd")
    with pytest.raises(DataError, match=r"visual.csd: no computational sequence for modality 'visual' "
                                        r"\(the folder has CMU_MOSI_Visual_Facet_41.csd, audio.csd, "
                                        r"labels.csd, text.csd\); name it <modality>.csd, or map it"):
        CSDDataset(tmp_path)
    ds = CSDDataset(tmp_path, CSDOptions(files={"visual": "CMU_MOSI_Visual_Facet_41.csd"}))
    assert ds.info()["files"]["visual"] == "CMU_MOSI_Visual_Facet_41.csd"


def test_bad_sequences_are_one_line(tmp_path):
    _folder(tmp_path)
    (tmp_path / "audio.csd").write_text("not hdf5")
    with pytest.raises(DataError, match="audio.csd: not an HDF5 computational sequence"):
        CSDDataset(tmp_path)
    words = np.array([[b"hello"], [b"world"]])
    write_csd(tmp_path / "audio.csd", {"a": (np.array([[0, 1], [1, 2.0]]), words)})
    with pytest.raises(DataError, match=r"audio.csd, video 'a', features: expected numbers .*words\?"):
        CSDDataset(tmp_path)
    write_csd(tmp_path / "audio.csd", {"a": (np.array([[0, 1.0]]), np.ones((2, 2)))})
    with pytest.raises(DataError, match=r"video 'a', intervals: expected \(2, 2\) start,end"):
        CSDDataset(tmp_path)
    write_csd(tmp_path / "audio.csd", {"a": (np.array([[0, 1.0], [3, 2]]), np.ones((2, 2)))})
    with pytest.raises(DataError, match=r"video 'a', intervals row 1: \[3.0, 2.0\] is not a finite start ≤ end"):
        CSDDataset(tmp_path)
    x = np.ones((8, 2))
    x[1, 1] = np.nan
    write_csd(tmp_path / "audio.csd", {v: (_frames(0.5, 4, 2)[0], x) for v in "abc"})
    with pytest.raises(DataError, match=r"video 'a', frame 1: NaN or infinite feature.*nonfinite=zero"):
        CSDDataset(tmp_path)
    assert CSDDataset(tmp_path, CSDOptions(nonfinite="zero")).splits()["train"][0].features["audio"][1, 1] == 0


def test_without_h5py_the_extra_is_named(tmp_path, monkeypatch):
    _folder(tmp_path)
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    with pytest.raises(ConfigError, match=r'needs h5py: pip install "fusion-bench-affect\[csd\]"'):
        CSDDataset(tmp_path)


def test_info_and_fingerprint(tmp_path):
    _folder(tmp_path)
    ds = CSDDataset(tmp_path)
    info = ds.info()
    assert info["videos"] == {"train": 2, "val": 2, "test": 2} and info["targets"] == ["sentiment"]
    assert len(info["fingerprint"]) == 16
    # a run on a subset of the modalities reads the same data: the same fingerprint
    assert CSDDataset(tmp_path, modalities=("audio", "text")).fingerprint() == ds.fingerprint()
    _folder(tmp_path, label_rows=[[1.0], [-2.0]])
    assert CSDDataset(tmp_path).fingerprint() != ds.fingerprint()


@pytest.mark.parametrize("how", ["external storage", "external link", "virtual"])
def test_a_csd_cannot_make_us_read_a_file_outside_the_folder(tmp_path, how):
    # HDF5 follows external links, external raw storage and virtual sources to any path: a
    # .csd from elsewhere could read a file outside --root that way. Each is refused by name.
    h5py = pytest.importorskip("h5py")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(np.arange(8, dtype="<f8").tobytes())
    with h5py.File(outside / "other.h5", "w") as g:
        g["feat"] = np.full((4, 2), 42.0)
    root = tmp_path / "root"
    root.mkdir()
    from fusion_bench.data.csd import read_csd

    with h5py.File(root / "visual.csd", "w") as f:
        d = f.create_group("seq").create_group("data").create_group("vid1")
        f["seq"].create_group("metadata")
        d["intervals"] = np.array([[0, 1], [1, 2], [2, 3], [3, 4]], float)
        if how == "external storage":
            d.create_dataset("features", shape=(4, 2), dtype="<f8",
                             external=[(str(outside / "secret.bin"), 0, 64)])
        elif how == "external link":
            d["features"] = h5py.ExternalLink(str(outside / "other.h5"), "/feat")
        else:
            layout = h5py.VirtualLayout(shape=(4, 2), dtype="<f8")
            layout[:] = h5py.VirtualSource(str(outside / "other.h5"), "feat", shape=(4, 2))
            d.create_virtual_dataset("features", layout)
    with pytest.raises(DataError, match="'features' is (a link to another file|stored outside)"):
        read_csd(root / "visual.csd")
