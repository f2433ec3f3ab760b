"""Header checks ITK does not make: truncated voxel data and impossible geometry.

ITK reads some broken files without complaint: a NIfTI file (``.nii`` or ``.nii.gz``) cut
short comes back with its full shape and zeros for the missing tail; a zero, NaN or infinite
NIfTI ``pixdim`` or NRRD spacing is replaced by 1 mm; a negative one is made positive
(flipping the axis). Where ITK does refuse (a singular MetaImage ``TransformMatrix``, a zero
NRRD space direction) its message is hard to read ("0 0 1", "Refusing to change spacing").
:func:`header_problem` reads the header itself (NIfTI through nibabel; NRRD and MetaImage
text headers here) and says what is wrong in one line, before ITK reads the voxels.

The truncation check is cheap: an uncompressed payload is compared with the file size; a
gzip stream's trailer records its decompressed size (modulo 2**32), which is compared with
the size the header implies; only when they differ is the stream decompressed to find out
(a complete file with extra gzip members or trailing bytes passes, a truncated one fails).

>>> import gzip, tempfile, pathlib
>>> import numpy as np, SimpleITK as sitk
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> noise = np.random.default_rng(0).integers(-1000, 1000, (4, 50, 60)).astype(np.int16)
>>> sitk.WriteImage(sitk.GetImageFromArray(noise), str(d / "a.nii"))
>>> header_problem(d / "a.nii") is None
True
>>> data = gzip.compress((d / "a.nii").read_bytes())
>>> _ = (d / "cut.nii.gz").write_bytes(data[: len(data) // 2])
>>> header_problem(d / "cut.nii.gz")
'truncated file: the gzip stream ends before its end marker, after 12296 of 24352 bytes'
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["header_problem", "payload_problem", "spacing_defect"]

_GZIP_MAGIC = b"\x1f\x8b"

#: Bytes per voxel of NRRD ``type`` names (teem's list) and MetaImage ``ElementType``s.
_NRRD_TYPES = {
    **dict.fromkeys(("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8",
                     "uint8_t"), 1),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16",
                     "int16_t", "ushort", "unsigned short", "unsigned short int", "uint16",
                     "uint16_t"), 2),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint", "unsigned int",
                     "uint32", "uint32_t", "float"), 4),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long",
                     "signed long long int", "int64", "int64_t", "ulonglong",
                     "unsigned long long", "unsigned long long int", "uint64", "uint64_t",
                     "double"), 8),
}
_MET_TYPES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4,
              "MET_UINT": 4, "MET_FLOAT": 4, "MET_DOUBLE": 8, "MET_LONG_LONG": 8,
              "MET_ULONG_LONG": 8}


@dataclass
class _Header:
    """What a header says: geometry as declared and where its voxel data lie."""

    spacing: list[float] | None = None  # declared spacing per spatial axis
    spacing_field: str = "spacing"
    directions: np.ndarray | None = None  # columns: world vector of each index axis
    directions_field: str = "direction"
    data_file: Path | None = None
    data_offset: int = 0
    payload: int | None = None  # decoded voxel bytes
    encoding: str = "raw"  # raw | gzip | zlib (MetaImage) | other
    compressed_size: int | None = None  # MetaImage CompressedDataSize
    scaled: bool = True  # direction vectors carry the spacing (NIfTI sform, NRRD)
    orthonormal: bool = False  # a sheared matrix is an error (ITK has no fallback)
    problem: str | None = None  # found while parsing


# ---------------------------------------------------------------------- public
def header_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with the header or the voxel data size of a NIfTI/NRRD/MetaImage file.

    Returns ``None`` when nothing is found (also for other formats and for headers this
    module cannot parse: ITK then has the last word).
    """
    header = _parse(Path(path))
    if header is None:
        return None
    return header.problem or _geometry_problem(header) or _payload_problem(header)


def payload_problem(path: str | os.PathLike) -> str | None:
    """Only the size check of :func:`header_problem` (used on files just written)."""
    header = _parse(Path(path))
    return None if header is None else header.problem or _payload_problem(header)


def spacing_defect(spacing) -> str | None:
    """``"non-finite"``, ``"zero"`` or ``"negative"`` for spacing no voxel can have, else None.

    >>> spacing_defect([0.7, 0.0, 5.0]), spacing_defect([0.7, 0.7, 5.0])
    ('zero', None)
    """
    sp = np.asarray(spacing, dtype=float)
    if not np.all(np.isfinite(sp)):
        return "non-finite"
    if np.any(sp == 0):
        return "zero"
    if np.any(sp < 0):
        return "negative"
    return None


# ---------------------------------------------------------------------- checks
def _fmt(values) -> str:
    return ", ".join(f"{float(v):g}" for v in values)


