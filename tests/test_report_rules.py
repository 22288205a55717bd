"""The report review of the twentieth session: each test failed before its fix."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pandas as pd

from autopneumo.report import write_report
from tests.records import three_trials, write_record


def _edit(path: Path, **changes) -> None:
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


def _report(runs: Path, out: Path, fmt: str = "html", **kw) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_report(runs, out, fmt=fmt, pixels=False, n_boot=50, **kw)
    return (out / ("index.html" if fmt == "html" else "summary.md")).read_text(encoding="utf-8")


def test_headline_shows_the_recorded_recall_target_not_a_rounded_one(tmp_path):
    """fmt_number(target, 2): a search at --recall-target 0.975 is headlined 'recall >= 0.97'
    and, with a test recall of 0.971, 'Recall target 0.97 not reached' (0.971 >= 0.97)."""
    runs = tmp_path / "runs"
    path = write_record(runs, "base_cnn", "none", "a", 0.4)
    _edit(path, recall_target=0.975)
    page = _report(runs, tmp_path / "html")
    md = _report(runs, tmp_path / "md", fmt="md")
    assert "recall &ge; 0.975" in page, re.findall(r"recall &ge; [0-9.]+", page)
    assert "Recall target 0.975" in page, re.findall(r"Recall target [0-9.]+", page)
    assert "recall >= 0.975" in md, re.findall(r"recall >= [0-9.]+", md)


def test_each_rows_interval_says_what_it_resampled(tmp_path):
    """Records since patient-level resampling carry test_ci_resampled ('patients'); older
    ones resampled images. The CSV, the leaderboard table and the comparison rows show every
    row's [lo, hi] with no word of which; only the best row's unit is printed, once."""
    runs = three_trials(tmp_path)
    best = runs / "base_cnn__none" / "trial_a" / "record.json"
    _edit(best, test_ci_resampled="patients")  # trials b, c: older records (images)
    _report(runs, tmp_path / "html")
    csv = pd.read_csv(tmp_path / "html" / "leaderboard.csv")
    marks = [c for c in csv.columns if "resampl" in c or "ci_over" in c]
    assert marks, "leaderboard.csv has intervals (test_*_lo/_hi) but no column saying " \
                  "whether each row's were resampled over patients or images"
    by_trial = dict(zip(csv["trial_id"].astype(str), csv[marks[0]], strict=True))
    assert by_trial["a"] == "patients" and by_trial["b"] == "images"


def test_markdown_summary_says_which_records_were_skipped(tmp_path):
    """The HTML lists every unreadable record ('Skipped unreadable record'); the Markdown
    summary drops the trial silently, so a pasted leaderboard can miss its best trial."""
    runs = three_trials(tmp_path)
    broken = runs / "base_cnn__none" / "trial_z"
    broken.mkdir()
    (broken / "record.json").write_text("{ truncated")
    page = _report(runs, tmp_path / "html")
    assert "Skipped unreadable record" in page and "trial_z" in page  # the HTML says so
    md = _report(runs, tmp_path / "md", fmt="md")
    assert "trial_z" in md, "summary.md never mentions the skipped record"


def test_a_recall_target_written_as_text_does_not_break_the_report(tmp_path):
    """A hand-edited record with "recall_target": "0.9" next to records with 0.95:
    mixed_settings sorts the targets (str < float) and formats them with :g, and the
    TypeError escapes write_report: no report at all."""
    runs = three_trials(tmp_path)
    _edit(runs / "base_cnn__flip" / "trial_b" / "record.json", recall_target="0.9")
    page = _report(runs, tmp_path / "html")
    assert "trial" in page


def test_completed_reference_runs_are_not_called_no_completed_trial(tmp_path):
    """A runs folder holding only `autopneumo baseline classroom` runs (completed, tested):
    the headline says 'No completed trial yet', the Markdown 'No completed trial yet;
    0 failed', and their test numbers appear in no comparison."""
    runs = tmp_path / "runs"
    for trial_id in ("cnn", "cnn_flip"):
        path = write_record(runs, "base_cnn", "none", trial_id, 0.4)
        _edit(path, reference=True, project="classroom__reference")
    page = _report(runs, tmp_path / "html")
    md = _report(runs, tmp_path / "md", fmt="md")
    assert "2 trials (2 completed)" in page
    assert "No completed trial yet" not in page
    assert "No completed trial yet" not in md


