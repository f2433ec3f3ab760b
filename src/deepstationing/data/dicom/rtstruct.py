"""DICOM RT Structure Sets: write label maps as contours, read and rasterise contours.

Writing
-------
:func:`write_rtstruct` builds an RT Structure Set with pydicom: patient and study copied from
the referenced CT series, the series' Frame of Reference, every CT slice in the
ContourImageSequence, one ROI per label (``LNS_4R``, ``Lung_R``: the names and display colours
of :mod:`deepstationing.schema`), and on each contour the SOP Instance UID of its slice.
Contours come from :mod:`deepstationing.data.dicom.contours` (marching squares, one
contour per region with its holes attached by DICOM's keyhole technique). Decimal strings
are kept to DICOM's 16 characters (:func:`~deepstationing.data.dicom.values.format_ds`);
rt-utils 1.2.7, the obvious library for this, writes 19-character values that ``dciodvfy``
flags as errors, and does not write the Frame of Reference module that current ``dciodvfy``
requires. The structure set
is marked ``UNAPPROVED`` (Approval module): automatic contours await a clinician's review.
The patient's de-identification attributes are those of the CT
(:func:`~deepstationing.data.dicom.values.carry_deidentification`). The file is Implicit VR
Little Endian, its ROI Contour Sequence encoded directly
(:mod:`~deepstationing.data.dicom.encoding`: no 64 kB limit on a contour's data, a tenth of
pydicom's time). A label map is traced for all labels at once
(:func:`rois_from_label_map`); each contour names the CT slice at its z.

Reading
-------
:func:`read_rtstruct` returns the ROIs with their closed planar contours in LPS mm (also
Contour Data stored as UN, as pydicom writes values over 64 kB in Explicit VR);
:func:`rasterize_rtstruct` puts them on a CT's voxel grid after checking that the structure
set and the CT share a Frame of Reference (see :mod:`~deepstationing.data.dicom.contours`
for the plane-to-slice rule and holes).

>>> import numpy as np, tempfile, pathlib
>>> from deepstationing.data.image import Image
>>> from deepstationing.data.dicom.series import write_ct_series
>>> from deepstationing.schema import STATIONS
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> ct = write_ct_series(Image(np.zeros((3, 16, 16), np.int16), spacing=(1, 1, 2)),
...                      tmp / "ct", uid_seed="doc")
>>> labels = np.zeros((3, 16, 16), np.uint8); labels[1, 2:6, 3:12] = 8   # station 4R
>>> rs = write_rtstruct(rois_from_label_map(ct.image.with_array(labels), STATIONS), ct,
...                     tmp / "rs.dcm")
>>> ss = read_rtstruct(rs)
>>> [(r.name, r.color, len(r.contours)) for r in ss.rois]
[('LNS_4R', (148, 103, 189), 1)]
>>> bool((rasterize_rtstruct(ss, ct)["LNS_4R"] == (labels == 8)).all())
True
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ImplicitVRLittleEndian, RTStructureSetStorage

from deepstationing.data.atomic import atomic_file
from deepstationing.data.dicom.contours import (
    contours_to_mask,
    label_map_contours,
    mask_to_contours,
)
from deepstationing.data.dicom.encoding import raw_element, roi_contour_sequence
from deepstationing.data.dicom.series import SeriesReference
from deepstationing.data.dicom.values import (
    MANUFACTURER,
    MODEL_NAME,
    PATIENT_STUDY_KEYWORDS,
    SOFTWARE_VERSION,
    STUDY_COMPONENT_SOP_CLASS,
    carry_deidentification,
    copy_attributes,
    ds_joined,
    make_uid,
    now_date_time,
)
from deepstationing.data.image import Image
from deepstationing.errors import InputError
from deepstationing.library_warnings import warnings_to_log
from deepstationing.schema import ORGANS, LabelSet

__all__ = ["RoiMask", "RoiContours", "Roi", "StructureSet", "rois_from_label_map", "write_rtstruct",
           "read_rtstruct", "rasterize_rtstruct", "check_frame_of_reference"]

log = logging.getLogger(__name__)

ROI_CONTOUR_SEQUENCE = 0x30060039


@dataclass
class RoiMask:
    """One ROI to write: a name, a colour and a mask on the reference CT's grid."""

    name: str
    mask: np.ndarray = field(repr=False)
    color: tuple[int, int, int] = (255, 0, 0)
    interpreted_type: str = ""
    description: str = ""


@dataclass
class RoiContours:
    """One ROI to write as contours already traced on the reference CT's grid:
    ``[(slice k, (n, 3) LPS points in mm)]`` (what :func:`rois_from_label_map` makes)."""

    name: str
    contours: list[tuple[int, np.ndarray]] = field(repr=False)
    color: tuple[int, int, int] = (255, 0, 0)
    interpreted_type: str = ""
    description: str = ""


