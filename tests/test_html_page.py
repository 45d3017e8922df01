"""Leaderboards as a standalone HTML page (fusion_bench.report.html_page): escaped record strings,
the numbers the sort reads, embedded plots; and, with a headless Chromium (slow), the page as a
browser renders it after its script ran, sorted by the ``#sort=`` link."""

from __future__ import annotations

import base64
import copy
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from fusion_bench.errors import FusionBenchError
from fusion_bench.report import plots
from fusion_bench.report.html_page import leaderboard_page, table_markup
from fusion_bench.report.leaderboard import build_rows, build_table
from fusion_bench.results import ResultsStore

from .test_formats import sample_records, store_of


class Cells(HTMLParser):
    """The text of each <td> of each body row, and the attributes of each cell."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.attrs: list[list[dict]] = []
        self._in_body = self._in_cell = False

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
            self.attrs.append([])
        elif tag == "td" and self._in_body:
            self._in_cell = True
            self.rows[-1].append("")
            self.attrs[-1].append(dict(attrs))

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag == "td":
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.rows[-1][-1] += data


def parse(page: str) -> Cells:
    p = Cells()
    p.feed(page)
    return p


@pytest.fixture
def records():
    return sample_records()


def table_of(recs):
    (rows,) = build_rows(recs).values()
    return build_table(rows)


def test_the_page_stands_alone_and_holds_every_cell(records):
    t = table_of(records)
    page = leaderboard_page([t])
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert "<style>" in page and "<script>" in page
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere
    got = parse(page)
    assert got.rows == [[r.cell(c.key).text for c in t.columns] for r in t.rows]
    # the sort reads numbers: rcma's test mean 0.81 (mean of 0.80, 0.81, 0.82), the verdict's rank
    col = [c.key for c in t.columns].index("test_mean")
    rcma = got.attrs[[r[0] for r in got.rows].index("rcma")]
    assert float(rcma[col]["data-value"]) == pytest.approx(0.81)
    assert "best" in rcma[col]["class"]  # the best test mean
    assert rcma[[c.key for c in t.columns].index("vs_best")]["data-value"] == "0"
    lstm = got.attrs[[r[0] for r in got.rows].index("lstm")]
    assert lstm[[c.key for c in t.columns].index("noise_area")]["data-value"] == ""  # last


def test_every_string_from_a_record_is_escaped(records):
    recs = copy.deepcopy(records[:3])
    evil = '<script>alert("x")</script>&'
    for r in recs:
        r["config"]["model"]["fusion"] = evil
        r["config"]["data"]["name"] = r["dataset"]["name"] = "<b>data</b>"
        r["environment"]["commit"] = '"><img src=x onerror=alert(1)>'
    page = leaderboard_page([table_of(recs)])
    assert "<script>alert" not in page and "<b>data" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
    assert parse(page).rows[0][0] == evil  # what a browser shows: the text as recorded


def test_plots_are_embedded_when_matplotlib_is_there(records, monkeypatch, tmp_path,
                                                     cli_run):
    pytest.importorskip("matplotlib")
    res = store_of(tmp_path, records)
    code, out, err = cli_run("leaderboard", "--out", res, "--format", "html")
    assert code == 0 and out.startswith("<!DOCTYPE html>"), err
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', out)
    assert len(pngs) == 2  # the Pareto plot and the noise curves
    assert all(base64.b64decode(p).startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    def missing():
        raise FusionBenchError(plots.INSTALL_HINT)

    monkeypatch.setattr(plots, "require_matplotlib", missing)
    code, out, err = cli_run("leaderboard", "--out", res, "--format", "html")
    assert code == 0 and "data:image/png" not in out and "fusion-bench-affect[plots]" in out, err


def test_bench_tables_on_stdout_are_one_document(tmp_path, cli_run):
    """The committed CPU throughput records (two devices, so two tables): one page with a table
    each, one csv whose table column names each row's table; no json."""
    import csv
    import io
    from pathlib import Path

    from fusion_bench.report import bench_table

    folder = Path(__file__).resolve().parent.parent / "leaderboards" / "throughput-cpu"
    tables = bench_table.build_tables(ResultsStore(folder).records())
    assert len(tables) == 2  # the AMD EPYC and the Intel Xeon
    code, out, err = cli_run("leaderboard", "--bench", "--out", folder, "--format", "html")
    assert code == 0 and out.startswith("<!DOCTYPE html>") and out.count("<table") == 2, err
    assert parse(out).rows == [c for recs in tables.values() for c in bench_table.table(recs)[1]]
    code, out, err = cli_run("leaderboard", "--bench", "--out", folder, "--format", "csv")
    assert code == 0, err
    lines = list(csv.reader(io.StringIO(out)))
    assert lines[0] == ["table", *bench_table.HEADERS]
    assert lines[1:] == [[name, *cells] for name, recs in tables.items()
                         for cells in bench_table.table(recs)[1]]
    code, _, err = cli_run("leaderboard", "--bench", "--out", tmp_path, "--format", "json")
    assert code == 2 and "json is for run leaderboards" in err


