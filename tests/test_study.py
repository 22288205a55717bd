"""The budgeted study: the families x policies matrix within one budget, resumable."""

from __future__ import annotations

import dataclasses
import json
import re
import time

import pytest

from autopneumo.errors import OptionError
from autopneumo.registry import FAMILIES, POLICIES
from autopneumo.study import expand, run_study, short_shares
from autopneumo.tuning import PRESETS, SearchConfig, parse_duration


def test_parse_duration():
    assert parse_duration("90s") == 90
    assert parse_duration("30m") == 1800
    assert parse_duration("2h") == 7200
    assert parse_duration("1h30m") == 5400
    assert parse_duration("5") == 300
    for bad in ("", "2x", "h", "1h30"):
        with pytest.raises(OptionError, match="^--time-budget must look like"):
            parse_duration(bad)
    with pytest.raises(OptionError, match="^--budget must look like"):
        parse_duration("xyz", "--budget")


def test_expand_names():
    assert expand("all", FAMILIES) == FAMILIES.names()
    assert expand("none,flip", POLICIES) == ["none", "flip"]
    assert expand(["none", "flip,none"], POLICIES) == ["none", "flip"]
    with pytest.raises(OptionError, match="did you mean 'flip'"):
        expand("flp", POLICIES)


def test_quick_preset_is_the_documented_one():
    assert PRESETS["quick"]["image_size"] == 64 and PRESETS["quick"]["tuner"] == "hyperband"


@pytest.mark.slow
def test_study_stops_within_its_budget_plus_one_epoch_and_resumes(tiny_kermany, tmp_path):
    budget = 30.0
    base = SearchConfig(family="", policy="", data=tiny_kermany, tuner="random", max_trials=50,
                        epochs=2, image_size=32, runs_dir=tmp_path / "runs")
    start = time.time()
    state = run_study("base_cnn", "none,flip", budget, base)
    wall = time.time() - start
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("record.json")]
    longest_epoch = max(s for r in records for s in r["history"]["epoch_seconds"])
    longest_eval = max(r["seconds"]["evaluation"] for r in records)
    # past the deadline a trial finishes its epoch and is evaluated; nothing else starts
    assert wall <= budget + longest_epoch + longest_eval + 10.0
    assert state["total_spent"] == pytest.approx(sum(state["spent"].values()))
    assert set(state["spent"]) <= {"base_cnn__none", "base_cnn__flip"}
    assert "base_cnn__none" in state["spent"]
    assert all(r["status"] == "completed" for r in records)
    # each project that ran says what it got; random search trains every trial to the cap
    assert set(state["outcome"]) == set(state["spent"])
    assert sum(o["completed"] for o in state["outcome"].values()) == len(records)
    # the most epochs a trial reached: its 2, or fewer where the deadline ended its fit
    cut = {p: [r for r in records if r["project"] == p and "stopped_at_deadline" in r["history"]]
           for p in state["outcome"]}
    assert sum(map(len, cut.values())) <= 2  # at most the one trial running at the deadline
    for project, out in state["outcome"].items():
        reached = [len(r["history"]["loss"]) if r in cut[project] else 2
                   for r in records if r["project"] == project]
        assert out["most_epochs"] == max(reached)
        assert out["cut_by_deadline"] == len(cut[project])
    # rerun: the budget is spent, nothing more is trained
    again = run_study("base_cnn", "none,flip", budget, base)
    after = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("record.json")]
    assert len(after) == len(records)
    assert again["total_spent"] <= state["total_spent"] + 2.0
    assert not set(again.get("skipped", [])) & set(again["spent"])  # ran before: not skipped
    # a rerun with other settings is refused, budget spent or not, and changes nothing
    from autopneumo.errors import RunsError

    before = (tmp_path / "runs" / "study.json").read_bytes()
    for budget_now in (budget, 2 * budget):
        other = SearchConfig(**{**base.__dict__, "image_size": 48})
        with pytest.raises(RunsError, match=r"other settings \(image_size\)"):
            run_study("base_cnn", "none", budget_now, other)
        assert (tmp_path / "runs" / "study.json").read_bytes() == before
    with pytest.raises(OptionError, match="--families selects nothing"):
        run_study(" , ", "none", budget, base)


