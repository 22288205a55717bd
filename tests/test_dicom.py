"""DICOM input: decoded like a viewer shows it (rescale, window, MONOCHROME1 inverted),
found by content, read in data folders and by predict; what cannot be read is a reason."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autopneumo.data import load_dataset
from autopneumo.data.images import decode_image, decode_many, image_dimensions, is_dicom
from autopneumo.data.kermany import scan_kermany

from .conftest import make_kermany
from .test_cli import _sigmoid_model, run

pydicom = pytest.importorskip("pydicom")

DX = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


def write_dicom(path: Path | io.BytesIO, pixels: np.ndarray, photometric: str = "MONOCHROME2",
                bits: int | None = None, undefined_length: tuple[str, ...] = (),
                **tags) -> Path | io.BytesIO:
    """A minimal DX DICOM file (explicit VR little endian) holding ``pixels``, written to a
    path or into a buffer; the sequences named in ``undefined_length`` are written with
    undefined length (closed by a delimiter item, as many scanners write them)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = DX, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.set_pixel_data(pixels, photometric_interpretation=photometric,
                      bits_stored=bits or pixels.dtype.itemsize * 8)
    for key, value in tags.items():
        setattr(ds, key, value)
    for key in undefined_length:
        ds[key].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)
    return path


def _radiograph(bits: int = 12, shape=(48, 40), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = np.add.outer(np.linspace(0, 1, shape[0]), np.linspace(0, 0.5, shape[1]))
    noisy = smooth + 0.2 * rng.random(shape)
    return (noisy / noisy.max() * (2 ** bits - 1)).round().astype(np.uint16)


def test_a_dicom_decodes_as_the_same_pixels_in_a_16bit_png(tmp_path):
    """No window in the file: stretched from darkest to brightest, exactly as the same
    12-bit values in a 16-bit PNG (the format's other carrier of radiographs)."""
    pixels = _radiograph(12)
    write_dicom(tmp_path / "x.dcm", pixels, bits=12)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    for size, channels in ((16, 1), (40, 3)):
        got = decode_image(tmp_path / "x.dcm", size, channels)
        assert got.shape == (size, size, channels)
        assert np.array_equal(got, decode_image(tmp_path / "x.png", size, channels))
    assert decode_image(tmp_path / "x.dcm", 48, 1).max() == 255
    from pydicom.uid import RLELossless  # compressed without a plugin: pydicom's own RLE

    ds = pydicom.dcmread(tmp_path / "x.dcm")
    ds.compress(RLELossless)
    ds.save_as(tmp_path / "rle.dcm")
    assert np.array_equal(decode_image(tmp_path / "rle.dcm", 16, 1),
                          decode_image(tmp_path / "x.dcm", 16, 1))


def test_monochrome1_is_inverted_so_that_bone_is_bright(tmp_path):
    pixels = _radiograph(12)
    write_dicom(tmp_path / "m2.dcm", pixels, bits=12)
    write_dicom(tmp_path / "m1.dcm", 4095 - pixels, "MONOCHROME1", bits=12)
    m2 = decode_image(tmp_path / "m2.dcm", 32, 1).astype(int)
    m1 = decode_image(tmp_path / "m1.dcm", 32, 1).astype(int)
    assert np.abs(m1 - m2).max() <= 1
    assert m2[-1].mean() > m2[0].mean() + 100  # the ramp, not its negative


def test_the_files_window_is_applied_after_its_rescale(tmp_path):
    """A window in modality units (here centre 0, width 400 after an intercept of -1024):
    below it black, above it white, as a viewer shows the file; applied to the raw
    values it would be all white."""
    pixels = np.tile(np.arange(0, 2048, 16, dtype=np.uint16), (8, 1))  # 8 x 128, 0..2032
    write_dicom(tmp_path / "w.dcm", pixels, bits=12, RescaleIntercept=-1024,
                RescaleSlope=1, RescaleType="US", WindowCenter=0, WindowWidth=400)
    row = decode_image(tmp_path / "w.dcm", 128, 1)[4, :, 0].astype(int)  # no resize along x
    hu = pixels[0].astype(int) - 1024
    assert np.all(row[hu <= -210] == 0) and np.all(row[hu >= 210] == 255)
    inside = (hu > -190) & (hu < 190)
    assert np.all(np.diff(row[inside]) > 0)  # a ramp through the window
    assert abs(int(row[hu == 0][0]) - 128) <= 3


def test_a_dicom_is_known_by_its_content_whatever_its_name(tmp_path):
    pixels = _radiograph(12)
    write_dicom(tmp_path / "IM000001", pixels, bits=12)  # hospitals' exports: no suffix
    Image.fromarray(pixels).save(tmp_path / "x.png")
    data = (tmp_path / "IM000001").read_bytes()
    assert is_dicom(tmp_path / "IM000001") and is_dicom(io.BytesIO(data))
    assert not is_dicom(tmp_path / "x.png") and not is_dicom(tmp_path / "missing")
    expected = decode_image(tmp_path / "x.png", 24, 1)
    assert np.array_equal(decode_image(tmp_path / "IM000001", 24, 1), expected)
    assert np.array_equal(decode_image(io.BytesIO(data), 24, 1), expected)
    assert image_dimensions(tmp_path / "IM000001") == (40, 48)  # width, height
    assert image_dimensions(tmp_path / "x.png") == (40, 48)


def test_a_colour_dicom_decodes_as_rgb(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 200
    write_dicom(tmp_path / "c.dcm", rgb, "RGB", bits=8)
    got = decode_image(tmp_path / "c.dcm", 10, 3)
    assert np.array_equal(got[5, 5], [200, 0, 0])
    assert decode_image(tmp_path / "c.dcm", 10, 1)[5, 5, 0] == 60  # ITU-R 601 luma


def test_dicoms_that_cannot_be_read_are_failures_with_their_reason(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLossless

    good = write_dicom(tmp_path / "good.dcm", _radiograph(12), bits=12)
    frames = write_dicom(tmp_path / "frames.dcm", np.stack([_radiograph(12)] * 3), bits=12,
                         NumberOfFrames=3)
    ds = pydicom.dcmread(good)
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm", enforce_file_format=True)
    ds = pydicom.dcmread(good)
    ds.file_meta.TransferSyntaxUID = JPEGLossless  # lossless JPEG: needs a plugin
    ds.PixelData = encapsulate([b"\xff\xd8 not really a jpeg \xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "lossless.dcm", enforce_file_format=True)
    data = good.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:300])  # cut inside the file meta header
    pixels_at = data.index(b"\xe0\x7f\x10\x00OW")  # (7FE0,0010) OW: tag, VR, 2, length
    (tmp_path / "cut_elements.dcm").write_bytes(data[:pixels_at - 40])
    (tmp_path / "cut_pixel_tag.dcm").write_bytes(data[:pixels_at + 9])
    (tmp_path / "cut_pixels.dcm").write_bytes(data[:-100])
    ds = pydicom.dcmread(good)
    del ds.PixelData
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    ds.save_as(tmp_path / "report.dcm", enforce_file_format=True)  # Basic Text SR
    paths = [str(p) for p in (good, frames, tmp_path / "nopixels.dcm",
                              tmp_path / "lossless.dcm", tmp_path / "cut.dcm",
                              tmp_path / "cut_elements.dcm", tmp_path / "cut_pixel_tag.dcm",
                              tmp_path / "cut_pixels.dcm", tmp_path / "report.dcm")]
    images, kept, failures = decode_many(paths, 16, 1, workers=1)
    assert kept == [0] and images.shape == (1, 16, 16, 1)
    reasons = {Path(f.path).name: f.reason for f in failures}
    assert "3 frames; one image per file is read" in reasons["frames.dcm"]
    assert "without pixel data" in reasons["nopixels.dcm"]
    assert "no data after its file meta header (truncated?)" in reasons["cut.dcm"]
    # a file cut anywhere later says so too (was "a report or structured document?", and
    # pydicom's "unpack requires a buffer of 4 bytes" inside the pixel data's header)
    assert reasons["cut_elements.dcm"] == "ValueError: " + (
        "DICOM file of an image class (Digital X-Ray Image Storage - For Presentation) "
        "without pixel data (truncated?)")
    assert reasons["cut_pixel_tag.dcm"] == "ValueError: DICOM file cut off inside an element (truncated?)"
    assert reasons["cut_pixels.dcm"] == ("ValueError: DICOM pixel data (Explicit VR Little Endian) not "
                                         "decoded: 3740 of the 3840 bytes its header asks for "
                                         "(truncated?)")
    assert reasons["report.dcm"] == ("ValueError: DICOM file without pixel data (a report or structured "
                                     "document?)")
    assert "JPEG Lossless" in reasons["lossless.dcm"]
    assert all("\n" not in r for r in reasons.values())


def test_a_kermany_folder_of_dicom_files_loads_with_its_labels_and_patients(tmp_path):
    """Every JPEG of a tiny Kermany folder rewritten as a 12-bit DICOM file: the scan
    lists them, the patients parse from the names, the images decode."""
    root = make_kermany(tmp_path / "data", {"train": 6, "test": 3})
    for jpeg in sorted(root.rglob("*.jpeg")):
        pixels = np.asarray(Image.open(jpeg).convert("L"), dtype=np.uint16) * 16
        write_dicom(jpeg.with_suffix(".dcm"), pixels, bits=12)
        jpeg.unlink()
    scan = scan_kermany(root)
    assert scan.ignored == ()
    names = [e.relpath for e in scan.entries]
    assert len(names) == 2 * 2 * (6 + 3) and all(n.endswith(".dcm") for n in names)
    patients = {e.patient for e in scan.entries}  # from the names: 2 images a patient
    assert len(patients) == 2 * (6 + 3) and not any(p.startswith("file:") for p in patients)
    ds = load_dataset(root, image_size=16, channels=1, cache_folder=tmp_path / "cache")
    assert len(ds.train) + len(ds.val) == 2 * 2 * 6 and len(ds.test) == 2 * 2 * 3
    assert ds.test.x.shape[1:] == (16, 16, 1) and ds.test.x.std() > 10
    assert set(ds.test.y) == {0, 1}


def test_a_training_folder_reads_dicom_files_without_a_suffix_by_their_content(tmp_path):
    """A PACS export names files IM000001 or by UID: read in training folders as predict
    reads them (they were listed as "not read"), grouped by the header's Patient ID."""
    from autopneumo.data.kermany import with_header_patients

    root = _dicom_kermany(tmp_path / "dicom")
    for i, path in enumerate(sorted(root.rglob("*.dcm"))):
        path.rename(path.with_name(f"IM{i:06d}" if i % 2 else f"1.2.840.113619.{i}"))
    (root / "train" / "NORMAL" / "notes.txt").write_text("not an image")
    scan = scan_kermany(root)
    assert scan.ignored == ("train/NORMAL/notes.txt",)
    assert len(scan.entries) == 2 * 2 * (8 + 3)
    patients = {e.patient for e in with_header_patients(scan).entries}
    assert len(patients) == 2 * (8 + 3) and all(p.startswith("dicom:") for p in patients)
    ds = load_dataset(root, image_size=16, channels=1, val_fraction=0.25,
                      cache_folder=tmp_path / "cache")
    assert len(ds.test) == 2 * 3 * 2 and ds.test.x.std() > 10
    assert not set(ds.train.patients) & set(ds.val.patients)


def test_predict_scores_a_dicom_as_the_same_image_in_png_and_checks_its_size(tmp_path,
                                                                            monkeypatch):
    import pandas as pd

    model = _sigmoid_model(tmp_path / "m")
    scans = tmp_path / "scans"
    scans.mkdir()
    chest = _radiograph(12, (200, 180))
    write_dicom(scans / "chest.dcm", chest, bits=12)
    Image.fromarray(chest).save(scans / "chest.png")
    write_dicom(scans / "strip.dcm", _radiograph(12, (60, 300)), bits=12)
    flat = 1000 + np.random.default_rng(1).integers(0, 2, (128, 128)).astype(np.uint16)
    write_dicom(scans / "flat.dcm", flat, bits=12)  # one stored level of noise: blank
    write_dicom(tmp_path / "IM000007", chest, bits=12)  # named on its own, no suffix
    out = run("predict", "--model", model, scans, tmp_path / "IM000007", "--csv")
    assert out.exit_code == 0, out.output
    frame = pd.read_csv(io.StringIO(out.stdout))
    frame.index = [Path(f).name for f in frame["file"]]
    assert frame.loc["chest.dcm", "probability"] == frame.loc["chest.png", "probability"]
    assert frame.loc["IM000007", "probability"] == frame.loc["chest.png", "probability"]
    assert pd.isna(frame.loc["chest.dcm", "warning"])
    assert frame.loc["strip.dcm", "warning"] == ("only 300x60 px; aspect ratio 5.0, not a "
                                                 "chest radiograph's")
    assert frame.loc["flat.dcm", "warning"] == "nearly blank"
    # each file is read once: its size and stored spread come with the decode
    from autopneumo.inference import predict

    reads = []
    real = pydicom.dcmread
    monkeypatch.setattr(pydicom, "dcmread", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    predict(model, scans / "strip.dcm")
    assert len(reads) == 1
    assert "skipped" not in out.output  # .dcm files are read, not skipped for their suffix


def _dicom_kermany(root: Path, per_patient: int = 2, with_ids: bool = True) -> Path:
    """Kermany layout, DICOM files named by number (as hospital exports are): the patient
    is only in the header."""
    rng = np.random.default_rng(0)
    n = 0
    for split, patients in (("train", 8), ("test", 3)):
        for label, cls in enumerate(("NORMAL", "PNEUMONIA")):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for p in range(patients):
                for _ in range(per_patient):
                    n += 1
                    pixels = (rng.random((24, 24)) * (2000 + 2000 * label)).astype(np.uint16)
                    tags = {"PatientID": f"{split}-{cls}-{p}"} if with_ids else {}
                    write_dicom(folder / f"{n:06d}.dcm", pixels, bits=12, **tags)
    return root


def test_dicom_files_named_by_number_are_grouped_by_the_headers_patient_id(tmp_path):
    """Named IM000123.dcm, a hospital export carries no patient in the name: without the
    header's Patient ID every image would be its own patient, and the validation split
    would leak patients from training."""
    from autopneumo.data.kermany import with_header_patients

    root = _dicom_kermany(tmp_path / "dicom")
    assert scan_kermany(root).entries[0].patient == "file:000001.dcm"  # names only: fast
    scan = with_header_patients(scan_kermany(root))
    patients = [e.patient for e in scan.entries]
    assert len(set(patients)) == 2 * (8 + 3) and patients[0] == "dicom:train-NORMAL-0"
    ds = load_dataset(root, image_size=16, channels=1, val_fraction=0.25,
                      cache_folder=tmp_path / "cache")
    assert not set(ds.train.patients) & set(ds.val.patients)
    assert ds.manifest["counts"]["val"]["patients"] == len(set(ds.val.patients)) == 4
    import autopneumo.data.dicom

    def no_header_reads(path):
        raise AssertionError(f"{path}: a cache hit read a header")

    real = autopneumo.data.dicom.patient_id
    autopneumo.data.dicom.patient_id = no_header_reads
    try:
        again = load_dataset(root, image_size=16, channels=1, val_fraction=0.25,
                             cache_folder=tmp_path / "cache")  # a hit: the index's ids
    finally:
        autopneumo.data.dicom.patient_id = real
    assert again.manifest["cache_hit"] and list(again.val.patients) == list(ds.val.patients)

    from autopneumo.data import check_data

    write_dicom(root / "test" / "NORMAL" / "009999.dcm", np.eye(24, dtype=np.uint16) * 900,
                bits=12, PatientID="train-NORMAL-0")  # a training patient, in test too
    check = check_data(root)  # the header's ids, also where it counts patients across splits
    assert check.patients == {"train": 16, "val": 0, "test": 7}
    assert check.patients_train_and_test == check.patients_train_and_test_by_kind == 1

    plain = with_header_patients(scan_kermany(_dicom_kermany(tmp_path / "noid", with_ids=False)))
    assert plain.entries[0].patient == "file:000001.dcm"  # no id anywhere: the file


def test_saved_predictions_keep_the_scans_patients_for_every_interval(tmp_path):
    """predictions.csv carries each image's patient, so that the ensemble's and the
    report's bootstraps group as the trial's own did; a file written before the column
    existed reads its patients from the names."""
    from types import SimpleNamespace

    from autopneumo.ensemble import _common_split, _read_member_predictions
    from autopneumo.evaluation import _write_predictions, patients_in, read_predictions
    from autopneumo.report.runs import _read_split

    files = np.array(["test/NORMAL/000001.dcm", "test/NORMAL/000002.dcm",
                      "test/PNEUMONIA/person5_virus_9.jpeg"])
    split = SimpleNamespace(files=files, y=np.array([0, 0, 1]),
                            patients=np.array(["dicom:A", "dicom:A", "person5"]))
    trial = tmp_path / "trial"
    trial.mkdir()
    _write_predictions(trial / "predictions.csv", SimpleNamespace(val=split, test=split),
                       np.array([0.1, 0.2, 0.9]), np.array([0.3, 0.4, 0.8]))
    assert list(read_predictions(trial)["test"]["patient"]) == ["dicom:A", "dicom:A", "person5"]
    assert list(_read_split(trial, "test").patient) == ["dicom:A", "dicom:A", "person5"]
    saved = _read_member_predictions(trial)
    _, _, patients = _common_split([{"trial_dir": str(trial)}], [saved])
    assert list(patients["test"]) == ["dicom:A", "dicom:A", "person5"]

    old = tmp_path / "old"
    old.mkdir()
    (old / "predictions.csv").write_text("split,file,label,probability\n" + "".join(
        f"{name},{f},{y},0.5\n" for name in ("val", "test")
        for f, y in zip(files, split.y, strict=True)))
    part = read_predictions(old)["test"]
    assert part["patient"] is None  # derived where needed, from the names
    assert list(patients_in(part)) == ["file:000001.dcm", "file:000002.dcm", "person5"]
    assert list(_read_split(old, "test").patient) == list(patients_in(part))
    _, _, patients = _common_split([{"trial_dir": str(old)}], [_read_member_predictions(old)])
    assert list(patients["test"]) == list(patients_in(part))


# --------------------------------------------- the DICOM review's cases (dicom_review.md)

def _ramp(low: int = 0, high: int = 4095, width: int = 64) -> np.ndarray:
    return np.tile(np.linspace(low, high, width).round().astype(np.uint16), (8, 1))


def _row(path: Path, width: int = 64) -> np.ndarray:
    return decode_image(path, width, 1)[4, :, 0].astype(int)


def test_a_window_on_a_negative_rescale_slope_shows_high_modality_values_bright(tmp_path):
    """Bug 1: pydicom's windowing ran its output range backwards for a negative slope, so
    the image came out inverted against what a viewer shows."""
    write_dicom(tmp_path / "neg.dcm", _ramp(), bits=12, RescaleSlope=-1, RescaleIntercept=4095,
                RescaleType="US", WindowCenter=1000, WindowWidth=500)
    row = _row(tmp_path / "neg.dcm")  # modality values 4095 - stored: falling along the row
    assert row[0] == 255 and row[-1] == 0
    assert np.all(np.diff(row) <= 0)


@pytest.mark.parametrize("photometric, shown", [("MONOCHROME2", 255), ("MONOCHROME1", 0)])
def test_an_image_all_above_its_window_is_white_not_stretched_to_black(tmp_path, photometric,
                                                                       shown):
    """Bug 2: after the window the image was constant, and the stretch made any constant
    black; the window's own output range is mapped to 0-255 now (no second stretch)."""
    write_dicom(tmp_path / "ct.dcm", _ramp(2015, 2513), photometric, bits=12,
                RescaleIntercept=-1024, RescaleSlope=1, RescaleType="HU",
                WindowCenter=30, WindowWidth=100)
    assert set(_row(tmp_path / "ct.dcm")) == {shown}
    # and a narrow range inside a wide window keeps the window's contrast (review's S1)
    write_dicom(tmp_path / "mid.dcm", _ramp(900, 1100), bits=12, WindowCenter=1000,
                WindowWidth=2000)
    row = _row(tmp_path / "mid.dcm")
    assert 105 <= row.min() < row.max() <= 150


def test_float_pixel_data_decodes_and_has_no_stored_spread(tmp_path):
    """Bug 3: FloatPixelData was refused as "without pixel data"."""
    path = write_dicom(tmp_path / "f.dcm", _ramp().astype(np.uint16), bits=12)
    ds = pydicom.dcmread(path)
    ramp = np.linspace(0.0, 1.0, 64, dtype=np.float32)
    del ds.PixelData
    del ds.PixelRepresentation
    del ds.BitsStored
    del ds.HighBit
    ds.BitsAllocated = 32
    ds.FloatPixelData = np.tile(ramp, (8, 1)).tobytes()
    ds.save_as(path, enforce_file_format=True)
    row = _row(path)
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)
    info: dict = {}
    decode_image(path, 16, 1, info)
    assert info == {"width": 64, "height": 8, "stored_std": None}  # a float's scale: unknown


def test_a_palette_colour_dicom_decodes_through_its_lookup_table():
    """Bug 4: PALETTE COLOR files were refused."""
    from pydicom import examples

    path = examples.get_path("palette_color")
    rgb = decode_image(path, 32, 3)
    assert rgb.shape == (32, 32, 3) and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10


def test_padding_pixels_are_black_and_left_out_of_the_stretch(tmp_path):
    """Bug 5: a CT's padding (-2000, below air) took black and squeezed the anatomy into
    155-255; it is left out of the stretch and shown black."""
    pixels = _ramp(0, 3000).astype(np.int16)
    pixels[:, :8] = -2000
    write_dicom(tmp_path / "pad.dcm", pixels, bits=16, RescaleIntercept=-1024,
                RescaleSlope=1, RescaleType="HU", PixelPaddingValue=-2000)
    row = _row(tmp_path / "pad.dcm")
    assert np.all(row[:8] == 0)
    assert row[8] <= 3 and row[-1] == 255  # the anatomy spans the whole range


def test_an_unusable_window_is_ignored_as_a_viewer_does(tmp_path):
    """Bug 6: a Window Width of 0 failed the whole file."""
    write_dicom(tmp_path / "w0.dcm", _ramp(), bits=12, WindowCenter=1000, WindowWidth=0)
    row = _row(tmp_path / "w0.dcm")
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)  # the plain stretch


def test_dicom_images_larger_than_the_pixel_limit_are_refused_before_decoding(tmp_path):
    """Bug 7: a small file declaring 16000 x 16000 px was inflated in full (gigabytes)."""
    path = write_dicom(tmp_path / "big.dcm", _ramp(), bits=12)
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 16000
    ds.save_as(path, enforce_file_format=True)
    _, kept, failures = decode_many([str(path)], 16, 1, workers=1)
    assert kept == [] and "larger than the 200,000,000-pixel limit" in failures[0].reason


def test_fewer_than_8_stored_bits_use_their_own_full_scale(tmp_path):
    """Bug 8: values 0-15 of a 4-bit image were taken as 8-bit values (nearly black)."""
    write_dicom(tmp_path / "four.dcm", np.tile(np.arange(16, dtype=np.uint8), (4, 1)), bits=4)
    row = decode_image(tmp_path / "four.dcm", 16, 1)[2, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and row[8] == 136  # 8 * 255 / 15


def test_dicom_errors_say_dicom_and_which_field(tmp_path):
    """Bug 9: a file named .dcm without the Part 10 header got Pillow's "cannot identify
    image file"; a bad number of frames, Python's int() message."""
    (tmp_path / "raw.dcm").write_bytes(b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100")
    path = write_dicom(tmp_path / "frames.dcm", _ramp(), bits=12, NumberOfFrames=11)
    element = b"\x28\x00\x08\x00IS\x02\x00"  # (0028,0008) IS, 2 bytes, little endian
    data = path.read_bytes()
    assert data.count(element + b"11") == 1
    path.write_bytes(data.replace(element + b"11", element + b"1A"))  # as a bad export has it
    _, _, failures = decode_many([str(tmp_path / "raw.dcm"), str(path)], 16, 1, workers=1)
    reasons = [f.reason for f in failures]
    assert "not a DICOM Part 10 file (no 'DICM' marker at byte 128" in reasons[0]
    assert "DICOM NumberOfFrames '1A' is not a number" in reasons[1]


def test_one_anonymised_patient_id_for_every_file_says_where_the_ids_come_from(tmp_path):
    """The review's S2: an export that writes one Patient ID ("ANONYMOUS") for all made
    every DICOM file one patient, and the split said only "only 1 patients"."""
    from autopneumo.errors import OptionError

    root = tmp_path / "anon"
    for split in ("train", "test"):
        for label, cls in enumerate(("NORMAL", "PNEUMONIA")):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                write_dicom(root / split / cls / f"{i:04d}.dcm", _ramp(0, 1000 + 1000 * label),
                            bits=12, PatientID="ANONYMOUS")
    with pytest.raises(OptionError, match="only 1 patients.*the DICOM files' Patient ID"):
        load_dataset(root, image_size=16, cache_folder=tmp_path / "cache")


def test_decoding_dicom_files_on_threads_leaves_the_processs_warnings_on(tmp_path):
    """The diff review's 1: pydicom's warnings were silenced with catch_warnings around
    each file; that is not thread-safe, and files decode on threads (under 512 files), so
    a catch-all "ignore" could stay installed for the rest of the process. Only
    pydicom's own warnings are ignored now, by one filter."""
    import warnings

    paths = [str(write_dicom(tmp_path / f"{i}.dcm", _radiograph(12, seed=i), bits=12))
             for i in range(24)]
    for _ in range(3):
        _, kept, _ = decode_many(paths, 16, 1, workers=4)
        assert len(kept) == 24
    # (action, message, category, module, line)
    catch_all = [f for f in warnings.filters
                 if f[0] == "ignore" and f[1] is None and f[2] is Warning and f[3] is None]
    assert catch_all == []
    assert any(f[0] == "ignore" and f[3] is not None and "pydicom" in f[3].pattern
               for f in warnings.filters)


def test_export_and_predict_are_package_level_functions():
    import autopneumo
    from autopneumo.inference import Predictor, export, predict

    assert (autopneumo.export, autopneumo.predict, autopneumo.Predictor) == (
        export, predict, Predictor)


def test_a_dicom_files_header_patient_wins_over_a_kermany_looking_name(tmp_path):
    """The diff review's 10: OsiriX-style exports name files IM-0001-0001.dcm (series and
    instance numbers); read as Kermany names, every patient's first series was one
    "patient" IM-0001. The header says who the patient is."""
    from autopneumo.data.kermany import with_header_patients

    root = tmp_path / "osirix"
    for split in ("train", "test"):
        for cls in ("NORMAL", "PNEUMONIA"):
            (root / split / cls).mkdir(parents=True)
    for p in range(3):  # three patients, each with series 1 image 1
        write_dicom(root / "train" / "NORMAL" / f"IM-0001-000{p + 1}.dcm", _ramp(), bits=12,
                    PatientID=f"patient-{p}")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "train" / "PNEUMONIA" /
                                                     "person1_virus_1.jpeg")
    for cls in ("NORMAL", "PNEUMONIA"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "test" / cls / "IM-0099-0001.png")
    entries = {e.relpath: e.patient for e in with_header_patients(scan_kermany(root)).entries}
    assert [entries[f"train/NORMAL/IM-0001-000{p + 1}.dcm"] for p in range(3)] == [
        "dicom:patient-0", "dicom:patient-1", "dicom:patient-2"]
    assert entries["train/PNEUMONIA/person1_virus_1.jpeg"] == "person1"  # names still count
    assert entries["test/NORMAL/IM-0099-0001.png"] == "IM-0099"


def test_predict_reads_a_pacs_export_folder_whose_files_have_no_image_suffix(tmp_path):
    """PACS exports name files IM000001 or by UID (1.2.840....504: a "suffix" .504); in a
    folder they were skipped for their suffix. They are read by content now; the DICOMDIR
    index and other files are still skipped."""
    import pandas as pd

    model = _sigmoid_model(tmp_path / "m")
    export = tmp_path / "pacs" / "S0001"
    export.mkdir(parents=True)
    write_dicom(export / "IM000001", _radiograph(12, (200, 180)), bits=12)
    write_dicom(export / "1.2.840.113619.2.55.3.604688119.868.1249343483.504",
                _radiograph(12, (200, 180), seed=1), bits=12)
    dicomdir = write_dicom(tmp_path / "pacs" / "DICOMDIR", _ramp(), bits=12)
    assert is_dicom(dicomdir)
    (export / "README").write_text("not an image")
    out = run("predict", "--model", model, tmp_path / "pacs", "--csv")
    assert out.exit_code == 0, out.output
    frame = pd.read_csv(io.StringIO(out.stdout))
    assert sorted(Path(f).name for f in frame["file"]) == [
        "1.2.840.113619.2.55.3.604688119.868.1249343483.504", "IM000001"]
    assert frame["error"].isna().all()
    assert "2 file(s) in the given folders (and their subfolders) skipped" in out.output


def test_a_dicom_cut_inside_a_sequence_of_undefined_length_says_truncated():
    """The mutation review's minor finding: pydicom's "OSError: No tag to read at file
    position 1D8" reached the data check and the trial failures as it was."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from autopneumo.data.dicom import image

    item = Dataset()
    item.CodeValue = "X" * 16  # the longest an SH value may be
    whole = write_dicom(io.BytesIO(), np.zeros((8, 8), np.uint16), bits=12,
                        ReferencedImageSequence=Sequence([item]),
                        undefined_length=("ReferencedImageSequence",))
    data = whole.getvalue()
    cuts = []
    for cut in range(300, len(data)):
        try:
            pydicom.dcmread(io.BytesIO(data[:cut]))
        except Exception as exc:  # noqa: BLE001 - pydicom's errors vary with the cut
            if isinstance(exc, OSError) and "No tag to read" in str(exc):
                cuts.append(cut)
    assert cuts  # pydicom's own error at these cuts
    for cut in cuts[:3]:
        with pytest.raises(ValueError, match=r"cut off inside a sequence \(truncated\?\)"):
            image(io.BytesIO(data[:cut]))
