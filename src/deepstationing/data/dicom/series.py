"""A DICOM CT series as the reference of derived objects, and a writer for CT series.

:func:`read_series_reference` reads a CT series folder into a :class:`SeriesReference`: the
volume with its geometry (via :func:`deepstationing.data.image.read_dicom_series`, sorted by
GDCM) plus each slice's header, in the volume's slice order, so an RT structure set or a
segmentation can name the exact SOP instance of every slice and the series' Frame of
Reference.

:func:`write_ct_series` writes any :class:`~deepstationing.data.image.Image` (a phantom case,
a NIfTI CT) as a single-frame CT Image Storage series with the attributes of the CT Image
IOD (patient, study, series, frame of reference, equipment, image plane and pixel modules;
``dciodvfy`` reports no errors on it). Pixel values are stored as signed 16-bit HU
(rescale slope 1, intercept 0); the row direction is the image's x axis, the column
direction its y axis, so a flipped x axis stays flipped in ImageOrientationPatient and
patient left stays left. The folder appears complete or not at all (written to a
temporary folder, then renamed).

>>> import numpy as np, tempfile, pathlib
>>> from deepstationing.data.image import Image
>>> ct = Image(np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4) - 1000,
...            spacing=(0.8, 0.8, 3.0), origin=(-10.0, 20.0, 30.0))
>>> out = pathlib.Path(tempfile.mkdtemp()) / "ct"
>>> ref = write_ct_series(ct, out, uid_seed="doc")
>>> len(list(out.iterdir())), ref.image.same_geometry(ct)
(2, True)
>>> back = read_series_reference(out)
>>> bool((back.image.array == ct.array).all()), back.series_uid == ref.series_uid
(True, True)
>>> back.headers[1].ImagePositionPatient
[-10, 20, 33]
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from deepstationing.data.atomic import publish_folder, staging_folder
from deepstationing.data.dicom.values import (
    MANUFACTURER,
    MODEL_NAME,
    SOFTWARE_VERSION,
    ds_list,
    format_ds,
    make_uid,
    now_date_time,
)
from deepstationing.data.image import Image, read_dicom_series_files
from deepstationing.errors import InputError
from deepstationing.library_warnings import warnings_to_log

__all__ = ["SeriesReference", "read_series_reference", "write_ct_series", "slice_normal"]

log = logging.getLogger(__name__)


@dataclass
class SeriesReference:
    """A CT series on disk: the volume and each slice's header, in the volume's slice order.

    Attributes:
        folder: the series folder.
        image: the volume (LPS geometry, array ``[z, y, x]``).
        headers: ``headers[k]`` is the header (no pixels) of array slice ``k``.
    """

    folder: Path
    image: Image
    headers: list[Dataset] = field(repr=False)

    @property
    def first(self) -> Dataset:
        return self.headers[0]

    @property
    def study_uid(self) -> str:
        return str(self.first.StudyInstanceUID)

    @property
    def series_uid(self) -> str:
        return str(self.first.SeriesInstanceUID)

    @property
    def frame_of_reference_uid(self) -> str:
        return str(self.first.get("FrameOfReferenceUID", ""))

    @property
    def sop_class_uid(self) -> str:
        return str(self.first.SOPClassUID)

    @property
    def sop_instance_uids(self) -> list[str]:
        return [str(h.SOPInstanceUID) for h in self.headers]


def slice_normal(image: Image) -> np.ndarray:
    """Unit normal of the slices as DICOM sees it: row direction x column direction."""
    d = image.direction_matrix
    return np.cross(d[:, 0], d[:, 1])


def read_series_reference(folder: str | os.PathLike) -> SeriesReference:
    """Read the CT series in ``folder`` with each slice's header in slice order.

    Raises:
        InputError: not exactly one readable CT series, or slices whose positions do not
            fall on the volume's slices.
    """
    d = Path(folder)
    if not d.is_dir():
        raise InputError(d, "not a folder; expected the folder of a DICOM CT series"
                         if d.exists() else "no such folder")
    # the headers the series reader read already (no second pass over the files)
    image, files, read = read_dicom_series_files(d)
    row_col = image.direction_matrix[:, :2].T.ravel()
    headers: list[Dataset | None] = [None] * image.shape[0]
    for f, h in zip(files, read, strict=True):
        try:
            orientation = np.asarray(h.ImageOrientationPatient, dtype=float)
            if "LOCALIZER" in [str(v).upper() for v in h.get("ImageType", [])] or \
                    not np.allclose(orientation, row_col, atol=1e-3):
                log.info("%s: not a slice of the volume (localizer); not referenced", f)
                continue
            k, r, c = image.world_to_index([float(v) for v in h.ImagePositionPatient])
        except Exception as exc:  # pydicom raises several types for broken files
            raise InputError(f, f"unreadable CT slice header ({exc})") from None
        ki = int(round(k))
        if abs(k - ki) > 0.01 or abs(r) > 0.01 or abs(c) > 0.01 or not 0 <= ki < len(headers):
            raise InputError(f, f"slice position {list(h.ImagePositionPatient)} is not on the "
                                f"series' slice grid")
        if headers[ki] is not None:
            raise InputError(f, f"two files for slice {ki} of the series")
        headers[ki] = h
    if any(h is None for h in headers):
        raise InputError(d, "a slice of the volume has no file")
    return SeriesReference(d, image, headers)  # type: ignore[arg-type]


def _check_writable_folder(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(out, "exists and is not an empty folder; refusing to write a DICOM "
                              "series into it")


def _hu_int16(image: Image) -> np.ndarray:
    arr = image.array
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise InputError(image.path, "CT has non-finite voxels")
        rounded = np.rint(arr)
        if np.any(np.abs(rounded - arr) > 1e-3):
            log.info("CT values rounded to whole HU for DICOM")
        arr = rounded
    elif arr.dtype.kind not in "iub":
        raise InputError(image.path, f"cannot store voxel type {arr.dtype} as CT")
    if arr.size and (arr.min() < -32768 or arr.max() > 32767):
        raise InputError(image.path, "CT values outside the 16-bit range")
    return arr.astype("<i2")


def write_ct_series(image: Image, folder: str | os.PathLike, *, patient_id: str = "ANON",
                    patient_name: str = "Anonymous^Patient", study_uid: str | None = None,
                    frame_of_reference_uid: str | None = None,
                    series_description: str = "deepstationing CT", series_number: int = 1,
                    study_description: str = "", patient_position: str = "HFS",
                    uid_seed: str | None = None) -> SeriesReference:
    """Write ``image`` (HU) as a CT Image Storage series into the new folder ``folder``.

    Args:
        image: CT volume in HU (integer, or float with whole values).
        folder: output folder; must not exist or be empty.
        patient_id, patient_name, study_description: Patient / study identification.
        study_uid, frame_of_reference_uid: reuse these UIDs (e.g. to put the series in an
            existing study or frame of reference); new ones by default.
        series_description, series_number: series identification.
        patient_position: DICOM Patient Position (``HFS`` head first supine, ...).
        uid_seed: make every generated UID a function of this text (reproducible files).

    Returns:
        The :class:`SeriesReference` of the written series (its ``image`` is ``image``).
    """
    out = Path(folder)
    _check_writable_folder(out)
    d = image.direction_matrix
    if not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
        raise InputError(image.path, "image direction is not orthonormal; cannot write DICOM")
    pixels = _hu_int16(image)
    seed = uid_seed

    def uid(*parts):
        return make_uid(seed, *parts) if seed is not None else make_uid()

    study = study_uid or uid("study")
    series = uid("ct-series")
    frame = frame_of_reference_uid or uid("frame-of-reference")
    date, time = ("20000101", "000000") if seed is not None else now_date_time()
    ident = _SeriesIdentity(
        patient_id=patient_id, patient_name=patient_name, study_uid=study,
        study_description=study_description, series_uid=series,
        series_number=series_number, series_description=series_description,
        patient_position=patient_position, frame_of_reference_uid=frame, date=date, time=time)
    normal = slice_normal(image)
    orientation = ds_list(list(d[:, 0]) + list(d[:, 1]))
    headers: list[Dataset] = []
    with staging_folder(out) as staging:
        for k in range(image.shape[0]):
            ds = _ct_slice(image, pixels, k, uid("ct", k), ident, orientation, normal)
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = meta
            with warnings_to_log(log):
                ds.save_as(staging / f"CT_{k + 1:04d}.dcm", enforce_file_format=True)
            del ds.PixelData
            headers.append(ds)
        publish_folder(staging, out)
    result = Image(image.array, image.spacing, image.origin, image.direction, path=str(out))
    return SeriesReference(out, result, headers)


@dataclass(frozen=True)
class _SeriesIdentity:
    """What every slice of a written CT series shares: patient, study, series, dates."""

    patient_id: str
    patient_name: str
    study_uid: str
    study_description: str
    series_uid: str
    series_number: int
    series_description: str
    patient_position: str
    frame_of_reference_uid: str
    date: str
    time: str


def _ct_slice(image: Image, pixels: np.ndarray, k: int, sop_instance_uid: str,
              ident: _SeriesIdentity, orientation: list[str], normal: np.ndarray) -> Dataset:
    """The dataset of slice ``k`` (no file meta yet), its pixels included."""
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_instance_uid
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.InstanceCreationDate, ds.InstanceCreationTime = ident.date, ident.time
    _set_series_identity(ds, ident)
    # General Image, Image Plane
    ds.InstanceNumber = k + 1
    ds.ContentDate, ds.ContentTime = ident.date, ident.time
    ds.AcquisitionNumber = 1
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.DerivationDescription = "written by deepstationing from a volume"
    position = image.index_to_world((k, 0, 0))
    ds.ImagePositionPatient = ds_list(position)
    ds.ImageOrientationPatient = orientation
    ds.PixelSpacing = ds_list([image.spacing[1], image.spacing[0]])  # row, column
    ds.SliceThickness = format_ds(image.spacing[2])
    ds.SliceLocation = format_ds(float(np.dot(position, normal)))
    # Image Pixel and CT Image
    _, ny, nx = image.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ny, nx
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.KVP = ""
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    ds.PixelData = np.ascontiguousarray(pixels[k]).tobytes()
    return ds


def _set_series_identity(ds: Dataset, ident: _SeriesIdentity) -> None:
    """Patient, General Study, General Series, Frame of Reference and General Equipment."""
    ds.PatientName = ident.patient_name
    ds.PatientID = ident.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = ident.study_uid
    ds.StudyDate, ds.StudyTime = ident.date, ident.time
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    if ident.study_description:
        ds.StudyDescription = ident.study_description
    ds.Modality = "CT"
    ds.SeriesInstanceUID = ident.series_uid
    ds.SeriesNumber = ident.series_number
    ds.SeriesDescription = ident.series_description
    ds.SeriesDate, ds.SeriesTime = ident.date, ident.time
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = ident.patient_position
    ds.FrameOfReferenceUID = ident.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = SOFTWARE_VERSION

