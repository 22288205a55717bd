"""The review of the twentieth session's own fixes (bd73adf..c994c6f): each test failed
on them, and passes since."""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "L").save(path)


# --- D1: the duplicate merge works on decoded pixels, so the split depends on --image-size

def test_the_validation_split_does_not_depend_on_the_image_size(tmp_path):
    """Two different scans (one pixel differs by 1) of two patients are identical once
    decoded at 8 px but not at 64 px: the merge joins them at 8 px only, and the whole
    PNEUMONIA stratum is drawn again. Before bd73adf..HEAD the split came from the ids
    alone, the same at every size (a study's families at different sizes shared it)."""
    from autopneumo.data import load_dataset

    rng = np.random.default_rng(0)
    root = tmp_path / "d"
    for p in range(1, 21):
        _png(root / "train/NORMAL" / f"IM-{p:04d}-0001.png",
             rng.integers(0, 256, (64, 64), dtype=np.uint8))
    base = (np.add.outer(np.arange(64), np.arange(64)) * 2).astype(np.uint8)
    for p in range(1, 21):
        arr = rng.integers(0, 256, (64, 64), dtype=np.uint8)
        if p == 1:
            arr = base
        if p == 2:
            arr = base.copy()
            arr[10, 10] += 1
        _png(root / "train/PNEUMONIA" / f"person{p}_bacteria_1.png", arr)
    _png(root / "test/NORMAL/IM-0500-0001.png", rng.integers(0, 256, (64, 64), dtype=np.uint8))
    _png(root / "test/PNEUMONIA/person500_virus_1.png",
         rng.integers(0, 256, (64, 64), dtype=np.uint8))
    hashes = {size: load_dataset(root, image_size=size, channels=1, val_fraction=0.2, seed=1,
                                 cache_folder=tmp_path / "cache").manifest["split_hash"]
              for size in (8, 64)}
    assert hashes[8] == hashes[64]


# --- D2: id-less files keyed by path: the split of data without any name collision changes

def test_id_less_files_without_a_name_collision_keep_their_split(tmp_path):
    """No two files share a name, so `file:<name>` and `file:<path>` are the same patients;
    but the path ids sort val/ after train/, and GroupShuffleSplit draws over the sorted
    ids: a project of such data (names in train/ and val/) no longer resumes ('another
    scikit-learn or autopneumo?'). README says only data 'numbered per class' gets another
    split."""
    from autopneumo.data import load_dataset
    from autopneumo.data.patients import patients_of
    from autopneumo.data.splits import patient_split

    rng = np.random.default_rng(0)
    root = tmp_path / "d"
    for cls in ("NORMAL", "PNEUMONIA"):
        for i in range(6):
            _png(root / f"train/{cls}/{cls[0].lower()}b{i}.png",
                 rng.integers(0, 256, (16, 16), dtype=np.uint8))
            _png(root / f"val/{cls}/{cls[0].lower()}a{i}.png",
                 rng.integers(0, 256, (16, 16), dtype=np.uint8))
        _png(root / f"test/{cls}/t.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    ds = load_dataset(root, image_size=8, channels=1, val_fraction=0.25, seed=0,
                      cache_folder=tmp_path / "cache")
    files = np.concatenate([ds.train.files, ds.val.files])
    labels = np.concatenate([ds.train.y, ds.val.y])
    _, old_val = patient_split(labels, patients_of(files), 0.25, 0)  # the ids before
    assert sorted(files[old_val].tolist()) == sorted(ds.val.files.tolist())


# --- I1: predict checks any .keras beside a record against the record's model.keras

def _trial(tmp_path: Path) -> Path:
    trial = tmp_path / "runs" / "p" / "trial_0"
    trial.mkdir(parents=True)
    (trial / "model.keras").write_bytes(b"weights of the trial")
    (trial / "record.json").write_text(json.dumps({
        "status": "completed", "threshold": 0.4, "recall_target": 0.95,
        "family": "base_cnn", "policy": "none", "trial_id": "0",
        "data": {"image_size": 32, "channels": 1},
        "model_sha256": hashlib.sha256(b"weights of the trial").hexdigest()}))
    return trial


