"""``search``: one keras-tuner project per (family, policy) under the runs folder.

Running the same search again resumes it (keras-tuner reloads its oracle and reruns a
trial that was interrupted). After each trial, its best epoch's weights are evaluated
once and written as one record (``evaluation.py``).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .backend import frozen_heap, import_tensorflow_quietly, kept_random_state
from .errors import AutopneumoNote, OptionError, RunsError, SearchError, SpaceError, warn
from .interrupts import defer_ctrl_c, keep_ctrl_c
from .paths import DEFAULT_RUNS_DIR
from .spaces import ValueRule, is_integer, is_number, one_of, positive_int

DEADLINE_LOG = "stopped_at_deadline"  # in a trial's history: the time budget ended its fit

TUNERS = ("hyperband", "bayesian", "random", "grid")
# Named sets of defaults; options given explicitly win.
PRESETS: dict[str, dict[str, Any]] = {
    # a useful comparison of two families in about 10 minutes on 2 CPU cores
    "quick": {"image_size": 64, "epochs": 3, "tuner": "hyperband", "max_trials": 8,
              "time_budget": 300.0},
}
PROJECT_FILE = "autopneumo_project.json"
# Settings that must not change when a project is resumed.
_PINNED = ("family", "policy", "tuner", "image_size", "channels", "recall_target",
           "val_fraction", "seed", "data_hash", "spaces")


@dataclass
class SearchConfig:
    """One search: a model family crossed with an augmentation policy, and how to run it.

    The fields are the ``search`` command's options (``family`` and ``policy`` its
    ``--family`` and ``--augment``); ``time_budget`` is in seconds (``parse_duration``
    reads the CLI's "30m" or "2h"); ``spaces`` lists extra search-space files. Checked
    by ``validate`` before TensorFlow loads; errors are ``OptionError``.
    """

    family: str
    policy: str
    data: str | Path | None = None
    tuner: str = "bayesian"
    max_trials: int | None = None  # None: default_trials (10; hyperband: all its brackets)
    epochs: int | None = None
    image_size: int = 128
    channels: int = 1
    recall_target: float = 0.95
    val_fraction: float = 0.2
    seed: int = 0
    runs_dir: str | Path = DEFAULT_RUNS_DIR
    spaces: list[str | Path] = field(default_factory=list)
    command: str = ""
    time_budget: float | None = None  # seconds; the search stops cleanly past it
    chief: str | None = None  # HOST:PORT of keras-tuner's oracle chief
    role: str = "single"  # "single", "chief" (serves the oracle) or "worker"
    worker_id: str | None = None
    worker_timeout: float = 60.0  # seconds of silence before a worker's trial is reissued
    strategy: str | None = None  # "mirrored": tf.distribute over --devices GPUs
    devices: int | None = None
    weights: str | Path | None = None  # local ImageNet weights file for the backbone
    mixed_precision: bool = False  # GPU only: float16 compute, float32 output
    jit: bool = False  # GPU only: XLA-compiled train and predict steps
    data_on_device: bool = False  # GPU + JAX only: the training split held on the device

    @property
    def project(self) -> str:
        return f"{self.family}__{self.policy}"

    def validate(self) -> None:
        _check_types(self)
        if not 0.0 < self.recall_target < 1.0:
            raise OptionError(f"--recall-target must be in (0, 1), got {self.recall_target}")
        if self.tuner not in TUNERS:
            raise OptionError(f"unknown --tuner {self.tuner!r}; known: {', '.join(TUNERS)}")
        if self.max_trials is not None and self.max_trials < 1:
            raise OptionError(f"--max-trials must be positive, got {self.max_trials}")
        if self.epochs is not None and self.epochs < 1:
            raise OptionError(f"--epochs must be positive, got {self.epochs}")
        if self.channels not in (1, 3):
            raise OptionError(f"--channels must be 1 or 3, got {self.channels}")
        if self.time_budget is not None and not self.time_budget > 0:  # NaN too
            raise OptionError(f"--time-budget must be positive, got {self.time_budget}")
        if self.role not in ("single", "chief", "worker"):
            raise OptionError(f"unknown role {self.role!r}")
        if self.role != "single" and not self.chief:
            raise OptionError("a chief or worker needs --chief HOST:PORT")
        if self.chief:
            from .distributed import parse_chief

            parse_chief(self.chief)
        if self.strategy not in (None, "mirrored"):
            raise OptionError(f"unknown --strategy {self.strategy!r}; known: mirrored")
        if self.devices is not None and self.devices < 1:
            raise OptionError(f"--devices must be positive, got {self.devices}")
        if self.devices is not None and self.strategy is None:
            raise OptionError("--devices goes with --strategy mirrored")
        if not self.worker_timeout > 0:  # NaN too: a chief that never reissues a trial
            raise OptionError(f"--worker-timeout must be positive, got {self.worker_timeout}")
        if not 0 <= self.seed < 2**32:
            raise OptionError(f"--seed must be in [0, 2**32), got {self.seed}")
        if not 0.0 < self.val_fraction <= 0.5:  # as the split checks it, before a folder
            raise OptionError(f"--val-fraction must be in (0, 0.5], got {self.val_fraction}")
        runs = Path(self.runs_dir)
        if runs.exists() and not runs.is_dir():
            raise OptionError(f"--runs-dir {runs}: is a file, not a folder")


_INTS = ("max_trials", "epochs", "image_size", "channels", "seed", "devices")
_NUMBERS = ("recall_target", "val_fraction", "time_budget", "worker_timeout")
_OPTIONAL = ("max_trials", "epochs", "devices", "time_budget")  # None: a default applies


def _check_types(config: SearchConfig) -> None:
    """From Python nothing parses the fields as the CLI does: a "30m" budget or a "3"
    channel count is named here, not met as a TypeError (or a misleading range error)
    deep in the search."""
    for name in _INTS + _NUMBERS:
        value = getattr(config, name)
        if value is None and name in _OPTIONAL:
            continue
        if not (is_integer if name in _INTS else is_number)(value):
            kind = "an integer" if name in _INTS else "a number"
            hint = " of seconds (parse_duration reads '30m')" if name == "time_budget" else ""
            raise OptionError(f"SearchConfig.{name} must be {kind}{hint}, got {value!r}")
    if isinstance(config.spaces, str | Path):
        raise OptionError(f"SearchConfig.spaces is a list of files, got one: {config.spaces!r} "
                          "(write [path])")


def _python_numbers(config: SearchConfig) -> SearchConfig:
    """NumPy's numbers (a notebook's ``np.int64`` seed, which ``validate`` accepts) as
    Python's: ``keras.utils.set_random_seed`` refuses an ``np.int64``, after the data were
    loaded and the project pinned."""
    values = {name: getattr(config, name) for name in _INTS + _NUMBERS}
    return replace(config, **{name: (int if name in _INTS else float)(value)
                              for name, value in values.items() if value is not None})


DEFAULT_TRIALS = 10


def default_trials(tuner: str, cap: int) -> int:
    """--max-trials when not given: 10, or for hyperband one whole iteration of its
    brackets at this epoch cap (30 at a 10-epoch cap, 6 at 3), counting every rung's
    trial: with 10, hyperband's first bracket (12 trials of 2 epochs at a 10-epoch cap)
    would use them all and no trial would get past 2 epochs."""
    if tuner != "hyperband":
        return DEFAULT_TRIALS
    import keras_tuner as kt

    oracle = kt.oracles.HyperbandOracle(objective=kt.Objective("x", "max"), max_epochs=cap,
                                        factor=3)
    brackets = oracle._get_num_brackets()
    return sum(oracle._get_size(b, r) for b in range(brackets)
               for r in range(oracle._get_num_rounds(b)))


def epoch_cap(resolved: dict[str, Any]) -> int:
    """The most epochs a trial trains: the training space's ``epochs`` (``--epochs``
    fixes it); hyperband's ``max_epochs``."""
    return int(resolved["spaces"]["training"].defaults()["epochs"])


