"""Commands sharing one runs folder at once: what one reads while another writes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
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


@pytest.mark.parametrize("read", [lambda runs: leaderboard(runs),
                                  lambda runs: load_runs(runs).frame],
                         ids=["leaderboard", "report"])
def test_a_folder_vanishing_mid_walk_is_passed_over(tmp_path, monkeypatch, read):
    runs = tmp_path / "runs"
    write_record(runs, "base_cnn", "none", "0", 0.9)
    staging = _vanishing(monkeypatch, runs)
    frame = read(runs)
    assert not staging.exists()
    assert list(frame["trial_id"]) == ["0"]


def test_an_empty_runs_path_is_the_current_folder_as_before_the_walk_changed(tmp_path,
                                                                             monkeypatch):
    write_record(tmp_path, "base_cnn", "none", "0", 0.9)
    monkeypatch.chdir(tmp_path)
    assert list(leaderboard("")["trial_id"]) == ["0"]  # os.walk('') listed nothing
    assert list(load_runs("").frame["trial_id"]) == ["0"]


def test_the_leaderboard_command_while_an_export_renames_its_staging_folder(tmp_path,
                                                                            monkeypatch):
    runs = tmp_path / "runs"
    write_record(runs, "base_cnn", "none", "0", 0.9)
    _vanishing(monkeypatch, runs)
    result = CliRunner().invoke(main, ["leaderboard", "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert "No such file" not in result.output


def test_two_ensembles_of_one_name_at_once_never_mix_their_files(tmp_path, monkeypatch):
    """A teammate's ``ensemble --top 2`` writing while ours does (a better trial came in
    between, so other members): the record's members must be the predictions' members."""
    import importlib
    import json

    import numpy as np
    import pytest

    from autopneumo import locking
    from autopneumo.errors import RunsError
    from autopneumo.evaluation import read_predictions
    from tests.records import edit_record, three_trials

    ensemble_module = importlib.import_module("autopneumo.ensemble")  # not the function
    runs = three_trials(tmp_path)
    write = ensemble_module._write_predictions
    other: list = []

    def racing(*args, **kwargs):
        write(*args, **kwargs)
        if not other:  # ours has written its predictions, not yet its record
            other.append(None)
            edit_record(runs / "resnet18__none" / "trial_c" / "record.json",
                        val={"objective": 0.99})
            mine = locking.owner()
            with monkeypatch.context() as m, pytest.raises(RunsError) as refused:
                # as another process (our parent, alive) would run it
                m.setattr(locking, "owner", lambda: mine | {
                    "pid": os.getppid(), "started": locking._start_time(os.getppid())})
                ensemble_module.ensemble(runs, top=2, n_boot=20)
            other[0] = str(refused.value)

    monkeypatch.setattr(ensemble_module, "_write_predictions", racing)
    record = ensemble_module.ensemble(runs, top=2, n_boot=20)
    assert "another ensemble" in other[0] and "top2.lock" in other[0]
    saved = json.loads((runs / "_ensemble" / "top2" / "record.json").read_text())
    assert [m["trial_dir"] for m in saved["members"]] == [m["trial_dir"]
                                                          for m in record["members"]]
    ours = read_predictions(runs / "_ensemble" / "top2")["val"]["probability"]
    members = [read_predictions(Path(m["trial_dir"]))["val"]["probability"]
               for m in saved["members"]]
    np.testing.assert_allclose(ours, np.mean(members, axis=0))


def test_export_of_an_ensemble_built_again_as_it_reads_refuses(tmp_path, monkeypatch):
    """``export --ensemble top2`` read the record, then copied the predictions' validation
    scores, which an ``ensemble --top 2`` run meanwhile (other members) had replaced: the
    card's members and threshold were one ensemble's, its validation scores another's."""
    import importlib

    import pytest

    from autopneumo.ensemble import ensemble
    from autopneumo.errors import RunsError
    from tests.records import edit_record

    inference = importlib.import_module("autopneumo.inference")
    runs, third = _two_members_and_a_worse_one(tmp_path)
    ensemble(runs, top=2, n_boot=20)
    member_record = inference._member_record
    rebuilt: list = []

    def racing(member):
        if not rebuilt:  # the export has read the record: a teammate's ensemble now
            rebuilt.append(True)
            edit_record(third, val={"objective": 0.99})
            ensemble(runs, top=2, n_boot=20)
        return member_record(member)

    monkeypatch.setattr(inference, "_member_record", racing)
    with pytest.raises(RunsError, match="predictions.csv: not the scores its record.json"):
        inference.export(runs, tmp_path / "bundle", ensemble="top2")
    assert not (tmp_path / "bundle").exists()
    monkeypatch.setattr(inference, "_member_record", member_record)
    out = inference.export(runs, tmp_path / "bundle", ensemble="top2")[0]  # run again: fine
    assert (out / "validation_scores.csv").is_file()


