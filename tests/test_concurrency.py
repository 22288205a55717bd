"""Commands sharing one runs folder at once: what one reads while another writes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from click.testing import CliRunner

from autopneumo.cli import main
from autopneumo.leaderboard import leaderboard
from autopneumo.report.runs import load_runs
from tests.records import write_record


def _vanishing(monkeypatch, runs: Path) -> Path:
    """A folder (an export's staging folder) that another command removes just after the
    walk listed ``runs`` and before it descends into it."""
    staging = runs / ".exported.export-host-123"
    (staging / "sub").mkdir(parents=True)
    scandir = os.scandir

    class Listed:  # what scandir listed, the folder gone since
        def __init__(self, entries):
            self.entries = iter(list(entries))

        def __iter__(self):
            return self

        def __next__(self):
            return next(self.entries)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def close(self):
            pass

    def racing(path="."):
        if not (isinstance(path, str | os.PathLike) and Path(path) == runs):
            return scandir(path)
        with scandir(path) as it:
            listing = Listed(it)
        shutil.rmtree(staging, ignore_errors=True)
        return listing

    monkeypatch.setattr(os, "scandir", racing)
    return staging


def test_a_folder_vanishing_mid_walk_is_passed_over_by_the_leaderboard(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    write_record(runs, "base_cnn", "none", "0", 0.9)
    staging = _vanishing(monkeypatch, runs)
    frame = leaderboard(runs)
    assert not staging.exists()
    assert list(frame["trial_id"]) == ["0"]


def test_a_folder_vanishing_mid_walk_is_passed_over_by_the_report(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    write_record(runs, "base_cnn", "none", "0", 0.9)
    staging = _vanishing(monkeypatch, runs)
    loaded = load_runs(runs)
    assert not staging.exists()
    assert list(loaded.frame["trial_id"]) == ["0"]


def test_the_leaderboard_command_while_an_export_renames_its_staging_folder(tmp_path,
                                                                            monkeypatch):
    runs = tmp_path / "runs"
    write_record(runs, "base_cnn", "none", "0", 0.9)
    _vanishing(monkeypatch, runs)
    result = CliRunner().invoke(main, ["leaderboard", "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert "No such file" not in result.output
