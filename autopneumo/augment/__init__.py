"""Augmentation policies: each module registers a builder with ``register_policy``.

A builder returns a list of Keras preprocessing layers applied to images scaled to
[0, 1]. They sit inside the model (``preprocessing.Augmentation``), so they run only in
training and never at predict, nor when the saved model is called without ``training``.
"""

from ..backend import import_tensorflow_quietly

import_tensorflow_quietly()  # before Keras loads TensorFlow: quiet, thread pools sized

from ..registry import POLICIES, register_policy

__all__ = ["POLICIES", "register_policy"]
