"""autopneumo from Python (the API review): bad input raises the documented error types
before anything is written or TensorFlow loads, and a library call sizes TensorFlow as
the CLI does."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import autopneumo
from autopneumo.errors import OptionError, RunsError


def test_a_missing_runs_folder_is_an_error_not_an_empty_leaderboard_or_report(tmp_path):
    (tmp_path / "file").write_text("x")
    for runs in (tmp_path / "runz", tmp_path / "file"):
        with pytest.raises(RunsError, match=str(runs)):
            autopneumo.leaderboard(runs)
        with pytest.raises(RunsError, match=str(runs)):
            autopneumo.write_report(runs, tmp_path / "out", fmt="md")
    assert not (tmp_path / "out").exists()  # nothing written for a mistyped path
    (tmp_path / "runs").mkdir()
    assert autopneumo.leaderboard(tmp_path / "runs").empty  # an empty folder: no trials yet
    for top in (0, -1, 2.5, True):
        with pytest.raises(OptionError, match="--top must be a positive integer"):
            autopneumo.leaderboard(tmp_path / "runs", top=top)
    with pytest.raises(OptionError, match="unknown report format 'pdf'"):
        autopneumo.write_report(tmp_path / "runs", tmp_path / "out", fmt="pdf")


@pytest.mark.parametrize("fields, message", [
    ({"time_budget": "30m"}, "SearchConfig.time_budget must be a number of seconds "
                             r"\(parse_duration reads '30m'\), got '30m'"),
    ({"channels": "3"}, "SearchConfig.channels must be an integer, got '3'"),
    ({"image_size": 64.0}, "SearchConfig.image_size must be an integer, got 64.0"),
    ({"recall_target": None}, "SearchConfig.recall_target must be a number, got None"),
    ({"spaces": "my.yaml"}, r"SearchConfig.spaces is a list of files, got one: 'my.yaml' \(write \[path\]\)"),
    ({"val_fraction": 0.9}, r"--val-fraction must be in \(0, 0.5\], got 0.9"),
])
def test_a_search_config_of_the_wrong_type_is_named_before_anything_runs(tmp_path, fields,
                                                                         message):
    config = autopneumo.SearchConfig("base_cnn", "none", data=tmp_path / "data",
                                     runs_dir=tmp_path / "runs", **fields)
    with pytest.raises(OptionError, match=f"^{message}$"):
        autopneumo.search(config)
    assert not (tmp_path / "runs").exists()  # val_fraction left an empty project folder
    with pytest.raises(OptionError, match="search takes a SearchConfig, got dict"):
        autopneumo.search({"family": "base_cnn"})


def test_every_public_name_is_listed_and_resolves():
    listed = dir(autopneumo)
    for name in autopneumo.__all__:
        assert name in listed  # the lazy ones too: a notebook completes them
        assert getattr(autopneumo, name) is not None
    assert callable(autopneumo.finalize) and callable(autopneumo.run_study)
    assert issubclass(RunsError, autopneumo.UserError)
    # the README's check: each error kind, and the warnings, at package level too
    assert autopneumo.RunsError is RunsError and issubclass(autopneumo.SpaceError,
                                                            autopneumo.UserError)
    assert issubclass(autopneumo.AutopneumoNote, autopneumo.AutopneumoWarning)


def _python(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (TensorFlow not yet imported), threads unset."""
    environ = {k: v for k, v in os.environ.items() if k != "AUTOPNEUMO_THREADS"}
    return subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                          text=True, timeout=300, check=True)


def test_a_library_call_sizes_tensorflows_thread_pools_as_the_cli_does():
    """The API review's B3: from Python, Keras was imported (by the family modules, or by
    ``search`` itself) before TensorFlow was imported quietly, so its thread pools were
    never sized to the usable cores and its logger stayed at "retracing" warnings."""
    code = ("import autopneumo, sys\n"
            "assert 'tensorflow' not in sys.modules\n"
            "autopneumo.FAMILIES.names()\n"
            "import tensorflow as tf\n"
            "from autopneumo.backend import usable_cores\n"
            "print(tf.config.threading.get_intra_op_parallelism_threads(),"
            " tf.get_logger().level, usable_cores())\n")
    out = _python(code)
    intra, level, cores = (int(x) for x in out.stdout.split()[-3:])
    assert (intra, level) == (cores, 40)  # logging.ERROR
    assert "cuda" not in out.stderr.lower()  # the import's CUDA probe stays hidden


