"""``deepstationing phantom``: synthesise a cohort of phantom CTs with organ/station/node truth."""

from __future__ import annotations

import argparse
import sys
import time

from deepstationing.errors import InputError
from deepstationing.phantom import PRESETS, generate_cohort

DESCRIPTION = """\
Write a cohort of synthetic venous-phase contrast chest CTs (neck base to below the
diaphragm) with their truth: the 22-organ label map, the 12-station label map (the
phantom's institutional protocol, see docs/phantom.md), a lymph-node instance map with a
node list, per-case metadata with every random parameter and the landmark levels, and a
manifest with a patient-level 4-fold split.

Presets:
""" + "\n".join(f"  {p.name:6s} {p.description}" for p in PRESETS.values())

EPILOG = """\
examples:
  deepstationing phantom --cases 20 --out phantom_small
  deepstationing phantom --cases 20 --out phantom_full --preset full --workers 2
  deepstationing phantom --cases 4 --out ph --spacing 1.4 1.4 5

Case k of a seed is the same whatever --cases is. The phantom is a test bed, not a
substitute for clinical validation.
"""


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("phantom", help="synthesise phantom CTs with organ/station truth",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, required=True, metavar="N", help="number of cases")
    p.add_argument("--out", required=True, metavar="DIR", help="output cohort folder")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="cohort seed (default 0)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="small",
                   help="voxel grid (default: small)")
    p.add_argument("--spacing", type=float, nargs=3, metavar=("SX", "SY", "SZ"),
                   help="voxel spacing in mm replacing the preset's (same field of view)")
    p.add_argument("--workers", type=int, default=1, metavar="W",
                   help="parallel processes (default 1)")
    p.add_argument("--quiet", action="store_true", help="no per-case progress on stderr")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.cases < 1:
        raise InputError(None, f"--cases must be at least 1, got {args.cases}")
    if args.workers < 1:
        raise InputError(None, f"--workers must be at least 1, got {args.workers}")
    if args.spacing is not None and min(args.spacing) <= 0:
        raise InputError(None, f"--spacing needs positive values, got {args.spacing}")
    t0 = time.perf_counter()

    def show(done: int, total: int, case: str, seconds: float) -> None:
        print(f"[phantom] {done}/{total} {case} ({seconds:.2f} s)", file=sys.stderr, flush=True)

    generate_cohort(args.out, args.cases, seed=args.seed, preset=args.preset,
                    spacing=args.spacing, workers=args.workers,
                    progress=None if args.quiet else show)
    if not args.quiet:
        print(f"[phantom] wrote {args.cases} cases to {args.out} in "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return 0