def rois_from_label_map(label_map: Image, labels: LabelSet) -> list[RoiContours]:
    """One ROI per label present in ``label_map``, in schema order, with its contours.

    All labels are traced together (:func:`~.contours.label_map_contours`). Organs are
    ``ORGAN`` ROIs; stations have no RT ROI Interpreted Type (DICOM has no term for an
    anatomical region that is neither an organ nor a target; empty means "not designated").
    """
    arr = np.asarray(label_map.array)
    if arr.size == 0:
        return []
    whole = arr.dtype.kind in "iub" or bool(np.all(arr == np.round(arr)))
    if not whole or arr.min() < 0 or arr.max() > len(labels):
        foreign = (arr < 0) | (arr > len(labels)) | (arr != np.round(arr))
        unknown = np.unique(arr[foreign])[:5].tolist()
        raise InputError(label_map.path, f"label values {unknown} are not {labels.kind} "
                                         f"ids (1-{len(labels)})")
    traced = label_map_contours(arr, label_map, len(labels))
    kind = "ORGAN" if labels is ORGANS else ""
    return [RoiContours(lab.roi_name, traced[lab.id], lab.color, kind, lab.name)
            for lab in labels if lab.id in traced]


def _on_slices(roi: RoiContours, image: Image) -> list[tuple[int, np.ndarray]]:
    """``roi``'s contours with the index of the CT slice each lies on (from its world z, so
    a label map traced on the same slices in another order still names the right slice).

    Raises:
        InputError: a contour is not on a slice of the CT.
    """
    if not roi.contours:
        return []
    axes = image.direction_matrix * np.asarray(image.spacing)
    first = np.array([pts[0] for _, pts in roi.contours], dtype=float)
    k = np.linalg.solve(axes, (first - np.asarray(image.origin)).T)[2]
    ki = np.round(k).astype(int)
    bad = (np.abs(k - ki) > 0.01) | (ki < 0) | (ki >= image.shape[0])
    if bad.any():
        z = first[int(np.argmax(bad))]
        raise InputError(None, f"ROI {roi.name}: a contour at {np.round(z, 2).tolist()} mm "
                               f"lies on no slice of the CT")
    return [(int(kk), pts) for kk, (_, pts) in zip(ki, roi.contours, strict=True)]


def _referenced_frame(reference: SeriesReference) -> Dataset:
    contour_images = DicomSequence()
    for h in reference.headers:
        item = Dataset()
        item.ReferencedSOPClassUID = h.SOPClassUID
        item.ReferencedSOPInstanceUID = h.SOPInstanceUID
        contour_images.append(item)
    series = Dataset()
    series.SeriesInstanceUID = reference.series_uid
    series.ContourImageSequence = contour_images
    study = Dataset()
    study.ReferencedSOPClassUID = STUDY_COMPONENT_SOP_CLASS
    study.ReferencedSOPInstanceUID = reference.study_uid
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = reference.frame_of_reference_uid
    frame.RTReferencedStudySequence = DicomSequence([study])
    return frame


def write_rtstruct(rois: Sequence[RoiMask | RoiContours], reference: SeriesReference,
                   path: str | os.PathLike, *, label: str = "DEEPSTATIONING",
                   series_description: str = "deepstationing lymph node stations",
                   series_number: int = 901, uid_seed: str | None = None) -> Path:
    """Write ``rois`` as an RT Structure Set referencing the CT series ``reference``.

    Args:
        rois: masks on the reference image's grid, or contours traced on it (empty ones are
            skipped with a log message); at least one must be non-empty.
        reference: the CT series (:func:`~deepstationing.data.dicom.series.read_series_reference`).
        path: output file, written atomically.
        label: Structure Set Label (16 characters at most).
        uid_seed: derive the new UIDs from this text (reproducible files).
    """
    if not reference.frame_of_reference_uid:
        raise InputError(reference.folder, "CT series has no Frame of Reference UID")
    traced = _traced(rois, reference.image)

    def uid(*parts):
        return make_uid(uid_seed, reference.series_uid, *parts) if uid_seed else make_uid()

    date, time = now_date_time()
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = uid("rtstruct")
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    copy_attributes(reference.first, ds, PATIENT_STUDY_KEYWORDS)
    carry_deidentification(reference.first, ds)
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
               "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        if kw not in ds:
            setattr(ds, kw, "")  # type 2: present, possibly empty
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = uid("rtstruct-series")
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = reference.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = SOFTWARE_VERSION
    ds.StructureSetLabel = label[:16]
    ds.StructureSetName = label[:64]
    ds.StructureSetDate, ds.StructureSetTime = date, time
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([_referenced_frame(reference)])
    ds.ApprovalStatus = "UNAPPROVED"
    _set_roi_sequences(ds, traced, reference)
    # the raw sequence is in the file's transfer syntax, Implicit VR Little Endian (see
    # encoding.py: no 64 kB limit on Contour Data): written as it is, not decoded again
    ds.set_original_encoding(True, True, convert_encodings(ds.SpecificCharacterSet))

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.file_meta = meta
    return _save_atomic(ds, Path(path))


