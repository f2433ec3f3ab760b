"""Station and organ label maps out as DICOM for a planning system: RTSTRUCT and/or SEG.

:func:`export_dicom` is what ``deepstationing export`` and ``deepstationing predict
--format`` call: it reads the CT series the labels belong to, puts each label map on the
CT's voxel grid (exactly, see :func:`deepstationing.data.regrid.on_grid`), and writes

* ``rtstruct.dcm``: one RT Structure Set holding a ROI per station present (``LNS_4R``...)
  followed by a ROI per organ present when an organ map is given;
* ``seg_stations.dcm`` / ``seg_organs.dcm``: one DICOM SEG per label map.

>>> parse_formats("nifti, RTSTRUCT,seg")
('nifti', 'rtstruct', 'seg')
>>> parse_formats("dicom")
Traceback (most recent call last):
...
deepstationing.errors.InputError: --format dicom: unknown format 'dicom'; choose from ...
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from deepstationing.data.dicom.rtstruct import rois_from_label_map, write_rtstruct
from deepstationing.data.dicom.seg import write_seg
from deepstationing.data.dicom.series import SeriesReference, read_series_reference
from deepstationing.data.image import Image
from deepstationing.data.regrid import on_grid
from deepstationing.errors import InputError
from deepstationing.schema import ORGANS, STATIONS
from deepstationing.timing import Timings

__all__ = ["FORMATS", "DICOM_FORMATS", "parse_formats", "export_dicom", "RTSTRUCT_FILE",
           "SEG_FILES"]

log = logging.getLogger(__name__)

FORMATS = ("nifti", "rtstruct", "seg")
DICOM_FORMATS = ("rtstruct", "seg")
RTSTRUCT_FILE = "rtstruct.dcm"
SEG_FILES = {"stations": "seg_stations.dcm", "organs": "seg_organs.dcm"}


def parse_formats(text: str, *, allowed: tuple[str, ...] = FORMATS) -> tuple[str, ...]:
    """``"nifti,rtstruct"`` -> ``("nifti", "rtstruct")``; :class:`InputError` if unknown."""
    out: list[str] = []
    for part in str(text).split(","):
        name = part.strip().lower()
        if not name:
            continue
        if name not in allowed:
            raise InputError(None, f"--format {text}: unknown format {name!r}; choose from "
                                   f"{', '.join(allowed)}")
        if name not in out:
            out.append(name)
    if not out:
        raise InputError(None, f"--format {text!r}: no format given")
    return tuple(out)


def export_dicom(ct: str | os.PathLike | SeriesReference, out_dir: str | os.PathLike, *,
                 stations: Image | None = None, organs: Image | None = None,
                 formats: tuple[str, ...] = DICOM_FORMATS, uid_seed: str | None = None,
                 progress: Callable[[str], None] | None = None,
                 timings: Timings | None = None) -> list[Path]:
    """Write RTSTRUCT and/or SEG files for ``stations`` / ``organs`` of the CT series ``ct``.

    ``timings`` receives the seconds of each step (reading the series, tracing the
    contours, writing each file). Returns the written files. Raises :class:`InputError`
    for a CT that is not a DICOM series, label maps not on its grid or holding foreign
    values, or nothing to write.
    """
    t = timings if timings is not None else Timings()
    with t("DICOM: read the CT series"):
        ref = ct if isinstance(ct, SeriesReference) else read_series_reference(ct)
    maps = []
    for labels, img in ((STATIONS, stations), (ORGANS, organs)):
        if img is not None:
            maps.append((labels, on_grid(img, ref.image, name=f"{labels.kind} map",
                                         reference_name=str(ref.folder))))
    if not maps:
        raise InputError(None, "no label map to export")
    out = Path(out_dir)
    written: list[Path] = []
    if "rtstruct" in formats:
        with t("DICOM: RTSTRUCT contours"):
            rois = [roi for labels, img in maps for roi in rois_from_label_map(img, labels)]
        if progress:
            progress(f"RTSTRUCT with {len(rois)} ROIs")
        with t("DICOM: RTSTRUCT file"):
            written.append(write_rtstruct(rois, ref, out / RTSTRUCT_FILE, uid_seed=uid_seed))
    if "seg" in formats:
        for labels, img in maps:
            kind = "stations" if labels is STATIONS else "organs"
            if not img.array.any():
                log.warning("%s map is empty; no SEG written for it", kind)
                continue
            if progress:
                progress(f"SEG of the {kind}")
            with t(f"DICOM: SEG {kind}"):
                written.append(write_seg(img, labels, ref, out / SEG_FILES[kind],
                                         uid_seed=uid_seed))
    return written
