"""Batch-level policies (MixUp, CutMix): they mix images *and labels*, so they cannot be
layers inside the model (which sees images only). Their builders return a
``BatchPolicy``: a list of per-image layers (empty for these two) that also carries
``transform(x, y, rng) -> (x, y)``, applied by the training loop to each training batch.

Wiring (in ``PneumoniaHyperModel.fit``)::

    transform = batch_transform(self.policy.builder(**values["augment"]))
    if transform is not None:
        data = MixedBatches(self.train.x, self.train.y, t["batch_size"], transform,
                            class_weight=class_weights(self.train.y) if t["class_weights"]
                            else None, seed=...)
        model.fit(data, epochs=..., initial_epoch=..., callbacks=..., verbose=0)

(no ``batch_size``, ``class_weight`` or ``shuffle`` arguments: ``MixedBatches`` batches,
shuffles each epoch and turns class weights into per-sample weights, interpolated for
mixed labels). Validation, test and ``predict`` never see mixed batches. Images stay
``uint8`` (MixUp rounds), labels become float32 in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import keras
import numpy as np

Transform = Callable[..., tuple[np.ndarray, np.ndarray]]


class BatchPolicy(list):
    """Per-image layers (may be empty) plus a batch ``transform`` for the training loop.

    Empty, it is falsy, so ``build_model`` adds no augmentation block for it."""

    def __init__(self, layers: Iterable[Any] = (), *, transform: Transform):
        super().__init__(layers)
        self.transform = transform


def batch_transform(augmentation: Any) -> Transform | None:
    """The batch transform of a policy builder's result, or None for a layers-only policy."""
    return getattr(augmentation, "transform", None)


def _as_float(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _like(mixed: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Back to the images' dtype (integers are rounded and clipped to their range)."""
    if np.issubdtype(original.dtype, np.integer):
        info = np.iinfo(original.dtype)
        return np.clip(np.rint(mixed), info.min, info.max).astype(original.dtype)
    return mixed.astype(original.dtype, copy=False)


def _labels(y: np.ndarray) -> np.ndarray:
    y = _as_float(y)
    if y.size and (y.min() < 0 or y.max() > 1):
        raise ValueError("labels must be in [0, 1]")
    return y


def mixup_batch(x: np.ndarray, y: np.ndarray, *, alpha: float = 0.2, probability: float = 1.0,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """MixUp (Zhang et al. 2018): each chosen image i becomes lam * x_i + (1 - lam) * x_j
    for a random partner j in the batch, lam ~ Beta(alpha, alpha) per image, and its label
    lam * y_i + (1 - lam) * y_j. ``probability`` is the share of images mixed."""
    x, yf = np.asarray(x), _labels(y)
    n = len(x)
    if n < 2 or alpha <= 0 or probability <= 0:
        return x, yf
    partner = rng.permutation(n)
    lam = rng.beta(alpha, alpha, n).astype(np.float32)
    lam = np.where(rng.random(n) < probability, lam, 1.0).astype(np.float32)
    lam_x = lam.reshape((n,) + (1,) * (x.ndim - 1))
    mixed = lam_x * _as_float(x) + (1.0 - lam_x) * _as_float(x[partner])
    lam_y = lam.reshape((n,) + (1,) * (yf.ndim - 1))
    return _like(mixed, x), lam_y * yf + (1.0 - lam_y) * yf[partner]


def cutmix_batch(x: np.ndarray, y: np.ndarray, *, alpha: float = 1.0, probability: float = 0.5,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """CutMix (Yun et al. 2019): a random box of each chosen image is pasted from a random
    partner in the batch; the box's area is 1 - lam of the image, lam ~ Beta(alpha, alpha),
    and the label mixes by the area actually pasted (after clipping at the border)."""
    x, yf = np.asarray(x), _labels(y)
    n = len(x)
    if n < 2 or alpha <= 0 or probability <= 0:
        return x, yf
    height, width = x.shape[1], x.shape[2]
    partner = rng.permutation(n)
    lam = rng.beta(alpha, alpha, n)
    chosen = rng.random(n) < probability
    cut = np.sqrt(1.0 - lam)
    box_h, box_w = np.rint(height * cut).astype(int), np.rint(width * cut).astype(int)
    cy, cx = rng.integers(0, height, n), rng.integers(0, width, n)
    y0, y1 = np.clip(cy - box_h // 2, 0, height), np.clip(cy + (box_h + 1) // 2, 0, height)
    x0, x1 = np.clip(cx - box_w // 2, 0, width), np.clip(cx + (box_w + 1) // 2, 0, width)
    out = x.copy()
    pasted = np.zeros(n, dtype=np.float32)
    for i in np.flatnonzero(chosen):
        out[i, y0[i]:y1[i], x0[i]:x1[i]] = x[partner[i], y0[i]:y1[i], x0[i]:x1[i]]
        pasted[i] = (y1[i] - y0[i]) * (x1[i] - x0[i]) / (height * width)
    share = pasted.reshape((n,) + (1,) * (yf.ndim - 1))
    return out, (1.0 - share) * yf + share * yf[partner]


class MixedBatches(keras.utils.PyDataset):
    """Shuffled training batches with a batch transform applied; yields
    ``(x, y)`` or ``(x, y, sample_weight)`` when class weights are given.

    Each batch's randomness comes from ``(seed, epoch, index)``, so a run is repeatable;
    ``epoch`` is the first epoch's number (a Hyperband continuation's ``initial_epoch``,
    which would otherwise replay its parent's first epochs' draws).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, transform: Transform, *,
                 class_weight: dict[int, float] | None = None, seed: int = 0,
                 shuffle: bool = True, epoch: int = 0, **kwargs):
        super().__init__(**kwargs)
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        self.x, self.y = x, np.asarray(y)
        self.batch_size = int(batch_size)
        self.transform = transform
        self.class_weight = class_weight
        self.seed, self.shuffle = int(seed), shuffle
        self.epoch = int(epoch)
        self.order = self._order()

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.x))
        return np.random.default_rng([self.seed, self.epoch, 1]).permutation(len(self.x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int):
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, 0, index])
        x, y = self.transform(self.x[idx], self.y[idx], rng=rng)
        y = np.asarray(y, dtype=np.float32)
        if self.class_weight is None:
            return x, y
        w0, w1 = float(self.class_weight[0]), float(self.class_weight[1])
        weight = (1.0 - y) * w0 + y * w1
        return x, y, weight.reshape(len(y), -1)[:, 0].astype(np.float32)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._order()
