"""Faults and interruptions (the fault review): nothing computed is lost or overwritten,
and what a killed process left behind is recognised or cleaned up."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from autopneumo.errors import AutopneumoNote, OptionError, RunsError
from tests.tiny_spaces import small_cnn


@pytest.fixture(scope="module")
def project(tiny_kermany, tmp_path_factory):
    """A finished 2-trial search (copied by each test that damages it)."""
    from autopneumo.tuning import SearchConfig, search

    root = tmp_path_factory.mktemp("fault")
    space = root / "small_cnn.yaml"
    space.write_text(small_cnn())
    config = SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="random", max_trials=2,
                          epochs=1, image_size=32, runs_dir=root / "runs", spaces=[space])
    search(config)
    return config


def _copy(config, tmp_path):
    from dataclasses import replace

    shutil.copytree(config.runs_dir, tmp_path / "runs")
    return replace(config, runs_dir=tmp_path / "runs", max_trials=3)


def _fingerprints(runs: Path) -> dict[str, bytes]:
    return {str(p.relative_to(runs)): p.read_bytes()
            for p in sorted(runs.rglob("*")) if p.name in ("record.json", "model.keras")}


def test_a_trial_folder_deleted_by_hand_stops_the_resume_before_anything_is_overwritten(
        project, tmp_path):
    """keras-tuner numbers a new trial by the count it reloads: with trial_0 deleted it
    trained trial "1" into the existing trial_1 (its model and record replaced), then
    failed with KeyError '0', and did so again on every rerun."""
    from autopneumo.tuning import search

    config = _copy(project, tmp_path)
    [first] = sorted(config.runs_dir.glob("*/trial_*"))[:1]
    shutil.rmtree(first)
    kept = _fingerprints(config.runs_dir)
    with pytest.raises(RunsError, match=rf"{first.name} is missing \(1 of the 2 trials "
                                        "keras-tuner started\\); resumed, keras-tuner would "
                                        "number new trials into existing folders"):
        search(config)
    assert _fingerprints(config.runs_dir) == kept


def test_a_missing_oracle_beside_trials_stops_the_resume(project, tmp_path):
    """With oracle.json (and tuner0.json) deleted, the next search numbered from trial 0
    again and overwrote every trial; with oracle.json alone, a NotFoundError traceback."""
    from autopneumo.tuning import search

    config = _copy(project, tmp_path)
    project_dir = config.runs_dir / config.project
    (project_dir / "oracle.json").unlink()
    kept = _fingerprints(config.runs_dir)
    with pytest.raises(RunsError, match="oracle.json: missing, but the project holds 2 "
                                        "recorded trial\\(s\\): keras-tuner would start "
                                        "again from trial 0 over them"):
        search(config)
    for tuner_file in project_dir.glob("tuner*.json"):
        tuner_file.unlink()
    with pytest.raises(RunsError, match="oracle.json: missing"):
        search(config)
    assert _fingerprints(config.runs_dir) == kept


def test_a_trial_begun_as_the_search_was_killed_is_run_again(project, tmp_path):
    """keras-tuner writes a new trial's trial.json, then oracle.json: a kill in between
    left a trial the oracle never listed, never run again (the search ended a trial
    short; seen in CI under load once trial.json was synced to disk)."""
    from autopneumo.tuning import search

    config = _copy(project, tmp_path)
    project_dir = config.runs_dir / config.project
    last = sorted(project_dir.glob("trial_*"))[-1]
    begun = project_dir / "trial_2"
    begun.mkdir()
    state = json.loads((last / "trial.json").read_text())
    state.update(trial_id="2", status="RUNNING", score=None, best_step=0)
    (begun / "trial.json").write_text(json.dumps(state))
    with pytest.warns(AutopneumoNote, match="trial_2 was begun but never recorded"):
        records = search(config)
    assert sorted(r["trial_id"] for r in records if r["status"] == "completed") == ["0", "1", "2"]


def test_keras_tuners_state_is_written_by_rename_not_in_place(project, tmp_path):
    """keras-tuner truncates oracle.json and trial.json, then writes: a kill in between
    left a 0-byte file and a project that could never resume. Written as autopneumo's own
    files are, the old file stays whole until the new one replaces it (a new inode)."""
    from keras_tuner.src import utils

    from autopneumo.tuning import _atomic_tuner_state

    _atomic_tuner_state()  # as every search installs it
    path = tmp_path / "oracle.json"
    path.write_text('{"old": true}')
    before = path.stat().st_ino
    utils.save_json(str(path), {"new": True})
    assert json.loads(path.read_text()) == {"new": True}
    assert path.stat().st_ino != before  # renamed over, never truncated in place
    assert [p.name for p in tmp_path.iterdir()] == ["oracle.json"]  # no temp left


def test_an_export_is_replaced_by_renames_and_a_killed_exports_leftovers_go(project, tmp_path):
    """The old export was deleted in place before the new one moved in: a kill there left
    a rank folder without its card, refused by every later export and by predict."""
    from autopneumo.atomic import HOST_TAG
    from autopneumo.inference import export

    config = _copy(project, tmp_path)
    out = tmp_path / "exp"
    export(config.runs_dir, out, top=2)
    before = out.stat().st_ino
    dead = 2 ** 22 + 12345  # above any pid this test machine gives out
    for leftover in (f".exp.export-{HOST_TAG}-{dead}", f".exp.old-{HOST_TAG}-{dead}"):
        (tmp_path / leftover / "rank1_x").mkdir(parents=True)
    live = tmp_path / f".exp.export-{HOST_TAG}-{os.getppid()}"  # another export, running
    live.mkdir()
    export(config.runs_dir, out, top=2)
    assert out.stat().st_ino != before  # the new folder renamed in whole
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in out.iterdir() if (p / "model_card.json").is_file())
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".exp")) == [
        live.name]
    # an --out that is a link to a folder: the folder is replaced, the link stays (the diff
    # review's B1: the link itself was replaced by a folder, a dangling one left aside)
    link = tmp_path / "current"
    link.symlink_to(out)
    export(config.runs_dir, link, top=1)
    assert link.is_symlink() and (out / "model_card.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".current")]


def test_an_export_into_a_folder_that_cannot_be_renamed_replaces_in_place(project, tmp_path,
                                                                           monkeypatch):
    """A mount point cannot be renamed: the old way, a rank folder's card removed last."""
    from autopneumo.inference import export

    config = _copy(project, tmp_path)
    out = tmp_path / "exp"
    export(config.runs_dir, out, top=2)
    real = Path.rename

    def no_renaming_out(self, target):
        if Path(self) == out:
            raise OSError(16, "Device or resource busy", str(self))
        return real(self, target)

    monkeypatch.setattr(Path, "rename", no_renaming_out)
    removed = []
    real_unlink = Path.unlink
    monkeypatch.setattr(Path, "unlink", lambda self, *a, **k: (removed.append(self.name),
                                                               real_unlink(self, *a, **k)))
    export(config.runs_dir, out, top=1)
    names = sorted(p.name for p in out.iterdir())
    assert "model.keras" in names and "model_card.json" in names
    assert not [n for n in names if n.startswith("rank")]  # the top-2 export replaced
    cards = [i for i, name in enumerate(removed) if name == "model_card.json"]
    models = [i for i, name in enumerate(removed) if name == "model.keras"]
    assert len(cards) == len(models) == 2  # two rank folders removed
    assert all(m < c for m, c in zip(models, cards, strict=True))  # each card after its model


