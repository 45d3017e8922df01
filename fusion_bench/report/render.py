"""Rendering a table of strings (headers, body, caption) as Markdown, CSV, LaTeX or HTML (the
throughput tables; a leaderboard is a :class:`.table.Table`, rendered by :mod:`.formats`), and the
number formats and LaTeX escaping the tables share."""

from __future__ import annotations

import csv
import html
import io

MISSING = "–"  # en dash: a value the records do not have (e.g. runs made before it was measured)


def human(n: float, digits: int = 1) -> str:
    """12_345_678 → '12.3 M' (k, M, G, T with ``digits`` decimals)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f} {unit}"
    return f"{n:.0f}"


def render(headers, body, caption, fmt: str, numparse: bool = True) -> str:
    """A table as md, csv, latex or html. ``numparse=False`` keeps every cell as written
    (tabulate would otherwise reformat "1.60" as 1.6 and right-align it)."""
    from functools import partial

    from tabulate import tabulate

    tabulate = partial(tabulate, disable_numparse=not numparse)

    if fmt == "md":
        return tabulate(body, headers, tablefmt="github") + f"\n\n{caption}\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(headers)
        w.writerows(body)
        return buf.getvalue()
    if fmt == "latex":
        table_tex = _symbols(tabulate(body, headers, tablefmt="latex_booktabs"))
        return ("\\begin{table}\n\\centering\n" + table_tex + "\n\\caption{"
                + latex_text(caption) + "}\n\\end{table}\n")
    if fmt == "html":
        # tabulate escapes the cells; the caption names records' fusions and commits: escape it
        return tabulate(body, headers, tablefmt="html") + f"\n<p>{html.escape(caption)}</p>\n"
    raise ValueError(f"unknown format {fmt!r}; use md, csv, latex or html")


#: LaTeX's special characters in text, escaped (a caption holds strings from records; an
#: unescaped & or # breaks the .tex file). ± ≈ × and the dash are mapped afterwards.
_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                   "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                   "^": r"\textasciicircum{}"}


def _symbols(text: str) -> str:
    return (text.replace("±", r"$\pm$").replace("≈", r"$\approx$").replace("×", r"$\times$")
            .replace(MISSING, "--"))


def latex_text(text: str) -> str:
    """``text`` (from records, say) as LaTeX: its special characters escaped, ± ≈ × and the
    dash of a missing value as LaTeX writes them."""
    return _symbols("".join(_LATEX_SPECIALS.get(c, c) for c in text))
