"""``deepstationing experiment paper``: the paper's protocol, its report, locally or on Ray."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Run the DeepStationing paper's protocol on a cohort (the phantom by default) and write a
report: patient-level cross-validation with the cohort's folds of

  Table 1      CT only; CT + 22 ground-truth organs; CT + 22 predicted organs; CT + the
               top-6 organs of the key-organ search; the margin rules on predicted organs
  sweep        CT + the top-n searched organs, n = 3, 6, ..., 21 (Fig. 3b)
  ablations    random 6; 6 best-segmented; anchor organs; the clinician's 6; searched 6
               from the single network's organs; searched 6 ground-truth organs
  organs       stratified cascade vs single network, anchors vs non-anchors
  zones        lymph-node zone accuracy (supraclavicular, superior, aortic, inferior)

Every number is a held-out one: a fold's test cases are predicted by that fold's models
only. Each (setting, fold, stage) is a job with its own folder and status file under
OUT/jobs/; a finished job is never redone, so re-running the same command after an
interruption continues where it stopped. The report: OUT/report.md and OUT/report.html
(self-contained, pictures embedded).

Scales (--scale):
  demo  12 phantom cases at 5.6 x 5.6 x 10 mm, 2 folds (organ cascade on both; stations
        and search with fold 0 held out), a tiny CPU network, 1600 iterations for the
        anchor organ stage, 1000 for the non-anchor one and 600 per station network:
        Table 1's settings and the report in about a quarter of an hour on 2 CPU cores;
        the networks learn but are far from converged (the report says so)
  bench 20 phantom cases at the demo's grid and network, all 4 folds, 2400 iterations per
        organ stage, 1000 per station network, search and top-3/6/12 sweep network:
        Table 1 and the sweep over 4 folds with their spread in about an hour and a
        quarter on 2 CPU cores (--jobs 2 --threads 1)
  cpu   20 phantom cases (small preset), 4 folds, budgets that learn, sweep and ablations:
        about 70 trainings of 15-35 minutes each on 2 CPU cores (a day and a half)
  full  40 cases at the paper's geometry, nnU-Net's own configuration, 1000 x 250 per
        network, as in the paper: for GPUs. About 70 trainings; at the paper's 2.5 GPU
        days per network, months on one GPU: use --ray with several

--cohort DIR is used if it holds a cohort (e.g. from 'deepstationing dataset import');
otherwise the scale's phantom cohort is generated there.
"""

EPILOG = """\
examples:
  deepstationing experiment paper --cohort ph_demo --out exp_demo            # the demo
  deepstationing experiment paper --cohort ph --out exp --scale cpu --jobs 2 --threads 1
  deepstationing experiment paper --cohort ph --out exp --scale full --device cuda \\
      --ray auto                      # on a node of a Ray cluster, one GPU per training
  deepstationing experiment paper --cohort ph --out exp --ray local          # Ray here

Ray: every node must see --cohort and --out at the same paths (a shared file system).
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "experiment", help="the paper's protocol (Table 1, ablations, report)",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=("paper",), help="the experiment to run")
    parser.add_argument("--cohort", required=True, metavar="DIR",
                        help="cohort folder (generated as a phantom cohort if absent)")
    parser.add_argument("--out", required=True, metavar="DIR", help="experiment folder")
    parser.add_argument("--scale", choices=("demo", "bench", "cpu", "full"), default="demo")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads per job (default: torch's choice)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="data-augmentation workers per training (default: nnU-Net's "
                             "choice on cuda, 0 on cpu)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="run up to N jobs at once on this machine, each in its own "
                             "process (default 1; on a CPU, N = the cores with --threads 1 "
                             "gets the most done)")
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="run the jobs on a Ray cluster: 'auto', 'ray://HOST:10001', or "
                             "'local' for a Ray instance on this machine")
    parser.add_argument("--ray-cpus", type=int, default=None, metavar="N",
                        help="CPUs of a --ray local instance (default: all)")
    parser.add_argument("--verbose", action="store_true", help="show nnU-Net's own output")
    parser.set_defaults(func=run)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from deepstationing.errors import InputError
    from deepstationing.experiments import run_paper

    if args.jobs < 1:
        raise InputError(None, f"--jobs {args.jobs}: must be at least 1")
    if args.jobs > 1 and args.ray:
        raise InputError(None, "--jobs runs jobs on this machine, --ray on a cluster: choose "
                               "one")
    from deepstationing.experiments.paper import SCALES

    scale = SCALES[args.scale]
    summary = run_paper(args.cohort, args.out, scale, device=args.device, threads=args.threads,
                        workers=args.workers, ray=args.ray, ray_cpus=args.ray_cpus,
                        jobs=args.jobs,
                        verbose=args.verbose, progress=_say,
                        argv=["deepstationing", *sys.argv[1:]] if sys.argv else [])
    out = Path(args.out)
    if summary.failed:
        for job, error in summary.failed.items():
            _say(f"failed: {job}: {error} (details: {out / 'jobs' / job / 'status.json'})")
        _say(f"{len(summary.failed)} job(s) failed, {len(summary.blocked)} not run; re-run the "
             "same command to retry them (finished jobs are kept)")
    report = out / "report.html"
    if report.exists():
        print(f"report: {report}")
        print(f"        {out / 'report.md'}")
    return 0 if summary.ok else 1