def test_study_outcome_and_short_shares():
    from autopneumo.study import outcome

    def rec(status, rung=None, cut_after=None, initial=0):
        hps = {"tuner/epochs": rung, "tuner/initial_epoch": initial} if rung else {}
        if cut_after is None:  # ran its epochs (or early stopping ended it)
            return {"status": status, "hyperparameters": hps, "epochs_run": 3}
        return {"status": status, "hyperparameters": hps, "epochs_run": cut_after,
                "history": {"loss": [0.5] * cut_after, "stopped_at_deadline": [1.0]}}

    first_rung = outcome([rec("completed", 2), rec("completed", 2), rec("failed")], 10,
                         "hyperband")
    assert first_rung == {"trials": 3, "completed": 2, "tuner": "hyperband", "cap": 10,
                          "most_epochs": 2, "cut_by_deadline": 0, "interrupted": 0}
    promoted = outcome([rec("completed", 2), rec("completed", 10)], 10, "hyperband")
    assert promoted["most_epochs"] == 10
    assert outcome([rec("completed")], 10, "random")["most_epochs"] == 10
    # the deadline ended a promoted trial's fit after 2 of its epochs 5-10: it reached 6
    cut = outcome([rec("completed", 4), rec("completed", 10, cut_after=2, initial=4)], 10,
                  "hyperband")
    assert cut["most_epochs"] == 6 and cut["cut_by_deadline"] == 1
    # a continuation that really started at epoch 2 (its parent's weights had trained 2)
    started_lower = rec("completed", 10, cut_after=2, initial=4) | {"start_epoch": 2}
    assert outcome([started_lower], 10, "hyperband")["most_epochs"] == 4
    random_cut = outcome([rec("completed", cut_after=1)], 10, "random")
    assert random_cut["most_epochs"] == 1
    state = {"spent": {"a__x": 1320.0, "b__x": 3000.0, "c__x": 60.0, "f__x": 22.4},
             "outcome": {"a__x": first_rung, "b__x": promoted,
                         "c__x": outcome([rec("failed")], 10, "bayesian"),
                         "e__x": cut, "f__x": random_cut},
             "skipped": ["d__x"]}
    assert short_shares(state) == [
        "a__x: no trial got past 2 of 10 epochs (hyperband's early rounds) in its 22 min",
        "c__x: no trial completed in its 1 min",
        "e__x: no trial got past 6 of 10 epochs (hyperband's early rounds and the budget's "
        "end) in its 0 s",
        "f__x: no trial got past 1 of 10 epochs (the budget's end) in its 22 s",
        "d__x: skipped, no budget left",
    ]


def test_the_deadline_ends_a_fit_and_says_so_in_its_history():
    import time

    import keras
    import numpy as np

    from autopneumo.hypermodel import StopAtDeadline
    from autopneumo.tuning import DEADLINE_LOG

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((8, 3), np.float32), np.zeros((8, 1), np.float32)
    history = model.fit(x, y, epochs=5, verbose=0, callbacks=[StopAtDeadline(time.time())])
    assert len(history.history["loss"]) == 1
    assert history.history[DEADLINE_LOG] == [1.0]
    later = model.fit(x, y, epochs=3, verbose=0, callbacks=[StopAtDeadline(time.time() + 3600)])
    assert DEADLINE_LOG not in later.history and len(later.history["loss"]) == 3


def test_fair_share_after_an_interruption_or_a_larger_budget():
    from autopneumo.study import fair_share

    # uninterrupted: what is left over the pairs still to run
    assert fair_share(60, [0, 0], 0) == 30
    assert fair_share(60, [33, 0], 1) == 27
    # pair 0 was interrupted after 10 s: it gets the rest of its 30, not 30 more
    assert fair_share(60, [10, 0], 0) == 20
    assert fair_share(60, [30, 0], 1) == 30
    # a finished study's budget doubled: each pair gets its half of the new time
    assert fair_share(120, [30, 30], 0) == 30
    assert fair_share(120, [60, 30], 1) == 30
    assert fair_share(60, [30, 30], 0) == 0  # spent: nothing more


