"""Use the winner: export a model with its model card, predict on new images."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import atomic_write_json
from .backend import predict_batches
from .data.images import IMAGE_SUFFIXES
from .errors import DataError, OptionError, RunsError
from .evaluation import MODEL_FILE, RECORD_FILE
from .finalize import FINAL_FILE
from .leaderboard import leaderboard, search_trials
from .paths import require_runs_dir

CARD_FILE = "model_card.json"


@dataclass(frozen=True)
class ModelCard:
    """What a model needs to be used: input format and the validation-chosen threshold."""

    model_path: Path
    threshold: float
    image_size: int
    channels: int
    info: dict[str, Any]


def model_card(record: dict[str, Any]) -> dict[str, Any]:
    data = record.get("data") or {}
    return {
        "family": record.get("family"),
        "policy": record.get("policy"),
        "trial_id": record.get("trial_id"),
        "hyperparameters": record.get("hyperparameters"),
        "threshold": record.get("threshold"),
        "threshold_chosen_on": "validation split",
        "recall_target": record.get("recall_target"),
        "image_size": data.get("image_size"),
        "channels": data.get("channels"),
        "input": "uint8 image, 0-255, resized to image_size x image_size (no aspect ratio kept)",
        "output": "probability of PNEUMONIA",
        "validation": record.get("val"),
        "test": record.get("test"),
        "test_ci95": record.get("test_ci"),
        "data_hash": data.get("data_hash"),
        "data_counts": data.get("counts"),
        "environment": record.get("environment"),
        "reference": bool(record.get("reference", False)),
    }


def export(runs_dir: str | Path, out: str | Path, top: int = 1) -> list[Path]:
    """Copy the top-``top`` completed models (by validation) with a model card each."""
    if top < 1:
        raise OptionError(f"--top must be positive, got {top}")
    require_runs_dir(runs_dir)
    frame = search_trials(leaderboard(runs_dir))  # no ensemble, no reference run
    done = frame[frame["status"] == "completed"].head(top) if len(frame) else frame
    if done.empty:
        raise RunsError(f"{runs_dir}: no completed search trial to export "
                        "(reference runs and ensembles are never exported)")
    out = Path(out)
    targets = [out if top == 1 else out / f"rank{rank}_{row['project']}_trial{row['trial_id']}"
               for rank, (_, row) in enumerate(done.iterrows(), start=1)]
    for _, row in done.iterrows():
        if not (Path(row["trial_dir"]) / MODEL_FILE).is_file():
            raise RunsError(f"{row['trial_dir']}: no {MODEL_FILE} to export")
    for target in targets:  # never overwrite a model that is not an earlier export
        if (target / MODEL_FILE).exists() and not (target / CARD_FILE).exists():
            raise RunsError(f"--out {target}: holds a {MODEL_FILE} that is not an earlier "
                            "export (a trial's folder?); choose another --out")
        if (target / RECORD_FILE).exists():
            raise RunsError(f"--out {target}: is a trial's folder; choose another --out")
    written = []
    for rank, (target, (_, row)) in enumerate(zip(targets, done.iterrows(), strict=True),
                                              start=1):
        trial_dir = Path(row["trial_dir"])
        record = json.loads((trial_dir / RECORD_FILE).read_text(encoding="utf-8"))
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(trial_dir / MODEL_FILE, target / MODEL_FILE)
        card = model_card(record) | {"rank_by_validation": rank}
        atomic_write_json(target / CARD_FILE, card)
        written.append(target)
    return written


def resolve_model(source: str | Path, threshold: float | None = None) -> ModelCard:
    """A trial folder, an exported folder, or a ``.keras`` file (with a card or record beside)."""
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise OptionError(f"--threshold must be in [0, 1], got {threshold}")
    source = Path(source)
    if not source.exists():
        raise OptionError(f"--model {source}: not found")
    folder = source if source.is_dir() else source.parent
    model_path = source if source.is_file() else folder / MODEL_FILE
    if not model_path.is_file():
        raise OptionError(f"--model {source}: no {MODEL_FILE} there")
    if model_path.suffix != ".keras":
        raise OptionError(f"--model {source}: not a .keras model file or a folder holding one")
    info: dict[str, Any] = {}
    for name in (CARD_FILE, RECORD_FILE, FINAL_FILE):  # export, trial, finalize seed
        if (folder / name).is_file():
            try:
                raw = json.loads((folder / name).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise OptionError(f"--model {source}: {folder / name} is unreadable ({exc})"
                                  ) from exc
            info = model_card(raw) if name != CARD_FILE else raw
            break
    chosen = threshold if threshold is not None else info.get("threshold")
    if chosen is None:
        raise OptionError(f"--model {source}: no model card, trial record or finalize record "
                          "with a threshold beside it; pass --threshold")
    return ModelCard(model_path, float(chosen), int(info.get("image_size") or 0),
                     int(info.get("channels") or 0), info)


def image_files(inputs: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            files.append(item)
        else:
            raise DataError(f"{item}: no such image or folder")
    if not files:
        raise DataError("no images (.jpeg, .jpg, .png) found in the given paths")
    return files


def predict(model: str | Path, inputs: list[str | Path], threshold: float | None = None,
            batch_size: int = 64) -> pd.DataFrame:
    """Probability of pneumonia and the label at the validation-chosen threshold, per image.

    Unreadable images get an empty probability and their error, not an exception.
    """
    import numpy as np

    from .data.images import decode_image
    from .hypermodel import load_trained_model

    card = resolve_model(model, threshold)
    net = load_trained_model(card.model_path)
    _, size, _, channels = net.input_shape
    size = card.image_size or size
    channels = card.channels or channels
    rows, arrays = [], []
    for path in image_files(inputs):
        try:
            arrays.append(decode_image(path, size, channels))
            rows.append({"file": str(path), "error": None})
        except Exception as exc:  # noqa: BLE001 - reported per file
            rows.append({"file": str(path), "error": f"{type(exc).__name__}: {exc}"})
    probabilities = iter(
        predict_batches(net, np.stack(arrays), batch_size).ravel() if arrays else []
    )
    for row in rows:
        if row["error"] is None:
            p = float(next(probabilities))
            row.update(probability=p, label="PNEUMONIA" if p >= card.threshold else "NORMAL")
        else:
            row.update(probability=None, label=None)
    frame = pd.DataFrame(rows, columns=["file", "probability", "label", "error"])
    frame.attrs["threshold"] = card.threshold
    frame.attrs["threshold_given"] = threshold is not None
    return frame
