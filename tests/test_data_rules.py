"""The data review of the twentieth session: each test failed before its fix.
Everything is built in tmp_path."""

from __future__ import annotations

import shutil
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autopneumo.data import check_data, load_dataset
from autopneumo.data.images import decode_image, decode_many
from autopneumo.data.kermany import scan_kermany
from autopneumo.data.splits import patient_split


def _png(path: Path, value: int, size: int = 24) -> None:
    rng = np.random.default_rng(value)
    arr = np.clip(rng.normal(value, 30, (size, size)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "L").save(path)


def _layout(root: Path, files: dict[str, list[str]]) -> Path:
    """files: 'split/CLASS' -> file names; every file gets its own pixels."""
    k = 0
    for folder, names in files.items():
        for name in names:
            k += 1
            _png(root / folder / name, 10 + 7 * k)
    return root


def test_one_file_name_in_two_folders_is_two_patients(tmp_path):
    """F1: the per-file id was the bare name, so NORMAL/0001.png and PNEUMONIA/0001.png
    (a data set numbered per folder) were one patient of both classes, and a test file of
    that name made `data check` report a patient in train/val and test."""
    root = _layout(tmp_path / "d", {
        "train/NORMAL": ["0001.png", "0002.png"], "train/PNEUMONIA": ["0001.png", "0002.png"],
        "test/NORMAL": ["0001.png"], "test/PNEUMONIA": ["0001.png"]})
    patients = {e.relpath: e.patient for e in scan_kermany(root).entries}
    assert patients["train/NORMAL/0001.png"] == "file:train/NORMAL/0001.png"
    assert len(set(patients.values())) == 6
    result = check_data(root, workers=1)
    assert result.duplicate_groups == []
    assert result.patients_train_and_test == result.patients_train_and_test_by_kind == 0


@pytest.mark.parametrize("fraction", [0.2, 0.3, 0.4, 0.45])
def test_the_validation_share_follows_the_fraction_when_patients_have_both_classes(fraction):
    """F2: with any patient of both classes the split kept one fold of round(1 / f):
    0.4 gave half the patients to validation, 0.3 a third."""
    rng = np.random.default_rng(0)
    labels = (rng.random(600) < 0.5).astype(int)
    patients = np.repeat([f"p{i}" for i in range(200)], 3)
    train, val = patient_split(labels, patients, fraction, 0)
    assert abs(len(val) / len(labels) - fraction) < 0.02
    assert not set(patients[train]) & set(patients[val])
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(600))


def test_a_tiny_data_set_with_a_two_class_patient_splits_by_patient(tmp_path):
    """F3: five patients (enough for 20 %), one of them in both class folders (a DICOM
    Patient ID, say; here one Kermany id), three images a class: scikit-learn's
    StratifiedGroupKFold raised its "n_splits=5 cannot be greater than the number of
    members in each class" traceback."""
    root = _layout(tmp_path / "d", {
        "train/NORMAL": ["IM-0001-0001.png", "IM-0002-0001.png", "IM-0003-0001.png"],
        "train/PNEUMONIA": ["IM-0003-0002.png", "person4_virus_1.png", "person5_virus_1.png"],
        "test/NORMAL": ["IM-0100-0001.png"], "test/PNEUMONIA": ["person100_virus_1.png"]})
    ds = load_dataset(root, image_size=8, channels=1, val_fraction=0.2, seed=0,
                      cache_folder=tmp_path / "cache")
    assert not set(ds.train.patients) & set(ds.val.patients)
    assert sorted(ds.val.y.tolist()) == [0, 1]  # one patient of each one-class stratum
    assert "IM-0003" in set(ds.train.patients)  # the only mixed patient stays in train


def test_identical_images_under_two_patient_ids_stay_on_one_side(tmp_path):
    """F5: one scan filed under two ids (as NORMAL2-IM-0095 and -0096 in the official
    test split) landed in training and validation alike, and nothing said so."""
    from autopneumo.errors import AutopneumoNote
    from autopneumo.tuning import _warn_about_data

    names = {"train/NORMAL": [f"IM-{p:04d}-0001.png" for p in range(1, 21)],
             "train/PNEUMONIA": [f"person{p}_bacteria_1.png" for p in range(1, 21)],
             "test/NORMAL": ["IM-0500-0001.png"], "test/PNEUMONIA": ["person500_virus_1.png"]}
    root = _layout(tmp_path / "d", names)
    pneumonia = root / "train" / "PNEUMONIA"
    for p in range(2, 11):  # patients 1-10 hold one image between them
        shutil.copy(pneumonia / "person1_bacteria_1.png", pneumonia / f"person{p}_bacteria_1.png")
    for seed in range(4):
        ds = load_dataset(root, image_size=8, channels=1, val_fraction=0.25, seed=seed,
                          cache_folder=tmp_path / "cache")
        train = {x.tobytes() for x in ds.train.x}
        assert not [x for x in ds.val.x if x.tobytes() in train], seed
        assert len(ds.val) and set(ds.train.patients).isdisjoint(ds.val.patients)
        assert ds.manifest["patients_merged_for_identical_images"] == 9
        assert set(ds.train.patients) | set(ds.val.patients) >= {f"person{p}" for p in
                                                                  range(1, 11)}  # ids kept
    with pytest.warns(AutopneumoNote, match="9 patient\\(s\\) hold a file identical"):
        _warn_about_data(ds)


