"""Import TensorFlow once, without the C++ start-up chatter it writes to stderr; which
Keras backend runs, and which accelerators it sees.

TensorFlow is the default backend. The training path (families, augmentation, the
objective, the tuner) uses only Keras, so ``KERAS_BACKEND=jax`` also runs a search: the
functions here then leave TensorFlow alone."""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def keras_backend() -> str:
    """The backend Keras runs on: its ``KERAS_BACKEND`` variable, else its config file.

    Keras is not imported to find out (on TensorFlow, importing Keras imports TensorFlow,
    whose CUDA probe writes to stderr before ``import_tensorflow_quietly`` can hide it)."""
    name = os.environ.get("KERAS_BACKEND", "").strip()
    if name:
        return name
    if "keras" in sys.modules:
        import keras

        return keras.backend.backend()
    return _configured_backend()


def _configured_backend() -> str:
    """The ``backend`` of Keras' ``keras.json``, found where Keras looks for it
    (``KERAS_HOME``, else ``~/.keras``, else ``/tmp/.keras`` when home is not writable);
    TensorFlow where there is none."""
    if "KERAS_HOME" in os.environ:
        folder = os.environ["KERAS_HOME"]
    else:
        home = os.path.expanduser("~")
        folder = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    try:
        with open(os.path.join(os.path.expanduser(folder), "keras.json")) as fh:
            config = json.load(fh)
    except (OSError, ValueError):
        return "tensorflow"
    name = config.get("backend") if isinstance(config, dict) else None
    return name if isinstance(name, str) and name else "tensorflow"


def gpu_names() -> list[str]:
    """The GPUs the Keras backend sees (empty on a CPU machine)."""
    name = keras_backend()
    if name == "tensorflow":
        import_tensorflow_quietly()
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]
    if name == "jax":
        import jax

        try:
            return [str(d) for d in jax.devices("gpu")]
        except RuntimeError:  # no GPU platform
            return []
    if name == "torch":
        import torch

        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return []


def import_tensorflow_quietly() -> None:
    """TensorFlow logs CUDA probes through absl before any log level applies; hide fd 2
    for the import only (an import error still raises and is reported afterwards).
    Nothing to do when Keras runs on another backend."""
    if keras_backend() != "tensorflow":
        return
    if "tensorflow" in sys.modules:  # imported before (a host program, a Keras import)
        _quiet_and_sized()
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe logs here too
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    _quiet_and_sized()


_SIZED = False


def _quiet_and_sized() -> None:
    """Once a process: TensorFlow's retracing notes between trials (expected) hidden, and
    its thread pools sized to the cores, unless the host program set either first."""
    global _SIZED
    if _SIZED:
        return
    _SIZED = True
    import tensorflow as tf

    if tf.get_logger().level == 0:  # not set by the host program: TensorFlow's default
        tf.get_logger().setLevel("ERROR")
    if tf.config.threading.get_intra_op_parallelism_threads() == 0:
        configure_threads()


THREADS_ENV = "AUTOPNEUMO_THREADS"


