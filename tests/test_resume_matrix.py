"""Session 22's resume review: each tuner's real (tiny) search resumed with a larger
--max-trials, and after a trial interrupted mid-way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autopneumo.tuning import SearchConfig, search
from tests.tiny_spaces import small_cnn

GRID_TRAINING = """\
kind: training
name: training
hyperparameters:
  learning_rate: {type: choice, values: [0.001, 0.003]}
  batch_size: {type: fixed, value: 16}
  balance: {type: choice, values: [class_weights, oversample]}
  epochs: {type: fixed, value: 1}
  patience: {type: fixed, value: 1}
"""


def _grid(tiny_kermany, tmp_path: Path, max_trials: int) -> SearchConfig:
    space, training = tmp_path / "small_cnn.yaml", tmp_path / "training.yaml"
    space.write_text(small_cnn())
    training.write_text(GRID_TRAINING)
    return SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="grid",
                        max_trials=max_trials, image_size=32, runs_dir=tmp_path / "runs",
                        spaces=[space, training])


def _points(records) -> list[tuple]:
    return [tuple(sorted((k, v) for k, v in r["hyperparameters"].items()))
            for r in records if r["status"] == "completed"]


def test_a_grid_search_resumed_with_more_trials_goes_on_through_the_grid(tiny_kermany,
                                                                         tmp_path):
    """keras-tuner's grid oracle keeps its place in the grid in memory only: a resumed
    grid search drew nothing (1 of 2 trials, exit 0, no word) until the place is rebuilt
    from the reloaded trials."""
    search(_grid(tiny_kermany, tmp_path, 1))
    records = search(_grid(tiny_kermany, tmp_path, 2))
    assert len(records) == 2 and {r["status"] for r in records} == {"completed"}
    assert len(set(_points(records))) == 2  # the second is a new point of the grid


class _CtrlCAt:
    """A progress object that raises Ctrl-C as trial ``at`` begins (the oracle has handed
    it out: resumed, keras-tuner repeats it)."""

    def __init__(self, at: str):
        self.at = at

    def search_begin(self, config, done, deadline=None):
        pass

    def trial_begin(self, trial):
        if trial.trial_id == self.at:
            raise KeyboardInterrupt

    def trial_end(self, record):
        pass

    def epoch_callback(self):
        import keras

        return keras.callbacks.Callback()


def test_a_grid_search_interrupted_mid_trial_resumes_and_goes_on(tiny_kermany, tmp_path):
    """The repeated trial's end asked the rebuilt-nowhere grid for its next point: a
    KeyError traceback on every rerun (keras-tuner issue 1055)."""
    with pytest.raises(KeyboardInterrupt):
        search(_grid(tiny_kermany, tmp_path, 3), progress=_CtrlCAt("1"))
    oracle = json.loads((tmp_path / "runs" / "base_cnn__none" / "oracle.json").read_text())
    assert list(oracle["ongoing_trials"].values()) == ["1"]
    records = search(_grid(tiny_kermany, tmp_path, 3))
    assert [r["status"] for r in records] == ["completed"] * 3
    assert len(set(_points(records))) == 3


def test_a_hyperband_search_resumed_with_more_trials_starts_its_brackets_again(tiny_kermany,
                                                                              tmp_path):
    """keras-tuner's hyperband stops after one run of its brackets (1 trial at a 1-epoch
    cap, 30 at 10): a resume with a larger --max-trials added nothing (exit 0, no word), and a study's
    open-ended pair ended there with its share unspent."""
    space = tmp_path / "small_cnn.yaml"
    space.write_text(small_cnn())

    def config(max_trials: int) -> SearchConfig:
        return SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="hyperband",
                            max_trials=max_trials, epochs=1, image_size=32,
                            runs_dir=tmp_path / "runs", spaces=[space])

    assert len(search(config(1))) == 1  # one whole run of its brackets
    records = search(config(2))
    assert [r["status"] for r in records] == ["completed"] * 2
    oracle = json.loads((tmp_path / "runs" / "base_cnn__none" / "oracle.json").read_text())
    assert oracle["current_iteration"] == 1


def test_a_resumed_searchs_progress_starts_from_the_projects_best(tmp_path):
    """The progress line's "best" counted this run's trials only: a resumed search whose
    new trial scored 0.73 said "best 0.733" beside a recorded 0.9."""
    import io
    import json as _json

    from rich.console import Console

    from autopneumo.progress import SearchProgress
    from tests.records import write_record

    best = write_record(tmp_path, "base_cnn", "none", "0", 0.95)
    write_record(tmp_path, "base_cnn", "none", "1", 0.0, status="failed")
    recorded = _json.loads(best.read_text())["val"]["prec_at_recall"]
    with SearchProgress(Console(file=io.StringIO())) as progress:
        progress.search_begin(SearchConfig("base_cnn", "none", max_trials=3,
                                           runs_dir=tmp_path), 2)
        progress.trial_end({"trial_id": "2", "status": "completed",
                            "val": {"prec_at_recall": recorded / 2}})
        status = progress.progress.tasks[0].fields["status"]
    assert f"best {recorded:.3f}" in status


def test_a_chief_or_worker_prints_no_keras_tuner_debug_line_on_stdout(tmp_path, capfd):
    """keras-tuner's Parent.to_proto prints its first value: the chief's and each worker's
    stdout held a "3" per gRPC call carrying base_cnn's conditional conv_dropout."""
    from keras_tuner.src.engine.conditions import Parent

    from autopneumo.distributed import tuner_environment

    with tuner_environment("127.0.0.1:8000", "chief"):
        Parent("model.depth", [3, 4]).to_proto()
    assert capfd.readouterr().out == ""
