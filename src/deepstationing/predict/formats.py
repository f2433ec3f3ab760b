"""Every output format of ``predict`` in one table, and the one function that writes them.

A format is a name the command line takes (``--format nifti,rtstruct,seg``), the files it
writes into a case's folder, and whether it needs a DICOM CT series as input (RTSTRUCT and
SEG reference the series' UIDs; their writers live in :mod:`deepstationing.data.dicom`).

Examples
--------
>>> parse_predict_formats("seg, nifti")
('seg', 'nifti')
>>> [f.name for f in FORMATS.values() if f.needs_dicom]
['rtstruct', 'seg']
>>> FORMATS["nifti"].files
('organs.nii.gz', 'stations.nii.gz')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deepstationing.data.dicom.export import (
    RTSTRUCT_FILE,
    SEG_FILES,
    export_dicom,
    parse_formats,
)
from deepstationing.data.image import Image, write_image

__all__ = ["OutputFormat", "FORMATS", "parse_predict_formats", "write_outputs"]


@dataclass(frozen=True)
class OutputFormat:
    """One output format: its name, the files it writes, whether it needs DICOM input."""

    name: str
    files: tuple[str, ...]
    needs_dicom: bool
    description: str


FORMATS: dict[str, OutputFormat] = {f.name: f for f in (
    OutputFormat("nifti", ("organs.nii.gz", "stations.nii.gz"), False,
                 "label maps on exactly the input CT's grid"),
    OutputFormat("rtstruct", (RTSTRUCT_FILE,), True,
                 "an RT Structure Set, one ROI per station and organ, referencing the series"),
    OutputFormat("seg", tuple(SEG_FILES.values()), True,
                 "DICOM SEG of the stations and of the organs"),
)}


def parse_predict_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"nifti,rtstruct"`` (or a sequence of names) -> the names in order, each once;
    :class:`InputError` for a name that is not in :data:`FORMATS`."""
    joined = text if isinstance(text, str) else ",".join(str(t) for t in text)
    return parse_formats(joined, allowed=tuple(FORMATS))


def write_outputs(formats: Sequence[str], ct_path: str | os.PathLike, folder: Path,
                  organs: Image | None, stations: Image) -> list[str]:
    """Write a case's ``formats`` into ``folder`` (each file atomically); returns the names
    of the files written. ``ct_path`` is the input (the DICOM series for RTSTRUCT/SEG)."""
    names: list[str] = []
    if "nifti" in formats:
        if organs is not None:
            write_image(organs, folder / "organs.nii.gz")
            names.append("organs.nii.gz")
        write_image(stations, folder / "stations.nii.gz")
        names.append("stations.nii.gz")
    dicom = tuple(f for f in formats if FORMATS[f].needs_dicom)
    if dicom:
        written = export_dicom(ct_path, folder, stations=stations, organs=organs, formats=dicom)
        names += [Path(p).name for p in (written or [])]
    return names