def _geometry_problem(h: _Header) -> str | None:
    defect = None if h.spacing is None else spacing_defect(h.spacing)
    if defect:
        return f"{defect} voxel spacing in the header ({h.spacing_field} {_fmt(h.spacing)})"
    if h.directions is not None:
        m = h.directions
        values = f"{h.directions_field} {_fmt(m.T.ravel())}"
        if not np.all(np.isfinite(m)):
            return f"non-finite direction in the header ({values})"
        norms = np.linalg.norm(m, axis=0)
        if np.any(norms == 0) and h.scaled:
            return f"zero voxel spacing in the header (a zero axis vector: {values})"
        if np.any(norms == 0) or abs(np.linalg.det(m / norms)) < 1e-6:
            return f"singular direction matrix in the header, axes not independent ({values})"
        unit = m / norms
        if h.orthonormal and np.abs(unit.T @ unit - np.eye(len(unit))).max() > 1e-3:
            return f"direction matrix in the header is not orthonormal, axes sheared ({values})"
    return None


def _payload_problem(h: _Header) -> str | None:
    if h.payload is None or h.data_file is None:
        return None
    try:
        size = h.data_file.stat().st_size
    except OSError:
        return f"voxel data file {h.data_file} is missing"
    available = size - h.data_offset
    if h.encoding == "raw":
        if available < h.payload:
            return (f"truncated file: {max(available, 0)} bytes of voxel data where the "
                    f"header needs {h.payload}")
        return None
    if h.encoding == "zlib" and h.compressed_size is not None:
        if available < h.compressed_size:
            return (f"truncated file: {max(available, 0)} bytes of compressed voxel data "
                    f"where the header says {h.compressed_size}")
        return None
    if h.encoding == "gzip":
        return _gzip_problem(h.data_file, h.data_offset, h.payload)
    return None


def _gzip_problem(path: Path, offset: int, expected: int) -> str | None:
    """Does the gzip stream from ``offset`` decompress to at least ``expected`` bytes?"""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if size - offset >= 18:  # smallest gzip member
            fh.seek(size - 4)
            if int.from_bytes(fh.read(4), "little") == expected % 2**32:
                return None  # the trailer records the expected size: complete
        fh.seek(offset)
        try:
            n, ended = _gunzip_size(fh)
        except zlib.error as exc:
            return f"corrupt gzip data ({exc})"
    if not ended:
        return (f"truncated file: the gzip stream ends before its end marker, after {n} of "
                f"{expected} bytes")
    if n < expected:
        return f"truncated file: {n} bytes of data where the header needs {expected}"
    return None


def _gunzip_size(fh) -> tuple[int, bool]:
    """Decompressed size of the gzip member(s) from ``fh``'s position; did the last one end?"""
    n, d, pending = 0, zlib.decompressobj(31), b""
    while True:
        if not pending:
            pending = fh.read(1 << 20)
            if not pending:
                return n, d.eof
        if d.eof:
            if not pending.strip(b"\0"):  # zero padding after the last member
                pending = b""
                continue
            d = zlib.decompressobj(31)  # another member
        n += len(d.decompress(pending, 16 << 20))  # bounded output: zeros compress 1000:1
        pending = d.unused_data if d.eof else d.unconsumed_tail


# ---------------------------------------------------------------------- parsing
def _parse(p: Path) -> _Header | None:
    name = p.name.lower()
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
        if name.endswith((".nii", ".nii.gz")):
            return _parse_nifti(p, head[:2] == _GZIP_MAGIC)
        if head.startswith(b"NRRD000"):
            return _parse_nrrd(p)
        if name.endswith((".mha", ".mhd")):
            return _parse_metaimage(p)
    except (OSError, EOFError, ValueError, zlib.error, IndexError, KeyError):
        return None  # unparseable here: let ITK decide
    return None


def _parse_nifti(p: Path, gz: bool) -> _Header | None:
    import nibabel as nib  # the reference NIfTI implementation; header only

    opener = gzip.open if gz else open
    try:
        with opener(p, "rb") as fh:
            raw = fh.read(540)
    except EOFError:
        return _Header(problem="truncated file: the gzip stream ends inside the header")
    if len(raw) < 348:
        return None
    sizeof = {int.from_bytes(raw[:4], "little"), int.from_bytes(raw[:4], "big")}
    klass = nib.Nifti2Header if 540 in sizeof else nib.Nifti1Header
    size = klass.template_dtype.itemsize
    if len(raw) < size:
        return _Header(problem="truncated file: it ends inside the header")
    hdr = klass(raw[:size], check=False)  # the fixed header; extensions are not needed
    shape = hdr.get_data_shape()
    ndim = min(len(shape), 3)
    payload = int(np.prod(shape, dtype=np.int64)) * hdr.get_data_dtype().itemsize
    h = _Header(spacing=[float(v) for v in hdr["pixdim"][1:1 + ndim]],
                spacing_field="pixdim", data_file=p, encoding="gzip" if gz else "raw",
                payload=int(hdr.get_data_offset()) + payload)
    if int(hdr["sform_code"]) > 0:
        h.directions = np.asarray(hdr.get_sform(), float)[:3, :3]
        h.directions_field = "sform"
        h.orthonormal = int(hdr["qform_code"]) == 0  # else ITK falls back to the qform
    return h


