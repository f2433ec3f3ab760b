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

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid
from pydicom.valuerep import format_number_as_ds

from deepstationing import __version__

__all__ = ["format_ds", "ds_list", "ds_joined", "make_uid", "now_date_time", "copy_attributes",
           "carry_deidentification", "PATIENT_STUDY_KEYWORDS", "DEIDENTIFICATION_KEYWORDS",
           "METHOD_NOT_RECORDED", "MANUFACTURER", "MODEL_NAME", "SOFTWARE_VERSION",
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

#: De-identification attributes (Patient module; SOP Common for the last) a derived object
#: carries from a de-identified CT, so that it says what its source says.
DEIDENTIFICATION_KEYWORDS = (
    "PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
    "LongitudinalTemporalInformationModified",
)
#: De-identification Method written when the source says Patient Identity Removed YES but
#: names no method (Type 1C: one of the method or its code sequence is then required).
METHOD_NOT_RECORDED = "source series de-identified; method not recorded"


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


def ds_joined(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    r""":func:`format_ds` of every value (flattened), each followed by a backslash, as one
    ASCII buffer, and where each value's text ends (after its backslash).

    Values ``a`` to ``b - 1`` read ``buffer[ends[a - 1]:ends[b - 1] - 1]`` (``0`` for
    ``a = 0``): a multi-valued DS. Each distinct value is formatted once (contour vertices
    lie on a few thousand coordinates), the rest is array work: no string object per value.

    >>> buf, ends = ds_joined(np.array([-40.400001525878906, 2.0, 2.0, 1e-17]))
    >>> buf, ends.tolist(), buf[ends[0]:ends[2] - 1]
    (b'-40.4\\2\\2\\0\\', [6, 8, 10, 12], b'2\\2')
    """
    flat = np.asarray(values, dtype=float).ravel()
    if flat.size == 0:
        return b"", np.zeros(0, np.int64)
    unique, inverse = np.unique(flat, return_inverse=True)
    text = [format_ds(v).encode("ascii") + b"\\" for v in unique.tolist()]
    lengths = np.array([len(t) for t in text], np.int64)
    width = int(lengths.max())
    table = np.frombuffer(b"".join(t.ljust(width, b"\0") for t in text),
                          np.uint8).reshape(-1, width)
    inverse = inverse.ravel()
    used = np.arange(width) < lengths[inverse][:, None]
    return table[inverse][used].tobytes(), np.cumsum(lengths[inverse])


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


def carry_deidentification(source: Dataset, target: Dataset) -> None:
    """Give ``target`` the de-identification attributes of ``source``, valid for DICOM.

    Copies :data:`DEIDENTIFICATION_KEYWORDS` that ``source`` has (replacing what ``target``
    holds of them, e.g. a partial copy made by highdicom). When Patient Identity Removed is
    ``YES`` and neither a De-identification Method nor a non-empty code sequence of it is
    recorded (an empty value counts as none), the method becomes
    :data:`METHOD_NOT_RECORDED`: PS3.3 C.7.1.1 requires one of the two, ``dciodvfy`` reports
    each missing as an error.

    >>> src = Dataset(); src.PatientIdentityRemoved = "YES"
    >>> out = Dataset(); carry_deidentification(src, out)
    >>> out.PatientIdentityRemoved, out.DeidentificationMethod
    ('YES', 'source series de-identified; method not recorded')
    >>> src.DeidentificationMethod = "Basic profile"
    >>> out = Dataset(); carry_deidentification(src, out); out.DeidentificationMethod
    'Basic profile'
    """
    for kw in DEIDENTIFICATION_KEYWORDS:
        if kw in target:
            del target[kw]
    copy_attributes(source, target, DEIDENTIFICATION_KEYWORDS)
    if str(target.get("PatientIdentityRemoved", "") or "").strip().upper() != "YES":
        return
    codes = target.get("DeidentificationMethodCodeSequence")
    if codes is not None and len(codes) == 0:
        del target.DeidentificationMethodCodeSequence
        codes = None
    method = target.get("DeidentificationMethod")
    methods = [method] if isinstance(method, str) else list(method or [])
    if not any(str(v).strip() for v in methods):
        if "DeidentificationMethod" in target:
            del target.DeidentificationMethod
        if codes is None:
            target.DeidentificationMethod = METHOD_NOT_RECORDED
