"""``autopneumo data check``: what is in a data folder, and what is wrong with it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .images import DecodeFailure, decode_and_hash_many
from .kermany import CLASSES, SPLITS, scan_kermany, with_header_patients
from .patients import patient_id_by_kind


@dataclass(frozen=True)
class DataCheck:
    root: Path
    counts: dict[str, dict[str, int]]  # split -> class -> images
    patients: dict[str, int]  # split -> distinct patients
    patients_train_and_test: int  # patients with images in train/val and in test
    duplicate_groups: list[list[str]]  # byte-identical files
    unreadable: list[DecodeFailure]
    ignored: list[str]
    data_hash: str  # as a loaded data set's: every file's path and bytes (md5)
    colour: list[str] = field(default_factory=list)  # images whose channels differ
    # patients_train_and_test, where personN_bacteria and personN_virus count as two (Kermany's
    # official split appears to number them separately: on the shared copy every one of
    # the patients above is such a pair, and this count is 0)
    patients_train_and_test_by_kind: int = 0

    @property
    def readable(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values()) - len(self.unreadable)

    @property
    def duplicates_across_splits(self) -> int:
        return sum(1 for g in self.duplicate_groups if len({p.split("/")[0] for p in g}) > 1)


def check_data(root: str | Path, workers: int | None = None) -> DataCheck:
    """``autopneumo data check``: counts per split and class, patients (and those in both
    train/val and test), byte-identical duplicates, unreadable and unread files, colour
    images and the data hash, for a Kermany-layout folder (every file is decoded once,
    on ``workers`` threads; None: the usable cores, up to 8)."""
    from ..errors import OptionError
    from ..spaces import positive_int

    if workers is not None and not positive_int(workers):  # not a TypeError after the scan
        raise OptionError(f"workers must be a positive integer or None, got {workers!r}")
    scan = with_header_patients(scan_kermany(root))
    counts = {s: {c: 0 for c in CLASSES} for s in SPLITS}
    patients: dict[str, set[str]] = defaultdict(set)
    by_kind: dict[str, set[str]] = defaultdict(set)
    for e in scan.entries:
        counts[e.split][CLASSES[e.label]] += 1
        # a file id is one file: the same name in train and test is two patients
        patients[e.split].add(f"file:{e.relpath}" if e.patient.startswith("file:") else e.patient)
        by_kind[e.split].add(e.patient if e.patient.startswith("dicom:")  # a header's id
                             else patient_id_by_kind(e.relpath))
    paths = [str(scan.root / e.relpath) for e in scan.entries]
    # the files as they are now, each read once: not the cache, whose key is the files'
    # names, sizes and times, not their bytes
    images, kept, failures, file_md5 = decode_and_hash_many(paths, 16, 3, workers=workers)
    by_md5: dict[str, list[str]] = defaultdict(list)
    for e, md5 in zip(scan.entries, file_md5, strict=True):
        if md5 is not None:  # None: unreadable, reported below
            by_md5[md5].append(e.relpath)
    unreadable = [
        DecodeFailure(Path(f.path).relative_to(scan.root).as_posix(), f.reason) for f in failures
    ]
    pool = patients["train"] | patients["val"]
    return DataCheck(
        root=scan.root,
        counts=counts,
        patients={s: len(patients[s]) for s in SPLITS},
        patients_train_and_test=len(pool & patients["test"]),
        patients_train_and_test_by_kind=len((by_kind["train"] | by_kind["val"]) & by_kind["test"]),
        duplicate_groups=sorted(g for g in by_md5.values() if len(g) > 1),
        unreadable=unreadable,
        ignored=list(scan.ignored),
        data_hash=scan.content_digest(file_md5),
        colour=[scan.entries[kept[i]].relpath for i in np.flatnonzero(_has_colour(images))],
    )


# Mean |R - G| or |G - B| (grey levels, on a 16 px decode) above which an image has colour:
# grey content stored as RGB decodes to R = G = B exactly; JPEG chroma noise stays below 1.
COLOUR_TOLERANCE = 1.0


def _has_colour(images: np.ndarray) -> np.ndarray:
    """Per image: do its channels differ (is ``--channels 3`` more than grey)?"""
    x = images.astype(np.int16)
    spread = np.maximum(np.abs(x[..., 0] - x[..., 1]).mean(axis=(1, 2)),
                        np.abs(x[..., 1] - x[..., 2]).mean(axis=(1, 2)))
    return spread > COLOUR_TOLERANCE

