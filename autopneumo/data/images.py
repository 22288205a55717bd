"""Decode image files of any size and colour mode into small uint8 arrays.

JPEGs are decoded at reduced size (``Image.draft``), so a 3000 px scan costs little
memory and time; 16-bit and float greyscale are stretched from their darkest to their
brightest pixel (their bit depth is not recorded in the file), not clipped; an EXIF
orientation tag is applied; CMYK, palette and alpha images are
converted. DICOM files (recognised by their content, whatever their name) are read as a
viewer shows them (``dicom.py``). Files that cannot be decoded are reported, never fatal. Building the cache,
each file is read once: its bytes are hashed (md5, the data set's content hash) and
decoded from memory.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from . import dicom
from .dicom import SUFFIXES as DICOM_SUFFIXES
from .dicom import is_dicom

RASTER_SUFFIXES = (".jpeg", ".jpg", ".png")
IMAGE_SUFFIXES = (*RASTER_SUFFIXES, *DICOM_SUFFIXES)  # and DICOM by content, whatever its name
# Refuse decompression bombs beyond ~200 megapixels; a 10,000 x 10,000 scan still decodes.
Image.MAX_IMAGE_PIXELS = 200_000_000
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class DecodeFailure:
    path: str
    reason: str


class _FileBytes(io.BytesIO):
    """A file's bytes, already read; Pillow's error messages name the file, as when it
    opens the path itself ("cannot identify image file '/data/x.jpeg'")."""

    def __init__(self, data: bytes, path: str):
        super().__init__(data)
        self.path = path

    def __repr__(self) -> str:
        return repr(self.path)


def decode_image(path: str | Path | io.BytesIO, size: int, channels: int = 1,
                 info: dict | None = None) -> np.ndarray:
    """Decode one file (a path, or its bytes in memory) into a ``(size, size, channels)``
    uint8 array.

    The image is resized to a square without keeping the aspect ratio, as the
    classroom study and the shared 224 px copy of the data set do. ``info``, where given,
    receives the file's ``width`` and ``height`` and, for a grey integer image of more
    than 8 bits, ``stored_std``: the spread of its stored values before the stretch to 8
    bits, which turns a flat image with one level of noise into full-contrast noise.
    """
    mode = "L" if channels == 1 else "RGB"
    part10 = is_dicom(path)
    if part10:
        im = _to_mode(dicom.image(path, info), mode)
    elif dicom.named_dicom(path):
        raise dicom.not_part10(path)
    else:
        with Image.open(path) as src:
            _check_raster(src)
            if info is not None:
                info["width"], info["height"] = src.size
                info["stored_std"] = (float(np.std(np.asarray(src, dtype=np.float64)))
                                      if src.mode in ("I;16", "I;16B", "I;16L", "I") else None)
            if src.format == "JPEG":
                src.draft(mode, (size, size))
            orientation = src.getexif().get(ORIENTATION_TAG, 1)
            im = _to_mode(src, mode)  # a new image: it outlives the file
            if orientation in range(2, 9):  # a camera's or scanner's "rotate / mirror me" tag
                im = _upright(im, orientation)
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    arr = np.asarray(im, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


ORIENTATION_TAG = 0x0112  # EXIF


def _check_raster(src: Image.Image) -> None:
    """Refuse what Pillow would decode wrongly or at great cost: an image over
    ``MAX_IMAGE_PIXELS`` (Pillow itself refuses only past twice that, and warns between),
    and a 16-bit colour or grey+alpha PNG, of which Pillow keeps the high byte alone (a
    12-bit radiograph read as 0-15, nearly black)."""
    width, height = src.size
    if width * height > Image.MAX_IMAGE_PIXELS:
        raise ValueError(f"{width}x{height} px is over the {Image.MAX_IMAGE_PIXELS / 1e6:.0f} "
                         "megapixel limit")
    if src.format == "PNG" and src.mode in ("RGB", "RGBA", "LA") and _png_bit_depth(src) == 16:
        raise ValueError(f"a 16-bit {src.mode} PNG: Pillow reads only the high byte of each "
                         "value; save it as a 16-bit greyscale PNG (or 8-bit)")


def _png_bit_depth(src: Image.Image) -> int | None:
    """The bit depth in a PNG's header (IHDR byte 24), read from the open file."""
    fp = getattr(src, "fp", None)
    if fp is None:
        return None
    where = fp.tell()
    try:
        fp.seek(24)
        depth = fp.read(1)
    finally:
        fp.seek(where)
    return depth[0] if depth else None
