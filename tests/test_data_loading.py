"""Loading data: Kermany folders (scan, decode, cache, split), MedMNIST .npz, downloads,
``check_data``, and decoding of unusual image files. Everything is built in tmp_path."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from autopneumo.cli import main
from autopneumo.data import check_data, download, download_pneumoniamnist, load_dataset
from autopneumo.data.cache import load_or_decode
from autopneumo.data.download import md5_of
from autopneumo.data.images import decode_image, decode_many
from autopneumo.data.kermany import scan_kermany
from autopneumo.errors import DataError, DownloadError, OptionError

SIZE = 16

# ---------------------------------------------------------------------------- fixtures

# split -> class -> [(file name, (width, height), mode)]
LAYOUT: dict[str, dict[str, list[tuple[str, tuple[int, int], str]]]] = {
    "train": {
        "NORMAL": [
            ("IM-0001-0001.jpeg", (40, 50), "L"),
            ("IM-0001-0002.jpeg", (64, 64), "RGB"),
            ("IM-0002-0001.jpeg", (64, 64), "L"),
            ("IM-0002-0002.jpeg", (40, 50), "L"),
            ("IM-0002-0003.jpeg", (50, 40), "RGB"),
            ("IM-0003-0001.jpeg", (64, 64), "L"),
            ("IM-0003-0002-0001.jpeg", (40, 50), "L"),
            ("NORMAL2-IM-0001-0001.png", (48, 48), "L"),
            ("NORMAL2-IM-0001-0002.jpeg", (64, 64), "L"),
            ("IM-0004-0001.jpeg", (40, 50), "L"),
            ("IM-0004-0002.jpeg", (64, 64), "RGB"),
        ],
        "PNEUMONIA": [
            ("person1_bacteria_1.jpeg", (40, 50), "L"),
            ("person1_bacteria_2.jpeg", (64, 64), "L"),
            ("person2_virus_3.jpeg", (64, 64), "RGB"),
            ("person2_virus_4.jpeg", (40, 50), "L"),
            ("person2_virus_4_1.jpeg", (40, 50), "L"),
            ("person3_bacteria_5.jpeg", (64, 64), "L"),
            ("person3_bacteria_6.jpeg", (40, 50), "L"),
            ("person4_bacteria_7.jpeg", (64, 64), "L"),
            ("person4_bacteria_8.jpeg", (64, 64), "RGB"),
            ("person5_virus_9.jpeg", (40, 50), "L"),
            ("person5_virus_10.jpeg", (64, 64), "L"),
        ],
    },
    "val": {
        "NORMAL": [
            ("IM-0005-0001.jpeg", (64, 64), "L"),
            ("IM-0005-0002.jpeg", (40, 50), "L"),
            ("IM-0001-0003.jpeg", (64, 64), "L"),  # patient IM-0001 is also in train/
        ],
        "PNEUMONIA": [
            ("person6_bacteria_11.jpeg", (64, 64), "L"),
            ("person6_bacteria_12.jpeg", (40, 50), "RGB"),
            ("person1_bacteria_13.jpeg", (40, 50), "L"),  # person1 is also in train/
        ],
    },
    "test": {
        "NORMAL": [
            ("IM-0100-0001.jpeg", (64, 64), "L"),
            ("IM-0100-0002.jpeg", (40, 50), "L"),
            ("IM-0101-0001.jpeg", (64, 64), "RGB"),
        ],
        "PNEUMONIA": [
            ("person100_bacteria_100.jpeg", (40, 50), "L"),
            ("person100_bacteria_101.jpeg", (64, 64), "L"),
            ("person101_virus_102.jpeg", (64, 64), "L"),
            ("person5_virus_103.jpeg", (64, 64), "L"),  # person5 is in train/ and test/
        ],
    },
}


def _image(size: tuple[int, int], mode: str, seed: int) -> Image.Image:
    """A smooth random image (compresses like a photo, differs per seed)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(xx / (3 + seed % 5)) * np.cos(yy / (4 + seed % 3))
    base = base + rng.normal(0, 10, (h, w))
    grey = np.clip(base, 0, 255).astype(np.uint8)
    if mode == "L":
        return Image.fromarray(grey, "L")
    rgb = np.stack([grey, np.roll(grey, 3, axis=1), 255 - grey], axis=-1)
    return Image.fromarray(rgb, "RGB")


def make_kermany(root: Path, layout=LAYOUT) -> list[str]:
    """Write a Kermany-layout folder; return the relative paths of the files written."""
    written = []
    seed = 0
    for split, classes in layout.items():
        for cls, files in classes.items():
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for name, size, mode in files:
                seed += 1
                im = _image(size, mode, seed)
                if name.endswith(".png"):
                    im.save(folder / name, format="PNG")
                else:
                    im.save(folder / name, format="JPEG", quality=90)
                written.append(f"{split}/{cls}/{name}")
    return written


def _files(layout, splits) -> set[str]:
    return {
        f"{s}/{c}/{name}" for s in splits for c, files in layout[s].items() for name, _, _ in files
    }


def _label_of(relpath: str) -> int:
    return 1 if relpath.split("/")[1] == "PNEUMONIA" else 0


@pytest.fixture
def kermany(tmp_path) -> Path:
    root = tmp_path / "chest_xray"
    make_kermany(root)
    return root


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def _content_hash(root: Path) -> str:
    """The data hash, from md5s of the files read here (not by the decoder)."""
    scan = scan_kermany(root)
    return scan.content_digest([md5_of(root / e.relpath) for e in scan.entries])


