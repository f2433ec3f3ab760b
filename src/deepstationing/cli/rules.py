"""``deepstationing rules``: stations from organ masks by margin-based IASLC rules."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from deepstationing.data.cohort import write_json_atomic
from deepstationing.data.image import (
    Image,
    check_same_geometry,
    read_ct,
    read_image,
    write_image,
)
from deepstationing.errors import InputError
from deepstationing.schema import ORGANS

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


def _read_organs(path: Path, ct: Image | None) -> tuple[Image, np.ndarray | None, list[str]]:
    from deepstationing.rules.totalseg import (
        read_totalsegmentator_folder,
        totalsegmentator_exclusion_mask,
    )

    if path.is_dir():
        organs, _missing, notes = read_totalsegmentator_folder(path, reference=ct)
        return organs, totalsegmentator_exclusion_mask(path, organs), notes
    organs = read_image(path, label=True)
    top = int(organs.array.max(initial=0))
    if top > len(ORGANS):
        raise InputError(path, f"label value {top} is not an organ id (1-{len(ORGANS)}); "
                               "expected a 22-organ map of deepstationing.schema.ORGANS")
    if ct is not None:
        check_same_geometry(ct, organs, reference_name="CT", other_name="organ map")
    return organs, None, []


def run(args: argparse.Namespace) -> int:
    from deepstationing.rules.inference import rule_stations

    t0 = time.perf_counter()
    organs_path = Path(args.organs)
    if not organs_path.exists():
        raise InputError(organs_path, "no such file or folder")
    ct = (read_image if args.quiet else read_ct)(args.ct) if args.ct else None
    organs, exclude, notes = _read_organs(organs_path, ct)
    result = rule_stations(organs, ct=ct, exclude=exclude)
    out = write_image(result.stations.with_array(result.stations.array.astype(np.uint8)),
                      args.output)
    if args.landmarks:
        write_json_atomic(result.landmarks.as_dict(), args.landmarks)
    if not args.quiet:
        for line in notes + result.warnings:
            print(f"warning: {line}", file=sys.stderr)
        vols = result.volumes_ml()
        filled = ", ".join(f"{k} {v:.1f}" for k, v in vols.items() if v > 0) or "none"
        print(f"stations (ml): {filled}", file=sys.stderr)
        print(f"wrote {out} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0
