"""Figures that show X-ray pixels: sample images per class and the augmentation preview.

They need the data folder the best trial was trained on (reloaded with the record's
size, channels, split seed and validation fraction, so the split is the same), and
TensorFlow only for the augmentation layers. ``write_report(pixels=False)`` skips them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .figures import figure, plain, to_png
from .runs import as_dict

CLASSES = ("NORMAL", "PNEUMONIA")


def load_record_data(record: dict[str, Any], moved: str | Path | None = None
                     ) -> tuple[Any, list[str]]:
    """The data set a trial record names (or ``moved``: where it is now, checked against
    the recorded data hash), or ``(None, notes)`` saying why not."""
    data = as_dict(record.get("data"))
    path = moved or data.get("path")
    if not path:
        return None, ["The best trial's record names no data folder."]
    if not Path(str(path)).exists():
        return None, [f"Data folder {path} is not available here (if it moved, report "
                      "--data gives its new place)."]
    from ..data import load_dataset
    from ..data.dataset import same_data

    kwargs: dict[str, Any] = {
        "image_size": int(data.get("image_size") or 128),
        "channels": int(data.get("channels") or 1),
        "seed": int(data.get("split_seed") or 0),
    }
    if data.get("val_fraction") is not None:
        kwargs["val_fraction"] = float(data["val_fraction"])
    dataset = load_dataset(str(path), **kwargs)
    notes = []
    recorded, now = data.get("data_hash"), dataset.manifest.get("data_hash")
    if recorded and now and not same_data(recorded, dataset.manifest):
        notes.append(f"The data folder {path} changed since the search "
                     f"(hash {str(now)[:12]}, the record says {str(recorded)[:12]}).")
    return dataset, notes


def show(image: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """An (S, S, C) image and the imshow arguments that draw it as the model sees it."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        top = 255 if image.dtype == np.uint8 else 1
        return image[..., 0], {"cmap": "gray", "vmin": 0, "vmax": top}
    return image, {}


def samples_plot(split: Any, per_class: int = 5, seed: int = 0) -> bytes | None:
    """A few training images of each class, at the resolution the models saw."""
    if len(split) == 0:
        return None
    with figure(1.6 * per_class + 0.5, 3.7, left=0.4, right=0.05, bottom=0.05, top=0.25,
                wspace=0.08, hspace=0.25) as fig:
        axes = fig.subplots(2, per_class, squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for label in (0, 1):
            idx = np.flatnonzero(np.asarray(split.y) == label)
            chosen = np.random.default_rng(seed + label).choice(idx, min(per_class, len(idx)),
                                                                replace=False) if len(idx) else []
            for col, i in enumerate(chosen):
                image, kw = show(split.x[i])
                axes[label, col].imshow(image, **kw)
                axes[label, col].set_title(plain(Path(str(split.files[i])).name, 22), fontsize=6)
            axes[label, 0].text(-0.08, 0.5, CLASSES[label], transform=axes[label, 0].transAxes,
                                rotation=90, va="center", ha="right", fontsize=8)
        return to_png(fig)


def policy_params(hyperparameters: dict[str, Any], allowed: dict[str, Any]) -> dict[str, Any]:
    """The ``augment.*`` values of a trial that the policy builder accepts."""
    return {k[len("augment."):]: v for k, v in hyperparameters.items()
            if k.startswith("augment.") and k[len("augment."):] in allowed}


def augment_previews(image: np.ndarray, policies: dict[str, dict[str, Any]],
                     partners: np.ndarray | None = None, draws: int = 5,
                     seed: int = 0) -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    """The same image through each policy, ``draws`` random draws each, in [0, 1].

    ``policies`` maps a policy name to the hyperparameters of its best trial. A
    batch-level policy (MixUp, CutMix: its builder's result has a ``transform``) mixes
    the image with ``partners`` (other training images) first, as the training loop
    does; then the policy's layers run in training mode, as inside the model.
    """
    from ..registry import POLICIES

    out, notes = [], []
    for name, hps in policies.items():
        if name not in POLICIES:
            notes.append(f"Policy {name} is not registered here; no preview.")
            continue
        try:
            out.append((name, _augment(POLICIES.get(name), as_dict(hps), image, partners,
                                       draws, seed)))
        except Exception as exc:  # one odd policy must not hide the others
            notes.append(f"Policy {name}: no preview ({type(exc).__name__}: {exc}).")
    return out, notes


def _augment(entry: Any, hps: dict[str, Any], image: np.ndarray, partners: np.ndarray | None,
             draws: int, seed: int) -> np.ndarray:
    """``draws`` augmentations of ``image``, the same ones for the same ``seed``: Keras'
    random layers, built unseeded, draw their seeds from Python's generator, seeded here
    and given back after (TensorFlow's and Keras' global seeds are left alone)."""
    import random

    from ..backend import kept_random_state

    with kept_random_state():
        random.seed(seed)
        np.random.seed(seed)
        return _augmented(entry, hps, image, partners, draws, seed)


def _augmented(entry: Any, hps: dict[str, Any], image: np.ndarray,
               partners: np.ndarray | None, draws: int, seed: int) -> np.ndarray:
    augmentation = entry.builder(**policy_params(hps, entry.parameters()))
    batch = np.repeat(image[None], draws, axis=0)
    transform = getattr(augmentation, "transform", None)
    if transform is not None:
        others = partners if partners is not None and len(partners) else batch
        others = others[np.arange(draws) % len(others)]
        mixed, _ = transform(np.concatenate([batch, others]),
                             np.zeros(2 * draws, dtype=np.float32),
                             rng=np.random.default_rng(seed))
        batch = np.asarray(mixed)[:draws]
    batch = batch.astype("float32") / 255.0
    if len(augmentation):
        import keras

        batch = np.asarray(keras.Sequential(list(augmentation))(batch, training=True))
    return np.clip(batch, 0.0, 1.0)


def augmentation_plot(image: np.ndarray, previews: list[tuple[str, np.ndarray]]) -> bytes | None:
    """Rows: policies; first column the original image, then random draws."""
    if not previews:
        return None
    draws = max(len(p[1]) for p in previews)
    with figure(1.45 * (draws + 1) + 0.5, 1.5 * len(previews) + 0.3, left=0.4, right=0.05,
                bottom=0.05, top=0.25, wspace=0.06, hspace=0.1) as fig:
        axes = fig.subplots(len(previews), draws + 1, squeeze=False)
        for r, (name, images) in enumerate(previews):
            for ax in axes[r]:
                ax.axis("off")
            original, kw = show(image)
            axes[r, 0].imshow(original, **kw)
            axes[r, 0].set_title("original" if r == 0 else "", fontsize=7)
            axes[r, 0].text(-0.08, 0.5, plain(name, 16), transform=axes[r, 0].transAxes,
                            rotation=90, va="center", ha="right", fontsize=8)
            for c, augmented in enumerate(images, start=1):
                shown, kw = show(augmented)
                kw = {**kw, "vmax": 1} if kw else {}
                axes[r, c].imshow(shown, **kw)
                if r == 0:
                    axes[r, c].set_title(f"draw {c}", fontsize=7)
        return to_png(fig)
