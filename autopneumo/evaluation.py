"""One evaluation record per finished trial: the single source for leaderboard and report.

The test split is read here only, after the trial has finished; its numbers never feed
ranking, threshold choice or early stopping. The threshold is recomputed on the
validation split from the very weights that are saved and tested.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_save_model, atomic_write_bytes, atomic_write_json
from .backend import predict_batches
from .data.patients import patients_of
from .objective import binary_metrics, bootstrap_intervals, resampled_over, validation_summary
from .provenance import environment

RECORD_FILE = "record.json"
MODEL_FILE = "model.keras"
PREDICTIONS_FILE = "predictions.csv"
SCHEMA_VERSION = 1


class Evaluator:
    def __init__(self, dataset, project: dict[str, Any], recall_target: float,
                 command: str = "", n_boot: int = 1000):
        self.dataset = dataset
        self.project = project
        self.recall_target = recall_target
        self.command = command
        self.n_boot = n_boot

    def base_record(self, trial, trial_dir: Path) -> dict[str, Any]:
        hps = {k: v for k, v in trial.hyperparameters.values.items()}
        return {
            "schema_version": SCHEMA_VERSION,
            "project": self.project["project"],
            "family": self.project["family"],
            "policy": self.project["policy"],
            "tuner": self.project["tuner"],
            "trial_id": str(trial.trial_id),
            # keras-tuner says FAILED or INVALID for a trial that raised; both are failures
            "status": "completed" if str(trial.status).upper() == "COMPLETED" else "failed",
            "tuner_status": str(trial.status).upper(),
            "message": _last_line(getattr(trial, "message", None)),
            "traceback": getattr(trial, "message", None),
            "hyperparameters": hps,
            "recall_target": self.recall_target,
            "data": {k: self.dataset.manifest.get(k) for k in (
                "source", "path", "data_hash", "data_list_hash", "image_size", "channels",
                "split_seed", "val_fraction", "split_hash", "counts")},
            "environment": environment(),
            "command": self.command,
            "trial_dir": str(trial_dir),
            "worker": os.environ.get("KERASTUNER_TUNER_ID"),  # set in chief/worker searches
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def evaluate(self, model, trial, trial_dir: Path, history: dict[str, list] | None,
                 seconds: float | None, threshold: float | None = None,
                 extra: dict[str, Any] | None = None, filename: str = RECORD_FILE,
                 ) -> dict[str, Any]:
        """Threshold from validation (unless fixed, as the classroom's 0.5), then test
        metrics with bootstrap intervals; write the model, predictions and record."""
        start = time.perf_counter()
        record = self.base_record(trial, trial_dir) | (extra or {})
        ds = self.dataset
        from .hypermodel import best_validation_scores, kept_last, kept_start

        p_val = best_validation_scores(model, ds.val.x)  # the best epoch's, already computed
        if p_val is None:
            p_val = predict_batches(model, ds.val.x).ravel()
        val = validation_summary(ds.val.y, p_val, self.recall_target)
        threshold = val["threshold"] if threshold is None else float(threshold)
        p_test = predict_batches(model, ds.test.x).ravel()
        test = binary_metrics(ds.test.y, p_test, threshold, self.recall_target)
        test_ci = bootstrap_intervals(ds.test.y, p_test, threshold, n_boot=self.n_boot,
                                      groups=ds.test.patients, target=self.recall_target)
        trial_dir.mkdir(parents=True, exist_ok=True)
        model_sha256 = atomic_save_model(model, trial_dir / MODEL_FILE)
        _write_predictions(trial_dir / PREDICTIONS_FILE, ds, p_val, p_test)
        history = {k: [float(x) for x in v] for k, v in (history or {}).items()}
        objective = history.get("val_objective") or []
        # 0: a continued trial whose new epochs never beat the weights it started from,
        # which it kept (its parent's best epoch)
        best_epoch = (0 if kept_start(model) is not None
                      else len(objective) if kept_last(model) and objective  # the last kept
                      else int(np.argmax(objective)) + 1 if objective else None)
        record.update(
            status="completed",
            val=val,
            threshold=threshold,
            test=test,
            test_ci={k: list(v) for k, v in test_ci.items()},
            test_ci_resampled=resampled_over(ds.test.patients),
            history=history,
            epochs_run=len(history.get("loss", [])),
            best_epoch=best_epoch,
            kept_start=kept_start(model) is not None,
        )
        record.update(
            epochs_trained=epochs_trained(record),
            params=int(model.count_params()),
            compute=compute_settings(model),
            files={"model": MODEL_FILE, "predictions": PREDICTIONS_FILE},
            model_sha256=model_sha256,  # predict and export check the model file against it
            seconds={"trial": seconds, "evaluation": time.perf_counter() - start},
        )
        atomic_write_json(trial_dir / filename, record)
        return record

    def record_failure(self, trial, trial_dir: Path, seconds: float | None,
                       status: str | None = None, message: str | None = None,
                       extra: dict[str, Any] | None = None,
                       filename: str = RECORD_FILE) -> dict[str, Any]:
        record = self.base_record(trial, trial_dir) | (extra or {})
        record["seconds"] = {"trial": seconds}
        if status:
            record["status"] = status
        if message:
            record["message"] = message
        atomic_write_json(trial_dir / filename, record)
        return record


def start_epoch(record: dict[str, Any]) -> int:
    """The epoch a trial's fit started from: 0, or for a Hyperband continuation the
    epochs its parent's weights had trained (older records: the parent's rung)."""
    recorded = record.get("start_epoch")
    if recorded is None:
        recorded = (record.get("hyperparameters") or {}).get("tuner/initial_epoch", 0)
    return int(recorded or 0)


def epochs_trained(record: dict[str, Any]) -> int | None:
    """How many epochs the weights a completed trial kept were trained, counting a
    Hyperband continuation's parent; None where the record does not say."""
    if record.get("epochs_trained") is not None:
        return int(record["epochs_trained"])
    if record.get("kept_start"):
        return start_epoch(record)
    if record.get("best_epoch") is None:
        return None
    return start_epoch(record) + int(record["best_epoch"])


