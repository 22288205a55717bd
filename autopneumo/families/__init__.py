"""Model families: each module registers one backbone builder with ``register_family``.

A builder takes the (rescaled, augmented) input tensor and its tunable keyword
arguments, and returns the feature tensor; the shared head adds the sigmoid output.
"""

from ..backend import import_tensorflow_quietly

import_tensorflow_quietly()  # before Keras loads TensorFlow: quiet, thread pools sized

from ..registry import FAMILIES, register_family

__all__ = ["FAMILIES", "register_family"]