def usable_cores(cgroup_cpu_max: str | Path = "/sys/fs/cgroup/cpu.max") -> int:
    """Cores this process may really use: its CPU affinity, capped by a cgroup CPU quota
    (a container limited to 2 CPUs on a 64-core host reports 64 to ``os.cpu_count``)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = cores or os.cpu_count() or 1
    try:
        quota, period = Path(cgroup_cpu_max).read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def configure_threads(threads: int | None = None) -> int | None:
    """Size TensorFlow's thread pools to the usable cores (``AUTOPNEUMO_THREADS`` overrides):
    ops run on ``threads`` intra-op threads, at most 2 ops at once. Returns the count set,
    or None where TensorFlow already started (the pools are fixed then) or is absent."""
    if "tensorflow" not in sys.modules:
        return None
    import tensorflow as tf

    value = os.environ.get(THREADS_ENV, "").strip()
    if threads is None and value.isdigit() and int(value) > 0:
        threads = int(value)
    threads = threads or usable_cores()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:  # the runtime is already initialised
        return None
    return threads


@contextlib.contextmanager
def kept_random_state() -> Iterator[None]:
    """Give Python's and NumPy's global random generators, and TensorFlow's and Keras'
    global seeds, back as they were: a search or a training seeds them all
    (``keras.utils.set_random_seed``), and a notebook's own draws afterwards would
    otherwise repeat from that seed (``tf.random.uniform`` the same in every run)."""
    import random

    import numpy as np

    python, numpy = random.getstate(), np.random.get_state()
    framework = _framework_seeds()
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
        _restore_framework_seeds(framework)


_KERAS_SEEDS = ("global_random_seed", "global_seed_generator")  # keras.utils.set_random_seed's


def _framework_seeds() -> tuple[Any, Any, dict[str, Any]]:
    """TensorFlow's global seed and its generator of operation seeds, and Keras' global
    seed attributes; their defaults (none set) where either is not loaded yet."""
    seed = rng = None
    if "tensorflow" in sys.modules:
        from tensorflow.python.eager import context

        seed, rng = context.global_seed(), getattr(context.context(), "_rng", None)
    keras_seeds = dict.fromkeys(_KERAS_SEEDS)
    if "keras" in sys.modules:
        from keras.src.backend.common import global_state

        keras_seeds = {k: global_state.get_global_attribute(k) for k in _KERAS_SEEDS}
    return seed, rng, keras_seeds


def _restore_framework_seeds(saved: tuple[Any, Any, dict[str, Any]]) -> None:
    seed, rng, keras_seeds = saved
    if "tensorflow" in sys.modules:
        import tensorflow as tf
        from tensorflow.python.eager import context

        tf.random.set_seed(seed)
        if rng is not None:  # the operation seeds go on from where the caller's were
            context.context()._rng = rng
    if "keras" in sys.modules:
        from keras.src.backend.common import global_state

        for key, value in keras_seeds.items():
            global_state.set_global_attribute(key, value)


CUSTOM_GRADIENT_PREFIX = "CustomGradient-"


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """While a search runs, Python's garbage collector leaves alone the objects that
    existed when it started (``gc.freeze``): TensorFlow's and Keras' modules, the data
    set, the tuner, some 400,000 objects that live as long as the search anyway.

    keras-tuner collects twice before each trial's build (``clear_session`` and a
    ``gc.collect`` of its own) and the search once after each trial; each full collection
    walked all of them, about 0.2 s on a 2-core CPU, 0.6 s a trial. With them frozen a
    collection takes a few milliseconds and still frees every trial's model, graphs and
    cycles (all created later). A collection first, so no garbage of the time before is
    frozen; ``gc.unfreeze`` at the end. Does nothing if something else froze the heap.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def custom_gradient_names() -> set[str]:
    """Names in TensorFlow's global gradient registry that ``tf.custom_gradient`` added."""
    registry = _gradient_registry()
    return {k for k in registry if k.startswith(CUSTOM_GRADIENT_PREFIX)} if registry else set()


@contextlib.contextmanager
def releasing_custom_gradients() -> Iterator[None]:
    """On exit, drop the custom gradients that the tracing inside registered (see
    ``release_custom_gradients``): wrap every ``model.fit``."""
    keep = custom_gradient_names()
    try:
        yield
    finally:
        release_custom_gradients(keep)


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


def predict_batches(model, x, batch_size: int = 256):
    """The model's outputs for ``x``, stacked: one compiled step per ``batch_size`` chunk.

    Same numbers as ``model.predict(x, batch_size=...)``, without the data pipeline,
    iterator and callbacks Keras builds for every ``predict`` call: on 256 validation
    images at 64 px that setup took as long as the arithmetic (CPU, TensorFlow), and a
    trial predicts its validation split after every epoch. Works on any Keras backend.
    A Ctrl-C is raised between batches (``interrupts.defer_ctrl_c``).
    """
    import numpy as np

    x = np.asarray(x)
    if len(x) == 0:  # Keras' predict fails here; an empty result has the output's shape
        return np.zeros((0, *tuple(model.outputs[0].shape[1:])), dtype=np.float32)
    from .interrupts import defer_ctrl_c, raise_if_interrupted

    outputs = []
    with defer_ctrl_c():  # not inside the predict step's tracing: between batches
        for i in range(0, len(x), batch_size):
            raise_if_interrupted()
            outputs.append(np.asarray(model.predict_on_batch(x[i:i + batch_size])))
    return np.concatenate(outputs)
