"""Versions and hardware, recorded with every trial."""

from __future__ import annotations

import functools
import importlib
import os
import platform


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, object]:
    import keras
    import keras_tuner

    from .backend import gpu_names, keras_backend

    backend = keras_backend()
    gpus = gpu_names()
    framework = importlib.import_module(backend)
    return {
        "python": platform.python_version(),
        "backend": backend,
        backend: getattr(framework, "__version__", "unknown"),
        "keras": keras.__version__,
        "keras_tuner": keras_tuner.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "device": "GPU" if gpus else "CPU",
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
