"""Data: scan the Kermany layout, parse patients, split by patient, decode once, cache."""

from .check import DataCheck, check_data
from .dataset import Dataset, Split, load_dataset, load_images
from .download import download, download_pneumoniamnist
from .patients import parse_patient_id
from .splits import patient_split

__all__ = [
    "DataCheck",
    "Dataset",
    "Split",
    "check_data",
    "download",
    "download_pneumoniamnist",
    "load_dataset",
    "load_images",
    "parse_patient_id",
    "patient_split",
]
