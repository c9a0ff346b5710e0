"""Single-frame uint16 DICOM files for tests, written with pydicom (PS3.10 preamble and meta)."""
import os
from typing import Optional, Sequence, Tuple

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def write_dicom_file(path: str, stored: np.ndarray, *, photometric: str = "MONOCHROME2",
                     modality: str = "CT", bits_stored: int = 16,
                     rescale: Optional[Tuple[float, float]] = None,
                     window: Optional[Tuple[float, float]] = None, pixels: bool = True,
                     pixel_spacing: Optional[Tuple[float, float]] = None,
                     orientation: Optional[Sequence[float]] = None,
                     position: Optional[Sequence[float]] = None,
                     slice_thickness: Optional[float] = None,
                     series_uid: Optional[str] = None,
                     patient_id: Optional[str] = None) -> str:
    """Write ``stored`` (uint16 [H, W]) as a Secondary Capture DICOM and return ``path``.

    Args:
        rescale: (RescaleSlope, RescaleIntercept), or None for no modality LUT.
        window: (WindowCenter, WindowWidth), or None for no VOI window.
        pixels: False writes no PixelData (a non-image object).
        pixel_spacing: PixelSpacing (row spacing, column spacing) in mm, or None.
        orientation: ImageOrientationPatient (row direction, column direction; 6 LPS cosines).
        position: ImagePositionPatient (LPS mm of the first pixel's centre).
        slice_thickness: SliceThickness in mm.
        series_uid: SeriesInstanceUID (a new one when None).
        patient_id: PatientID, or None for none.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.SeriesInstanceUID = series_uid or generate_uid()
    if patient_id is not None:
        ds.PatientID = patient_id
    if pixel_spacing is not None:
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
    if orientation is not None:
        ds.ImageOrientationPatient = [float(v) for v in orientation]
    if position is not None:
        ds.ImagePositionPatient = [float(v) for v in position]
    if slice_thickness is not None:
        ds.SliceThickness = float(slice_thickness)
    if pixels:
        ds.PixelData = stored.astype("<u2").tobytes()
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
