"""DICOM files as 8-bit images, the way a viewer shows them (pydicom reads them).

Grey images: the modality LUT (rescale slope and intercept, or a Modality LUT Sequence),
then the file's own VOI: a VOI LUT Sequence, else its first window (LINEAR, LINEAR_EXACT
or SIGMOID, PS3.3 C.11.2.1.2), mapped to 0-255 over the window's output range, so that
an image all above its window is white, not stretched; without a usable window, the
values are stretched from the darkest to the brightest pixel like any 16-bit image.
Pixels equal to the Pixel Padding Value (or within its range) are left out of that
stretch and shown black. MONOCHROME1 (bright = low values) is inverted. Colour: RGB
(pydicom converts YBR), PALETTE COLOR through its lookup table. Refused with the reason:
no pixels, several frames, more pixels than Pillow's decompression-bomb limit, a
compressed transfer syntax without a decoder installed.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SUFFIXES = (".dcm", ".dicom")
MAGIC_AT, MAGIC = 128, b"DICM"  # after the 128-byte preamble (PS3.10 7.1)
PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def is_dicom(source: str | Path | io.BytesIO) -> bool:
    """Whether the file (a path, or its bytes) is a DICOM Part 10 file by its content: the
    preamble and ``DICM``. Hospitals' exports often have no suffix, so the name is not
    asked."""
    if isinstance(source, io.BytesIO):
        with source.getbuffer() as view:
            return bytes(view[MAGIC_AT:MAGIC_AT + 4]) == MAGIC
    try:
        with open(source, "rb") as fh:
            fh.seek(MAGIC_AT)
            return fh.read(4) == MAGIC
    except OSError:
        return False


def named_dicom(source: str | Path | io.BytesIO) -> bool:
    """Whether the file's name says DICOM (``.dcm``, ``.dicom``)."""
    name = getattr(source, "path", source)  # the bytes of a file keep its name
    return isinstance(name, str | Path) and str(name).lower().endswith(SUFFIXES)


def not_part10(source: str | Path | io.BytesIO) -> ValueError:
    return ValueError("named as DICOM but not a DICOM Part 10 file (no 'DICM' marker at byte "
                      "128; export it again with a file meta header)")


def _quiet(function):
    """pydicom warns about odd values as it reads them (lazily, on first access): kept off
    the terminal, where they printed in the middle of predict's table; what matters is
    raised as an error. One filter for pydicom's own warnings, installed once: a
    ``catch_warnings`` block is not thread-safe (files decode on threads) and could leave
    every warning of the process switched off."""
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        _ignore_pydicom_warnings()
        return function(*args, **kwargs)

    return wrapper


_PYDICOM = r"pydicom(\.|$)"


def _ignore_pydicom_warnings() -> None:
    """Installed where missing (a caller's ``catch_warnings`` block may have reset the
    filters since the last file)."""
    if not any(f[0] == "ignore" and f[3] is not None and f[3].pattern == _PYDICOM
               for f in warnings.filters):
        warnings.filterwarnings("ignore", module=_PYDICOM)


@_quiet
def read(source: str | Path | io.BytesIO, pixels: bool = True) -> Any:
    """The dataset (values are read lazily: use it inside a ``_quiet`` function)."""
    import pydicom

    try:
        return pydicom.dcmread(source, stop_before_pixels=not pixels)
    except (struct.error, EOFError):  # an element's header cut off at the end of the file
        raise ValueError("DICOM file cut off inside an element (truncated?)") from None
    except OSError as exc:  # cut inside a sequence of undefined length: pydicom's words
        if "No tag to read" not in str(exc):
            raise
        raise ValueError("DICOM file cut off inside a sequence (truncated?)") from None


def _sop_class(ds: Any) -> str:
    """The name of the file's SOP class ("Digital X-Ray Image Storage - For
    Presentation"...), from the dataset or its file meta header; "" where unknown."""
    meta = getattr(ds, "file_meta", None) or {}
    for uid in (ds.get("SOPClassUID"), meta.get("MediaStorageSOPClassUID")):
        name = str(getattr(uid, "name", "") or "")
        if name and name != str(uid):  # a known class (an unknown UID's name is itself)
            return name
    return ""