def _replace_same_size(path: Path) -> None:
    """Other bytes, the same size, and a later modification time (as a copy over it gets;
    bytes replaced under an unchanged time are not seen by the cache key)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    before = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 2_000_000_000))
    assert path.stat().st_size == before.st_size


def _add_unreadable(root: Path) -> list[str]:
    folder = root / "train" / "PNEUMONIA"
    (folder / "person90_bacteria_1.jpeg").write_text("this is not an image\n")
    (folder / "person91_bacteria_2.jpeg").write_bytes(b"")
    full = folder / "person4_bacteria_7.jpeg"
    data = full.read_bytes()
    (folder / "person92_bacteria_3.jpeg").write_bytes(data[: len(data) // 2])
    return [
        "train/PNEUMONIA/person90_bacteria_1.jpeg",
        "train/PNEUMONIA/person91_bacteria_2.jpeg",
        "train/PNEUMONIA/person92_bacteria_3.jpeg",
    ]


# ---------------------------------------------------------------------------- scan_kermany


def test_scan_lists_every_image_with_label_and_patient(kermany):
    (kermany / "train" / "NORMAL" / "notes.txt").write_text("ignore me")
    (kermany / "train" / "NORMAL" / ".DS_Store").write_bytes(b"\0\0")
    scan = scan_kermany(kermany)
    rel = {e.relpath for e in scan.entries}
    assert rel == _files(LAYOUT, ["train", "val", "test"])
    assert set(scan.ignored) == {"train/NORMAL/notes.txt", "train/NORMAL/.DS_Store"}
    for e in scan.entries:
        assert e.label == _label_of(e.relpath)
        assert e.split == e.relpath.split("/")[0]
        assert e.bytes == (kermany / e.relpath).stat().st_size > 0
    by_name = {e.relpath.rsplit("/", 1)[1]: e.patient for e in scan.entries}
    assert by_name["IM-0003-0002-0001.jpeg"] == "IM-0003"
    assert by_name["NORMAL2-IM-0001-0001.png"] == "NORMAL2-IM-0001"
    assert by_name["person2_virus_4_1.jpeg"] == "person2"


def test_scan_digest_changes_with_the_file_list(kermany):
    d1 = scan_kermany(kermany).digest()
    assert scan_kermany(kermany).digest() == d1
    _image((64, 64), "L", 999).save(kermany / "test" / "NORMAL" / "IM-0102-0001.jpeg")
    assert scan_kermany(kermany).digest() != d1


def test_data_hash_covers_the_files_contents(kermany, cache):
    first = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    _replace_same_size(kermany / "train" / "NORMAL" / "IM-0002-0001.jpeg")
    again = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    assert again.manifest["cache_hit"] is False
    assert again.manifest["data_hash"] != first.manifest["data_hash"]
    assert again.manifest["data_list_hash"] == first.manifest["data_list_hash"]
    assert again.manifest["data_hash"] == _content_hash(kermany)
    from autopneumo.data.dataset import same_data

    assert not same_data(first.manifest["data_hash"], again.manifest)


def test_data_hash_does_not_depend_on_image_size_or_channels(kermany, cache):
    _add_unreadable(kermany)  # unreadable files count: by their bytes
    small = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    large = load_dataset(kermany, image_size=SIZE + 8, channels=3, cache_folder=cache)
    assert small.manifest["cache"] != large.manifest["cache"]  # two caches, each hashed
    assert small.manifest["data_hash"] == large.manifest["data_hash"]
    assert small.manifest["data_hash"] == _content_hash(kermany)


def test_cache_hit_takes_the_data_hash_from_the_index_without_reading_images(
        kermany, cache, monkeypatch):
    import builtins
    import io

    import autopneumo.data.images as images

    first = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, Path)) and Path(file).resolve().is_relative_to(kermany.resolve()):
            raise AssertionError(f"an image file was opened on a cache hit: {file}")
        return real_open(file, *args, **kwargs)

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was decoded on a cache hit")

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    for name in ("decode_image", "decode_many", "decode_and_hash_many", "_decode_into"):
        monkeypatch.setattr(images, name, no_decoding, raising=False)
    hit = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    assert hit.manifest["cache_hit"] is True
    assert hit.manifest["data_hash"] == first.manifest["data_hash"]
    monkeypatch.undo()
    assert hit.manifest["data_hash"] == _content_hash(kermany)


def test_an_unreadable_file_counts_in_the_data_hash(kermany):
    scan = scan_kermany(kermany)
    md5s = [md5_of(kermany / e.relpath) for e in scan.entries]
    assert scan.content_digest([None, *md5s[1:]]) != scan.content_digest(md5s)
    with pytest.raises(ValueError, match="file hashes for"):
        scan.content_digest(md5s[1:])


def test_same_data_accepts_the_content_hash_or_a_legacy_list_hash(kermany, cache):
    from autopneumo.data.dataset import same_data

    manifest = load_dataset(kermany, image_size=SIZE, cache_folder=cache).manifest
    legacy = scan_kermany(kermany).digest()  # what records held before content hashing
    assert manifest["data_hash"] != legacy
    assert same_data(manifest["data_hash"], manifest)
    assert same_data(legacy, manifest)
    for other in ("", None, "abc", 3, legacy[:12]):
        assert not same_data(other, manifest)
    npz = {"data_hash": "f" * 64}  # MedMNIST: no list hash
    assert same_data("f" * 64, npz) and not same_data(None, npz)


def test_scan_without_val_folder_is_fine(kermany):
    shutil.rmtree(kermany / "val")
    scan = scan_kermany(kermany)
    assert {e.split for e in scan.entries} == {"train", "test"}


# ---------------------------------------------------------------------------- load_dataset


def test_load_dataset_shapes_labels_and_split(kermany, cache):
    ds = load_dataset(kermany, image_size=SIZE, channels=1, seed=0, cache_folder=cache)
    for split in (ds.train, ds.val, ds.test):
        assert split.x.dtype == np.uint8
        assert split.x.shape == (len(split), SIZE, SIZE, 1)
        assert split.y.dtype == np.uint8
        assert split.y.shape == (len(split),)
        assert len(split.files) == len(split.patients) == len(split)
        for f, y in zip(split.files, split.y, strict=True):
            assert int(y) == _label_of(str(f))  # PNEUMONIA = 1
    assert ds.image_shape == (SIZE, SIZE, 1)

    # test is the official test split, untouched
    assert sorted(ds.test.files.tolist()) == sorted(_files(LAYOUT, ["test"]))
    # train + val is the official train + val, every file once
    pool = ds.train.files.tolist() + ds.val.files.tolist()
    assert len(pool) == len(set(pool))
    assert set(pool) == _files(LAYOUT, ["train", "val"])
    # no patient on both sides, including those the official folders split
    assert not set(ds.train.patients) & set(ds.val.patients)
    assert len(ds.val) > 0 and len(ds.train) > len(ds.val)

    m = ds.manifest
    assert m["source"] == "kermany"
    assert m["image_size"] == SIZE and m["channels"] == 1 and m["split_seed"] == 0
    assert m["unreadable"] == []
    assert m["data_hash"] == _content_hash(kermany)
    assert m["data_list_hash"] == scan_kermany(kermany).digest()
    assert m["counts"]["test"] == {"NORMAL": 3, "PNEUMONIA": 4, "patients": 5}
    n_pool = len(_files(LAYOUT, ["train", "val"]))
    pooled = sum(m["counts"][s]["NORMAL"] + m["counts"][s]["PNEUMONIA"] for s in ("train", "val"))
    assert pooled == n_pool
    assert m["counts"]["val"]["patients"] == len(set(ds.val.patients))


def test_patients_split_across_official_folders_stay_together(kermany, cache):
    for seed in range(5):
        ds = load_dataset(kermany, image_size=SIZE, seed=seed, cache_folder=cache)
        for patient in ("IM-0001", "person1"):
            sides = {
                "train" if patient in ds.train.patients else None,
                "val" if patient in ds.val.patients else None,
            } - {None}
            assert len(sides) == 1
        assert not set(ds.train.patients) & set(ds.val.patients)


def test_load_dataset_split_seed(kermany, cache):
    a = load_dataset(kermany, image_size=SIZE, seed=1, cache_folder=cache)
    b = load_dataset(kermany, image_size=SIZE, seed=1, cache_folder=cache)
    assert np.array_equal(a.val.files, b.val.files)
    assert np.array_equal(a.train.x, b.train.x)
    vals = {tuple(load_dataset(kermany, image_size=SIZE, seed=s, cache_folder=cache).val.files)
            for s in range(6)}
    assert len(vals) > 1


def test_cache_miss_then_hit_and_equal_to_direct_decode(kermany, cache):
    first = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    assert first.manifest["cache_hit"] is False
    cache_file = Path(first.manifest["cache"])
    assert cache_file.parent == cache and cache_file.exists()
    assert list(cache.glob("*.npy")) == [cache_file]

    second = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    assert second.manifest["cache_hit"] is True
    assert second.manifest["cache"] == first.manifest["cache"]
    for name in ("train", "val", "test"):
        a, b = getattr(first, name), getattr(second, name)
        assert np.array_equal(a.x, b.x)
        assert np.array_equal(a.y, b.y)
        assert np.array_equal(a.files, b.files)
        assert np.array_equal(a.patients, b.patients)
        for x, f in zip(b.x, b.files, strict=True):
            assert np.array_equal(x, decode_image(kermany / str(f), SIZE, 1))

    # images differ from one another (the comparison above is not trivially true)
    flat = second.train.x.reshape(len(second.train), -1)
    assert len({row.tobytes() for row in flat}) == len(flat)


def test_cache_decoded_images_direct(kermany, cache):
    scan = scan_kermany(kermany)
    miss = load_or_decode(scan, SIZE, 1, folder=cache, workers=2)
    hit = load_or_decode(scan, SIZE, 1, folder=cache, workers=1)
    assert (miss.cache_hit, hit.cache_hit) == (False, True)
    assert miss.cache_path == hit.cache_path
    assert miss.images.shape == (len(scan.entries), SIZE, SIZE, 1)
    assert np.array_equal(miss.images, hit.images)
    assert list(hit.files) == [e.relpath for e in scan.entries]
    assert list(hit.splits) == [e.split for e in scan.entries]
    assert list(hit.patients) == [e.patient for e in scan.entries]
    assert list(hit.labels) == [e.label for e in scan.entries]
    assert hit.failures == ()


def test_cache_key_depends_on_size_channels_and_files(kermany, cache):
    a = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    b = load_dataset(kermany, image_size=SIZE + 8, cache_folder=cache)
    c = load_dataset(kermany, image_size=SIZE, channels=3, cache_folder=cache)
    assert b.manifest["cache_hit"] is False and c.manifest["cache_hit"] is False
    assert len({a.manifest["cache"], b.manifest["cache"], c.manifest["cache"]}) == 3
    assert b.train.x.shape[1:] == (SIZE + 8, SIZE + 8, 1)
    assert c.train.x.shape[1:] == (SIZE, SIZE, 3)
    for x, f in zip(c.test.x, c.test.files, strict=True):
        assert np.array_equal(x, decode_image(kermany / str(f), SIZE, 3))
    _image((64, 64), "L", 777).save(kermany / "train" / "NORMAL" / "IM-0200-0001.jpeg")
    d = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    assert d.manifest["cache_hit"] is False
    assert d.manifest["cache"] != a.manifest["cache"]
    assert "train/NORMAL/IM-0200-0001.jpeg" in set(d.train.files) | set(d.val.files)


def test_a_file_replaced_under_its_old_size_and_modification_time_is_decoded_again(
        kermany, cache):
    """Other bytes of the same size, the modification time then set back (``cp -p``,
    ``rsync -t``, an archive unpacked over the folder): the old key would have served the
    old pixels and the old data hash. The status-change time cannot be set back."""
    import time

    first = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    path = kermany / "train" / "NORMAL" / "IM-0002-0001.jpeg"
    before = path.stat()
    time.sleep(0.05)  # the kernel's file times tick at a few milliseconds
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    again = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    assert again.manifest["cache_hit"] is False
    assert again.manifest["data_hash"] == _content_hash(kermany) != first.manifest["data_hash"]


def test_damaged_cache_is_rebuilt(kermany, cache):
    first = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    Path(first.manifest["cache"]).write_bytes(b"garbage, not an npy")
    again = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    assert again.manifest["cache_hit"] is False
    assert np.array_equal(again.test.x, first.test.x)
    assert load_dataset(kermany, image_size=SIZE, cache_folder=cache).manifest["cache_hit"] is True


@pytest.mark.parametrize("damage", ["truncate images", "delete index", "index of another size"])
def test_incomplete_or_mismatched_cache_is_rebuilt(kermany, cache, damage):
    first = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    images = Path(first.manifest["cache"])
    index = images.with_suffix(".json")
    assert images.suffix == ".npy" and index.exists()
    if damage == "truncate images":
        images.write_bytes(images.read_bytes()[:-100])
    elif damage == "delete index":
        index.unlink()
    else:
        meta = json.loads(index.read_text())
        meta["shape"][1] += 1
        index.write_text(json.dumps(meta))
    again = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    assert again.manifest["cache_hit"] is False
    assert np.array_equal(again.train.x, first.train.x)
    assert load_dataset(kermany, image_size=SIZE, cache_folder=cache).manifest["cache_hit"] is True


def test_cache_folder_from_environment(kermany, tmp_path, monkeypatch):
    env_cache = tmp_path / "env-cache"
    monkeypatch.setenv("AUTOPNEUMO_CACHE", str(env_cache))
    ds = load_dataset(kermany, image_size=SIZE)
    assert Path(ds.manifest["cache"]).parent == env_cache
    assert len(list(env_cache.glob("kermany-*.npy"))) == 1
    assert load_dataset(kermany, image_size=SIZE).manifest["cache_hit"] is True


def test_data_path_from_environment(kermany, cache, monkeypatch):
    monkeypatch.setenv("AUTOPNEUMO_DATA", str(kermany))
    ds = load_dataset(image_size=SIZE, cache_folder=cache)
    assert len(ds.test) == 7
    monkeypatch.delenv("AUTOPNEUMO_DATA")
    with pytest.raises(DataError, match="no data"):
        load_dataset(image_size=SIZE, cache_folder=cache)


def test_unreadable_files_are_skipped_and_listed(kermany, cache):
    bad = _add_unreadable(kermany)
    ds = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    listed = sorted(u["file"] for u in ds.manifest["unreadable"])
    assert listed == sorted(bad)
    assert all(u["reason"] for u in ds.manifest["unreadable"])
    loaded = set(ds.train.files) | set(ds.val.files) | set(ds.test.files)
    assert not loaded & set(bad)
    assert loaded == _files(LAYOUT, ["train", "val", "test"])
    # and from the cache the same list comes back
    again = load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    assert again.manifest["cache_hit"] is True
    assert sorted(u["file"] for u in again.manifest["unreadable"]) == sorted(bad)


def test_decode_many_reports_failures_by_index(kermany):
    from autopneumo.data.images import decode_and_hash_many

    bad = _add_unreadable(kermany)
    good = ["test/NORMAL/IM-0100-0001.jpeg", "train/NORMAL/NORMAL2-IM-0001-0001.png"]
    paths = [str(kermany / good[0]), str(kermany / bad[0]), str(kermany / good[1]),
             str(kermany / bad[1]), str(kermany / bad[2])]
    images, kept, failures = decode_many(paths, SIZE, 1, workers=3)
    assert kept == [0, 2]
    assert images.shape == (2, SIZE, SIZE, 1)
    assert [f.path for f in failures] == [paths[1], paths[3], paths[4]]
    assert np.array_equal(images[1], decode_image(paths[2], SIZE, 1))
    # hashing while decoding: the same images and failures (reasons name the file), and
    # the md5 of every file that reads, decodable or not; None for one that does not
    missing = str(kermany / "train" / "NORMAL" / "gone.jpeg")
    hashed, kept2, failures2, md5s = decode_and_hash_many([*paths, missing], SIZE, 1, workers=3)
    assert np.array_equal(hashed, images) and kept2 == kept
    assert failures2[:3] == failures and failures2[3].path == missing
    assert "gone.jpeg" in failures2[3].reason and paths[1] in failures[0].reason
    assert md5s == [md5_of(Path(p)) for p in paths] + [None]


@pytest.mark.parametrize("channels", [1, 3])
def test_mixed_modes_and_sizes_decode_to_the_requested_shape(kermany, channels):
    for rel in _files(LAYOUT, ["train"]):
        arr = decode_image(kermany / rel, 20, channels)
        assert arr.shape == (20, 20, channels)
        assert arr.dtype == np.uint8
        assert 20 < arr.mean() < 235  # real content, not a blank image


def test_grey_values_survive_decoding(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (40, 50), 77).save(path)
    assert np.all(decode_image(path, 16, 1) == 77)
    assert np.all(decode_image(path, 16, 3) == 77)
    path = tmp_path / "rgb.png"
    Image.new("RGB", (64, 64), (200, 10, 30)).save(path)
    assert np.array_equal(decode_image(path, 8, 3)[3, 3], [200, 10, 30])


# ---------------------------------------------------------------------------- errors


def test_missing_folder_is_a_data_error(tmp_path, cache):
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "nope", image_size=SIZE, cache_folder=cache)


def test_missing_test_split_is_a_data_error(kermany, cache):
    shutil.rmtree(kermany / "test")
    with pytest.raises(DataError, match="test/"):
        load_dataset(kermany, image_size=SIZE, cache_folder=cache)


def test_missing_train_split_is_a_data_error(kermany, cache):
    shutil.rmtree(kermany / "train")
    with pytest.raises(DataError, match="train/"):
        load_dataset(kermany, image_size=SIZE, cache_folder=cache)


def test_empty_class_folder_is_a_data_error(kermany, cache):
    folder = kermany / "train" / "NORMAL"
    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images") as info:
        load_dataset(kermany, image_size=SIZE, cache_folder=cache)
    assert "NORMAL" in str(info.value)


def test_missing_class_folder_is_a_data_error(kermany, cache):
    shutil.rmtree(kermany / "test" / "PNEUMONIA")
    with pytest.raises(DataError, match="PNEUMONIA"):
        load_dataset(kermany, image_size=SIZE, cache_folder=cache)


def test_a_plain_file_is_a_data_error(tmp_path, cache):
    path = tmp_path / "data.txt"
    path.write_text("x")
    with pytest.raises(DataError):
        load_dataset(path, image_size=SIZE, cache_folder=cache)


def test_a_training_class_without_readable_images_is_a_data_error(kermany, cache):
    """Training a one-class model would rank first on a one-class validation split."""
    for split in ("train", "val"):
        for f in (kermany / split / "NORMAL").iterdir():
            f.write_bytes(b"broken")
    with pytest.raises(DataError, match="train \\(\\+ val\\) needs readable images of both"):
        load_dataset(kermany, image_size=SIZE, cache_folder=cache)


def test_test_split_without_readable_positives_is_a_data_error(kermany, cache):
    for f in (kermany / "test" / "PNEUMONIA").iterdir():
        f.write_bytes(b"broken")
    with pytest.raises(DataError, match="both classes"):
        load_dataset(kermany, image_size=SIZE, cache_folder=cache)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"image_size": 7}, "image-size"),
    ({"channels": 2}, "channels"),
    ({"val_fraction": 0.7}, "val-fraction"),
])
def test_bad_options_are_option_errors(kermany, cache, kwargs, match):
    with pytest.raises(OptionError, match=match):
        load_dataset(kermany, **{"image_size": SIZE, **kwargs}, cache_folder=cache)


# ---------------------------------------------------------------------------- check_data


def test_check_data_counts_patients_duplicates_unreadable(kermany):
    bad = _add_unreadable(kermany)
    # a byte-identical copy in another split
    src = kermany / "train" / "NORMAL" / "IM-0002-0001.jpeg"
    shutil.copyfile(src, kermany / "test" / "NORMAL" / "IM-0300-0001.jpeg")
    (kermany / "val" / "NORMAL" / "Thumbs.db").write_bytes(b"junk")

    check = check_data(kermany, workers=2)
    assert check.root == kermany
    assert check.counts == {
        "train": {"NORMAL": 11, "PNEUMONIA": 11 + 3},  # unreadable files are still counted
        "val": {"NORMAL": 3, "PNEUMONIA": 3},
        "test": {"NORMAL": 4, "PNEUMONIA": 4},
    }
    # train: IM-0001..4, NORMAL2-IM-0001, person1..5, person90..92;
    # test: IM-0100, IM-0101, IM-0300, person100, person101, person5
    assert check.patients == {"train": 13, "val": 4, "test": 6}
    assert check.patients_train_and_test == 1  # person5
    assert check.patients_train_and_test_by_kind == 1  # person5, virus on both sides
    assert [sorted(g) for g in check.duplicate_groups] == [
        ["test/NORMAL/IM-0300-0001.jpeg", "train/NORMAL/IM-0002-0001.jpeg"]
    ]
    assert check.duplicates_across_splits == 1
    assert sorted(f.path for f in check.unreadable) == sorted(bad)
    assert check.ignored == ["val/NORMAL/Thumbs.db"]
    assert check.data_hash == _content_hash(kermany)  # unreadable files included
    loaded = load_dataset(kermany, image_size=SIZE, cache_folder=kermany.parent / "cache")
    assert check.data_hash == loaded.manifest["data_hash"]
    # the same person number with the other kind of pneumonia: one id, two by kind
    shutil.copy(src.parent.parent / "PNEUMONIA" / "person1_bacteria_1.jpeg",
                kermany / "train" / "PNEUMONIA" / "person101_bacteria_7.jpeg")
    again = check_data(kermany, workers=2)
    assert again.patients_train_and_test == 2
    assert again.patients_train_and_test_by_kind == 1


def test_check_data_clean_folder(kermany):
    check = check_data(kermany)
    assert check.duplicate_groups == []
    assert check.duplicates_across_splits == 0
    assert check.unreadable == []
    assert sum(sum(c.values()) for c in check.counts.values()) == len(
        _files(LAYOUT, ["train", "val", "test"])
    )


def test_check_data_finds_the_images_with_colour(kermany):
    coloured = sorted(f"{split}/{cls}/{name}" for split, classes in LAYOUT.items()
                      for cls, files in classes.items() for name, _, mode in files
                      if mode == "RGB")
    assert coloured  # the layout has colour images (channels differ)
    # grey content saved as RGB (R = G = B), as in the shared 224 px copy, is not colour
    grey_rgb = kermany / "train" / "NORMAL" / "IM-0002-0001.jpeg"
    Image.open(grey_rgb).convert("L").convert("RGB").save(grey_rgb, format="JPEG", quality=75)
    assert Image.open(grey_rgb).mode == "RGB"
    check = check_data(kermany)
    assert sorted(check.colour) == coloured
    assert check.readable == sum(sum(c.values()) for c in check.counts.values())
    result = CliRunner().invoke(main, ["data", "check", str(kermany)])
    assert result.exit_code == 0
    assert f"colour: {len(coloured)} of {check.readable} images" in " ".join(result.output.split())
    for path in coloured:
        im = Image.open(kermany / path)
        im.convert("L").save(kermany / path, format="JPEG")
    result = CliRunner().invoke(main, ["data", "check", str(kermany)])
    assert "colour: none of the" in result.output and check_data(kermany).colour == []


def test_check_data_duplicates_within_a_split(kermany):
    src = kermany / "train" / "PNEUMONIA" / "person3_bacteria_5.jpeg"
    shutil.copyfile(src, kermany / "train" / "PNEUMONIA" / "person3_bacteria_5_copy.jpeg")
    check = check_data(kermany)
    assert len(check.duplicate_groups) == 1
    assert len(check.duplicate_groups[0]) == 2
    assert check.duplicates_across_splits == 0


def test_check_data_missing_folder(tmp_path):
    with pytest.raises(DataError):
        check_data(tmp_path / "missing")


# ---------------------------------------------------------------------------- odd image files


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    arr = decode_image(path, 16, 1)
    assert arr.shape == (16, 16, 1)
    assert arr.min() < 30 and arr.max() > 225  # the full range, not all 255
    assert 110 < arr.mean() < 145  # a ramp averages mid-grey
    assert np.count_nonzero(arr == 255) < arr.size // 4
    # the ramp goes down the rows: row means increase
    assert np.all(np.diff(arr[:, :, 0].mean(axis=1)) > 0)

    mid = np.full((20, 20), 32768, np.uint16)  # no contrast: nothing to stretch
    Image.fromarray(mid).save(tmp_path / "mid16.png")
    assert np.all(decode_image(tmp_path / "mid16.png", 8, 1) == 0)


@pytest.mark.parametrize("bits", [10, 12, 14, 16])
def test_a_16bit_png_decodes_as_its_8bit_image_whatever_bits_it_holds(tmp_path, bits):
    """Radiographs are often 10-14-bit data in a 16-bit PNG, which does not say so: the
    stretch from the darkest to the brightest pixel decodes them as the 8-bit image."""
    ramp8 = np.tile(np.linspace(0, 255, 32).round().astype(np.uint16), (32, 1))
    wide = (ramp8.astype(np.float64) * (2 ** bits - 1) / 255).round().astype(np.uint16)
    Image.fromarray(ramp8.astype(np.uint8)).save(tmp_path / "ramp8.png")
    Image.fromarray(wide).save(tmp_path / f"ramp{bits}.png")
    assert Image.open(tmp_path / f"ramp{bits}.png").mode.startswith("I")
    eight = decode_image(tmp_path / "ramp8.png", 32, 1).astype(int)
    got = decode_image(tmp_path / f"ramp{bits}.png", 32, 1).astype(int)
    assert np.abs(got - eight).max() <= 1, (got.max(), eight.max())


def test_one_grey_level_in_the_brightest_pixel_does_not_change_a_16bit_decode(tmp_path):
    """The deploy review's case: the same X-ray scaled to a maximum of 1023 and of 1024
    decoded 4x apart in brightness (a bit depth guessed from the brightest pixel), and
    the model's label flipped. The stretch is continuous: at most one level apart."""
    rng = np.random.default_rng(0)
    base = rng.random((64, 64))
    a = (base / base.max() * 1023).round().astype(np.uint16)
    b = a.copy()
    b[a == a.max()] = 1024
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    da = decode_image(tmp_path / "a.png", 64, 1).astype(int)
    db = decode_image(tmp_path / "b.png", 64, 1).astype(int)
    assert np.abs(da - db).max() <= 1
    assert da.max() == 255 and abs(da.mean() - 127.5) < 10  # mid-grey on average, not dark