def test_another_keras_file_beside_a_record_is_not_checked_against_model_keras(tmp_path):
    """`predict --model trial_0/finetuned.keras` (a .keras file with a record beside, as the
    docstring allows): the record's model_sha256 describes model.keras, yet HEAD compares
    finetuned.keras with it, calls it a _ModelMismatch of a record 'being rewritten', spins
    SWAP_WAIT (10 s) and then refuses. Before the digest was recorded it loaded."""
    from autopneumo.inference import resolve_model

    trial = _trial(tmp_path)
    (trial / "finetuned.keras").write_bytes(b"other weights")
    start = time.monotonic()
    try:
        card = resolve_model(trial / "finetuned.keras")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"refused after {time.monotonic() - start:.1f} s: {exc}")
    assert card.threshold == 0.4


def test_a_model_replaced_long_ago_is_refused_at_once(tmp_path):
    """The loop waits for a record being rewritten only where the model file was written
    within SWAP_WAIT (a re-evaluation saves the model, then the record); a model copied
    over by hand long ago is refused at once, not after 10 s."""
    from autopneumo.errors import OptionError
    from autopneumo.inference import SWAP_WAIT, resolve_model

    trial = _trial(tmp_path)
    (trial / "model.keras").write_bytes(b"other weights")
    old = time.time() - 3600
    os.utime(trial / "model.keras", (old, old))
    start = time.monotonic()
    with pytest.raises(OptionError, match="was the model file replaced"):
        resolve_model(trial)
    assert time.monotonic() - start < SWAP_WAIT / 2


# --- R1: the stale-page rule compares CSVs that differ for the same runs

def test_the_other_format_page_of_the_same_runs_survives_another_spelling(tmp_path):
    """leaderboard.csv holds each row's trial_dir as the --runs-dir was spelled: the same
    runs reported as 'runs' and then as an absolute path differ, and the HTML page (and
    every figure) of the very same runs is removed 'of other runs than this one'."""
    from autopneumo.report import write_report
    from tests.records import three_trials

    runs = three_trials(tmp_path)
    out = tmp_path / "report"
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write_report(Path(runs.name), out, fmt="html", pixels=False, n_boot=50)
            write_report(runs.resolve(), out, fmt="md", pixels=False, n_boot=50)
    finally:
        os.chdir(cwd)
    assert (out / "index.html").exists()


