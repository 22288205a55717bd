"""Grad-CAM (Selvaraju et al. 2017): where in the X-ray the best model looks.

The gradient of the predicted class's score with respect to the last convolutional
feature map, averaged per channel, weights that map; its positive part, upsampled, is
laid over the image. Shown for a few test images the model got right and a few it got
wrong, at the model's validation threshold. TensorFlow is imported here only.

The focus numbers need no pixels on the page: over a fixed sample of test images of both
classes, the share of each map's mass inside the central lung-field box (``LUNG_BOX``)
against the share a uniform map would put there (the box's area). A model that reads
borders, markers or corners puts its mass in the outer frame.

Occlusion sensitivity (Zeiler and Fergus 2014) is the second opinion, on the same
sample and box: each cell of a grid over the image is greyed out in turn, and the drop
of the predicted class's logit is that cell's evidence. It needs no gradients and no
choice of layer, and it is never empty when the decision depends on anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..backend import predict_batches
from ..terminal import distinct_from
from .figures import figure, plain, shorten, to_png
from .pixels import CLASSES, show

LUNG_BOX = (0.70, 0.80)  # the central box: share of the width, share of the height
FOCUS_IMAGES = 64  # test images in the focus sample, half of each class where possible
FOCUS_MARGIN = 0.10  # "clearly inside": median share at least this far above the uniform share
FOCUS_BATCH = 16
OCCLUSION_GRID = 8  # cells per side
INSIDE = "looks mostly inside the lung field"
OUTSIDE = "attention is not concentrated on the lungs — check for shortcuts"
EMPTY = ("no verdict: too few Grad-CAM maps have mass (positive evidence to place; at least "
         "half the maps of a class must)")


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

    Each map explains the class the model predicts at ``threshold``, from the gradient of
    the output's logit (before the sigmoid): + logit for a pneumonia call, - logit for a
    normal one. The probability itself saturates at 0 or 1 for a confident model, and its
    gradient underflows to zero, which would leave every confident map empty.
    """
    from ..interrupts import defer_ctrl_c

    with defer_ctrl_c():  # a Ctrl-C waits for the maps, never lands inside TensorFlow
        return _gradcam(model, images, threshold, layer)


def _gradcam(model: Any, images: np.ndarray, threshold: float, layer: Any | None):
    import keras
    import tensorflow as tf

    layer = layer or last_conv_layer(model)
    if layer is None:
        raise ValueError("the model has no convolutional layer")
    head = _sigmoid_head(model)
    outputs = [layer.output, head.input if head is not None else model.outputs[0]]
    probe = keras.Model(model.inputs, outputs)
    x = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        features, out = probe(x, training=False)
        if head is not None:
            kernel, bias = tf.cast(head.kernel, out.dtype), tf.cast(head.bias, out.dtype)
            logit = (tf.matmul(out, kernel) + bias)[:, 0]
            p = tf.sigmoid(logit)
            score = tf.where(p >= threshold, logit, -logit)
        else:  # not an autopneumo head: explain the probability
            p = out[:, 0]
            score = tf.where(p >= threshold, p, 1.0 - p)
    grads = tape.gradient(score, features)
    weights = tf.reduce_mean(grads, axis=(1, 2))
    cam = tf.nn.relu(tf.einsum("nhwc,nc->nhw", features, weights))
    cam = tf.image.resize(cam[..., None], images.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1)
    cam = cam / np.where(peak > 0, peak, 1.0)[:, None, None]
    return cam.astype(np.float32), p.numpy()