def test_a_damaged_cache_is_decoded_again_not_trained_on(tmp_path):
    """The cache kept every image's digest but a hit never checked one: pixels damaged
    at the right size were trained on (the records still named the real data's hash)."""
    from autopneumo.data import load_dataset
    from tests.conftest import make_kermany

    data = make_kermany(tmp_path / "data")
    cache = tmp_path / "cache"
    first = load_dataset(data, image_size=32, channels=1, cache_folder=cache)
    [npy] = cache.glob("*.npy")
    raw = bytearray(npy.read_bytes())
    for i in range(200, len(raw), 7):  # every 7th byte after the header
        raw[i] ^= 0xFF
    npy.write_bytes(bytes(raw))
    again = load_dataset(data, image_size=32, channels=1, cache_folder=cache)
    assert not again.manifest["cache_hit"]
    assert np.array_equal(again.train.x, first.train.x)
    assert load_dataset(data, image_size=32, channels=1, cache_folder=cache).manifest["cache_hit"]


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path):
    from autopneumo.atomic import HOST_TAG, atomic_write_json

    target = tmp_path / "record.json"
    dead = tmp_path / f".record.json.{HOST_TAG}-{2 ** 22 + 12345}.abc123.tmp"
    live = tmp_path / f".record.json.{HOST_TAG}-{os.getppid()}.def456.tmp"
    other_host = tmp_path / f".record.json.elsewhere-{2 ** 22 + 12345}.ghi789.tmp"
    other_file = tmp_path / f".predictions.csv.{HOST_TAG}-{2 ** 22 + 12345}.jkl012.tmp"
    for leftover in (dead, live, other_host, other_file):
        leftover.write_bytes(b"x" * 100)
    atomic_write_json(target, {"ok": True})
    assert not dead.exists()
    assert live.exists() and other_host.exists() and other_file.exists()
    assert socket.gethostname()  # the name the temp files carry


