"""One label row per sequence: ``labels.csv`` at the root of a ``features`` folder.

Format::

    video,sentiment            header: ``video``, then the targets (any names, as labels/*.csv)
    03bSnISJMiM_1,1.4          one row per video of the split file: its label per target
    03bSnISJMiM_2,-5           -5: no label for that target (left out of losses and scores)

With it the folder is sequence level (``label_level = "sequence"``): a video's arrays may have
any number of rows (its steps), each modality its own, and the video is one labelled sequence.
Values lie in the dataset's ``label_range`` (``--set dataset.features.label_range=-3,3``; default
[-1, 1]). Every error names the file and the line: a video of the split file without a row, a row
whose video is in no split, a video twice, a value that is no number, NaN or out of range.
"""

from __future__ import annotations

import csv

import numpy as np

from ..errors import DataError
from . import INVALID_LABEL, check_targets

FILE = "labels.csv"


def read_sequence_labels(path, split_names: dict[str, list[str]],
                         label_range: tuple[float, float] = (-1.0, 1.0)
                         ) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """(targets, video → float32 (T,)) from ``path``, checked against the videos of
    ``split_names`` (split → names); DataError names the file and line."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, ValueError) as e:  # ValueError: bytes that are not UTF-8
        raise DataError(f"{path}: cannot be read: {e}") from None
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if not header or header[0] != "video":
        raise DataError(f"{path}, line 1: header must be 'video,<target>,...' (e.g. "
                        f"video,valence,arousal); got {','.join(rows[0]) if rows else 'an empty file'!r}")
    targets = check_targets(tuple(header[1:]), f"{path}, line 1: header {','.join(header)!r}")
    lo, hi = label_range
    listed = {v for names in split_names.values() for v in names}
    out: dict[str, np.ndarray] = {}
    line_of: dict[str, int] = {}
    for i, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(header):
            raise DataError(f"{path}, line {i}: expected {len(header)} values "
                            f"{','.join(header)!r}; got {','.join(row)!r}")
        video = row[0].strip()
        if video in line_of:
            raise DataError(f"{path}, line {i}: video {video!r} has a row already (line "
                            f"{line_of[video]}); give each video one row")
        if video not in listed:
            raise DataError(f"{path}, line {i}: video {video!r} is in no split; list it in the "
                            "split file, or remove the row")
        values = []
        for name, raw in zip(targets, row[1:], strict=True):
            try:
                x = float(raw)
            except ValueError:
                raise DataError(f"{path}, line {i}: {name} {raw.strip()!r} is not a number") from None
            if not (x == INVALID_LABEL or lo <= x <= hi):  # NaN fails both
                raise DataError(f"{path}, line {i}: {name} {raw.strip()} is outside [{lo:g}, {hi:g}] "
                                "and is not the invalid marker -5 (set "
                                "dataset.features.label_range to the labels' range)")
            values.append(x)
        out[video], line_of[video] = np.asarray(values, np.float32), i
    for split, names in split_names.items():
        for v in names:
            if v not in out:
                raise DataError(f"{path}: no row for video {v!r} ({split} in the split file); add "
                                f"a row '{v},...' or take the video out of the split file")
    return targets, out
