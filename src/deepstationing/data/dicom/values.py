"""Small DICOM value helpers: decimal strings that fit, UIDs, dates, the identifying modules.

DICOM's decimal string (DS) holds at most 16 characters. Contour coordinates computed in
floating point (``-40.400001525878906``) do not fit; planning systems and ``dciodvfy`` reject
such files (rt-utils 1.2.7 writes them). :func:`format_ds` rounds to 0.1 micrometre and lets
pydicom's :func:`~pydicom.valuerep.format_number_as_ds` shorten what is still too long.

>>> format_ds(-40.400001525878906), format_ds(1e-17), format_ds(-174.39450073242)
('-40.4', '0', '-174.3945')
>>> len(format_ds(-123456.78901234567)) <= 16
True
>>> make_uid("seed", "ct", 3) == make_uid("seed", "ct", 3) != make_uid("seed", "ct", 4)
True
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable

from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid
from pydicom.valuerep import format_number_as_ds

from deepstationing import __version__

__all__ = ["format_ds", "ds_list", "make_uid", "now_date_time", "copy_attributes",
           "PATIENT_STUDY_KEYWORDS", "MANUFACTURER", "MODEL_NAME", "SOFTWARE_VERSION",
           "STUDY_COMPONENT_SOP_CLASS"]

MANUFACTURER = "deepstationing"
MODEL_NAME = "deepstationing"
SOFTWARE_VERSION = __version__
#: ReferencedSOPClassUID of RTReferencedStudySequence items (Study Component Management,
#: what planning systems write there).
STUDY_COMPONENT_SOP_CLASS = "1.2.840.10008.3.1.2.3.1"

#: Patient and General Study module attributes a derived object copies from its CT.
PATIENT_STUDY_KEYWORDS = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "PatientAge", "PatientWeight", "PatientSize", "OtherPatientIDsSequence",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
    "AccessionNumber", "StudyDescription",
)


def format_ds(value: float) -> str:
    """``value`` as a DICOM decimal string of at most 16 characters (0.1 um resolution)."""
    v = round(float(value), 4)
    if v == 0:
        return "0"
    text = format_number_as_ds(v)
    return text[:-2] if text.endswith(".0") else text


def ds_list(values: Iterable[float]) -> list[str]:
    """:func:`format_ds` of each value (for multi-valued DS attributes such as ContourData)."""
    return [format_ds(v) for v in values]


def make_uid(*entropy: object) -> UID:
    """A new UID; the same ``entropy`` (any non-empty values) gives the same UID.

    Without arguments the UID is random. Deterministic UIDs make outputs reproducible
    (tests, re-runs); pass something unique per object, e.g. a series UID and a slice index.
    """
    if not entropy:
        return generate_uid()
    return generate_uid(entropy_srcs=[str(e) for e in entropy])


def now_date_time() -> tuple[str, str]:
    """Today's date and the time as DICOM DA and TM strings."""
    now = _dt.datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def copy_attributes(source: Dataset, target: Dataset, keywords: Iterable[str]) -> None:
    """Copy the listed attributes that ``source`` has into ``target``."""
    for kw in keywords:
        if kw in source:
            target[kw] = source[kw]
