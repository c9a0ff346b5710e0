"""A miniature VinDr-SpineXR release written with pydicom, for the converter tests.

Layout as the real release: ``annotations/{train,test}.csv`` and
``{train,test}_images/<study_id>/<series_id>/<image_id>.dicom`` (one ``.dcm`` deeper down, to
exercise the recursive search). DICOMs are 12-bit (BitsStored 12) with a window narrower than
the stored range, MONOCHROME1 or MONOCHROME2, so the expected PNG is known by hand.
"""
import csv
import os

import numpy as np
from dicom_writer import write_dicom_file  # tests/ is on sys.path

CENTER, WIDTH = 2048.0, 2001.0
COLUMNS = ["study_id", "series_id", "image_id", "rad_id", "lesion_type",
           "xmin", "ymin", "xmax", "ymax"]

# image_id -> (study, series, (H, W), photometric, rows of (rad, lesion, xmin, ymin, xmax, ymax))
TRAIN = {
    "imgA1": ("sA", "seA", (40, 32), "MONOCHROME2", [
        ("R1", "Osteophytes", 2, 3, 10, 12),
        ("R2", "Osteophytes", 3, 3, 11, 13),            # a second radiologist: kept too
        ("R1", "Surgical implant", 20, 25, 40, 45),     # beyond the image: clipped to 32 x 40
    ]),
    "imgA2": ("sA", "seA", (36, 30), "MONOCHROME1", [("R1", "No finding", "", "", "", "")]),
    "imgB1": ("sB", "seB", (40, 32), "MONOCHROME2", [
        ("R3", "Disc space narrowing", 5, 5, 15, 9),
        ("R3", "Other lesions", 50, 50, 60, 60),        # entirely outside: dropped
    ]),
    "imgC1": ("sC", "seC", (30, 40), "MONOCHROME1", [("R2", "No finding", "", "", "", "")]),
    "imgD1": ("sD", "seD", (40, 32), "MONOCHROME2", [
        ("R1", "Vertebral collapse", 1, 1, 5, 5),
        ("R1", "Foraminal stenosis", 6, 20, 12, 30),
        ("R1", "Spondylolysthesis", 0, 10, 32, 20),
    ]),
    "imgE1": ("sE", "seE", (40, 32), "MONOCHROME2", [("R2", "No finding", "", "", "", "")]),
    "imgE2": ("sE", "seE", (40, 32), "MONOCHROME1", [("R2", "Osteophytes", 4, 4, 8, 8)]),
}
TEST = {
    "imgT1": ("sT", "seT", (40, 32), "MONOCHROME2", [
        ("R1", "Osteophytes", 1, 2, 3, 4),
        ("R1", "Osteophytes", 5, 6, 9, 12),
        ("R1", "Surgical implant", 10, 10, 20, 30),
    ]),
    "imgT2": ("sT", "seT", (40, 32), "MONOCHROME1", [("R1", "No finding", "", "", "", "")]),
}
DEEP_DCM = "imgE2"  # written as <study>/<series>/extra/<id>.dcm


def stored_pixels(shape, image_id):
    """12-bit stored values spanning 0..4095 (below and above the window), distinct per image."""
    h, w = shape
    ramp = np.linspace(0, 4095, h * w).reshape(h, w)
    offset = sum(map(ord, image_id)) % 7
    return np.clip(np.round(ramp) - offset, 0, 4095).astype(np.uint16)


def expected_uint8(stored, photometric):
    """By hand: linear window (PS3.3 C.11.2.1.2.1) to [0, 1], 0..255 half up; MONOCHROME1
    inverted."""
    t = np.clip((stored.astype(np.float64) - (CENTER - 0.5)) / (WIDTH - 1) + 0.5, 0.0, 1.0)
    if photometric == "MONOCHROME1":
        t = 1.0 - t
    return np.floor(t * 255 + 0.5).astype(np.uint8)


def expected_uint16(stored, photometric):
    """As :func:`expected_uint8`, to 0..65535."""
    t = np.clip((stored.astype(np.float64) - (CENTER - 0.5)) / (WIDTH - 1) + 0.5, 0.0, 1.0)
    if photometric == "MONOCHROME1":
        t = 1.0 - t
    return np.floor(t * 65535 + 0.5).astype(np.uint16)


def write_dicom(path, stored, photometric, patient_id=None):
    """A single-frame 12-bit DX DICOM with a window, with the PS3.10 preamble."""
    write_dicom_file(path, stored, photometric=photometric, modality="DX", bits_stored=12,
                     window=(CENTER, WIDTH), patient_id=patient_id)


def write_release(root, train=None, test=None, extra_rows=(), patient_ids=None):
    """Write the miniature release under ``root``; ``extra_rows`` are appended to train.csv;
    ``patient_ids`` (study -> PatientID) goes into the DICOMs (none by default, and for studies
    it does not name)."""
    for split, images in (("train", train or TRAIN), ("test", test or TEST)):
        rows = []
        for image_id, (study, series, shape, photometric, boxes) in images.items():
            folder = os.path.join(root, f"{split}_images", study, series)
            if image_id == DEEP_DCM:
                path = os.path.join(folder, "extra", f"{image_id}.dcm")
            else:
                path = os.path.join(folder, f"{image_id}.dicom")
            write_dicom(path, stored_pixels(shape, image_id), photometric,
                        (patient_ids or {}).get(study))
            rows += [[study, series, image_id, *box] for box in boxes]
        if split == "train":
            rows += [list(r) for r in extra_rows]
        write_csv(os.path.join(root, "annotations", f"{split}.csv"), rows)
    return root


def write_csv(path, rows, columns=COLUMNS):
    """A CSV with the release's header."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