def test_a_full_disk_says_what_to_do():
    import errno

    from autopneumo.cli import _os_error

    message = _os_error(OSError(errno.ENOSPC, "No space left on device"))
    assert message == ("No space left on device; free some space and run the same command "
                       "again (finished trials and files are kept)")


def test_a_model_is_saved_whole_or_not_at_all(tmp_path):
    """The lifecycle review's 8: Keras writes a .keras zip in place, so a kill or a reader
    mid-save met a truncated model.keras beside a finished record."""
    import keras

    from autopneumo.atomic import atomic_save_model

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    path = tmp_path / "model.keras"
    path.write_bytes(b"the earlier model")

    class Killed(Exception):
        pass

    def save_and_die(filepath, *args, **kwargs):
        with open(filepath, "wb") as fh:
            fh.write(b"PK\x03\x04 half a zip")
        raise Killed

    original = model.save
    model.save = save_and_die
    with pytest.raises(Killed):
        atomic_save_model(model, path)
    assert path.read_bytes() == b"the earlier model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]  # no temp left
    model.save = original
    atomic_save_model(model, path)
    assert keras.models.load_model(path).count_params() == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def test_a_second_finalize_of_one_runs_folder_is_refused(tmp_path):
    """The lifecycle review's 8: two finalize commands both retrained every seed into the
    same folders (twice the work; the last writer won)."""
    import json
    import subprocess
    import sys

    from autopneumo.finalize import finalize
    from autopneumo.locking import LOCK_FILE, _start_time, owner
    from tests.records import write_record

    runs = tmp_path / "runs"
    write_record(runs, "base_cnn", "none", "0", 0.8)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (runs / "_finalize").mkdir()
        (runs / "_finalize" / LOCK_FILE).write_text(json.dumps(
            {**owner(), "pid": holder.pid, "started": _start_time(holder.pid)}))
        with pytest.raises(RunsError, match=f"another finalize \\(pid {holder.pid} on host "):
            finalize(runs, top=1, seeds=1)
    finally:
        holder.kill()
        holder.wait()


def _two_exports(project, tmp_path):
    """Two runs folders whose winners differ (the second with the first's winner demoted),
    and an image to score."""
    from PIL import Image

    a = _copy(project, tmp_path).runs_dir
    b = tmp_path / "runs_b"
    shutil.copytree(a, b)
    objective = {p: json.loads(p.read_text())["val"]["objective"]
                 for p in sorted(b.glob("*/trial_*/record.json"))}
    best = max(objective, key=objective.get)
    record = json.loads(best.read_text())
    record["val"]["objective"] = -1.0
    best.write_text(json.dumps(record))
    image = tmp_path / "scan.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40), np.uint8)).save(image)
    return a, b, image


