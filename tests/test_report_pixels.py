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


def test_report_data_of_other_contents_is_said_where_its_numbers_are_shown(tmp_path):
    """`report --data` naming a folder whose contents differ from the best trial's recorded
    hash: the Grad-CAM and occlusion focus and the shortcut check were computed on it, and
    only the HTML's data section said so; summary.md (which has no data section) and the
    terminal said nothing."""
    import pytest

    from autopneumo.errors import AutopneumoNote
    from tests.conftest import make_kermany
    from tests.records import edit_record

    runs = three_trials(tmp_path)
    data = make_kermany(tmp_path / "data", patients={"train": 3, "val": 1, "test": 2})
    best = runs / "base_cnn__none" / "trial_a"
    edit_record(best / "record.json", data={"path": str(tmp_path / "gone"), "image_size": 32,
                                            "channels": 1, "data_hash": "0" * 64})
    (best / "model.keras").write_bytes(b"not a model")  # the data loads before the model
    with pytest.warns(AutopneumoNote) as said:
        write_report(runs, tmp_path / "md", fmt="md", pixels=False, n_boot=50, data=data)
    md = (tmp_path / "md" / "summary.md").read_text(encoding="utf-8")
    guard = md.split("## Shortcut guard", 1)[1]
    assert "changed since the search" in guard, guard
    assert any("changed since the search" in str(w.message) for w in said), \
        [str(w.message) for w in said]
    page = _report(runs, tmp_path / "html", data=data)
    section = page.split('id="gradcam"', 1)[1]
    assert "changed since the search" in section
    (best / "model.keras").unlink()  # no Grad-CAM: the shortcut check alone uses --data
    md = _report(runs, tmp_path / "md", fmt="md", data=data)
    assert "changed since the search" in md.split("## Shortcut guard", 1)[1]


def test_seed_ensembles_of_same_numbered_trials_of_two_projects_are_told_apart():
    """finalize --top 3 retrained trial 0 of base_cnn__geometric and trial 0 of
    base_cnn__photometric (a random or Bayesian search numbers each project's trials from
    0): the headline's and summary.md's two rows both read 'ensemble 2 seeds of 0 (mean of 2
    retrainings (seeds 0, 1) of trial 0)', with different numbers."""
    from autopneumo.report.build import _ensemble_kind

    kinds = {_ensemble_kind({"members": ["s0", "s1"],
                             "ensemble": {"seeds": [0, 1], "of": f"/runs/{project}/trial_0"}})
             for project in ("base_cnn__geometric", "base_cnn__photometric")}
    assert kinds == {"ensemble: mean of 2 retrainings (seeds 0, 1) of base_cnn + geometric "
                     "(trial 0)", "ensemble: mean of 2 retrainings (seeds 0, 1) of base_cnn + "
                     "photometric (trial 0)"}


def test_report_top_is_documented_for_both_formats(tmp_path):
    """--top cuts the Markdown summary's table as it cuts the HTML's ('4 of 7 rows: the top
    1, ...'), but `report --help` and the README said 'Rows in the HTML table'."""
    from click.testing import CliRunner

    from autopneumo.cli import main

    runs = three_trials(tmp_path)
    md = _report(runs, tmp_path / "md", fmt="md", top=1)
    assert "1 of 3 rows: the top 1" in md
    text = " ".join(CliRunner().invoke(main, ["report", "--help"]).output.split())
    assert "Rows in the HTML table and the Markdown summary's" in text, text


def test_no_committed_report_holds_an_x_ray_figure():
    """The data set's images are never committed: no file tracked under reports/ is a
    figure that shows X-ray pixels, and no tracked page embeds one (the pixels review 22:
    reports/<name>/ is not ignored as a whole, so a report written there with pixels could
    be committed by mistake; .gitignore now ignores the pixel figures there too)."""
    import shutil
    import subprocess

    import pytest

    from autopneumo.report import PIXEL_FIGURES

    root = Path(__file__).resolve().parent.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "reports"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.split()
    assert any(t.endswith("index.html") for t in tracked)  # the check sees the reports
    pictures = {f"{name}.png" for name in PIXEL_FIGURES}
    assert not [t for t in tracked if Path(t).name in pictures]
    for page in (t for t in tracked if t.endswith(".html")):
        text = (root / page).read_text(encoding="utf-8")
        assert not [name for name in PIXEL_FIGURES if f'id="fig-{name}"' in text], page
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "-q",
                              "reports/study-x/figures/gradcam.png"], cwd=root)
    assert ignored.returncode == 0  # a new report's pixel figures are ignored too
