"""Hostile inputs that scripts/fault_probe.py found leaking a traceback, exiting 0 having done
nothing, or failing only after training (issue 16 item 8): each is one line with exit 2, found
before any training, or works."""

from __future__ import annotations

import re

import numpy as np
import pytest

from .test_run_checks import TINY_DATA


def errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("Error:")]


# -- the synthetic generator on videos shorter than its lags ---------------------------------------
def test_lag_keeps_the_length_also_when_the_video_is_shorter_than_the_lag():
    from fusion_bench.data.synthetic import _lag

    x = np.arange(5.0)[:, None]
    np.testing.assert_array_equal(_lag(x, 2)[:, 0], [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(_lag(x[:3], 4)[:, 0], [0, 0, 0])  # was 4 rows: 1 too many
    np.testing.assert_array_equal(_lag(x[:2], 2)[:, 0], [0, 0])
    assert _lag(x, 0) is x


@pytest.mark.parametrize("n", [1, 2, 3])
def test_synthetic_videos_of_one_to_three_frames_are_made(n):
    from fusion_bench.data.synthetic import SyntheticConfig, SyntheticDataset

    ds = SyntheticDataset(SyntheticConfig(n_train=2, n_val=1, n_test=1, min_frames=n, max_frames=n))
    for videos in ds.splits().values():
        for v in videos:
            v.validate(ds.dims)  # was: a broadcast error (n < the audio lag of 4 frames)
            assert v.n_frames == n and all(x.shape[0] == n for x in v.features.values())


# -- a split without one labelled frame: found before training ------------------------------------
def _features_folder(root, unlabelled_split):
    from fusion_bench.data import INVALID_LABEL
    from fusion_bench.data.features import write_splits, write_video
    from fusion_bench.data.synthetic import SyntheticConfig, SyntheticDataset

    splits = SyntheticDataset(SyntheticConfig(n_train=4, n_val=2, n_test=2, min_frames=100,
                                              max_frames=120), ("visual", "audio")).splits()
    for split, videos in splits.items():
        for v in videos:
            if split == unlabelled_split:
                v.labels[:] = INVALID_LABEL
                v.labels[3, 0] = 0.5  # half a label: one target only is still no valid frame
            write_video(root, v)
    write_splits(root, {s: [v.name for v in vs] for s, vs in splits.items()})


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_a_split_without_a_labelled_frame_is_one_line_before_training(cli_run, tmp_path,
                                                                     monkeypatch, split):
    from fusion_bench import runs

    _features_folder(tmp_path / "feats", split)
    monkeypatch.setattr(runs, "fit_targets", lambda *a, **k: pytest.fail("trained before the check"))
    code, _, err = cli_run("run", "--root", tmp_path / "feats", "--out", tmp_path / "r", "--quiet")
    assert code == 2, err
    (line,) = errors(err)
    assert f"no frame of the {split!r} split has a label for every target" in line


def test_a_split_with_one_labelled_frame_is_trained(tmp_path):
    """The check must not refuse what can be scored: one valid frame in each split is enough."""
    from fusion_bench.config import build_config
    from fusion_bench.plugins import load_registry
    from fusion_bench.runs import load_dataset

    _features_folder(tmp_path / "feats", None)
    cfg = build_config("quick", None, [("data.root", str(tmp_path / "feats"))])
    _, splits = load_dataset(load_registry(()), cfg)
    assert all(any(v.valid.any() for v in vs) for vs in splits.values())


# -- a fusion named for a run of one modality: accepted, unused, with a note ----------------------
def _notes(recwarn):
    from fusion_bench.errors import Note

    return [str(w.message) for w in recwarn if issubclass(w.category, Note)]


def test_a_fusion_given_for_one_modality_is_noted_and_left_out_of_the_identity(recwarn):
    from fusion_bench.config import build_config

    plain = build_config("quick", None, [("data.modalities", "visual")])
    assert _notes(recwarn) == []  # the default fusion, not given: nothing to say
    named = build_config("quick", None, [("data.modalities", "visual"), ("model.fusion", "rcma"),
                                         ("fusion.rcma.iterations", "3")])
    (note,) = _notes(recwarn)
    assert note.startswith("a run of one modality (visual) has no fusion: model.fusion 'rcma', "
                           "fusion.rcma.iterations not used")
    assert named.hash(None) == plain.hash(None) and named.used() == plain.used()
    build_config("quick", None, [("data.modalities", "visual,audio"), ("model.fusion", "rcma")])
    assert len(_notes(recwarn)) == 1  # two modalities: the fusion is used, no note


def test_run_with_one_modality_and_a_fusion_prints_one_note_and_trains(cli_run, tmp_path):
    code, out, err = cli_run("run", "--modalities", "visual", "--fusion", "rcma", "--out", tmp_path,
                             *TINY_DATA)
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "model.fusion 'rcma' not used" in notes[0], err
    assert "only-visual" in out and "Traceback" not in err


# -- extract: options checked by click ------------------------------------------------------------
@pytest.mark.parametrize("workers", ["0", "-1"])
def test_extract_workers_below_one_is_one_line(cli_run, tmp_path, workers):
    code, _, err = cli_run("extract", "--root", tmp_path, "--backbone", "visual=timm",
                           "--workers", workers)
    assert code == 2 and "--workers" in errors(err)[0] and "Traceback" not in err


# -- manifest.json: read when the folder is opened, not after training ----------------------------
@pytest.mark.parametrize("content,message", [
    (b"{oops", "manifest.json: not valid JSON"),
    (b"[1, 2]", "manifest.json: expected a JSON object, got a list"),
    (b'{"a": "\xff"}', "manifest.json: not valid JSON"),
])
def test_a_bad_manifest_is_one_line_before_training(cli_run, tmp_path, monkeypatch, content,
                                                   message):
    from fusion_bench import runs

    _features_folder(tmp_path / "feats", None)
    (tmp_path / "feats" / "manifest.json").write_bytes(content)
    monkeypatch.setattr(runs, "fit_targets", lambda *a, **k: pytest.fail("trained before the check"))
    code, _, err = cli_run("run", "--root", tmp_path / "feats", "--out", tmp_path / "r", "--quiet")
    assert code == 2 and message in errors(err)[0], err


# -- numbers: finite where infinity would make NaN weights; folds only where there are folds ------
@pytest.mark.parametrize("key", ["train.weight_decay", "train.max_grad_norm", "train.min_lr"])
@pytest.mark.parametrize("value", ["inf", "1e400"])
def test_an_infinite_value_is_refused_naming_the_key(key, value):
    from fusion_bench.config import build_config
    from fusion_bench.errors import ConfigError

    over = [(key, value)] + ([("train.lr", "1e400")] if key == "train.min_lr" else [])
    with pytest.raises(ConfigError, match=f"{key} must be a finite number, got inf"
                       if key != "train.min_lr" else "train.lr must be positive, got inf"):
        build_config("quick", None, over)
    build_config("quick", None, [(key, "1e-3")])  # a finite value is fine


def test_a_fold_of_a_dataset_without_folds_is_one_line(cli_run, tmp_path, monkeypatch):
    from fusion_bench import runs

    monkeypatch.setattr(runs, "run", lambda *a, **k: pytest.fail("ran before the check"))
    code, _, err = cli_run("run", "--set", "data.fold=1", "--out", tmp_path, *TINY_DATA)
    assert code == 2
    assert errors(err) == ["Error: data.fold is 1, but dataset 'synthetic' has no cross-validation "
                           "folds; leave data.fold at 0"]


def test_affwild2_names_its_folds():
    from fusion_bench.config import build_config
    from fusion_bench.errors import ConfigError
    from fusion_bench.options import check
    from fusion_bench.plugins import load_registry

    reg = load_registry(())
    over = [("data.name", "affwild2"), ("data.root", "R")]
    check(build_config("quick", None, [*over, ("data.fold", "5")]), reg)  # the last fold
    with pytest.raises(ConfigError, match=r"dataset 'affwild2' has folds 0\.\.5"):
        check(build_config("quick", None, [*over, ("data.fold", "6")]), reg)


def test_sweep_seeds_has_an_upper_bound(cli_run, tmp_path):
    code, _, err = cli_run("sweep", "--fusion", "concat", "--seeds", str(10**9), "--out", tmp_path)
    assert code == 2 and "'--seeds': 1000000000 is not in the range 1<=x<=10000" in errors(err)[0]


# -- the CLI's last net: out of memory is a setting too large; anything else a bug, one line ------
@pytest.mark.parametrize("exc,code,message", [
    (MemoryError(), 2, "Error: out of memory (MemoryError: ); lower what made the work this large"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate "
                  "memory: you tried to allocate 3840000000000 bytes"), 2, "Error: out of memory"),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), 2, "Error: out of memory"),
    (TypeError("unsupported operand\nsecond line"), 1,
     "Error: unexpected TypeError: unsupported operand (a bug in fusion-bench or a plugin: run "
     "again with --debug for the traceback, and report it)"),
])
def test_an_exception_no_check_foresaw_is_one_line(cli_run, tmp_path, monkeypatch, exc, code,
                                                   message):
    from fusion_bench import runs

    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(runs, "run_and_store", boom)
    got, _, err = cli_run("run", "--out", tmp_path, *TINY_DATA)
    assert got == code and "Traceback" not in err
    (line,) = errors(err)
    assert line.startswith(message), line
    with pytest.raises(type(exc)):  # --debug: the traceback, as Python shows it
        cli_run("--debug", "run", "--out", tmp_path, *TINY_DATA)


