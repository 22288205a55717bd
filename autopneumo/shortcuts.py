"""``data shortcuts``: can something other than the lungs predict the label?

A model can learn a data set's accidents instead of the disease: in a folder where one
class was scanned on other machines, file size, image dimensions or the borders (text
markers, collimation, padding) may give the label away. For each feature group a
logistic regression on standardised features is fitted on train + val and scored on the
official test split (AUC with a 95 % bootstrap interval over patients):

- ``bytes``: the file size (log bytes);
- ``dimensions``: the original width, height and aspect ratio, read from the header
  (Pillow opens a file lazily: no pixel is decoded for these);
- ``borders``: mean and standard deviation of the outer frame (8 % of the side) of the
  grey image decoded at 64 px, plus each side's mean; the centre is left out;
- ``sharpness``: log variance of the Laplacian and log mean gradient magnitude of the
  same image with the frame removed. Part of it can be the disease (an opacity hides the
  lung's fine detail), part is the scanner and its reconstruction filter. Training with
  random blur and sharpening (the photometric policy's ``sharpness``) makes a model lean
  on it less; on the Kermany data that cost test AUC, so the cue is mostly signal there
  (README, ablation);
- ``centre (control)``: mean and standard deviation of the same image with the frame
  removed. It is not a shortcut: it shows how far a plain intensity statistic of the
  image content goes, for comparison.

A test AUC of 0.75 or more flags a shortcut risk. ``shift_auc`` says whether the group
also moves between the splits: how well it tells a class's test images from its training
images (5-fold cross-validated logistic regression per class, averaged over the two
classes; 0.5: no shift). A feature that predicts the label *and* shifts is how a model
that is right on validation goes wrong on test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError, OptionError
from .objective import bootstrap_intervals, check_bootstrap
from .spaces import is_integer, is_number

SHORTCUT_AUC = 0.75  # at or above: the feature group alone separates the classes
WEAK_AUC = 0.6
IMAGE_SIZE = 64
FRAME = 0.08
CONTROL = "centre (control)"
GROUPS = (
    ("bytes", "file size (log bytes)"),
    ("dimensions", "original width, height, aspect ratio (header)"),
    ("borders", "outer 8 % frame at 64 px: mean, std, mean per side"),
    ("sharpness", "image without the frame: log Laplacian variance, log mean gradient"),
    (CONTROL, "image without the frame: mean, std"),
)


def check_shortcuts(path: str | Path | None = None, image_size: int = IMAGE_SIZE,
                    frame: float = FRAME, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per feature group: test AUC of a logistic regression fitted on train + val,
    its bootstrap interval and a one-line verdict."""
    from .data.cache import load_or_decode
    from .data.dataset import resolve_data_path
    from .data.kermany import scan_kermany

    _check_options(image_size, frame, n_boot, seed)
    root = resolve_data_path(path)
    if root.is_file():
        what = "a .npz file has neither" if root.suffix == ".npz" else "this is a file"
        raise DataError(f"{root}: the shortcut check needs a Kermany folder (file sizes and "
                        f"image headers); {what}")
    scan = scan_kermany(root)
    decoded = load_or_decode(scan, image_size, 1)
    files = np.asarray(decoded.files).astype(str)
    y = np.asarray(decoded.labels).astype(int)
    is_test = np.asarray(decoded.splits) == "test"
    patients = np.asarray(decoded.patients).astype(str)
    for name, mask in (("train + val", ~is_test), ("test", is_test)):
        if len(np.unique(y[mask])) < 2:
            raise DataError(f"{root}: {name} needs readable images of both classes")
    sizes = {e.relpath: e.bytes for e in scan.entries}
    features = {
        "bytes": np.log1p(np.array([max(sizes[f], 0) for f in files], dtype=np.float64))[:, None],
        "dimensions": _dimensions(scan.root, files),
        **_frame_features(np.asarray(decoded.images), frame),
    }
    rows = []
    for group, what in GROUPS:
        x = features[group]
        scores = _fit_score(x[~is_test], y[~is_test], x[is_test])
        auc = _auc(y[is_test], scores)
        lo, hi = bootstrap_intervals(y[is_test], scores, 0.5, n_boot=n_boot, seed=seed,
                                     groups=patients[is_test])["auc"]
        rows.append({"group": group, "features": what, "n_features": x.shape[1],
                     "n_train": int((~is_test).sum()), "n_test": int(is_test.sum()),
                     "test_auc": auc, "test_auc_lo": lo, "test_auc_hi": hi,
                     "shift_auc": _shift_auc(x, y, is_test, seed),
                     "shortcut": group != CONTROL and auc >= SHORTCUT_AUC,
                     "verdict": verdict(group, auc, constant=bool(np.ptp(x, axis=0).max() == 0))})
    out = pd.DataFrame(rows)
    out.attrs.update(root=str(scan.root), image_size=image_size, frame=frame,
                     unreadable=len(decoded.failures),
                     unreadable_files=[f.path for f in decoded.failures])
    return out


