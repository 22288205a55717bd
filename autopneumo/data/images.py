"""Decode image files of any size and colour mode into small uint8 arrays.

JPEGs are decoded at reduced size (``Image.draft``), so a 3000 px scan costs little
memory and time; 16-bit greyscale is scaled, not clipped; CMYK, palette and alpha images
are converted. Files that cannot be decoded are reported, never fatal.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
# Refuse decompression bombs beyond ~200 megapixels; a 10,000 x 10,000 scan still decodes.
Image.MAX_IMAGE_PIXELS = 200_000_000
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class DecodeFailure:
    path: str
    reason: str


def decode_image(path: str | Path, size: int, channels: int = 1) -> np.ndarray:
    """Decode one file into a ``(size, size, channels)`` uint8 array.

    The image is resized to a square without keeping the aspect ratio, as the
    classroom study and the shared 224 px copy of the data set do.
    """
    mode = "L" if channels == 1 else "RGB"
    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft(mode, (size, size))
        im = _to_mode(im, mode)
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
        arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


def _to_mode(im: Image.Image, mode: str) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo or 1.0) * 255.0
        im = Image.fromarray(arr.astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (0, 0, 0, 255))
        im = Image.alpha_composite(background, im)
    return im.convert(mode)


def _decode_chunk(args: tuple[list[str], int, int]) -> list[np.ndarray | DecodeFailure]:
    paths, size, channels = args
    out: list[np.ndarray | DecodeFailure] = []
    for path in paths:
        try:
            out.append(decode_image(path, size, channels))
        except Exception as exc:  # any decoder error means: skip and report this file
            out.append(DecodeFailure(path, f"{type(exc).__name__}: {exc}".splitlines()[0]))
    return out


def decode_many(
    paths: list[str], size: int, channels: int = 1, workers: int | None = None
) -> tuple[np.ndarray, list[int], list[DecodeFailure]]:
    """Decode ``paths`` in parallel threads (Pillow releases the GIL while it decodes).

    Returns the stacked images of the files that decoded, the indices (into ``paths``)
    of those files, and the failures.
    """
    workers = workers or min(os.cpu_count() or 1, 8)
    chunk = max(1, min(256, len(paths) // (workers * 4) + 1))
    chunks = [(paths[i : i + chunk], size, channels) for i in range(0, len(paths), chunk)]
    if workers == 1 or len(chunks) == 1:
        results = [r for c in chunks for r in _decode_chunk(c)]
    else:
        with ThreadPoolExecutor(workers) as pool:
            results = [r for part in pool.map(_decode_chunk, chunks) for r in part]
    images = np.zeros((len(paths), size, size, channels), dtype=np.uint8)
    kept: list[int] = []
    failures: list[DecodeFailure] = []
    for i, result in enumerate(results):
        if isinstance(result, DecodeFailure):
            failures.append(result)
        else:
            images[len(kept)] = result
            kept.append(i)
    return images[: len(kept)], kept, failures