# -- plugins that would load and do nothing --------------------------------------------------------
def test_a_plugin_with_no_hook_is_a_failed_plugin_not_a_silent_one(cli_run, tmp_path,
                                                                    monkeypatch):
    folder = tmp_path / "myplugins"
    folder.mkdir()
    (tmp_path / "nohooks.py").write_text("def register_fusions(register):\n    pass\n")
    monkeypatch.chdir(tmp_path)  # `--plugin myplugins` imports the folder as a namespace package
    monkeypatch.syspath_prepend(str(tmp_path))
    for spec, name in (("myplugins", "myplugins"), (str(tmp_path / "nohooks.py"), "nohooks")):
        code, out, err = cli_run("--plugin", spec, "list", "fusions")
        assert code == 0 and "concat" in out
        assert (f"warning: plugin {name!r} skipped: --plugin {spec} has no function marked "
                "@fusion_bench.hookimpl") in err, err
        code, _, err = cli_run("--strict-plugins", "--plugin", spec, "list", "fusions")
        assert code == 2 and "has no function marked @fusion_bench.hookimpl" in errors(err)[0]


def test_a_toml_file_with_a_byte_order_mark_is_read(tmp_path):
    from fusion_bench.config import build_config

    toml = tmp_path / "c.toml"
    toml.write_bytes(b"\xef\xbb\xbfseed = 7\n[train]\nlr = 0.01\n")  # as Windows Notepad saves
    cfg = build_config("quick", str(toml))
    assert cfg.seed == 7 and cfg.train.lr == 0.01


