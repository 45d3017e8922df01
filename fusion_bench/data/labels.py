"""Label files of the ``features`` folder format (``labels/<video>.csv``): a header naming the
targets, then one line per frame with a value per target in [-1, 1] or -5 (no label).

The header names the dataset's targets: valence and arousal, valence, arousal and dominance, one
alone, any names (stripped and lower-cased; at least one, none twice, none ``mean``, checked by
:func:`fusion_bench.data.check_targets`), the same in every labels file of a folder
(:func:`folder_targets`). Every error names the file and the line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..files import atomic_write_text
from . import INVALID_LABEL, TARGETS, check_targets


def read_label_header(path: Path) -> tuple[str, ...]:
    """The targets a labels file's first line names (stripped, lower-cased, checked by
    :func:`fusion_bench.data.check_targets`); DataError names the file and line."""
    try:
        with path.open(encoding="utf-8-sig") as f:
            first = f.readline()
    except FileNotFoundError:
        raise DataError(f"{path}: labels file is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read labels: {e}") from None
    return _header(first, path)


def _header(line: str, path) -> tuple[str, ...]:
    if not line.strip():
        raise DataError(f"{path}: empty labels file; expected a header naming the targets, "
                        "e.g. 'valence,arousal'")
    return check_targets(tuple(h.strip().lower() for h in line.strip().split(",")),
                         f"{path}, line 1: header {line.strip()!r}")


def folder_targets(root: Path, split_names: dict[str, list[str]]) -> tuple[str, ...]:
    """The targets of a folder: the header of every listed video's labels file, which must be
    the same in all. Otherwise a DataError names a file whose header differs from the most
    common one, and a file that has that one."""
    headers: dict[tuple[str, ...], list[Path]] = {}
    for name in dict.fromkeys(v for names in split_names.values() for v in names):
        path = root / "labels" / f"{name}.csv"
        headers.setdefault(read_label_header(path), []).append(path)
    if not headers:
        return TARGETS
    common = max(headers, key=lambda h: len(headers[h]))  # the first seen among equals
    for names, paths in headers.items():
        if names != common:
            raise DataError(
                f"{paths[0]}, line 1: header {','.join(names)!r} differs from "
                f"{','.join(common)!r} of {headers[common][0]}"
                + (f" and {len(headers[common]) - 1} other labels files" if len(headers[common]) > 1 else "")
                + "; every labels file of a folder must name the same targets in the same order")
    return common


def read_labels(path: Path, targets: tuple[str, ...] | None = None) -> np.ndarray:
    """float32 (frames, T) from a labels CSV whose header names T targets (``targets``, when
    given: the folder's, see :func:`folder_targets`); DataError names the file and line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: labels file is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read labels: {e}") from None
    lines = text.splitlines()
    header = _header(lines[0] if lines else "", path)
    if targets is not None and header != tuple(targets):
        raise DataError(f"{path}, line 1: header {','.join(header)!r} differs from the folder's "
                        f"targets {','.join(targets)!r}; every labels file of a folder must name "
                        "the same targets in the same order")
    rows = []
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        rows.append(parse_label_line(line, path, i, header))
    return np.asarray(rows, np.float32).reshape(-1, len(header))


def parse_label_line(line: str, path, lineno: int, names: tuple[str, ...] = TARGETS
                     ) -> tuple[float, ...]:
    """One labels line → a float per target of ``names``, checked: each in [-1, 1] or the
    marker -5."""
    parts = line.split(",")
    if len(parts) != len(names):
        raise DataError(f"{path}, line {lineno}: expected {len(names)} value"
                        f"{'s' * (len(names) > 1)} {','.join(names)!r}; got {line.strip()!r}")
    out = []
    for name, raw in zip(names, parts, strict=True):
        try:
            x = float(raw)
        except ValueError:
            raise DataError(f"{path}, line {lineno}: {name} {raw.strip()!r} is not a number") from None
        if not (x == INVALID_LABEL or -1.0 <= x <= 1.0):
            raise DataError(
                f"{path}, line {lineno}: {name} {x:g} is outside [-1, 1] and is not the invalid marker -5"
            )
        out.append(x)
    return tuple(out)


def write_labels(path: Path, labels: np.ndarray, targets: tuple[str, ...] = TARGETS) -> None:
    """Write ``labels`` (frames, T) as a labels CSV whose header names ``targets`` (atomically)."""
    labels = np.asarray(labels, np.float64)
    if labels.ndim != 2 or labels.shape[1] != len(targets):
        raise ValueError(f"{path}: labels of shape {labels.shape} for {len(targets)} "
                         f"targets {','.join(targets)}")
    lines = [",".join(targets)] + [",".join(f"{x:.6g}" for x in row) for row in labels]
    atomic_write_text(Path(path), "\n".join(lines) + "\n")