def test_rgba_png_decodes(tmp_path):
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 255
    rgba[:, 20:, 3] = 0  # right half transparent
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    arr = decode_image(path, 16, 3)
    assert arr.shape == (16, 16, 3)
    assert np.array_equal(arr[8, 2], [255, 0, 0])
    assert np.array_equal(arr[8, 14], [0, 0, 0])  # transparent on black
    grey = decode_image(path, 16, 1)
    assert grey.shape == (16, 16, 1)
    assert grey[8, 2, 0] == 76 and grey[8, 14, 0] == 0  # ITU-R 601 luma of red


def test_cmyk_jpeg_decodes(tmp_path):
    path = tmp_path / "cmyk.jpeg"
    Image.new("CMYK", (40, 50), (0, 255, 255, 0)).save(path)  # red
    assert Image.open(path).mode == "CMYK"
    rgb = decode_image(path, 16, 3)
    assert rgb.shape == (16, 16, 3)
    assert rgb[..., 0].min() > 230 and rgb[..., 1].max() < 25 and rgb[..., 2].max() < 25
    grey = decode_image(path, 16, 1)
    assert grey.shape == (16, 16, 1)
    assert np.all(np.abs(grey.astype(int) - 76) <= 6)


def test_palette_png_decodes(tmp_path):
    path = tmp_path / "palette.png"
    Image.new("RGB", (32, 32), (0, 0, 255)).convert("P").save(path)
    assert Image.open(path).mode == "P"
    assert np.array_equal(decode_image(path, 8, 3)[0, 0], [0, 0, 255])


