"""``deepstationing view``: render a case (CT, organs, stations) to a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

import SimpleITK as sitk

from deepstationing.data.cohort import CASE_FILES
from deepstationing.data.image import read_ct, read_image
from deepstationing.errors import InputError

DESCRIPTION = """\
Render axial, coronal and sagittal slices of a case with organ and station overlays and a
legend (mediastinal window W400/L40, radiological display: patient right on the image left).

Give a case folder of a cohort (reads ct/organs/stations .nii.gz from it), a CT (an image
file or a DICOM series folder), or any subset of --ct, --organs and --stations. --compare adds
a row with a second station map (a rule baseline, a prediction) on the same slices, so the
two can be compared.

An output folder of 'predict' works too: its qc.json gives the CT's path and the QC
verdict and findings, printed under the panels (--qc FILE gives them for other inputs).
"""

EPILOG = """\
examples:
  deepstationing view phantom_small/case_000 -o case.png
  deepstationing view ct.nii.gz -o ct.png
  deepstationing view dicom_folder/ --stations pred/stations.nii.gz -o pred.png
  deepstationing view --ct ct.nii.gz --stations pred.nii.gz -o pred.png
  deepstationing view phantom_small/case_000 --compare rules.nii.gz -o cmp.png
  deepstationing view phantom_small/case_000 --axial-mm -150 -180 -210 -o case.png
  deepstationing view out/case_001 -o pred.png        # a prediction, with its QC findings
"""


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("view", help="render a case with organ/station overlays to PNG",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("case", nargs="?", metavar="CASE_OR_CT",
                   help="case folder of a cohort, or a CT: image file (.nii.gz, .nrrd, .mha) "
                        "or DICOM series folder")
    p.add_argument("--ct", metavar="FILE", help="CT image")
    p.add_argument("--organs", metavar="FILE", help="22-organ label map")
    p.add_argument("--stations", metavar="FILE", help="12-station label map")
    p.add_argument("--compare", metavar="FILE",
                   help="second station map drawn in an extra row (e.g. rules, prediction)")
    p.add_argument("--compare-name", default=None, metavar="NAME",
                   help="row title of --compare (default: its file name)")
    p.add_argument("--axial-mm", type=float, nargs="+", metavar="Z",
                   help="world z (mm) of the axial slices (default: superior stations, "
                        "carina, inferior stations)")
    p.add_argument("--point-mm", type=float, nargs=3, metavar=("X", "Y", "Z"),
                   help="world point the coronal and sagittal slices pass through")
    p.add_argument("--qc", metavar="QC_JSON",
                   help="QC results to print under the panels (default: the case folder's "
                        "qc.json, if any)")
    p.add_argument("--title", help="figure title (default: the case name)")
    p.add_argument("-o", "--out", required=True, metavar="PNG", help="output PNG")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from deepstationing.qc.verdict import QC_FILE, read_qc
    from deepstationing.viz import render_case  # matplotlib only when used

    files = {"ct": args.ct, "organs": args.organs, "stations": args.stations}
    qc_file = args.qc
    if args.case:
        d = Path(args.case)
        if d.is_dir() and any((d / CASE_FILES[role]).exists() for role in files):
            for role in files:  # a case folder of a cohort
                if files[role] is None and (d / CASE_FILES[role]).exists():
                    files[role] = str(d / CASE_FILES[role])
            if qc_file is None and (d / QC_FILE).exists():  # an output folder of predict
                qc_file = str(d / QC_FILE)
        else:  # a CT: an image file or a DICOM series folder
            if not d.exists():
                raise InputError(d, "no such file or folder")
            if d.is_dir() and not sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(d)):
                raise InputError(d, "neither a case folder (ct.nii.gz, organs.nii.gz, "
                                    "stations.nii.gz) nor a DICOM series folder")
            if files["ct"] is not None:
                raise InputError(d, f"two CTs given: {d} and --ct {files['ct']}")
            files["ct"] = str(d)
    qc = read_qc(qc_file) if qc_file else None
    if qc is not None and files["ct"] is None and qc.inputs.get("ct") \
            and Path(qc.inputs["ct"]).exists():
        files["ct"] = qc.inputs["ct"]
    if not any(files.values()):
        raise InputError(None, "nothing to view: give CASE_OR_CT or --ct/--organs/--stations")
    imgs = {r: (None if f is None else read_ct(f) if r == "ct" else read_image(f, label=True))
            for r, f in files.items()}
    cmp = read_image(args.compare, label=True) if args.compare else None
    name = args.compare_name or (Path(args.compare).name.split(".")[0] if args.compare else "")
    title = args.title if args.title is not None else (Path(args.case).name if args.case
                                                       else None)
    out = render_case(args.out, ct=imgs["ct"], organs=imgs["organs"],
                      stations=imgs["stations"], compare=cmp, compare_name=name,
                      axial_mm=args.axial_mm, point_mm=args.point_mm, title=title,
                      notes=qc_notes(qc) if qc is not None else None)
    print(f"wrote {out}")
    if qc is not None:
        print(f"QC {qc.line()}")
    return 0


def qc_notes(report) -> list[str]:
    """Lines under the panels: the verdict, each finding that fired, what was not checked."""
    lines = [f"{report.verdict}: QC verdict ({len(report.fired)} finding(s) fired)"]
    lines += [f"{f.severity}: {f.line()}" for f in report.fired]
    lines += [f"not checked: {s.name} ({s.reason})" for s in report.skipped]
    return lines
