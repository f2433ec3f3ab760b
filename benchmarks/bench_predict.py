"""Per-step profile of ``deepstationing predict``: reading, resampling, each network, writing.

Builds (or reuses) a model with the CPU configuration's networks — anchor, non-anchor and a
CT + 22 predicted organs station stage — trained for one iteration each (a network's cost
does not depend on how well it is trained), then predicts full-preset phantom CTs
(512 x 512 x ~75 at 0.7 x 0.7 x 5 mm, the paper's geometry) and a tall 512 x 512 x 400 CT
(the phantom stacked in z) through the same code as ``predict``, timing every step and the
peak memory (resident set, and CUDA's peak on a GPU). Writes ``predict_profile.json`` and
``predict_profile.md``.

    python benchmarks/bench_predict.py                       # CPU, 2 threads
    python benchmarks/bench_predict.py --device cuda --out-name predict_profile_gpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cases", type=int, default=2, help="full-preset cases to time")
    p.add_argument("--tall", type=int, default=400, help="slices of the tall CT (0: skip)")
    p.add_argument("--workdir", default="/tmp/deepstationing-bench-predict")
    p.add_argument("--out-name", default="predict_profile")
    return p.parse_args(argv)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_model(work: Path, device: str):
    from deepstationing.data.cohort import Cohort
    from deepstationing.organs.cascade import train_organs
    from deepstationing.phantom import generate_cohort
    from deepstationing.stations.network import train_stations
    from deepstationing.training import ModelFolder, TrainBudget, TrainOptions

    cohort_dir = work / "train_cohort"
    cohort = Cohort(cohort_dir) if (cohort_dir / "manifest.json").exists() else \
        generate_cohort(cohort_dir, 4, seed=1, preset="small")
    opts = TrainOptions(workdir=work / "runs", budget=TrainBudget(1, 1, 1), device=device,
                        progress=lambda m: None)
    model_dir = work / "model"
    if not (model_dir / "deepstationing_model.json").exists():
        train_organs(cohort, 0, options=opts, model_dir=model_dir, anchor_source="gt")
        train_stations(cohort, 0, channels="pred:all", options=opts, model_dir=model_dir)
    return ModelFolder.open(model_dir)


def main(argv=None) -> int:
    args = parse_args(argv)
    from deepstationing.data.image import Image, read_image, write_image
    from deepstationing.phantom import generate_case
    from deepstationing.stations.network import StationParser
    from deepstationing.timing import Timings

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    model = build_model(work, args.device)
    t0 = time.perf_counter()
    parser = StationParser(model, [0], device=args.device, threads=args.threads)
    load_s = time.perf_counter() - t0
    rows = []
    inputs = []
    for i in range(args.cases):
        path = work / f"full_{i}.nii.gz"
        if not path.exists():
            case = generate_case(10 + i, seed=0, preset="full")
            write_image(case.ct, path)
        inputs.append(path)
    if args.tall:
        path = work / f"tall_{args.tall}.nii.gz"
        if not path.exists():
            ct = read_image(inputs[0])
            reps = int(np.ceil(args.tall / ct.shape[0]))
            arr = np.concatenate([ct.array] * reps)[: args.tall]
            write_image(Image(arr, ct.spacing, ct.origin, ct.direction), path)
        inputs.append(path)
    for path in inputs:
        if args.device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()
        t = Timings()
        with t("read"):
            ct = read_image(path)
        organs, stations = parser.predict(ct, timings=t)
        out = work / "out" / path.name.split(".")[0]
        with t("write"):
            write_image(organs, out / "organs.nii.gz")
            write_image(stations, out / "stations.nii.gz")
        row = {"input": path.name, "shape_zyx": list(ct.shape),
               "spacing_xyz": [round(v, 2) for v in ct.spacing],
               "steps": {k: round(v, 2) for k, v in t.steps.items()},
               "total_s": round(t.total(), 2), "peak_rss_mb_so_far": round(peak_rss_mb())}
        if args.device == "cuda":
            import torch

            row["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
        rows.append(row)
        print(f"{path.name} {ct.shape}: {t.total():.1f} s\n{t.table()}", file=sys.stderr,
              flush=True)
    meta = {"command": "python benchmarks/bench_predict.py " + " ".join(argv or sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M"), "device": args.device,
            "threads": args.threads, "model_load_s": round(load_s, 2),
            "machine": f"{platform.node()}: {os.cpu_count()} CPU cores; load average "
                       f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}",
            "model": "CPU configuration (8-16-32-64 PlainConvUNet, 32 x 64 x 64 patch) trained "
                     "at 2.8 x 2.8 x 5 mm: anchor -> non-anchor -> stations (CT + 22 "
                     "predicted organs); test-time mirroring off"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out_name}.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                              indent=2) + "\n")
    steps = list(dict.fromkeys(k for r in rows for k in r["steps"]))
    lines = [f"# predict: seconds per step ({args.device})", "",
             f"Command: `{meta['command']}`; {meta['date']}; {meta['machine']}.  ",
             f"Model: {meta['model']}; loaded in {meta['model_load_s']} s (once per run).",
             "", "| step | " + " | ".join(f"{r['input']} {tuple(r['shape_zyx'])}"
                                          for r in rows) + " |",
             "|---|" + "---|" * len(rows)]
    for step in steps:
        lines.append(f"| {step} | " + " | ".join(f"{r['steps'].get(step, 0):.2f}"
                                                 for r in rows) + " |")
    lines.append("| **total** | " + " | ".join(f"**{r['total_s']:.1f}**" for r in rows) + " |")
    lines.append("| peak resident memory so far (MB) | " + " | ".join(
        str(r["peak_rss_mb_so_far"]) for r in rows) + " |")
    if args.device == "cuda":
        lines.append("| CUDA peak (MB) | " + " | ".join(str(r["cuda_peak_mb"]) for r in rows)
                     + " |")
    (RESULTS / f"{args.out_name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / args.out_name}.{{json,md}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