def test_large_jpeg_decodes_small(tmp_path):
    path = tmp_path / "big.jpeg"
    _image((1200, 1000), "L", 5).save(path, quality=85)
    arr = decode_image(path, 32, 1)
    assert arr.shape == (32, 32, 1)
    direct = np.asarray(Image.open(path).convert("L").resize((32, 32), Image.Resampling.BILINEAR))
    assert np.abs(arr[:, :, 0].astype(int) - direct.astype(int)).mean() < 12


# ---------------------------------------------------------------------------- MedMNIST .npz


def _medmnist(path: Path, n=(10, 4, 6), seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, count in zip(("train", "val", "test"), n, strict=True):
        arrays[f"{name}_images"] = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        arrays[f"{name}_labels"] = (np.arange(count) % 2).reshape(-1, 1).astype(np.uint8)
    np.savez(path, **arrays)
    return arrays


def test_load_medmnist_native_size(tmp_path):
    path = tmp_path / "pneumoniamnist.npz"
    arrays = _medmnist(path)
    ds = load_dataset(path, image_size=28, channels=1, cache_folder=tmp_path / "c")
    assert ds.manifest["source"] == "medmnist"
    assert ds.manifest["data_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
    for name, count in (("train", 10), ("val", 4), ("test", 6)):
        split = getattr(ds, name)
        assert split.x.shape == (count, 28, 28, 1) and split.x.dtype == np.uint8
        assert np.array_equal(split.x[..., 0], arrays[f"{name}_images"])
        assert np.array_equal(split.y, arrays[f"{name}_labels"].ravel())
        assert split.y.dtype == np.uint8
        assert split.files[0] == f"{name}/0"
    assert ds.manifest["counts"]["train"] == {"NORMAL": 5, "PNEUMONIA": 5, "patients": 10}
    assert not (tmp_path / "c").exists()  # nothing cached for a .npz


def test_load_medmnist_resized_and_rgb(tmp_path):
    path = tmp_path / "p.npz"
    arrays = _medmnist(path)
    ds = load_dataset(path, image_size=56, channels=3)
    assert ds.train.x.shape == (10, 56, 56, 3)
    assert ds.test.x.shape == (6, 56, 56, 3)
    # grey in, grey out: the three channels agree
    assert np.array_equal(ds.train.x[..., 0], ds.train.x[..., 2])
    # resizing keeps the image: means agree closely
    assert abs(ds.train.x[0].mean() - arrays["train_images"][0].mean()) < 3


def test_load_medmnist_missing_key(tmp_path):
    path = tmp_path / "p.npz"
    np.savez(path, train_images=np.zeros((2, 28, 28), np.uint8), train_labels=np.zeros((2, 1)))
    with pytest.raises(DataError, match="val_images"):
        load_dataset(path, image_size=28)


def test_load_medmnist_corrupt_file(tmp_path):
    path = tmp_path / "p.npz"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match=f"^{path}: not a .npz archive \\(the MedMNIST format\\)$"):
        load_dataset(path, image_size=28)
    for blank in ("", "   "):  # e.g. AUTOPNEUMO_DATA set to spaces
        with pytest.raises(DataError, match="^no data given: --data \\(or AUTOPNEUMO_DATA\\) is blank$"):
            load_dataset(blank, image_size=28)


def test_load_medmnist_empty_split(tmp_path):
    path = tmp_path / "p.npz"
    arrays = _medmnist(path)
    arrays["val_images"] = np.zeros((0, 28, 28), np.uint8)
    arrays["val_labels"] = np.zeros((0, 1), np.uint8)
    np.savez(path, **arrays)
    ds = load_dataset(path, image_size=32)
    assert ds.val.x.shape == (0, 32, 32, 1)
    assert len(ds.val) == 0


@pytest.mark.parametrize("case,over,says", [
    ("labels_not_0_1", {"train_labels": np.array([[0], [5]] * 5, np.uint8)}, "0 \\(NORMAL\\)"),
    ("labels_wrap", {"train_labels": np.array([[0], [256]] * 5, np.int64)}, "0 \\(NORMAL\\)"),
    ("labels_fraction", {"train_labels": np.full((10, 1), 0.5)}, "0 \\(NORMAL\\)"),
    ("labels_strings", {"train_labels": np.array([["a"]] * 10)}, "shape N or N x 1"),
    ("labels_two_columns", {"test_labels": np.zeros((6, 2), np.uint8)}, "shape N or N x 1"),
    ("length_mismatch", {"train_labels": np.array([[0], [1], [1]], np.uint8)}, "3 labels for 10"),
    ("images_1d", {"train_images": np.zeros(10, np.uint8)}, "N x H x W"),
    ("images_4_channels", {"val_images": np.zeros((4, 28, 28, 4), np.uint8)}, "N x H x W"),
    ("images_out_of_range", {"test_images": np.full((6, 28, 28), 300, np.int64)}, "0..255"),
    ("images_nan", {"test_images": np.full((6, 28, 28), np.nan)}, "0..255"),
    ("no_train_images", {"train_images": np.zeros((0, 28, 28), np.uint8),
                         "train_labels": np.zeros((0, 1), np.uint8)}, "both classes"),
])
def test_load_medmnist_with_bad_arrays_is_a_data_error(tmp_path, case, over, says):
    """Review 21 #4: the arrays were never checked: labels were cast to uint8 (5 trained on,
    256 -> 0, 0.5 -> 0), a length mismatch became a failed trial naming no file, and 1-D
    images or string labels were tracebacks. Now: one DataError naming the file and key."""
    path = tmp_path / f"{case}.npz"
    arrays = _medmnist(path)
    np.savez(path, **{**arrays, **over})
    key = list(over)[-1]  # the key the message names
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}: {key}.*{says}"):
        load_dataset(path, image_size=32)


