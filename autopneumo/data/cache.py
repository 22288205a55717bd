"""Decode once, load in milliseconds: per (file list, size, channels) a uint8 ``.npy`` of
the images, memory-mapped on load, and a small JSON index of labels, splits, files,
patients and decode failures, and the data set's content hash (md5 of every file's bytes,
taken while decoding; a cache hit reads no image file). The index is written last, so it
marks a complete cache."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_open, atomic_write_json
from ..paths import cache_dir
from .images import RASTER_SUFFIXES, DecodeFailure, decode_and_hash_many
from .kermany import Scan, with_header_patients

# 3: the content data hash in the index; 4: 16-bit images by bit depth; 5: EXIF orientation;
# 6: 16-bit and float images stretched from their darkest to their brightest pixel
# 7: patients without an id in the name are their path's where the name is not unique;
# 8: the groups of byte-identical files (the split keeps each group on one side)
CACHE_VERSION = 8
INDEX_KEYS = ("labels", "splits", "files", "patients", "digests")


@dataclass(frozen=True)
class DecodedImages:
    """Every decodable image of a scan, in scan order."""

    images: np.ndarray  # (N, S, S, C) uint8, read-only (memory-mapped on a cache hit)
    labels: np.ndarray  # (N,) uint8
    splits: np.ndarray  # (N,) str
    files: np.ndarray  # (N,) str, relative to the data root
    patients: np.ndarray  # (N,) str
    digests: np.ndarray  # (N,) str, md5 of each decoded image's pixels (finds duplicates)
    same_files: tuple[tuple[int, ...], ...]  # rows whose files hold the same bytes
    failures: tuple[DecodeFailure, ...]
    data_hash: str  # Scan.content_digest: every scanned file's path and bytes (md5)
    cache_path: Path  # the images' .npy; its index is the same name with .json
    cache_hit: bool


def cache_key(scan: Scan, size: int, channels: int) -> str:
    dicom = any(not e.relpath.lower().endswith(RASTER_SUFFIXES) for e in scan.entries)
    h = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{channels}|{decoders(dicom)}|"
                       f"{scan.cache_digest()}".encode())
    return h.hexdigest()[:20]


@functools.lru_cache(maxsize=2)
def decoders(dicom: bool = True) -> str:
    """The versions of what decodes the pixels (Pillow, its libjpeg, and pydicom where the
    scan holds DICOM files): the cache outlives an upgrade of the environment, after which
    ``predict`` decodes with the new libraries; a cache built by the old ones is decoded
    again. (pydicom's version costs a metadata lookup, about 5 ms of a 30 ms cache hit.)"""
    import PIL
    from PIL import features

    key = f"pillow {PIL.__version__} jpeg {features.version('jpg')}"
    if not dicom:
        return key
    import importlib.metadata

    try:
        pydicom = importlib.metadata.version("pydicom")
    except importlib.metadata.PackageNotFoundError:
        pydicom = None
    return f"{key} pydicom {pydicom}"


def load_or_decode(
    scan: Scan, size: int, channels: int, folder: Path | None = None, workers: int | None = None
) -> DecodedImages:
    """Load the cache for this scan, size and channels, or build it (in parallel) first."""
    path = (folder or cache_dir()) / f"kermany-{cache_key(scan, size, channels)}.npy"
    if path.exists():
        try:
            return _read(path, size, channels)
        except (OSError, ValueError, KeyError, TypeError, EOFError):
            pass  # a damaged or incomplete cache is rebuilt
    entries = with_header_patients(scan).entries  # DICOM files' Patient IDs, kept in the index
    abs_paths = [str(scan.root / e.relpath) for e in entries]
    images, kept, failures, file_md5 = decode_and_hash_many(abs_paths, size, channels,
                                                            workers=workers)
    root = str(scan.root)
    failures = tuple(DecodeFailure(Path(f.path).relative_to(root).as_posix(), f.reason) for f in failures)
    index = {
        "version": CACHE_VERSION,
        "shape": list(images.shape),
        "labels": [int(entries[i].label) for i in kept],
        "splits": [entries[i].split for i in kept],
        "files": [entries[i].relpath for i in kept],
        "patients": [entries[i].patient for i in kept],
        "digests": [hashlib.md5(image.tobytes()).hexdigest() for image in images],
        "same_files": _same_files(file_md5, kept),
        "failures": [[f.path, f.reason] for f in failures],
        # every file's path and md5 (the md5s themselves are not kept: a hit parses the
        # index, and 5,856 more strings cost it time)
        "data_hash": scan.content_digest(file_md5),
    }
    try:
        with atomic_open(path) as fh:
            np.save(fh, images, allow_pickle=False)
        atomic_write_json(_index_path(path), index)
    except OSError:
        pass  # a read-only cache folder only costs speed
    return _decoded(images, index, path, hit=False)


def _same_files(file_md5: list[str | None], kept: list[int]) -> list[list[int]]:
    """The rows (positions in ``kept``) whose files hold the same bytes, groups of two or
    more: one scan filed twice. By the files' bytes, so the groups, and the split that
    keeps each on one side, are the same at every image size and with any decoder."""
    rows: dict[str, list[int]] = {}
    for row, i in enumerate(kept):
        if file_md5[i] is not None:
            rows.setdefault(file_md5[i], []).append(row)
    return [group for group in rows.values() if len(group) > 1]


def _index_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _read(path: Path, size: int, channels: int) -> DecodedImages:
    index = json.loads(_index_path(path).read_text(encoding="utf-8"))
    images = np.load(path, mmap_mode="r", allow_pickle=False)  # ValueError if damaged/short
    n = len(index["files"])
    if (index.get("version") != CACHE_VERSION or images.dtype != np.uint8
            or images.shape != (n, size, size, channels) or list(images.shape) != index["shape"]
            or any(len(index[k]) != n for k in INDEX_KEYS)
            or not isinstance(index["data_hash"], str)
            or not all(0 <= int(i) < n for group in index["same_files"] for i in group)):
        raise ValueError(f"{path}: cache does not match its index")
    for i in np.unique(np.linspace(0, n - 1, min(n, SPOT_CHECKS)).astype(int)) if n else ():
        if hashlib.md5(images[i].tobytes()).hexdigest() != index["digests"][i]:
            raise ValueError(f"{path}: image {i} differs from its digest (damaged)")
    return _decoded(images, index, path, hit=True)


SPOT_CHECKS = 64  # images a hit checks against their digests: about 1 ms at 128 px


def _decoded(images: np.ndarray, index: dict, path: Path, hit: bool) -> DecodedImages:
    return DecodedImages(
        images,
        np.asarray(index["labels"], dtype=np.uint8),
        np.asarray(index["splits"], dtype=str),
        np.asarray(index["files"], dtype=str),
        np.asarray(index["patients"], dtype=str),
        np.asarray(index["digests"], dtype=str),
        tuple(tuple(int(i) for i in group) for group in index["same_files"]),
        tuple(DecodeFailure(str(p), str(r)) for p, r in index["failures"]),
        index["data_hash"],
        path,
        hit,
    )
