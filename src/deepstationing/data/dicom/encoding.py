r"""The ROI Contour Sequence of an RT Structure Set as bytes (Implicit VR Little Endian).

A structure set of a full-resolution CT holds thousands of contours; pydicom builds and
writes each as a dataset of checked elements, about a quarter of a millisecond apiece, which
was most of the time to write an RTSTRUCT (and seconds for a scattered prediction). The
sequence is made of few kinds of elements, all of them plain (UI, CS, IS, DS and nested
SQ), so :func:`roi_contour_sequence` encodes it directly, as PS3.5 section 7.1.3 lays it
out: tag, 32-bit length, value padded to an even length (UI with NUL, text with a space),
items and sequences with explicit lengths. pydicom writes the bytes as they are
(:func:`raw_element`, a dataset marked with its encoding) and reads them back as it reads
any file; the tests compare what it reads with the same sequence built by pydicom.

Why Implicit VR: a Contour Data value of more than 65534 bytes (some 5000 vertices: a large
region with a wiggly outline, or one with many holes joined to it) does not fit the 16-bit
length field DS has in Explicit VR. pydicom then writes it with VR UN, and neither
plastimatch nor pydicom's reader (ours) read such a contour back (plastimatch wrote no mask
at all). In Implicit VR every length is 32 bits; it is the transfer syntax every DICOM
application supports, and the one planning systems commonly write structure sets in.

>>> import pydicom
>>> data = b"\\".join([b"1", b"2", b"-3.5"] * 4)
>>> seq = roi_contour_sequence([(8, (148, 103, 189), [(0, 4, data)])],
...                            "1.2.840.10008.5.1.4.1.1.2", ["1.2.3.4"])
>>> ds = pydicom.dataset.Dataset()
>>> ds[0x30060039] = raw_element(0x30060039, seq)
>>> roi = ds.ROIContourSequence[0]
>>> c = roi.ContourSequence[0]
>>> int(roi.ReferencedROINumber), [int(v) for v in roi.ROIDisplayColor], c.ContourGeometricType
(8, [148, 103, 189], 'CLOSED_PLANAR')
>>> [float(v) for v in c.ContourData[:3]], c.ContourImageSequence[0].ReferencedSOPInstanceUID
([1.0, 2.0, -3.5], '1.2.3.4')
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

__all__ = ["roi_contour_sequence", "raw_element"]

_ITEM = struct.pack("<HH", 0xFFFE, 0xE000)


def _element(tag: int, vr: str, value: bytes) -> bytes:
    """One element in Implicit VR Little Endian (``vr`` only chooses the padding)."""
    if len(value) % 2:
        value += b"\0" if vr == "UI" else b" "
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def _items(contents: Iterable[bytes]) -> bytes:
    return b"".join(_ITEM + struct.pack("<I", len(c)) + c for c in contents)


def roi_contour_sequence(rois: Sequence[tuple[int, Sequence[int], Sequence]],
                         sop_class_uid: str, sop_instance_uids: Sequence[str]) -> bytes:
    """The value of (3006,0039) ROI Contour Sequence.

    Args:
        rois: per ROI ``(ROI number, display colour, contours)``, each contour
            ``(CT slice index, number of points, Contour Data)``, the data as ASCII decimal
            strings separated by backslashes (:func:`~.values.ds_joined`).
        sop_class_uid, sop_instance_uids: the CT's SOP class and each slice's instance UID
            (Contour Image Sequence).
    """
    images: dict[int, bytes] = {}

    def image(k: int) -> bytes:
        if k not in images:
            images[k] = _element(0x30060016, "SQ", _items([
                _element(0x00081150, "UI", sop_class_uid.encode("ascii"))
                + _element(0x00081155, "UI", sop_instance_uids[k].encode("ascii"))]))
        return images[k]

    closed = _element(0x30060042, "CS", b"CLOSED_PLANAR")
    out = []
    for number, color, contours in rois:
        items = (image(k) + closed + _element(0x30060046, "IS", str(n).encode("ascii"))
                 + _element(0x30060048, "IS", str(i).encode("ascii"))
                 + _element(0x30060050, "DS", data)
                 for i, (k, n, data) in enumerate(contours, start=1))
        out.append(_element(0x3006002A, "IS", "\\".join(str(int(v)) for v in color)
                            .encode("ascii"))
                   + _element(0x30060040, "SQ", _items(items))
                   + _element(0x30060084, "IS", str(number).encode("ascii")))
    return _items(out)


def raw_element(tag: int, value: bytes) -> RawDataElement:
    """A sequence element holding ``value`` (encoded items) as it is.

    pydicom writes it unchanged into a dataset marked as Implicit VR Little Endian
    (:meth:`pydicom.dataset.Dataset.set_original_encoding`), and parses it when read.
    """
    return RawDataElement(Tag(tag), "SQ", len(value), value, 0, True, True)
