"""Typed errors: the type decides what happens (after keras_tuner/errors.py).

- ``UserError`` and its subclasses are mistakes in what the user gave us (a data
  folder, a search-space file, an option). The CLI prints them as one line and exits 2;
  nothing already computed is touched.
- A failed trial is keras-tuner's business (``keras_tuner.errors.FailedTrialError``):
  the trial is marked failed and the search goes on.
- Anything else is a bug and keeps its traceback.

What does not stop a command but must reach whoever reads its numbers (images skipped, test
images also in training, an option ignored) is an ``AutopneumoWarning`` issued with the
``warnings`` module: the CLI prints each as one ``warning:`` (or ``note:``) line on stderr;
from Python it can be filtered, recorded or turned into an error like any warning.
"""

from __future__ import annotations

import warnings


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""

    exit_code = 2


class DataError(UserError):
    """The data folder or file cannot be used."""


class SpaceError(UserError):
    """A search-space file is invalid; the message names the file and the key."""


class OptionError(UserError):
    """A command-line or API option is out of range or unknown."""


class RunsError(UserError):
    """A runs folder or project cannot be used (e.g. options differ from its first run)."""


class DownloadError(UserError):
    """A download failed or its checksum did not match."""


class SearchError(UserError):
    """The search could not go on (e.g. every trial failed); exit code 1. ``records``: the
    project's trial records where the search ran to its end with none completed."""

    exit_code = 1

    def __init__(self, message: str, records: list | None = None, summary=None):
        super().__init__(message)
        self.records = records
        self.summary = summary  # finalize: the summary of the seeds that finished


class AutopneumoWarning(UserWarning):
    """Something a reader of the numbers must know that did not stop the command; the CLI
    prints it as ``warning: MESSAGE``."""

    label = "warning"


class AutopneumoNote(AutopneumoWarning):
    """What autopneumo did on its own that the user may want to know (a stale figure
    removed, a trial begun as a search was killed run again); the CLI prints ``note: ...``."""

    label = "note"


def warn(message: str, category: type[AutopneumoWarning] = AutopneumoWarning) -> None:
    """Issue ``message`` as an autopneumo warning (``stacklevel`` names the caller's caller:
    the library function whose work it concerns)."""
    warnings.warn(message, category, stacklevel=3)