def _traced(rois: Sequence[RoiMask | RoiContours], image: Image
            ) -> list[tuple[RoiMask | RoiContours, list[tuple[int, np.ndarray]]]]:
    """The non-empty ROIs with their contours on the image's slices (empty ones logged)."""
    traced: list[tuple[RoiMask | RoiContours, list[tuple[int, np.ndarray]]]] = []
    for roi in rois:
        if isinstance(roi, RoiMask):
            if roi.mask.shape != image.shape:
                raise InputError(None, f"ROI {roi.name}: mask shape {roi.mask.shape} differs "
                                       f"from the CT {image.shape}")
            contours = mask_to_contours(roi.mask, image) if np.any(roi.mask) else []
        else:
            contours = _on_slices(roi, image)
        if contours:
            traced.append((roi, contours))
        else:
            log.info("ROI %s is empty; not written", roi.name)
    if not traced:
        raise InputError(None, "nothing to write: every ROI is empty")
    return traced


def _set_roi_sequences(ds: Dataset,
                       traced: list[tuple[RoiMask | RoiContours, list[tuple[int, np.ndarray]]]],
                       reference: SeriesReference) -> None:
    """The Structure Set ROI, ROI Contour and RT ROI Observations sequences of ``ds``."""
    # every coordinate as a decimal string (at most 16 characters), each distinct value
    # formatted once; the ROI Contour Sequence encoded directly (encoding.py: pydicom's
    # per-element work took most of the writing time)
    roi_items, contour_rois, observation_items = [], [], []
    for number, (roi, roi_planes) in enumerate(traced, start=1):
        item = Dataset()
        item.ROINumber = number
        item.ReferencedFrameOfReferenceUID = reference.frame_of_reference_uid
        item.ROIName = roi.name[:64]
        if roi.description:
            item.ROIDescription = roi.description[:64]
        item.ROIGenerationAlgorithm = "AUTOMATIC"
        roi_items.append(item)

        text, ends = ds_joined(np.concatenate([pts.ravel() for _, pts in roi_planes]))
        last = np.cumsum([pts.size for _, pts in roi_planes]) - 1
        begin = np.concatenate([[0], ends[last[:-1]]]).tolist()
        contours = [(k, len(pts), text[b:e - 1]) for (k, pts), b, e
                    in zip(roi_planes, begin, ends[last].tolist(), strict=True)]
        contour_rois.append((number, roi.color, contours))

        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.ROIObservationLabel = roi.name[:16]
        obs.RTROIInterpretedType = roi.interpreted_type
        obs.ROIInterpreter = ""
        observation_items.append(obs)
    ds.StructureSetROISequence = DicomSequence(roi_items)
    ds[ROI_CONTOUR_SEQUENCE] = raw_element(ROI_CONTOUR_SEQUENCE, roi_contour_sequence(
        contour_rois, reference.sop_class_uid, reference.sop_instance_uids))
    ds.RTROIObservationsSequence = DicomSequence(observation_items)