def test_a_host_programs_own_thread_and_logger_settings_are_kept():
    code = ("import tensorflow as tf\n"
            "tf.config.threading.set_intra_op_parallelism_threads(1)\n"
            "tf.get_logger().setLevel('INFO')\n"
            "import autopneumo\n"
            "autopneumo.FAMILIES.names()\n"
            "print(tf.config.threading.get_intra_op_parallelism_threads(),"
            " tf.get_logger().level)\n")
    assert _python(code).stdout.split()[-2:] == ["1", "20"]  # logging.INFO, as the host set it


def test_trials_of_a_family_not_registered_here_are_named_not_hidden(tmp_path):
    """The extensibility review's B9: a family registered from outside the package (in the
    process that searched) left finalize and export saying "no completed search trial"
    although the leaderboard lists its trials."""
    from tests.records import write_record

    write_record(tmp_path, "ext_fam", "flip", "0", 0.9)
    write_record(tmp_path, "base_cnn", "flip", "1", 0.8, status="failed")
    note = ("; completed trials of ext_fam are left out: no such family is registered here "
            "(import the module that registers it)")
    with pytest.raises(RunsError, match="no completed search trial to finalize .*"
                       + re.escape(note) + "$"):
        autopneumo.finalize(tmp_path, top=1, seeds=1)
    with pytest.raises(RunsError, match="no completed search trial to export .*"
                       + re.escape(note) + "$"):
        autopneumo.export(tmp_path, tmp_path / "out")


def test_numpy_integers_are_integers_and_bad_report_options_write_nothing(tmp_path):
    """The diff review's N1, N5, N12."""

    (tmp_path / "runs").mkdir()
    assert autopneumo.leaderboard(tmp_path / "runs", top=np.int64(2)).empty
    autopneumo.SearchConfig("base_cnn", "none", seed=np.int64(3), epochs=np.int32(2)).validate()
    with pytest.raises(OptionError, match="--top must be a positive integer, got '5'"):
        autopneumo.write_report(tmp_path / "runs", tmp_path / "out", top="5")
    with pytest.raises(OptionError, match="--data /nowhere: not found"):
        autopneumo.write_report(tmp_path / "runs", tmp_path / "out", data="/nowhere")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fields, message", [
    ({"image_size": 32.0}, "--image-size must be an integer, got 32.0"),
    ({"image_size": "32"}, "--image-size must be an integer, got '32'"),
    ({"channels": 3.0}, "--channels must be an integer, got 3.0"),
    ({"val_fraction": "0.2"}, "--val-fraction must be a number, got '0.2'"),
    ({"seed": None}, "--seed must be an integer, got None"),
    ({"seed": 1.5}, "--seed must be an integer, got 1.5"),
    ({"seed": -1}, r"--seed must be in \[0, 2\*\*32\), got -1"),
])
def test_load_dataset_names_an_option_of_the_wrong_type(tiny_kermany, fields, message):
    """The API review 22: from Python these were a TypeError in the decoder, the split or
    scikit-learn ('float' object cannot be interpreted as an integer)."""
    with pytest.raises(OptionError, match=f"^{message}$"):
        autopneumo.load_dataset(tiny_kermany, **{"image_size": 32, **fields})


def test_load_dataset_takes_its_cache_folder_as_a_string(tiny_kermany, tmp_path):
    dataset = autopneumo.load_dataset(tiny_kermany, 32, cache_folder=str(tmp_path / "cache"))
    assert dataset.manifest["cache"].startswith(str(tmp_path / "cache"))
    assert autopneumo.load_dataset(tiny_kermany, np.int64(32), seed=np.int64(1)).manifest[
        "split_seed"] == 1


@pytest.mark.parametrize("call, message", [
    (lambda runs: autopneumo.ensemble(runs, top=2.0), "--top must be a positive integer, got 2.0"),
    (lambda runs: autopneumo.ensemble(runs, top="2"), "--top must be a positive integer, got '2'"),
    (lambda runs: autopneumo.ensemble(runs, n_boot=10.5),
     "n_boot must be a positive integer, got 10.5"),
    (lambda runs: autopneumo.ensemble(runs, n_boot=0), "n_boot must be a positive integer, got 0"),
    (lambda runs: autopneumo.export(runs, runs.parent / "out", top=1.0),
     "--top must be a positive integer, got 1.0"),
    (lambda runs: autopneumo.finalize(runs, top=1, seeds=2.0),
     "--seeds must be a positive integer, got 2.0"),
    (lambda runs: autopneumo.finalize(runs, top="1"), "--top must be a positive integer, got '1'"),
])
def test_ensemble_export_and_finalize_name_a_count_of_the_wrong_type(tmp_path, call, message):
    """The API review 22: a float or string top, seeds or n_boot was a TypeError from pandas
    or NumPy ('cannot do positional indexing on RangeIndex'), as leaderboard's is not."""
    from tests.records import three_trials

    runs = three_trials(tmp_path)
    with pytest.raises(OptionError, match=f"^{message}$"):
        call(runs)
    assert not (runs / "_ensemble").exists() and not (runs / "_finalize").exists()
    assert not (tmp_path / "out").exists()


