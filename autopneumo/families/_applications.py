"""Shared plumbing for the families built on ``keras.applications`` backbones.

The backbone is built on the family's input tensor (``input_tensor=``), so its layers
sit in the model's own graph: Grad-CAM finds its last convolution at the top level, and
the saved ``.keras`` file holds only standard layers (no ``Lambda``), loadable with
``safe_mode=True``.

``weights`` is the path of a local weights file (nothing is ever downloaded): Keras'
ImageNet "notop" ``.h5`` files, or a ``.weights.h5`` file saved from the same backbone.
ImageNet weights need three channels, so a one-channel input is repeated to three
(``Concatenate``), and the ImageNet input normalisation is applied with standard layers.
The file is loaded into a reference copy of the backbone first (Keras' own loader, which
matches an ``.h5`` file by layer order and a ``.weights.h5`` file by structure), then
copied layer by layer into the model's backbone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
from keras import layers

from ..errors import OptionError

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, images in [0, 1]
IMAGENET_STD = (0.229, 0.224, 0.225)

# make(input_tensor=..., input_shape=...) -> keras.Model, include_top=False, weights=None
BackboneFactory = Callable[..., keras.Model]


def pretrained(**fixed: Any):
    """Mark a builder as taking ``weights``; ``fixed`` are the hyperparameter values the
    standard ImageNet file needs (a search with ``--weights`` fixes them in its space)."""

    def decorator(fn):
        fn.pretrained_fixed = dict(fixed)
        return fn

    return decorator


def check_weights_path(weights: str | Path | None, family: str) -> Path | None:
    if weights is None or weights == "":
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise OptionError(f"--weights {weights}: no such file (needed by family {family})")
    if not path.name.endswith((".h5", ".hdf5")):
        raise OptionError(
            f"--weights {weights}: expected a Keras .h5 or .weights.h5 file for {family}"
        )
    return path


def to_rgb(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """Repeat a one-channel image to three channels (ImageNet weights need RGB)."""
    if x.shape[-1] == 3:
        return x
    if x.shape[-1] != 1:
        raise OptionError(f"expected 1 or 3 input channels, got {x.shape[-1]}")
    return layers.Concatenate(axis=-1, name=name)([x, x, x])


def imagenet_standardize(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """(x - mean) / std per RGB channel for [0, 1] images ("torch" preprocessing)."""
    return layers.Rescaling(
        scale=[1.0 / s for s in IMAGENET_STD],
        offset=[-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)],
        name=name,
    )(x)


def attach_backbone(make: BackboneFactory, x: keras.KerasTensor, *, weights: Path | None,
                    family: str) -> tuple[keras.KerasTensor, list[keras.layers.Layer]]:
    """Build the backbone on ``x``; return its 4-D feature map and its layers (in order).

    With ``weights``, the file is loaded into a reference backbone and copied over.
    """
    shape = tuple(int(d) for d in x.shape[1:])
    app = make(input_tensor=x, input_shape=shape)
    # The application's Model runs from the model's own input: drop the layers upstream.
    upstream = {id(layer) for layer in keras.Model(app.inputs, x).layers}
    own = [layer for layer in app.layers if id(layer) not in upstream]
    if weights is not None:
        reference = make(input_tensor=None, input_shape=shape)
        try:
            reference.load_weights(str(weights))
        except Exception as exc:  # Keras raises ValueError, KeyError, OSError, ...
            first = (str(exc).splitlines() or [""])[0][:300]
            raise OptionError(
                f"--weights {weights}: does not fit family {family} with these "
                f"hyperparameters ({type(exc).__name__}: {first}); a search with --weights "
                f"takes the standard Keras ImageNet 'notop' file of the architecture it pins "
                f"({_pinned(family)})"
            ) from exc
        copy_weights(make_layers(reference), own, family)
    return app.output, own


def make_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """A standalone backbone's layers without its input layer."""
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def copy_weights(source: list, target: list, family: str) -> None:
    if len(source) != len(target):
        raise RuntimeError(f"{family}: backbone has {len(target)} layers, expected {len(source)}")
    for src, dst in zip(source, target, strict=True):
        if type(src) is not type(dst):
            raise RuntimeError(
                f"{family}: backbone layer {dst.name} is a {type(dst).__name__}, "
                f"expected a {type(src).__name__} ({src.name})"
            )
        if src.weights:
            dst.set_weights(src.get_weights())
    for layer in target:  # Normalization derives its mean/variance tensors from weights
        if isinstance(layer, layers.Normalization):
            layer.finalize_state()


def pooled(features: keras.KerasTensor, dropout: float, name: str) -> keras.KerasTensor:
    """Global average pooling, then dropout: the feature vector the shared head reads."""
    x = layers.GlobalAveragePooling2D(name=f"{name}_pool")(features)
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def _pinned(family: str) -> str:
    from ..registry import FAMILIES

    fixed = getattr(FAMILIES.get(family).builder, "pretrained_fixed", {})
    return ", ".join(f"{k} {v}" for k, v in fixed.items()) or "its default"
