"""DICOM Segmentation (SEG) objects: label maps out with coded concepts, and back in.

:func:`write_seg` writes a label map (stations or organs) as a BINARY segmentation with
highdicom, referencing every slice of the CT series. Segment *n* is label id *n* of the
schema set, with its ROI name as Segment Label, its display colour, category "Anatomical
Structure" and the label's SNOMED CT concept as Segmented Property Type (a Right/Left
modifier where the concept does not carry the side; see :mod:`deepstationing.schema`).
Every label of the set is described, present or not, so segment numbers always equal the
schema ids; slices without any segment are left out (highdicom's ``omit_empty_frames``).
Patient and study come from the CT (highdicom), and so do its de-identification attributes,
made valid where the CT says Patient Identity Removed without naming a method
(:func:`~deepstationing.data.dicom.values.carry_deidentification`); highdicom's warnings
about the CT's header are logged (:mod:`deepstationing.library_warnings`).

:func:`read_seg` reads a SEG back onto the referenced CT's slices (by SOP Instance UID) as a
label map, and the segments' descriptions as labels of the schema.

>>> import numpy as np, tempfile, pathlib
>>> from deepstationing.data.image import Image
>>> from deepstationing.data.dicom.series import write_ct_series
>>> from deepstationing.schema import STATIONS
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> ct = write_ct_series(Image(np.zeros((3, 16, 16), np.int16)), tmp / "ct", uid_seed="doc")
>>> lab = np.zeros((3, 16, 16), np.uint8); lab[1, 2:6, 3:9] = 8; lab[2, 9:12, 9:12] = 7
>>> path = write_seg(ct.image.with_array(lab), STATIONS, ct, tmp / "seg.dcm")
>>> back, labels = read_seg(path, ct)
>>> bool((back.array == lab).all()), [x.key for x in labels][6:8]
(True, ['4L', '4R'])
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from deepstationing.data.atomic import atomic_file
from deepstationing.data.dicom.series import SeriesReference
from deepstationing.data.dicom.values import (
    MANUFACTURER,
    MODEL_NAME,
    SOFTWARE_VERSION,
    carry_deidentification,
    make_uid,
)
from deepstationing.data.image import Image
from deepstationing.errors import InputError
from deepstationing.library_warnings import warnings_to_log
from deepstationing.schema import (
    ORGANS,
    SEG_CATEGORY,
    STATIONS,
    Label,
    LabelSet,
    seg_modifier,
)

__all__ = ["write_seg", "read_seg", "segment_description"]

log = logging.getLogger(__name__)


def _code(triple: tuple[str, str, str]):
    from pydicom.sr.coding import Code

    scheme, value, meaning = triple
    return Code(value, scheme, meaning)


def segment_description(label: Label, *, algorithm_version: str = SOFTWARE_VERSION):
    """highdicom ``SegmentDescription`` of a schema label (number = label id)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if label.code is None:
        raise ValueError(f"label {label.key} has no SEG code in the schema")
    algorithm = hd.AlgorithmIdentificationSequence(
        name="deepstationing", family=codes.cid7162.ArtificialIntelligence,
        version=algorithm_version)
    desc = hd.seg.SegmentDescription(
        segment_number=label.id,
        segment_label=label.roi_name,
        segmented_property_category=_code(SEG_CATEGORY),
        segmented_property_type=_code(label.code),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        display_color=hd.color.CIELabColor.from_rgb(*label.color),
    )
    modifier = seg_modifier(label)
    if modifier is not None:
        item = desc.SegmentedPropertyTypeCodeSequence[0]
        item.SegmentedPropertyTypeModifierCodeSequence = [hd.sr.CodedConcept(
            modifier[1], modifier[0], modifier[2])]
    desc.SegmentDescription = label.name[:64]
    return desc


