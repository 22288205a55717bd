"""Patient-grouped, class-stratified validation split (scikit-learn's ``GroupShuffleSplit``)."""

from __future__ import annotations

import numpy as np

from ..errors import OptionError


def patient_split(
    labels: np.ndarray, patients: np.ndarray, val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)`` such that no patient is on both sides.

    Patients are stratified by the classes of their images: ``val_fraction`` of the
    patients of each stratum go to validation (``GroupShuffleSplit`` per stratum: exact
    shares, and fast). Where every patient has one class (Kermany: NORMAL and PNEUMONIA
    patients are numbered apart) the strata are the classes; patients with images of both
    classes form a third. A stratum of one patient stays in train.
    """
    if not 0.0 < val_fraction <= 0.5:
        raise OptionError(f"--val-fraction must be in (0, 0.5], got {val_fraction}")
    from sklearn.model_selection import GroupShuffleSplit

    labels = np.asarray(labels)
    patients = np.asarray(patients)
    n_groups = len(np.unique(patients))
    if n_groups < 2 or n_groups * val_fraction < 1:
        from_headers = all(str(p).startswith("dicom:") for p in np.unique(patients))
        hint = ("; the ids come from the DICOM files' Patient ID, which an anonymised export "
                "may set to one value for everyone: give the files distinct Patient IDs or "
                "Kermany-style names (personN_...)" if from_headers and n_groups else "")
        raise OptionError(
            f"only {n_groups} patients: too few for a {val_fraction:.0%} patient-level split"
            f"{hint}")
    classes_per_patient: dict = {p: set() for p in np.unique(patients)}
    for p, y in zip(patients, labels, strict=True):
        classes_per_patient[p].add(y)
    mixed = {p for p, c in classes_per_patient.items() if len(c) > 1}
    # the strata: one per class (its one-class patients), then the mixed patients; the
    # seeds per class as before the mixed stratum existed, so a split stays the same
    strata = [(labels == label) & ~np.isin(patients, list(mixed)) for label in np.unique(labels)]
    if mixed:
        strata.append(np.isin(patients, list(mixed)))
    val_parts = []
    for k, member in enumerate(strata):
        idx = np.flatnonzero(member)
        if len(np.unique(patients[idx])) < 2:
            continue  # a stratum of one patient stays in train
        splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed + k)
        _, val_local = next(splitter.split(idx, groups=patients[idx]))
        val_parts.append(idx[val_local])
    val_idx = np.sort(np.concatenate(val_parts)) if val_parts else np.array([], int)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx
