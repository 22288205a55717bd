"""Where things live: data, cache, runs and search spaces (all overridable)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "AUTOPNEUMO_DATA"
CACHE_ENV = "AUTOPNEUMO_CACHE"
SPACES_ENV = "AUTOPNEUMO_SPACES"
DEFAULT_RUNS_DIR = Path("runs")
DEFAULT_REPORT_DIR = Path("reports")


def default_data_path() -> Path | None:
    """The data path from ``AUTOPNEUMO_DATA``, or None."""
    value = os.environ.get(DATA_ENV, "").strip()
    return Path(value) if value else None


def cache_dir() -> Path:
    """Folder for decoded-image caches and downloads (``AUTOPNEUMO_CACHE``)."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value:
        return Path(value)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "autopneumo"


def spaces_dir() -> Path:
    """The folder of search-space files shipped with autopneumo.

    In a source checkout (editable install) that is ``search_spaces/`` beside the
    package; in a wheel it is packaged as ``autopneumo/search_spaces``.
    """
    value = os.environ.get(SPACES_ENV, "").strip()
    if value:
        return Path(value)
    here = Path(__file__).resolve().parent
    for candidate in (here / "search_spaces", here.parent / "search_spaces"):
        if candidate.is_dir():
            return candidate
    return here.parent / "search_spaces"


def require_runs_dir(runs_dir) -> Path:
    """The runs folder, which must exist: a one-line error says if it is missing or a file."""
    from .errors import OptionError, RunsError

    if not isinstance(runs_dir, str | os.PathLike):  # None from Python: not pathlib's TypeError
        raise OptionError(f"--runs-dir must be a folder's path, got {runs_dir!r}")
    runs_dir = Path(runs_dir)
    if runs_dir.is_file():
        raise RunsError(f"--runs-dir {runs_dir}: is a file, not a runs folder")
    if not runs_dir.is_dir():
        raise RunsError(f"runs folder not found: {runs_dir}")
    return runs_dir


def files_named(root, name: str) -> list[Path]:
    """Every entry called ``name`` below ``root`` (any depth), sorted by path. A folder
    that goes as the walk reaches it (another command's export staging folder renamed,
    finalize's old ensemble removed) is passed over: ``Path.rglob`` raised
    FileNotFoundError for it, so a leaderboard or report failed while another command ran."""
    found = []
    # Path(): '' is the current folder, as for rglob (os.walk('') lists nothing)
    for folder, dirs, files in os.walk(Path(root)):  # no onerror: a folder gone is skipped
        found.extend(Path(folder) / entry for entry in (*dirs, *files) if entry == name)
    return sorted(found)