def _text_header(p: Path, end) -> tuple[list[str], int]:
    """Header lines up to the line where ``end(line)`` is true, and the data offset."""
    with open(p, "rb") as fh:
        head = fh.read(1 << 16)  # headers are short; never read a large binary file whole
    lines, offset = [], 0
    for raw in head.splitlines(keepends=True):
        offset += len(raw)
        line = raw.decode("latin-1").rstrip("\r\n")
        lines.append(line)
        if end(line):
            if not raw.endswith(b"\n"):
                break  # cut inside the header
            return lines, offset
    raise ValueError("header end not found")


def _parse_nrrd(p: Path) -> _Header | None:
    lines, offset = _text_header(p, lambda ln: ln.strip() == "")
    fields: dict[str, str] = {}
    for ln in lines[1:]:
        if ln.startswith("#") or ":=" in ln or ": " not in ln:
            continue
        key, value = ln.split(": ", 1)
        fields[key.strip().lower()] = value.strip()
    h = _Header()
    sizes = [int(v) for v in fields["sizes"].split()]
    if "space directions" in fields:
        vecs = re.findall(r"\(([^)]*)\)|none", fields["space directions"])
        cols = [[float(x) for x in v.split(",")] for v in vecs if v]
        if cols and all(len(c) == len(cols[0]) for c in cols):
            m = np.asarray(cols, float).T
            if m.shape[0] == m.shape[1]:
                h.directions, h.directions_field = m, "space directions"
            else:
                h.spacing, h.spacing_field = list(np.linalg.norm(m, axis=0)), "space directions"
    elif "spacings" in fields and int(fields["dimension"]) == 3:
        h.spacing = [float(v) for v in fields["spacings"].split()][:3]
        h.spacing_field = "spacings"
    encoding = fields.get("encoding", "raw").lower()
    h.encoding = {"raw": "raw", "gzip": "gzip", "gz": "gzip"}.get(encoding, "other")
    data_file = fields.get("data file", fields.get("datafile"))
    skips = ("line skip" in fields or "lineskip" in fields or "byte skip" in fields
             or "byteskip" in fields)
    if skips or (data_file and (" " in data_file or data_file.upper().startswith("LIST"))):
        return h  # geometry only: unusual data layouts are left to ITK
    h.data_file = (p.parent / data_file) if data_file else p
    h.data_offset = 0 if data_file else offset
    bpv = _NRRD_TYPES.get(fields["type"].lower())
    if bpv is not None:
        h.payload = int(np.prod(sizes, dtype=np.int64)) * bpv
    return h


def _parse_metaimage(p: Path) -> _Header | None:
    lines, offset = _text_header(p, lambda ln: ln.split("=")[0].strip() == "ElementDataFile")
    fields = {}
    for ln in lines:
        if "=" in ln:
            key, value = ln.split("=", 1)
            fields[key.strip()] = value.strip()
    h = _Header()
    ndims = int(fields["NDims"])
    if "ElementSpacing" in fields:
        h.spacing = [float(v) for v in fields["ElementSpacing"].split()][:3]
        h.spacing_field = "ElementSpacing"
    for key in ("TransformMatrix", "Rotation", "Orientation"):
        if key in fields:
            values = [float(v) for v in fields[key].split()]
            if len(values) == ndims * ndims:
                h.directions = np.asarray(values, float).reshape(ndims, ndims)
                h.directions_field, h.scaled = key, False
            break
    compressed = fields.get("CompressedData", "False").lower() == "true"
    h.encoding = "zlib" if compressed else "raw"
    if "CompressedDataSize" in fields:
        h.compressed_size = int(fields["CompressedDataSize"])
    data = fields["ElementDataFile"]
    if int(fields.get("HeaderSize", "0")) != 0 or data.upper().startswith("LIST") \
            or "%" in data or " " in data:
        return h
    h.data_file = p if data.upper() == "LOCAL" else p.parent / data
    h.data_offset = offset if data.upper() == "LOCAL" else 0
    bpv = _MET_TYPES.get(fields.get("ElementType", ""))
    if bpv is not None:
        channels = int(fields.get("ElementNumberOfChannels", "1"))
        sizes = [int(v) for v in fields["DimSize"].split()]
        h.payload = int(np.prod(sizes, dtype=np.int64)) * bpv * channels
    if compressed and h.compressed_size is None:
        h.payload = None
    return h
