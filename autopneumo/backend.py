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
