"""Benchmark: margin-based station rules on one full-resolution case (target <= 5 s).

Uses the phantom's ``preset="full"`` case (512 x 512 x ~80 at 0.7 x 0.7 x 5 mm) when the
phantom generator is installed; otherwise the hand-built toy thorax of the tests, rebuilt
at 0.7 mm in-plane and padded to 512 x 512. Writes ``benchmarks/results/bench_rules.json``.

With ``--baseline N`` it also records the rule baseline against phantom truth: it generates
an N-case phantom cohort, runs the rules on each case's ground-truth organs and scores them
with ``deepstationing evaluate``; the summary goes to
``benchmarks/results/rules_baseline.md``.

    OMP_NUM_THREADS=1 python benchmarks/bench_rules.py [--repeats 3]
    OMP_NUM_THREADS=1 python benchmarks/bench_rules.py --baseline 8 --preset full --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from deepstationing.data.image import Image
from deepstationing.rules.inference import rule_stations

ROOT = Path(__file__).resolve().parents[1]


def full_case() -> tuple[Image, str]:
    try:
        from deepstationing.phantom import generate_case

        case = generate_case(0, seed=0, preset="full")
        return case.organs, "phantom case 0, seed 0, preset full"
    except (ImportError, AttributeError):
        sys.path.insert(0, str(ROOT / "tests"))
        from test_rules_landmarks import toy_thorax

        toy = toy_thorax(spacing_xy=0.7)
        a = toy.array
        out = np.zeros((a.shape[0], 512, 512), a.dtype)
        oy, ox = (512 - a.shape[1]) // 2, (512 - a.shape[2]) // 2
        out[:, oy:oy + a.shape[1], ox:ox + a.shape[2]] = a
        origin = (toy.origin[0] - ox * 0.7, toy.origin[1] - oy * 0.7, toy.origin[2])
        return Image(out, toy.spacing, origin), "toy thorax of tests/test_rules_landmarks.py " \
                                                "at 0.7 mm, padded to 512 x 512"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline", type=int, default=0, metavar="N",
                    help="also score the rules on an N-case phantom cohort")
    ap.add_argument("--preset", default="full", help="phantom preset for --baseline")
    ap.add_argument("--seed", type=int, default=0, help="phantom seed for --baseline")
    ap.add_argument("--workdir", default=None, help="where the cohort and predictions go "
                    "(default: a temporary folder)")
    args = ap.parse_args()
    if args.baseline:
        baseline(args)
    organs, source = full_case()
    times = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        res = rule_stations(organs)
        times.append(time.perf_counter() - t0)
        print(f"run {i + 1}/{args.repeats}: {times[-1]:.2f} s", file=sys.stderr)
    result = {
        "benchmark": "rule_stations, one full-resolution case",
        "case": source,
        "shape_zyx": list(organs.shape),
        "spacing_xyz_mm": list(organs.spacing),
        "seconds_best": round(min(times), 3),
        "seconds_median": round(float(np.median(times)), 3),
        "target_seconds": 5.0,
        "passed": min(times) <= 5.0,
        "station_volumes_ml": {k: round(v, 2) for k, v in res.volumes_ml().items()},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                   f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
    }
    out = ROOT / "benchmarks" / "results" / "bench_rules.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["passed"] else 1


def baseline(args: argparse.Namespace) -> None:
    import shutil
    import tempfile

    from deepstationing.cli.main import main as cli
    from deepstationing.data.cohort import Cohort
    from deepstationing.data.image import read_image, write_image
    from deepstationing.phantom import generate_cohort

    work = Path(args.workdir or tempfile.mkdtemp(prefix="rules-baseline-"))
    cohort_dir, pred_dir = work / "cohort", work / "rules"
    if not (cohort_dir / "manifest.json").exists():
        generate_cohort(cohort_dir, args.baseline, seed=args.seed, preset=args.preset)
    cohort = Cohort(cohort_dir)
    pred_dir.mkdir(parents=True, exist_ok=True)
    for i, case in enumerate(cohort):
        t0 = time.perf_counter()
        res = rule_stations(read_image(case.organs, label=True))
        write_image(res.stations, pred_dir / f"{case.id}.nii.gz")
        print(f"case {i + 1}/{len(cohort)} {case.id}: {time.perf_counter() - t0:.2f} s, "
              f"{len(res.warnings)} warning(s)", file=sys.stderr)
    out = work / "eval"
    cli(["evaluate", "--pred", str(pred_dir), "--truth", str(cohort_dir), "-o", str(out),
         "--name", "rules"])
    dest = ROOT / "benchmarks" / "results" / "rules_baseline.md"
    dest.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Rule baseline vs phantom truth\n\nCohort: {len(cohort)} phantom cases, "
              f"preset {args.preset!r}, seed {args.seed}; rules on ground-truth organs; "
              "scored with `deepstationing evaluate`.\n\n")
    dest.write_text(header + (out / "summary.md").read_text())
    shutil.copy(out / "metrics.csv", dest.with_suffix(".csv"))
    print(dest.read_text())


if __name__ == "__main__":
    raise SystemExit(main())
