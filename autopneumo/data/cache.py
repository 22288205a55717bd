"""Decode once, load in milliseconds: a uint8 ``.npz`` per (file list, size, channels)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from ..paths import cache_dir
from .images import DecodeFailure, decode_many
from .kermany import Scan

CACHE_VERSION = 1


@dataclass(frozen=True)
class DecodedImages:
    """Every decodable image of a scan, in scan order."""

    images: np.ndarray  # (N, S, S, C) uint8
    labels: np.ndarray  # (N,) uint8
    splits: np.ndarray  # (N,) str
    files: np.ndarray  # (N,) str, relative to the data root
    patients: np.ndarray  # (N,) str
    failures: tuple[DecodeFailure, ...]
    cache_path: Path
    cache_hit: bool


def cache_key(scan: Scan, size: int, channels: int) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{channels}|{scan.cache_digest()}".encode())
    return h.hexdigest()[:20]


def load_or_decode(
    scan: Scan, size: int, channels: int, folder: Path | None = None, workers: int | None = None
) -> DecodedImages:
    """Load the cache for this scan, size and channels, or build it (in parallel) first."""
    path = (folder or cache_dir()) / f"kermany-{cache_key(scan, size, channels)}.npz"
    if path.exists():
        try:
            return _read(path)
        except (OSError, ValueError, KeyError, EOFError):
            pass  # a damaged cache is rebuilt
    entries = scan.entries
    abs_paths = [str(scan.root / e.relpath) for e in entries]
    images, kept, failures = decode_many(abs_paths, size, channels, workers=workers)
    root = str(scan.root)
    failures = tuple(DecodeFailure(Path(f.path).relative_to(root).as_posix(), f.reason) for f in failures)
    arrays = {
        "images": images,
        "labels": np.array([entries[i].label for i in kept], dtype=np.uint8),
        "splits": np.array([entries[i].split for i in kept], dtype=str),
        "files": np.array([entries[i].relpath for i in kept], dtype=str),
        "patients": np.array([entries[i].patient for i in kept], dtype=str),
        "failed_files": np.array([f.path for f in failures], dtype=str),
        "failed_reasons": np.array([f.reason for f in failures], dtype=str),
    }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError:
        pass  # a read-only cache folder only costs speed
    return _from_arrays(arrays, path, hit=False)


def _read(path: Path) -> DecodedImages:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return _from_arrays(arrays, path, hit=True)


def _from_arrays(arrays: dict[str, np.ndarray], path: Path, hit: bool) -> DecodedImages:
    failures = tuple(
        DecodeFailure(str(p), str(r))
        for p, r in zip(arrays["failed_files"], arrays["failed_reasons"], strict=True)
    )
    return DecodedImages(
        arrays["images"], arrays["labels"], arrays["splits"], arrays["files"],
        arrays["patients"], failures, path, hit,
    )