def _check_options(image_size: Any, frame: Any, n_boot: Any, seed: Any) -> None:
    """Python's options, which no CLI parses: a size of 32.0 failed in the decoder, a frame
    of 0.5 or more left no centre (a NumPy error about a gradient)."""
    if not (is_integer(image_size) and image_size >= 8):
        raise OptionError(f"image_size must be an integer of at least 8, got {image_size!r}")
    if not (is_number(frame) and 0 < frame < 0.5):
        raise OptionError(f"frame must be a fraction of the side in (0, 0.5), got {frame!r}")
    if image_size - 2 * _frame_width(image_size, frame) < 3:
        raise OptionError(f"frame {frame} leaves no centre of 3 px or more at {image_size} px")
    check_bootstrap(n_boot, seed)


def _frame_width(size: int, frame: float) -> int:
    return max(1, int(round(frame * size)))


def verdict(group: str, auc: float, constant: bool = False) -> str:
    if group == CONTROL:
        return "control: plain intensity of the image content (not a shortcut)"
    if constant:
        return f"no shortcut possible: {group} is the same for every image here"
    if auc >= SHORTCUT_AUC:
        if group == "sharpness":
            return (f"shortcut risk: sharpness alone predicts the label (AUC >= {SHORTCUT_AUC}); "
                    "partly the disease, partly the scanner")
        return f"shortcut risk: {group} alone predicts the label (AUC >= {SHORTCUT_AUC})"
    if auc >= WEAK_AUC:
        return f"weak signal: {group} carries some label information; worth a look"
    return "no shortcut found"


def _dimensions(root: Path, files: np.ndarray) -> np.ndarray:
    """Width, height and aspect ratio from each file's header (no pixel decoded)."""
    from .data.images import image_dimensions

    out = np.empty((len(files), 3), dtype=np.float64)
    for i, f in enumerate(files):
        w, h = image_dimensions(root / f)
        out[i] = (w, h, w / h)
    return out


def _frame_features(images: np.ndarray, frame: float) -> dict[str, np.ndarray]:
    """Border (frame), sharpness and centre statistics of ``(N, S, S, 1)`` grey images."""
    n, size = images.shape[0], images.shape[1]
    k = _frame_width(size, frame)
    border = np.zeros((size, size), dtype=bool)
    border[:k], border[-k:], border[:, :k], border[:, -k:] = True, True, True, True
    borders = np.empty((n, 6))
    sharpness = np.empty((n, 2))
    centre = np.empty((n, 2))
    for start in range(0, n, 1024):  # float copies of a chunk only: the cache is memory-mapped
        x = np.asarray(images[start:start + 1024, :, :, 0], dtype=np.float32)
        ring, inner = x[:, border], x[:, ~border]
        borders[start:start + len(x)] = np.column_stack([
            ring.mean(1), ring.std(1), x[:, :k].mean((1, 2)), x[:, -k:].mean((1, 2)),
            x[:, :, :k].mean((1, 2)), x[:, :, -k:].mean((1, 2))])
        sharpness[start:start + len(x)] = _sharpness(x[:, k:-k, k:-k])
        centre[start:start + len(x)] = np.column_stack([inner.mean(1), inner.std(1)])
    return {"borders": borders, "sharpness": sharpness, CONTROL: centre}


def _sharpness(x: np.ndarray) -> np.ndarray:
    """Log variance of the Laplacian and log mean gradient magnitude of each ``(S, S)``
    float image of ``x`` (given without its frame, which may hold markers or padding,
    not detail)."""
    from scipy import ndimage

    laplace = ndimage.laplace(x, axes=(1, 2))
    gy, gx = np.gradient(x, axis=(1, 2))
    return np.column_stack([np.log(laplace.var(axis=(1, 2)) + 1e-3),
                            np.log(np.hypot(gx, gy).mean(axis=(1, 2)) + 1e-3)])


def _shift_auc(x: np.ndarray, y: np.ndarray, is_test: np.ndarray, seed: int = 0) -> float:
    """How well ``x`` tells each class's test images from its train + val images: 5-fold
    cross-validated AUC per class (0.5 where the features are constant or a side is
    too small), averaged over the classes."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    aucs = []
    for label in np.unique(y):
        xs, side = x[y == label], is_test[y == label].astype(int)
        folds = min(5, int(side.sum()), int((1 - side).sum()))
        if folds < 2 or np.ptp(xs, axis=0).max() == 0:
            aucs.append(0.5)
            continue
        scores = cross_val_predict(_classifier(), xs, side, method="predict_proba",
                                   cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
        aucs.append(_auc(side, scores[:, 1]))
    return float(np.mean(aucs))


def _classifier():
    """The check's model for every feature group: logistic regression on standardised
    features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def _fit_score(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    model = _classifier()
    model.fit(x_train, y_train)
    return model.predict_proba(x_test)[:, 1]


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores))
