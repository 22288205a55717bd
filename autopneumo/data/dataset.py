"""``load_dataset``: a data folder or .npz in, train / val / test uint8 arrays out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, OptionError
from ..paths import default_data_path
from .cache import load_or_decode
from .download import MEDMNIST_KEYS, file_digest
from .images import decode_image
from .kermany import scan_kermany
from .splits import patient_split


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # (N, S, S, C) uint8
    y: np.ndarray  # (N,) uint8, PNEUMONIA = 1
    files: np.ndarray  # (N,) str
    patients: np.ndarray  # (N,) str

    def __len__(self) -> int:
        return len(self.y)

    def counts(self) -> dict[str, int]:
        positives = int(self.y.sum())
        return {"NORMAL": len(self.y) - positives, "PNEUMONIA": positives}

    def take(self, idx: np.ndarray) -> Split:
        return Split(self.x[idx], self.y[idx], self.files[idx], self.patients[idx])


@dataclass(frozen=True)
class Dataset:
    """The three splits plus a manifest (hash, counts, seed) that provenance reports."""

    train: Split
    val: Split
    test: Split
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]


def split_hash(val_files: np.ndarray) -> str:
    """Which images the validation split holds (training holds the rest of train + val):
    the seed and fraction name a split only as long as the splitter draws the same way,
    which another scikit-learn may not."""
    names = "\n".join(sorted(str(f) for f in val_files))
    return hashlib.sha256(names.encode("utf-8")).hexdigest()[:16]


def _check_types(image_size: Any, channels: Any, val_fraction: Any, seed: Any) -> None:
    """From Python nothing parses these as the CLI does: a size of 32.0 or "32", or a seed
    of None, is named here, not met as a TypeError in the decoder or scikit-learn."""
    from ..spaces import is_integer, is_number

    for option, value, rule, kind in (("--image-size", image_size, is_integer, "an integer"),
                                      ("--channels", channels, is_integer, "an integer"),
                                      ("--val-fraction", val_fraction, is_number, "a number"),
                                      ("--seed", seed, is_integer, "an integer")):
        if not rule(value):
            raise OptionError(f"{option} must be {kind}, got {value!r}")
    if not 0 <= seed < 2**32:
        raise OptionError(f"--seed must be in [0, 2**32), got {seed}")


def load_dataset(
    path: str | Path | None = None,
    image_size: int = 128,
    channels: int = 1,
    val_fraction: float = 0.2,
    seed: int = 0,
    cache_folder: str | Path | None = None,
    split_by: str = "patient",
) -> Dataset:
    """Load a Kermany folder (or a PneumoniaMNIST .npz) at ``image_size`` px.

    Kermany: validation is carved out of train + official val by patient, stratified by
    class, with ``seed``; the official test split is kept as it is. Images are decoded
    once into a cache keyed by file list, size and channels. The manifest's ``data_hash``
    covers every image file's path and bytes (see ``same_data`` for older records).
    """
    _check_types(image_size, channels, val_fraction, seed)
    if image_size < 8:
        raise OptionError(f"--image-size must be at least 8, got {image_size}")
    if channels not in (1, 3):
        raise OptionError(f"--channels must be 1 or 3, got {channels}")
    if not 0.0 < val_fraction <= 0.5:  # also for split_by="image" (patient_split checks too)
        raise OptionError(f"--val-fraction must be in (0, 0.5], got {val_fraction}")
    path = resolve_data_path(path)
    if path.is_file() and path.suffix == ".npz":
        return load_medmnist(path, image_size, channels, seed)
    scan = scan_kermany(path)
    decoded = load_or_decode(scan, image_size, channels,
                             folder=None if cache_folder is None else Path(cache_folder))
    everything = Split(decoded.images, decoded.labels, decoded.files, decoded.patients)
    is_test = decoded.splits == "test"
    test = everything.take(np.flatnonzero(is_test))
    pool = everything.take(np.flatnonzero(~is_test))
    if len(test) == 0 or len(np.unique(test.y)) < 2:
        raise DataError(f"{path}: the test split needs readable images of both classes")
    if len(np.unique(pool.y)) < 2:
        raise DataError(f"{path}: train (+ val) needs readable images of both classes")
    pool_digests = decoded.digests[~is_test]
    groups, merged = _with_duplicates_merged(pool.patients, _file_keys(decoded)[~is_test])
    if split_by == "patient":
        train_idx, val_idx = patient_split(pool.y, groups, val_fraction, seed)
        how = "patient-grouped, class-stratified, from train + official val"
    elif split_by == "image":  # the classroom study's random image-level split (leaks patients)
        order = np.random.default_rng(seed).permutation(len(pool))
        n_val = int(round(len(pool) * val_fraction))
        train_idx, val_idx = np.sort(order[n_val:]), np.sort(order[:n_val])
        how = "random image-level split of train + official val (patients may leak)"
    else:
        raise OptionError(f"split_by must be 'patient' or 'image', got {split_by!r}")
    for name, idx in (("training", train_idx), ("validation", val_idx)):
        if len(np.unique(pool.y[idx])) < 2:
            raise DataError(f"{path}: the {name} split has images of one class only "
                            f"({len(idx)} images); the data set is too small for "
                            f"--val-fraction {val_fraction}")
    manifest = {
        "source": "kermany",
        "path": str(path.resolve()),
        "data_hash": decoded.data_hash,  # the files' paths and contents
        "data_list_hash": scan.digest(),  # paths and sizes: the data hash of older records
        "image_size": image_size,
        "channels": channels,
        "val_fraction": val_fraction,
        "split_seed": seed,
        "split": how,
        "cache": str(decoded.cache_path),
        "cache_hit": decoded.cache_hit,
        "unreadable": [{"file": f.path, "reason": f.reason} for f in decoded.failures],
        "ignored": list(scan.ignored),
    }
    shared = np.isin(decoded.digests[is_test], pool_digests)
    manifest["test_images_also_in_train_or_val"] = int(shared.sum())
    manifest["patients_merged_for_identical_images"] = merged if split_by == "patient" else 0
    manifest["images_without_patient_id"] = int(sum(str(p).startswith("file:")
                                                    for p in pool.patients))
    ds = Dataset(pool.take(train_idx), pool.take(val_idx), test, manifest)
    manifest["counts"] = _counts(ds)
    manifest["split_hash"] = split_hash(ds.val.files)
    return ds


def _file_keys(decoded) -> np.ndarray:
    """One key per row, shared by the rows whose files hold the same bytes."""
    keys = np.array([f"row{i}" for i in range(len(decoded.files))], dtype=object)
    for g, group in enumerate(decoded.same_files):
        keys[list(group)] = f"same{g}"
    return keys


def _with_duplicates_merged(patients: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, int]:
    """The patients to split by: those holding the same file (``keys``: one per row,
    ``_file_keys``; one scan filed under two ids, as NORMAL2-IM-0095 and -0096 in the official test
    split) joined into one group, named after its smallest id, so that the copies land on
    one side; and how many patients were joined into another. Where none share a file the
    ids are returned as they are (and the split is the one the ids alone give)."""
    parent: dict[str, str] = {}

    def root(p: str) -> str:
        while parent.get(p, p) != p:
            p = parent[p]
        return p

    first_holder: dict[str, str] = {}
    for patient, key in zip(patients.tolist(), keys.tolist(), strict=True):
        other = first_holder.setdefault(key, patient)
        a, b = root(patient), root(other)
        if a != b:
            parent[max(a, b)] = min(a, b)
    if not parent:
        return patients, 0
    return np.array([root(p) for p in patients.tolist()], dtype=patients.dtype), len(parent)


def same_data(recorded: Any, manifest: dict[str, Any]) -> bool:
    """Whether a recorded data hash names the data set of ``manifest``: its content hash
    or, for a record written before data hashes covered file contents, its file-list hash
    (paths and sizes: all such a record can be checked against)."""
    return (isinstance(recorded, str) and bool(recorded)
            and recorded in (manifest.get("data_hash"), manifest.get("data_list_hash")))


def recorded_dataset(load, record: dict[str, Any], trial_dir: Path,
                     data: str | Path | None = None) -> Dataset:
    """The data set a trial was searched on, loaded with its recorded settings by ``load``
    (``load_dataset``): from the folder its record names, or from ``data``, a moved copy
    that must hold the same files (``same_data``). ``finalize --data``, ``ensemble --tta
    --data``."""
    recorded = record.get("data") or {}
    path = data if data is not None else recorded.get("path")
    if not path:
        raise DataError(f"{trial_dir}: its record names no data folder; pass --data")
    try:
        dataset = load(path, int(recorded.get("image_size") or 128),
                       int(recorded.get("channels") or 1),
                       float(recorded.get("val_fraction") or 0.2),
                       int(recorded.get("split_seed") or 0))
    except DataError as exc:
        if data is not None or Path(path).exists():
            raise
        raise DataError(f"{exc} (where {trial_dir.parent.name}/{trial_dir.name} was "
                        "searched); if the data moved, pass --data") from exc
    if recorded.get("data_hash") and not same_data(recorded["data_hash"], dataset.manifest):
        raise DataError(f"--data {path}: other files than {trial_dir} was searched on "
                        "(data hash differs)")
    if recorded.get("split_hash") and recorded["split_hash"] != dataset.manifest["split_hash"]:
        raise DataError(f"{trial_dir}: its validation split (seed {recorded.get('split_seed')}, "
                        f"fraction {recorded.get('val_fraction')}) now holds other images than "
                        "it was searched with (split hash differs; another scikit-learn or autopneumo?)")
    return dataset


def resolve_data_path(path: str | Path | None) -> Path:
    """The given path, or ``AUTOPNEUMO_DATA``; it must exist."""
    if path is None:
        path = default_data_path()
        if path is None:
            raise DataError("no data given: pass --data PATH or set AUTOPNEUMO_DATA")
    if not str(path).strip():  # e.g. AUTOPNEUMO_DATA set to spaces
        raise DataError("no data given: --data (or AUTOPNEUMO_DATA) is blank")
    path = Path(path)
    if not path.exists():
        raise DataError(f"data folder not found: {path}")
    return path


def load_medmnist(path: Path, image_size: int, channels: int, seed: int = 0) -> Dataset:
    """PneumoniaMNIST (MedMNIST keys ``{train,val,test}_{images,labels}``), official split."""
    import zipfile

    if not zipfile.is_zipfile(path):  # numpy would suggest loading it as a pickle
        raise DataError(f"{path}: not a .npz archive (the MedMNIST format)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    for key in MEDMNIST_KEYS:
        if key not in arrays:
            raise DataError(f"{path}: missing MedMNIST key {key!r}")
    checked = {name: _checked_arrays(path, name, arrays[f"{name}_images"],
                                     arrays[f"{name}_labels"])
               for name in ("train", "val", "test")}  # all of them before any resizing
    splits = {}
    for name, (images, labels) in checked.items():
        x = np.stack([_resize_array(im, image_size, channels) for im in images]) if len(images) else (
            np.zeros((0, image_size, image_size, channels), np.uint8)
        )
        files = np.array([f"{name}/{i}" for i in range(len(images))], dtype=str)
        splits[name] = Split(x, labels.reshape(-1).astype(np.uint8), files, files.copy())
    manifest = {
        "source": "medmnist",
        "path": str(path.resolve()),
        "data_hash": file_digest(path),
        "image_size": image_size,
        "channels": channels,
        "split_seed": seed,
        "split": "official MedMNIST split (no patient ids in the file)",
    }
    ds = Dataset(splits["train"], splits["val"], splits["test"], manifest)
    manifest["counts"] = _counts(ds)
    manifest["split_hash"] = split_hash(ds.val.files)
    return ds


def _checked_arrays(path: Path, name: str, images: np.ndarray,
                    labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One split's arrays as MedMNIST has them: N x H x W (x 1 or 3) pixels in 0..255, and
    N labels of 0 or 1 (N x 1 in MedMNIST); a DataError naming the file and key otherwise
    (a cast to uint8 would wrap 256 to 0, and a label of 5 would be trained on)."""
    key = f"{name}_images"
    if images.dtype.kind not in "biuf" or not (
            images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (1, 3))):
        raise DataError(f"{path}: {key} must be numbers of shape N x H x W or "
                        f"N x H x W x 1|3, got {images.dtype} of shape {images.shape}")
    if 0 in images.shape[1:]:
        raise DataError(f"{path}: {key} has images of no pixels (shape {images.shape})")
    if images.size and not np.all((images >= 0) & (images <= 255)):
        raise DataError(f"{path}: {key} has pixel values outside 0..255 (or not finite)")
    key = f"{name}_labels"
    if labels.dtype.kind not in "biuf" or not (
            labels.ndim == 1 or (labels.ndim == 2 and labels.shape[1] == 1)):
        raise DataError(f"{path}: {key} must be numbers of shape N or N x 1, got "
                        f"{labels.dtype} of shape {labels.shape}")
    if len(labels) != len(images):
        raise DataError(f"{path}: {key} has {len(labels)} labels for {len(images)} images "
                        f"in {name}_images")
    if not np.all(np.isin(labels, (0, 1))):
        raise DataError(f"{path}: {key} must be 0 (NORMAL) or 1 (PNEUMONIA), got "
                        f"{', '.join(map(str, np.unique(labels)[:5]))}")
    if name == "train" and len(np.unique(labels)) < 2:
        raise DataError(f"{path}: {key}: the train split needs images of both classes "
                        f"({len(labels)} images)")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]  # PIL takes H x W, not H x W x 1
    return images, labels


def _resize_array(image: np.ndarray, size: int, channels: int) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(image.astype(np.uint8))
    im = im.convert("L" if channels == 1 else "RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)  # as decode_image
    arr = np.asarray(im, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def _counts(ds: Dataset) -> dict[str, dict[str, int]]:
    out = {}
    for name in ("train", "val", "test"):
        split = getattr(ds, name)
        out[name] = {**split.counts(), "patients": len(np.unique(split.patients))}
    return out


def load_images(paths: list[str | Path], image_size: int, channels: int) -> np.ndarray:
    """Decode image files for prediction, the same way the training cache does."""
    return np.stack([decode_image(p, image_size, channels) for p in paths])
