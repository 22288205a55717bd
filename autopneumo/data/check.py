"""``autopneumo data check``: what is in a data folder, and what is wrong with it."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .images import DecodeFailure, decode_many
from .kermany import CLASSES, SPLITS, scan_kermany


@dataclass(frozen=True)
class DataCheck:
    root: Path
    counts: dict[str, dict[str, int]]  # split -> class -> images
    patients: dict[str, int]  # split -> distinct patients
    patients_train_and_test: int  # patients with images in train/val and in test
    duplicate_groups: list[list[str]]  # byte-identical files
    unreadable: list[DecodeFailure]
    ignored: list[str]
    data_hash: str

    @property
    def duplicates_across_splits(self) -> int:
        return sum(1 for g in self.duplicate_groups if len({p.split("/")[0] for p in g}) > 1)


def check_data(root: str | Path, workers: int | None = None) -> DataCheck:
    scan = scan_kermany(root)
    counts = {s: {c: 0 for c in CLASSES} for s in SPLITS}
    patients: dict[str, set[str]] = defaultdict(set)
    by_md5: dict[str, list[str]] = defaultdict(list)
    for e in scan.entries:
        counts[e.split][CLASSES[e.label]] += 1
        patients[e.split].add(e.patient)
        try:
            by_md5[_md5(scan.root / e.relpath)].append(e.relpath)
        except OSError:
            pass  # reported as unreadable below
    paths = [str(scan.root / e.relpath) for e in scan.entries]
    _, _, failures = decode_many(paths, 16, 1, workers=workers)
    unreadable = [
        DecodeFailure(Path(f.path).relative_to(scan.root).as_posix(), f.reason) for f in failures
    ]
    pool = patients["train"] | patients["val"]
    return DataCheck(
        root=scan.root,
        counts=counts,
        patients={s: len(patients[s]) for s in SPLITS},
        patients_train_and_test=len(pool & patients["test"]),
        duplicate_groups=sorted(g for g in by_md5.values() if len(g) > 1),
        unreadable=unreadable,
        ignored=list(scan.ignored),
        data_hash=scan.digest(),
    )


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()