def test_a_folder_of_unfinished_trials_gives_notes_not_key_errors(tmp_path):
    """Trials that are running (trial.json, no record.json yet): the tuning section prints
    'This section could not be drawn: KeyError: 'val_objective'' (twice)."""
    runs = tmp_path / "runs"
    trial = runs / "base_cnn__none" / "trial_1"
    trial.mkdir(parents=True)
    (trial / "trial.json").write_text(json.dumps({"trial_id": "1", "status": "RUNNING"}))
    page = _report(runs, tmp_path / "html")
    assert "could not be drawn" not in page, re.findall(r"could not be drawn: [^<]*", page)


def test_a_report_in_another_format_leaves_no_stale_report_of_the_first(tmp_path):
    """`report --format md` then (after more trials) `report` into the same folder, as the
    committed reports/study-* folders hold both: summary.md keeps the old leaderboard (3
    trials, old best) beside a leaderboard.csv and index.html of 4. Stale CSVs and figures
    are removed; the other format's page is not."""
    runs = three_trials(tmp_path)
    out = tmp_path / "report"
    _report(runs, out, fmt="md")
    write_record(runs, "resnet18", "flip", "d", 0.9, seed=5)  # a new best trial
    page = _report(runs, out)
    assert "4 trials" in page
    csv = pd.read_csv(out / "leaderboard.csv")
    assert len(csv) == 4
    if (out / "summary.md").exists():
        summary = (out / "summary.md").read_text()
        assert "(4 trials" in summary, summary.splitlines()[0]


def test_sorting_a_column_descending_keeps_missing_values_last(tmp_path):
    """tables.sort_key promises 'empty last', but the page's sort negates the whole
    comparison for descending order, so a click to rank by test precision, highest first,
    puts the failed trial's '–' on top, above every real number."""
    import shutil
    import subprocess

    import pytest

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium not installed")
    runs = three_trials(tmp_path)
    write_record(runs, "resnet18", "none", "f", 0.0, status="failed")
    page = _report(runs, tmp_path / "html")
    click = ("<script>var th = document.querySelector('#leaderboard th[data-col=\"test_precision\"]');"
             "th.click(); th.click();</script>")  # ascending, then descending
    (tmp_path / "html" / "sorted.html").write_text(page.replace("</body>", click + "</body>"))
    run = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          (tmp_path / "html" / "sorted.html").as_uri()],
                         capture_output=True, text=True, timeout=180)
    body = run.stdout.split('<table id="leaderboard"', 1)[1].split("<tbody>", 1)[1]
    first = re.search(r"<tr[^>]*>(.*?)</tr>", body, re.S).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", first, re.S)
    status = cells[4]
    assert "failed" not in status, f"descending sort by test precision starts with {cells[:9]}"


def test_rows_whose_intervals_resample_different_units_are_flagged(tmp_path):
    """F2: besides the CSV column, a folder mixing record ages says so where the report
    lists what cannot be compared."""
    from autopneumo.leaderboard import leaderboard

    runs = three_trials(tmp_path)
    _edit(runs / "base_cnn__none" / "trial_a" / "record.json", test_ci_resampled="patients")
    mixed = leaderboard(runs).attrs["mixed"]
    assert any("resample different units: images (2 rows), patients (1 rows)" in m
               for m in mixed), mixed
    md = _report(runs, tmp_path / "md", fmt="md")
    assert "resample different units" in md


def test_both_formats_of_the_same_runs_stay_side_by_side(tmp_path):
    """F7's rule keeps the other format's page where it describes the same runs (the
    committed reports hold both)."""
    runs = three_trials(tmp_path)
    out = tmp_path / "report"
    _report(runs, out)
    _report(runs, out, fmt="md")
    assert (out / "index.html").exists() and (out / "summary.md").exists()
    write_record(runs, "resnet18", "flip", "d", 0.9, seed=5)
    _report(runs, out, fmt="md")  # other runs now: the HTML page and its figures go
    assert not (out / "index.html").exists()
    assert not list((out / "figures").glob("*.png"))