def test_predict_never_mixes_two_exports_replaced_while_it_reads(project, tmp_path,
                                                                 monkeypatch):
    """The lifecycle review's 4: predict read the card, then the model file, then loaded
    the model again by its path; an export replacing the folder in between gave one
    model's scores against the other's threshold (4 of 33 in a loop), or a spurious "not
    the model its card describes". Here the second export lands right after the card was
    read: predict must score with the second export in full."""
    import autopneumo.inference as inference
    from autopneumo.inference import export, predict

    a, b, image = _two_exports(project, tmp_path)
    out = tmp_path / "exp"
    export(b, tmp_path / "exp_b", top=1)
    expected = predict(tmp_path / "exp_b", [image])
    export(a, out, top=1)
    first = predict(out, [image])
    assert first.attrs["threshold"] != expected.attrs["threshold"]  # two different models
    real_loads, swapped = json.loads, []

    def loads_then_swap(text, *args, **kwargs):
        value = real_loads(text, *args, **kwargs)
        if not swapped and isinstance(value, dict) and "intended_use" in value:  # the card
            swapped.append(True)
            export(b, out, top=1)
        return value

    monkeypatch.setattr(inference.json, "loads", loads_then_swap)
    got = predict(out, [image])
    assert swapped
    assert got.attrs["threshold"] == expected.attrs["threshold"]
    assert got["probability"].tolist() == expected["probability"].tolist()


def test_predict_waits_for_an_export_between_its_two_renames(project, tmp_path):
    """Between the export's two renames the folder is absent for an instant: predict said
    "--model ...: not found" (exit 2)."""
    import threading

    from autopneumo.atomic import HOST_TAG
    from autopneumo.inference import export, resolve_model

    a, _, _ = _two_exports(project, tmp_path)
    out = tmp_path / "exp"
    export(a, out, top=1)
    aside = tmp_path / f".exp.old-{HOST_TAG}-{os.getpid()}"
    out.rename(aside)  # the old export set aside, the new one not yet in
    threading.Timer(0.5, aside.rename, (out,)).start()
    card = resolve_model(out)
    assert card.model_path == out / "model.keras" and card.blobs
    with pytest.raises(Exception, match="not found"):
        resolve_model(tmp_path / "never_exported")  # nothing being replaced: at once
    # the diff review's 2: through a link to the export (its staging names the target)
    link = tmp_path / "current"
    link.symlink_to(out)
    out.rename(aside)
    threading.Timer(0.5, aside.rename, (out,)).start()
    assert resolve_model(link).blobs == card.blobs
    dotted = tmp_path / "model.v2"  # the re-review's 5: a dot in the export's name
    out.rename(dotted)
    aside_dotted = tmp_path / f".model.v2.old-{HOST_TAG}-{os.getpid()}"
    dotted.rename(aside_dotted)
    threading.Timer(0.5, aside_dotted.rename, (dotted,)).start()
    assert resolve_model(dotted).blobs == card.blobs
    dotted.rename(out)
    # the diff review's 3: an option error, or a folder beside a killed export's leftovers,
    # is said at once, not after the 10 s wait
    import time

    (tmp_path / f".exp.export-{HOST_TAG}-{os.getpid()}").mkdir()  # an export running now
    started = time.monotonic()
    with pytest.raises(Exception, match="--threshold must be in"):
        resolve_model(out, threshold=2.0)
    dead = tmp_path / f".gone.export-{HOST_TAG}-{2 ** 22 + 4321}"
    dead.mkdir()
    with pytest.raises(Exception, match="not found"):
        resolve_model(tmp_path / "gone")
    assert time.monotonic() - started < 5


