"""``deepstationing phantom``: synthesise a cohort of phantom CTs with organ/station/node truth,
or write the phantom's realism report against real CTs (``--report``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from deepstationing.errors import InputError
from deepstationing.phantom import PRESETS, generate_case, generate_cohort
from deepstationing.phantom.params import ACQUISITIONS

DESCRIPTION = """\
Write a cohort of synthetic chest CTs (neck base to below the diaphragm; venous phase as in
the paper, some arterial or without contrast; arms up or down, on a CT table) with their
truth: the 22-organ label map, the 12-station label map (the phantom's institutional
protocol, see docs/phantom.md), a lymph-node instance map with a node list, per-case
metadata with every random parameter and the landmark levels, and a manifest with a
patient-level 4-fold split. With --report, write instead the realism report: HU histograms
and slices of phantom cases beside real CTs (--real).

Presets:
""" + "\n".join(f"  {p.name:6s} {p.description}" for p in PRESETS.values())

EPILOG = """\
examples:
  deepstationing phantom --cases 20 --out phantom_small
  deepstationing phantom --cases 20 --out phantom_full --preset full --workers 2
  deepstationing phantom --cases 4 --out ph --spacing 1.4 1.4 5
  deepstationing phantom --cases 20 --out ph_varied --acquisition varied
  deepstationing phantom --report realism/ --real lung2_image.nrrd

Case k of a seed is the same whatever --cases is. The phantom is a test bed, not a
substitute for clinical validation.
"""

#: the real CT the report uses without --real, when the shared fixtures are beside the project
DEFAULT_REAL = Path("shared/data/real/pyradiomics_thorax/lung2_image.nrrd")


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("phantom", help="synthesise phantom CTs with organ/station truth",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, metavar="N",
                   help="number of cases (a cohort: required; a report: default 4)")
    p.add_argument("--out", metavar="DIR", help="output cohort folder")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="cohort seed (default 0)")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="voxel grid (default: small; full for --report)")
    p.add_argument("--spacing", type=float, nargs=3, metavar=("SX", "SY", "SZ"),
                   help="voxel spacing in mm replacing the preset's (same field of view)")
    p.add_argument("--acquisition", choices=ACQUISITIONS, default="fixed",
                   help="fixed: the preset's grid; varied: per-case field of view 300-500 mm "
                        "and slices of 1-5 mm (default fixed)")
    p.add_argument("--workers", type=int, default=1, metavar="W",
                   help="parallel processes (default 1)")
    p.add_argument("--report", metavar="DIR",
                   help="write the realism report (realism.md, .json, PNGs) into DIR")
    p.add_argument("--real", action="append", metavar="CT",
                   help="real CT for --report (repeatable; default: the shared lung2 CT "
                        "under $DEEPSTATIONING_REAL_DATA or beside the project)")
    p.add_argument("--quiet", action="store_true", help="no per-case progress on stderr")
    p.set_defaults(func=run)
    return p


def _default_real() -> list[Path]:
    """The shared lung2 CT: under ``$DEEPSTATIONING_REAL_DATA``, or ``shared/`` beside the
    working directory or the project."""
    import os

    import deepstationing

    env = os.environ.get("DEEPSTATIONING_REAL_DATA")
    cands = [Path(env) / DEFAULT_REAL.relative_to("shared/data/real")] if env else []
    cands += [r / DEFAULT_REAL for r in (Path.cwd().parent,
                                         Path(deepstationing.__file__).resolve().parents[3])]
    return [c for c in cands if c.is_file()][:1]


def _report(args: argparse.Namespace) -> int:
    from deepstationing.phantom.realism import real_ct, write_report

    reals = [Path(r) for r in args.real] if args.real else _default_real()
    if not reals:
        raise InputError(None, "no real CT to compare with: give --real CT")
    n = args.cases or 4
    preset = args.preset or "full"
    cases = []
    for i in range(n):
        cases.append(generate_case(i, seed=args.seed, preset=preset, spacing=args.spacing))
        if not args.quiet:
            print(f"[phantom] report case {i + 1}/{n}", file=sys.stderr, flush=True)
    md = write_report(args.report, cases, [real_ct(r) for r in reals])
    print(md)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.cases is not None and args.cases < 1:
        raise InputError(None, f"--cases must be at least 1, got {args.cases}")
    if args.workers < 1:
        raise InputError(None, f"--workers must be at least 1, got {args.workers}")
    if args.spacing is not None and min(args.spacing) <= 0:
        raise InputError(None, f"--spacing needs positive values, got {args.spacing}")
    if args.spacing is not None and args.acquisition == "varied":
        raise InputError(None, "--acquisition varied draws its own spacing: drop --spacing")
    if args.report:
        return _report(args)
    if args.cases is None or args.out is None:
        raise InputError(None, "a cohort needs --cases N and --out DIR (or give --report DIR)")
    t0 = time.perf_counter()

    def show(done: int, total: int, case: str, seconds: float) -> None:
        print(f"[phantom] {done}/{total} {case} ({seconds:.2f} s)", file=sys.stderr, flush=True)

    generate_cohort(args.out, args.cases, seed=args.seed, preset=args.preset or "small",
                    spacing=args.spacing, workers=args.workers,
                    progress=None if args.quiet else show, acquisition=args.acquisition)
    if not args.quiet:
        print(f"[phantom] wrote {args.cases} cases to {args.out} in "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return 0
