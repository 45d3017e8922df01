"""Aff-Wild2's per-video readers that need no media decoder: transcripts and face crops."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusion_bench.data.affwild2 import load_crops, read_transcript
from fusion_bench.errors import DataError


def test_transcript_json_and_csv_give_the_same_words(tmp_path):
    words = [("hello", 0.1, 0.5), ("there", 0.6, 1.0)]
    js = tmp_path / "v.json"
    js.write_text(json.dumps({"words": [{"word": w, "start": s, "end": e} for w, s, e in words]}))
    cs = tmp_path / "v.csv"
    cs.write_text("word,start,end\n" + "".join(f"{w},{s},{e}\n" for w, s, e in words))
    assert read_transcript(js) == read_transcript(cs) == words


def test_transcript_word_that_ends_before_it_starts_is_named(tmp_path):
    p = tmp_path / "v.csv"
    p.write_text("word,start,end\nhello,0.1,0.5\nthere,1.0,0.6\n")
    with pytest.raises(DataError, match=r"word 'there' ends \(0.6\) before it starts \(1.0\)"):
        read_transcript(p)


def test_crops_of_another_size_are_resized_and_missing_frames_masked(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    d = tmp_path / "cropped_aligned" / "vid"
    d.mkdir(parents=True)
    Image.new("RGB", (64, 64), (255, 0, 0)).save(d / "00001.jpg")
    Image.new("RGB", (48, 48), (0, 0, 255)).save(d / "00003.jpg")
    crops, mask = load_crops(tmp_path, "vid", n=4, size=48)
    assert crops is not None and crops.shape == (4, 48, 48, 3) and crops.dtype == np.float32
    assert mask.tolist() == [True, False, True, False]
    assert crops[0, ..., 0].mean() > 0.9 and crops[0, ..., 2].mean() < 0.1  # red, resized
    assert crops[2, ..., 2].mean() > 0.9 and not crops[1].any()


def test_unreadable_crop_is_named(tmp_path):
    pytest.importorskip("PIL.Image")
    d = tmp_path / "cropped_aligned" / "vid"
    d.mkdir(parents=True)
    (d / "00001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="00001.jpg: unreadable image"):
        load_crops(tmp_path, "vid", n=2)
