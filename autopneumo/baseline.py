"""``baseline classroom``: the classroom study's three models, trained as it trained them,
stored as runs marked ``reference`` so every leaderboard shows them beside tuned models.

Study settings: 180 px RGB, batch 16, 10 epochs, Adam (1e-3), binary cross-entropy, class
weights, a random image-level 80/20 split of train + val, no early stopping, the weights
after the last epoch (not the best validation epoch a search keeps), decision threshold
0.5. Models: the separable-conv CNN without augmentation, the same with random
horizontal flips, and ResNet-18 from scratch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .evaluation import Evaluator
from .paths import DEFAULT_RUNS_DIR

PROJECT = "classroom__reference"
CLASSROOM = {"image_size": 180, "channels": 3, "batch_size": 16, "epochs": 10,
             "learning_rate": 1e-3, "val_fraction": 0.2}
MODELS = (  # (trial id, family, policy, family hyperparameters)
    ("cnn", "base_cnn", "none", {}),
    ("cnn_flip", "base_cnn", "flip", {}),
    ("resnet18", "resnet18", "none", {"width": 1.0, "dropout": 0.0, "weight_decay": 0.0}),
)
PUBLISHED = {  # official test set, as the classroom study reported them
    "cnn": {"accuracy": 0.689, "precision": 0.668, "recall": 0.997, "loss": 1.609},
    "cnn_flip": {"accuracy": 0.878, "precision": 0.865, "recall": 0.954, "loss": 0.408},
    "resnet18": {"accuracy": 0.777, "precision": 0.925, "recall": 0.700, "loss": 0.752},
}


def classroom(data: str | Path | None = None, runs_dir: str | Path = DEFAULT_RUNS_DIR,
              seed: int = 0, recall_target: float = 0.95, **overrides: Any) -> list[dict]:
    """Train the three reference models; ``overrides`` (image_size, epochs, ...) are for
    quick checks and are recorded, so a deviating run never passes for the study's."""
    from .data import load_dataset
    from .trials import train_and_evaluate

    settings = {**CLASSROOM, **{k: v for k, v in overrides.items() if v is not None}}
    _check_image_size(settings["image_size"])  # as a search does, before the data loads
    dataset = load_dataset(data, settings["image_size"], settings["channels"],
                           settings["val_fraction"], seed, split_by="image")
    project = {"project": PROJECT, "family": None, "policy": None, "tuner": "none"}
    from .errors import SearchError
    from .trials import TrainingFailed

    records, failed = [], []
    for trial_id, family, policy, model_params in MODELS:
        values = {f"model.{k}": v for k, v in model_params.items()}
        values.update({"train.learning_rate": settings["learning_rate"],
                       "train.batch_size": settings["batch_size"],
                       "train.epochs": settings["epochs"], "train.class_weights": True})
        evaluator = Evaluator(dataset, project | {"family": family, "policy": policy},
                              recall_target, command="autopneumo baseline classroom")
        try:
            records.append(train_and_evaluate(
                family, policy, values, dataset, evaluator, Path(runs_dir) / PROJECT /
                f"trial_{trial_id}", trial_id, recall_target, seed, threshold=0.5,
                early_stopping=False, keep_best=False,  # evaluated after its last epoch
                extra={"reference": True, "reference_settings": settings,
                       "reference_published": PUBLISHED[trial_id],
                       "reference_exact": settings == CLASSROOM},
            ))
        except TrainingFailed as exc:  # recorded as failed; the other references go on
            failed.append(str(exc))
    if failed:
        raise SearchError(f"{len(failed)} reference model(s) diverged: {'; '.join(failed)}",
                          records=records)
    return records


def _check_image_size(size: Any) -> None:
    """The models' smallest input (a family's or policy's ``min_image_size``): below it
    building the CNN failed inside Keras, after the data had loaded."""
    from .errors import OptionError
    from .registry import FAMILIES, POLICIES

    need = {}
    for _, family, policy, _ in MODELS:
        need[family] = max(need.get(family, 0), FAMILIES.get(family).min_image_size,
                           POLICIES.get(policy).min_image_size)
    if not isinstance(size, int) or isinstance(size, bool):
        raise OptionError(f"--image-size must be a whole number of pixels, got {size!r}")
    small = [f"{family} (at least {least})" for family, least in need.items() if size < least]
    if small:
        raise OptionError(f"--image-size {size} is too small for {', '.join(small)}")
