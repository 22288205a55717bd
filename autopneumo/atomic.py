"""Atomic file writes: a crash never leaves a truncated JSON, CSV or HTML behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .locking import process_alive


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temp file in the same folder, fsync it, then rename over ``path``."""
    with atomic_open(path) as fh:
        fh.write(data)
    return Path(path)


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` complete or not at all (temp + fsync + rename),
    for writers that stream (``numpy.save``) instead of building the bytes in memory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{HOST_TAG}-{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)  # whose it is, for _remove_dead_temps
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide reports from teammates
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_model(model, path: str | Path) -> str:
    """``model.save`` to a temporary ``.keras`` beside ``path``, renamed over it: Keras
    writes the zip in place, so a kill (or a reader) mid-save met a truncated model under
    a finished record. Returns the sha256 of the bytes saved (the record keeps it, so a
    reader can tell this model from one saved over it later)."""
    import hashlib

    path = Path(path)
    _remove_dead_temps(path)
    tmp = path.with_name(f".{path.name}.{HOST_TAG}-{os.getpid()}.keras")  # Keras wants .keras
    try:
        model.save(tmp)
        with open(tmp, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest


def _host_tag() -> str:
    """This host, and its pid namespace where it has one (two containers may share a
    hostname and a folder): whose temp files a pid can be checked for."""
    try:
        space = "".join(c for c in os.readlink("/proc/self/ns/pid") if c.isdigit())
    except OSError:
        space = ""
    name = "".join(c if c.isalnum() or c == "-" else "_" for c in socket.gethostname())
    return f"{name or 'host'}_{space}" if space else name or "host"


HOST_TAG = _host_tag()


def left_by_dead_writers(folder: Path, prefix: str) -> list[Path]:
    """What writers on this host whose process is gone (killed mid-write) left in
    ``folder``: entries named ``{prefix}{HOST_TAG}-{pid}``, with or without a suffix."""
    pattern = re.compile(rf"^{re.escape(prefix)}{re.escape(HOST_TAG)}-(\d+)(?:\..*)?$")
    try:
        names = [e.name for e in os.scandir(folder)]
    except OSError:
        return []
    found = [(name, pattern.match(name)) for name in names]
    return [folder / name for name, match in found
            if match and int(match[1]) != os.getpid() and not process_alive(int(match[1]))]


def _remove_dead_temps(path: Path) -> None:
    """Temp files of ``path`` left by killed writers: up to a whole cache file each (96 MB
    at 128 px), never cleaned before."""
    for temp in left_by_dead_writers(path.parent, f".{path.name}."):
        with contextlib.suppress(OSError):
            temp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, strict: bool = False) -> Path:
    """``obj`` as indented JSON. ``strict``: a file meant to leave the project (a model
    card), so standard JSON: NaN and infinities (undefined metrics) become ``null``;
    Python's own ``NaN`` token is not JSON, and other readers refuse the file."""
    if strict:
        return atomic_write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=True,
                                                  default=_jsonable, allow_nan=False))
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable))


def _finite(value: Any) -> Any:
    import math

    import numpy as np

    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