def test_load_medmnist_takes_images_with_a_channel_axis(tmp_path):
    path = tmp_path / "p.npz"
    arrays = _medmnist(path)
    np.savez(path, **{**arrays, "train_images": arrays["train_images"][..., None],
                      "val_images": np.repeat(arrays["val_images"][..., None], 3, axis=-1),
                      "test_labels": arrays["test_labels"].ravel().astype(bool)})
    ds = load_dataset(path, image_size=28)
    assert np.array_equal(ds.train.x[..., 0], arrays["train_images"])
    assert np.array_equal(ds.val.x[..., 0], arrays["val_images"])
    assert np.array_equal(ds.test.y, arrays["test_labels"].ravel())


# ---------------------------------------------------------------------------- download


def test_download_file_url(tmp_path):
    src = tmp_path / "src.npz"
    _medmnist(src)
    dest = tmp_path / "out" / "sub" / "copy.npz"
    got = download(src.as_uri(), dest, md5_of(src))
    assert got == dest
    assert dest.read_bytes() == src.read_bytes()
    assert md5_of(dest) == hashlib.md5(src.read_bytes()).hexdigest()
    # no checksum given: fetched as well
    dest2 = tmp_path / "out" / "nomd5.npz"
    assert download(src.as_uri(), dest2, None).read_bytes() == src.read_bytes()


