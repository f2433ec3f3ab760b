"""``deepstationing export``: label maps -> RT Structure Set / DICOM SEG for a planning system."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Write station (and organ) label maps as DICOM objects that reference the CT series they
were made on, for import into a treatment planning system:

  rtstruct  OUT/rtstruct.dcm: an RT Structure Set with one ROI per station present
            (LNS_1L ... LNS_8) and, if an organ map is given, one per organ (Lung_R,
            Trachea, ...), display colours from the label schema, every contour tied to
            its CT slice (SOP Instance UID) and the series' Frame of Reference. Holes use
            DICOM's keyhole technique (one contour per region). Marked UNAPPROVED.
  seg       OUT/seg_stations.dcm, OUT/seg_organs.dcm: DICOM Segmentations with SNOMED CT
            coded segments (e.g. 4R = lower paratracheal lymph node + Right).

LABELS are NIfTI/NRRD/MHA label maps with the toolkit's ids (deepstationing predict writes
them) on the CT's voxel grid (the same grid stored with flipped or permuted axes is fine).
Each is a stations or an organs map: say which with stations=FILE / organs=FILE, or let
the file name tell ('stations.nii.gz', 'organs.nii.gz').
"""

EPILOG = """\
examples:
  deepstationing export out/stations.nii.gz --ct dicom/CT_series -o out/dicom
  deepstationing export out/stations.nii.gz out/organs.nii.gz --ct dicom/CT -o rt/ \\
      --format rtstruct
  deepstationing export stations=pred.nii.gz --ct dicom/CT -o rt/ --format rtstruct,seg

'deepstationing predict DICOM_FOLDER -o OUT --model M --format nifti,rtstruct,seg' does
the same in one go.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="label maps -> DICOM RTSTRUCT / SEG referencing the CT series",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labels", nargs="+", metavar="LABELS",
                        help="label map(s): FILE, stations=FILE or organs=FILE")
    parser.add_argument("--ct", required=True, metavar="DICOM_DIR",
                        help="folder holding the CT series the labels were made on")
    parser.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder")
    parser.add_argument("--format", default="rtstruct,seg", metavar="LIST",
                        help="rtstruct, seg or both, comma-separated (default: both)")
    parser.set_defaults(func=run)


def _kind_and_path(arg: str) -> tuple[str, Path]:
    from deepstationing.errors import InputError

    if "=" in arg:
        kind, _, path = arg.partition("=")
        kind = kind.strip().lower().rstrip("s") + "s"
        if kind not in ("stations", "organs"):
            raise InputError(None, f"{arg}: say stations=FILE or organs=FILE")
        return kind, Path(path)
    name = Path(arg).name.lower()
    if "station" in name:
        return "stations", Path(arg)
    if "organ" in name:
        return "organs", Path(arg)
    raise InputError(arg, "cannot tell a stations map from an organs map by its name; "
                          "write stations=FILE or organs=FILE")


def run(args: argparse.Namespace) -> int:
    from deepstationing.data.dicom.export import DICOM_FORMATS, export_dicom, parse_formats
    from deepstationing.data.image import read_image
    from deepstationing.errors import InputError

    formats = parse_formats(args.format, allowed=DICOM_FORMATS)
    maps: dict[str, object] = {}
    for arg in args.labels:
        kind, path = _kind_and_path(arg)
        if kind in maps:
            raise InputError(path, f"a second {kind} map; give one stations and/or one "
                                   "organs map")
        maps[kind] = read_image(path, label=True)

    def say(msg: str) -> None:
        print(f"[export] {msg}", file=sys.stderr, flush=True)

    files = export_dicom(args.ct, args.out, stations=maps.get("stations"),
                         organs=maps.get("organs"), formats=formats, progress=say)
    for f in files:
        print(f)
    return 0