def test_a_config_that_is_a_device_or_a_pipe_is_one_line(tmp_path):
    """A pipe (``--config <(...)``) reads once, and a sweep reads its file for every run."""
    from fusion_bench.config import build_config
    from fusion_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="'/dev/null' is not a regular file"):
        build_config("quick", "/dev/null")


# -- features folders: a video without frames, a mask that is no mask ----------------------------
def _one_video_folder(root, n=5, mask=None):
    from fusion_bench.data.features import write_splits

    (root / "features" / "visual").mkdir(parents=True)
    (root / "labels").mkdir()
    for v in ("a", "b", "c"):
        np.save(root / "features" / "visual" / f"{v}.npy", np.zeros((n, 2), np.float32))
        (root / "labels" / f"{v}.csv").write_text("valence,arousal\n" + "0.1,0.2\n" * n)
    if mask is not None:
        (root / "masks" / "visual").mkdir(parents=True)
        np.save(root / "masks" / "visual" / "a.npy", mask)
    write_splits(root, {"train": ["a"], "val": ["b"], "test": ["c"]})


def test_a_video_of_zero_frames_is_one_line_naming_its_labels(tmp_path):
    from fusion_bench.data.features import load_video
    from fusion_bench.errors import DataError

    _one_video_folder(tmp_path, n=0)
    with pytest.raises(DataError, match=r"labels/a.csv: no frames \(a header and no line\)"):
        load_video(tmp_path, "a", ("visual",))