def test_a_record_removed_between_the_walk_and_its_read_is_not_called_unreadable(
        tmp_path, monkeypatch):
    """finalize removes a seeds ensemble it ranked otherwise before; a leaderboard that had
    just listed its record.json said 'skipped: ...: No such file or directory' on stderr,
    as for a damaged record."""
    import importlib

    board = importlib.import_module("autopneumo.leaderboard")
    runs = tmp_path / "runs"
    write_record(runs, "base_cnn", "none", "0", 0.9)
    gone = write_record(runs, "base_cnn", "flip", "0", 0.5)
    listed = board.files_named

    def racing(root, name):
        found = listed(root, name)
        gone.unlink(missing_ok=True)
        return found

    monkeypatch.setattr(board, "files_named", racing)
    result = CliRunner().invoke(main, ["leaderboard", "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert "skipped" not in result.output and "No such file" not in result.output
    assert list(board.leaderboard(runs)["project"]) == ["base_cnn__none"]


def test_an_ensemble_record_left_behind_its_predictions_is_not_exported_in_a_loop(
        tmp_path, monkeypatch):
    """An ensemble stopped between its predictions and its record (a full disk, a kill)
    left the old record beside new scores: export said 'run export again', which refused
    the same way every time; it now says to build the ensemble again."""
    import importlib

    import pytest

    from autopneumo.errors import RunsError
    from tests.records import edit_record

    ens = importlib.import_module("autopneumo.ensemble")
    inference = importlib.import_module("autopneumo.inference")
    runs, third = _two_members_and_a_worse_one(tmp_path)
    ens.ensemble(runs, top=2, n_boot=20)
    edit_record(third, val={"objective": 0.99})  # other members: other scores

    def full_disk(path, *args, **kwargs):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(ens, "atomic_write_json", full_disk)
    with pytest.raises(OSError):
        ens.ensemble(runs, top=2, n_boot=20)
    for _ in range(2):
        with pytest.raises(RunsError, match="build the ensemble again") as info:
            inference.export(runs, tmp_path / "bundle", ensemble="top2")
        assert "run export again" not in str(info.value)
    from autopneumo.locking import owner

    other = owner() | {"pid": 1, "started": None}  # another process, running: building it
    (runs / ".ensemble_top2.lock").write_text(json.dumps(other))
    with pytest.raises(RunsError, match="meanwhile.*run export again"):
        inference.export(runs, tmp_path / "bundle", ensemble="top2")


def _two_members_and_a_worse_one(tmp_path: Path) -> tuple[Path, Path]:
    """Two ensemble members and a third trial ranked below them (its record's path), which
    a better validation objective moves into a top-2 ensemble built again."""
    from tests.records import edit_record
    from tests.test_export_rules import _tiny_model, _two_members

    runs = _two_members(tmp_path)
    third = write_record(runs, "base_cnn", "geometric", "0", 0.1, seed=0)
    edit_record(third, data={"image_size": 32, "channels": 1, "data_hash": "h1",
                             "data_list_hash": "l1"}, trial_dir=str(third.parent),
                model_sha256=_tiny_model(third.parent / "model.keras", 32))
    return runs, third
