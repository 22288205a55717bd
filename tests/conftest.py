"""Shared fixtures: tiny Kermany-layout folders the tests make themselves, and the real
shared data set where it exists (``AUTOPNEUMO_TEST_DATA`` or ``../shared/data/chest_xray``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("AUTOPNEUMO_TEST_DATA", REPO.parent / "shared" / "data" / "chest_xray"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """No test writes to the user's cache folder."""
    old = os.environ.get("AUTOPNEUMO_CACHE")
    os.environ["AUTOPNEUMO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("AUTOPNEUMO_CACHE", None)
    else:
        os.environ["AUTOPNEUMO_CACHE"] = old


def xray_like(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A grey image; PNEUMONIA (1) gets a bright blob in one lung field."""
    img = rng.normal(90, 20, (size, size))
    yy, xx = np.mgrid[:size, :size]
    for cx in (0.3, 0.7):  # two darker lung fields
        img -= 40 * np.exp(-(((xx / size - cx) / 0.15) ** 2 + ((yy / size - 0.5) / 0.3) ** 2))
    if label:
        cx = rng.choice([0.3, 0.7])
        img += 90 * np.exp(-(((xx / size - cx) / 0.1) ** 2 + ((yy / size - 0.55) / 0.12) ** 2))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_kermany(root: Path, patients: dict[str, int] | None = None, images_per_patient: int = 2,
                 size: int = 40, seed: int = 0) -> Path:
    """Write ``{train,val,test}/{NORMAL,PNEUMONIA}`` with Kermany-style file names."""
    patients = patients or {"train": 10, "val": 1, "test": 4}
    rng = np.random.default_rng(seed)
    pid = 1
    for split, n in patients.items():
        for label, cls in enumerate(("NORMAL", "PNEUMONIA")):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(n):
                for k in range(images_per_patient):
                    if label:
                        name = f"person{pid}_bacteria_{pid * 10 + k}.jpeg"
                    else:
                        name = f"IM-{pid:04d}-{k + 1:04d}.jpeg"
                    side = size + int(rng.integers(0, 12))  # mixed sizes
                    Image.fromarray(xray_like(label, side, rng), "L").save(folder / name, quality=90)
                pid += 1
    return root


@pytest.fixture(scope="session")
def tiny_kermany(tmp_path_factory) -> Path:
    return make_kermany(tmp_path_factory.mktemp("kermany"))


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "train").is_dir():
        pytest.skip(f"shared Kermany data not found at {SHARED_DATA}")
    return SHARED_DATA