def check_spaces(build: bool = False) -> list[str]:
    """Every registered family's and policy's search space and the training space,
    checked as a search checks them before it loads data (``autopneumo spaces``): one
    line per problem, none when all are fine. ``build``: also build each family's model and
    each policy's layers at the spaces' defaults, as keras-tuner does when a search makes
    its tuner (a builder that fails there; seconds per family).

    A search checks its family's file before its policy's: each family is checked with a
    policy that passes, each policy with a family that passes (and builds), so a broken
    file hides no other file's problems."""
    from .errors import UserError
    from .registry import FAMILIES, POLICIES

    problems: dict[str, None] = {}  # in order, each once (training's is met by every pair)
    families, policies = FAMILIES.names(), POLICIES.names()

    def config(family: str, policy: str) -> SearchConfig:
        return SearchConfig(family, policy, image_size=max(
            FAMILIES.get(family).min_image_size, POLICIES.get(policy).min_image_size))

    def passes(family: str, policy: str, built: bool = False) -> bool:
        try:
            resolved = resolve_spaces(config(family, policy))
            if built:
                _build_at_defaults(resolved, max(config(family, policy).image_size, 32))
        except UserError as exc:
            problems[str(exc)] = None
            return False
        return True

    def valid(family: str, policy: str) -> bool:  # quietly: the anchor is looked for
        try:
            resolved = resolve_spaces(config(family, policy))
            if build:
                _build_at_defaults(resolved, max(config(family, policy).image_size, 32))
        except UserError:
            return False
        return True

    anchor = next(((f, p) for f in families for p in policies if valid(f, p)), None)
    if anchor is None:  # no pair passes: what each family and policy says with the first
        for family, policy in ([(f, policies[0]) for f in families]
                               + [(families[0], p) for p in policies[1:]]):
            passes(family, policy)
        return list(problems)
    good = [f for f in families if f == anchor[0] or passes(f, anchor[1], build)]
    for policy in policies:
        if not (policy == anchor[1] and good):  # built with every good family already
            passes(good[0] if good else anchor[0], policy, build and bool(good))
    return list(problems)


def _build_at_defaults(resolved: dict[str, Any], size: int) -> None:
    """The model keras-tuner builds as it makes a search's tuner (every hyperparameter at
    its default), on a stand-in split of two blank images; a failure is a SpaceError."""
    import_tensorflow_quietly()
    import keras
    import keras_tuner as kt
    import numpy as np

    from .data.dataset import Split
    from .hypermodel import PneumoniaHyperModel

    blank = Split(np.zeros((2, size, size, 1), np.uint8), np.array([0, 1], np.uint8),
                  np.array(["a", "b"]), np.array(["a", "b"]))
    hypermodel = PneumoniaHyperModel(resolved["family"], resolved["policy"],
                                     resolved["spaces"], blank, blank, 0.95)
    hypermodel.declaring = True  # a failure is the search's one SpaceError line
    try:
        hypermodel.build(kt.HyperParameters())
    finally:
        keras.backend.clear_session()


