"""Synthetic trial records (with real prediction files) for leaderboard and report tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from autopneumo.atomic import atomic_write_json
from autopneumo.objective import binary_metrics, bootstrap_intervals, validation_summary


def edit_record(record_path: Path, **changes) -> None:
    """Change a record's fields in place; a mapping given for a mapping field is merged
    into it (``data={"image_size": 32}`` keeps the other data entries)."""
    record = json.loads(record_path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(record.get(key), dict):
            record[key] |= value
        else:
            record[key] = value
    atomic_write_json(record_path, record)


def write_record(runs: Path, family: str, policy: str, trial_id: str, quality: float,
                 status: str = "completed", seed: int = 0, n: int = 120,
                 test_quality: float | None = None) -> Path:
    """A record as evaluation.py writes it; ``quality`` sets how separable the scores are."""
    rng = np.random.default_rng(seed)
    trial_dir = runs / f"{family}__{policy}" / f"trial_{trial_id}"
    trial_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "schema_version": 1, "project": f"{family}__{policy}", "family": family,
        "policy": policy, "tuner": "random", "trial_id": trial_id, "status": status,
        "message": None if status == "completed" else "RuntimeError: loss became NaN",
        "hyperparameters": {"model.width": 0.5, "train.learning_rate": 1e-3,
                            "train.batch_size": 32, "train.epochs": 2},
        "recall_target": 0.95, "data": {"image_size": 32}, "seconds": {"trial": 1.5},
    }
    if status == "completed":
        yv = rng.integers(0, 2, n)
        pv = np.clip(yv * quality + rng.random(n) * (1 - quality), 0, 1)
        yt = rng.integers(0, 2, n)
        tq = quality if test_quality is None else test_quality
        pt = np.clip(yt * tq + rng.random(n) * (1 - tq), 0, 1)
        val = validation_summary(yv, pv, 0.95)
        test = binary_metrics(yt, pt, val["threshold"], 0.95)
        lines = ["split,file,label,probability"]
        for split, folder, ys, ps in (("val", "train/X/v", yv, pv), ("test", "test/X/t", yt, pt)):
            lines += [f"{split},{folder}{i}.jpeg,{y},{float(p)!r}"
                      for i, (y, p) in enumerate(zip(ys, ps, strict=True))]
        (trial_dir / "predictions.csv").write_text("\n".join(lines) + "\n")
        record.update(
            val=val, threshold=val["threshold"], test=test,
            test_ci={k: list(v) for k, v in bootstrap_intervals(yt, pt, val["threshold"],
                                                                  n_boot=200).items()},
            history={"loss": [0.7, 0.5], "val_loss": [0.69, 0.6], "accuracy": [0.6, 0.7],
                     "val_accuracy": [0.55, 0.65], "val_objective": [0.6, val["objective"]]},
            epochs_run=2, best_epoch=2, params=1234,
            files={"model": "model.keras", "predictions": "predictions.csv"},
        )
    path = trial_dir / "record.json"
    atomic_write_json(path, record)
    return path


def three_trials(tmp_path: Path, test_quality: dict | None = None,
                 kermany_names: bool = False) -> Path:
    """Trials a, b, c (validation quality 0.5, 0.3, 0.05) in ``tmp_path / "runs"``;
    ``test_quality`` may give their test quality another order, ``kermany_names`` names the
    test images by patient (three images each)."""
    runs = tmp_path / "runs"
    tq = test_quality or {}
    for fam, pol, tid, q in (("base_cnn", "none", "a", 0.5), ("base_cnn", "flip", "b", 0.3),
                             ("resnet18", "none", "c", 0.05)):
        path = write_record(runs, fam, pol, tid, q, seed=1, test_quality=tq.get(tid))
        if kermany_names:
            csv = path.parent / "predictions.csv"
            lines = csv.read_text().splitlines()
            out = [lines[0]]
            for line in lines[1:]:
                split, file, label, p = line.split(",")
                if split == "test":
                    i = int(file.rsplit("t", 1)[1].split(".")[0])
                    file = f"test/PNEUMONIA/person{i // 3}_bacteria_{i}.jpeg"
                out.append(",".join([split, file, label, p]))
            csv.write_text("\n".join(out) + "\n")
    return runs
