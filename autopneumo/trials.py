"""Train one fixed configuration outside a search (``baseline``, ``finalize``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SearchError


@dataclass
class FixedTrial:
    """Quacks like a keras-tuner Trial for ``Evaluator``: id, status, hyperparameter values."""

    trial_id: str
    values: dict[str, Any]
    status: str = "COMPLETED"
    message: str | None = None
    hyperparameters: Any = field(init=False)

    def __post_init__(self):
        self.hyperparameters = type("HP", (), {"values": self.values})()


def check_recorded(record: dict[str, Any], where: Path | str,
                   space: list | None = None) -> dict[str, Any]:
    """A record's configuration, checked before anything trains on it (``finalize``): its
    recall target a number in (0, 1), each hyperparameter one the family's, policy's or
    training's code takes, with a value it accepts (the rules a search space file is held
    to, unless its search's ``space`` drew it: that search trained it so) and, given the
    search's ``space`` (keras-tuner's hyperparameter configs, from the project's
    oracle.json), one that space could draw. Returns the values; a RunsError naming the
    record and the key otherwise."""
    from .errors import OptionError, RunsError
    from .registry import FAMILIES, POLICIES
    from .spaces import is_number, literal_choices
    from .tuning import TRAINING_KEYS, TRAINING_REQUIRED, TRAINING_VALUES

    target = record.get("recall_target")
    if not (is_number(target) and 0 < target < 1):
        raise RunsError(f"{where}: recall_target must be a number in (0, 1), got {target!r}")
    values = record.get("hyperparameters")
    if not isinstance(values, dict):
        raise RunsError(f"{where}: hyperparameters must be a mapping, got {values!r}")
    try:
        family, policy = FAMILIES.get(record.get("family")), POLICIES.get(record.get("policy"))
    except OptionError as exc:  # an unknown name: the registry's own message
        raise RunsError(f"{where}: {exc}") from None
    known = {"model": (family.parameters(), literal_choices(family.builder)),
             "augment": (policy.parameters(), literal_choices(policy.builder)),
             "train": (TRAINING_KEYS, TRAINING_VALUES)}
    kept = {k: v for k, v in values.items() if not k.startswith("tuner/")}
    declared = {c["config"]["name"]: c for c in space or [] if isinstance(c, dict)
                and isinstance(c.get("config"), dict) and "name" in c["config"]}
    for key, value in kept.items():
        prefix, _, name = key.partition(".")
        if prefix not in known or name not in known[prefix][0]:
            raise RunsError(f"{where}: hyperparameters.{key}: not one that {record.get('family')}"
                            f" + {record.get('policy')} with the training space takes")
        rule = known[prefix][1].get(name)
        # one its search's space drew was trained with: a rule stated since (a base_cnn
        # depth of 5, which built depth 4) does not stop its retraining, which is the same
        if (rule is not None and not rule.check(value)
                and not (key in declared and _drawable(declared[key], value))):
            raise RunsError(f"{where}: hyperparameters.{key}: {value!r} is not accepted; it "
                            f"must be {rule.wanted}")
    for key, value in kept.items():
        if key in declared and not _drawable(declared[key], value):
            raise RunsError(f"{where}: hyperparameters.{key}: {value!r} is not one its "
                            f"search's space could draw ({_domain(declared[key])})")
    missing = [k for k in TRAINING_REQUIRED if f"train.{k}" not in kept]
    if missing:
        raise RunsError(f"{where}: hyperparameters.train.{missing[0]} is missing")
    return kept


def check_builds(record: dict[str, Any], values: dict[str, Any], where: Path | str) -> None:
    """Build (not train) the record's model: a value the builder refuses (a dropout rate
    of 1.5, units of 'x') is a RunsError naming the record now, not a traceback after other
    configurations have trained."""
    from .backend import import_tensorflow_quietly
    from .errors import RunsError

    import_tensorflow_quietly()
    import keras

    from .hypermodel import build_model
    from .registry import FAMILIES, POLICIES

    data = record.get("data") if isinstance(record.get("data"), dict) else {}
    size, channels = data.get("image_size") or 128, data.get("channels") or 1
    parts = split_values(values)
    keras.backend.clear_session()
    try:
        build_model(FAMILIES.get(record["family"]), POLICIES.get(record["policy"]),
                    (int(size), int(size), int(channels)), parts["model"], parts["augment"],
                    parts["train"]["learning_rate"], training=parts["train"])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise RunsError(f"{where}: its hyperparameters do not build a model "
                        f"({type(exc).__name__}: {reason})") from None
    finally:
        keras.backend.clear_session()


def _drawable(hp: dict[str, Any], value: Any) -> bool:
    """Whether keras-tuner's hyperparameter ``hp`` (its saved config) can take ``value``."""
    from .spaces import _same, is_integer, is_number

    kind, config = hp.get("class_name"), hp["config"]
    if kind == "Choice":
        return any(_same(value, v) for v in config.get("values") or [])
    if kind == "Boolean":
        return isinstance(value, bool)
    if kind == "Fixed":
        return _same(value, config.get("value"))
    if kind in ("Int", "Float"):
        if not (is_integer(value) if kind == "Int" else is_number(value)):
            return False
        lo, hi = config["min_value"], config["max_value"]
        if kind == "Int" and config.get("step") is None and config.get("sampling") not in (
                None, "linear"):
            hi += 1  # keras-tuner's stepless log Int maps the top probability to max + 1
        # keras-tuner's float arithmetic lands just past a bound (0.030000000000000002)
        slack = 1e-9 * max(abs(lo), abs(hi), 1e-12) if kind == "Float" else 0
        return lo - slack <= value <= hi + slack
    return True  # a kind this check does not know: the builder's rules above still hold


