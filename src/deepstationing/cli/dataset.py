"""``deepstationing dataset import``: a clinic's CTs and contours -> a training cohort."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from deepstationing.cli._actions import command_with_actions
from deepstationing.schema import ORGANS, STATIONS

DESCRIPTION = """\
Build a cohort (the layout 'deepstationing train' reads: one folder per case with
ct.nii.gz, organs.nii.gz, stations.nii.gz, a manifest with patient-level folds) from a
clinic's data.

  import        SRC -o COHORT [--map rois.yaml]
  example-map   print an example ROI mapping file to start from

SRC holds one folder per case (patient scan). In each: a DICOM CT series (any sub-folder)
or ct.nii.gz / image.nii.gz, and the contours: DICOM RT Structure Set file(s), and/or label
maps organs.nii.gz / stations.nii.gz with deepstationing's ids, and/or binary masks
masks/<ROI name>.nii.gz. Structure sets must share the CT's Frame of Reference.

ROI names are mapped to organs and stations by the mapping file (per label, your clinic's
names and synonyms: 'LN 4R', 'Station_4R', '4R', 'Lt Lung', 'Lung-Left', ...; wildcards
allowed; an 'ignore' list) and by the common spellings deepstationing knows. The import
report (COHORT/import_report.md and .json) lists per case the mapped, ignored, unmapped and
empty ROIs and the organs and stations that are missing; the command prints the unmapped
ROI names so you can extend the mapping file and run it again (it replaces the earlier
import). Cases of one DICOM PatientID share a fold.

organ keys:
""" + textwrap.fill(" ".join(ORGANS.keys), 88, initial_indent="  ", subsequent_indent="  ") + """
station names:
  """ + " ".join(STATIONS.keys) + "\n"

EPILOG = """\
examples:
  deepstationing dataset example-map > rois.yaml          # then edit it
  deepstationing dataset import /data/clinic -o cohorts/clinic --map rois.yaml
  deepstationing dataset import /data/clinic -o cohorts/clinic --map rois.yaml --skip-bad
  deepstationing train stations --cohort cohorts/clinic --fold 0 --channels pred:all

Nothing is written unless the whole import succeeds (with --skip-bad, cases that cannot be
read are listed in the report and the rest is imported).
"""


def register(subparsers) -> None:
    add = command_with_actions(
        subparsers, "dataset", help="import a clinic's CT + RTSTRUCT (or label maps) as a "
                                    "cohort", description=DESCRIPTION, epilog=EPILOG)
    imp = add("import", "build a cohort from a folder of case folders")
    imp.add_argument("src", metavar="SRC", help="folder with one folder per case")
    imp.add_argument("-o", "--out", required=True, metavar="COHORT", help="cohort folder")
    imp.add_argument("--map", default=None, metavar="ROIS_YAML",
                     help="ROI mapping file (default: the built-in names only)")
    imp.add_argument("--folds", type=int, default=4, metavar="K",
                     help="number of patient-level folds (default 4)")
    imp.add_argument("--seed", type=int, default=0, help="fold assignment seed (default 0)")
    imp.add_argument("--skip-bad", action="store_true",
                     help="report cases that cannot be imported instead of stopping")
    imp.set_defaults(func=run_import)
    ex = add("example-map", "print an example ROI mapping file",
             own_description="Print an example ROI mapping file (YAML) to edit: "
                             "'deepstationing dataset example-map > rois.yaml'.")
    ex.set_defaults(func=run_example)


def example_map_text() -> str:
    from importlib.resources import files

    return files("deepstationing.data").joinpath("rois.example.yaml").read_text("utf-8")


def run_example(args: argparse.Namespace) -> int:
    sys.stdout.write(example_map_text())
    return 0


def run_import(args: argparse.Namespace) -> int:
    from deepstationing.data.importer import REPORT_MD, import_dataset
    from deepstationing.data.roimap import RoiMapping
    from deepstationing.errors import InputError

    if args.folds < 1:
        raise InputError(None, f"--folds must be at least 1, got {args.folds}")
    mapping = RoiMapping.load(args.map)

    def say(msg: str) -> None:
        print(f"[import] {msg}", file=sys.stderr, flush=True)

    result = import_dataset(args.src, args.out, mapping=mapping, n_folds=args.folds,
                            seed=args.seed, skip_bad=args.skip_bad, progress=say)
    rep = result.report
    print(f"imported {len(rep['cases'])} case(s) into {args.out} "
          f"({result.cohort.n_folds} patient-level folds)")
    if rep["failed"]:
        print(f"failed: {len(rep['failed'])} case(s): "
              + "; ".join(Path(f["source"]).name for f in rep["failed"]))
    if rep["unmapped_rois"]:
        print("unmapped ROIs (add them to the mapping file, under a label or 'ignore'):")
        for name, cases in rep["unmapped_rois"].items():
            print(f"  {name!r}: {len(cases)} case(s) ({', '.join(cases[:5])}"
                  f"{', ...' if len(cases) > 5 else ''})")
    no_st = [c["id"] for c in rep["cases"] if not c["has_stations"]]
    no_org = [c["id"] for c in rep["cases"] if not c["has_organs"]]
    if no_st:
        print(f"cases without any station: {len(no_st)} ({', '.join(no_st[:5])}"
              f"{', ...' if len(no_st) > 5 else ''})")
    if no_org:
        print(f"cases without any organ: {len(no_org)} ({', '.join(no_org[:5])}"
              f"{', ...' if len(no_org) > 5 else ''})")
    print(f"report: {Path(args.out) / REPORT_MD}")
    return 0