def occlusion(model: Any, images: np.ndarray, threshold: float = 0.5,
              grid: int = OCCLUSION_GRID, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Occlusion maps in [0, 1] at the images' size (one value per grid cell), and the
    model's probabilities.

    Each cell is set to the image's median grey in turn. A cell's value is how much that
    lowers the score of the class the model predicts at ``threshold``: the logit for a
    pneumonia call, minus the logit for a normal one (the probability where the model
    has no autopneumo head). Cells whose removal helps the prediction count as zero."""
    import keras

    images = np.asarray(images)
    n, h, w = images.shape[:3]
    head = _sigmoid_head(model)
    if head is not None:
        probe = keras.Model(model.inputs, head.input)
        kernel, bias = (np.asarray(v, dtype=np.float64) for v in (head.kernel, head.bias))

        def score(x):
            return (predict_batches(probe, x, batch).astype(np.float64) @ kernel
                    + bias)[:, 0]
    else:
        def score(x):
            return predict_batches(model, x, batch)[:, 0].astype(np.float64)

    base = score(images)
    p = 1.0 / (1.0 + np.exp(-base)) if head is not None else base
    sign = np.where(p >= threshold, 1.0, -1.0)
    ys = np.linspace(0, h, grid + 1).round().astype(int)
    xs = np.linspace(0, w, grid + 1).round().astype(int)
    fill = np.median(images.reshape(n, -1), axis=1).astype(images.dtype)
    maps = np.zeros((n, h, w), dtype=np.float32)
    for i in range(grid):  # one predict per row of cells
        occluded = np.repeat(images[None], grid, axis=0)  # (cells, n, h, w, c)
        for j in range(grid):
            occluded[j, :, ys[i]:ys[i + 1], xs[j]:xs[j + 1]] = fill[:, None, None, None]
        drop = sign * (base - score(occluded.reshape(grid * n, *images.shape[1:])).reshape(grid, n))
        for j in range(grid):
            maps[:, ys[i]:ys[i + 1], xs[j]:xs[j + 1]] = np.maximum(drop[j], 0.0)[:, None, None]
    peak = maps.reshape(n, -1).max(axis=1) if n else np.zeros(0)
    maps /= np.where(peak > 0, peak, 1.0)[:, None, None]
    return maps, p.astype(np.float32)


def occlusion_focus(model: Any, images: np.ndarray, labels: np.ndarray, threshold: float,
                    box: tuple[float, float] = LUNG_BOX, grid: int = OCCLUSION_GRID,
                    ) -> tuple[list[dict[str, Any]], str, float]:
    """Occlusion maps of ``images`` reduced to the focus table and verdict."""
    maps = occlusion(model, images, threshold, grid)[0] if len(images) else np.zeros((0, 1, 1))
    shares, uniform = focus_shares(maps, box)
    rows, verdict = focus_summary(shares, labels, uniform)
    return rows, verdict, uniform


def _sigmoid_head(model: Any) -> Any | None:
    """The model's final ``Dense(1, sigmoid)`` layer (autopneumo names it ``pneumonia``)."""
    try:
        head = model.get_layer("pneumonia")
    except ValueError:
        return None
    activation = getattr(getattr(head, "activation", None), "__name__", "")
    if type(head).__name__ != "Dense" or activation != "sigmoid" or head.use_bias is False:
        return None
    return head


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
    return (f"{shorten(Path(file).name, 24)}\ntrue {CLASSES[label]}, "
            f"p={distinct_from(probability, threshold)} ({mark})")


# --- focus: how much of the map falls in the lung field --------------------------------

def lung_box(height: int, width: int, box: tuple[float, float] = LUNG_BOX) -> np.ndarray:
    """A boolean ``(height, width)`` mask: pixels whose centre lies in the middle ``box[0]``
    of the width and ``box[1]`` of the height."""
    bw, bh = box
    if not (0 < bw <= 1 and 0 < bh <= 1):
        raise ValueError(f"the box must be fractions in (0, 1], got {box}")
    cx = (np.arange(width) + 0.5) / width
    cy = (np.arange(height) + 0.5) / height
    inside_x = np.abs(cx - 0.5) <= bw / 2 + 1e-9
    inside_y = np.abs(cy - 0.5) <= bh / 2 + 1e-9
    return inside_y[:, None] & inside_x[None, :]


def focus_shares(maps: np.ndarray, box: tuple[float, float] = LUNG_BOX) -> tuple[np.ndarray, float]:
    """Per map, the share of its (non-negative) mass inside the central box; NaN for a map
    with no mass. Also the box's area fraction: the share of a uniform map."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W), got shape {maps.shape}")
    maps = np.clip(np.nan_to_num(maps, nan=0.0), 0.0, None)
    mask = lung_box(maps.shape[1], maps.shape[2], box)
    total = maps.sum(axis=(1, 2))
    inside = maps[:, mask].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)
    return shares, float(mask.mean())


def focus_sample(y: np.ndarray, n: int = FOCUS_IMAGES, seed: int = 0) -> list[int]:
    """Up to ``n`` test indices, deterministic, half of each class where the classes allow
    (the other class fills a short one), in data order."""
    y = np.asarray(y).astype(int)
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(y == c)) for c in (0, 1)]
    take = [min(len(p), n // 2) for p in pools]
    for c in (0, 1):  # the other class fills what one class lacks
        take[c] = min(len(pools[c]), n - take[1 - c])
    return sorted(int(i) for c in (0, 1) for i in pools[c][:take[c]])


def focus_summary(shares: np.ndarray, labels: np.ndarray, uniform: float,
                  margin: float = FOCUS_MARGIN) -> tuple[list[dict[str, Any]], str]:
    """Median and interquartile range of the shares per true class and over all images,
    and the verdict: inside the lung field when each judged class's median is at least
    ``margin`` above the uniform share. A class is judged where at least half its maps have
    mass; ``EMPTY`` when no class is."""
    shares = np.asarray(shares, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    rows = []
    for name, mask in ((CLASSES[0], labels == 0), (CLASSES[1], labels == 1),
                       ("all", np.ones(len(labels), dtype=bool))):
        s = shares[mask]
        ok = s[np.isfinite(s)]
        q1, median, q3 = (np.percentile(ok, [25, 50, 75]) if len(ok) else (np.nan,) * 3)
        rows.append({"true_class": name, "n_images": int(mask.sum()), "n_empty": int(len(s) - len(ok)),
                     "share_median": float(median), "share_q1": float(q1), "share_q3": float(q3),
                     "share_iqr": float(q3 - q1), "uniform_share": float(uniform)})
    # a class whose maps are mostly empty does not decide the verdict (1 map of 20 would)
    for r in rows:
        r["judged"] = r["n_images"] > 0 and 2 * (r["n_images"] - r["n_empty"]) >= r["n_images"]
    scored = [r for r in rows[:2] if r["judged"]]
    if not scored:
        return rows, EMPTY
    inside = all(r["share_median"] >= uniform + margin for r in scored)
    return rows, INSIDE if inside else OUTSIDE


def gradcam_focus(model: Any, images: np.ndarray, labels: np.ndarray, threshold: float,
                  layer: Any | None = None, box: tuple[float, float] = LUNG_BOX,
                  batch: int = FOCUS_BATCH) -> tuple[list[dict[str, Any]], str, float]:
    """Grad-CAM maps of ``images`` (in batches) reduced to the focus table and verdict."""
    maps = [gradcam(model, images[i:i + batch], threshold, layer)[0]
            for i in range(0, len(images), batch)]
    shares, uniform = focus_shares(np.concatenate(maps) if maps else np.zeros((0, 1, 1)), box)
    rows, verdict = focus_summary(shares, labels, uniform)
    return rows, verdict, uniform