def _domain(hp: dict[str, Any]) -> str:
    config = hp["config"]
    if "values" in config:
        return f"one of {config['values']}"
    if "min_value" in config:
        return f"{config['min_value']} to {config['max_value']}"
    return f"{hp.get('class_name')} {config.get('value', '')}".strip()


def split_values(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"model.width": .5, "train.batch_size": 32}`` -> per-space plain dicts."""
    out: dict[str, dict[str, Any]] = {"model": {}, "augment": {}, "train": {}}
    for key, value in values.items():
        prefix, _, name = key.partition(".")
        if prefix in out and name:
            out[prefix][name] = value
    return out


def train_and_evaluate(family: str, policy: str, values: dict[str, Any], dataset, evaluator,
                       trial_dir: Path, trial_id: str, recall_target: float, seed: int,
                       threshold: float | None = None, early_stopping: bool = True,
                       extra: dict[str, Any] | None = None, filename: str = "record.json",
                       keep_best: bool = True):
    """Train one configuration with ``seed`` and evaluate it (finalize's retrainings, the
    classroom baseline, which keeps its last epoch: ``keep_best=False``). The caller's
    ``random`` and NumPy generators, and TensorFlow's and Keras' global seeds, are given
    back as they were; Keras' session is cleared first."""
    import keras_tuner as kt

    from .backend import kept_random_state

    start = time.perf_counter()
    try:
        with kept_random_state():
            return _train_and_evaluate(family, policy, values, dataset, evaluator, trial_dir,
                                       trial_id, recall_target, seed, threshold,
                                       early_stopping, extra, filename, keep_best)
    except kt.errors.FailedTrialError as exc:  # diverged: recorded as a search's trial is
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        evaluator.record_failure(FixedTrial(trial_id, values, "FAILED", message), trial_dir,
                                 time.perf_counter() - start, extra=extra, filename=filename)
        raise TrainingFailed(f"{trial_dir}: {message}") from None


class TrainingFailed(SearchError):
    """One fixed configuration's training diverged (loss or validation scores NaN); its
    failure record is written. The caller goes on with the others and says so at the end."""


def _train_and_evaluate(family, policy, values, dataset, evaluator, trial_dir, trial_id,
                        recall_target, seed, threshold, early_stopping, extra, filename,
                        keep_best=True):
    from .backend import import_tensorflow_quietly

    import_tensorflow_quietly()  # before Keras: quiet, thread pools sized to the cores
    import keras

    from .hypermodel import build_model, steps_per_epoch, train
    from .registry import FAMILIES, POLICIES

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    parts = split_values(values)
    start = time.perf_counter()
    steps = steps_per_epoch(dataset.train.y, parts["train"])
    model = build_model(FAMILIES.get(family), POLICIES.get(policy), dataset.image_shape,
                        parts["model"], parts["augment"], parts["train"]["learning_rate"],
                        training=parts["train"], steps_per_epoch=steps)
    history = train(model, dataset.train, dataset.val, parts["train"], recall_target,
                    early_stopping=early_stopping, seed=seed, keep_best=keep_best,
                    augmentation=POLICIES.get(policy).builder(**parts["augment"]))
    trial = FixedTrial(trial_id, values)
    return evaluator.evaluate(model, trial, trial_dir, history.history,
                              time.perf_counter() - start, threshold=threshold,
                              extra=extra, filename=filename)