@pytest.mark.parametrize("mask,ok", [
    (np.array([1, 0, 1, 1, 0], np.float32), True), (np.array([1, 0, 1, 1, 0], np.int8), True),
    (np.array([True, False, True, True, False]), True),
    (np.array([1, 0.5, 1, 1, 0]), False), (np.array([1, 2, 1, 1, 0]), False),
    (np.array(["1", "0", "1", "1", "0"]), False),
])
def test_a_mask_must_be_true_false_or_0_1(tmp_path, mask, ok):
    from fusion_bench.data.features import load_video
    from fusion_bench.errors import DataError

    _one_video_folder(tmp_path, mask=mask)
    if ok:
        got = load_video(tmp_path, "a", ("visual",)).masks["visual"]
        np.testing.assert_array_equal(got, [True, False, True, True, False])
    else:
        with pytest.raises(DataError, match=r"masks/visual/a.npy: (mask values must be True/False "
                                            r"or 0/1; got (0.5|2)|values of type <U1)"):
            load_video(tmp_path, "a", ("visual",))


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0, 0.0])
def test_peak_tflops_must_be_a_finite_positive_number(value):
    from fusion_bench.bench.settings import BenchSettings
    from fusion_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="--peak-tflops must be a positive number"):
        BenchSettings(peak_tflops=value)  # inf: a share of 0 % stored as if measured
    assert BenchSettings(peak_tflops=989.0).peak_tflops == 989.0


@pytest.mark.parametrize("key", ["noise", "label_noise", "offset", "sync_strength"])
def test_synthetic_knobs_must_be_finite(key):
    from fusion_bench.data.synthetic import SyntheticConfig
    from fusion_bench.errors import ConfigError

    with pytest.raises(ConfigError, match=f"dataset.synthetic.{key} must be a finite number"):
        SyntheticConfig(**{key: float("inf")}).check()


# -- output folders given to leaderboard --plots and predict --predictions: checked before any work
def test_leaderboard_plots_into_a_file_is_one_line(cli_run, tmp_path):
    pytest.importorskip("matplotlib")
    from pathlib import Path

    a_file = tmp_path / "plots"
    a_file.write_text("x")
    committed = Path(__file__).resolve().parent.parent / "leaderboards" / "synthetic-cpu"
    code, out, err = cli_run("leaderboard", "--out", committed, "--plots", a_file)
    assert code == 2 and a_file.read_text() == "x" and "##" not in out  # no table printed first
    assert errors(err) == [f"Error: plots folder '{a_file}' is a file, not a folder; give --plots "
                           "a folder you can write to"]


@pytest.mark.parametrize("args,message", [
    (["--predictions", "FILE"], "predictions folder 'FILE' is a file, not a folder; give "
                                "--predictions"),
    (["--predictions", "DIR", "--device", "nope"], "unknown device 'nope'"),
])
def test_predict_checks_its_output_and_device_before_reading_the_model(cli_run, tmp_path,
                                                                       monkeypatch, args, message):
    from fusion_bench import artifacts

    monkeypatch.setattr(artifacts, "load_model", lambda *a, **k: pytest.fail("read the model"))
    (tmp_path / "FILE").write_text("x")
    args = [str(tmp_path / a) if a in ("FILE", "DIR") else a for a in args]
    code, _, err = cli_run("predict", "--run", "r", "--out", tmp_path, "--root", tmp_path, *args)
    assert code == 2 and message.replace("FILE", str(tmp_path / "FILE")) in errors(err)[0], err


def test_weights_that_are_garbage_are_one_line_naming_the_file(cli_run, tmp_path):
    from fusion_bench.artifacts import load_model
    from fusion_bench.errors import DataError

    from .test_artifacts import run_one

    out, rec = run_one(cli_run, tmp_path)
    (rel,) = rec["artifacts"]["models"].values()
    (out / rel).write_bytes(b"junk")  # torch.load raised struct.error: not in the list caught
    with pytest.raises(DataError, match=re.escape(f"{rel}: not the weights of run")):
        load_model(rec["run_id"], out)


