"""``deepstationing demo``: the whole pipeline that exists, end to end, on the built-in phantom.

Steps (each one is also a command of its own):

1. ``phantom``  synthesise a small cohort with organ, station and node truth;
2. ``rules``    infer the 12 stations from the ground-truth organs with the margin-based rules
   (the paper's heuristic baseline, and the zero-training path);
3. ``evaluate`` score the rule stations against the phantom truth (DSC, HD, HD95, ASSD);
4. ``view``     draw one case, truth next to the rule output.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from deepstationing.data.atomic import write_text_atomic
from deepstationing.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on the built-in synthetic phantom",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-o", "--out", required=True, type=Path,
                        help="output folder (created; an existing demo folder is overwritten)")
    parser.add_argument("--cases", type=int, default=4,
                        help="number of phantom cases (default: %(default)s)")
    parser.add_argument("--preset", choices=["small", "full"], default="full",
                        help="phantom grid: 'full' = paper geometry 512x512x~80 at "
                             "0.7x0.7x5 mm, 'small' = coarse CPU-training grid "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.set_defaults(func=run)


def _step(n: int, total: int, text: str) -> float:
    print(f"[{n}/{total}] {text}", file=sys.stderr, flush=True)
    return time.perf_counter()


def run(args: argparse.Namespace) -> int:
    from deepstationing.cli.main import main as cli

    if args.cases < 1:
        raise InputError(None, "--cases must be at least 1")
    out: Path = args.out
    if out.exists() and any(out.iterdir()) and not (out / "demo.txt").exists():
        raise InputError(out, "folder exists, is not empty and is not a demo output; "
                              "choose another --out")
    write_text_atomic("output of 'deepstationing demo'\n", out / "demo.txt")
    cohort_dir, rules_dir, eval_dir = out / "cohort", out / "rules", out / "evaluation"
    for old in (rules_dir, eval_dir):  # outputs of an earlier demo run in this folder
        shutil.rmtree(old, ignore_errors=True)
    total = 4

    t = _step(1, total, f"phantom: {args.cases} {args.preset}-preset cases -> {cohort_dir}")
    code = cli(["phantom", "--cases", str(args.cases), "--out", str(cohort_dir),
                "--preset", args.preset, "--seed", str(args.seed)])
    if code:
        return code
    print(f"      done in {time.perf_counter() - t:.1f} s", file=sys.stderr)

    from deepstationing.data.cohort import Cohort

    cohort = Cohort(cohort_dir)
    t = _step(2, total, f"rules: stations from the ground-truth organs -> {rules_dir}")
    for case in cohort:
        code = cli(["rules", "--organs", str(case.organs), "--ct", str(case.ct),
                    "-o", str(rules_dir / f"{case.id}.nii.gz"), "--quiet"])
        if code:
            return code
    print(f"      done in {time.perf_counter() - t:.1f} s", file=sys.stderr)

    t = _step(3, total, f"evaluate: rules vs phantom truth -> {eval_dir}")
    code = cli(["evaluate", "--pred", str(rules_dir), "--truth", str(cohort_dir),
                "--labels", "stations", "--name", "margin rules", "-o", str(eval_dir)])
    if code:
        return code
    print(f"      done in {time.perf_counter() - t:.1f} s", file=sys.stderr)

    first = cohort.case_ids[0]
    png = out / f"{first}.png"
    _step(4, total, f"view: {first}, truth vs rules -> {png}")
    code = cli(["view", str(cohort.case(first).folder), "--compare",
                str(rules_dir / f"{first}.nii.gz"), "--compare-name", "margin rules",
                "-o", str(png)])
    if code:
        return code

    summary = (eval_dir / "summary.md").read_text()
    print(summary)
    print(f"Outputs: cohort {cohort_dir}, rule stations {rules_dir}, "
          f"metrics {eval_dir / 'metrics.csv'}, picture {png}")
    return 0
