"""The pixels review of the twenty-second session (``report --no-pixels`` and what the
report promises): each test failed before its fix."""

from __future__ import annotations

import warnings
from pathlib import Path

from autopneumo.report import write_report
from tests.records import three_trials, write_record


def _report(runs: Path, out: Path, fmt: str = "html", **kw) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_report(runs, out, fmt=fmt, n_boot=50, **{"pixels": False, **kw})
    return (out / ("index.html" if fmt == "html" else "summary.md")).read_text(encoding="utf-8")


def test_a_no_pixels_markdown_report_of_other_runs_removes_the_whole_earlier_html_report(
        tmp_path):
    """An HTML report with pixel figures, then `--format md --no-pixels` of other runs into
    its folder: the pixel figures and the page went (as pixels), but the page's other
    figures (ROC, confusion, ... of the other runs) stayed beside the new summary.md, which
    a plain `--format md` removes with the page."""
    runs = three_trials(tmp_path)
    out = tmp_path / "report"
    page = _report(runs, out)
    (out / "figures" / "samples.png").write_bytes(b"png")  # as a report with pixels draws
    (out / "index.html").write_text(page.replace(
        "</body>", '<img id="fig-samples" src="data:image/png;base64,AA"></body>'))
    assert (out / "figures" / "roc.png").exists()
    write_record(runs, "resnet18", "flip", "d", 0.9, seed=5)  # other runs now
    _report(runs, out, fmt="md")
    assert not (out / "index.html").exists()
    left = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert not left, f"figures of the earlier runs stayed: {left}"