# -- extract: what no backbone may be trusted to check ---------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["--device", "nope"], "unknown device 'nope'"),
    (["--weights", "visual=WEIGHTS"], "--weights visual=WEIGHTS: WEIGHTS does not exist"),
])
def test_extract_checks_device_and_weights_whatever_the_backbone(cli_run, tmp_path, args, message):
    args = [a.replace("WEIGHTS", str(tmp_path / "w.pt")) for a in args]
    code, _, err = cli_run("extract", "--root", tmp_path, "--backbone", "visual=timm", *args)
    assert code == 2 and message.replace("WEIGHTS", str(tmp_path / "w.pt")) in errors(err)[0], err


def test_a_prediction_of_nan_names_the_learning_rate_a_target_of_nan_the_labels():
    from fusion_bench.errors import DataError
    from fusion_bench.metrics import ccc

    with pytest.raises(DataError, match=r"CCC: the prediction contains NaN or inf; a training "
                                        r"that diverged \(lower train.lr\)"):
        ccc([0.1, float("inf")], [0.2, 0.3])
    with pytest.raises(DataError, match="CCC: the target contains NaN or inf; check the labels"):
        ccc([0.1, 0.2], [0.2, float("nan")])


@pytest.mark.parametrize("name", ["../../elsewhere", "sub/v", "", ".."])
def test_a_split_file_naming_a_path_not_a_video_is_refused(tmp_path, name):
    """A name is a file stem: ``features/<m>/<name>.npy`` must not lead out of the folder."""
    import json

    from fusion_bench.data.features import read_splits
    from fusion_bench.errors import DataError

    (tmp_path / "splits.json").write_text(json.dumps({"train": ["a", name], "val": ["b"],
                                                      "test": ["c"]}))
    with pytest.raises(DataError, match=f"video name {re.escape(repr(name))} in train is not a "
                                        "file name"):
        read_splits(tmp_path)


@pytest.mark.parametrize("fname,content,message", [
    ("splits.csv", b"video,split\nv\xff,train\n", "splits.csv: cannot be read: 'utf-8' codec"),
    ("splits.json", b'{"train": ["\xff"]}', "splits.json: not valid JSON: 'utf-8' codec"),
])
def test_a_split_file_that_is_not_utf8_is_one_line(tmp_path, fname, content, message):
    from fusion_bench.data.features import read_splits
    from fusion_bench.errors import DataError

    (tmp_path / fname).write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_splits(tmp_path)


def test_a_modality_of_zero_features_per_frame_is_refused(tmp_path):
    from fusion_bench.data.features import FeaturesDataset
    from fusion_bench.errors import DataError

    _one_video_folder(tmp_path)
    for v in ("a", "b", "c"):
        np.save(tmp_path / "features" / "visual" / f"{v}.npy", np.zeros((5, 0), np.float32))
    with pytest.raises(DataError, match=r"a.npy: shape \(5, 0\), no feature per frame"):
        FeaturesDataset(tmp_path)


# -- submit --csv: checked before training -----------------------------------------------------------
@pytest.mark.parametrize("csv,message", [
    ("DIR", "--csv DIR is a folder; give a file name, e.g. DIR/submission.csv"),
    ("FILE/s.csv", "folder of the CSV 'FILE' is a file, not a folder; give --csv a file in a "
                   "folder you can write to"),
])
def test_submit_checks_its_csv_before_training(cli_run, tmp_path, monkeypatch, csv, message):
    from fusion_bench import submission

    monkeypatch.setattr(submission, "train_and_predict", lambda *a, **k: pytest.fail("trained"))
    (tmp_path / "DIR").mkdir()
    (tmp_path / "FILE").write_text("x")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli_run("submit", "--root", tmp_path, "--csv", csv)
    assert code == 2 and errors(err) == [f"Error: {message}"], err


def test_extract_into_a_mount_point_is_refused_before_any_work(tmp_path, monkeypatch):
    """A volume's root cannot be renamed, so the cache built beside it could never be swapped
    in: said at once, not after the whole extraction."""
    import os

    from fusion_bench.data.cache import extract
    from fusion_bench.errors import DataError

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    real = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: str(p) == str(mnt) or real(p))
    with pytest.raises(DataError, match=f"{mnt} is a mount point.*--cache {mnt}/fusion_bench_cache"):
        extract([], lambda e, m: pytest.fail("loaded media"), {}, mnt, "src", "toy", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnt"]  # no lock, no partial folder
