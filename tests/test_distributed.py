"""keras-tuner's chief/worker engine on loopback: a chief and two worker processes."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autopneumo.distributed import parse_chief, tuner_environment
from autopneumo.errors import OptionError
from tests.tiny_spaces import small_cnn

SMALL_CNN = small_cnn(("8", "16", "32"), default="16")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def common(data: Path, runs: Path, space: Path, trials: int) -> list[str]:
    return ["--family", "base_cnn", "--augment", "none", "--data", str(data), "--image-size",
            "32", "--epochs", "1", "--tuner", "random", "--max-trials", str(trials),
            "--runs-dir", str(runs), "--space", str(space), "--seed", "5"]


def start(args: list[str], log: Path) -> subprocess.Popen:
    fh = open(log, "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "autopneumo.cli", *args], stdout=fh,
                            stderr=subprocess.STDOUT)


def records(runs: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(runs.rglob("record.json"))]


def test_chief_address_and_environment():
    assert parse_chief("127.0.0.1:8000") == ("127.0.0.1", 8000)
    for bad in ("nohost", "h:0", "h:x", ":80"):
        with pytest.raises(OptionError):
            parse_chief(bad)
    import os

    with tuner_environment("127.0.0.1:9", "worker-a"):
        assert os.environ["KERASTUNER_TUNER_ID"] == "worker-a"
        assert os.environ["KERASTUNER_ORACLE_PORT"] == "9"
    assert "KERASTUNER_TUNER_ID" not in os.environ
    with pytest.raises(OptionError):
        with tuner_environment("127.0.0.1:9", "mychief"):
            pass


def run_cluster(tiny_kermany, tmp_path, trials, kill_one=False):
    space = tmp_path / "space.yaml"
    space.write_text(SMALL_CNN)
    runs = tmp_path / "runs"
    address = f"127.0.0.1:{free_port()}"
    args = common(tiny_kermany, runs, space, trials)
    chief = start(["search", *args, "--chief", address, "--worker-timeout", "6"],
                  tmp_path / "chief.log")
    time.sleep(8)  # the chief loads TensorFlow and starts serving
    workers = [start(["worker", *args, "--chief", address, "--worker-id", f"worker-{i}"],
                     tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        if kill_one:  # kill worker-0 in the middle of a trial of its own
            oracle = runs / "base_cnn__none" / "oracle.json"
            deadline = time.monotonic() + 300
            victim_trial = None
            while time.monotonic() < deadline and victim_trial is None:
                try:
                    ongoing = json.loads(oracle.read_text()).get("ongoing_trials", {})
                except (OSError, ValueError):
                    ongoing = {}
                if records(runs) and "worker-0" in ongoing:
                    victim_trial = ongoing["worker-0"]
                time.sleep(0.2)
            assert victim_trial is not None
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(timeout=30)
            # (it may have finished that trial in the last instant: then nothing to reissue)
            finished = {r["trial_id"] for r in records(runs) if r.get("worker") == "worker-0"}
            run_cluster.victim_trial = None if victim_trial in finished else victim_trial
        assert chief.wait(timeout=300) == 0, (tmp_path / "chief.log").read_text()[-3000:]
        for w in workers[1 if kill_one else 0:]:
            assert w.wait(timeout=60) == 0, "worker failed"
    finally:
        for p in (chief, *workers):
            if p.poll() is None:
                p.kill()
    return runs


@pytest.mark.slow
def test_two_workers_share_a_six_trial_search(tiny_kermany, tmp_path):
    runs = run_cluster(tiny_kermany, tmp_path, trials=6)
    recs = records(runs)
    assert sorted(r["trial_id"] for r in recs) == [str(i) for i in range(6)]  # each once
    assert {r["status"] for r in recs} == {"completed"}
    assert {r["worker"] for r in recs} == {"worker-0", "worker-1"}  # both did work
    import autopneumo

    frame = autopneumo.leaderboard(runs)
    assert len(frame) == 6 and list(frame["rank"]) == list(range(1, 7))
    assert frame["val_objective"].is_monotonic_decreasing
    # The lifecycle review's 1: the chief's last save listed each worker's last (completed)
    # trial as ongoing, and a resume retrained it over its model and record.
    project = runs / "base_cnn__none"
    assert json.loads((project / "oracle.json").read_text())["ongoing_trials"] == {}
    kept = {p: p.read_bytes() for p in sorted(project.glob("trial_*/*"))
            if p.name in ("record.json", "model.keras")}
    space = tmp_path / "space.yaml"
    resumed = subprocess.run([sys.executable, "-m", "autopneumo.cli", "search",
                              *common(tiny_kermany, runs, space, 7)],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(r["trial_id"] for r in records(runs)) == [str(i) for i in range(7)]
    assert {p: p.read_bytes() for p in kept} == kept


@pytest.mark.slow
def test_a_killed_worker_does_not_stall_the_search(tiny_kermany, tmp_path):
    runs = run_cluster(tiny_kermany, tmp_path, trials=4, kill_one=True)
    recs = records(runs)
    assert sorted(r["trial_id"] for r in recs) == ["0", "1", "2", "3"]
    assert {r["status"] for r in recs} == {"completed"}
    if run_cluster.victim_trial is not None:
        reissued = next(r for r in recs if r["trial_id"] == run_cluster.victim_trial)
        # run again by the surviving worker (which waited for it instead of stopping); a
        # completed trial's record now precedes its end in the oracle, so the chief records
        # one only for projects from before that order (kept as an accepted outcome)
        assert reissued["worker"] in ("worker-1", "chief")


def _oracle(tmp_path, max_trials=1):
    import keras_tuner as kt

    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("val_objective", "max"),
                                           max_trials=max_trials, seed=0)
    oracle.hyperparameters.Int("units", 1, 1000)
    oracle._set_project_dir(str(tmp_path), "project")
    return oracle


def test_the_chief_keeps_a_finished_worker_idle_without_waiting_in_its_server(tmp_path,
                                                                              monkeypatch):
    """While a trial may still come back for a retry, a worker that asks for more is
    answered IDLE (not STOPPED, which would drop it for good), at once: keras-tuner's
    gRPC server answers one request at a time, so waiting there would hold up every
    other worker's calls."""
    from keras_tuner.src.engine.trial import TrialStatus

    from autopneumo import distributed

    def no_sleep(seconds):
        raise AssertionError("the chief must not sleep while answering")

    monkeypatch.setattr(distributed.time, "sleep", no_sleep)
    oracle = _oracle(tmp_path)
    distributed.hold_finished_workers(oracle)
    running = oracle.create_trial("worker-a")
    assert running.status == TrialStatus.RUNNING
    assert oracle.create_trial("worker-b").status == TrialStatus.IDLE
    assert "worker-b" in oracle.tuner_ids  # still counted: it may get the retry
    running.status = TrialStatus.COMPLETED
    oracle.update_trial(running.trial_id, {"val_objective": 0.5})
    oracle.end_trial(running)
    assert oracle.create_trial("worker-b").status == TrialStatus.STOPPED  # nothing can return


