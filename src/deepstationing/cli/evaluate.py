"""``deepstationing evaluate``: per-label DSC, HD, HD95 and ASSD of predicted label maps.

Writes ``OUT/metrics.csv`` (one row per case and label) and ``OUT/summary.md`` (the paper's
Table 1 layout); see :mod:`deepstationing.evaluation.report` for both formats.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deepstationing.data.image import check_same_geometry, read_image
from deepstationing.errors import InputError
from deepstationing.evaluation.metrics import Metrics, label_map_metrics
from deepstationing.evaluation.report import (
    case_id_of,
    match_cases,
    rows_for_case,
    write_metrics_csv,
    write_summary,
)
from deepstationing.schema import get_label_set

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
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a folder")
    match = match_cases(args.pred, args.truth, args.labels)
    unmatched = []
    if match.pred_only:
        unmatched.append("prediction(s) without truth: "
                         + ", ".join(str(p) for p in match.pred_only))
    if match.truth_only:
        unmatched.append("truth case(s) without prediction: "
                         + ", ".join(str(p) for p in match.truth_only))
    if unmatched:
        if not args.allow_missing:
            raise InputError(args.pred, "unmatched files: " + "; ".join(unmatched)
                             + " (use --allow-missing to skip them)")
        print("deepstationing: warning: skipping " + "; ".join(unmatched), file=sys.stderr)
    if not match.pairs:
        raise InputError(args.pred, f"no prediction matches a truth case in {args.truth}")

    label_ids = None if args.labels == "all" else get_label_set(args.labels).ids
    n = len(match.pairs)
    results: list[tuple[str, dict[int, Metrics]]] = []
    for i, pair in enumerate(match.pairs, start=1):
        if n > 1:
            print(f"[{i}/{n}] {pair.case}", file=sys.stderr, flush=True)
        truth = read_image(pair.truth, label=True)
        pred = read_image(pair.pred, label=True)
        check_same_geometry(truth, pred, reference_name="truth", other_name="prediction")
        if label_ids is not None:
            _warn_unknown_labels(pred.array.max(initial=0), pair.pred, args.labels)
            _warn_unknown_labels(truth.array.max(initial=0), pair.truth, args.labels)
        results.append((pair.case, label_map_metrics(truth.array, pred.array,
                                                     truth.array_spacing, label_ids)))

    if label_ids is None:  # 'all': every case gets a row for every label seen in any case
        seen = sorted({v for _, m in results for v in m})
        results = [(c, {v: m.get(v, Metrics.for_empty("both")) for v in seen})
                   for c, m in results]
    rows = [row for case, m in results for row in rows_for_case(case, m, args.labels)]
    name = args.name or case_id_of(args.pred)
    csv_path = write_metrics_csv(rows, out / "metrics.csv")
    md_path = write_summary({name: rows}, out / "summary.md")
    print(f"wrote {csv_path} and {md_path} ({n} case{'s' if n != 1 else ''}, "
          f"{len(rows) // max(n, 1)} labels)")
    return 0


def _warn_unknown_labels(top: int, path: Path, labels: str) -> None:
    size = len(get_label_set(labels))
    if int(top) > size:
        print(f"deepstationing: warning: {path}: label values above {size} are not {labels} "
              f"and are ignored (max {int(top)}; use --labels organs or all?)",
              file=sys.stderr)
