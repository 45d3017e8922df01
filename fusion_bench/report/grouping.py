"""Which table and which row a run record belongs to, and how a reader tells rows and tables apart.

A **table** is one dataset: records whose data differ never share one, so no row is compared or
t-tested against a row on other data. A dataset read from a folder is known by its fingerprint
(:func:`fusion_bench.data.features.fingerprint`, in the record's ``dataset``); two folders are two
tables whatever their names, and a folder's table is named by the folder and its fingerprint. A
dataset made by fusion-bench (synthetic) is known by its version, data seed and generator; its
table keeps the dataset's name unless the store holds several such draws.

A **row** is one configuration (:func:`row_config`: the run's identity less the model seed). Its
label is the fusion, or ``<modality> only``, followed by the settings in which it differs from the
table's other rows (``concat (encoder=lstm, window=16)``); ``leaderboard --explain`` prints every
setting of every row (:func:`explain`). Records alone decide all of it: no registry, no torch.
"""

from __future__ import annotations

import hashlib
import json
import re
import typing
from collections.abc import Sequence
from pathlib import Path

#: settings the base label already says (the fusion; the modalities of a one-modality row), shown
#: in the parenthesis only where two rows would otherwise share a label
_IN_LABEL = ("model.fusion", "data.modalities")
#: the kinds of plugin options, and the config key naming the plugin of each
_PLUGIN_KEYS = {"fusion": "model.fusion", "encoder": "model.encoder", "dataset": "data.name"}
_DATASET = ("data_version", "data_fingerprint")  # the table's, not a row's: in its caption
_ABSENT = object()  # a setting a row's configuration does not have (the plugin's default)


def _digest(obj, n: int = 8) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


# -- tables: datasets -------------------------------------------------------------------------------
def dataset_identity(rec: dict) -> dict:
    """What makes the data of ``rec`` that data: the dataset's name and version, and its folder's
    fingerprint; without one (generated data, records made before fingerprints) the data seed,
    generator, fold and folder the record names."""
    info = rec.get("dataset") or {}
    out = {"name": rec["config"]["data"]["name"], "version": info.get("version")}
    if label_level(rec) != "frame":  # another task on the same data: another table
        out["label_level"] = label_level(rec)
    if info.get("fingerprint"):
        return {**out, "fingerprint": info["fingerprint"]}
    return {**out, **{k: info.get(k) for k in ("seed", "generator", "fold", "root")}}


def label_level(rec: dict) -> str:
    """The label level of the record's dataset: "sequence" (one label per sequence) or "frame"
    (records made before levels existed are frame level)."""
    return str((rec.get("dataset") or {}).get("label_level") or "frame")


def folder_name(rec: dict) -> str:
    """The last part of the dataset folder's path, as a file name may hold it ('' if none)."""
    root = (rec.get("dataset") or {}).get("root") or rec["config"]["data"].get("root") or ""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(root).name)


def table_keys(records: list[dict]) -> list[str]:
    """The table of each record: ``<dataset>-<folder>-<fingerprint[:8]>`` for a fingerprinted
    folder; otherwise the dataset's name, or ``<name>-<identity digest>`` where the records
    hold several identities of that name. A sequence-level dataset's name ends in
    ``-sequence`` (``synthetic-sequence``)."""
    idents = [dataset_identity(r) for r in records]
    names = [i["name"] + ("-sequence" if "label_level" in i else "") for i in idents]
    per_name: dict[str, set[str]] = {}
    for name, ident in zip(names, idents, strict=True):
        per_name.setdefault(name, set()).add(_digest(ident))
    out = []
    for rec, name, ident in zip(records, names, idents, strict=True):
        if "fingerprint" in ident:
            out.append("-".join(p for p in (name, folder_name(rec), ident["fingerprint"][:8]) if p))
        elif len(per_name[name]) > 1:
            out.append(f"{name}-{_digest(ident)}")
        else:
            out.append(name)
    return out


