"""autopneumo: which model family and augmentation policy really work for pneumonia
detection on chest X-rays, searched with KerasTuner and compared with honest numbers.

The same functions the CLI calls::

    import autopneumo
    autopneumo.search(autopneumo.SearchConfig("resnet18", "geometric", data="chest_xray"))
    autopneumo.leaderboard("runs")          # a pandas DataFrame
    autopneumo.ensemble("runs", top=3)      # the top 3 trials averaged, one more row
    autopneumo.write_report("runs", "reports")
    autopneumo.Predictor("winner/").predict(["scan.dcm"])  # a model loaded once
    autopneumo.load_model("winner/model.keras")  # the Keras model (its layers registered)

Bad input raises ``autopneumo.UserError`` (its subclasses name the kind), with the
one-line message the CLI prints. What does not stop the work but bears on its numbers
(images skipped, test images also in training, an option ignored) is issued as an
``autopneumo.AutopneumoWarning`` with the ``warnings`` module.
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def quiet_expected_warnings() -> None:
    """Hide the warnings autopneumo causes on purpose (installed on import):

    - trial models are saved for inference, their optimizer state deliberately not restored;
    - keras-tuner takes the best of each logged metric with ``np.nanmax``, and precision at
      the 0.5 threshold is NaN (undefined, and recorded so) for a model that calls no
      validation image positive at any epoch.
    """
    warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
    warnings.filterwarnings("ignore", message="All-NaN (slice|axis) encountered",
                            category=RuntimeWarning, module="keras_tuner")


quiet_expected_warnings()

__version__ = "0.1.0"

# Bound eagerly: the submodule of the same name would otherwise shadow the function.
from .ensemble import ensemble  # noqa: E402, F401
from .finalize import finalize  # noqa: E402, F401
from .leaderboard import leaderboard  # noqa: E402, F401

_LAZY = {
    "SearchConfig": ("autopneumo.tuning", "SearchConfig"),
    "search": ("autopneumo.tuning", "search"),
    "write_report": ("autopneumo.report", "write_report"),
    "load_dataset": ("autopneumo.data", "load_dataset"),
    "check_data": ("autopneumo.data", "check_data"),
    "predict": ("autopneumo.inference", "predict"),
    "export": ("autopneumo.inference", "export"),
    "Predictor": ("autopneumo.inference", "Predictor"),
    "load_model": ("autopneumo.hypermodel", "load_trained_model"),
    "run_study": ("autopneumo.study", "run_study"),
    "check_shortcuts": ("autopneumo.shortcuts", "check_shortcuts"),
    "UserError": ("autopneumo.errors", "UserError"),
    **{name: ("autopneumo.errors", name) for name in (
        "OptionError", "DataError", "SpaceError", "RunsError", "SearchError", "DownloadError",
        "AutopneumoWarning", "AutopneumoNote")},
    "FAMILIES": ("autopneumo.registry", "FAMILIES"),
    "POLICIES": ("autopneumo.registry", "POLICIES"),
}


def __getattr__(name: str):
    """Import lazily: TensorFlow loads only for the commands that train."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'autopneumo' has no attribute {name!r}")


__all__ = sorted([*_LAZY, "ensemble", "finalize", "leaderboard"])


def __dir__() -> list[str]:
    """The lazy names too (a notebook's tab completion lists them before first use)."""
    return sorted(set(globals()) | set(__all__))
