"""The report in a real headless browser (Debian's chromium, installed by ``make test``).

The page must load from a file with no network, log nothing to the console (no script
error, and no script smuggled in through a trial or file name), show the table and
every figure after its scripts ran, sort the table on a click, and render a screenshot
that is not blank. Skipped where chromium is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from autopneumo.report import write_report
from tests.test_report_full import make_runs, write_trial

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make browser)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]
XSS = '<script>console.log("xss in a name")</script>'


def chromium(url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *extra, url],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    runs = make_runs(root)
    write_trial(runs, "base_cnn", '<img src=x onerror="console.log(1)">', XSS, 0.1, seed=40,
                command=XSS)
    out = root / "report"
    write_report(runs, out, top=25, pixels=False)
    return out


def test_page_loads_with_no_console_message_and_shows_table_and_figures(report, tmp_path):
    run = chromium((report / "index.html").as_uri(), tmp_path, "--enable-logging=stderr", "--v=0",
                   "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    console = [ln for ln in run.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]
    assert console == []
    dom = run.stdout
    assert dom.count("<script") == 1
    body = dom[dom.index('<table id="leaderboard"'):]
    body = body[:body.index("</table>")]
    csv = pd.read_csv(report / "leaderboard.csv")
    assert len(re.findall(r"<tr class=", body)) == len(csv) == 15
    figures = sorted(p.stem for p in (report / "figures").glob("*.png"))
    shown = sorted(re.findall(r'<img id="fig-(\w+)"', dom))
    assert shown == figures and len(figures) >= 9
    sources = re.findall(r'<img [^>]*src="([^"]{0,30})', dom)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(src|href)="https?:', dom)  # self-contained


def test_screenshot_is_not_blank(report, tmp_path):
    shot = tmp_path / "shot.png"
    run = chromium((report / "index.html").as_uri(), tmp_path, f"--screenshot={shot}",
                   "--window-size=1280,2000")
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    image = Image.open(shot).convert("L")
    assert image.size == (1280, 2000)
    histogram = image.histogram()
    dark = sum(histogram[:200]) / (image.size[0] * image.size[1])
    assert 0.02 < dark < 0.6  # text, tables and figures; neither blank nor all dark
    assert sum(1 for n in histogram if n) > 50


def test_table_sorts_on_click(report, tmp_path):
    """A copy of the page with a few lines that click a header and record the row order."""
    page = (report / "index.html").read_text()
    harness = ("<script>document.querySelector('#leaderboard th[data-col=\"test_auc\"]').click();"
               "document.body.setAttribute('data-order', Array.from(document.querySelectorAll("
               "'#leaderboard tbody tr')).map(function (r) { return r.cells[0].textContent; })"
               ".join(','));</script></body>")
    copy = tmp_path / "sorted.html"
    copy.write_text(page.replace("</body>", harness))
    run = chromium(copy.as_uri(), tmp_path, "--dump-dom")
    order = [int(x) for x in re.search(r'data-order="([^"]*)"', run.stdout).group(1).split(",")]
    csv = pd.read_csv(report / "leaderboard.csv")
    expected = csv.sort_values("test_auc", kind="mergesort", na_position="last")["rank"].tolist()
    assert order == expected