def dataset_sentence(rec: dict) -> str:
    """The caption's first sentence: the dataset, as true of it. Generated data names its data
    seed; a folder names itself and its fingerprint where the record has one (no data seed:
    nothing was drawn)."""
    info = rec.get("dataset") or {}
    head = f"Dataset {info.get('name')} v{info.get('version')}"
    if label_level(rec) == "sequence":
        others = ", ".join(sorted(m for m in rec.get("scores") or {} if m != "ccc"))
        head += (", labelled per sequence (utterance level: one prediction per sequence, every "
                 "score over the split's sequences"
                 + (f"; the records also hold {others}: `fusion-bench leaderboard --metric NAME`"
                    if others else "") + ")")
    if info.get("fingerprint"):
        parts = [f"fingerprint {info['fingerprint']}"]
        videos = info.get("videos") or {}
        if videos:
            parts.append("videos " + "/".join(str(videos.get(s, 0)) for s in ("train", "val", "test"))
                         + " (train/val/test)")
        if info.get("fold"):
            parts.append(f"fold {info['fold']}")
        folder = folder_name(rec)
        return f"{head}, folder {folder or '?'} ({'; '.join(parts)}). "
    if draws_data(rec):
        return f"{head} (data seed {info.get('seed', rec['config']['data'].get('seed'))}). "
    return f"{head}, folder {folder_name(rec) or '?'}. "


def draws_data(rec: dict) -> bool:
    """Whether the record's data was drawn with the data seed rather than read from a folder
    (a record of data read from disk names its folder, ``root``)."""
    info = rec.get("dataset") or {}
    return not (info.get("root") or info.get("fingerprint"))


# -- rows: configurations -------------------------------------------------------------------------
def row_config(rec: dict) -> dict:
    """The configuration a row stands for: the run's identity
    (:meth:`fusion_bench.config.RunConfig.identity`, in today's layout, so a record made before
    plugin options shares the row of a new one) less what does not change the trained model: the
    model seed (a row's variable), the device, the progress bar and the test-time robustness
    checks; plus the dataset's version, and a folder's fingerprint in place of its path (the
    same data wherever it lies; other data is never the same row, whatever table it is in). A config that does not parse is taken as
    it is."""
    from ..config import RunConfig

    try:
        cfg = RunConfig.from_dict(rec["config"]).identity()
    except (KeyError, TypeError, ValueError, AttributeError):
        cfg = json.loads(json.dumps(rec["config"]))
    info = rec.get("dataset") or {}
    cfg["data_version"] = info.get("version") if isinstance(info, dict) else None
    cfg.pop("seed", None)
    cfg.pop("device", None)
    cfg.pop("robustness", None)
    cfg.get("train", {}).pop("progress", None)
    if isinstance(info, dict) and info.get("fingerprint"):  # the data, not where it lies
        cfg.get("data", {}).pop("root", None)
        cfg["data_fingerprint"] = info["fingerprint"]
    return cfg


def row_key(rec: dict) -> str:
    """8 hex digits of :func:`row_config`: records of one key are one row."""
    return _digest(row_config(rec))


def flatten(cfg: dict, prefix: str = "") -> dict[str, typing.Any]:
    """``{"data": {"window": 64}}`` → ``{"data.window": 64}``, at any depth; lists as tuples."""
    out: dict[str, typing.Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = tuple(v) if isinstance(v, list) else v
    return out


def base_label(rec: dict) -> str:
    """The fusion, or ``<modality> only`` for a one-modality run (which has no fusion)."""
    mods = rec["config"]["data"]["modalities"]
    return f"{mods[0]} only" if len(mods) == 1 else rec["config"]["model"]["fusion"]


def _show(v, key: str = "") -> str:
    if v is _ABSENT:  # a one-modality run's identity has no fusion: it builds none
        if key == "model.fusion":
            return "none (one modality)"
        from ..config.schema import LATER_DEFAULTS  # left out of the identity at its default

        return _show(LATER_DEFAULTS[key]) if key in LATER_DEFAULTS else "default"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple):
        return ",".join(map(str, v))
    return str(v)



def _participants(key: str, flats: list[dict]) -> list[int]:
    """The rows a setting is about: a plugin option (``encoder.lstm.channels``) only those of
    rows that use that plugin; any other setting, every row."""
    kind, _, rest = key.partition(".")
    name = rest.partition(".")[0]
    if kind in _PLUGIN_KEYS and "." in rest:
        return [i for i, f in enumerate(flats) if f.get(_PLUGIN_KEYS[kind]) == name]
    return list(range(len(flats)))


#: the order settings are named in a label: the model, then the data, then training
_SECTION_ORDER = ("model", "encoder", "fusion", "data", "dataset", "train")