def test_study_accounting_skips_and_ticks(tmp_path, monkeypatch):
    """A pair skipped for lack of time is no longer listed as skipped once a rerun gives
    it time, and the time a pair's search spends is written while it runs (a kill -9
    loses at most one tick)."""
    import autopneumo.study as study

    clock = [1000.0]
    monkeypatch.setattr(study.time, "time", lambda: clock[0])
    seen = []

    def search(config, progress=None):
        time.sleep(0.15)  # real time: the ticker writes study.json meanwhile
        seen.append(json.loads((tmp_path / "runs" / "study.json").read_text())["spent"])
        clock[0] += config.time_budget  # every pair uses its whole share
        return []

    monkeypatch.setattr(study, "search", search)
    monkeypatch.setattr(study._Ticker, "interval", 0.02)
    base = SearchConfig(family="", policy="", tuner="random", max_trials=5, epochs=2,
                        image_size=32, runs_dir=tmp_path / "runs")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "study.json").write_text(json.dumps({"spent": {}}))
    state = run_study("base_cnn", "none,flip", 1.0, base)  # 0.5 s and 1 s: too short to run
    assert state["skipped"] == ["base_cnn__none", "base_cnn__flip"] and seen == []
    state = run_study("base_cnn", "none,flip", 100.0, base)
    assert state["skipped"] == []
    assert state["spent"] == {"base_cnn__none": 50.0, "base_cnn__flip": 50.0}
    assert seen[0] == {"base_cnn__none": 0.0}  # written while the first pair ran
    assert seen[1] == {"base_cnn__none": 50.0, "base_cnn__flip": 0.0}


def test_progress_shows_the_budget_left_and_counts_finished_trials_only(tmp_path):
    """A search with a time budget (each study pair: up to 1,000 trials) shows the budget
    left, not an ETA from 1,000 trials; a resumed project's interrupted trial, repeated,
    is not counted as done."""
    import io
    import json
    import time

    from rich.console import Console

    from autopneumo.progress import SearchProgress
    from autopneumo.tuning import SearchConfig, _finished_trials

    def shown(deadline):
        console = Console(file=io.StringIO(), width=200, force_terminal=False)
        progress = SearchProgress(console)
        with progress:
            progress.search_begin(SearchConfig("base_cnn", "none", max_trials=1000), 2,
                                  deadline)
            progress.progress.refresh()
        return console.file.getvalue()

    assert "budget left 0:09:5" in shown(time.time() + 600)
    assert "2/?" in shown(time.time() + 600)  # a trial limit the budget never reaches
    assert "ETA" in shown(None) and "budget left" not in shown(None)
    assert "2/1000" in shown(None)
    project = tmp_path / "base_cnn__none"
    for i, status in enumerate(("completed", "failed", "interrupted")):
        folder = project / f"trial_{i}"
        folder.mkdir(parents=True)
        (folder / "record.json").write_text(json.dumps({"trial_id": str(i), "status": status}))
    assert _finished_trials(project) == 2


def test_a_pair_whose_every_trial_failed_does_not_stop_the_study(tmp_path, monkeypatch):
    """``search`` raises SearchError when no trial of its project completed (the API
    review's B5); a study takes that pair's records from the error and goes on, as it did
    when the search returned them, and warns about the pair."""
    import autopneumo.study as study
    from autopneumo.errors import SearchError

    ran = []

    def search(config, progress=None):
        ran.append((config.project, config.max_trials))
        if config.policy == "none":
            raise SearchError(f"{config.project}: no trial completed",
                              [{"status": "failed", "message": "nan"}])
        return [{"status": "completed", "history": {}}]

    monkeypatch.setattr(study, "search", search)
    base = SearchConfig(family="", policy="", tuner="random", epochs=2, image_size=32,
                        runs_dir=tmp_path / "runs")
    state = run_study("base_cnn", "none,flip", 100.0, base)
    # without max_trials the budget ends each pair, as in the CLI's study
    assert ran == [("base_cnn__none", study.STUDY_MAX_TRIALS),
                   ("base_cnn__flip", study.STUDY_MAX_TRIALS)]
    assert state["outcome"]["base_cnn__none"]["completed"] == 0
    assert state["outcome"]["base_cnn__flip"]["completed"] == 1
    assert short_shares(state)[0].startswith("base_cnn__none: no trial completed")

    def stopped(config, progress=None):  # a search that could not go on at all: raised
        raise SearchError("--chief x: nothing answered for 0 s")

    monkeypatch.setattr(study, "search", stopped)
    with pytest.raises(SearchError, match="nothing answered"):
        run_study("base_cnn", "geometric", 100.0, base)


