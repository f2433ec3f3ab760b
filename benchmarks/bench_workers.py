"""Seconds per training iteration against augmentation workers and torch threads (CPU or GPU).

Trains the station network (CT + 22 ground-truth organs, the CPU configuration) for a few
epochs on a small phantom cohort with each (threads, workers) pair and reports the mean
seconds per iteration of the epochs after the first (which includes start-up). Writes
``benchmarks/results/workers.json`` and ``workers.md``. From the repository root::

    python benchmarks/bench_workers.py                      # CPU: 0/1 workers x 1/2 threads
    python benchmarks/bench_workers.py --device cuda --pairs 1:0,1:12 --out-name workers_gpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", default="2:0,1:1,2:1", help="threads:workers pairs")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--cases", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workdir", default="/tmp/deepstationing-bench-workers")
    p.add_argument("--out-name", default="workers")
    args = p.parse_args(argv)

    from deepstationing.backbone.checkpoint import load_checkpoint_safely
    from deepstationing.data.cohort import Cohort
    from deepstationing.phantom import generate_cohort
    from deepstationing.stations.network import train_stations
    from deepstationing.training import ModelFolder, TrainBudget, TrainOptions

    work = Path(args.workdir)
    cohort_dir = work / "phantom"
    cohort = Cohort(cohort_dir) if (cohort_dir / "manifest.json").exists() else \
        generate_cohort(cohort_dir, args.cases, seed=0, preset="small")
    rows = []
    for pair in args.pairs.split(","):
        threads, workers = (int(v) for v in pair.split(":"))
        runs = work / f"runs_{threads}_{workers}"
        shutil.rmtree(runs, ignore_errors=True)
        opts = TrainOptions(workdir=runs, budget=TrainBudget(args.epochs, args.iterations, 2),
                            device=args.device, threads=threads, workers=workers,
                            progress=lambda m: print(m, file=sys.stderr, flush=True))
        model = train_stations(cohort, 0, channels="gt:all", options=opts,
                               model_dir=runs / "model")
        model = ModelFolder.open(model.root)
        # per-epoch times from nnU-Net's log (the first epoch includes start-up)
        ck = load_checkpoint_safely(model.checkpoint("stations-gt-all", 0))
        starts = ck["logging"]["epoch_start_timestamps"]
        ends = ck["logging"]["epoch_end_timestamps"]
        per_epoch = [e - s for s, e in zip(starts, ends)][1:]
        s_per_it = sum(per_epoch) / len(per_epoch) / args.iterations
        rows.append({"threads": threads, "workers": workers,
                     "seconds_per_iteration": round(s_per_it, 3)})
        print(f"threads {threads}, workers {workers}: {s_per_it:.3f} s/iteration "
              f"(incl. validation)", file=sys.stderr, flush=True)
    RESULTS.mkdir(exist_ok=True)
    meta = {"command": "python benchmarks/bench_workers.py " + " ".join(argv or sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M"), "device": args.device,
            "machine": f"{platform.node()}: {os.cpu_count()} CPU cores",
            "note": "station network, CT + 22 organs, CPU configuration (32x64x64 patch, "
                    "batch 2), small phantom preset; mean of the epochs after the first, "
                    "validation iterations included"}
    (RESULTS / f"{args.out_name}.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                              indent=2) + "\n")
    lines = [f"# Training speed against augmentation workers ({args.device})", "",
             f"Command: `{meta['command']}`; {meta['date']}; {meta['machine']}.  ",
             meta["note"] + ".", "", "| torch threads | augmentation workers | s / iteration |",
             "|---|---|---|"]
    lines += [f"| {r['threads']} | {r['workers']} | {r['seconds_per_iteration']} |"
              for r in rows]
    (RESULTS / f"{args.out_name}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
