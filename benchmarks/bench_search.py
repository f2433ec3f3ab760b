"""Key-organ search on the phantom: the ranking on every fold, its stability, and the top-n sweep.

Runs ``deepstationing search`` (the same code) on each fold of a phantom cohort, then
compares the rankings: where the five organs that define no station boundary in the
phantom's protocol land (``heart, cca_r, cca_l, bcv_r, pulmonary_vein``,
``docs/phantom.md``), how many of each fold's top-6 define a boundary, the rank correlation
(Spearman) between folds, and the paper's top-6. With ``--sweep``, also retrains the
station network with CT + the top-n organs of one fold for each n (the paper's Fig. 3b).
Writes ``search.json``, ``search.md`` and ``search_weights_fold<K>.png`` (+ ``sweep.png``).

    python benchmarks/bench_search.py                                  # 4 folds, GT organs
    python benchmarks/bench_search.py --sweep 3-21/3 --sweep-fold 0
    python benchmarks/bench_search.py --coarse --sweep 3-21/3    # the demo's grid and network

``--coarse`` uses the demo scale's phantom grid (5.6 x 5.6 x 10 mm) and network (8-16-32
features, 16 x 32 x 32 patch, AdamW 1e-2): minutes per search on 2 CPU cores instead of
most of an hour.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=20)
    p.add_argument("--preset", default="small")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", default="0,1,2,3")
    p.add_argument("--source", choices=("gt", "pred"), default="gt")
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--sweep", default=None, help="top-n list, e.g. 3-21/3")
    p.add_argument("--sweep-fold", type=int, default=0)
    p.add_argument("--sweep-epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workdir", default="/tmp/deepstationing-bench-search")
    p.add_argument("--out-name", default="search")
    p.add_argument("--note", default="", help="a sentence for the results (how it was run)")
    p.add_argument("--coarse", action="store_true",
                   help="the demo scale's grid and network (fast on a CPU)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from scipy.stats import spearmanr

    from deepstationing import schema
    from deepstationing.data.cohort import Cohort
    from deepstationing.experiments.paper import SCALES
    from deepstationing.phantom import generate_cohort
    from deepstationing.search.ranking import NON_BOUNDARY_ORGANS
    from deepstationing.search.sweep import parse_sweep, run_search, run_sweep
    from deepstationing.training import TrainBudget, TrainOptions

    work = Path(args.workdir)
    demo = SCALES["demo"]
    spacing = demo.spacing if args.coarse else None
    cpu = demo.cpu if args.coarse else None
    cohort_dir = work / (f"phantom_{args.preset}_{args.cases}_s{args.seed}"
                         + ("_coarse" if args.coarse else ""))
    cohort = Cohort(cohort_dir) if (cohort_dir / "manifest.json").exists() else \
        generate_cohort(cohort_dir, args.cases, seed=args.seed, preset=args.preset,
                        spacing=spacing)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    opts = TrainOptions(workdir=work / "runs", budget=TrainBudget(args.epochs, args.iterations),
                        cpu=cpu, device=args.device, threads=args.threads, progress=say)
    t0 = time.perf_counter()
    folds = [int(f) for f in args.folds.split(",")]
    rankings, seconds = {}, {}
    RESULTS.mkdir(exist_ok=True)
    model_dir = work / "models" / f"search-{args.source}"
    for fold in folds:
        t1 = time.perf_counter()
        out = work / "search" / f"fold{fold}"
        result = run_search(cohort, fold, source=args.source, options=opts,
                            model_dir=model_dir, out_dir=out)
        rankings[fold] = [r.organ for r in result.ranked]
        seconds[fold] = round(time.perf_counter() - t1, 1)
        shutil.copyfile(out / "weights.png", RESULTS / f"{args.out_name}_weights_fold{fold}.png")
        say(f"fold {fold}: top-6 {rankings[fold][:6]}")
    organs = list(schema.ORGANS.keys)
    ranks = {f: [rankings[f].index(o) + 1 for o in organs] for f in folds}
    pairs = {f"{a}-{b}": round(float(spearmanr(ranks[a], ranks[b]).statistic), 3)
             for a, b in itertools.combinations(folds, 2)}
    mean_rank = {o: float(np.mean([ranks[f][i] for f in folds])) for i, o in enumerate(organs)}
    doc = {
        "rankings": {str(f): rankings[f] for f in folds},
        "non_boundary_ranks": {o: {str(f): rankings[f].index(o) + 1 for f in folds}
                               for o in NON_BOUNDARY_ORGANS},
        "top6_boundary_defining": {str(f): sum(o not in NON_BOUNDARY_ORGANS
                                               for o in rankings[f][:6]) for f in folds},
        "spearman_between_folds": pairs,
        "mean_spearman": round(float(np.mean(list(pairs.values()))), 3) if pairs else None,
        "mean_rank": dict(sorted(mean_rank.items(), key=lambda kv: kv[1])),
        "paper_top6": list(schema.PAPER_TOP6_ORGANS),
        "paper_top6_in_our_top6": {str(f): sorted(set(rankings[f][:6]) &
                                                  set(schema.PAPER_TOP6_ORGANS))
                                   for f in folds},
        "search_seconds": {str(f): s for f, s in seconds.items()},
    }
    if args.sweep:
        from deepstationing.search.ranking import ranking as ranked_of
        from deepstationing.search.ranking import read_search_state

        sweep_opts = TrainOptions(workdir=work / "runs",
                                  budget=TrainBudget(args.sweep_epochs, args.iterations),
                                  cpu=cpu, device=args.device, threads=args.threads, progress=say)
        from deepstationing.training import ModelFolder

        model = ModelFolder.open(model_dir)
        folder = f"search-{args.source}-all"
        state = read_search_state(model.checkpoint(folder, args.sweep_fold).parent)
        sweep = run_sweep(cohort, args.sweep_fold, ranked_of(state), parse_sweep(args.sweep),
                          source=args.source, options=sweep_opts, model=model,
                          out_dir=work / "search" / f"fold{args.sweep_fold}", progress=say)
        doc["sweep"] = sweep
        shutil.copyfile(work / "search" / f"fold{args.sweep_fold}" / "sweep.png",
                        RESULTS / f"{args.out_name}_sweep.png")
    doc["meta"] = {
        "command": "python benchmarks/bench_search.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.node()}: {os.cpu_count()} CPU cores, device {args.device}; "
                   f"load average at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())}",
        "cohort": f"phantom {args.preset} preset, {args.cases} cases, seed {args.seed}"
                  + (f", resampled to {spacing} mm" if spacing else ""),
        "network": (f"CPU configuration {cpu.to_json()}" if cpu else
                    "CPU configuration (defaults)"),
        "budget": f"search {args.epochs} x {args.iterations} iterations per fold"
                  + (f"; sweep {args.sweep_epochs} x {args.iterations} per n" if args.sweep
                     else ""),
        "note": args.note, "source": args.source,
        "total_minutes": round((time.perf_counter() - t0) / 60, 1)}
    (RESULTS / f"{args.out_name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / f"{args.out_name}.md").write_text(markdown(doc, folds))
    say(f"wrote {RESULTS / args.out_name}.{{json,md}}")
    return 0


def markdown(doc: dict, folds: list[int]) -> str:
    meta = doc["meta"]
    lines = ["# Key-organ search on the phantom", "",
             f"Command: `{meta['command']}`  ", f"Date {meta['date']}; {meta['machine']}.  ",
             f"Cohort: {meta['cohort']}; {meta['network']}; organ channels: {meta['source']}; "
             f"{meta['budget']}; "
             f"total {meta['total_minutes']} min.",
             *([meta["note"]] if meta.get("note") else []), "",
             "## Ranking per fold (best first)", "",
             "| rank | " + " | ".join(f"fold {f}" for f in folds) + " |",
             "|---" * (1 + len(folds)) + "|"]
    for i in range(len(doc["rankings"][str(folds[0])])):
        lines.append(f"| {i + 1} | " + " | ".join(doc["rankings"][str(f)][i] for f in folds)
                     + " |")
    lines += ["", "## Organs that define no station boundary (docs/phantom.md)", "",
              "| organ | " + " | ".join(f"rank, fold {f}" for f in folds) + " |",
              "|---" * (1 + len(folds)) + "|"]
    for organ, per in doc["non_boundary_ranks"].items():
        lines.append(f"| {organ} | " + " | ".join(str(per[str(f)]) for f in folds) + " |")
    lines += ["", "Boundary-defining organs among each fold's top-6: "
              + ", ".join(f"fold {f}: {doc['top6_boundary_defining'][str(f)]}/6" for f in folds)
              + ".", "",
              f"Rank correlation between folds (Spearman, all 22 organs): mean "
              f"{doc['mean_spearman']}; pairs {doc['spearman_between_folds']}.", "",
              f"Paper's top-6 ({', '.join(doc['paper_top6'])}) found in our top-6: "
              + "; ".join(f"fold {f}: {', '.join(v) or 'none'}"
                          for f, v in doc["paper_top6_in_our_top6"].items()) + ".", "",
              "Mean rank over the folds: " + ", ".join(f"{o} {r:.1f}" for o, r in
                                                       doc["mean_rank"].items()) + "."]
    if "sweep" in doc:
        lines += ["", f"## Top-n sweep (fold {doc['sweep']['fold']}, held-out cases)", "",
                  "| top-n | held-out DSC (%) | HD95 (mm) | ASSD (mm) |", "|---|---|---|---|"]
        for r in doc["sweep"]["results"]:
            lines.append(f"| {r['n']} | {100 * r['mean_dsc']:.1f} | {r['mean_hd95']:.1f} | "
                         f"{r['mean_assd']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