def test_a_trial_that_ended_is_never_handed_out_again(tmp_path):
    """The lifecycle review's 1 and 3: keras-tuner's end_trial saves oracle.json before it
    drops the trial from the ongoing ones, and reload queues every ongoing trial for a
    retry; a completed trial listed there (a chief's last save, or a worker that finished
    while a restarted chief held its trial in the queue) was run a second time."""
    from keras_tuner.src.engine.trial import TrialStatus

    from autopneumo.distributed import skip_ended_retries

    oracle = _oracle(tmp_path, max_trials=3)
    done = oracle.create_trial("worker-a")
    done.status = TrialStatus.COMPLETED
    oracle.update_trial(done.trial_id, {"val_objective": 0.5})
    saved = oracle.save

    def save_before_the_pop():  # the state a chief leaves: its last trial still ongoing
        oracle.ongoing_trials.setdefault("worker-a", done)
        saved()

    oracle.save = save_before_the_pop
    oracle.end_trial(done)
    resumed = _oracle(tmp_path, max_trials=3)
    resumed.reload()
    assert resumed._retry_queue == [done.trial_id]
    skip_ended_retries(resumed)
    fresh = resumed.create_trial("worker-b")
    assert fresh.trial_id != done.trial_id and fresh.status == TrialStatus.RUNNING
    assert resumed.trials[done.trial_id].status == TrialStatus.COMPLETED
    # a trial whose run was cut (still RUNNING, or INVALID) is retried as before
    resumed._retry_queue.append(fresh.trial_id)
    del resumed.ongoing_trials["worker-b"]
    assert resumed.create_trial("worker-c").trial_id == fresh.trial_id


def test_a_worker_paces_its_requests_after_an_idle_answer(monkeypatch):
    from types import SimpleNamespace

    from keras_tuner.src.engine.trial import TrialStatus

    from autopneumo import distributed

    slept = []
    monkeypatch.setattr(distributed.time, "sleep", slept.append)
    answers = iter([TrialStatus.IDLE, TrialStatus.RUNNING, TrialStatus.STOPPED])
    client = SimpleNamespace(create_trial=lambda tuner_id: SimpleNamespace(status=next(answers)))
    distributed.pace_idle_answers(client, pause=0.5)
    assert [client.create_trial("w").status for _ in range(3)] == [
        TrialStatus.IDLE, TrialStatus.RUNNING, TrialStatus.STOPPED]
    assert slept == [0.5]  # only after IDLE


