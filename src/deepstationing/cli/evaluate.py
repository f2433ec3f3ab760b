"""``deepstationing evaluate``: per-label DSC, HD, HD95 and ASSD of predicted label maps.

Writes ``OUT/metrics.csv`` (one row per case and label) and ``OUT/summary.md`` (the paper's
Table 1 layout); see :mod:`deepstationing.evaluation.report` for both formats.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Compare predicted label maps with the truth: Dice (DSC), Hausdorff distance (HD), HD95 and
average symmetric surface distance (ASSD) per label, in mm using the voxel spacing. Surface
distances weight each surface element by its true area, so they are right on anisotropic
grids such as 0.7 x 0.7 x 5 mm.

PRED and TRUTH are two label-map files, or two folders matched by case id: image files
(.nii.gz, .nii, .nrrd, .mha; case id = file name without extension) or cohort-style case
folders holding stations.nii.gz (organs.nii.gz with --labels organs).

Empty masks: prediction or truth empty -> DSC 0, distances nan (column 'empty' says
which); both empty -> all nan."""

EPILOG = """\
outputs:
  OUT/metrics.csv   case,label,dsc,hd,hd95,assd,empty   (DSC as a fraction 0..1, mm, nan)
  OUT/summary.md    one table per metric, one row per label + Average, "mean ± std"

examples:
  deepstationing evaluate --pred pred.nii.gz --truth ph/case_000/stations.nii.gz -o res/
  deepstationing evaluate --pred preds/ --truth phantom_small/ -o res/ --name "CT only"
  deepstationing evaluate --pred organs_pred/ --truth cohort/ --labels organs -o res/
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="per-label DSC, HD, HD95, ASSD of predictions against the truth",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pred", required=True, type=Path, metavar="PRED",
                        help="predicted label map file, or folder of them")
    parser.add_argument("--truth", required=True, type=Path, metavar="TRUTH",
                        help="truth label map file, or folder of them (a cohort folder works)")
    parser.add_argument("-o", "--out", required=True, type=Path, metavar="OUT",
                        help="output folder for metrics.csv and summary.md")
    parser.add_argument("--labels", choices=("stations", "organs", "all"), default="stations",
                        help="label schema: the 12 stations (default), the 22 organs, or "
                             "every integer label present (named by its value)")
    parser.add_argument("--name", default=None,
                        help="column name of this result set in summary.md "
                             "(default: the prediction file or folder name)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="skip cases that have only a prediction or only a truth "
                             "(with a warning) instead of stopping")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from deepstationing.api import evaluate

    result = evaluate(args.pred, args.truth, args.out, labels=args.labels, name=args.name,
                      allow_missing=args.allow_missing,
                      progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"wrote {result.csv} and {result.summary} ({result.cases} "
          f"case{'s' if result.cases != 1 else ''}, {result.labels} labels)")
    return 0
