"""A leaderboard table (:class:`.table.Table`) as Markdown, CSV, JSON or LaTeX (HTML:
:mod:`.html_page`). Each format reads the same table, so a number is the same in all of them.

- ``md``: the table as printed, then its caption (what the README and the committed tables show).
- ``csv``: data for pandas and spreadsheets: one line per row, numbers only in the number columns
  (full precision, no thousands separators, an empty cell where the records lack a value): a
  stat column's mean under its key (``test_mean``) and its sample std in ``<key>_std``; costs
  and speeds (medians) under theirs; the devices of a speed and the noise levels of an area in
  ``<key>_devices`` / ``noise_area_levels``; ``partial`` names the columns only some seeds had
  (``noise_area=2``). A ``dataset`` column first, so several tables make one file.
- ``json``: :meth:`.table.Table.to_dict` (per-seed values, settings, verdicts, caption).
- ``latex``: a booktabs ``table`` (needs ``\\usepackage{booktabs}``), the best value of each
  ranked column in bold (reference rows included; ties as printed all bold), a ``\\label``.
"""

from __future__ import annotations

import csv
import io
import json
import re

from .render import latex_text, render
from .table import Column, Table, TableRow, number

FORMATS = ("md", "csv", "json", "latex", "html")
EXTENSIONS = {"md": "md", "csv": "csv", "json": "json", "latex": "tex", "html": "html"}
#: the default \label of a dataset's LaTeX table; ``{dataset}`` is replaced by its key
DEFAULT_LABEL = "tab:leaderboard-{dataset}"
_LABEL_OK = re.compile(r"[A-Za-z0-9:._/+-]+")


def markdown(table: Table) -> str:
    headers, body, caption = table.display()
    return render(headers, body, caption, "md")


# -- csv -------------------------------------------------------------------------------------------
def _csv_number(x) -> str:
    """Full precision, no separators; '' where absent or not finite."""
    x = number(x)
    if x is None:
        return ""
    return str(int(x)) if x.is_integer() and abs(x) < 2**53 else repr(x)


def csv_fields(table: Table) -> list[str]:
    """The csv columns of ``table``, in order."""
    out = ["dataset", "model", "kind", "n", "seeds"]
    for c in table.columns:
        if c.kind in ("label", "count"):
            continue
        out.append(c.key)
        if c.kind == "stat":
            out.append(f"{c.key}_std")
        if c.note:
            out.append(f"{c.key}_{c.note}")
    return [*out, "partial"]


def csv_row(table: Table, row: TableRow) -> dict[str, str]:
    out = {"dataset": table.dataset, "model": row.label, "kind": row.kind, "n": str(row.n),
           "seeds": " ".join(map(str, row.seeds))}
    for c in table.columns:
        if c.kind in ("label", "count"):
            continue
        cell = row.cells.get(c.key)
        if c.kind == "verdict":
            # '?' (too few shared seeds) and a reference row's dash: no verdict, an empty cell
            out[c.key] = cell.text if cell and cell.text in ("best", "yes", "no") else ""
            continue
        out[c.key] = _csv_number(cell.mean) if cell else ""
        if c.kind == "stat":
            out[f"{c.key}_std"] = _csv_number(cell.std) if cell else ""
        if c.note:
            out[f"{c.key}_{c.note}"] = (cell.note or "") if cell else ""
    out["partial"] = ";".join(f"{c.key}={len(row.cells[c.key].values)}" for c in table.columns
                              if c.key in row.cells and row.cells[c.key].partial)
    return out


def csv_text(tables: list[Table]) -> str:
    """One CSV of every row of ``tables`` (the union of their columns, in order of first
    appearance; a column a table lacks is empty in its rows)."""
    fields: dict[str, None] = {}
    for t in tables:
        fields.update(dict.fromkeys(csv_fields(t)))
    buf = io.StringIO()
    w = csv.DictWriter(buf, list(fields), restval="", lineterminator="\n")
    w.writeheader()
    for t in tables:
        w.writerows(csv_row(t, r) for r in t.rows)
    return buf.getvalue()


# -- json ------------------------------------------------------------------------------------------
def json_text(tables: Table | list[Table]) -> str:
    """One table as a json object, or several as an array of them."""
    obj = tables.to_dict() if isinstance(tables, Table) else [t.to_dict() for t in tables]
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# -- latex -----------------------------------------------------------------------------------------
def latex_label(label: str | None, dataset: str) -> str:
    """The ``\\label`` of a dataset's table: ``label`` (default :data:`DEFAULT_LABEL`) with
    ``{dataset}`` replaced by the dataset's key made label-safe; ValueError for characters a
    label cannot hold."""
    safe = re.sub(r"[^A-Za-z0-9:._/+-]+", "-", dataset).strip("-") or "dataset"
    out = (label or DEFAULT_LABEL).replace("{dataset}", safe)
    if not _LABEL_OK.fullmatch(out):
        raise ValueError(f"a LaTeX label may hold letters, digits and : . _ / + - only; got {out!r}")
    return out


def _align(c: Column) -> str:
    return "l" if c.kind in ("label", "verdict") else "r"


def latex(table: Table, label: str | None = None) -> str:
    """A booktabs ``table`` environment: the header rule, the rows, the caption and the label;
    every string from the records escaped, the best value of each ranked column bold."""
    best = {c.key: table.best(c.key) for c in table.columns}

    def cell(i: int, c: Column) -> str:
        text = latex_text(table.rows[i].cell(c.key).text)
        return f"\\textbf{{{text}}}" if i in best[c.key] else text

    lines = ["% needs \\usepackage{booktabs}", "\\begin{table}", "\\centering",
             "\\begin{tabular}{" + "".join(_align(c) for c in table.columns) + "}", "\\toprule",
             " & ".join(latex_text(c.header) for c in table.columns) + " \\\\", "\\midrule"]
    lines += [" & ".join(cell(i, c) for c in table.columns) + " \\\\"
              for i in range(len(table.rows))]
    lines += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{latex_text(table.caption())}}}",
              f"\\label{{{latex_label(label, table.dataset)}}}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def render_table(table: Table, fmt: str, *, label: str | None = None) -> str:
    """One table in ``fmt`` (md, csv, json, latex; html: :func:`.html_page.leaderboard_page`)."""
    if fmt == "md":
        return markdown(table)
    if fmt == "csv":
        return csv_text([table])
    if fmt == "json":
        return json_text(table)
    if fmt == "latex":
        return latex(table, label)
    if fmt == "html":
        from .html_page import leaderboard_page

        return leaderboard_page([table])
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