def test_predict_and_predictor_name_a_threshold_or_batch_size_of_the_wrong_type(tmp_path):
    """The API review 22: a threshold of "0.5" was a TypeError from a comparison, a
    batch_size of 0 a ValueError from range() at the first scoring (Predictor took it)."""
    from tests.records import write_record

    trial = write_record(tmp_path, "base_cnn", "none", "0", 0.5).parent
    (tmp_path / "scan.png").write_bytes(b"")
    for kwargs, message in (({"threshold": "0.5"}, "--threshold must be a number, got '0.5'"),
                            ({"recall_target": "0.9"},
                             "--recall-target must be a number, got '0.9'")):
        with pytest.raises(OptionError, match=f"^{message}$"):
            autopneumo.predict(trial, [tmp_path / "scan.png"], **kwargs)
        with pytest.raises(OptionError, match=f"^{message}$"):
            autopneumo.Predictor(trial, **kwargs)
    for batch_size in (0, -8, 1.5, "8"):
        message = f"batch_size must be a positive integer, got {batch_size!r}"
        with pytest.raises(OptionError, match=f"^{re.escape(message)}$"):
            autopneumo.Predictor(trial, batch_size=batch_size)
        with pytest.raises(OptionError, match=f"^{re.escape(message)}$"):
            autopneumo.predict(trial, [tmp_path / "scan.png"], batch_size=batch_size)


@pytest.mark.parametrize("args, message", [
    ((["base_cnn"], ["none"], "2h"), r"--budget must be a number of seconds \(parse_duration "
                                     r"reads '2h'\), got '2h'"),
    ((["base_cnn"], ["none"], float("nan")), "--budget must be positive, got nan"),
    (([1], ["none"], 60), r"--families must be a name, 'all' or a list of names, got \[1\]"),
    ((["base_cnn"], None, 60), "--augment must be a name, 'all' or a list of names, got None"),
])
def test_run_study_names_a_budget_or_names_of_the_wrong_type(tmp_path, args, message):
    """The API review 22: a "2h" budget or a number for a family was a TypeError or
    AttributeError; a NaN budget was written to study.json, then refused as --time-budget."""
    base = autopneumo.SearchConfig("", "", data=tmp_path / "data", runs_dir=tmp_path / "runs")
    with pytest.raises(OptionError, match=f"^{message}$"):
        autopneumo.run_study(*args, base)
    with pytest.raises(OptionError, match="^run_study takes a SearchConfig as base, got dict$"):
        autopneumo.run_study(["base_cnn"], ["none"], 60, {"data": "x"})
    assert not (tmp_path / "runs").exists()


def test_run_study_takes_any_collection_of_names(tmp_path):
    """The check above took only lists, tuples and sets: a leaderboard's
    ``frame["family"].unique()`` (a NumPy array), dict keys or a generator, which ``expand``
    reads as before, were refused as "not a list of names"."""
    import numpy as np

    base = autopneumo.SearchConfig("", "", data=tmp_path / "nowhere", runs_dir=tmp_path / "runs")
    for families in (np.array(["base_cnn"], dtype=object), np.array(["base_cnn"]),
                     {"base_cnn": 1}.keys(), (f for f in ["base_cnn"])):
        with pytest.raises(autopneumo.DataError, match="^data folder not found"):
            autopneumo.run_study(families, iter(["none"]), 60, base)
    for names in (np.array([1, 2]), b"base_cnn", 3):
        with pytest.raises(OptionError, match="^--families must be a name, 'all' or a list"):
            autopneumo.run_study(names, ["none"], 60, base)


def test_a_search_takes_numpy_integers_as_validate_does(tiny_kermany, tmp_path):
    """The API review 22: validate accepted an ``np.int64`` seed (the diff review's N1), and
    the search then failed in keras.utils.set_random_seed ("Expected `seed` argument to be
    an integer") after loading the data and pinning the project."""
    config = autopneumo.SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="random",
                                     runs_dir=tmp_path / "runs", max_trials=np.int64(1),
                                     epochs=np.int64(1), image_size=np.int64(32),
                                     seed=np.int64(1), recall_target=np.float64(0.9))
    records = autopneumo.search(config)
    assert [r["status"] for r in records] == ["completed"]
    assert records[0]["data"]["split_seed"] == 1 and records[0]["recall_target"] == 0.9


