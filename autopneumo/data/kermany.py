"""Scan a folder in the Kermany layout: ``{train,val,test}/{NORMAL,PNEUMONIA}/*``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..errors import DataError
from . import dicom
from .images import IMAGE_SUFFIXES, RASTER_SUFFIXES, is_dicom
from .patients import patient_id_or_file

SPLITS = ("train", "val", "test")
CLASSES = ("NORMAL", "PNEUMONIA")  # label = index: PNEUMONIA = 1
REQUIRED_SPLITS = ("train", "test")
UNREADABLE = "unreadable"  # in the data hash, for a file whose bytes could not be read


class ImageFileEntry(NamedTuple):
    """One image file of a scan. A named tuple, not a frozen dataclass: a scan builds one
    per file (5,856 on Kermany) on every load, and a frozen dataclass's ``__init__``
    costs about 5x a tuple's."""

    split: str
    label: int
    relpath: str  # relative to the data root, with "/" separators
    bytes: int
    patient: str
    mtime_ns: int = 0  # part of the cache key (an edited file is decoded again), not a hash
    # and the status-change time, which no program can set back: a file replaced by one of
    # the same size whose modification time was then restored is decoded again too
    ctime_ns: int = 0


@dataclass(frozen=True)
class Scan:
    root: Path
    entries: tuple[ImageFileEntry, ...]
    ignored: tuple[str, ...]  # neither images by their suffix nor DICOM by content

    def cache_digest(self) -> str:
        """Like ``digest`` plus modification and status-change times: a file edited or
        replaced is decoded again (so is a copied folder: its files have new times)."""
        h = hashlib.sha256(self.digest().encode())
        for e in self.entries:
            h.update(f"{e.mtime_ns}\t{e.ctime_ns}\n".encode())
        return h.hexdigest()

    def digest(self) -> str:
        """A hash of the file list and sizes. The data hash of records written before
        ``content_digest`` (kept as ``data_list_hash``, so that they still match)."""
        h = hashlib.sha256()
        for e in self.entries:
            h.update(f"{e.relpath}\t{e.bytes}\n".encode())
        return h.hexdigest()

    def content_digest(self, file_md5: Sequence[str | None]) -> str:
        """The data hash: every image file's relative path and the md5 of its bytes (one
        per entry, in scan order; ``None`` for a file that could not be read). Files that
        do not decode count too; image size and channels do not."""
        if len(file_md5) != len(self.entries):
            raise ValueError(f"{len(file_md5)} file hashes for {len(self.entries)} files")
        h = hashlib.sha256(b"content\n")
        for e, md5 in zip(self.entries, file_md5, strict=True):
            h.update(f"{e.relpath}\t{md5 or UNREADABLE}\n".encode())
        return h.hexdigest()


def scan_kermany(root: str | Path) -> Scan:
    """List the image files of a Kermany-layout folder; raise ``DataError`` if it is not one."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"{root}: expected a Kermany folder or a MedMNIST .npz file")
    missing = [s for s in REQUIRED_SPLITS if not (root / s).is_dir()]
    if missing:
        raise DataError(
            f"{root}: not in the Kermany layout (missing {', '.join(s + '/' for s in missing)}); "
            "expected {train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg"
        )
    entries: list[ImageFileEntry] = []
    ignored: list[str] = []
    for split in SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        for label, cls in enumerate(CLASSES):
            cls_dir = split_dir / cls
            if not cls_dir.is_dir():
                raise DataError(f"{cls_dir}: class folder missing (expected NORMAL/ and PNEUMONIA/)")
            found = 0
            for item in sorted(_list_files(cls_dir), key=lambda d: d.name):
                rel = f"{split}/{cls}/{item.name}"
                if not item.name.lower().endswith(IMAGE_SUFFIXES) and not is_dicom(item.path):
                    ignored.append(rel)  # DICOM by content is read whatever its name
                    continue
                try:
                    st = item.stat()
                    size, mtime, ctime = st.st_size, st.st_mtime_ns, st.st_ctime_ns
                except OSError:
                    size, mtime, ctime = -1, 0, 0
                entries.append(
                    ImageFileEntry(split, label, rel, size, patient_id_or_file(item.name),
                                   mtime, ctime)
                )
                found += 1
            if found == 0:
                raise DataError(f"{cls_dir}: class folder has no images "
                                f"({', '.join(IMAGE_SUFFIXES)})")
    return Scan(root, tuple(_unique_file_patients(entries)), tuple(ignored))


def _unique_file_patients(entries: list[ImageFileEntry]) -> list[ImageFileEntry]:
    """A file whose name carries no patient is its own patient: ``file:<name>``, or
    ``file:<path>`` where another folder on its side (train + val, or test) holds a file
    of that name (``NORMAL/0001.png`` and ``PNEUMONIA/0001.png`` are two patients, not one
    of both classes). Names that occur once a side keep the id they had before paths were
    needed, and so the validation split. (A name in train and in test keeps its id on
    both sides; ``data check`` counts such files apart, as every file id is one file.)"""
    from collections import Counter

    def side(e: ImageFileEntry) -> bool:
        return e.split == "test"

    names = Counter((side(e), e.patient) for e in entries if e.patient.startswith("file:"))
    shared = {key for key, n in names.items() if n > 1}
    if not shared:  # Kermany: every name carries its patient
        return entries
    return [e._replace(patient=f"file:{e.relpath}") if (side(e), e.patient) in shared else e
            for e in entries]


def with_header_patients(scan: Scan) -> Scan:
    """The scan with each DICOM file grouped by its header's Patient ID (``dicom:<id>``)
    where it has one: the header says who the patient is, a DICOM file's name does not
    (hospital exports name files by number or UID, and OsiriX-style ``IM-0001-0001.dcm``
    numbers series, not patients). Other files keep the id in their Kermany name. A scan
    itself reads names only (a cache hit then opens no file); the cache build, which reads
    every file anyway, and ``data check`` call this, and the cache index keeps the ids."""
    entries = list(scan.entries)
    for i, e in enumerate(entries):
        if not e.relpath.lower().endswith(RASTER_SUFFIXES):  # DICOM: by name or content
            found = dicom.patient_id(scan.root / e.relpath)
            if found:
                entries[i] = e._replace(patient=f"dicom:{found}")
    return Scan(scan.root, tuple(entries), scan.ignored)


def _list_files(folder: Path) -> list[os.DirEntry]:
    """Plain files (and links to files) directly in ``folder``; link loops are skipped."""
    out = []
    try:
        with os.scandir(folder) as it:
            for item in it:
                try:
                    if item.is_file():
                        out.append(item)
                except OSError:  # e.g. a symlink loop
                    continue
    except PermissionError as exc:
        raise DataError(f"{folder}: cannot list folder ({exc.strerror})") from exc
    return out