def _int(ds: Any, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    try:
        return int(value if value not in (None, "") else default)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"DICOM {keyword} {value!r} is not a number") from None


@_quiet
def patient_id(path: str | Path) -> str | None:
    """The Patient ID (0010,0020) of a DICOM file, read from its header only; ``None``
    where the file has none or is not readable as DICOM (it is then reported where it
    is decoded)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
        value = str(ds.get("PatientID", "") or "").strip()
    except Exception:  # noqa: BLE001 - not DICOM after all, or damaged: the decode says so
        return None
    return value or None


@_quiet
def dimensions(ds: Any) -> tuple[int, int]:
    """(width, height) from the header."""
    if "Rows" not in ds or "Columns" not in ds:
        raise ValueError("DICOM file without Rows and Columns: no image size to read")
    return _int(ds, "Columns"), _int(ds, "Rows")


@_quiet
def image(source: str | Path | io.BytesIO, info: dict | None = None) -> Image.Image:
    """One DICOM image as an 8-bit Pillow image ("L", or "RGB" for colour files);
    ``info`` as ``images.decode_image`` fills it."""
    from .images import stretch_to_uint8  # the one stretch every format shares

    ds = read(source)
    if not any(tag in ds for tag in PIXEL_TAGS):
        if len(ds) == 0:  # no element after the file meta: cut off
            raise ValueError("DICOM file with no data after its file meta header (truncated?)")
        kind = _sop_class(ds)
        if "Image Storage" in kind:  # an image by its class: cut off before its pixels
            raise ValueError(f"DICOM file of an image class ({kind}) without pixel data "
                             "(truncated?)")
        raise ValueError("DICOM file without pixel data (a report or structured document?)")
    frames = _int(ds, "NumberOfFrames", 1)
    if frames != 1:
        raise ValueError(f"DICOM file with {frames} frames; one image per file is read")
    width, height = dimensions(ds)
    if width * height * _int(ds, "SamplesPerPixel", 1) > Image.MAX_IMAGE_PIXELS:
        raise ValueError(f"DICOM image of {width}x{height} px is larger than the "
                         f"{Image.MAX_IMAGE_PIXELS:,}-pixel limit (a decompression bomb?)")
    arr = _pixels(ds)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr, photometric = apply_color_lut(arr, ds), "RGB"
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):  # colour: RGB by now
        if info is not None:
            info["width"], info["height"], info["stored_std"] = width, height, None
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise ValueError(f"DICOM {photometric} image of shape {arr.shape} is not read")
        return Image.fromarray(stretch_to_uint8(arr), "RGB")
    if arr.ndim != 2:
        raise ValueError(f"DICOM {photometric} image of shape {arr.shape} is not read")
    padding = _padding(ds, arr)
    if info is not None:
        info["width"], info["height"] = width, height
        info["stored_std"] = (float(np.std(arr[~padding], dtype=np.float64))
                              if arr.dtype.kind != "f" and _int(ds, "BitsStored", 8) > 8
                              else None)
    if arr.dtype.kind == "f":  # float pixel data: no rescale, no window; stretched
        shown = stretch_to_uint8(arr, keep=~padding)
    else:
        values = _modality(ds, arr)
        voi = _voi(ds, values)
        bits = _int(ds, "BitsStored", 8)
        if voi is not None:
            shown = np.clip(voi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        elif bits <= 8 and not _rescaled(ds):  # 8 bits or fewer: their own full scale
            shown = np.clip(arr.astype(np.float32) * (255.0 / (2 ** bits - 1)) + 0.5,
                            0, 255).astype(np.uint8)
        else:  # more bits than 8, or modality units: darkest to brightest
            shown = stretch_to_uint8(values, keep=~padding)
    if photometric == "MONOCHROME1":
        shown = 255 - shown
    shown[padding] = 0  # padding is no anatomy: black, whatever the interpretation
    return Image.fromarray(shown, "L")


def _pixels(ds: Any) -> np.ndarray:
    try:
        return ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises several kinds; say which syntax
        syntax = ds.file_meta.get("TransferSyntaxUID") if "file_meta" in dir(ds) else None
        name = getattr(syntax, "name", syntax) or "no transfer syntax"
        why = (str(exc).splitlines() or [type(exc).__name__])[0].rstrip(": ")
        short = re.search(r"pixel data is less than expected \((\d+) vs (\d+) bytes\)", why)
        if short:  # pydicom's sentence goes on to guess three causes; a cut file is the usual
            why = f"{short[1]} of the {short[2]} bytes its header asks for (truncated?)"
        hint = ("; pydicom decodes it with pylibjpeg[all] or python-gdcm installed"
                if "plugin" in str(exc) else "")
        raise ValueError(f"DICOM pixel data ({name}) not decoded: {why}{hint}") from exc


def _padding(ds: Any, arr: np.ndarray) -> np.ndarray:
    """Where the stored value is the Pixel Padding Value (or within the range it and
    Pixel Padding Range Limit give): no image there."""
    mask = np.zeros(arr.shape[:2], dtype=bool)
    if "PixelPaddingValue" not in ds or arr.dtype.kind == "f" or arr.ndim != 2:
        return mask
    try:
        pad = int(ds.PixelPaddingValue)
        limit = int(ds.get("PixelPaddingRangeLimit", pad))
    except (TypeError, ValueError):
        return mask
    lo, hi = min(pad, limit), max(pad, limit)
    mask |= (arr >= lo) & (arr <= hi)
    return mask if not mask.all() else np.zeros_like(mask)  # all padding: none at all


def _modality(ds: Any, arr: np.ndarray) -> np.ndarray:
    """Stored values in modality units (float32: a 4096 x 4096 image stays 64 MB)."""
    if "ModalityLUTSequence" in ds:
        from pydicom.pixels import apply_modality_lut

        return np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
    slope, intercept = _rescale(ds)
    values = arr.astype(np.float32)
    if slope != 1.0:
        values *= np.float32(slope)
    if intercept:
        values += np.float32(intercept)
    return values


def _rescale(ds: Any) -> tuple[float, float]:
    """(slope, intercept); a missing, unreadable or zero slope is 1."""
    slope, intercept = _first(ds.get("RescaleSlope")), _first(ds.get("RescaleIntercept"))
    return slope or 1.0, intercept or 0.0


def _rescaled(ds: Any) -> bool:
    return "ModalityLUTSequence" in ds or _rescale(ds) != (1.0, 0.0)


def _voi(ds: Any, values: np.ndarray) -> np.ndarray | None:
    """The file's VOI as display values in [0, 1], or ``None`` where it has no usable one
    (a viewer ignores a window of width below 1)."""
    if "VOILUTSequence" in ds:
        from pydicom.pixels import apply_voi

        try:
            item = ds.VOILUTSequence[0]
            bits = int(item.LUTDescriptor[2])
            out = apply_voi(np.rint(values).astype(np.int64), ds, index=0)
            return np.asarray(out, dtype=np.float32) / float(2 ** bits - 1)
        except Exception:  # noqa: BLE001 - an unusable LUT: fall back to the window
            pass
    centre, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if centre is None or width is None:
        return None
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if function == "SIGMOID":
        if width <= 0:
            return None
        return 1.0 / (1.0 + np.exp(-4.0 * (values - centre) / width))
    if function == "LINEAR_EXACT":
        if width <= 0:
            return None
        return np.clip((values - (centre - width / 2)) / width, 0.0, 1.0)
    if width < 1:
        return None
    if width == 1:  # PS3.3's formula divides by width - 1: a step at the centre
        return (values > centre - 0.5).astype(np.float32)
    return np.clip((values - (centre - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _first(value: Any) -> float | None:
    """A window value, the first of several (a viewer's default)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str | bytes) and hasattr(value, "__len__"):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