def suffix_list(files) -> str:
    """The suffixes among ``files``, sorted and comma-separated (``(none)`` for a file
    without one): what a "skipped" or "not read" message names."""
    return ", ".join(sorted({Path(f).suffix.lower() or "(none)" for f in files}))


def stretch_to_uint8(arr: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """8-bit data as it is; anything else stretched from its darkest to its brightest
    value (over the ``keep`` pixels where given: a DICOM file's padding is left out); a
    constant image is black."""
    if arr.dtype == np.uint8 and keep is None:
        return np.ascontiguousarray(arr)
    arr = np.asarray(arr, dtype=np.float64)
    inside = arr[keep] if keep is not None else arr
    lo, hi = (float(inside.min()), float(inside.max())) if inside.size else (0.0, 0.0)
    arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
    return np.clip(arr + 0.5, 0, 255).astype(np.uint8)


def image_dimensions(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding the pixels."""
    if is_dicom(path):
        return dicom.dimensions(dicom.read(path, pixels=False))
    with Image.open(path) as im:  # lazy: reads the header only
        return im.size


def _upright(im: Image.Image, orientation: int) -> Image.Image:
    """The image as its EXIF orientation says it is to be shown (Pillow's table)."""
    t = Image.Transpose
    steps = {2: [t.FLIP_LEFT_RIGHT], 3: [t.ROTATE_180], 4: [t.FLIP_TOP_BOTTOM],
             5: [t.TRANSPOSE], 6: [t.ROTATE_270], 7: [t.TRANSVERSE], 8: [t.ROTATE_90]}
    for step in steps[orientation]:
        im = im.transpose(step)
    return im


def _stretch(im: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit integer or float image as 8 bits, its darkest pixel 0 and its
    brightest 255 (rounded). Such files do not say how many bits the detector stored (a
    12-bit radiograph in a 16-bit PNG holds values up to 4095; Pillow reads no sBIT), so
    any fixed white would be a guess, and a guess from the brightest value alone would
    jump (a one-level change in that pixel could darken the whole image 4x). The stretch
    is continuous in every pixel; a constant image decodes black."""
    return Image.fromarray(stretch_to_uint8(np.asarray(im, dtype=np.float64)), "L")


def _to_mode(im: Image.Image, mode: str) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        im = _stretch(im)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (0, 0, 0, 255))
        im = Image.alpha_composite(background, im)
    return im.convert(mode)


def _failure(path: str, exc: Exception) -> DecodeFailure:
    return DecodeFailure(path, f"{type(exc).__name__}: {exc}".splitlines()[0])


Span = tuple[list[tuple[int, DecodeFailure]], list[str | None] | None]


def _decode_into(out: np.ndarray, paths: list[str], start: int, stop: int, size: int,
                 channels: int, hash_files: bool = False) -> Span:
    """Decode ``paths[start:stop]`` into ``out[start:stop]``; return the failures and, with
    ``hash_files``, the md5 of each file's bytes (``None`` where they cannot be read)."""
    failures = []
    md5s: list[str | None] = []
    for i in range(start, stop):
        md5 = None
        try:
            source: str | _FileBytes = paths[i]
            if hash_files:
                with open(paths[i], "rb") as fh:
                    data = fh.read()
                md5 = hashlib.md5(data).hexdigest()
                source = _FileBytes(data, paths[i])
            out[i] = decode_image(source, size, channels)
        except Exception as exc:  # any decoder error means: skip and report this file
            failures.append((i, _failure(paths[i], exc)))
        md5s.append(md5)
    return failures, md5s if hash_files else None


# The job a forked worker decodes: set just before the pool forks, so the children
# inherit the paths and the shared output buffer instead of receiving them pickled.
_FORKED_JOB: tuple[list[str], np.ndarray, int, int, bool] | None = None
_MIN_FILES_FOR_PROCESSES = 512  # below this, forking costs more than the GIL
_FORK_LOCK = threading.Lock()  # one forked decode at a time per process


def _decode_forked_span(span: tuple[int, int]) -> Span:
    assert _FORKED_JOB is not None
    paths, out, size, channels, hash_files = _FORKED_JOB
    return _decode_into(out, paths, span[0], span[1], size, channels, hash_files)


def _can_fork() -> bool:
    """Forked workers on Linux only (elsewhere fork is unsafe or absent), and not from a
    daemonic process (it may not have children)."""
    import multiprocessing as mp

    return (sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()
            and not mp.current_process().daemon)


def _default_workers() -> int:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return min(usable or os.cpu_count() or 1, 8)


def decode_many(
    paths: list[str], size: int, channels: int = 1, workers: int | None = None
) -> tuple[np.ndarray, list[int], list[DecodeFailure]]:
    """Decode ``paths`` in parallel: forked processes on Linux for large lists (Pillow's
    Python-level work holds the GIL for about a third of each image, so threads reach
    only ~1.2x on two cores), threads elsewhere. Children write straight into a shared
    buffer. Same result whichever way.

    Returns the stacked images of the files that decoded, the indices (into ``paths``)
    of those files, and the failures.
    """
    return _decode_many(paths, size, channels, workers, hash_files=False)[:3]


def decode_and_hash_many(
    paths: list[str], size: int, channels: int = 1, workers: int | None = None
) -> tuple[np.ndarray, list[int], list[DecodeFailure], list[str | None]]:
    """``decode_many``, plus the md5 of every file's bytes, one per path (``None`` where
    the file cannot be read; a file that reads but does not decode has one). Each file is
    read once, in the same workers."""
    return _decode_many(paths, size, channels, workers, hash_files=True)


def _decode_many(paths: list[str], size: int, channels: int, workers: int | None,
                 hash_files: bool):
    global _FORKED_JOB
    workers = workers or _default_workers()
    n = len(paths)
    shape = (n, size, size, channels)
    spans = _spans(n, workers)
    if workers > 1 and n >= _MIN_FILES_FOR_PROCESSES and _can_fork():
        import mmap
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        buffer = mmap.mmap(-1, max(1, int(np.prod(shape))))  # shared with the children
        out = np.frombuffer(buffer, dtype=np.uint8, count=int(np.prod(shape))).reshape(shape)
        with _FORK_LOCK:
            _FORKED_JOB = (paths, out, size, channels, hash_files)
            try:
                with ProcessPoolExecutor(min(workers, len(spans)),
                                         mp_context=mp.get_context("fork")) as pool:
                    parts = list(pool.map(_decode_forked_span, spans))
            except (BrokenProcessPool, OSError):  # no processes here: use threads
                parts = None
            finally:
                _FORKED_JOB = None
        if parts is None:
            out = np.zeros(shape, dtype=np.uint8)
            parts = _decode_threads(out, paths, spans, size, channels, workers, hash_files)
    else:
        out = np.zeros(shape, dtype=np.uint8)
        parts = _decode_threads(out, paths, spans, size, channels, workers, hash_files)
    failed = dict(f for part, _ in parts for f in part)
    md5s = [m for _, part in parts for m in part] if hash_files else None
    if not failed:
        return out, list(range(n)), [], md5s
    kept = [i for i in range(n) if i not in failed]
    return out[kept], kept, [failed[i] for i in sorted(failed)], md5s


def _spans(n: int, workers: int) -> list[tuple[int, int]]:
    step = max(1, min(256, n // (workers * 4) + 1))
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def _decode_threads(out: np.ndarray, paths: list[str], spans: list[tuple[int, int]],
                    size: int, channels: int, workers: int, hash_files: bool) -> list[Span]:
    if workers == 1 or len(spans) <= 1:
        return [_decode_into(out, paths, a, b, size, channels, hash_files) for a, b in spans]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(
            lambda span: _decode_into(out, paths, *span, size, channels, hash_files), spans))
