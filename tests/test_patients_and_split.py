"""Patient ids from Kermany file names, and the patient-grouped validation split."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autopneumo.data.patients import parse_patient_id, patient_id_or_file
from autopneumo.data.splits import patient_split
from autopneumo.errors import OptionError

# --------------------------------------------------------------------------- parse_patient_id


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("person1946_bacteria_4874.jpeg", "person1946"),
        ("person1_virus_6_1.jpeg", "person1"),
        ("person1_virus_6.jpeg", "person1"),
        ("person100_bacteria_475.jpeg", "person100"),
        ("PERSON22_virus_1.JPEG", "person22"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("IM-0660-0001-0001.jpeg", "IM-0660"),
        ("im-0115-0001.jpeg", "IM-0115"),
        ("NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427"),
        ("normal2-im-1427-0001.jpeg", "NORMAL2-IM-1427"),
        ("NORMAL2-IM-0031-0001.png", "NORMAL2-IM-0031"),
        # directories in front of the name do not matter
        ("train/PNEUMONIA/person7_bacteria_29.jpeg", "person7"),
        ("/data/chest_xray/test/NORMAL/IM-0001-0001.jpeg", "IM-0001"),
    ],
)
def test_parse_patient_id_kermany_names(name, expected):
    assert parse_patient_id(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "image.jpeg",
        "scan_0001.png",
        "personX_bacteria_1.jpeg",  # no number
        "person_bacteria_1.jpeg",
        "person12.jpeg",  # no separator after the number
        "IM-0115.jpeg",  # no image number
        "IM-abc-0001.jpeg",
        "XIM-0115-0001.jpeg",
        "NORMAL-IM-0001-0001.jpeg",  # NORMAL without a batch number is no prefix
        "",
    ],
)
def test_parse_patient_id_without_id_is_none(name):
    assert parse_patient_id(name) is None


def test_normal2_batch_keeps_its_prefix_apart_from_im():
    # the NORMAL2 batch numbers its patients on its own: IM-1427 and NORMAL2-IM-1427 differ
    a = parse_patient_id("IM-1427-0001.jpeg")
    b = parse_patient_id("NORMAL2-IM-1427-0001.jpeg")
    assert a == "IM-1427"
    assert b == "NORMAL2-IM-1427"
    assert a != b


def test_patient_id_or_file_falls_back_to_the_file_as_given():
    """The data review's F1: the bare name made train/NORMAL/0001.png and
    train/PNEUMONIA/0001.png (or test/NORMAL/0001.png) one patient: a false "patients in
    both train/val and test", and one test "patient" of both classes in the intervals."""
    assert patient_id_or_file("a/b/scan.jpeg") == "file:a/b/scan.jpeg"
    assert patient_id_or_file("train/NORMAL/0001.png") != patient_id_or_file(
        "train/PNEUMONIA/0001.png")
    assert patient_id_or_file("a/b/person3_virus_9.jpeg") == "person3"


_EXT = st.sampled_from([".jpeg", ".jpg", ".png", ".JPEG"])


@settings(max_examples=200, deadline=None)
@given(
    number=st.integers(min_value=0, max_value=10**7),
    kind=st.sampled_from(["bacteria", "virus", "BACTERIA"]),
    image=st.integers(min_value=0, max_value=10**6),
    extra=st.one_of(st.none(), st.integers(min_value=0, max_value=99)),
    ext=_EXT,
    folder=st.sampled_from(["", "train/PNEUMONIA/", "/tmp/x/val/PNEUMONIA/"]),
)
def test_person_ids_round_trip(number, kind, image, extra, ext, folder):
    suffix = "" if extra is None else f"_{extra}"
    name = f"{folder}person{number}_{kind}_{image}{suffix}{ext}"
    assert parse_patient_id(name) == f"person{number}"


@settings(max_examples=200, deadline=None)
@given(
    patient=st.integers(min_value=0, max_value=99999),
    image=st.integers(min_value=0, max_value=9999),
    extra=st.one_of(st.none(), st.integers(min_value=0, max_value=9999)),
    batch=st.one_of(st.none(), st.integers(min_value=0, max_value=99)),
    ext=_EXT,
)
def test_im_ids_round_trip(patient, image, extra, batch, ext):
    pid = f"IM-{patient:04d}"
    if batch is not None:
        pid = f"NORMAL{batch}-{pid}"
    suffix = "" if extra is None else f"-{extra:04d}"
    name = f"{pid}-{image:04d}{suffix}{ext}"
    assert parse_patient_id(name) == pid
    # and the parsed id is stable: parsing a name built from it gives it back
    assert parse_patient_id(f"{parse_patient_id(name)}-0001.jpeg") == pid


# --------------------------------------------------------------------------- patient_split