def resolve_spaces(config: SearchConfig) -> dict[str, Any]:
    """The family, augment and training spaces: built-in files, or --space replacements."""
    from .registry import FAMILIES, POLICIES
    from .spaces import builtin_space, literal_choices, load_space

    family, policy = FAMILIES.get(config.family), POLICIES.get(config.policy)
    if config.image_size < family.min_image_size:
        raise OptionError(
            f"--image-size {config.image_size} is too small for {family.name} "
            f"(at least {family.min_image_size})"
        )
    spaces = {
        "family": builtin_space("family", family.name),
        "augment": builtin_space("augment", policy.name),
        "training": builtin_space("training", "training"),
    }
    given: dict[str, str | Path] = {}  # kind -> the --space file that replaced it
    for path in config.spaces:
        space = load_space(path)
        expected = {"family": family.name, "augment": policy.name, "training": "training"}
        if space.name != expected[space.kind]:
            raise OptionError(
                f"--space {path}: it is for {space.kind} {space.name!r}, "
                f"but this search uses {expected[space.kind]!r}"
            )
        if space.kind in given:  # the later file silently replaced the earlier one
            raise OptionError(
                f"--space {path}: a second {space.kind} space (--space {given[space.kind]} "
                f"is one); give one file per kind")
        given[space.kind] = path
        spaces[space.kind] = space
    spaces["family"].check_names(family.parameters(), f"family {family.name}",
                                 family.positional())
    spaces["augment"].check_names(policy.parameters(), f"policy {policy.name}",
                                  policy.positional())
    spaces["training"].check_names(TRAINING_KEYS, "training")
    spaces["training"].check_values(TRAINING_VALUES, "training")
    spaces["family"].check_values(literal_choices(family.builder), f"family {family.name}")
    spaces["augment"].check_values(literal_choices(policy.builder), f"policy {policy.name}")
    missing = [k for k in TRAINING_REQUIRED if k not in spaces["training"].hyperparameters
               and not (k == "epochs" and config.epochs is not None)]
    if missing:
        raise SpaceError(f"{spaces['training'].path}: hyperparameters: {missing[0]} is required "
                         f"(every training space names {', '.join(TRAINING_REQUIRED)}; "
                         "--epochs gives epochs)")
    for key in TRAINING_REQUIRED:  # no code default stands in where a condition fails
        spec = spaces["training"].hyperparameters.get(key)
        if spec is not None and spec.when and not (key == "epochs" and config.epochs is not None):
            raise SpaceError(f"{spaces['training'].path}: hyperparameters.{key}: cannot be "
                             f"conditional (when): every trial needs it"
                             f"{spaces['training'].where(key)}")
    if config.tuner == "grid":
        for space in spaces.values():
            for name, spec in space.hyperparameters.items():
                if spec.type == "float" and spec.step is None:
                    raise OptionError(
                        f"--tuner grid needs discrete hyperparameters; {space.path}: "
                        f"hyperparameters.{name} is a continuous float (give it a step)")
    if config.epochs is not None:
        spaces["training"] = spaces["training"].with_fixed(epochs=config.epochs)
    if config.weights is not None:
        if "weights" not in family.parameters():
            supported = [n for n in FAMILIES.names() if "weights" in FAMILIES.get(n).parameters()]
            raise OptionError(f"--weights: family {family.name} cannot load pretrained weights; "
                              f"families that can: {', '.join(supported)}")
        if Path(config.weights).is_dir():
            raise OptionError(f"--weights {config.weights}: is a folder, not a weights file")
        if not Path(config.weights).is_file():
            raise OptionError(f"--weights {config.weights}: file not found")
        # ImageNet files fit one architecture: pin the settings they need
        fixed = getattr(family.builder, "pretrained_fixed", {})
        spaces["family"] = spaces["family"].with_fixed(
            weights=str(Path(config.weights).resolve()), **fixed)
        if "standardize" in spaces["training"].hyperparameters:
            # the backbone normalises a [0, 1] image the ImageNet way itself: a standardised
            # one (zero mean, unit deviation) would reach the weights at the wrong scale
            spaces["training"] = spaces["training"].with_fixed(standardize=False)
    return {"family": family, "policy": policy, "spaces": spaces}


