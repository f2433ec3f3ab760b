"""``deepstationing qc``: check predicted cases for plausibility again (qc.json)."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Run the plausibility checks of 'predict' again on its output folder: one case's folder
(OUT when one CT was predicted) or a batch's (OUT, with a folder per case). Reads
stations.nii.gz and organs.nii.gz from each, the CT, model folder and folds recorded in its
qc.json (or given here), prints one line per case with the verdict (ok / check /
implausible) and the findings that fired, and rewrites qc.json.

The checks: labels outside the body; stations outside the mediastinum; lateral stations
and organs on the wrong side of the trachea; labels in islands; stations and organs
missing; volumes and positions (from the carina) far outside the training cohort's (from
MODEL/qc_reference.json); disagreement with the margin rules run on the predicted organs.
Each finding has a value and a limit: docs/qc.md."""

EPILOG = """\
examples:
  deepstationing qc out/                       # a case's or a batch's output folder
  deepstationing qc out/case_001 --ct ct.nii.gz --model runs/models/phantom-cpu
  deepstationing qc out/ --fail-on implausible # exit code 3 when a case is implausible
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("qc", help="check predicted cases for plausibility again",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", metavar="CASE_OUT", help="an output folder of 'predict'")
    p.add_argument("--ct", default=None, metavar="CT",
                   help="the CT the case was predicted from (default: the one qc.json "
                        "records; one case only)")
    p.add_argument("--model", default=None, metavar="DIR",
                   help="model folder whose training-cohort reference to use (default: the "
                        "one qc.json records)")
    p.add_argument("--folds", default=None, metavar="LIST",
                   help="folds the prediction used, e.g. 0 (default: as recorded)")
    p.add_argument("--fail-on", choices=("implausible", "check"), default=None,
                   help="exit with code 3 when a case's verdict is this or worse")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deepstationing.errors import InputError
    from deepstationing.qc.run import check_output_folder, find_case_folders
    from deepstationing.qc.verdict import at_least

    folders = find_case_folders(args.folder)
    if args.ct and len(folders) > 1:
        raise InputError(args.folder, f"--ct goes with one case; this folder holds "
                                      f"{len(folders)}")
    folds = None
    if args.folds:
        try:
            folds = [int(f) for f in args.folds.split(",")]
        except ValueError:
            raise InputError(None, f"--folds {args.folds!r}: expected e.g. 0,1") from None
    verdicts = []
    for i, folder in enumerate(folders, 1):
        report = check_output_folder(folder, ct=args.ct, model=args.model, folds=folds)
        verdicts.append(report.verdict)
        print(f"[{i}/{len(folders)}] {folder.name}: QC {report.line()}", flush=True)
        for skip in report.skipped:
            print(f"    not checked: {skip.name} ({skip.reason})")
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in ("ok", "check", "implausible")
                       if v in verdicts)
    print(f"{len(folders)} case(s): {counts}", file=sys.stderr)
    if args.fail_on and any(at_least(v, args.fail_on) for v in verdicts):
        return 3
    return 0