def test_a_second_study_on_one_runs_folder_is_refused(tmp_path, monkeypatch):
    """The lifecycle review's 6: two studies on one runs folder each kept their own
    accounting and rewrote study.json over the other's (a pair searched twice its share,
    the budget overspent by two thirds). The second now refuses before reading it."""
    import subprocess
    import sys

    import autopneumo.study as study
    from autopneumo.errors import RunsError
    from autopneumo.locking import _start_time, owner

    monkeypatch.setattr(study, "search", lambda config, progress=None: [])
    runs = tmp_path / "runs"
    runs.mkdir()
    base = SearchConfig(family="", policy="", tuner="random", epochs=2, image_size=32,
                        runs_dir=runs)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (runs / "study.lock").write_text(json.dumps(
            {**owner(), "pid": holder.pid, "started": _start_time(holder.pid)}))
        with pytest.raises(RunsError, match=f"another study \\(pid {holder.pid} on host .*"
                                            "study.lock; wait for it or stop it"):
            run_study("base_cnn", "none", 10.0, base)
        assert not (runs / "study.json").exists()
    finally:
        holder.kill()
        holder.wait()
    state = run_study("base_cnn", "none", 10.0, base)  # its owner gone: taken over
    assert list(state["spent"]) == ["base_cnn__none"]
    assert not (runs / "study.lock").exists()  # given back


def test_a_pair_stopped_past_its_deadline_gets_an_outcome_and_a_warning(tmp_path, monkeypatch):
    """The lifecycle review's 5: a Ctrl-C or kill after a pair's deadline (its last trial
    finishing its epoch and evaluation) left the trial interrupted, the share spent, and no
    outcome: the rerun skipped the pair and said nothing about it."""
    import autopneumo.study as study
    from tests.records import write_record

    monkeypatch.setattr(study, "search", lambda config, progress=None: [])
    runs = tmp_path / "runs"
    write_record(runs, "base_cnn", "none", "0", 0.8)
    write_record(runs, "base_cnn", "none", "1", 0.8, status="interrupted")
    base = SearchConfig(family="", policy="", tuner="random", epochs=2, image_size=32,
                        runs_dir=runs)
    (runs / "study.json").write_text(json.dumps({"spent": {"base_cnn__none": 60.5}}))
    state = run_study("base_cnn", "none", 60.0, base)
    assert state["outcome"]["base_cnn__none"] == {
        "trials": 2, "completed": 1, "tuner": "random", "cap": 2, "most_epochs": 2,
        "cut_by_deadline": 0, "interrupted": 1}
    assert "skipped" not in state or state["skipped"] == []
    assert short_shares(state) == [
        "base_cnn__none: 1 trial(s) interrupted and not run again (its share was spent)"]


def test_a_pair_that_runs_again_drops_its_old_outcome_and_a_refused_one_is_not_charged(
        tmp_path, monkeypatch):
    """The diff review's risks: a pair given more budget kept the outcome of its earlier
    run if this run was stopped past its deadline; and a pair whose search was refused at
    once (another search holds it) stayed in the accounting as if it had run."""
    import autopneumo.study as study
    from autopneumo.errors import RunsError

    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "study.json").write_text(json.dumps({
        "spent": {"base_cnn__none": 10.0},
        "outcome": {"base_cnn__none": {"trials": 1, "completed": 1, "tuner": "random",
                                       "cap": 2, "most_epochs": 2, "cut_by_deadline": 0}}}))
    seen = []

    def search(config, progress=None):
        seen.append(json.loads((runs / "study.json").read_text()).get("outcome", {}))
        if config.policy == "flip":
            raise RunsError("another search holds it")
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "search", search)
    base = SearchConfig(family="", policy="", tuner="random", epochs=2, image_size=32,
                        runs_dir=runs)
    with pytest.raises(RunsError):
        run_study("base_cnn", "flip", 100.0, base)
    state = json.loads((runs / "study.json").read_text())
    assert "base_cnn__flip" not in state["spent"]  # refused: neither charged nor "ran"
    with pytest.raises(KeyboardInterrupt):
        run_study("base_cnn", "none", 100.0, base)
    assert seen[-1] == {}  # the earlier run's outcome is not this run's


def test_a_pair_whose_search_fails_after_a_trial_ran_is_charged(tmp_path, monkeypatch):
    """The diff review's leftover risk: a RunsError raised after training (a damaged
    model.keras read back at the end) was refunded as if the project had refused to
    start, so a rerun of the study spent that time again."""
    import autopneumo.study as study
    from autopneumo.errors import RunsError

    runs = tmp_path / "runs"
    runs.mkdir()
    clock = [1000.0]
    monkeypatch.setattr(study.time, "time", lambda: clock[0])

    def search(config, progress=None):
        trial = runs / f"{config.family}__{config.policy}" / "trial_0"
        trial.mkdir(parents=True)
        (trial / "record.json").write_text(json.dumps({"trial_id": "0"}))
        clock[0] += 30.0
        raise RunsError("model.keras is damaged")

    monkeypatch.setattr(study, "search", search)
    base = SearchConfig(family="", policy="", tuner="random", epochs=2, image_size=32,
                        runs_dir=runs)
    with pytest.raises(RunsError, match="damaged"):
        run_study("base_cnn", "flip", 100.0, base)
    state = json.loads((runs / "study.json").read_text())
    assert state["spent"]["base_cnn__flip"] == pytest.approx(30.0)