def test_a_worker_says_it_waits_for_its_chief_and_gives_up_in_one_line():
    import socket

    from autopneumo.distributed import wait_for_chief
    from autopneumo.errors import SearchError

    with socket.socket() as server:  # something listening: returns at once, says nothing
        server.bind(("127.0.0.1", 0))
        server.listen()
        said = []
        wait_for_chief(f"127.0.0.1:{server.getsockname()[1]}", 1.0, said.append)
        assert said == []
        port = server.getsockname()[1]
    said = []  # nothing listens there any more
    with pytest.raises(SearchError, match=f"^--chief 127.0.0.1:{port}: nothing answered for 0 s"):
        wait_for_chief(f"127.0.0.1:{port}", 0.3, said.append, interval=0.05)
    assert said == [f"waiting for the chief at 127.0.0.1:{port} (up to 0 s)"]


def test_the_chiefs_time_budget_stops_handing_out_trials():
    import time
    from types import SimpleNamespace

    from autopneumo.distributed import stop_new_trials_at

    oracle = SimpleNamespace(max_trials=100, trials={"0": 1, "1": 2})
    timer = stop_new_trials_at(oracle, time.time() + 0.1)
    assert oracle.max_trials == 100  # not yet
    timer.join(5)
    assert oracle.max_trials == 2  # the trials already handed out, no more


def test_a_worker_takes_a_time_budget():
    from click.testing import CliRunner

    from autopneumo.cli import main

    result = CliRunner().invoke(main, ["worker", "--help"])
    assert "--time-budget" in result.output
    result = CliRunner().invoke(main, ["worker", "--chief", "127.0.0.1:1", "--family",
                                       "base_cnn", "--time-budget", "abc"])
    assert result.exit_code == 2 and "--time-budget must look like" in result.output


def test_a_worker_of_another_project_or_whose_chief_stops_answering_is_one_line(
        tiny_kermany, tmp_path, monkeypatch):
    """The lifecycle review's 7: keras-tuner's client waits an hour for each answer, so a
    worker whose chief was killed held its machine for an hour, then died with a gRPC
    traceback. Here something accepts the connection but never answers."""
    from dataclasses import replace

    from autopneumo import distributed
    from autopneumo.errors import SearchError
    from autopneumo.tuning import SearchConfig, search

    monkeypatch.setattr(distributed, "CHIEF_WAIT", 3.0)
    space = tmp_path / "space.yaml"
    space.write_text(SMALL_CNN)
    single = SearchConfig("base_cnn", "none", data=tiny_kermany, tuner="random", max_trials=1,
                          epochs=1, image_size=32, runs_dir=tmp_path / "runs", spaces=[space])
    search(single)  # the project a chief would have written before it serves
    from autopneumo.locking import _start_time, owner

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    (tmp_path / "runs" / single.project / "autopneumo.lock").write_text(json.dumps(
        {**owner(), "pid": holder.pid, "started": _start_time(holder.pid)}))  # the chief's
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        address = f"127.0.0.1:{mute.getsockname()[1]}"
        config = replace(single, max_trials=2, role="worker", chief=address, worker_id="w1")
        # the lifecycle review's 2: a worker of another family (or --runs-dir) trained its
        # own model with its defaults for the chief's trials; refused before it loads data
        with pytest.raises(SearchError, match=f"^--chief {address}: the chief answers, but "
                                              "no search holds .*resnet18__none"):
            search(replace(config, family="resnet18", spaces=[]))
        started = time.monotonic()
        with pytest.raises(SearchError, match=f"^--chief {address}: the chief stopped "
                                              "answering \\(DEADLINE_EXCEEDED after 3 s at "
                                              "most\\); rerun this worker"):
            search(config)
        assert time.monotonic() - started < 120
        holder.kill()
        holder.wait()
        # a lock left by a search that is gone (kill -9) is no chief's (the re-review's 1)
        with pytest.raises(SearchError, match="the chief answers, but no search holds"):
            search(config)
    from keras_tuner.src.distribute import oracle_client

    assert oracle_client.TIMEOUT == 60 * 60  # keras-tuner's own again


