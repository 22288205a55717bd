"""Chief / worker tuning on keras-tuner's own gRPC oracle, plus liveness.

keras-tuner already distributes a search: a process whose ``KERASTUNER_TUNER_ID`` is
``chief`` serves the oracle on ``KERASTUNER_ORACLE_IP:PORT``; every other process is a
worker that asks it for trials. What keras-tuner lacks is liveness: a worker killed
mid-trial leaves its trial "running" and the chief waiting forever. Workers here touch a
heartbeat file in the shared project folder; the chief's watchdog hands the trial of a
silent worker back to the oracle (retried once by another worker) and forgets the worker.
Workers that run out of new trials wait while any trial may still come back for a retry.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import OptionError, SearchError
from .periodic import Periodic

ENV_IP, ENV_PORT, ENV_ID = "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"
HEARTBEAT_DIR = "workers"


def parse_chief(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise OptionError(f"--chief must be HOST:PORT, got {address!r}")
    return host, int(port)


CHIEF_WAIT = 600.0  # seconds a worker waits for its chief to answer before giving up


def wait_for_chief(address: str, seconds: float | None = None, say=None,
                   interval: float = 1.0) -> None:
    """Return once something listens at the chief's address (a worker may start first, as
    in a Slurm array); say once that it waits; after ``seconds`` a one-line error."""
    host, port = parse_chief(address)
    seconds = CHIEF_WAIT if seconds is None else seconds
    deadline = time.monotonic() + seconds
    told = False
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(interval, 5.0)):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise SearchError(f"--chief {address}: nothing answered for {seconds:.0f} s; start "
                              "`autopneumo search --chief ...` there first, or check the address")
        if not told and say is not None:
            say(f"waiting for the chief at {address} (up to {seconds:.0f} s)")
            told = True
        time.sleep(interval)


@contextlib.contextmanager
def chief_answers_within(address: str, seconds: float | None = None) -> Iterator[None]:
    """Worker side: each call to the chief waits ``seconds`` (``CHIEF_WAIT``) for an answer,
    not keras-tuner's hour; a chief that stopped answering (killed, its host gone) is then
    one ``SearchError`` line, not a worker holding its GPU for an hour and a gRPC
    traceback. Its running trial is lost; a restarted chief hands it out again.

    The wait is keras-tuner's module-level ``TIMEOUT``, set for the block: a process runs
    one worker (keras-tuner takes the chief's address and the tuner id from environment
    variables), so no other worker in it shares the setting."""
    import grpc
    from keras_tuner.src.distribute import oracle_client

    seconds = CHIEF_WAIT if seconds is None else seconds
    saved, oracle_client.TIMEOUT = oracle_client.TIMEOUT, seconds
    try:
        yield
    except grpc.RpcError as exc:
        code = exc.code().name if hasattr(exc, "code") else type(exc).__name__
        raise SearchError(f"--chief {address}: the chief stopped answering ({code} after "
                          f"{seconds:.0f} s at most); rerun this worker once the chief runs "
                          "again") from exc
    finally:
        oracle_client.TIMEOUT = saved


def same_space_as_chief(address: str, spaces: dict) -> None:
    """Worker side, before any trial: the chief's hyperparameters (one call) must be the
    ones this worker's family, policy and training spaces declare. A worker of another pair
    (a typo in --augment, a runs folder that also holds that pair's project) trained its
    own model with its defaults for the chief's trials, into its own project's trial
    folders, over that project's finished trials."""
    import keras_tuner as kt
    from keras_tuner.src.distribute.oracle_client import OracleClient

    def configs(hps) -> dict[str, Any]:  # names alone: cutmix and mixup declare the same
        return {hp.name: (type(hp).__name__, hp.get_config()) for hp in hps.space
                if not hp.name.startswith("tuner/")}

    declared = kt.HyperParameters()
    for space in spaces.values():
        space.apply(declared)
    theirs, mine = configs(OracleClient(None).get_space()), configs(declared)
    if theirs != mine:
        differ = {n for n in set(theirs) & set(mine) if theirs[n] != mine[n]}
        theirs, mine = set(theirs) - set(mine) | differ, set(mine) - set(theirs) | differ

        def some(names: set[str]) -> str:
            listed = sorted(names)
            return ", ".join(listed[:3]) + (" ..." if len(listed) > 3 else "") or "none"

        raise SearchError(
            f"--chief {address}: the chief searches other hyperparameters (the chief's: "
            f"{some(theirs)}; this worker's: {some(mine)}); start the worker with the "
            "chief's --family, --augment and --space")


def stop_new_trials_at(oracle, deadline: float) -> threading.Timer:
    """The chief's time budget: from ``deadline`` (``time.time()``) on, the oracle hands out
    no new trial (its trial count becomes its limit); the running ones finish (each
    worker's own --time-budget ends them after their epoch). Returns the started timer."""

    def stop() -> None:
        oracle.max_trials = len(oracle.trials)

    timer = threading.Timer(max(0.0, deadline - time.time()), stop)
    timer.daemon = True
    timer.start()
    return timer


def default_worker_id() -> str:
    return f"worker-{socket.gethostname()}-{os.getpid()}"


@contextlib.contextmanager
def tuner_environment(address: str, tuner_id: str) -> Iterator[None]:
    """Set keras-tuner's three variables for the duration of a search, then restore them."""
    if "chief" in tuner_id and tuner_id != "chief":
        raise OptionError(f"--worker-id must not contain 'chief', got {tuner_id!r}")
    host, port = parse_chief(address)
    quiet_condition_protos()
    saved = {k: os.environ.get(k) for k in (ENV_IP, ENV_PORT, ENV_ID)}
    os.environ.update({ENV_IP: host, ENV_PORT: str(port), ENV_ID: tuner_id})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def quiet_condition_protos() -> None:
    """keras-tuner's ``Parent.to_proto`` (a conditional hyperparameter, such as base_cnn's
    conv_dropout, sent over gRPC) prints its first parent value: a chief's and a worker's
    stdout filled with "3" lines, one per call. That module's ``print`` is silenced (it
    prints nothing else)."""
    from keras_tuner.src.engine import conditions

    conditions.print = lambda *args, **kwargs: None


class Heartbeat(Periodic):
    """A worker's background thread that touches ``workers/<id>.alive`` every ``interval`` s."""

    def __init__(self, project_dir: Path, tuner_id: str, interval: float = 2.0):
        super().__init__(interval, "heartbeat")
        self.path = Path(project_dir) / HEARTBEAT_DIR / f"{tuner_id}.alive"

    def tick(self) -> None:
        with contextlib.suppress(OSError):
            self.path.touch()

    def __enter__(self) -> Heartbeat:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        with contextlib.suppress(OSError):
            self.path.unlink()


class Watchdog(Periodic):
    """The chief's thread: a worker silent for ``timeout`` s loses its trial to the others."""

    def __init__(self, oracle, project_dir: Path, timeout: float = 60.0, interval: float = 1.0):
        super().__init__(interval, "watchdog")
        self.oracle = oracle
        self.folder = Path(project_dir) / HEARTBEAT_DIR
        self.timeout = timeout
        self.reclaimed: list[tuple[str, str]] = []  # (worker id, trial id)

    def __enter__(self) -> Watchdog:
        hold_finished_workers(self.oracle)
        return super().__enter__()

    def silent_workers(self) -> list[str]:
        """Workers the oracle waits for (running a trial, or registered) that went quiet."""
        now = time.time()
        silent = []
        for tuner_id in set(self.oracle.ongoing_trials) | set(self.oracle.tuner_ids):
            try:
                age = now - (self.folder / f"{tuner_id}.alive").stat().st_mtime
            except FileNotFoundError:
                age = float("inf")
            if age > self.timeout:
                silent.append(tuner_id)
        return silent

    def tick(self) -> None:
        for tuner_id in self.silent_workers():
            trial_id = _reclaim(self.oracle, tuner_id, self.timeout)
            self.reclaimed.append((tuner_id, trial_id))


def hold_finished_workers(oracle) -> None:
    """Chief side: keep a worker that runs out of new trials while another worker's trial
    is still running or waiting for its retry.

    keras-tuner answers STOPPED to a worker that asks once ``max_trials`` trials exist, and
    forgets it. When another worker is then killed mid-trial, the watchdog hands that trial
    back for a retry, but no worker is left to run it, and it ends failed. Here such a
    worker is answered IDLE instead, at once, until nothing can come back. keras-tuner's
    gRPC server answers one request at a time, so the answer must not wait: the worker
    paces its own requests (``pace_idle_answers``).
    """
    from keras_tuner.src.engine.oracle import synchronized
    from keras_tuner.src.engine.trial import TrialStatus

    original = oracle.create_trial

    @synchronized
    def keep(oracle, tuner_id: str) -> bool:
        if not (oracle.ongoing_trials or oracle._retry_queue):
            return False
        oracle.tuner_ids.add(tuner_id)  # keras-tuner dropped it along with its STOPPED
        return True

    def create_trial(tuner_id):
        trial = original(tuner_id)
        if trial.status == TrialStatus.STOPPED and keep(oracle, tuner_id):
            trial.status = TrialStatus.IDLE
        return trial

    oracle.create_trial = create_trial


def skip_ended_retries(oracle) -> None:
    """Owner side (a chief or a single search): never hand out again a trial that has ended.

    keras-tuner's ``reload`` queues every trial that ``oracle.json`` lists as ongoing for a
    retry, and ``end_trial`` saves that file before it drops the trial from the ongoing
    ones. A chief saves nothing after its last trial, so a finished distributed project
    still lists each worker's last, completed, trial as ongoing, and every resume retrained
    it over its own model and record. And a worker that finishes its trial while a
    restarted chief holds it in the retry queue ended it, yet the queue handed it out a
    second time. A queued trial that is completed or failed is dropped here before each
    trial is created.
    """
    from keras_tuner.src.engine.oracle import synchronized
    from keras_tuner.src.engine.trial import TrialStatus

    original = oracle.create_trial
    ended = (TrialStatus.COMPLETED, TrialStatus.FAILED)

    @synchronized
    def forget_ended(oracle) -> None:
        oracle._retry_queue[:] = [i for i in oracle._retry_queue
                                  if oracle.trials[i].status not in ended]

    def create_trial(tuner_id):
        forget_ended(oracle)
        return original(tuner_id)

    oracle.create_trial = create_trial


def pace_idle_answers(oracle, pause: float = 0.5) -> None:
    """Worker side: after an IDLE answer, wait ``pause`` s before asking again.

    keras-tuner's worker loop asks for the next trial again at once after IDLE; without a
    pause a waiting worker would keep the chief's single-threaded server busy.
    """
    from keras_tuner.src.engine.trial import TrialStatus

    original = oracle.create_trial

    def create_trial(tuner_id):
        trial = original(tuner_id)
        if trial.status == TrialStatus.IDLE:
            time.sleep(pause)
        return trial

    oracle.create_trial = create_trial


def _reclaim(oracle, tuner_id: str, timeout: float) -> str | None:
    from keras_tuner.src.engine.oracle import synchronized
    from keras_tuner.src.engine.trial import TrialStatus

    @synchronized
    def reclaim(oracle):
        trial = oracle.ongoing_trials.get(tuner_id)
        if trial is not None:
            trial.status = TrialStatus.INVALID  # INVALID is retried (max_retries_per_trial)
            trial.message = f"worker {tuner_id} stopped responding for {timeout:.0f} s"
            oracle.end_trial(trial)
        oracle.tuner_ids.discard(tuner_id)  # else the chief waits for it forever
        return None if trial is None else trial.trial_id

    return reclaim(oracle)


def mirrored_strategy(devices: int | None):
    """``tf.distribute.MirroredStrategy`` over ``devices`` GPUs, or None on a CPU machine."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    n = min(devices or len(gpus), len(gpus))
    return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(n)])