def compute_settings(model) -> dict[str, Any]:
    """How the model computed: its dtype policy (``mixed_float16`` under
    ``--mixed-precision``), whether its steps were XLA-compiled (``--jit``) and whether
    its training batches were gathered on the accelerator (``--data-on-device``; false
    for a model read back from its file, whose fit this process did not see)."""
    body = [layer for layer in model.layers[:-1] if layer.weights]  # the head stays float32
    policies = sorted({layer.dtype_policy.name for layer in body}) or [model.dtype_policy.name]
    return {"dtype_policy": ", ".join(policies),
            "jit_compile": bool(getattr(model, "jit_compile", False)),
            "data_on_device": bool(getattr(model, "data_on_device", False))}


def _write_predictions(path: Path, ds, p_val: np.ndarray, p_test: np.ndarray) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["split", "file", "label", "probability", "patient"])
    for name, split, scores in (("val", ds.val, p_val), ("test", ds.test, p_test)):
        for f, y, p, who in zip(split.files, split.y, scores, split.patients, strict=True):
            writer.writerow([name, str(f), int(y), repr(float(p)), str(who)])
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def patients_in(part: dict[str, Any]) -> np.ndarray:
    """The patients of one split of ``read_predictions``: the saved column, or for a file
    written before it existed, from the names as they were made then. Derived only where
    needed: a report over 1,000 trials reads every trial's file."""
    saved = part.get("patient")
    return np.asarray(saved).astype(str) if saved is not None else patients_of(part["file"])


def read_predictions(trial_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    import pandas as pd

    path = trial_dir / PREDICTIONS_FILE
    with open(path, encoding="utf-8") as fh:  # patient ids as written ("0123" stays so);
        has_patients = "patient" in fh.readline()  # a dtype for a missing column costs 10 %
    frame = pd.read_csv(path, dtype={"patient": str} if has_patients else None)
    return {
        split: {"label": g["label"].to_numpy(), "probability": g["probability"].to_numpy(),
                "file": g["file"].to_numpy(),
                # the scan's patient ids (a DICOM header's among them); None in files
                # written before the column existed (``patients_in`` derives them then)
                "patient": g["patient"].to_numpy() if "patient" in g else None}
        for split, g in frame.groupby("split")
    }


def _last_line(message: str | None) -> str | None:
    if not message:
        return None
    lines = [ln for ln in str(message).strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else None


def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not (isinstance(x, float) and math.isnan(x))
