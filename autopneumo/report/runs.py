"""What the report reads from a runs folder: the ranked leaderboard plus the raw records.

The leaderboard DataFrame (records only, no prediction files) drives the table, the
heatmap and the tuning figures, so a folder of thousands of trials stays fast. Prediction
files are read lazily and cached, only for the few models the report looks at closely.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..evaluation import PREDICTIONS_FILE, RECORD_FILE, patients_in, read_predictions
from ..leaderboard import leaderboard, read_records
from ..paths import files_named

TRIAL_FILE = "trial.json"  # keras-tuner's own file: present from the start of a trial
PROJECT_FILE = "autopneumo_project.json"


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a dict, else an empty one: records are input, not trusted."""
    return value if isinstance(value, dict) else {}


def is_finite(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and math.isfinite(float(value))


def model_label(row: pd.Series | dict[str, Any]) -> str:
    """The headline name form, ``family + policy (trial id)``; ``ensemble top3`` for one."""
    flag = row.get("ensemble")
    if isinstance(flag, bool | np.bool_) and flag:
        return f"ensemble {row.get('policy')}"
    return f"{row.get('family')} + {row.get('policy')} (trial {row.get('trial_id')})"


@dataclass
class Predictions:
    """One model's saved test (or validation) scores, as ``predictions.csv`` holds them."""

    file: np.ndarray
    label: np.ndarray
    probability: np.ndarray
    saved_patient: np.ndarray | None = None  # the file's patient column, where it has one

    def __len__(self) -> int:
        return len(self.label)

    @property
    def patient(self) -> np.ndarray:
        """The scan's patient ids (older files: from the names), derived on first use."""
        if self.saved_patient is None:
            self.saved_patient = patients_in({"file": self.file, "patient": None})
        return self.saved_patient


@dataclass
class Runs:
    """The leaderboard frame (plus ``reference``, ``ensemble`` and unfinished rows) and the
    records."""

    frame: pd.DataFrame
    records: dict[str, dict[str, Any]]
    runs_dir: str
    _predictions: dict[tuple[str, str], Predictions | None] = field(default_factory=dict)

    def record(self, row: pd.Series) -> dict[str, Any]:
        return self.records.get(str(row.get("trial_dir")), {})

    def completed(self) -> pd.DataFrame:
        if self.frame.empty:
            return self.frame
        return self.frame[self.frame["status"] == "completed"]

    def candidates(self) -> pd.DataFrame:
        """Completed search trials with a validation objective, best first.

        Reference runs (the classroom baseline re-run) and ensembles of the top trials are
        shown beside the winner, not competed against it.
        """
        done = self.completed()
        if done.empty:
            return done
        return done[~done["reference"].astype(bool) & ~done["ensemble"].astype(bool)
                    & done["val_objective"].notna()]

    def references(self) -> pd.DataFrame:
        done = self.completed()
        return done[done["reference"].astype(bool)] if not done.empty else done

    def ensembles(self) -> pd.DataFrame:
        """``autopneumo ensemble`` rows (the top trials averaged), best by validation first."""
        done = self.completed()
        return done[done["ensemble"].astype(bool)] if not done.empty else done

    def best_per_project(self) -> pd.DataFrame:
        """The best trial of each family x policy by validation (the frame is ranked)."""
        cands = self.candidates()
        if cands.empty:
            return cands
        return cands.groupby(["family", "policy"], sort=False).head(1)

    def predictions(self, row: pd.Series, split: str = "test") -> Predictions | None:
        """The saved predictions of one trial (``None`` when the file is missing or bad)."""
        trial_dir = str(row.get("trial_dir"))
        key = (trial_dir, split)
        if key not in self._predictions:
            pred = _read_split(Path(trial_dir), split)
            n = as_dict(as_dict(self.records.get(trial_dir)).get(split)).get("n")
            if pred is not None and isinstance(n, int) and len(pred.label) != n:
                pred = None  # a truncated or partial copy: its numbers would be a subset's
            self._predictions[key] = pred
        return self._predictions[key]


def load_runs(runs_dir: str | Path) -> Runs:
    """Leaderboard + records of ``runs_dir``; unfinished trials are added as rows."""
    frame = leaderboard(runs_dir)
    records = {str(Path(r["_path"]).parent): r for r in read_records(runs_dir)}
    frame["reference"] = [bool(as_dict(records.get(str(d))).get("reference", False))
                          for d in frame.get("trial_dir", pd.Series(dtype=str))]
    frame["ensemble"] = [as_dict(records.get(str(d))).get("kind") == "ensemble"
                         for d in frame.get("trial_dir", pd.Series(dtype=str))]
    unfinished = _unfinished_rows(Path(runs_dir))
    if unfinished:
        extra = pd.DataFrame(unfinished)
        extra.insert(0, "rank", range(len(frame) + 1, len(frame) + 1 + len(extra)))
        attrs = dict(frame.attrs)
        frame = (pd.concat([frame, extra], ignore_index=True) if len(frame) else  # the
                 extra.reindex(columns=list(dict.fromkeys([*frame.columns, *extra.columns]))))
        frame.attrs.update(attrs)
    return Runs(frame=frame, records=records, runs_dir=str(runs_dir))


def _unfinished_rows(runs_dir: Path) -> list[dict[str, Any]]:
    """Trials keras-tuner started that have no record yet (running, or interrupted)."""
    rows = []
    for trial_file in files_named(runs_dir, TRIAL_FILE):
        trial_dir = trial_file.parent
        if (trial_dir / RECORD_FILE).exists():
            continue
        try:
            trial = as_dict(json.loads(trial_file.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            trial = {}
        project = _project(trial_dir.parent)
        status = str(trial.get("status") or "").lower()
        rows.append({
            "project": project.get("project", trial_dir.parent.name),
            "family": project.get("family"),
            "policy": project.get("policy"),
            "trial_id": str(trial.get("trial_id", _trial_id(trial_dir.name))),
            "status": "unfinished" if status in ("", "completed") else f"unfinished ({status})",
            "reference": False,
            "ensemble": False,
            "trial_dir": str(trial_dir),
            "message": "no record.json yet: the trial is running or was interrupted",
        })
    return rows


def _project(folder: Path) -> dict[str, Any]:
    try:
        return as_dict(json.loads((folder / PROJECT_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _trial_id(name: str) -> str:
    return re.sub(r"^trial_", "", name)


def _read_split(trial_dir: Path, split: str) -> Predictions | None:
    if not (trial_dir / PREDICTIONS_FILE).is_file():
        return None
    try:
        part = read_predictions(trial_dir).get(split)
    except (OSError, ValueError, KeyError):
        return None
    if part is None or len(part["label"]) == 0:
        return None
    label = np.asarray(part["label"], dtype=np.float64)
    probability = np.asarray(part["probability"], dtype=np.float64)
    if not (np.all(np.isin(label, (0.0, 1.0))) and np.all(np.isfinite(probability))):
        return None  # damaged rows (a truncated file): not a model's scores
    return Predictions(file=np.asarray(part["file"]).astype(str),
                       label=np.asarray(part["label"]).astype(int),
                       probability=np.asarray(part["probability"], dtype=np.float64),
                       saved_patient=(None if part["patient"] is None
                                      else np.asarray(part["patient"]).astype(str)))


@dataclass
class ScoredModel:
    """A top model with its saved test scores: what the curves, confusion matrices,
    training curves and McNemar's test look at."""

    rank: int
    label: str
    row: pd.Series
    record: dict[str, Any]
    test: Predictions
    threshold: float

    @property
    def predicted(self) -> np.ndarray:
        return self.test.probability >= self.threshold


def scored_models(runs: Runs, k: int) -> tuple[list[ScoredModel], list[str]]:
    """The ``k`` best candidates by validation whose predictions can be read, and notes
    on those skipped."""
    out, notes = [], []
    for _, row in runs.candidates().iterrows():
        if len(out) >= k:
            break
        pred = runs.predictions(row)
        if pred is None or not is_finite(row.get("threshold")):
            notes.append(f"{model_label(row)}: no readable {PREDICTIONS_FILE} (or it does not "
                         "hold every test image its record counts) or no threshold, left out")
            continue
        out.append(ScoredModel(int(row["rank"]), model_label(row), row, runs.record(row), pred,
                               float(row["threshold"])))
    return out, notes
