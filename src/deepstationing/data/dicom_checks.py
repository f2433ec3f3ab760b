"""Checks of a DICOM CT series before it is read: broken files, localizers, pixel spacing.

GDCM, which sorts a folder into series for ITK, leaves out a file it cannot read (a file cut
short by an interrupted copy) without a word: the series then seems to miss a slice, or, at
either end, is silently one slice short. A localizer (scout) image often shares the series
of the axial slices: it stops the slice-position check ("duplicate positions") or, worse,
would be stacked with them. And GDCM reads a zero or negative ``PixelSpacing`` as 1 mm or
its absolute value. These helpers find such files by name; pydicom reads the headers.

>>> import pydicom
>>> from pydicom.dataset import Dataset
>>> axial = Dataset(); axial.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
>>> axial.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
>>> scout = Dataset(); scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
>>> scout.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
>>> localizers([axial, axial, scout, axial])
[2]
"""

from __future__ import annotations

import logging
import os
import struct
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepstationing.data.headers import spacing_defect
from deepstationing.errors import InputError
from deepstationing.library_warnings import warnings_to_log

log = logging.getLogger(__name__)

__all__ = ["read_headers", "check_files_left_out", "localizers", "pixel_spacing_problem",
           "looks_like_dicom"]

_PIXEL_DATA = (0x7FE0, 0x0010)
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _read_one(path: Path):
    """Header of one file (no pixels) and what is wrong with its pixel data, if anything."""
    import pydicom

    with open(path, "rb") as fh:
        ds = pydicom.dcmread(fh, stop_before_pixels=True)
        at = fh.tell()  # the start of the pixel data element
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(12)
    meta = getattr(ds, "file_meta", None)
    sop = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else None)
    if sop is None and "Rows" not in ds:  # every DICOM file names its SOP class
        return ds, "incomplete DICOM file: no SOP class, no image size (truncated header?)"
    if "Rows" not in ds and "Image Storage" not in getattr(sop, "name", ""):
        return ds, None  # not an image (an RTSTRUCT, say)
    ts = meta.get("TransferSyntaxUID") if meta else None
    if ts is not None and ts.is_deflated:
        return ds, None  # a deflated stream: file offsets say nothing
    implicit, little = (True, True) if ts is None else (ts.is_implicit_VR, ts.is_little_endian)
    end = "<" if little else ">"
    if len(head) < 8:
        return ds, "truncated file: it ends before its pixel data"
    if struct.unpack(end + "HH", head[:4]) != _PIXEL_DATA:
        return ds, None
    if implicit:
        length, start = struct.unpack(end + "I", head[4:8])[0], 8
    elif head[4:6] in _LONG_VRS:
        if len(head) < 12:
            return ds, "truncated file: it ends inside its pixel data header"
        length, start = struct.unpack(end + "I", head[8:12])[0], 12
    else:
        length, start = struct.unpack(end + "H", head[6:8])[0], 8
    if length != 0xFFFFFFFF and size < at + start + length:  # undefined length: encapsulated
        return ds, (f"truncated file: {size - at - start} of its {length} bytes of pixel data "
                    "present")
    return ds, None


def read_headers(files: Sequence[str | os.PathLike], folder: str | os.PathLike) -> list:
    """pydicom headers of ``files``; :class:`InputError` naming a broken or truncated file."""
    headers = []
    for f in files:
        try:
            with warnings_to_log(log):  # pydicom's remarks on odd values
                ds, problem = _read_one(Path(f))
        except Exception as exc:  # pydicom raises several types for broken files
            raise InputError(f, f"unreadable DICOM file ({_first_line(exc)}); the series in "
                                f"{folder} cannot be read without it") from None
        if problem:
            raise InputError(f, f"{problem}; the series in {folder} cannot be read without it")
        headers.append(ds)
    return headers


def looks_like_dicom(p: Path) -> bool:
    """A DICOM file by its name (.dcm, .ima, .dicom) or its ``DICM`` preamble."""
    if p.suffix.lower() in (".dcm", ".ima", ".dicom"):
        return True
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def check_files_left_out(folder: str | os.PathLike,
                         listed: Sequence[str | os.PathLike]) -> None:
    """Raise :class:`InputError` naming a DICOM image file of ``folder`` that GDCM left out
    of every series (``listed``) because it is broken; other files (notes, an RTSTRUCT) pass.
    """
    d = Path(folder)
    seen = {Path(f).resolve() for f in listed}
    for p in sorted(d.iterdir()):
        if p.name.startswith(".") or not p.is_file() or p.resolve() in seen:
            continue
        if not looks_like_dicom(p):
            continue
        read_headers([p], d)  # raises for a broken or truncated file


def _image_types(ds) -> list[str]:
    value = ds.get("ImageType")
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)
    return [str(v).strip().upper() for v in values]


def localizers(headers: Sequence) -> list[int]:
    """Indices of localizer (scout) images: ``ImageType`` says LOCALIZER, or the image is
    oriented otherwise than the majority of the series."""
    out = {i for i, h in enumerate(headers) if "LOCALIZER" in _image_types(h)}
    orient = {}
    for i, h in enumerate(headers):
        iop = h.get("ImageOrientationPatient")
        if iop is not None and len(iop) == 6:
            orient[i] = tuple(np.round(np.asarray(iop, dtype=float), 2))
    common = Counter(o for i, o in orient.items() if i not in out).most_common(1)
    if common:
        main = np.asarray(common[0][0])
        out |= {i for i, o in orient.items() if np.abs(np.asarray(o) - main).max() > 0.02}
    return sorted(out)


def pixel_spacing_problem(headers: Sequence) -> str | None:
    """What is wrong with the series' ``PixelSpacing`` (GDCM reads 0 as 1 mm), or ``None``."""
    for h in headers:
        value = h.get("PixelSpacing")
        name = Path(str(getattr(h, "filename", "") or "")).name
        where = f" in {name}" if name else ""
        if value is None or len(value) != 2:
            return f"DICOM image lacks a valid PixelSpacing{where}"
        sp = [float(v) for v in value]
        defect = spacing_defect(sp)
        if defect:
            text = "\\".join(f"{v:g}" for v in sp)  # as DICOM writes it
            return f"{defect} PixelSpacing {text}{where}"
    return None