# what hypermodel.train and build_model accept for each training hyperparameter
TRAINING_VALUES: dict[str, ValueRule] = {
    "batch_size": ValueRule(positive_int, "a positive integer"),
    "epochs": ValueRule(positive_int, "a positive integer"),
    # Keras' early stopping stops at patience 0 exactly as at 1: 0 would only mislead
    "patience": ValueRule(positive_int, "a whole number >= 1 (epochs in a row without a "
                                        "better validation objective)"),
    "learning_rate": ValueRule(lambda v: is_number(v) and v > 0, "a positive number"),
    "label_smoothing": ValueRule(lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "crop": ValueRule(lambda v: is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "optimizer": one_of("adam", "adamw", "sgd"),
    "schedule": one_of("constant", "cosine"),
    "loss": one_of("bce", "focal"),
    "balance": one_of("class_weights", "oversample", "none"),
    # tested for truth: the string 'false' would have switched them on
    **{key: ValueRule(lambda v: isinstance(v, bool), "true or false")
       for key in ("class_weights", "equalize", "standardize", "ema")},
}
TRAINING_REQUIRED = ("learning_rate", "batch_size", "epochs")  # no code default
TRAINING_KEYS = {k: None for k in ("learning_rate", "batch_size", "optimizer", "schedule", "loss",
                                    "label_smoothing", "balance", "class_weights", "equalize", "standardize",
                                    "crop", "ema",
                                    "epochs", "patience")}


def _tuner_class(kind: str):
    import keras_tuner as kt

    base = {"hyperband": kt.Hyperband, "bayesian": kt.BayesianOptimization,
            "random": kt.RandomSearch, "grid": kt.GridSearch}[kind]

    class RecordingTuner(base):
        """keras-tuner's tuner, plus one evaluation record written at each trial's end."""

        def __init__(self, *args, evaluator, progress=None, deadline=None, **kwargs):
            self.evaluator = evaluator
            self.progress = progress
            self.deadline = deadline  # time.time() past which no new trial starts
            self._fit = {}
            self._start_epoch = {}  # trial id -> the epoch its fit really started from
            super().__init__(*args, **kwargs)

        def reload(self):
            """keras-tuner's reload, its failure on a damaged state file (one of another
            shape than ``_check_tuner_files`` checks) one line (a RunsError)."""
            try:
                super().reload()
            except (KeyError, TypeError, ValueError, AttributeError, IndexError,
                    RecursionError, RuntimeError) as exc:
                path, why = _damaged_tuner_file(Path(self.project_dir), self.tuner_id)
                raise RunsError(unreadable_tuner_state(path, why or exc)) from exc
            if not self._is_worker():
                _restore_grid_position(self.oracle)

        def on_trial_begin(self, trial):
            super().on_trial_begin(trial)
            if self.progress:
                self.progress.trial_begin(trial)

        def run_trial(self, trial, *args, **kwargs):
            start = time.perf_counter()
            try:
                with defer_ctrl_c():  # building and fitting: Ctrl-C only at safe points
                    histories = super().run_trial(trial, *args, **kwargs)
            except KeyboardInterrupt:
                self._interrupted(trial, time.perf_counter() - start, "")
                raise
            self._fit[trial.trial_id] = (histories[0].history, time.perf_counter() - start)
            from .hypermodel import kept_start

            last = getattr(self.hypermodel, "last_fit", None)
            kept = kept_start(last[1]) if last is not None else None
            if kept is not None:
                # a Hyperband continuation whose epochs all scored below the weights it
                # started from ends with those weights: score the trial by them, as the
                # record will (keras-tuner would take the best new epoch of the History)
                return [{f"val_{k}": float(v) for k, v in kept.items()}]
            return histories

        def _interrupted(self, trial, seconds, during: str) -> None:
            # marked, never half-recorded: the oracle still counts the trial as running,
            # so the next run of the command repeats it
            self.evaluator.record_failure(
                trial, Path(self.get_trial_dir(trial.trial_id)), seconds,
                status="interrupted",
                message=f"interrupted (Ctrl-C){during}; rerun the command to repeat this trial")

        def _build_and_fit_model(self, trial, *args, **kwargs):
            # keras-tuner's SaveBestEpoch writes the weights at every improving epoch. The
            # trial's model.keras, written by its evaluation, is the best epoch too (see
            # ValidationObjective) and serves as the checkpoint instead: one write a trial.
            from keras_tuner.src.engine.tuner_utils import SaveBestEpoch

            kwargs["callbacks"] = [c for c in kwargs.get("callbacks", [])
                                   if not isinstance(c, SaveBestEpoch)]
            parent = trial.hyperparameters.values.get("tuner/trial_id")
            if parent is not None and kwargs.get("initial_epoch"):
                # Hyperband numbers a continuation from its parent's rung; the weights it
                # loads may have trained fewer epochs (the budget cut the parent, early
                # stopping ended it, or an earlier epoch was its best): train the missing
                # ones, so a trial at rung r holds weights trained r epochs
                trained = self._epochs_trained(parent)
                if trained is not None and 0 < trained < kwargs["initial_epoch"]:
                    kwargs["initial_epoch"] = trained
            self._start_epoch[trial.trial_id] = int(kwargs.get("initial_epoch") or 0)
            return super()._build_and_fit_model(trial, *args, **kwargs)

        def _epochs_trained(self, trial_id) -> int | None:
            """How many epochs the weights a trial kept were trained (its record's
            ``epochs_trained``, or worked out from an older record); None if unknown."""
            from .evaluation import RECORD_FILE, epochs_trained
            from .leaderboard import load_record

            try:
                record = load_record(Path(self.get_trial_dir(trial_id)) / RECORD_FILE)
            except (OSError, ValueError):
                return None
            return epochs_trained(record)

        def _get_checkpoint_fname(self, trial_id):
            """The file Hyperband continues a trial from and ``load_model`` reads: the
            trial's model.keras (the best epoch's weights and optimizer state); a project
            written before that keeps its keras-tuner checkpoint."""
            from .evaluation import MODEL_FILE

            trial_dir = Path(self.get_trial_dir(trial_id))
            legacy = trial_dir / "checkpoint.weights.h5"
            if legacy.exists() and not (trial_dir / MODEL_FILE).exists():
                return str(legacy)
            return str(trial_dir / MODEL_FILE)

        def on_trial_end(self, trial):
            fit = self._fit.pop(trial.trial_id, (None, None))
            start = self._start_epoch.pop(trial.trial_id, None)
            extra = {"start_epoch": start} if start is not None else None
            record = None
            if str(trial.status).upper() == "COMPLETED":
                # the evaluation writes model.keras, the trial's checkpoint, before the
                # oracle hears that the trial ended: from then on Hyperband may continue
                # it, on another worker too
                try:
                    with defer_ctrl_c():
                        record = record_trial(self, trial, *fit, extra=extra)
                except KeyboardInterrupt:
                    self._interrupted(trial, fit[1], " during its evaluation")
                    raise
            super().on_trial_end(trial)
            final = self.oracle.get_trial(trial.trial_id)
            if record is None or str(final.status).upper() != "COMPLETED":
                # failed, or a completed trial the oracle turned down (a NaN objective)
                record = record_trial(self, final, *fit, extra=extra)
            if self.progress:
                self.progress.trial_end(record)
            if self.deadline is not None and time.time() >= self.deadline:
                self.oracle.max_trials = len(self.oracle.trials)  # the budget is spent
            gc.collect()

    return RecordingTuner


def _restore_grid_position(oracle) -> None:
    """keras-tuner's GridSearchOracle keeps its place in the grid (its trials in grid
    order, and the ended trials whose next point is still to be drawn) in memory only
    (keras-tuner issue 1055): reloaded, it drew no new point, so a resumed grid search
    with a larger --max-trials added nothing, and an interrupted trial repeated on resume
    ended in a KeyError. Both are rebuilt here from the trials the oracle reloaded (a
    point drawn before is skipped, as keras-tuner skips it)."""
    import functools

    from keras_tuner.src.tuners.gridsearch import GridSearchOracle, LinkedList

    if not isinstance(oracle, GridSearchOracle) or not oracle.start_order:
        return
    ids = [i for i in oracle.start_order if i in oracle.trials]
    order = functools.cmp_to_key(lambda a, b: oracle._compare(
        oracle.trials[a].hyperparameters.values, oracle.trials[b].hyperparameters.values))
    oracle._ordered_ids = LinkedList()
    for trial_id in sorted(ids, key=order):
        oracle._ordered_ids.insert(trial_id)
    oracle._populate_next = [i for i in oracle.end_order if i in ids]


def record_trial(tuner, trial, history=None, seconds=None,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    trial_dir = Path(tuner.get_trial_dir(trial.trial_id))
    if str(trial.status).upper() == "COMPLETED":
        last = getattr(tuner.hypermodel, "last_fit", None)
        if last is not None and last[0] == trial.hyperparameters.values:
            model = last[1]  # still in memory, restored to its best epoch
        else:
            model = tuner.load_model(trial)  # the best epoch, from the trial's model.keras
        tuner.hypermodel.last_fit = None
        return tuner.evaluator.evaluate(model, trial, trial_dir, history, seconds, extra=extra)
    return tuner.evaluator.record_failure(trial, trial_dir, seconds, extra=extra)


def search(config: SearchConfig, progress: Any = None) -> list[dict[str, Any]]:
    """Run (or resume) the search of one family x policy; return its trial records.

    Holds the project's lock file while it runs: a second search of the same project
    refuses to start. Keras' global dtype policy (``--mixed-precision`` sets it for each
    trial's model) is restored afterwards: models built later in the same process are
    not mixed by accident. A Ctrl-C during a trial is taken between batches, never
    inside TensorFlow, and one that lands in the garbage collection between trials still
    stops it (see ``interrupts``). A ``time_budget`` counts from this call: loading
    TensorFlow and the data is part of it, as a study charges it.

    Raises ``SearchError`` when trials ran and none completed (each record says why).
    The caller's ``random`` and NumPy global generators, and TensorFlow's and Keras'
    global seeds, are given back as they were (trials seed them); Keras' session is
    cleared before each trial, as keras-tuner does.
    """
    started = time.time()
    if not isinstance(config, SearchConfig):
        raise OptionError(f"search takes a SearchConfig, got {type(config).__name__}")
    config.validate()  # before TensorFlow loads: a bad option fails in no time
    config = _python_numbers(config)
    import_tensorflow_quietly()  # before Keras: quiet, thread pools sized to the cores
    import keras

    policy = keras.config.dtype_policy()
    try:
        with keep_ctrl_c(), kept_random_state():
            records = _search(config, progress, started)
    finally:
        keras.config.set_dtype_policy(policy)
    done = [r for r in records if r.get("status") == "completed"]
    if records and not done:  # as many trials failed as ran: nothing to rank or export
        first = next((r.get("message") for r in records if r.get("message")), "no message")
        raise SearchError(f"{config.project}: no trial completed (the first failure: {first})",
                          records)
    return records


def _search(config: SearchConfig, progress: Any, started: float) -> list[dict[str, Any]]:
    config.validate()
    resolved = resolve_spaces(config)  # before the data: a bad option fails fast
    if config.max_trials is None:
        config = replace(config, max_trials=default_trials(config.tuner, epoch_cap(resolved)))
    from .data.dataset import resolve_data_path
    from .locking import project_lock

    resolve_data_path(config.data)  # a missing data path fails before anything is written

    project_dir = Path(config.runs_dir) / config.project
    if config.role == "worker":
        from .distributed import (
            Heartbeat,
            chief_answers_within,
            default_worker_id,
            same_space_as_chief,
            tuner_environment,
            wait_for_chief,
        )
        from .locking import LOCK_FILE, held

        wait_for_chief(config.chief, say=lambda line: print(line, file=sys.stderr, flush=True))
        if not held(project_dir / LOCK_FILE):  # the chief holds it while it searches
            raise SearchError(
                f"--chief {config.chief}: the chief answers, but no search holds "
                f"{project_dir}: a worker needs the chief's --family, --augment and "
                "--runs-dir (a folder both see), or it would train another model for the "
                "chief's trials")
        worker_id = config.worker_id or default_worker_id()
        with tuner_environment(config.chief, worker_id), chief_answers_within(config.chief):
            same_space_as_chief(config.chief, resolved["spaces"])  # another pair's project
            with Heartbeat(project_dir, worker_id):
                return _search_locked(config, resolved, progress, started)
    with project_lock(project_dir):
        if config.role == "chief":
            from .distributed import tuner_environment

            with tuner_environment(config.chief, "chief"):
                return _search_locked(config, resolved, progress, started)
        return _search_locked(config, resolved, progress, started)


def _search_locked(config: SearchConfig, resolved: dict[str, Any], progress: Any,
                   started: float):

    import keras
    import keras_tuner as kt
    from keras_tuner.src import config as kt_config

    kt_config.DEBUG = False  # a failed trial's traceback goes into its record, not the terminal

    from .data import load_dataset
    from .evaluation import RECORD_FILE, Evaluator
    from .hypermodel import PneumoniaHyperModel
    from .objective import OBJECTIVE

    runs_dir = Path(config.runs_dir)
    project_dir = runs_dir / config.project
    _refuse_other_settings_early(project_dir, config, resolved["spaces"])
    dataset = load_dataset(config.data, config.image_size, config.channels,
                           config.val_fraction, config.seed)
    _warn_about_data(dataset)
    mixed, jit, on_device = _gpu_options(config)
    project = _pin_project(project_dir, config, dataset, resolved["spaces"], mixed)
    _check_tuner_files(project_dir, owner=config.role != "worker",
                       tuner_id="chief" if config.role == "chief" else "tuner0")
    _atomic_tuner_state()
    keras.utils.set_random_seed(config.seed)
    hypermodel = PneumoniaHyperModel(resolved["family"], resolved["policy"], resolved["spaces"],
                                     dataset.train, dataset.val, config.recall_target, jit=jit,
                                     mixed_precision=mixed, data_on_device=on_device,
                                     seed=config.seed)
    evaluator = Evaluator(dataset, project, config.recall_target, command=config.command)
    cap = epoch_cap(resolved)
    kwargs: dict[str, Any] = {}
    if config.tuner == "hyperband":
        kwargs.update(max_epochs=cap, factor=3)
    else:
        kwargs.update(max_trials=config.max_trials)
    if config.strategy == "mirrored":
        from .distributed import mirrored_strategy

        strategy = mirrored_strategy(config.devices)
        if strategy is None:
            warn("--strategy mirrored: no GPU found, training on the CPU")
        else:
            kwargs["distribution_strategy"] = strategy
    deadline = started + config.time_budget if config.time_budget else None
    hypermodel.declaring = True  # a builder failing as the tuner is made: one SpaceError line
    with contextlib.redirect_stdout(sys.stderr):  # keras-tuner's "Reloading Tuner from ..."
        tuner = _tuner_class(config.tuner)(
            hypermodel,
            objective=kt.Objective(OBJECTIVE, direction="max"),
            directory=str(runs_dir),
            project_name=config.project,
            overwrite=False,
            seed=config.seed,
            max_consecutive_failed_trials=max(3, config.max_trials),
            max_retries_per_trial=1 if config.role != "single" else 0,
            evaluator=evaluator,
            progress=progress,
            deadline=deadline,
            **kwargs,
        )
    hypermodel.declaring = False
    if config.tuner == "hyperband" and config.role != "worker":
        tuner.oracle.max_trials = config.max_trials
        # keras-tuner's hyperband stops after one run of its brackets (its
        # hyperband_iterations, saved in oracle.json): enough runs for --max-trials, so a
        # larger one (a resume's, a study's open-ended one) starts the brackets again
        runs = math.ceil(config.max_trials / default_trials("hyperband", cap))
        tuner.oracle.hyperband_iterations = max(runs, tuner.oracle._current_iteration + 1)
    if progress and config.role != "chief":
        progress.search_begin(config, _finished_trials(project_dir), deadline)
    callbacks = [progress.epoch_callback()] if progress and config.role != "chief" else []
    if deadline is not None:
        from .hypermodel import StopAtDeadline

        callbacks.append(StopAtDeadline(deadline))
    try:
        with frozen_heap():  # each trial's garbage collections skip what outlives it
            _run_tuner(tuner, config, project_dir, callbacks)
    except RuntimeError as exc:
        if "consecutive failures" not in str(exc):
            raise
        raise SearchError(
            f"{project_dir}: stopped after {tuner.oracle.max_consecutive_failed_trials} failed "
            "trials in a row; see the failure reasons with: autopneumo leaderboard"
        ) from exc
    # a trial the oracle ended without a record: a failed one whose worker died before
    # writing it, or a completed one from a project written before records came first
    # (a worker leaves this to the chief: another worker may be writing that record now)
    # (or whose record was damaged since: truncated, emptied; re-evaluated from its
    # model.keras, so its row comes back, without the per-epoch history)
    for trial in tuner.oracle.trials.values() if config.role != "worker" else ():
        if str(trial.status).upper() in ("COMPLETED", "FAILED", "INVALID"):
            trial_dir = Path(tuner.get_trial_dir(trial.trial_id))
            if _readable_record(trial_dir / RECORD_FILE):
                continue
            if str(trial.status).upper() == "COMPLETED" and not _has_model(trial_dir):
                continue  # nothing to evaluate: the leaderboard names the damaged record
            record_trial(tuner, trial)
    from .leaderboard import read_records

    return read_records(project_dir)


def _finished_trials(project_dir: Path) -> int:
    """Trials of the project with a record, not counting interrupted ones (repeated)."""
    from .leaderboard import read_records

    return sum(r.get("status") != "interrupted" for r in read_records(project_dir))


def _readable_record(path: Path) -> bool:
    from .leaderboard import load_record

    try:
        load_record(path)
    except (OSError, ValueError):
        return False
    return True


def _has_model(trial_dir: Path) -> bool:
    from .evaluation import MODEL_FILE

    return (trial_dir / MODEL_FILE).is_file() or (trial_dir / "checkpoint.weights.h5").is_file()


def _run_tuner(tuner, config: SearchConfig, project_dir: Path, callbacks: list) -> None:
    if config.role != "worker":
        from .distributed import skip_ended_retries

        skip_ended_retries(tuner.oracle)
    if config.role == "chief":
        from .distributed import Watchdog, stop_new_trials_at

        timer = stop_new_trials_at(tuner.oracle, tuner.deadline) if tuner.deadline else None
        try:
            with Watchdog(tuner.oracle, project_dir, timeout=config.worker_timeout):
                tuner.search(verbose=0)
        finally:
            if timer is not None:
                timer.cancel()
        tuner.oracle.save()  # keras-tuner's last save still lists the last trials as ongoing
    else:
        if config.role == "worker":
            from .distributed import pace_idle_answers

            pace_idle_answers(tuner.oracle)
        tuner.search(verbose=0, callbacks=callbacks)


def _gpu_options(config: SearchConfig) -> tuple[bool, bool, bool]:
    """--mixed-precision, --jit and --data-on-device where a GPU is present; on a CPU say
    they are ignored, so CPU behaviour never changes. Returns (mixed precision,
    XLA-compile, data on device). --data-on-device needs the JAX backend too: under
    TensorFlow a batch cut on the device is copied back through tf.data, so it is
    ignored there with a note. The hypermodel applies the dtype policy as it builds each
    trial's model: keras-tuner clears the Keras session before every trial, and that
    resets a global policy set once here."""
    asked = (("--mixed-precision", config.mixed_precision), ("--jit", config.jit),
             ("--data-on-device", config.data_on_device))
    if not any(on for _, on in asked):
        return False, False, False
    from .backend import gpu_names, keras_backend

    if not gpu_names():
        names = [o for o, on in asked if on]
        listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        warn(f"{listed}: no GPU found, ignored (training on the CPU)")
        return False, False, False
    from .data.device import device_supported

    on_device = config.data_on_device
    if on_device and not device_supported():
        warn(f"--data-on-device: needs KERAS_BACKEND=jax (the {keras_backend()} backend "
             "copies device batches back to the host), ignored")
        on_device = False
    return config.mixed_precision, config.jit, on_device


def _warn_about_data(dataset) -> None:
    """Problems that do not stop a search but that a reader of its numbers must know."""
    manifest = dataset.manifest
    if manifest.get("source") == "medmnist":
        warn("a MedMNIST .npz keeps its official train/val/test split (--val-fraction does not "
             "apply) and has no patient ids (intervals resample images)", AutopneumoNote)
    unreadable = manifest.get("unreadable") or []
    if unreadable:
        names = ", ".join(u["file"] for u in unreadable[:5])
        more = f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        warn(f"skipped {len(unreadable)} unreadable image(s): {names}{more}")
    ignored = manifest.get("ignored") or []
    if ignored:
        from .data.images import RASTER_SUFFIXES, suffix_list

        warn(f"{len(ignored)} file(s) in the data folder are not read, neither images by "
             f"their suffix nor DICOM by their content ({suffix_list(ignored)}); training "
             f"reads {'/'.join(RASTER_SUFFIXES)} files and DICOM files whatever their name "
             "(`autopneumo data check` lists them)", AutopneumoNote)
    merged = manifest.get("patients_merged_for_identical_images") or 0
    if merged:
        warn(f"{merged} patient(s) hold a file identical (byte for byte) to another "
             "patient's: each such group is kept on one side of the validation split",
             AutopneumoNote)
    anonymous = manifest.get("images_without_patient_id") or 0
    if anonymous and anonymous > (pool := len(dataset.train) + len(dataset.val)) / 2:
        warn(f"{anonymous} of {pool} train/val images carry no patient id (a Kermany-style "
             "name or a DICOM Patient ID): each is its own patient in the validation split, "
             "which leaks patients between training and validation where a patient has "
             "several images")
    shared = manifest.get("test_images_also_in_train_or_val") or 0
    if shared:
        warn(f"{shared} test image(s) also occur in train/val (identical pixels at "
             f"{manifest['image_size']} px); their test numbers are optimistic")


def parse_duration(text: str, option: str = "--time-budget") -> float:
    """'90s', '30m', '2h', '1h30m' or a bare number of minutes -> seconds; an error names
    ``option``."""
    import re

    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text) * 60
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text.replace(" ", ""):
        raise OptionError(f"{option} must look like 90s, 30m, 2h or 1h30m, got {text!r}")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def _pin_project(project_dir: Path, config: SearchConfig, dataset, spaces,
                 mixed_precision: bool = False) -> dict[str, Any]:
    """Write the project's settings once; refuse to resume with different ones.

    ``mixed_precision`` is whether float16 compute is in effect (asked for, on a GPU): it
    changes what a trial's training computes, so it is pinned like a hyperparameter. --jit
    and --data-on-device only change how the same computation runs, and are not.

    The data must be the pinned data set (``same_data``). A project pinned before data
    hashes covered file contents keeps its file-list hash: resumed, its new trials record
    that pinned value too (``dataset.manifest["data_hash"]`` is set to it), so one
    project's records never name two data hashes."""
    from .atomic import atomic_write_json
    from .data.dataset import same_data
    from .data.download import md5_of

    settings = {
        **_settings_without_data(config, spaces),
        "data_hash": dataset.manifest["data_hash"],
        # the pretrained file's contents, not only its path (pinned where recorded)
        "weights_md5": md5_of(Path(config.weights)) if config.weights else None,
        "mixed_precision": bool(mixed_precision),
        "split_hash": dataset.manifest.get("split_hash"),
    }
    path = project_dir / PROJECT_FILE
    if path.exists():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise RunsError(f"{path}: unreadable project file ({exc})") from exc
        if not isinstance(existing, dict):
            raise RunsError(f"{path}: unreadable project file (not a JSON object)")
        new = json.loads(json.dumps(settings))
        changed = [k for k in _PINNED if (not same_data(existing.get(k), dataset.manifest)
                                          if k == "data_hash" else existing.get(k) != new[k])]
        if "weights_md5" in existing and existing["weights_md5"] != new["weights_md5"]:
            changed.append("weights (the file's contents)")
        if (existing.get("split_hash") and existing["split_hash"] != new["split_hash"]
                and "data_hash" not in changed):
            changed.append("the validation split (the same --seed and --val-fraction now draw "
                           "other images: another scikit-learn or autopneumo?)")
        if existing.get("mixed_precision", new["mixed_precision"]) != new["mixed_precision"]:
            changed.append("--mixed-precision (float16 on a GPU: "
                           f"{'on' if existing['mixed_precision'] else 'off'} when started)")
        if changed and not any(project_dir.glob("trial_*")) and config.role != "worker":
            changed = []  # an earlier start failed before its first trial: nothing to keep
            existing = None  # (a worker never resets its chief's settings: it refuses)
        if changed:
            raise _other_settings(project_dir, changed, existing, new)
        if existing is not None:
            dataset.manifest["data_hash"] = existing["data_hash"]  # see the docstring
            return existing
    if config.role == "worker":  # its chief writes the project before it serves
        raise RunsError(f"{project_dir}: no project file ({PROJECT_FILE}) of the chief's "
                        "here; a worker needs the chief's --runs-dir (a folder both see)")
    settings["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    settings["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    atomic_write_json(path, settings)
    return settings


def _settings_without_data(config: SearchConfig, spaces) -> dict[str, Any]:
    return {
        "project": config.project,
        "family": config.family,
        "policy": config.policy,
        "tuner": config.tuner,
        "image_size": config.image_size,
        "channels": config.channels,
        "recall_target": config.recall_target,
        "val_fraction": config.val_fraction,
        "seed": config.seed,
        "spaces": {k: _space_dict(s) for k, s in spaces.items()},
    }


def _refuse_other_settings_early(project_dir: Path, config: SearchConfig, spaces) -> None:
    """The pinned settings that need no data, checked before the data set is loaded: a
    resume at another --image-size decoded the whole data set at that size before
    ``_pin_project`` refused it. Whatever this cannot read is left to ``_pin_project``."""
    path = project_dir / PROJECT_FILE
    if not path.is_file() or (config.role != "worker" and not any(project_dir.glob("trial_*"))):
        return  # nothing pinned, or nothing to keep: _pin_project decides
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return
    if not isinstance(existing, dict):
        return
    new = json.loads(json.dumps(_settings_without_data(config, spaces)))
    changed = [k for k in _PINNED if k in new and existing.get(k) != new[k]]
    if changed:
        raise _other_settings(project_dir, changed, existing, new)


def _other_settings(project_dir: Path, changed: list[str], existing: dict[str, Any],
                    new: dict[str, Any]) -> RunsError:
    spaces = "spaces" in changed
    changed = [_space_changes(existing.get("spaces"), new["spaces"]) if k == "spaces" else k
               for k in changed]
    # a built-in file that changed since (base_cnn's in the twenty-first session) is resumed
    # with the file the project began with; a study takes no --space, only the folder
    hint = (" (or give the space file it began with: --space FILE, or for a study "
            "AUTOPNEUMO_SPACES=FOLDER; see the README's Search spaces)" if spaces else "")
    return RunsError(f"{project_dir}: this project was started with other settings "
                     f"({', '.join(changed)}); use the same options or another --runs-dir"
                     f"{hint}")


def _check_tuner_files(project_dir: Path, owner: bool = True, tuner_id: str = "tuner0") -> None:
    """keras-tuner's own state (oracle, tuner, each trial's trial.json) must be readable
    to resume: a truncated file is named here, not in a JSONDecodeError traceback.

    The project's owner (not a worker, whose chief may be writing them now) also checks
    that they agree. keras-tuner numbers a new trial by the count of trials it reloads: with
    ``oracle.json`` gone, or a trial folder deleted by hand, it numbered new trials into
    existing folders and replaced their models and records (then failed on the missing
    id, on every rerun). A trial folder keras-tuner made just before a kill, whose trial
    the oracle never recorded (it writes trial.json first), is removed: it has no record,
    and left there it was never run again (the search ended one trial short).

    keras-tuner reloads a project only where the tuner file of this process's tuner id
    exists (``tuner0.json`` for a search, ``chief.json`` for a chief): a chief's project
    resumed by a plain search (or the other way round) started again from trial 0 and
    retrained every trial over its model and record. That file (it holds ``{}``) is
    written here for an owner whose project has an oracle."""
    from .evaluation import RECORD_FILE

    oracle = project_dir / "oracle.json"
    trial_files = list(project_dir.glob("trial_*/trial.json"))
    state: Any = {}
    for path in [oracle, *project_dir.glob("tuner*.json"), project_dir / "chief.json",
                 *trial_files]:
        if not path.is_file():
            continue
        try:
            parsed = json.loads(path.read_text(encoding="utf-8"))
            _check_tuner_state(parsed, "oracle" if path == oracle else "other")
        except (OSError, ValueError, RecursionError) as exc:
            raise RunsError(unreadable_tuner_state(path, exc)) from exc
        if path == oracle:
            state = parsed
    if not owner:
        return
    started = [str(i) for i in (state.get("start_order") or [])] if isinstance(state,
                                                                                dict) else []
    folders = {p.parent.name.removeprefix("trial_"): p.parent for p in trial_files}
    recorded = [i for i, f in folders.items() if (f / RECORD_FILE).exists()]
    if not oracle.is_file() and recorded:
        raise RunsError(
            f"{oracle}: missing, but the project holds {len(recorded)} recorded trial(s): "
            "keras-tuner would start again from trial 0 over them; restore it, or search "
            "into another --runs-dir (the leaderboard and report read several)")
    for trial_id, folder in sorted(folders.items()):
        if trial_id not in started and trial_id not in recorded:
            shutil.rmtree(folder)  # begun as the process was killed: run again
            warn(f"{folder.name} was begun but never recorded (the search was killed as it "
                 "started); it is run again", AutopneumoNote)
            del folders[trial_id]
    gone = [i for i in started if i not in folders]
    if gone:
        raise RunsError(
            f"{project_dir}: trial_{gone[0]} is missing ({len(gone)} of the "
            f"{len(started)} trials keras-tuner started); resumed, keras-tuner would "
            "number new trials into existing folders: restore it, or search into "
            "another --runs-dir (the leaderboard and report read several)")
    if oracle.is_file() and not (project_dir / f"{tuner_id}.json").exists():
        atomic_write_text(project_dir / f"{tuner_id}.json", "{}")


# what keras-tuner's Oracle.set_state reads from oracle.json (each oracle adds its own)
_ORACLE_STATE = {"ongoing_trials": dict, "hyperparameters": dict, "start_order": list,
                 "end_order": list, "run_times": dict, "retry_queue": list,
                 "tried_so_far": list, "id_to_hash": dict, "display": dict}
# the entries a hyperband or bayesian oracle adds, checked where they are there
_ORACLE_OWN = {"hyperband_iterations": int, "max_epochs": int, "min_epochs": int,
               "factor": int, "brackets": list, "current_bracket": int,
               "current_iteration": int,
               "num_initial_points": (int, type(None)),  # bayesian's default is null
               "alpha": (int, float), "beta": (int, float)}


def unreadable_tuner_state(path: Any, exc: BaseException) -> str:
    """The one line for keras-tuner state that cannot be reloaded (truncated, or JSON of
    another shape): the project cannot resume; nothing in it is touched."""
    reason = str(exc) if isinstance(exc, ValueError | OSError) else f"{type(exc).__name__}: {exc}"
    return (f"{path}: keras-tuner's state is unreadable ({reason[:200]}); this project "
            "cannot resume: restore the file or use another --runs-dir")


def _check_tuner_state(state: Any, kind: str, whole: bool = False) -> None:
    """A ValueError where keras-tuner's reload of this file would fail: every file is a
    JSON object, and oracle.json's base entries that are there have their types. With
    ``whole``, also what only keras-tuner's reload needs: every base entry of oracle.json,
    and a trial.json that ``Trial.from_state`` reads (``RecordingTuner.reload`` names
    the file so, where keras-tuner failed on a state of another shape)."""
    if not isinstance(state, dict):
        raise ValueError("not a JSON object")
    if kind == "oracle":
        for key, kind_of in _ORACLE_STATE.items():
            if (whole or key in state) and not isinstance(state.get(key), kind_of):
                raise ValueError(f"its {key!r} is not a {kind_of.__name__}")
        for key, kind_of in _ORACLE_OWN.items():
            value = state.get(key)
            if key in state and (isinstance(value, bool) or not isinstance(value, kind_of)):
                raise ValueError(f"its {key!r} is not a "
                                 f"{'number' if isinstance(kind_of, tuple) else kind_of.__name__}")
        if any(not isinstance(b, dict) for b in state.get("brackets") or []):
            raise ValueError("its 'brackets' are not hyperband brackets")
    elif kind == "trial" and whole:
        from keras_tuner.src.engine.trial import Trial

        try:
            Trial.from_state(state)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ValueError(f"not a trial's state ({type(exc).__name__}: {exc})") from exc


def _damaged_tuner_file(project_dir: Path, tuner_id: str) -> tuple[str, BaseException | None]:
    """The first of keras-tuner's state files whose reload would fail (``whole`` checks),
    and why; else the files keras-tuner reads, and None."""
    files = [(project_dir / "oracle.json", "oracle"), (project_dir / f"{tuner_id}.json", "other"),
             *((p, "trial") for p in sorted(project_dir.glob("trial_*/trial.json")))]
    for path, kind in files:
        if not path.is_file():  # a worker reads no oracle.json: not what failed
            continue
        try:
            _check_tuner_state(json.loads(path.read_text(encoding="utf-8")), kind, whole=True)
        except (OSError, ValueError, RecursionError) as exc:
            return str(path), exc
    return f"{project_dir}/oracle.json, {tuner_id}.json or a trial.json", None


def _atomic_tuner_state() -> None:
    """keras-tuner writes ``oracle.json`` and each ``trial.json`` in place (truncate, then
    write): a kill or a full disk in between left a 0-byte file and a project that could
    not resume. Local files are written as autopneumo writes its own: to a temporary file,
    synced, then renamed over the old one."""
    from keras_tuner.src import utils

    if getattr(utils.save_json, "autopneumo", False):
        return
    original = utils.save_json

    def save_json(path, obj):
        if "://" in str(path):  # a remote store (gs://...): as keras-tuner writes it
            return original(path, obj)
        text = json.dumps(obj)
        atomic_write_text(Path(path), text)
        return text

    save_json.autopneumo = True
    utils.save_json = save_json


def _space_changes(old: Any, new: dict[str, Any]) -> str:
    """Which hyperparameters of which space differ: ``spaces: training.epochs, ...``."""
    old = old if isinstance(old, dict) else {}
    names = []
    for kind in sorted(set(old) | set(new)):
        a = (old.get(kind) or {}).get("hyperparameters") or {}
        b = (new.get(kind) or {}).get("hyperparameters") or {}
        names += [f"{kind}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        if (old.get(kind) or {}).get("name") != (new.get(kind) or {}).get("name"):
            names.append(f"{kind} space")
    return "spaces: " + ", ".join(names) if names else "spaces"


def _space_dict(space) -> dict[str, Any]:
    return {
        "name": space.name,
        "hyperparameters": {k: v.model_dump(exclude_none=True)
                            for k, v in space.hyperparameters.items()},
    }


__all__ = ["SearchConfig", "TUNERS", "search"]