def write_seg(label_map: Image, labels: LabelSet, reference: SeriesReference,
              path: str | os.PathLike, *, series_number: int = 902,
              series_description: str | None = None, uid_seed: str | None = None) -> Path:
    """Write ``label_map`` (ids of ``labels``, on the CT's grid) as a DICOM SEG.

    Raises:
        InputError: the label map is not on the CT's grid, holds values that are not label
            ids, or is empty.
    """
    import highdicom as hd

    image = reference.image
    arr = np.asarray(label_map.array)
    if arr.shape != image.shape:
        raise InputError(label_map.path, f"label map shape {arr.shape} differs from the CT "
                                         f"{image.shape} ({reference.folder})")
    if arr.size and (arr.min() < 0 or arr.max() > len(labels)):
        raise InputError(label_map.path, f"values outside the {labels.kind} ids "
                                         f"0-{len(labels)}")
    if not np.any(arr):
        raise InputError(label_map.path, "label map is empty; nothing to write")
    kind = "stations" if labels is STATIONS else "organs" if labels is ORGANS else labels.kind

    def uid(*parts):
        return make_uid(uid_seed, reference.series_uid, kind, *parts) if uid_seed \
            else make_uid()

    with warnings_to_log(log):  # highdicom's remarks on the CT's header (Patient's Name)
        seg = hd.seg.Segmentation(
            source_images=reference.headers,
            pixel_array=arr.astype(np.uint8 if len(labels) < 256 else np.uint16, copy=False),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment_description(lab) for lab in labels],
            series_instance_uid=uid("seg-series"),
            series_number=series_number,
            sop_instance_uid=uid("seg"),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=MODEL_NAME,
            software_versions=SOFTWARE_VERSION,
            device_serial_number="1",
            content_description=f"deepstationing {kind}"[:64],
            content_label=kind.upper()[:16],
            series_description=series_description or f"deepstationing {kind}",
        )
    # highdicom copies the Patient module as it is: from a CT marked de-identified without
    # its method, a SEG that fails PS3.3 C.7.1.1 (Type 1C); carry the attributes validly
    carry_deidentification(reference.first, seg)
    p = Path(path)
    with warnings_to_log(log), atomic_file(p) as tmp:
        seg.save_as(tmp)
    return p


def _label_of_segment(item) -> Label | None:
    """The schema label a SEG segment describes: by coded concept (+ side), else by name."""
    from deepstationing.schema import match_roi_name

    try:
        t = item.SegmentedPropertyTypeCodeSequence[0]
        code = (str(t.CodingSchemeDesignator), str(t.CodeValue))
        mods = t.get("SegmentedPropertyTypeModifierCodeSequence", [])
        mod = str(mods[0].CodeValue) if mods else None
    except (AttributeError, IndexError):
        code, mod = None, None
    if code is not None:
        for labels in (STATIONS, ORGANS):
            for lab in labels:
                m = seg_modifier(lab)
                if lab.code and (lab.code[0], lab.code[1]) == code and \
                        (m[1] if m else None) == mod:
                    return lab
    return match_roi_name(str(item.get("SegmentLabel", "")))


def read_seg(path: str | os.PathLike, reference: SeriesReference
             ) -> tuple[Image, list[Label | None]]:
    """A SEG as a label map on the CT's grid, and the schema label of each segment.

    Pixel value *n* is segment number *n*; ``labels[n - 1]`` is the schema label that
    segment's coded concept (or label) names, ``None`` when it is none of ours.
    """
    import highdicom as hd

    p = Path(path)
    try:
        with warnings_to_log(log):
            seg = hd.seg.segread(p)
    except Exception as exc:  # highdicom/pydicom raise several types
        raise InputError(p, f"not a readable DICOM segmentation ({exc})") from None
    if str(seg.FrameOfReferenceUID) != reference.frame_of_reference_uid:
        raise InputError(p, f"Frame of Reference {seg.FrameOfReferenceUID} does not match the "
                            f"CT's {reference.frame_of_reference_uid} ({reference.folder})")
    numbers = list(seg.segment_numbers)
    with warnings_to_log(log):
        arr = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=reference.sop_instance_uids, combine_segments=True,
            relabel=False, assert_missing_frames_are_empty=True)
    labels: list[Label | None] = [None] * (max(numbers) if numbers else 0)
    for item in seg.SegmentSequence:
        labels[int(item.SegmentNumber) - 1] = _label_of_segment(item)
    return reference.image.with_array(np.asarray(arr)), labels