def test_a_data_set_whose_names_carry_no_patient_says_its_split_may_leak(tmp_path):
    """The review's unproven concern: names with no patient id make every image its own
    patient, an image-level split in all but name, without a word."""
    from autopneumo.errors import AutopneumoWarning
    from autopneumo.tuning import _warn_about_data

    root = _layout(tmp_path / "d", {
        "train/NORMAL": [f"n{i}.png" for i in range(8)],
        "train/PNEUMONIA": [f"p{i}.png" for i in range(8)],
        "test/NORMAL": ["a.png"], "test/PNEUMONIA": ["b.png"]})
    ds = load_dataset(root, image_size=8, channels=1, val_fraction=0.25, seed=0,
                      cache_folder=tmp_path / "cache")
    assert ds.manifest["images_without_patient_id"] == 16
    with pytest.warns(AutopneumoWarning, match="16 of 16 train/val images carry no patient id"):
        _warn_about_data(ds)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _png16(arr: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG (colour type 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA), built by hand:
    Pillow cannot write 16-bit colour."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))


@pytest.mark.parametrize("colour_type", [2, 4, 6])
def test_a_16bit_colour_or_alpha_png_is_refused_not_read_nearly_black(tmp_path, colour_type):
    """F4: Pillow reads a 16-bit RGB, grey+alpha or RGBA PNG as 8 bits, keeping the high
    byte: a 12-bit radiograph (0-4095) came out as 0-15, nearly black, in training and in
    predict alike. The same values in a 16-bit grey PNG are stretched to 0-255."""
    grey = np.tile(np.linspace(0, 4095, 32).astype(np.uint16), (32, 1))
    opaque = np.full_like(grey, 65535)
    planes = {2: [grey, grey, grey], 4: [grey, opaque], 6: [grey, grey, grey, opaque]}
    (tmp_path / "grey.png").write_bytes(_png16(grey, 0))
    (tmp_path / "colour.png").write_bytes(_png16(np.stack(planes[colour_type], -1),
                                                 colour_type))
    assert decode_image(tmp_path / "grey.png", 32, 1).max() == 255
    with pytest.raises(ValueError, match="16-bit .* PNG: Pillow reads only the high byte"):
        decode_image(tmp_path / "colour.png", 32, 1)
    _, kept, failures = decode_many([str(tmp_path / "grey.png"), str(tmp_path / "colour.png")],
                                    16, 1, workers=1)
    assert kept == [0] and "high byte" in failures[0].reason
    eight = tmp_path / "rgb8.png"  # an 8-bit colour PNG still decodes
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(eight)
    assert decode_image(eight, 8, 1).shape == (8, 8, 1)


def test_a_raster_image_over_the_pixel_limit_is_refused(tmp_path):
    """F6: Pillow refuses only past twice MAX_IMAGE_PIXELS (and warns between): a
    210-megapixel PNG of 25 KB decoded, where a DICOM of that size is refused."""
    Image.new("1", (15000, 14000)).save(tmp_path / "big.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="15000x14000 px is over the 200 megapixel limit"):
            decode_image(tmp_path / "big.png", 16, 1)


def test_the_cache_key_follows_the_decoders_versions(tmp_path, monkeypatch):
    """F7: the cache (in the user's cache folder) outlived an upgrade of Pillow or pydicom,
    so training kept the old decoder's pixels while predict decoded with the new one."""
    import PIL

    from autopneumo.data import cache

    root = _layout(tmp_path / "d", {"train/NORMAL": ["IM-0001-0001.png"],
                                    "train/PNEUMONIA": ["person1_bacteria_1.png"],
                                    "test/NORMAL": ["IM-0002-0001.png"],
                                    "test/PNEUMONIA": ["person2_virus_1.png"]})
    scan = scan_kermany(root)
    before = cache.cache_key(scan, 16, 1)
    monkeypatch.setattr(PIL, "__version__", "99.0.0")
    cache.decoders.cache_clear()
    try:
        assert cache.cache_key(scan, 16, 1) != before
    finally:
        monkeypatch.undo()
        cache.decoders.cache_clear()
    assert cache.cache_key(scan, 16, 1) == before
    # pydicom's version (a metadata lookup, 5 ms of a cache hit) only where DICOM is read
    assert "pydicom" in cache.decoders(True) and "pydicom" not in cache.decoders(False)


@pytest.mark.parametrize("split_by", ["patient", "image"])
def test_a_validation_fraction_out_of_range_is_refused_for_either_split(tmp_path, split_by):
    """The review's unproven concern: split_by="image" took any fraction (1.5 gave every
    image to validation and an empty training split)."""
    from autopneumo.errors import OptionError

    root = _layout(tmp_path / "d", {"train/NORMAL": ["IM-0001-0001.png"],
                                    "train/PNEUMONIA": ["person1_virus_1.png"],
                                    "test/NORMAL": ["IM-0002-0001.png"],
                                    "test/PNEUMONIA": ["person2_virus_1.png"]})
    with pytest.raises(OptionError, match=r"--val-fraction must be in \(0, 0.5\], got 1.5"):
        load_dataset(root, image_size=8, val_fraction=1.5, split_by=split_by,
                     cache_folder=tmp_path / "cache")
