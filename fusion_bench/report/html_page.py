"""Leaderboards as one standalone HTML page: UTF-8, the styles and a small script inline (no
file or network fetch), columns sorted by a click on their header (or on load by a link ending
``#sort=<column>`` or ``#sort=<column>:asc``), the best value of each ranked column bold, and the
plots embedded as PNG data when matplotlib is installed. Every string taken from a record (row
labels, settings, captions, dataset names) is escaped. No torch.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from .table import Column, Table, number

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 98vw; color: #1b1b1b; padding: 0 1em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .3em .6em; border-bottom: 1px solid #ddd; white-space: nowrap; }
thead th { border-bottom: 2px solid #444; position: sticky; top: 0; background: #fff; }
th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0;
            cursor: pointer; color: inherit; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
td.num { text-align: right; } td.best { font-weight: 700; }
tr.reference td { background: #f4f4f4; font-style: italic; }
tbody tr:hover td { background: #eef4ff; }
p.caption { max-width: 70em; color: #333; font-size: .9em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: .9em; color: #555; }
"""

# Sorts the rows of each table.leaderboard by the clicked column: numbers by the cell's
# data-value (a mean, a median, a verdict's rank), text by the cell's text; empty cells last
# in both directions; a column's first click puts its best first. "#sort=KEY[:asc|:desc]" in
# the address sorts on load. Rows are moved, never rewritten: no markup is made from text.
SCRIPT = """
(function () {
  "use strict";
  function key(cell) {
    var v = cell.getAttribute("data-value");
    return v === null ? cell.textContent.trim() : v;
  }
  function sortBy(table, index, descending) {
    var head = table.tHead.rows[0].cells, th = head[index];
    var numeric = th.getAttribute("data-type") === "number";
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[index]), y = key(b.cells[index]);
      if (x === "" || y === "") { return (x === "" ? 1 : 0) - (y === "" ? 1 : 0); }
      var c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return descending ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(head, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  function firstDescending(th) {
    return th.getAttribute("data-type") === "number" && th.getAttribute("data-better") !== "lower";
  }
  var tables = document.querySelectorAll("table.leaderboard");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.querySelector("button").addEventListener("click", function () {
        var now = th.getAttribute("aria-sort");
        sortBy(table, i, now ? now === "ascending" : firstDescending(th));
      });
    });
  });
  var m = /^#sort=([A-Za-z0-9_.-]+)(?::(asc|desc))?$/.exec(window.location.hash);
  if (m) {
    Array.prototype.forEach.call(tables, function (table) {
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
        if (th.getAttribute("data-key") === m[1]) {
          sortBy(table, i, m[2] ? m[2] === "desc" : firstDescending(th));
        }
      });
    });
  }
  document.documentElement.setAttribute("data-sort-ready", "yes");
})();
"""

#: a verdict's sort rank: the best first, unknown last (empty)
_RANK = {"best": "0", "yes": "1", "no": "2"}
_RIDGE_RANK = {"yes": "0", "no": "1"}


def esc(text) -> str:
    return html.escape(str(text), quote=True)


@dataclass
class Section:
    """One table of the page: its heading, its ``<table>`` markup, caption and figures."""

    heading: str
    table: str  # markup made by table_markup or text_table_markup (already escaped)
    caption: str = ""
    figures: list[tuple[str, bytes]] = field(default_factory=list)  # (title, PNG)
    note: str = ""  # e.g. why no figure is shown


def _number_text(x) -> str:
    x = number(x)
    return "" if x is None else repr(x)


def _th(c: Column) -> str:
    numeric = c.kind in ("count", "stat", "summary", "verdict")
    better = c.better or ("lower" if c.kind == "verdict" else "higher")
    return (f'<th scope="col" data-key="{esc(c.key)}" data-type="{"number" if numeric else "text"}"'
            f' data-better="{better}"><button type="button">{esc(c.header)}</button></th>')


def table_markup(table: Table) -> str:
    """A leaderboard's ``<table>``: each number cell carries its value for sorting (data-value),
    the best value of each ranked column has class ``best``, reference rows ``reference``."""
    best = {c.key: table.best(c.key) for c in table.columns}
    lines = ['<table class="leaderboard">', "<thead><tr>"
             + "".join(_th(c) for c in table.columns) + "</tr></thead>", "<tbody>"]
    for i, row in enumerate(table.rows):
        tds = []
        for c in table.columns:
            cell = row.cell(c.key)
            classes = [] if c.kind in ("label", "verdict") else ["num"]
            if i in best[c.key]:
                classes.append("best")
            if c.kind == "verdict":
                value = (_RANK if c.key == "vs_best" else _RIDGE_RANK).get(cell.text, "")
            elif c.kind == "label":
                value = None
            else:
                value = _number_text(cell.mean)
            attrs = (f' class="{" ".join(classes)}"' if classes else "") + (
                f' data-value="{value}"' if value is not None else "")
            tds.append(f"<td{attrs}>{esc(cell.text)}</td>")
        kind = ' class="reference"' if row.kind == "reference" else ""
        lines.append(f"<tr{kind}>" + "".join(tds) + "</tr>")
    return "\n".join([*lines, "</tbody>", "</table>"])


def text_table_markup(headers: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A sortable ``<table>`` of strings (the throughput tables): sorted by text."""
    head = "".join(f'<th scope="col" data-type="text"><button type="button">{esc(h)}</button></th>'
                   for h in headers)
    rows = ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>" for cells in body]
    return "\n".join(['<table class="leaderboard">', f"<thead><tr>{head}</tr></thead>",
                      "<tbody>", *rows, "</tbody>", "</table>"])


def page(title: str, sections: Sequence[Section]) -> str:
    """The standalone page: one section per table."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             '<meta name="generator" content="fusion-bench">',
             f"<title>{esc(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
             f"<h1>{esc(title)}</h1>"]
    for s in sections:
        parts += [f"<section>\n<h2>{esc(s.heading)}</h2>",
                  f'<div class="scroll">\n{s.table}\n</div>']
        if s.caption:
            parts.append(f'<p class="caption">{esc(s.caption)}</p>')
        for fig_title, png in s.figures:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f'<figure><img alt="{esc(fig_title)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{esc(fig_title)}</figcaption></figure>")
        if s.note:
            parts.append(f'<p class="note">{esc(s.note)}</p>')
        parts.append("</section>")
    parts += [f"<script>{SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def leaderboard_page(tables: Sequence[Table], figures: dict[str, list] | None = None,
                     note: str = "") -> str:
    """The page of one or more leaderboards; ``figures``: dataset → [(title, PNG)] to embed;
    ``note``: said under each table (e.g. that plots need matplotlib)."""
    title = "fusion-bench leaderboard" + (f": {tables[0].dataset}" if len(tables) == 1 else "s")
    return page(title, [Section(t.dataset, table_markup(t), t.caption(),
                                (figures or {}).get(t.dataset, []), note) for t in tables])
