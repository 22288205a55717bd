"""Import TensorFlow once, without the C++ start-up chatter it writes to stderr."""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly() -> None:
    """TensorFlow logs CUDA probes through absl before any log level applies; hide fd 2
    for the import only (an import error still raises and is reported afterwards)."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe logs here too
            tf.get_logger().setLevel("ERROR")  # retracing notes between trials are expected
    finally:
        os.dup2(saved, 2)
        os.close(saved)


CUSTOM_GRADIENT_PREFIX = "CustomGradient-"


def custom_gradient_names() -> set[str]:
    """Names in TensorFlow's global gradient registry that ``tf.custom_gradient`` added."""
    registry = _gradient_registry()
    return {k for k in registry if k.startswith(CUSTOM_GRADIENT_PREFIX)} if registry else set()


def release_custom_gradients(keep: set[str]) -> int:
    """Drop the custom gradients registered since ``keep`` was taken; returns how many.

    Every trace of a Keras train step on TensorFlow registers one ``tf.custom_gradient``
    (the optimizer's gradient all-reduce, ``keras/src/backend/tensorflow/optimizer.py``)
    under a fresh global name and never removes it; the entry's closure holds the traced
    FuncGraph and, through it, every optimizer ``cond`` branch of that model: about 50
    graphs and 2 MiB per trial, for the life of the process. The entry is only read while
    the gradient is traced, so once a trial's functions exist, dropping it is safe.
    """
    registry = _gradient_registry()
    if not registry:
        return 0
    stale = [k for k in registry if k.startswith(CUSTOM_GRADIENT_PREFIX) and k not in keep]
    for name in stale:
        registry.pop(name, None)
    return len(stale)


def _gradient_registry() -> dict | None:
    """The private dict behind ``tf.RegisterGradient`` (None if TensorFlow moved it)."""
    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.framework import ops
    except ImportError:
        return None
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None
