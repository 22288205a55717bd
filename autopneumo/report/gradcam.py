"""Grad-CAM (Selvaraju et al. 2017): where in the X-ray the best model looks.

The gradient of the predicted class's score with respect to the last convolutional
feature map, averaged per channel, weights that map; its positive part, upsampled, is
laid over the image. Shown for a few test images the model got right and a few it got
wrong, at the model's validation threshold. TensorFlow is imported here only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .figures import figure, plain, shorten, to_png
from .pixels import CLASSES, show


def load_model(path: str | Path) -> Any:
    """A saved trial model, without its optimizer, refusing arbitrary code (safe mode)."""
    from ..hypermodel import load_trained_model

    return load_trained_model(path)


def last_conv_layer(model: Any) -> Any | None:
    """The last layer with a 4-D output whose class is a convolution (Conv2D,
    SeparableConv2D, DepthwiseConv2D, ...), searched in the model's top-level graph."""
    for layer in reversed(model.layers):
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4 and "Conv" in type(layer).__name__:
            return layer
    return None


def gradcam(model: Any, images: np.ndarray, threshold: float = 0.5,
            layer: Any | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps in [0, 1] at the images' size, and the model's probabilities.

    Each map explains the class the model predicts at ``threshold``: the gradient of p
    for a pneumonia call, of 1 - p for a normal one.
    """
    import keras
    import tensorflow as tf

    layer = layer or last_conv_layer(model)
    if layer is None:
        raise ValueError("the model has no convolutional layer")
    probe = keras.Model(model.inputs, [layer.output, model.outputs[0]])
    x = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        features, probability = probe(x, training=False)
        p = probability[:, 0]
        score = tf.where(p >= threshold, p, 1.0 - p)
    grads = tape.gradient(score, features)
    weights = tf.reduce_mean(grads, axis=(1, 2))
    cam = tf.nn.relu(tf.einsum("nhwc,nc->nhw", features, weights))
    cam = tf.image.resize(cam[..., None], images.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1)
    cam = cam / np.where(peak > 0, peak, 1.0)[:, None, None]
    return cam.astype(np.float32), p.numpy()


def pick_examples(y: np.ndarray, scores: np.ndarray, threshold: float,
                  n: int = 4) -> tuple[list[int], list[int]]:
    """``n`` confident right answers and ``n`` confident mistakes, both classes mixed.

    Mistakes are the false positives and false negatives furthest from the threshold.
    """
    y = np.asarray(y).astype(bool)
    pred = np.asarray(scores) >= threshold
    margin = np.abs(np.asarray(scores) - threshold)

    def take(mask: np.ndarray) -> list[int]:
        groups = [np.flatnonzero(mask & (y == c)) for c in (True, False)]
        groups = [g[np.argsort(-margin[g], kind="stable")] for g in groups]
        out: list[int] = []
        while len(out) < n and any(len(g) for g in groups):
            for i, g in enumerate(groups):
                if len(g) and len(out) < n:
                    out.append(int(g[0]))
                    groups[i] = g[1:]
        return out

    return take(pred == y), take(pred != y)


def gradcam_plot(rows: list[tuple[str, list[tuple[np.ndarray, np.ndarray, str]]]],
                 per_row: int) -> bytes | None:
    """Each image with its heatmap laid over it; one row per group (right, wrong)."""
    from matplotlib import colormaps

    rows = [(label, items) for label, items in rows if items]
    if not rows:
        return None
    with figure(1.9 * per_row + 0.5, 2.2 * len(rows) + 0.1, left=0.4, right=0.05, bottom=0.05,
                top=0.4, wspace=0.08, hspace=0.35) as fig:
        axes = fig.subplots(len(rows), per_row, squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for r, (label, items) in enumerate(rows):
            for c, (image, cam, title) in enumerate(items[:per_row]):
                base, kw = show(image)
                axes[r, c].imshow(base, **kw)
                overlay = colormaps["jet"](cam)
                overlay[..., 3] = 0.6 * cam  # no evidence, no colour: the X-ray shows through
                axes[r, c].imshow(overlay)
                axes[r, c].set_title(plain(title, 64), fontsize=6)
            axes[r, 0].text(-0.08, 0.5, label, transform=axes[r, 0].transAxes, rotation=90,
                            va="center", ha="right", fontsize=8)
        return to_png(fig)


def example_title(file: str, label: int, probability: float, threshold: float) -> str:
    predicted = int(probability >= threshold)
    mark = "right" if predicted == label else "wrong"
    return f"{shorten(Path(file).name, 24)}\ntrue {CLASSES[label]}, p={probability:.2f} ({mark})"