def _reading_order(key: str) -> tuple[int, str]:
    section = key.partition(".")[0]
    rank = _SECTION_ORDER.index(section) if section in _SECTION_ORDER else len(_SECTION_ORDER)
    return rank, key


def _differing(keys: typing.Iterable[str], flats: list[dict], among: list[int]) -> dict[int, list[str]]:
    """Row index → the keys among ``keys`` whose value differs between rows ``among`` (a row
    without the key counts as 'default'), for the rows each key is about; in reading order."""
    out: dict[int, list[str]] = {i: [] for i in among}
    for key in sorted(keys, key=_reading_order):
        rows = [i for i in _participants(key, flats) if i in out]
        if len({json.dumps(flats[i].get(key, "\0absent"), default=str) for i in rows}) > 1:
            for i in rows:
                out[i].append(key)
    return out


def _short(keys: list[str]) -> dict[str, str]:
    """How a label names each key: a plugin option by its name (``iterations``), else without
    its section (``window``); longer where that is ambiguous among ``keys`` or reads as the
    model seed (``encoder.tcn.channels`` beside ``encoder.lstm.channels``, ``data.seed``)."""
    def tiers(key: str) -> list[str]:
        parts = key.split(".")
        if parts[0] in _PLUGIN_KEYS and len(parts) == 3:
            return [parts[2], ".".join(parts[1:]), key]
        return [".".join(parts[1:]) or key, key]

    out = {}
    for key in keys:
        for name in tiers(key):
            if name != "seed" and sum(name in tiers(k) for k in keys) == 1:
                out[key] = name
                break
        else:
            out[key] = key
    return out


def row_labels(records: Sequence[dict]) -> list[str]:
    """A label for each row (its first record): the base label, then the settings that differ
    between the table's rows, ``name=value`` (the fusion and modalities are in the base label;
    they, like anything else, are added where two rows would still share a label); a row
    digest last if even that leaves two alike."""
    flats = [flatten(row_config(r)) for r in records]
    bases = [base_label(r) for r in records]
    everywhere = {k for f in flats for k in f} - {*_DATASET, *_IN_LABEL}
    shown = _differing(everywhere, flats, list(range(len(flats))))

    def compose(i: int, keys: list[str]) -> str:
        names = _short(keys)
        inner = ", ".join(f"{names[k]}={_show(flats[i].get(k, _ABSENT), k)}" for k in keys)
        return f"{bases[i]} ({inner})" if inner else bases[i]

    labels = [compose(i, shown[i]) for i in range(len(flats))]
    for label in sorted(set(labels)):
        clash = [i for i, lab in enumerate(labels) if lab == label]
        if len(clash) < 2:
            continue
        more = _differing({k for i in clash for k in flats[i]} - set(_DATASET), flats, clash)
        for i in clash:
            labels[i] = compose(i, sorted(set(shown[i]) | set(more[i]), key=_reading_order))
    for i, label in enumerate(labels):
        if labels.count(label) > 1:
            labels[i] = f"{label} [{row_key(records[i])}]"
    return labels


def explain(rows: Sequence[tuple[str, list[dict]]]) -> str:
    """Every setting of every row, ``key = value`` one a line, those that differ between rows
    marked ``*``; ``rows``: (label, records) in table order."""
    flats = [flatten(row_config(recs[0])) for _, recs in rows]
    keys = sorted({k for f in flats for k in f} - set(_DATASET))
    differ = {k for ks in _differing(keys, flats, list(range(len(flats)))).values() for k in ks}
    lines = ["Configurations of the rows ('*': differs between rows; 'default': not set, the "
             "plugin's default):"]
    for (label, recs), flat in zip(rows, flats, strict=True):
        seeds = ", ".join(str(r["config"]["seed"]) for r in recs)
        hashes = ", ".join(sorted({r["config_hash"] for r in recs}))
        lines.append(f"\n{label}  (seeds {seeds}; config hash {hashes})")
        for key in keys:
            # a setting this row lacks: shown where it differs, if it is about this row at all
            if key not in flat and (key not in differ or not _participants(key, [flat])):
                continue
            lines.append(f"  {'*' if key in differ else ' '} {key} = {_show(flat.get(key, _ABSENT), key)}")
    return "\n".join(lines) + "\n"
