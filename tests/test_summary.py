"""The data summary a run prints and records, and the windows it resolves from the data."""

import json

import numpy as np

from fusion_bench.config import build_config
from fusion_bench.data.synthetic import SyntheticDataset
from fusion_bench.data.windows import make_windows, window_starts
from fusion_bench.plugins import load_registry
from fusion_bench.runs import run

from .conftest import tiny_overrides

SHORT = [("dataset.synthetic.min_frames", "10"), ("dataset.synthetic.max_frames", "60"),
         ("dataset.synthetic.n_train", "8")]


def test_the_record_summarises_the_data_and_schedule_by_hand():
    cfg = build_config("quick", None, tiny_overrides() + SHORT + [("train.epochs", "0"),
                                                                   ("train.steps", "4"),
                                                                   ("train.eval_every", "2")])
    splits = SyntheticDataset.from_config(cfg).splits()
    lengths = sorted(v.n_frames for v in splits["train"])
    q = np.quantile(lengths, 0.25)
    window = max(p for p in (1, 2, 4, 8, 16, 32, 64) if p <= q)
    r = run(cfg, load_registry(entry_points=False))
    s = r["data_summary"]
    assert (s["window"], s["hop"], s["eval_hop"]) == (window, window // 2, window // 4)
    assert s["derived"] == ["window", "hop", "eval_hop"] and s["window_rule"]["version"] == 1
    for name, videos in splits.items():
        w = make_windows(videos, tuple(cfg.data.modalities), window,
                         window // 2 if name == "train" else window // 4)
        assert len(w)
        got = s["splits"][name]
        assert got["sequences"] == len(videos)
        assert got["frames"] == sum(v.n_frames for v in videos)
        assert got["windows"] == len(w)
        assert got["shorter_than_window"] == sum(v.n_frames < window for v in videos)
        # padding: the positions of each window past its video's end
        hop = window // 2 if name == "train" else window // 4
        starts = [(v.n_frames, st) for v in videos for st in window_starts(v.n_frames, window, hop)]
        assert got["padding"] == sum(max(0, st + window - n) for n, st in starts) / (len(starts) * window)
    n = s["splits"]["train"]["windows"]
    per_pass = n // min(32, n)
    per_epoch = min(2, per_pass)  # eval_every 2, or one pass where that is shorter
    assert s["schedule"] == {"mode": "steps", "batch": min(32, n), "steps_per_pass": per_pass,
                             "steps_per_epoch": per_epoch, "epochs": -(-4 // per_epoch),
                             "steps": 4, "warmup_steps": per_epoch}
    assert r["fits"][0]["steps"] == 4
    json.dumps(s)  # a record holds it


def test_a_set_window_is_kept_and_only_the_rest_derived():
    cfg = build_config("quick", None, tiny_overrides() + [("data.window", "32")])
    s = run(cfg, load_registry(entry_points=False))["data_summary"]
    assert (s["window"], s["hop"], s["eval_hop"], s["derived"]) == (32, 16, 8, ["hop", "eval_hop"])
    assert s["schedule"]["mode"] == "epochs"  # tiny: train.epochs=2


def test_the_cli_prints_the_summary_and_a_warning_as_one_line(cli_run, tiny_args, tmp_path, monkeypatch):
    from fusion_bench import runs

    monkeypatch.setattr(runs, "fit_warnings", lambda res, cfg, label: [
        {"model": label, "kind": "under-trained", "message": f"{label}: raise train.epochs"}])
    code, out, err = cli_run("run", *tiny_args, "--out", tmp_path)
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0].startswith("data: window 64, hop 32, eval hop 16 (window, hop, eval_hop derived")
    assert lines[1].lstrip().startswith("train") and "6 sequences" in lines[1] and "padding" in lines[1]
    assert any(line.startswith("training: 2 passes of ") for line in lines)
    assert "warning: concat valence+arousal (seed 0): raise train.epochs" in lines
    record = json.loads(next((tmp_path / "runs").glob("*.json")).read_text())
    assert record["training_warnings"][0]["kind"] == "under-trained"
    assert record["data_summary"]["window"] == 64
    assert record["config"]["data"]["window"] == 0  # the configuration as given; the hash's


def test_the_summary_counts_labelled_frames_no_modality_shows():
    """Per split: each modality's share of frames present, and the labelled frames that no
    modality shows (a constant prediction there), by hand; at sequence level, the labelled
    sequences no modality shows at all. Modalities the run does not use do not count."""
    from fusion_bench.data import Video
    from fusion_bench.summary import _split

    def video(name, vis, aud, labels, extra=None):
        n = len(vis)
        feats = {"visual": np.zeros((n, 2), np.float32), "audio": np.zeros((n, 2), np.float32)}
        masks = {"visual": np.array(vis, bool), "audio": np.array(aud, bool)}
        if extra is not None:  # a third modality present everywhere, not used by the run
            feats["text"], masks["text"] = np.zeros((n, 2), np.float32), np.ones(n, bool)
        return Video(name, feats, masks, np.array(labels, np.float32).reshape(-1, 1))

    a = video("a", [1, 1, 0, 0, 0, 1], [0, 1, 0, 0, 1, 0], [.1, .2, .3, -5, .5, .6], extra=True)
    b = video("b", [0, 0, 0, 0], [0, 0, 1, 0], [-5, .1, .2, .3])
    # a: frames 2 (labelled) and 3 (not) show nothing -> 1; b: frames 0 (not), 1, 3 -> 2
    wins = make_windows([a, b], ("visual", "audio"), 4, 2)
    got = _split([a, b], wins)
    assert got["labelled_unseen"] == 3
    assert got["present"] == {"visual": 3 / 10, "audio": 3 / 10}
    # sequence level: a is shown somewhere, b too; a labelled sequence with nothing shown counts
    seq = [video("c", [0, 0], [0, 0], [.4]), video("d", [0, 1], [0, 0], [.5]),
           video("e", [0, 0], [0, 0], [-5])]
    for v in seq:
        v.labels = v.labels[:1]
    sw = make_windows(seq, ("visual", "audio"), 2, 1, "sequence")
    assert _split(seq, sw, "sequence")["labelled_unseen"] == 1  # c only (e has no label)


def test_the_printed_summary_names_the_unseen_frames_only_when_there_are_some():
    from fusion_bench.cli.progress import summary_lines

    split = {"sequences": 2, "frames": 10, "labelled_frames": 8, "min_frames": 4,
             "median_frames": 6.0, "max_frames": 6, "shorter_than_window": 0, "windows": 3,
             "padding": 0.0, "present": {"visual": 0.3}, "labelled_unseen": 2}
    summary = {"window": 4, "hop": 2, "eval_hop": 1, "derived": [], "window_rule": None,
               "splits": {"train": split, "test": {**split, "labelled_unseen": 0}},
               "schedule": {"mode": "steps", "batch": 2, "steps_per_pass": 1,
                            "steps_per_epoch": 1, "epochs": 1, "steps": 1, "warmup_steps": 0}}
    train, test = summary_lines(summary)[1:3]
    assert train.endswith("; 2 labelled frames (25.0%) show no modality (a constant prediction there)")
    assert test.endswith("0.0% padding")
    summary["label_level"] = "sequence"
    assert "2 labelled sequences (25.0%)" in summary_lines(summary)[2]


def test_the_run_says_which_epoch_it_kept_and_that_early_stopping_ended_it():
    from fusion_bench.cli.run import fit_lines

    hist = [{"epoch": e, "step": 9 * e} for e in range(1, 11)]
    rec = {"fits": [{"targets": ["valence", "arousal"], "best_epoch": 4, "epochs": 10, "steps": 90,
                     "planned_epochs": 28, "stopped_early": True, "history": hist}]}
    assert fit_lines(rec) == ["kept weights: valence+arousal from validation epoch 4 of 10 (step 36 "
                              "of 90); early stopping ended the fit (28 epochs planned)"]
    rec["fits"][0].update(stopped_early=False, best_epoch=10, epochs=10)
    assert fit_lines(rec) == ["kept weights: valence+arousal from validation epoch 10 of 10 "
                              "(step 90 of 90)"]
    assert fit_lines({"fits": [{"targets": ["valence"]}]}) == []  # another shape: nothing said


def test_a_cli_run_prints_the_kept_epoch_of_each_fit(cli_run, tiny_args, tmp_path):
    code, out, _ = cli_run("run", "--out", tmp_path, *tiny_args, "--set", "model.per_target=true")
    assert code == 0
    kept = [line for line in out.splitlines() if line.startswith("kept weights: ")]
    assert [k.split()[2] for k in kept] == ["valence", "arousal"]  # one per target's fit
    assert all(" of 2 " in k for k in kept)  # TINY trains 2 epochs
