"""Leaderboard ranking and the report, on synthetic records (no training)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import precision_score, recall_score, roc_auc_score

import autopneumo
from autopneumo.report import safe_csv, write_report
from tests.records import three_trials, write_record


@pytest.fixture
def runs(tmp_path):
    runs = tmp_path / "runs"
    # validation order: a > b > c; the test order is deliberately the reverse
    write_record(runs, "base_cnn", "none", "0", 0.35, seed=1, test_quality=0.05)
    write_record(runs, "base_cnn", "flip", "0", 0.2, seed=2, test_quality=0.2)
    write_record(runs, "resnet18", "none", "0", 0.05, seed=3, test_quality=0.35)
    write_record(runs, "resnet18", "none", "1", 0.0, status="failed")
    return runs


def test_leaderboard_ranks_by_validation_never_by_test(runs):
    frame = autopneumo.leaderboard(runs)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["rank"]) == [1, 2, 3, 4]
    assert list(frame["val_objective"].iloc[:3]) == sorted(frame["val_objective"].iloc[:3],
                                                           reverse=True)
    assert frame.iloc[0]["policy"] == "none" and frame.iloc[0]["family"] == "base_cnn"
    # the test numbers rank the other way round, and are not used
    assert frame.iloc[0]["test_auc"] < frame.iloc[2]["test_auc"]
    assert frame.iloc[-1]["status"] == "failed"
    assert frame.iloc[-1]["message"].startswith("RuntimeError")
    assert "hp:model.width" in frame.columns


def test_tied_trials_rank_by_their_number_whatever_its_padding(tmp_path):
    """keras-tuner pads trial ids to the width of --max-trials: a project resumed with
    more trials holds "1" and "02"; tied on validation, "02" ranked before "1"."""
    for trial_id in ("02", "1", "10"):
        write_record(tmp_path, "base_cnn", "none", trial_id, 0.8)  # same seed: tied
    frame = autopneumo.leaderboard(tmp_path)
    assert frame["val_objective"].nunique() == 1
    assert list(frame["trial_id"]) == ["1", "02", "10"]


def test_leaderboard_top_and_skips_corrupt_records(runs):
    (runs / "base_cnn__none" / "trial_9").mkdir()
    (runs / "base_cnn__none" / "trial_9" / "record.json").write_text("{ truncated")
    frame = autopneumo.leaderboard(runs, top=2)
    assert len(frame) == 2
    assert len(frame.attrs["skipped"]) == 1 and "trial_9" in frame.attrs["skipped"][0]


@pytest.mark.parametrize("text", [
    json.dumps({"trial_id": [2], "status": "completed", "val": {"objective": 0.5}}),
    json.dumps({"trial_id": {"n": 2}, "status": "completed"}),
    json.dumps({"trial_id": None, "status": "completed"}),
    "[" * 100000 + "]" * 100000,  # json: RecursionError
])
def test_a_record_with_an_odd_trial_id_or_nested_too_deeply_is_skipped(runs, text):
    """Review 21 #7: a trial_id that is a list or a dict made pandas' sort raise
    "unhashable type" and a record nested too deeply a RecursionError: one file stopped
    leaderboard, report, ensemble and export. Now it is skipped like other bad records."""
    from autopneumo.leaderboard import load_record

    bad = runs / "base_cnn__none" / "trial_9" / "record.json"
    bad.parent.mkdir()
    bad.write_text(text)
    with pytest.raises(ValueError, match="not an autopneumo trial record"):
        load_record(bad)
    frame = autopneumo.leaderboard(runs)
    assert len(frame) == 4 and "trial_9" not in "".join(frame["trial_dir"])
    assert len(frame.attrs["skipped"]) == 1 and "trial_9" in frame.attrs["skipped"][0]


def test_leaderboard_warns_when_rows_cannot_be_compared(runs, tmp_path):
    """Validation objectives are exact on their own split and recall target only."""
    import json

    from click.testing import CliRunner

    from autopneumo.cli import main

    assert autopneumo.leaderboard(runs).attrs["mixed"] == []
    paths = sorted(runs.rglob("record.json"))

    def edit(path, **changes):
        record = json.loads(path.read_text())
        record.update(changes)
        path.write_text(json.dumps(record))

    for path in paths:  # one split everywhere: nothing to say
        edit(path, data={"image_size": 32, "data_hash": "abcdef1234", "split_seed": 0,
                         "val_fraction": 0.2})
    assert autopneumo.leaderboard(runs).attrs["mixed"] == []
    edit(paths[0], data={"image_size": 32, "data_hash": "abcdef1234", "split_seed": 1,
                         "val_fraction": 0.2}, recall_target=0.9)
    mixed = autopneumo.leaderboard(runs, top=1).attrs["mixed"]  # about all rows, not the top
    assert len(mixed) == 2
    assert mixed[0].startswith("rows ranked together used different recall targets: "
                               "0.9 (1 rows), 0.95 (2 rows)")
    assert "data abcdef12, seed 0, val fraction 0.2 (2 trials); " \
           "data abcdef12, seed 1, val fraction 0.2 (1 trials)" in mixed[1]
    out = CliRunner().invoke(main, ["leaderboard", "--runs-dir", str(runs)])
    assert out.exit_code == 0  # the warnings on stderr, as every command's: the table alone
    assert "warning: rows ranked together used different recall" in out.stderr  # on stdout
    assert "rows ranked together" not in out.stdout
    broken = paths[0].parent.parent / "trial_99" / "record.json"
    broken.parent.mkdir()
    broken.write_text("{not json")
    out = CliRunner().invoke(main, ["leaderboard", "--runs-dir", str(runs)])
    assert f"skipped: {broken}: " in out.stderr and str(broken) not in out.stdout
    broken.unlink()
    assert "test NPV" in out.output  # the negative predictive value, also in the terminal
    write_report(runs, tmp_path / "html", pixels=False)
    page = (tmp_path / "html" / "index.html").read_text()
    assert "Not comparable: trials ranked together were validated on different splits" in page


def test_older_records_file_list_hash_is_not_mixed_with_the_content_hash_of_the_same_files(
        runs, tmp_path):
    """A runs folder with a project searched before data hashes covered file contents (its
    records hold the file-list hash) and a newer one on the same files is not "mixed"."""
    import json

    paths = sorted(runs.rglob("record.json"))
    split = {"image_size": 32, "split_seed": 0, "val_fraction": 0.2}

    def set_data(path, **data):
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "data": {**split, **data}}))

    set_data(paths[0], data_hash="list1")  # older: the file-list hash only
    for path in paths[1:]:
        set_data(path, data_hash="content1", data_list_hash="list1")
    frame = autopneumo.leaderboard(runs)
    assert frame.attrs["mixed"] == []
    assert set(frame["validation_split"].dropna()) == {"data content1, seed 0, val fraction 0.2"}
    write_report(runs, tmp_path / "same", pixels=False)
    assert "different data or preprocessing" not in (tmp_path / "same" / "index.html").read_text()

    # the older hash names two contents (same names and sizes, other bytes): not resolved
    set_data(paths[1], data_hash="content2", data_list_hash="list1")
    splits = set(autopneumo.leaderboard(runs)["validation_split"].dropna())
    assert {s.split(",")[0] for s in splits} == {"data list1", "data content1", "data content2"}
    # other files altogether
    set_data(paths[1], data_hash="content1", data_list_hash="list1")
    set_data(paths[0], data_hash="list2")
    assert len(autopneumo.leaderboard(runs).attrs["mixed"]) == 1
    write_report(runs, tmp_path / "other", pixels=False)
    assert "different data or preprocessing" in (tmp_path / "other" / "index.html").read_text()


def test_report_numbers_match_csv_and_predictions(runs, tmp_path):
    out = tmp_path / "report"
    written = write_report(runs, out)
    assert {p.name for p in written} >= {"leaderboard.csv", "index.html", "family_policy.png"}
    csv = pd.read_csv(out / "leaderboard.csv")
    page = (out / "index.html").read_text()
    for _, row in csv[csv.status == "completed"].iterrows():
        preds = pd.read_csv(f"{row.trial_dir}/predictions.csv")
        test = preds[preds.split == "test"]
        pred = (test.probability >= row.threshold).astype(int)
        # CSV == independent recomputation with scikit-learn
        assert row.test_precision == pytest.approx(precision_score(test.label, pred))
        assert row.test_recall == pytest.approx(recall_score(test.label, pred))
        assert row.test_auc == pytest.approx(roc_auc_score(test.label, test.probability))
        # HTML shows the CSV's numbers with their intervals
        cell = f"{row.test_precision:.3f} [{row.test_precision_lo:.3f}, {row.test_precision_hi:.3f}]"
        assert cell in page
        assert row.test_precision_lo <= row.test_precision <= row.test_precision_hi
    assert "data:image/png;base64," in page


def test_report_escapes_names_and_csv_formulas(tmp_path):
    runs = tmp_path / "runs"
    path = write_record(runs, "base_cnn", "none", "0", 0.8)
    text = path.read_text().replace('"trial_id": "0"', '"trial_id": "<script>alert(1)</script>"')
    text = text.replace('"family": "base_cnn"', '"family": "=HYPERLINK(\\"http://x\\")"')
    path.write_text(text)
    out = tmp_path / "report"
    write_report(runs, out)
    page = (out / "index.html").read_text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Only one completed trial" in page
    csv_text = (out / "leaderboard.csv").read_text()
    assert not re.search(r'(^|,)"?=HYPERLINK', csv_text, re.M)
    assert "'=HYPERLINK" in csv_text


def test_safe_csv_leaves_numbers_alone():
    frame = pd.DataFrame({"name": ["=1+1", "@cmd", "ok", "-2"], "value": [-1.5, 2.0, 3.0, 4.0]})
    text = safe_csv(frame)
    assert "'=1+1" in text and "'@cmd" in text and "'-2" in text and "-1.5" in text


def test_markdown_summary(runs, tmp_path):
    written = write_report(runs, tmp_path / "md", fmt="md")
    summary = (tmp_path / "md" / "summary.md").read_text()
    assert [p.name for p in written] == ["leaderboard.csv", "calibration.csv", "summary.md"]
    assert summary.count("\n| ") == 5  # header + 4 trials
    assert "| 1 | base_cnn | none |" in summary


def test_report_on_empty_runs_folder(tmp_path):
    (tmp_path / "runs").mkdir()
    write_report(tmp_path / "runs", tmp_path / "out")
    assert "No completed trial yet" in (tmp_path / "out" / "index.html").read_text()


def test_shortcut_guard_notes_without_data(runs, tmp_path):
    """Records with no data folder: the shortcut guard says why it has no numbers, in the
    HTML and the Markdown, with --no-pixels, and writes no CSV for them."""
    written = write_report(runs, tmp_path / "r", pixels=False)
    page = (tmp_path / "r" / "index.html").read_text()
    guard = page[page.index('<section id="gradcam">'):]
    guard = guard[:guard.index("</section>")]
    assert "Shortcut check" in guard and "Grad-CAM focus" not in guard
    assert "names no data folder, so the shortcut check did not run" in guard
    assert "is not available here, so there is no Grad-CAM" in guard
    md = write_report(runs, tmp_path / "md", fmt="md", pixels=False)
    text = md[-1].read_text()
    assert "## Shortcut guard" in text and "shortcut check did not run" in text
    names = {p.name for p in written + md}
    assert not names & {"gradcam_focus.csv", "shortcuts.csv"}


def test_reference_runs_ranked_among_trials_are_marked_and_warned_about(runs):
    """A classroom reference run's validation objective comes from an image-level split
    that leaks patients: in a table with search trials, its row says ref and a warning
    says why it is not comparable; ensembles say ens."""
    import json

    from click.testing import CliRunner

    from autopneumo.cli import main

    paths = sorted(runs.rglob("record.json"))
    record = json.loads(paths[0].read_text())
    paths[0].write_text(json.dumps({**record, "reference": True}))
    record = json.loads(paths[1].read_text())
    paths[1].write_text(json.dumps({**record, "ensemble": {"members": []}, "kind": "ensemble"}))
    frame = autopneumo.leaderboard(runs)
    assert frame["reference"].tolist().count(True) == 1
    [warning] = frame.attrs["mixed"]
    assert warning.startswith("1 reference run(s) (marked as such) are ranked among the search "
                              "trials")
    out = CliRunner().invoke(main, ["leaderboard", "--runs-dir", str(runs)])
    assert out.exit_code == 0, out.output
    rows = {line.split("│")[4].strip() for line in out.output.splitlines() if "│" in line}
    trial_ids = [str(t) for t in frame["trial_id"]]
    ref = trial_ids[frame["reference"].tolist().index(True)]
    assert f"{ref} (ref)" in rows and sum("(ens)" in r for r in rows) == 1
    assert "warning: 1 reference run(s)" in out.stderr
    n = int((~frame["reference"] & ~frame["ensemble"]).sum())
    assert (f"autopneumo leaderboard ({n} trials, 1 ensemble, 1 reference run, ranked by "
            "validation)") in " ".join(out.stdout.split())  # the title, however wrapped


def test_a_record_of_the_wrong_shape_is_skipped_and_the_best_trial_is_always_shown(runs):
    """Valid JSON with a field of the wrong type is listed as skipped, not a traceback; a
    table cut to its top rows still shows the best search trial when ensembles (which tie
    with their best member, and now rank after it) fill the top."""
    import json

    from autopneumo.report.tables import shown_rows

    paths = sorted(runs.rglob("record.json"))
    bad = paths[-1].parent.parent / "trial_bad"
    bad.mkdir()
    record = json.loads(paths[-1].read_text())
    (bad / "record.json").write_text(json.dumps({**record, "trial_id": "bad", "test": "oops"}))
    frame = autopneumo.leaderboard(runs)
    assert "bad" not in frame["trial_id"].astype(str).tolist()
    assert any("trial_bad" in s and "not a trial record" in s for s in frame.attrs["skipped"])
    # an ensemble with its best member's validation scores ranks after that member
    best = frame.iloc[0]
    ens = frame.iloc[[0]].assign(ensemble=True, trial_id="top2", project="_ensemble")
    tied = pd.concat([ens, frame]).reset_index(drop=True)
    shown = shown_rows(tied, 1)
    assert shown.iloc[0]["trial_id"] == "top2"  # as given; the best trial is added below
    assert best["trial_id"] in shown["trial_id"].tolist()


def test_markdown_of_failed_trials_only_says_so(tmp_path):
    from tests.records import write_record

    runs = tmp_path / "runs"
    for i in range(2):
        write_record(runs, "base_cnn", "none", f"{i}", 0.5, status="failed")
    write_report(runs, tmp_path / "md", fmt="md", pixels=False)
    summary = (tmp_path / "md" / "summary.md").read_text()
    assert ("No completed trial yet; 2 failed (the first: RuntimeError: loss became NaN)."
            in summary)


# --- from the sixteenth session's mutation review: each test kills a mutant that passed

def test_an_ensemble_tied_with_a_search_trial_ranks_after_it(tmp_path):
    import autopneumo

    runs = three_trials(tmp_path)
    src = runs / "base_cnn__none" / "trial_a" / "record.json"
    dst = runs / "_ensemble" / "top1_tta" / "record.json"
    dst.parent.mkdir(parents=True)
    dst.write_text(json.dumps({**json.loads(src.read_text()), "kind": "ensemble",
                               "project": "_ensemble", "trial_id": "top1_tta"}))
    frame = autopneumo.leaderboard(runs)
    assert frame["trial_id"].tolist()[:2] == ["a", "top1_tta"]


def test_flag_reads_nan_none_and_missing_as_false():
    from autopneumo.leaderboard import flag

    assert flag({"reference": float("nan")}, "reference") is False
    assert flag({"reference": None}, "reference") is False
    assert flag({}, "reference") is False
    assert flag({"reference": np.True_}, "reference") is True


def test_test_auc_never_breaks_a_validation_tie(tmp_path):
    import autopneumo

    runs = three_trials(tmp_path)
    src = runs / "base_cnn__flip" / "trial_b" / "record.json"
    record = json.loads(src.read_text())
    dst = runs / "_ensemble" / "top1_tta" / "record.json"
    dst.parent.mkdir(parents=True)
    dst.write_text(json.dumps({**record, "kind": "ensemble", "project": "_ensemble",
                               "trial_id": "top1_tta",
                               "test": {**record["test"], "auc": 0.999}}))
    frame = autopneumo.leaderboard(runs)
    assert frame["trial_id"].tolist()[:3] == ["a", "b", "top1_tta"]


def test_trials_with_one_seed_and_fraction_but_other_validation_images_are_flagged(tmp_path):
    """Records since the sixteenth session name their validation images (``split_hash``);
    the same data, seed and fraction drawn another way (another scikit-learn) is not the
    same split. Records without the hash are not flagged."""
    from autopneumo.leaderboard import mixed_settings

    runs = tmp_path / "runs"
    data = {"data_hash": "d" * 16, "split_seed": 0, "val_fraction": 0.2}
    for trial_id, hashed in (("a", "s1"), ("b", "s1"), ("c", None)):
        path = write_record(runs, "base_cnn", "flip", trial_id, 0.3, seed=1)
        record = json.loads(path.read_text())
        record["data"] = {**data, **({"split_hash": hashed} if hashed else {})}
        path.write_text(json.dumps(record))
    frame = autopneumo.leaderboard(runs)
    assert frame.attrs["mixed"] == []
    assert sorted(frame["split_hash"].dropna()) == ["s1", "s1"]
    frame.loc[frame.trial_id == "b", "split_hash"] = "s2"
    (warning,) = mixed_settings(frame)
    assert warning.startswith("trials with the same data dddddddd, seed 0, val fraction 0.2 "
                              "were validated on different images")


def test_reference_runs_on_their_own_split_do_not_count_as_another_split(tmp_path):
    """A classroom reference run validates on its own image-level split: it is marked as
    a reference (its own warning), not reported as search trials on different splits."""
    runs = tmp_path / "runs"
    for trial_id, seed, reference in (("a", 0, False), ("b", 0, False), ("ref", 7, True)):
        path = write_record(runs, "base_cnn", "flip", trial_id, 0.3, seed=1)
        record = json.loads(path.read_text())
        record["data"] = {"data_hash": "d" * 16, "split_seed": seed, "val_fraction": 0.2}
        record["reference"] = reference
        path.write_text(json.dumps(record))
    mixed = autopneumo.leaderboard(runs).attrs["mixed"]
    assert not any("different splits" in m for m in mixed)
    assert any(m.startswith("1 reference run(s)") for m in mixed)


def test_markdown_summary_counts_trials_apart_and_keeps_apostrophes(tmp_path):
    """The user review 22: summary.md's title counted ensemble rows as trials, and its
    text read "seed&#x27;s" in the raw file (HTML-escaped quotes, where only <, > and &
    need it)."""
    from autopneumo.report.markdown import markdown_summary
    from tests.records import three_trials

    frame = autopneumo.leaderboard(three_trials(tmp_path))
    extra = frame.iloc[[0]].assign(ensemble=True, family="ensemble", policy="top 2 o'clock <b>",
                                   trial_id="top2")
    frame = pd.concat([frame, extra], ignore_index=True)
    text = markdown_summary(frame, 25)
    assert text.startswith("# autopneumo leaderboard (3 trials, 1 ensemble, ranked by validation)")
    assert "top 2 o'clock &lt;b&gt;" in text and "&#x27;" not in text