def test_a_search_gives_tensorflows_and_keras_global_seeds_back(tiny_kermany, tmp_path):
    """The API review 22: a search left TensorFlow's and Keras' global seeds at its own
    (keras.utils.set_random_seed), so a notebook's tf.random draws afterwards were the
    same in every run, as the augmentation previews did before the diff review 21."""
    import keras
    import tensorflow as tf
    from keras.src.backend.common import global_state
    from tensorflow.python.eager import context

    config = autopneumo.SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="random",
                                     runs_dir=tmp_path / "runs", max_trials=1, epochs=1,
                                     image_size=32)
    keras.utils.set_random_seed(5)  # a seed the caller chose for Keras: kept
    tf.random.set_seed(None)  # and none for TensorFlow
    autopneumo.search(config)
    assert context.global_seed() is None  # unseeded, as before: draws differ run to run
    assert global_state.get_global_attribute("global_random_seed") == 5
    tf.random.set_seed(123)
    tf.random.uniform([2])
    expected = tf.random.uniform([2]).numpy()  # the caller's second draw at seed 123
    tf.random.set_seed(123)
    tf.random.uniform([2])
    autopneumo.search(config)  # resumed: nothing left to train, the seeds are set all the same
    np.testing.assert_array_equal(tf.random.uniform([2]).numpy(), expected)
    tf.random.set_seed(None)


@pytest.mark.parametrize("workers", [1.5, "2", -1, 0])
def test_check_data_names_a_workers_count_of_the_wrong_type(tiny_kermany, workers):
    """The API review 22: 1.5 and "2" were a TypeError and -1 a ValueError from the thread
    pool, after every file was scanned; 0 was taken as None."""
    message = f"workers must be a positive integer or None, got {workers!r}"
    with pytest.raises(OptionError, match=f"^{re.escape(message)}$"):
        autopneumo.check_data(tiny_kermany, workers=workers)


@pytest.mark.parametrize("options, message", [
    ({"pixels": "no"}, "pixels must be True or False, got 'no'"),
    ({"curves": -1}, "curves must be a whole number of models (0 or more), got -1"),
    ({"curves": 2.0}, "curves must be a whole number of models (0 or more), got 2.0"),
    ({"n_boot": 0}, "n_boot must be a positive integer, got 0"),
    ({"seed": -1}, "seed must be an integer in [0, 2**32), got -1"),
])
def test_write_report_names_a_python_option_of_the_wrong_type(tmp_path, options, message):
    """The API review 22: pixels="no" is true, and showed X-ray pixels in a report meant
    to leave them out; curves=-1 drew all models' curves but the last; n_boot=0 left every
    interval NaN. Refused before anything is written."""
    from tests.records import three_trials

    runs = three_trials(tmp_path)
    with pytest.raises(OptionError, match=f"^{re.escape(message)}$"):
        autopneumo.write_report(runs, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options, message", [
    ({"image_size": 32.0}, "image_size must be an integer of at least 8, got 32.0"),
    ({"frame": 2}, "frame must be a fraction of the side in (0, 0.5), got 2"),
    ({"frame": 0.45, "image_size": 16}, "frame 0.45 leaves no centre of 3 px or more at 16 px"),
    ({"n_boot": 0}, "n_boot must be a positive integer, got 0"),
])
def test_check_shortcuts_names_an_option_of_the_wrong_type(tiny_kermany, options, message):
    """The API review 22: a size of 32.0 was a TypeError in the decoder, a frame of 2 a
    NumPy error about a gradient."""
    from autopneumo.shortcuts import check_shortcuts

    with pytest.raises(OptionError, match=f"^{re.escape(message)}$"):
        check_shortcuts(tiny_kermany, **options)


def test_export_names_an_ensemble_that_is_not_a_name(tmp_path):
    """The API review 22: ensemble=1 was a TypeError (PosixPath / int)."""
    from tests.records import three_trials

    runs = three_trials(tmp_path)
    with pytest.raises(OptionError, match="^--ensemble must be an ensemble's name, got 1$"):
        autopneumo.export(runs, tmp_path / "out", ensemble=1)


@pytest.mark.parametrize("call", [
    lambda: autopneumo.leaderboard(None),
    lambda: autopneumo.write_report(None, "out"),
    lambda: autopneumo.ensemble(None),
    lambda: autopneumo.finalize(None),
    lambda: autopneumo.export(None, "out"),
])
def test_a_runs_folder_that_is_not_a_path_is_named(call, tmp_path, monkeypatch):
    """The API review 22: leaderboard(None) was pathlib's TypeError ('expected str, bytes or
    os.PathLike object, not NoneType'), not the one-line error the library promises."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OptionError, match="^--runs-dir must be a folder's path, got None$"):
        call()
    assert not (tmp_path / "out").exists()