def test_download_checksum_mismatch(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload" * 100)
    dest = tmp_path / "out" / "x.bin"
    with pytest.raises(DownloadError, match="checksum") as info:
        download(src.as_uri(), dest, "0" * 32)
    assert hashlib.md5(src.read_bytes()).hexdigest() in str(info.value)
    assert not dest.exists()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


def test_download_missing_file(tmp_path):
    url = (tmp_path / "does-not-exist.npz").as_uri()
    with pytest.raises(DownloadError, match="cannot download"):
        download(url, tmp_path / "x.npz", None)
    assert not (tmp_path / "x.npz").exists()


def test_download_bad_url(tmp_path):
    with pytest.raises(DownloadError):
        download("not a url", tmp_path / "x.npz", None)


def test_download_keeps_a_good_copy_and_replaces_a_bad_one(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc" * 1000)
    md5 = md5_of(src)
    dest = tmp_path / "dest.bin"
    dest.write_bytes(src.read_bytes())
    # a good copy is not fetched again: the URL is never opened
    assert download((tmp_path / "gone").as_uri(), dest, md5) == dest
    # a stale copy is replaced
    dest.write_bytes(b"stale")
    download(src.as_uri(), dest, md5)
    assert dest.read_bytes() == src.read_bytes()


def test_download_pneumoniamnist_then_load(tmp_path):
    src = tmp_path / "mirror" / "pneumoniamnist.npz"
    src.parent.mkdir()
    arrays = _medmnist(src, n=(6, 2, 4))
    path = download_pneumoniamnist(src.as_uri(), md5_of(src), folder=tmp_path / "dl")
    assert path == tmp_path / "dl" / "pneumoniamnist.npz"
    ds = load_dataset(path, image_size=28)
    assert np.array_equal(ds.test.x[..., 0], arrays["test_images"])
    with pytest.raises(DownloadError):
        download_pneumoniamnist(src.as_uri(), "f" * 32, folder=tmp_path / "dl2")


@pytest.mark.parametrize("orientation, undo", [(6, Image.Transpose.ROTATE_90),
                                               (3, Image.Transpose.ROTATE_180),
                                               (2, Image.Transpose.FLIP_LEFT_RIGHT)])
def test_an_exif_orientation_tag_is_applied(tmp_path, orientation, undo):
    """A JPEG stored sideways with an orientation tag decodes upright, like its upright
    copy (the tag says how to show the stored pixels)."""
    upright = np.zeros((48, 32), np.uint8)
    upright[:8, :] = 255  # a bright band at the top
    Image.fromarray(upright).save(tmp_path / "upright.png")
    stored = Image.fromarray(upright).transpose(undo)  # what the camera wrote
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "tagged.jpeg", quality=100, exif=exif)
    got = decode_image(tmp_path / "tagged.jpeg", 16, 1).astype(int)
    want = decode_image(tmp_path / "upright.png", 16, 1).astype(int)
    assert np.abs(got - want).mean() < 8, (got[:, :, 0], want[:, :, 0])