# -- in a browser ------------------------------------------------------------------------------------
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


def dom(url: str) -> str:
    """The page's DOM after its script ran, as headless Chromium serialises it."""
    p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium: apt-get install chromium "
                                             "(Debian) or pip install playwright && playwright "
                                             "install chromium")
def test_a_browser_renders_the_cells_and_sorts_by_the_link(records, tmp_path, cli_run):
    records = copy.deepcopy(records)
    for r in records[-2:]:  # audio only: 900 parameters, fewer digits (a text sort fails)
        r["params"]["total"] = 900
    res = store_of(tmp_path, records)
    out = tmp_path / "html"
    code, _, err = cli_run("leaderboard", "--out", res, "--format", "html", "--tables", out)
    assert code == 0, err
    url = (out / "leaderboard_synthetic.html").as_uri()
    t = build_table(next(iter(build_rows(ResultsStore(res).records()).values())))
    rendered = dom(url)
    assert 'data-sort-ready="yes"' in rendered  # the script ran
    got = parse(rendered).rows
    assert got == [[r.cell(c.key).text for c in t.columns] for r in t.rows]
    assert [r[0] for r in got] == ["rcma", "lstm", "concat", "audio only"]  # by test mean
    # parameters, most first: concat 6,000, rcma and lstm 4,000 (a tie keeps the table's
    # order), audio only 900 (first if the numbers were sorted as text)
    assert [r[0] for r in parse(dom(url + "#sort=params:desc")).rows] == \
        ["concat", "rcma", "lstm", "audio only"]
    # FLOPs, most first (desc): 37.0 M twice, 12.3 M; lstm has none: last either way
    assert [r[0] for r in parse(dom(url + "#sort=flops:desc")).rows] == \
        ["rcma", "concat", "audio only", "lstm"]
    assert [r[0] for r in parse(dom(url + "#sort=flops:asc")).rows] == \
        ["audio only", "rcma", "concat", "lstm"]
    # text, a-z; and the first sort of a number column puts its best first (noise area: highest)
    assert [r[0] for r in parse(dom(url + "#sort=model")).rows] == \
        ["audio only", "concat", "lstm", "rcma"]
    by_area = [r[0] for r in parse(dom(url + "#sort=noise_area")).rows]
    areas = {r.label: r.cells["noise_area"].mean for r in t.rows if r.cells["noise_area"].mean}
    assert by_area == sorted(areas, key=lambda k: -areas[k]) + ["lstm"]


def test_table_markup_marks_reference_rows(records):
    from .test_reference import ridge, with_baseline

    t = table_of([with_baseline(r, ridge(0.6, 0.55)) for r in records[:6]])
    markup = table_markup(t)
    assert markup.count('<tr class="reference">') == 1
    assert '<tr class="reference"><td>ridge (linear)</td>' in markup