def test_a_chiefs_project_resumed_by_a_plain_search_keeps_its_trials(project, tmp_path):
    """keras-tuner reloads a project only where the tuner file of its own tuner id exists
    (tuner0.json; a chief writes chief.json): a distributed search resumed by a plain one
    started again from trial 0 and retrained every trial over its model and record."""
    from autopneumo.tuning import search

    config = _copy(project, tmp_path)
    project_dir = config.runs_dir / config.project
    (project_dir / "tuner0.json").rename(project_dir / "chief.json")
    kept = _fingerprints(config.runs_dir)
    records = search(config)  # max_trials 3: one more
    assert sorted(r["trial_id"] for r in records) == ["0", "1", "2"]
    assert {k: v for k, v in _fingerprints(config.runs_dir).items() if k in kept} == kept


def test_an_export_whose_new_folder_cannot_be_renamed_in_keeps_a_whole_export(
        project, tmp_path, monkeypatch):
    """The mutation review's E02, E08: the old export renamed aside, the new one's rename in failing (another
    file system for the staging folder, EXDEV): the old one must come back before the
    in-place replacement, or `out` is gone and the replacement fails on its entries."""
    from autopneumo.inference import export

    config = _copy(project, tmp_path)
    out = tmp_path / "exp"
    export(config.runs_dir, out, top=2)
    real = Path.rename

    def no_renaming_staging_in(self, target):
        if Path(target) == out and Path(self).name.startswith(".exp.export-"):
            raise OSError(18, "Invalid cross-device link", str(self))
        return real(self, target)

    monkeypatch.setattr(Path, "rename", no_renaming_staging_in)
    export(config.runs_dir, out, top=1)
    names = sorted(p.name for p in out.iterdir())
    assert "model.keras" in names and "model_card.json" in names
    assert not [n for n in names if n.startswith("rank")]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".exp")]


def test_a_trial_record_carries_its_models_digest_which_predict_and_export_check(
        project, tmp_path, monkeypatch):
    """The diff review's leftover risk: predict on a trial (or finalize seed) folder read
    the record, then the model; a re-evaluation saving its model in between (model first,
    record after) scored one model against the other's threshold, and a model copied over
    a trial's by hand was used unnoticed. The record now keeps the saved model's sha256."""
    import hashlib
    import threading

    import autopneumo.inference as inference
    from autopneumo.inference import export, resolve_model
    from autopneumo.leaderboard import leaderboard

    config = _copy(project, tmp_path)
    board = leaderboard(config.runs_dir)
    best, other = (Path(d) for d in board["trial_dir"][:2])
    for trial in (best, other):
        record = json.loads((trial / "record.json").read_text())
        assert record["model_sha256"] == hashlib.sha256(
            (trial / "model.keras").read_bytes()).hexdigest()
    assert resolve_model(best).blobs == ((best / "model.keras").read_bytes(),)
    # another model copied over the winner's: refused (after the wait for a record)
    shutil.copyfile(other / "model.keras", best / "model.keras")
    monkeypatch.setattr(inference, "SWAP_WAIT", 0.3)
    with pytest.raises(OptionError, match=r"record.json describes \(its sha256 differs.*"
                                          r"was the model file replaced\?"):
        resolve_model(best)
    with pytest.raises(RunsError, match="is not the model its record.json describes"):
        export(config.runs_dir, tmp_path / "exp", top=1)
    assert not (tmp_path / "exp").exists()
    # a re-evaluation: its record lands while predict waits; the new record is used whole
    monkeypatch.setattr(inference, "SWAP_WAIT", 10.0)
    rewritten = json.loads((best / "record.json").read_text())
    rewritten.update(model_sha256=json.loads((other / "record.json").read_text())[
        "model_sha256"], threshold=0.123)
    threading.Timer(0.3, (best / "record.json").write_text, (json.dumps(rewritten),)).start()
    card = resolve_model(best)
    assert card.threshold == 0.123
    assert card.blobs == ((other / "model.keras").read_bytes(),)
