"""Typed errors: the type decides what happens (after keras_tuner/errors.py).

- ``UserError`` and its subclasses are mistakes in what the user gave us (a data
  folder, a search-space file, an option). The CLI prints them as one line and exits 2;
  nothing already computed is touched.
- A failed trial is keras-tuner's business (``keras_tuner.errors.FailedTrialError``):
  the trial is marked failed and the search goes on.
- Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


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

    def __init__(self, message: str, records: list | None = None):
        super().__init__(message)
        self.records = records
