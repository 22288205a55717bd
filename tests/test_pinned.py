"""Behaviours the suite did not pin (mutation review 19): each test here kills a
hand-made mutant of the code that passed every other fast test."""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
from pathlib import Path

import numpy as np
import pytest

import autopneumo
from autopneumo.errors import OptionError, RunsError, SpaceError
from autopneumo.spaces import load_space


def _family(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "base_cnn.yaml"
    path.write_text("kind: family\nname: base_cnn\nhyperparameters:\n"
                    + textwrap.indent(textwrap.dedent(body), "  "))
    return path


# ------------------------------------------------------------------ spaces.py: conditions

@pytest.mark.parametrize(("body", "message"), [
    # S11: `when: {p: []}` passed validation, then IndexError inside keras-tuner's
    # conditional_scope at apply()
    ("""\
     deep: {type: boolean}
     units: {type: int, min: 8, max: 16, when: {deep: []}}
     """, "hyperparameter 'units': condition has no values"),
    # S13: a log-sampled float with a step (a factor) draws min * step**k: 0.01 is
    # 1e-4 * 10**2 = 0.010000000000000002 there, never equal to a listed 0.01
    ("""\
     lr: {type: float, min: 1.0e-4, max: 1.0e-2, sampling: log, step: 10}
     units: {type: int, min: 8, max: 16, when: {lr: [0.01]}}
     """, "its parent 'lr' is a float drawn from a continuous or log range"),
    # S14: an int parent never takes 2.5
    ("""\
     depth: {type: int, min: 2, max: 4}
     units: {type: int, min: 8, max: 16, when: {depth: [2.5]}}
     """, "2.5 is not a value 'depth' can take"),
    # S16: a fixed parent takes its one value only
    ("""\
     depth: {type: fixed, value: 3}
     units: {type: int, min: 8, max: 16, when: {depth: [4]}}
     """, "4 is not a value 'depth' can take"),
    # S17: a choice of booleans never takes the number 1 (1 == True in Python)
    ("""\
     deep: {type: choice, values: [true, false]}
     units: {type: int, min: 8, max: 16, when: {deep: [1]}}
     """, "1 is not a value 'deep' can take"),
    # S18: 0.25 is off the grid 0.0 + k * 0.1
    ("""\
     drop: {type: float, min: 0.0, max: 0.4, step: 0.1}
     units: {type: int, min: 8, max: 16, when: {drop: [0.25]}}
     """, "0.25 is not a value 'drop' can take"),
])
def test_a_condition_that_could_never_hold_is_refused(tmp_path, body, message):
    path = _family(tmp_path, body)
    with pytest.raises(SpaceError, match=re.escape(message)) as info:
        load_space(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{path}: ")


def test_a_max_a_hair_off_its_grid_is_refused(tmp_path):
    """S24: _on_grid's tolerance (1e-6 of a step) loosened to 5% of a step passed."""
    path = _family(tmp_path, "drop: {type: float, min: 0.0, max: 0.401, step: 0.1}\n")
    with pytest.raises(SpaceError, match=r"max 0.401 is not min \+ a whole number of steps"):
        load_space(path)


def test_a_builder_whose_annotation_does_not_resolve_has_no_rules_and_searches():
    """S32: a plugin's builder annotated with a name its module never imports (a
    TYPE_CHECKING import) made get_type_hints raise NameError: a traceback before any
    search, though such annotations are only documentation."""
    from autopneumo.spaces import literal_choices

    def builder(x, *, width: NotImportedHere = 1.0):  # noqa: F821
        return x

    assert literal_choices(builder) == {}


# ------------------------------------------------------------ tuning.py: training values

def _training(tmp_path: Path, extra: str, required: str | None = None) -> Path:
    path = tmp_path / "training.yaml"
    required = required if required is not None else (
        "  learning_rate: {type: fixed, value: 0.001}\n"
        "  batch_size: {type: fixed, value: 8}\n"
        "  epochs: {type: fixed, value: 2}\n")
    path.write_text("kind: training\nname: training\nhyperparameters:\n" + required + extra)
    return path


@pytest.mark.parametrize(("extra", "message"), [
    ("  label_smoothing: {type: fixed, value: 1.0}\n",  # T12: every target would be 0.5
     "hyperparameters.label_smoothing: 1.0 is not accepted by training"),
    ("  crop: {type: fixed, value: 0.0}\n",  # T13: an empty crop
     "hyperparameters.crop: 0.0 is not accepted by training"),
    ("  equalize: {type: fixed, value: 'false'}\n",  # T14: 'false' is truthy
     "hyperparameters.equalize: 'false' is not accepted by training"),
    ("  schedule: {type: fixed, value: linear}\n",  # T15: trained as constant
     "hyperparameters.schedule: 'linear' is not accepted by training"),
    ("  crop: {type: float, min: 0.5, max: 1.5, step: 0.5}\n",  # S37: only min was checked
     "hyperparameters.crop: 1.5 is not accepted by training"),
])
def test_more_training_values_the_code_would_misread_are_refused(tmp_path, extra, message):
    from autopneumo.tuning import SearchConfig, resolve_spaces

    path = _training(tmp_path, extra)
    with pytest.raises(SpaceError, match=re.escape(message)):
        resolve_spaces(SearchConfig("base_cnn", "flip", spaces=[path]))


def test_batch_size_is_required_with_or_without_epochs(tmp_path):
    """T10/T11: only a missing epochs was tested; with --epochs nothing was required."""
    from autopneumo.tuning import SearchConfig, resolve_spaces

    path = _training(tmp_path, "", required="  learning_rate: {type: fixed, value: 0.001}\n")
    for epochs in (None, 2):
        with pytest.raises(SpaceError, match="hyperparameters: batch_size is required"):
            resolve_spaces(SearchConfig("base_cnn", "flip", spaces=[path], epochs=epochs))


# ------------------------------------------------------------ tuning.py: SearchConfig types

@pytest.mark.parametrize(("fields", "message"), [
    ({"spaces": Path("my.yaml")}, "SearchConfig.spaces is a list of files, got one"),  # T02
    ({"seed": "3"}, "SearchConfig.seed must be an integer, got '3'"),  # T03
    ({"worker_timeout": "60"}, "SearchConfig.worker_timeout must be a number, got '60'"),  # T04
    ({"devices": 1.0, "strategy": "mirrored"}, "SearchConfig.devices must be an integer"),
])
def test_more_search_config_types_are_named(tmp_path, fields, message):
    config = autopneumo.SearchConfig("base_cnn", "none", runs_dir=tmp_path / "runs", **fields)
    with pytest.raises(OptionError, match="^" + re.escape(message)):
        config.validate()


def test_numpy_floats_are_numbers():
    """S36: is_number as isinstance(v, (int, float)) refused np.float32 (a grid's value)."""
    autopneumo.SearchConfig("base_cnn", "none", recall_target=np.float32(0.9),
                            val_fraction=np.float32(0.25)).validate()


# ------------------------------------------------------------------ tuning.check_spaces

def test_check_spaces_checks_every_policy_and_says_a_training_problem_once(tmp_path,
                                                                           monkeypatch):
    """T07/T08: the CLI test breaks resnet18 and geometric only; a pair list that skipped
    the second policy (cutmix), or a list that repeated the training space's error once
    per pair, passed."""
    import shutil

    from autopneumo.paths import spaces_dir
    from autopneumo.registry import POLICIES
    from autopneumo.tuning import check_spaces

    folder = tmp_path / "spaces"
    shutil.copytree(spaces_dir(), folder)
    monkeypatch.setenv("AUTOPNEUMO_SPACES", str(folder))
    second = POLICIES.names()[1]
    policy_file = folder / "augment" / f"{second}.yaml"
    kept = policy_file.read_text()
    policy_file.write_text(f"kind: augment\nname: {second}\nhyperparameters:\n"
                           "  nope: {type: fixed, value: 1.0}\n")
    problems = check_spaces()
    assert len(problems) == 1 and f"{second}.yaml: hyperparameters.nope" in problems[0], problems
    policy_file.write_text(kept)
    (folder / "training.yaml").write_text("kind: training\nname: training\nhyperparameters:\n"
                                          "  optimizer: {type: fixed, value: adamm}\n")
    problems = check_spaces()
    assert len(problems) == 1 and "training.yaml" in problems[0], problems  # once, not per pair


# --------------------------------------------------- tuning._check_tuner_files (no search)

def _tuner_project(root: Path, started: list[str] | None, folders: dict[str, bool]) -> Path:
    """A keras-tuner proj on disk: oracle.json (None: absent) listing ``started``,
    and trial folders (id -> has a record.json)."""
    proj = root / "base_cnn__none"
    proj.mkdir(parents=True)
    if started is not None:
        (proj / "oracle.json").write_text(json.dumps({"start_order": started}))
    for trial_id, recorded in folders.items():
        (proj / f"trial_{trial_id}").mkdir()
        (proj / f"trial_{trial_id}" / "trial.json").write_text(
            json.dumps({"trial_id": trial_id}))
        if recorded:
            (proj / f"trial_{trial_id}" / "record.json").write_text("{}")
    return proj


def test_a_worker_never_removes_or_refuses_its_chiefs_trials(tmp_path):
    """T16: only the proj's owner checks that the oracle and the folders agree (a
    worker's chief may be creating a trial now)."""
    from autopneumo.tuning import _check_tuner_files

    proj = _tuner_project(tmp_path, ["0"], {"0": True, "1": False})
    _check_tuner_files(proj, owner=False)
    assert (proj / "trial_1").is_dir()
    with pytest.warns(autopneumo.errors.AutopneumoNote, match="trial_1 was begun"):
        _check_tuner_files(proj, owner=True)  # the owner removes the unlisted, unrecorded one
    assert not (proj / "trial_1").exists() and (proj / "trial_0").is_dir()


def test_a_recorded_trial_is_never_removed_even_if_the_oracle_does_not_list_it(tmp_path):
    """T17: a folder with a record is evidence of a finished trial, whatever oracle.json
    says (a hand-restored older oracle.json)."""
    from autopneumo.tuning import _check_tuner_files

    proj = _tuner_project(tmp_path, ["0"], {"0": True, "1": True})
    _check_tuner_files(proj)
    assert (proj / "trial_1" / "record.json").is_file()


def test_a_missing_oracle_beside_unrecorded_trials_only_is_not_refused(tmp_path, capsys):
    """T18: the first trial's trial.json written, the kill before oracle.json: the
    folder is removed and the search starts again (commit e0e2a7a)."""
    import warnings

    from autopneumo.tuning import _check_tuner_files

    proj = _tuner_project(tmp_path, None, {"0": False})
    with warnings.catch_warnings(record=True) as caught:  # a note: a warning (newer) or a print
        warnings.simplefilter("always")
        _check_tuner_files(proj)
    assert not (proj / "trial_0").exists()
    said = capsys.readouterr().err + "".join(f"{w.message}\n" for w in caught)
    assert "trial_0 was begun but never recorded" in said


def test_a_truncated_tuner_file_is_named(tmp_path):
    """T24: only oracle.json and trial.json were tested (tests/test_search.py truncates the
    first of them); tuner0.json, parsed by keras-tuner's reload, was not."""
    from autopneumo.tuning import _check_tuner_files

    proj = _tuner_project(tmp_path, ["0"], {"0": True})
    (proj / "tuner0.json").write_text('{"trunc')
    with pytest.raises(RunsError, match=r"tuner0.json: keras-tuner's state is unreadable"):
        _check_tuner_files(proj, owner=False)


def test_a_remote_path_is_left_to_keras_tuners_own_writer(tmp_path, monkeypatch):
    """T23: gs:// and other URLs went to atomic_write_text, which made a local folder
    named 'ram:' (or 'gs:') in the working directory."""
    import tensorflow as tf
    from keras_tuner.src import utils

    from autopneumo.tuning import _atomic_tuner_state

    monkeypatch.chdir(tmp_path)
    _atomic_tuner_state()
    utils.save_json("ram://autopneumo_test/oracle.json", {"a": 1})
    assert json.loads(tf.io.gfile.GFile("ram://autopneumo_test/oracle.json").read()) == {"a": 1}
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ atomic.py

def test_a_write_that_fails_leaves_the_old_file_and_no_temp(tmp_path):
    """A02: the temp file of a writer that raised was left beside the file."""
    from autopneumo.atomic import atomic_open

    target = tmp_path / "card.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write(b"partial")
            raise RuntimeError("the writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]


def test_a_written_file_has_the_umasks_permissions_not_mkstemps(tmp_path):
    """A03: mkstemp's 0600 hid reports and records from teammates."""
    from autopneumo.atomic import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "index.html", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "index.html").stat().st_mode & 0o777 == 0o644


def test_dead_writers_of_a_missing_folder_are_none_and_only_their_names_match(tmp_path):
    """A06: an export into a new nested folder scans a parent that does not exist yet."""
    from autopneumo.atomic import HOST_TAG, left_by_dead_writers

    assert left_by_dead_writers(tmp_path / "not" / "there", ".x.") == []
    dead = 2 ** 22 + 12345
    for name in (f".x.{HOST_TAG}-{dead}", f".x.{HOST_TAG}-{dead}.abc.tmp",
                 f".x.{HOST_TAG}-{dead}x", f".x.{HOST_TAG}-{dead}-y"):  # A05: last two kept
        (tmp_path / name).write_text("")
    found = sorted(p.name for p in left_by_dead_writers(tmp_path, ".x."))
    assert found == sorted([f".x.{HOST_TAG}-{dead}", f".x.{HOST_TAG}-{dead}.abc.tmp"])


def test_the_host_tag_names_the_pid_namespace_where_there_is_one():
    """A09: two containers sharing a hostname and a folder must not take each other's
    live temp files for a dead writer's."""
    from autopneumo.atomic import HOST_TAG

    try:
        space = "".join(c for c in os.readlink("/proc/self/ns/pid") if c.isdigit())
    except OSError:
        pytest.skip("no pid namespace here")
    assert HOST_TAG.endswith(f"_{space}")


# -------------------------------------------------------------------------- registry.py

def test_plugins_from_entry_points_and_the_environment_load_once_each(tmp_path, monkeypatch,
                                                                      capsys):
    """R01, R02, R03, R06: entry points (value 'module:attr') and AUTOPNEUMO_PLUGINS
    (spaces around names) are imported; a module that fails is said once for both
    registries and named by each."""
    import sys

    import autopneumo.registry as registry

    monkeypatch.setattr(registry, "_FAILED", {})
    info = tmp_path / "plugs-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugs\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[sketch.families]\nep = ep_plug:register\n[sketch.policies]\nbad = bad_plug\n")
    (tmp_path / "pkg_empty").mkdir()
    (tmp_path / "pkg_empty" / "__init__.py").write_text("")
    (tmp_path / "ep_plug.py").write_text(
        "import sketch_regs\n@sketch_regs.FAM.register('from_ep', description='')\n"
        "def f(x, *, width: float = 1.0):\n    return x\n")
    (tmp_path / "env_plug.py").write_text(
        "import sketch_regs\n@sketch_regs.FAM.register('from_env', description='')\n"
        "def g(x):\n    return x\n")
    (tmp_path / "bad_plug.py").write_text("raise RuntimeError('broken plugin')\n")
    (tmp_path / "sketch_regs.py").write_text(
        "from autopneumo.registry import Registry\n"
        "FAM = Registry('family', 'pkg_empty', '--family', 'sketch.families')\n"
        "POL = Registry('augment', 'pkg_empty', '--augment', 'sketch.policies')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("AUTOPNEUMO_PLUGINS", " env_plug , bad_plug,")
    import warnings

    import sketch_regs

    try:
        with warnings.catch_warnings(record=True) as caught:  # a warning (newer) or a print
            warnings.simplefilter("always")
            assert sketch_regs.FAM.names() == ["from_env", "from_ep"]
            assert sketch_regs.POL.names() == []
        said = capsys.readouterr().err + "".join(f"{w.message}\n" for w in caught)
        assert said.count("bad_plug not loaded (RuntimeError: broken plugin)") == 1, said
        assert said.count("not loaded") == 1, said  # env_plug and ep_plug: loaded
        for reg in (sketch_regs.FAM, sketch_regs.POL):
            with pytest.raises(OptionError, match="bad_plug did not load"):
                reg.get("nothing")
    finally:
        for name in ("sketch_regs", "ep_plug", "env_plug", "bad_plug", "pkg_empty"):
            sys.modules.pop(name, None)


def test_a_plugins_own_space_file_is_used_unless_the_spaces_folder_has_one(tmp_path,
                                                                           monkeypatch):
    """R04, R05: Entry.space_file (covered only by the slow end-to-end plugin test)."""
    from autopneumo.paths import spaces_dir
    from autopneumo.registry import Entry

    own = tmp_path / "plug" / "vgg_tiny.yaml"
    entry = Entry("vgg_tiny", lambda x: x, "", "family", space=own)
    assert entry.space_file == own  # the shipped folder has no vgg_tiny.yaml
    folder = tmp_path / "spaces"
    (folder / "families").mkdir(parents=True)
    (folder / "families" / "vgg_tiny.yaml").write_text("kind: family\n")
    monkeypatch.setenv("AUTOPNEUMO_SPACES", str(folder))
    assert spaces_dir() == folder
    assert entry.space_file == folder / "families" / "vgg_tiny.yaml"  # the folder's wins


# ------------------------------------------------------------------------ interrupts.py

@pytest.fixture
def python_sigint_handler():
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_sigterm_is_held_to_the_safe_point_as_a_ctrl_c_is(python_sigint_handler):
    """N01, N02, N03: term_as_ctrl_c had only the slow subprocess test."""
    from autopneumo.interrupts import defer_ctrl_c, raise_if_interrupted, term_as_ctrl_c

    before = signal.getsignal(signal.SIGTERM)
    reached = []
    with term_as_ctrl_c():
        with pytest.raises(KeyboardInterrupt):
            with defer_ctrl_c():
                signal.raise_signal(signal.SIGTERM)  # held, as a first Ctrl-C
                reached.append("after the signal")
                raise_if_interrupted()
                reached.append("after the safe point")
        assert reached == ["after the signal"]
        with pytest.raises(KeyboardInterrupt):  # outside a deferral: at once
            signal.raise_signal(signal.SIGTERM)
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job
        try:
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGTERM)  # still stops
        finally:
            signal.signal(signal.SIGINT, old)
    assert signal.getsignal(signal.SIGTERM) is before  # restored


# ----------------------------------------------------------------- package API (report)

def test_write_report_refuses_every_top_that_is_not_a_positive_integer(tmp_path):
    """I02: only top='5' was tested; a check of isinstance(top, int) passed it."""
    (tmp_path / "runs").mkdir()
    for top in (0, -1, True, 2.5):
        with pytest.raises(OptionError, match="--top must be a positive integer"):
            autopneumo.write_report(tmp_path / "runs", tmp_path / "out", fmt="md", top=top)
    assert not (tmp_path / "out").exists()


def test_write_report_takes_a_data_file_as_well_as_a_folder(tmp_path):
    """I03: --data may be a MedMNIST .npz file; a check written as is_dir() refused it."""
    (tmp_path / "runs").mkdir()
    npz = tmp_path / "pneumoniamnist.npz"
    npz.write_bytes(b"")
    autopneumo.write_report(tmp_path / "runs", tmp_path / "out", fmt="md", data=npz)
    assert (tmp_path / "out" / "summary.md").is_file()


# ------------------------------------------------------------------ data cache spot check

def test_a_damaged_last_image_of_a_large_cache_is_found(tmp_path):
    """C01, C03: the spot check must reach the last image (the damage test flips bytes
    everywhere, so a check of image 0 alone passed it)."""
    from autopneumo.data import load_dataset
    from tests.conftest import make_kermany

    data = make_kermany(tmp_path / "data", patients={"train": 20, "val": 2, "test": 14},
                        size=20)
    cache = tmp_path / "cache"
    first = load_dataset(data, image_size=16, channels=1, cache_folder=cache)
    [npy] = cache.glob("*.npy")
    images = np.load(npy, mmap_mode="r+")
    assert len(images) > 64
    images[-1] ^= 0xFF
    images.flush()
    del images
    again = load_dataset(data, image_size=16, channels=1, cache_folder=cache)
    assert not again.manifest["cache_hit"]
    for split in ("train", "val", "test"):
        assert np.array_equal(getattr(again, split).x, getattr(first, split).x)