@pytest.mark.slow
def test_a_worker_of_another_pair_is_refused_before_it_touches_that_pairs_project(
        tiny_kermany, tmp_path):
    """The diff review's 1: a worker started with --augment none for a chief searching
    flip passed the folder check where base_cnn__none already held a search, then
    trained its own model for the chief's trials over base_cnn__none's finished ones."""
    space = tmp_path / "space.yaml"
    space.write_text(SMALL_CNN)
    runs = tmp_path / "runs"
    args = common(tiny_kermany, runs, space, 1)
    earlier = subprocess.run([sys.executable, "-m", "autopneumo.cli", "search", *args],
                             capture_output=True, text=True, timeout=600)
    assert earlier.returncode == 0, earlier.stderr[-2000:]
    from autopneumo.locking import _start_time, owner

    kept = {p: p.read_bytes() for p in sorted((runs / "base_cnn__none").rglob("*"))
            if p.name in ("record.json", "model.keras")}
    address = f"127.0.0.1:{free_port()}"
    flip = [a if a != "none" else "flip" for a in args]
    flip = [a for a in flip if a != "--space" and a != str(space)]  # flip's own space file
    chief = start(["search", *flip, "--chief", address], tmp_path / "chief.log")
    # a search running in base_cnn__none too (as a second chief's would)
    (runs / "base_cnn__none" / "autopneumo.lock").write_text(json.dumps(
        {**owner(), "pid": chief.pid, "started": _start_time(chief.pid)}))
    try:
        worker = subprocess.run([sys.executable, "-m", "autopneumo.cli", "worker", *args,
                                 "--chief", address, "--worker-id", "w9"],
                                capture_output=True, text=True, timeout=600)
    finally:
        chief.kill()
        chief.wait()
    assert worker.returncode == 1, worker.stderr[-2000:]
    assert (f"Error: --chief {address}: the chief searches other hyperparameters (the "
            "chief's: augment.mode, ") in worker.stderr  # and the built-in space's others
    assert "start the worker with the chief's --family" in worker.stderr
    assert {p: p.read_bytes() for p in kept} == kept


def test_a_worker_compares_the_chiefs_hyperparameters_not_only_their_names(monkeypatch):
    """The re-review's 1: cutmix and mixup declare the same names (alpha, probability)
    with other ranges: a mixup worker passed a cutmix chief's check of names. Every shipped
    pair passes its own check after keras-tuner's proto round trip (no false refusal)."""
    import keras_tuner as kt
    from keras_tuner.src.distribute import oracle_client

    from autopneumo.distributed import same_space_as_chief
    from autopneumo.errors import SearchError
    from autopneumo.registry import FAMILIES, POLICIES
    from autopneumo.tuning import SearchConfig, resolve_spaces

    def declared(family, policy):
        size = max(FAMILIES.get(family).min_image_size, POLICIES.get(policy).min_image_size)
        spaces = resolve_spaces(SearchConfig(family, policy, image_size=size))["spaces"]
        hp = kt.HyperParameters()
        for space in spaces.values():
            space.apply(hp)
        return spaces, kt.HyperParameters.from_proto(hp.to_proto())  # as the chief sends it

    chiefs = {}
    monkeypatch.setattr(oracle_client.OracleClient, "__init__", lambda self, oracle: None)
    monkeypatch.setattr(oracle_client.OracleClient, "get_space",
                        lambda self: chiefs["space"])
    for family in FAMILIES.names():
        for policy in POLICIES.names():
            spaces, chiefs["space"] = declared(family, policy)
            same_space_as_chief("host:1", spaces)
    mixup, _ = declared("base_cnn", "mixup")
    _, chiefs["space"] = declared("base_cnn", "cutmix")
    with pytest.raises(SearchError, match="the chief's: augment.alpha, augment.probability"):
        same_space_as_chief("host:1", mixup)


def test_a_worker_never_writes_or_resets_its_chiefs_project_settings(tmp_path):
    """The re-review's 2: before the chief's first trial folder existed, a worker with
    another --image-size (or --space, --seed, data) reset the chief's project file as a
    failed earlier start would be, trained the chief's trials at its own size, and the
    chief's own rerun was then refused."""
    from dataclasses import replace
    from types import SimpleNamespace

    from autopneumo.errors import RunsError
    from autopneumo.tuning import PROJECT_FILE, SearchConfig, _pin_project, resolve_spaces

    chief = SearchConfig("base_cnn", "none", image_size=32, role="chief", chief="h:1")
    dataset = SimpleNamespace(manifest={"data_hash": "abc", "split_hash": "def"})
    spaces = resolve_spaces(chief)["spaces"]
    project = tmp_path / chief.project
    worker = replace(chief, role="worker")
    with pytest.raises(RunsError, match="no project file .* of the chief's here"):
        _pin_project(project, worker, dataset, spaces)
    assert not (project / PROJECT_FILE).exists()
    _pin_project(project, chief, dataset, spaces)  # no trial folder yet
    pinned = (project / PROJECT_FILE).read_bytes()
    with pytest.raises(RunsError, match="started with other settings \\(image_size\\)"):
        _pin_project(project, replace(worker, image_size=40), dataset, spaces)
    assert (project / PROJECT_FILE).read_bytes() == pinned
    assert _pin_project(project, worker, dataset, spaces)["image_size"] == 32