def _save_atomic(ds: Dataset, path: Path) -> Path:
    with warnings_to_log(log), atomic_file(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return path


# ---------------------------------------------------------------------- reading
@dataclass
class Roi:
    """One ROI of a structure set, with its closed planar contours in LPS mm."""

    number: int
    name: str
    color: tuple[int, int, int] | None
    interpreted_type: str
    frame_of_reference_uid: str
    contours: list[np.ndarray] = field(repr=False, default_factory=list)
    other_contours: int = 0  # POINT / OPEN_PLANAR contours, not rasterised


@dataclass
class StructureSet:
    """An RT Structure Set read by :func:`read_rtstruct`."""

    path: Path
    frame_of_reference_uids: list[str]
    referenced_series_uids: list[str]
    patient_id: str
    rois: list[Roi]

    def names(self) -> list[str]:
        return [r.name for r in self.rois]


def read_rtstruct(path: str | os.PathLike) -> StructureSet:
    """Read an RT Structure Set file.

    Raises:
        InputError: not a DICOM file, not an RT Structure Set, or malformed contours.
    """
    import pydicom

    p = Path(path)
    try:
        with warnings_to_log(log):
            ds = pydicom.dcmread(p)
    except Exception as exc:  # pydicom raises several types for broken files
        raise InputError(p, f"not a readable DICOM file ({exc})") from None
    if str(ds.get("Modality", "")) != "RTSTRUCT" or \
            str(ds.get("SOPClassUID", "")) != RTStructureSetStorage:
        raise InputError(p, f"not an RT Structure Set (modality "
                            f"{ds.get('Modality', 'missing')})")
    frames, series = [], []
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []):
        frames.append(str(fr.get("FrameOfReferenceUID", "")))
        for st in fr.get("RTReferencedStudySequence", []):
            for se in st.get("RTReferencedSeriesSequence", []):
                series.append(str(se.get("SeriesInstanceUID", "")))
    contours_by_number = {}
    for rc in ds.get("ROIContourSequence", []):
        contours_by_number[int(rc.ReferencedROINumber)] = rc
    observed = {int(o.ReferencedROINumber): str(o.get("RTROIInterpretedType", "") or "")
                for o in ds.get("RTROIObservationsSequence", [])
                if "ReferencedROINumber" in o}
    rois = []
    for item in ds.get("StructureSetROISequence", []):
        number = int(item.ROINumber)
        name = str(item.get("ROIName", "") or f"ROI {number}")
        rc = contours_by_number.get(number)
        color = None
        contours, other = [], 0
        if rc is not None:
            if "ROIDisplayColor" in rc and len(rc.ROIDisplayColor) == 3:
                color = tuple(int(v) for v in rc.ROIDisplayColor)
            for c in rc.get("ContourSequence", []):
                kind = str(c.get("ContourGeometricType", ""))
                if kind not in ("CLOSED_PLANAR", "CLOSEDPLANAR_XOR"):
                    other += 1
                    continue
                try:
                    pts = np.asarray(_contour_data(c), dtype=float).reshape(-1, 3)
                except (AttributeError, ValueError, KeyError):
                    raise InputError(p, f"ROI {name}: contour data is not a list of x, y, z "
                                        "triplets") from None
                contours.append(pts)
        rois.append(Roi(number, name, color, observed.get(number, ""),
                        str(item.get("ReferencedFrameOfReferenceUID", "")), contours, other))
    return StructureSet(p, frames, series, str(ds.get("PatientID", "")), rois)


def _contour_data(contour: Dataset) -> list:
    """Contour Data values; also when stored as UN (what pydicom writes in Explicit VR for
    a value over 64 kB: RTSTRUCTs written before, and by other tools)."""
    element = contour["ContourData"]
    if element.VR == "UN" and isinstance(element.value, bytes):
        text = element.value.decode("ascii", "replace").strip("\0 ")
        return text.split("\\") if text else []
    return list(element.value)


def check_frame_of_reference(structure_set: StructureSet, reference: SeriesReference) -> None:
    """Raise :class:`InputError` unless the structure set lies in the CT's Frame of Reference."""
    ct_frame = reference.frame_of_reference_uid
    used = {r.frame_of_reference_uid for r in structure_set.rois if r.contours}
    used |= set(structure_set.frame_of_reference_uids)
    used.discard("")
    if not used:
        log.warning("%s names no Frame of Reference; assuming the CT's", structure_set.path)
        return
    if ct_frame not in used or len(used) > 1:
        other = sorted(used - {ct_frame}) or sorted(used)
        raise InputError(structure_set.path, f"Frame of Reference {other[0]} does not match "
                                             f"the CT's {ct_frame or '(none)'} "
                                             f"({reference.folder}); the structure set "
                                             "belongs to another scan")


def rasterize_rtstruct(structure_set: StructureSet, reference: SeriesReference | Image,
                       names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Masks of the structure set's ROIs on the CT grid, by ROI name.

    Args:
        structure_set: from :func:`read_rtstruct`.
        reference: the CT series (its Frame of Reference is checked), or a bare
            :class:`~deepstationing.data.image.Image` (a NIfTI CT: no check possible).
        names: ROIs to rasterise (default: all with contours).
    """
    if isinstance(reference, SeriesReference):
        check_frame_of_reference(structure_set, reference)
        image = reference.image
    else:
        image = reference
    wanted = None if names is None else set(names)
    out: dict[str, np.ndarray] = {}
    for roi in structure_set.rois:
        if wanted is not None and roi.name not in wanted:
            continue
        mask = contours_to_mask(roi.contours, image, name=f"ROI {roi.name}",
                                source=str(structure_set.path))
        out[roi.name] = out[roi.name] | mask if roi.name in out else mask
    return out
