"""Patient ids from Kermany file names.

``person1946_bacteria_4874.jpeg`` -> ``person1946``; ``IM-0115-0001.jpeg`` -> ``IM-0115``;
``NORMAL2-IM-1427-0001.jpeg`` -> ``NORMAL2-IM-1427``. The ``NORMAL2-`` batch numbers its
patients on its own, so it keeps its prefix. Several images per patient exist: splitting
by image leaks patients between train and validation.
"""

from __future__ import annotations

import re
from pathlib import PurePath

_PATTERNS = (
    re.compile(r"^(person\d+)_", re.IGNORECASE),
    re.compile(r"^(NORMAL\d+-IM-\d+)-", re.IGNORECASE),
    re.compile(r"^(IM-\d+)-", re.IGNORECASE),
)


def parse_patient_id(filename: str) -> str | None:
    """The patient id encoded in a Kermany file name, or None if the name has none."""
    name = PurePath(filename).name
    for pattern in _PATTERNS:
        match = pattern.match(name)
        if match:
            return _canonical(match.group(1))
    return None


def patient_id_or_file(filename: str) -> str:
    """The patient id, or a per-file id (``file:<name>``) where the name carries none."""
    return parse_patient_id(filename) or f"file:{PurePath(filename).name}"


def _canonical(raw: str) -> str:
    if raw.lower().startswith("person"):
        return "person" + raw[len("person") :]
    return raw.upper()
