"""``deepstationing rules``: stations from organ masks by margin-based IASLC rules."""

from __future__ import annotations

import argparse
import logging
import sys
import time

DESCRIPTION = """\
Compute the 12 IASLC lymph node stations (1L 1R 2L 2R 3A 3P 4L 4R 5 6 7 8) from organ
masks with the textbook margin rules (stations-spec.md part A): landmarks from the organs
(carina, aortic arch, left BCV crossing, azygos arch, left pulmonary artery, lung apices,
vertebral front, tracheal walls), per-station limits with named margins, a mediastinal
support, organ exclusion and a fixed tie-break order. No training, no GPU.

ORGANS is either a 22-organ label map of this toolkit's schema, or a TotalSegmentator
output folder (one NIfTI per class); from the folder, the single aorta is split into
ascending aorta, arch and descending aorta, and missing organs are reported. Stations
that need a missing organ are estimated or left empty, with a warning on stderr.

This is the paper's margin-based baseline (about 19 DSC points below the trained model);
use it where no trained model is available."""

EPILOG = """\
examples:
  deepstationing rules --organs case/organs.nii.gz -o rules.nii.gz
  deepstationing rules --organs ts_output/ --ct ct.nii.gz -o rules.nii.gz --landmarks lm.json
  deepstationing view case/ --compare rules.nii.gz -o compare.png
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "rules", help="stations from organ masks by margin-based rules (baseline)",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--organs", required=True, metavar="ORGANS",
                   help="22-organ label map (.nii.gz, .nrrd, .mha) or TotalSegmentator folder")
    p.add_argument("--ct", metavar="CT", help="CT on the same grid (optional; refines the "
                   "mediastinum and sets the grid for a TotalSegmentator folder)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.nii.gz",
                   help="station label map to write")
    p.add_argument("--landmarks", metavar="JSON", help="also write the landmarks as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print no warnings or summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deepstationing.api import rules

    t0 = time.perf_counter()
    logger = logging.getLogger("deepstationing")
    level = logger.level
    if args.quiet:  # the library's warnings are logged; quiet keeps them off the console
        logger.setLevel(logging.ERROR)
    try:
        result = rules(args.organs, args.output, ct=args.ct, landmarks=args.landmarks,
                       check_ct=not args.quiet)
    finally:
        logger.setLevel(level)
    if not args.quiet:
        filled = ", ".join(f"{k} {v:.1f}" for k, v in result.volumes_ml.items() if v > 0)
        print(f"stations (ml): {filled or 'none'}", file=sys.stderr)
        print(f"wrote {result.stations} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0
