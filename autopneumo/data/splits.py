"""Patient-grouped, class-stratified validation split (scikit-learn's StratifiedGroupKFold)."""

from __future__ import annotations

import numpy as np

from ..errors import OptionError


def patient_split(
    labels: np.ndarray, patients: np.ndarray, val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)`` such that no patient is on both sides.

    The validation share is the nearest ``1/k`` (k folds of StratifiedGroupKFold, one fold
    kept): 0.2 gives exactly five folds. Classes keep their proportions as far as the
    patient groups allow.
    """
    if not 0.0 < val_fraction <= 0.5:
        raise OptionError(f"--val-fraction must be in (0, 0.5], got {val_fraction}")
    from sklearn.model_selection import StratifiedGroupKFold

    n_splits = max(2, round(1.0 / val_fraction))
    labels = np.asarray(labels)
    patients = np.asarray(patients)
    n_groups = len(np.unique(patients))
    if n_groups < n_splits:
        raise OptionError(
            f"only {n_groups} patients: too few for a {val_fraction:.0%} patient-level split"
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_idx, val_idx = next(splitter.split(np.zeros(len(labels)), labels, patients))
    return np.sort(train_idx), np.sort(val_idx)
