"""Running a real ``autopneumo.tuning.search`` with probes on it.

The probe is a ``progress`` object (the hook ``search`` offers the CLI's progress
display) for trial begin / end, plus patches, active only inside ``probed()``:
``PneumoniaHyperModel.build`` and ``.fit`` (an epoch timer appended after every other
callback, so every other callback's end-of-epoch work is inside the epoch),
``ValidationObjective.on_epoch_end`` (the per-epoch validation predict),
``autopneumo.tuning.record_trial`` (evaluation + record) and ``keras.Model.save`` (the
trial's model.keras, written inside the record: the trial's one checkpoint, the file
Hyperband continues from).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import rss_mb


def subset_folder(source: Path, dest: Path, every: int) -> Path:
    """Every ``every``-th file of each split and class, as symlinks, in the Kermany layout
    (the official val split, 16 images, is kept whole)."""
    for split in ("train", "val", "test"):
        for cls in ("NORMAL", "PNEUMONIA"):
            folder = source / split / cls
            if not folder.is_dir():
                continue
            out = dest / split / cls
            out.mkdir(parents=True, exist_ok=True)
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))
            for p in files if split == "val" else files[::every]:
                os.symlink(p.resolve(), out / p.name)
    return dest


def synthetic_folder(dest: Path, n_train: int, n_test: int, size: int = 64) -> Path:
    """A Kermany-layout folder of smooth random JPEGs, for runs without the data."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    pid = 0
    for split, n in (("train", n_train), ("test", n_test)):
        for label, cls in enumerate(("NORMAL", "PNEUMONIA")):
            folder = dest / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n // 2):
                pid += 1
                img = rng.normal(100 + 40 * label, 30, (size, size)).clip(0, 255).astype("uint8")
                name = f"person{pid}_bacteria_{i}.jpeg" if label else f"IM-{pid:04d}-0001.jpeg"
                Image.fromarray(img, "L").save(folder / name, quality=90)
    return dest


@dataclass
class TrialTimes:
    trial_id: str
    begin: float = 0.0
    end: float = 0.0
    build: float = 0.0
    fit: float = 0.0  # the whole PneumoniaHyperModel.fit call
    epochs: list[float] = field(default_factory=list)
    saves: list[float] = field(default_factory=list)  # keras.Model.save (model.keras)
    validation: list[float] = field(default_factory=list)  # ValidationObjective.on_epoch_end
    record: float = 0.0  # record_trial: load_model + evaluate + write
    rss_after: float = 0.0  # MiB, at the end of the trial (after its record)
    status: str = ""

    @property
    def wall(self) -> float:
        return self.end - self.begin


class Probe:
    """The ``progress`` object given to ``search``: trial begin / end timestamps."""

    def __init__(self, on_trial_end: Callable[[TrialTimes], None] | None = None):
        self.trials: list[TrialTimes] = []
        self.on_trial_end = on_trial_end

    @property
    def current(self) -> TrialTimes | None:
        return self.trials[-1] if self.trials else None

    def search_begin(self, config, done: int, deadline: float | None = None) -> None:
        pass

    def trial_begin(self, trial) -> None:
        self.trials.append(TrialTimes(str(trial.trial_id), begin=time.perf_counter()))

    def trial_end(self, record: dict[str, Any]) -> None:
        t = self.current
        if t is None:
            return
        t.end = time.perf_counter()
        t.status = str(record.get("status"))
        t.rss_after = rss_mb()
        if self.on_trial_end:
            self.on_trial_end(t)

    def epoch_callback(self):
        import keras

        return keras.callbacks.Callback()


@contextlib.contextmanager
def probed(probe: Probe) -> Iterator[Probe]:
    import keras

    from autopneumo import hypermodel as hm_module
    from autopneumo import tuning

    original_build = hm_module.PneumoniaHyperModel.build
    original_fit = hm_module.PneumoniaHyperModel.fit
    original_save = keras.Model.save
    original_validation = hm_module.ValidationObjective.on_epoch_end
    original_record = tuning.record_trial

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if probe.current is not None:
                probe.current.epochs.append(time.perf_counter() - self._start)

    def build(self, hp):
        start = time.perf_counter()
        try:
            return original_build(self, hp)
        finally:
            if probe.current is not None:
                probe.current.build += time.perf_counter() - start

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        start = time.perf_counter()
        try:
            return original_fit(self, hp, model, *args,
                                callbacks=list(callbacks or []) + [EpochTimer()], **kwargs)
        finally:
            if probe.current is not None:
                probe.current.fit += time.perf_counter() - start

    def save(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original_save(self, *args, **kwargs)
        finally:
            if probe.current is not None:
                probe.current.saves.append(time.perf_counter() - start)

    def validation(self, epoch, logs=None):
        start = time.perf_counter()
        try:
            return original_validation(self, epoch, logs)
        finally:
            if probe.current is not None:
                probe.current.validation.append(time.perf_counter() - start)

    def record_trial(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original_record(*args, **kwargs)
        finally:
            if probe.current is not None:
                probe.current.record += time.perf_counter() - start

    hm_module.PneumoniaHyperModel.build = build
    hm_module.PneumoniaHyperModel.fit = fit
    keras.Model.save = save
    hm_module.ValidationObjective.on_epoch_end = validation
    tuning.record_trial = record_trial
    try:
        yield probe
    finally:
        hm_module.PneumoniaHyperModel.build = original_build
        hm_module.PneumoniaHyperModel.fit = original_fit
        keras.Model.save = original_save
        hm_module.ValidationObjective.on_epoch_end = original_validation
        tuning.record_trial = original_record


def write_space(folder: Path, kind: str, name: str, hyperparameters: dict[str, Any]) -> Path:
    """A search-space file (``--space``) with the given hyperparameters."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}-{name}.yaml"
    path.write_text(yaml.safe_dump({"kind": kind, "name": name,
                                    "hyperparameters": hyperparameters}))
    return path