def _synthetic(n_patients=300, seed=0, positive_share=0.7):
    """Patients with 1-5 images each; every image of a patient has the patient's label."""
    rng = np.random.default_rng(seed)
    labels, patients = [], []
    for p in range(n_patients):
        label = int(rng.random() < positive_share)
        pid = f"person{p}" if label else f"IM-{p:04d}"
        for _ in range(int(rng.integers(1, 6))):
            labels.append(label)
            patients.append(pid)
    order = rng.permutation(len(labels))  # images of a patient are not contiguous
    return np.array(labels)[order], np.array(patients)[order]


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_split_is_patient_disjoint_and_complete(seed):
    labels, patients = _synthetic(seed=seed)
    train, val = patient_split(labels, patients, 0.2, seed)
    assert len(set(patients[train]) & set(patients[val])) == 0
    both = np.concatenate([train, val])
    assert len(both) == len(labels)
    assert np.array_equal(np.sort(both), np.arange(len(labels)))  # each index exactly once
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)  # sorted, no repeats


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_split_share_and_class_ratio(seed):
    labels, patients = _synthetic(seed=seed)
    train, val = patient_split(labels, patients, 0.2, seed)
    share = len(val) / len(labels)
    assert 0.17 <= share <= 0.23
    val_patient_share = len(set(patients[val])) / len(set(patients))
    assert 0.17 <= val_patient_share <= 0.23
    assert set(labels[val].tolist()) == {0, 1}
    assert set(labels[train].tolist()) == {0, 1}
    overall = labels.mean()
    assert abs(labels[val].mean() - overall) < 0.05
    assert abs(labels[train].mean() - overall) < 0.05


@pytest.mark.parametrize(("fraction", "expected"), [(0.5, 0.5), (0.25, 0.25), (0.1, 0.1)])
def test_split_share_follows_val_fraction(fraction, expected):
    labels, patients = _synthetic(n_patients=600, seed=3)
    _, val = patient_split(labels, patients, fraction, 0)
    assert abs(len(val) / len(labels) - expected) < 0.03


def test_split_is_deterministic_per_seed_and_varies_with_seed():
    labels, patients = _synthetic(seed=11)
    t1, v1 = patient_split(labels, patients, 0.2, seed=5)
    t2, v2 = patient_split(labels, patients, 0.2, seed=5)
    assert np.array_equal(t1, t2) and np.array_equal(v1, v2)
    t3, v3 = patient_split(labels, patients, 0.2, seed=6)
    assert not np.array_equal(v1, v3)
    assert set(patients[v1]) != set(patients[v3])


def test_split_keeps_all_images_of_a_patient_together():
    labels, patients = _synthetic(seed=2)
    train, val = patient_split(labels, patients, 0.2, 0)
    side = {}
    for i in train:
        side.setdefault(patients[i], set()).add("train")
    for i in val:
        side.setdefault(patients[i], set()).add("val")
    assert all(len(s) == 1 for s in side.values())
    assert len(side) == len(set(patients))


@pytest.mark.parametrize("fraction", [0.0, -0.1, 0.51, 0.8, 1.0, math.nan])
def test_split_rejects_val_fraction_outside_range(fraction):
    labels, patients = _synthetic(n_patients=50)
    with pytest.raises(OptionError, match="val-fraction"):
        patient_split(labels, patients, fraction, 0)


def test_split_accepts_the_range_ends():
    labels, patients = _synthetic(n_patients=50)
    train, val = patient_split(labels, patients, 0.5, 0)
    assert len(train) + len(val) == len(labels)


def test_split_with_too_few_patients_is_an_option_error():
    labels = np.array([0, 0, 1, 1, 1, 0])
    patients = np.array(["a", "a", "b", "b", "c", "c"])
    with pytest.raises(OptionError, match="patients"):
        patient_split(labels, patients, 0.2, 0)


# --- from the sixteenth session's mutation review: each test kills a mutant that passed

def test_patients_of_parses_kermany_names_and_falls_back_to_the_file():
    from autopneumo.data.patients import patients_of

    got = patients_of(["test/PNEUMONIA/person1_bacteria_1.jpeg", "test/NORMAL/IM-0001-0001.jpeg",
                       "test/NORMAL/NORMAL2-IM-0007-0001.jpeg", "x/scan.png"])
    assert got.tolist() == ["person1", "IM-0001", "NORMAL2-IM-0007", "file:scan.png"]


def test_patient_id_by_kind_keeps_bacteria_and_virus_apart():
    from autopneumo.data.patients import patient_id_by_kind

    assert patient_id_by_kind("train/PNEUMONIA/person5_BACTERIA_12.jpeg") == "person5_bacteria"
    assert patient_id_by_kind("person5_virus_3.jpeg") == "person5_virus"
    assert patient_id_by_kind("IM-0001-0001.jpeg") == "IM-0001"


def _mixed_labels():
    rng = np.random.default_rng(0)
    labels, patients = [], []
    for p in range(60):
        for _ in range(4):
            labels.append(int(rng.random() < 0.5))
            patients.append(f"p{p}")
    return np.array(labels), np.array(patients)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_patients_with_both_classes_stay_on_one_side(seed):
    from autopneumo.data.splits import patient_split

    labels, patients = _mixed_labels()
    train, val = patient_split(labels, patients, 0.2, seed)
    assert not set(patients[train]) & set(patients[val])
    assert abs(len(val) / len(labels) - 0.2) < 0.05


def test_the_validation_share_follows_a_fraction_that_is_no_reciprocal():
    from autopneumo.data.splits import patient_split
    from tests.test_patients_and_split import _synthetic

    labels, patients = _synthetic(n_patients=600, seed=3)
    _, val = patient_split(labels, patients, 0.4, 0)
    assert abs(len(val) / len(labels) - 0.4) < 0.03


def test_a_class_of_one_patient_stays_in_train():
    from autopneumo.data.splits import patient_split

    labels = np.array([0, 0] + [1] * 20)
    patients = np.array(["a", "a"] + [f"p{i}" for i in range(20)])
    train, val = patient_split(labels, patients, 0.2, 0)
    assert set(train) >= {0, 1} and len(val) == 4 and set(labels[val]) == {1}
