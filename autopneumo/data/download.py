"""Checksum-verified downloads that also accept ``file://`` URLs (how the tests run them)."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..atomic import atomic_write_bytes
from ..errors import DownloadError
from ..paths import cache_dir

PNEUMONIAMNIST_URL = "https://zenodo.org/records/10519652/files/pneumoniamnist.npz?download=1"
PNEUMONIAMNIST_MD5 = "28209eda62fecd6e6a2d98b1501bb15f"
KERMANY_HINT = (
    "point autopneumo at a Kermany folder instead: make demo DATA=/path/to/chest_xray "
    "(or set AUTOPNEUMO_DATA, or pass --data)"
)


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes, read in blocks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()


def md5_of(path: Path) -> str:
    return file_digest(path, "md5")


def download(url: str, dest: str | Path, md5: str | None, timeout: float = 30.0,
             check: Callable[[bytes], str | None] | None = None) -> Path:
    """Fetch ``url`` into ``dest`` unless a copy with the right checksum is there already.
    Without a checksum nothing there can be trusted to be ``url``'s: it is fetched again.
    ``check`` says what is wrong with the fetched bytes (None: nothing); a download it
    refuses, or whose checksum differs, leaves ``dest`` as it was."""
    dest = Path(dest)
    if md5 is not None and dest.exists() and md5_of(dest) == md5:
        return dest
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot download {url} ({reason}); {KERMANY_HINT}") from exc
    actual = hashlib.md5(data).hexdigest()
    if md5 is not None and actual != md5:
        raise DownloadError(f"checksum mismatch for {url}: md5 {actual}, expected {md5}")
    problem = check(data) if check is not None else None
    if problem is not None:
        raise DownloadError(f"{url}: {problem}; {dest} is left as it was")
    return atomic_write_bytes(dest, data)


MEDMNIST_KEYS = tuple(f"{split}_{part}" for split in ("train", "val", "test")
                      for part in ("images", "labels"))


def medmnist_problem(data: bytes) -> str | None:
    """What keeps ``data`` from being a MedMNIST .npz (a zip of the six arrays), or None."""
    import io
    import zipfile

    import numpy as np

    if not zipfile.is_zipfile(io.BytesIO(data)):
        return "not a .npz archive (the MedMNIST format)"
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            missing = [k for k in MEDMNIST_KEYS if k not in npz.files]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        return f"not a readable .npz file ({exc})"
    return f"a .npz without the MedMNIST key {missing[0]!r}" if missing else None


def download_pneumoniamnist(
    url: str = PNEUMONIAMNIST_URL, md5: str | None = PNEUMONIAMNIST_MD5, folder: Path | None = None
) -> Path:
    """PneumoniaMNIST (MedMNIST v2, 28 px) into the cache folder; returns the .npz path.
    What is fetched must be a .npz with the MedMNIST keys (and match ``md5`` where given),
    or the cached copy is kept and a DownloadError raised."""
    folder = folder or cache_dir() / "downloads"
    return download(url, folder / "pneumoniamnist.npz", md5, check=medmnist_problem)


__all__ = ["download", "download_pneumoniamnist", "file_digest", "md5_of"]