def test_a_markdown_report_never_deletes_an_index_html_it_did_not_write(tmp_path):
    """`report --format md --out site/` into a folder with the user's own index.html (and
    figures/logo... named like ours): the first report keeps it (no leaderboard.csv yet);
    after one more trial the second report deletes it, as 'an earlier report's', since
    only the CSVs are compared, never the page (``_remove_pixels`` reads the page first)."""
    from autopneumo.report import write_report
    from tests.records import three_trials, write_record

    runs = three_trials(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html><body>our project's own page</body></html>")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_report(runs, site, fmt="md", pixels=False, n_boot=50)
        write_record(runs, "resnet18", "flip", "d", 0.9, seed=5)
        write_report(runs, site, fmt="md", pixels=False, n_boot=50)
    assert (site / "index.html").exists()


# --- the review of those fixes (c994c6f..c81f67c)

# --- R3: the stale page is judged before the CSV is replaced, removed after the page

def test_an_interrupted_report_does_not_leave_a_stale_page_for_good(tmp_path, monkeypatch):
    """_stale_page judges the other format's page against the old leaderboard.csv, then
    the new CSV is written, and the page is removed only once the new page is written. A
    report that fails in between leaves the old page beside the new CSV; the rerun then
    compares the new CSV with itself and keeps the page of other runs for good."""
    import autopneumo.report as report
    from tests.records import three_trials, write_record

    runs = three_trials(tmp_path)
    out = tmp_path / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.write_report(runs, out, fmt="md", pixels=False, n_boot=50)  # runs A
        write_record(runs, "resnet18", "flip", "d", 0.9, seed=5)          # runs B
        real = report.render_html

        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(report, "render_html", interrupted)
        with pytest.raises(KeyboardInterrupt):
            report.write_report(runs, out, fmt="html", pixels=False, n_boot=50)
        monkeypatch.setattr(report, "render_html", real)
        report.write_report(runs, out, fmt="html", pixels=False, n_boot=50)  # the rerun
    md = out / "summary.md"
    assert not md.exists() or "(4 trials" in md.read_text()  # HEAD: "(3 trials" kept


# --- R4: pages written before the mark existed are never judged stale

def test_an_html_page_of_other_runs_written_before_the_mark_is_removed(tmp_path):
    """Every index.html written before HEAD lacks the new <meta generator> mark, so a
    markdown report of other runs keeps it beside its CSV (c994c6f removed it), although
    autopneumo wrote it (its <title>autopneumo report</title>)."""
    import re

    from autopneumo.report import write_report
    from tests.records import three_trials, write_record

    runs = three_trials(tmp_path)
    out = tmp_path / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_report(runs, out, fmt="html", pixels=False, n_boot=50)
        page = out / "index.html"
        page.write_text(re.sub(r'<meta name="(generator|autopneumo-runs)"[^>]*>\n', "",
                               page.read_text()))  # as a page of the nineteenth session
        assert "<title>autopneumo report</title>" in page.read_text()
        write_record(runs, "resnet18", "flip", "d", 0.9, seed=5)
        write_report(runs, out, fmt="md", pixels=False, n_boot=50)
    assert not page.exists()  # HEAD: kept, a 3-trial page beside a 4-trial CSV


# --- R5: a report of no runs keeps the other format's page of earlier runs

def test_a_report_of_no_runs_removes_the_page_of_earlier_runs(tmp_path):
    """The frame of an empty runs folder has no `project` column, so _stale_page finds
    fewer than its four columns and keeps the page, although the old CSV lists 3 trials
    and the new one none."""
    from autopneumo.report import write_report
    from tests.records import three_trials

    runs = three_trials(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_report(runs, out, fmt="html", pixels=False, n_boot=50)
        write_report(empty, out, fmt="md", pixels=False, n_boot=50)
    assert not (out / "index.html").exists()  # HEAD: a 3-trial page beside an empty CSV


# --- D3: a pool name reused only by the test folder changes the pool's split

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_name_reused_only_in_test_keeps_the_pools_split(tmp_path, seed):
    """Within train + val every name is unique (nothing there was one patient of two
    files), but test/ numbers its files with the same names as some in train/. The
    Counter runs over the whole scan, so those train files become file:<path> and the
    pool's sorted ids, and with them the validation split, change; the commit says
    unique names keep their split (README: "the others keep theirs")."""
    from autopneumo.data import load_dataset
    from autopneumo.data.patients import patients_of
    from autopneumo.data.splits import patient_split

    rng = np.random.default_rng(0)
    root = tmp_path / "d"
    for cls in ("NORMAL", "PNEUMONIA"):
        c = cls[0].lower()
        for i in range(8):
            _png(root / f"train/{cls}/{c}{i:04d}.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
        for i in range(2):  # the test folder numbers its own files from 0 as well
            _png(root / f"test/{cls}/{c}{i:04d}.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    ds = load_dataset(root, image_size=8, channels=1, val_fraction=0.25, seed=seed,
                      cache_folder=tmp_path / "cache")
    files = np.concatenate([ds.train.files, ds.val.files])
    labels = np.concatenate([ds.train.y, ds.val.y])
    _, old_val = patient_split(labels, patients_of(files), 0.25, seed)  # bd73adf's ids
    assert sorted(files[old_val].tolist()) == sorted(ds.val.files.tolist())