@pytest.mark.parametrize("text, says", [
    ("[]", "not a JSON object but list"),  # was AttributeError: 'list' ... 'get'
    ('{"spent": {"base_cnn__none": "ten"}}', "spent['base_cnn__none'] is not a number"),
    ('{"spent": {"base_cnn__none": NaN}}', "spent['base_cnn__none'] is not a number"),
    ('{"spent": [1]}', "'spent' is not a JSON object"),
    ('{"skipped": "base_cnn__none"}', "'skipped' is not a JSON list"),
    ('{"settings": 3}', "'settings' is not a JSON object"),
    ('{"outcome": {"base_cnn__none": 1}}', "outcome['base_cnn__none'] is not a pair's"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
])
def test_a_study_file_of_the_wrong_shape_is_one_line_and_left_alone(tmp_path, monkeypatch,
                                                                   text, says):
    """Review 21 #12: a study.json that is valid JSON of another shape was a traceback
    (AttributeError on [], TypeError in fair_share on a spent of "ten"); a truncated one
    already got the one line "unreadable study file", which these get now too."""
    from click.testing import CliRunner

    import autopneumo.study as study
    from autopneumo.cli import main
    from autopneumo.errors import RunsError

    monkeypatch.setattr(study, "search", lambda config, progress=None: [])
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "study.json").write_text(text)
    base = SearchConfig(family="", policy="", tuner="random", epochs=2, image_size=32,
                        runs_dir=runs)
    with pytest.raises(RunsError, match=f"study.json: unreadable study file \\(.*{re.escape(says)}"):
        run_study("base_cnn", "none", 10.0, base)
    result = CliRunner().invoke(main, ["study", "--budget", "1m", "--families", "base_cnn",
                                       "--augment", "none", "--data", str(tmp_path / "no-data"),
                                       "--runs-dir", str(runs)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert result.output.startswith(f"Error: {runs / 'study.json'}: unreadable study file")
    assert (runs / "study.json").read_text() == text


def test_a_study_refused_before_anything_ran_pins_no_settings(tmp_path):
    """A first study with a mistyped --data wrote study.json with its settings, so the
    corrected rerun with another --image-size or --epochs was refused as 'started with
    other settings' though nothing had run (review 22)."""
    from autopneumo.errors import DataError

    runs = tmp_path / "runs"
    base = SearchConfig(family="", policy="", data=tmp_path / "chest_xrayy", image_size=128,
                        runs_dir=runs)
    with pytest.raises(DataError, match="chest_xrayy"):
        run_study("base_cnn", "none", 60.0, base)
    assert not (runs / "study.json").exists()
    other = dataclasses.replace(base, image_size=32, epochs=1)
    with pytest.raises(DataError, match="chest_xrayy"):  # not "other settings"
        run_study("base_cnn", "none", 60.0, other)


def test_a_study_stopped_before_any_trial_started_pins_no_settings(tmp_path, monkeypatch):
    """A Ctrl-C while the first pair loaded the data (a first run at --image-size 224 that
    decodes for minutes) left study.json with its settings, so the rerun at another
    --image-size was refused as 'started with other settings' though no trial had
    started. Once one has, the settings bind."""
    import autopneumo.study as study
    from autopneumo.errors import RunsError

    def loading(config, progress=None):  # interrupted before its first trial
        (tmp_path / "runs" / config.project).mkdir(parents=True, exist_ok=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "search", loading)
    runs = tmp_path / "runs"
    base = SearchConfig(family="", policy="", tuner="random", image_size=224, runs_dir=runs)
    with pytest.raises(KeyboardInterrupt):
        run_study("base_cnn", "none", 60.0, base)
    assert json.loads((runs / "study.json").read_text())["settings"]["image_size"] == 224
    monkeypatch.setattr(study, "search", lambda config, progress=None: [])
    other = dataclasses.replace(base, image_size=32)
    state = run_study("base_cnn", "none", 60.0, other)  # not "other settings (image_size)"
    assert state["settings"]["image_size"] == 32
    (runs / "base_cnn__none" / "trial_0000").mkdir()  # a trial started: the settings bind
    with pytest.raises(RunsError, match=r"this study was started with other settings "
                                        r"\(image_size\)"):
        run_study("base_cnn", "none", 60.0, base)
