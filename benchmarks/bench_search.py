"""Key-organ search on the phantom: the ranking on every fold, its stability, and the top-n sweep.

Runs ``deepstationing search`` (the same code) on each fold of a phantom cohort, then
compares the rankings: where the five organs that define no station boundary in the
phantom's protocol land (``heart, cca_r, cca_l, bcv_r, pulmonary_vein``,
``docs/phantom.md``), how many of each fold's top-6 define a boundary, the rank correlation
(Spearman) between folds, and the paper's top-6.

* ``--train-seeds 0,1,2`` repeats every fold's search with other training seeds (network
  initialisation, augmentation, the logits' batches): the rank correlation between seeds of
  one fold, and the rankings of the weights averaged over the seeds, between folds.
* ``--ablation`` adds the second opinion (``deepstationing search --method ablation``) on
  every fold: the held-out DSC lost per removed organ channel of a CT + 22 network, its
  agreement with the weights' ranking and its own stability between folds.
* ``--sweep 3,6,12,22`` retrains the station network with CT + the top-n organs of each
  fold in ``--sweep-folds`` (the paper's Fig. 3b, mean and spread over the folds).

Writes ``<out-name>.json``, ``<out-name>.md`` and ``<out-name>_weights_fold<K>.png``
(+ ``<out-name>_sweep.png``).

    python benchmarks/bench_search.py                                  # 4 folds, GT organs
    python benchmarks/bench_search.py --sweep 3-21/3 --sweep-folds 0
    python benchmarks/bench_search.py --coarse --train-seeds 0,1,2 --ablation --sweep 3,6,12,22

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
    p.add_argument("--seed", type=int, default=0, help="the phantom cohort's seed")
    p.add_argument("--folds", default="0,1,2,3")
    p.add_argument("--source", choices=("gt", "pred"), default="gt")
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--train-seeds", default="0",
                   help="training seeds of every fold's search, e.g. 0,1,2 (default: 0)")
    p.add_argument("--ablation", action="store_true",
                   help="also rank by the held-out drop per removed organ (every fold)")
    p.add_argument("--sweep", default=None, help="top-n list, e.g. 3-21/3")
    p.add_argument("--sweep-folds", "--sweep-fold", default="0",
                   help="the folds of the sweep, e.g. 0 or 0,1,2,3")
    p.add_argument("--sweep-epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workdir", default="/tmp/deepstationing-bench-search")
    p.add_argument("--out-name", default="search")
    p.add_argument("--note", default="", help="a sentence for the results (how it was run)")
    p.add_argument("--coarse", action="store_true",
                   help="the demo scale's grid and network (fast on a CPU)")
    return p.parse_args(argv)


def _ints(text: str) -> list[int]:
    return [int(v) for v in str(text).split(",") if v.strip()]


def spearman(a: list[str], b: list[str]) -> float:
    """Rank correlation of two rankings (best first) of the same organs."""
    from deepstationing.search.ablation import agreement

    return round(agreement(a, b), 3)


def pairwise(rankings: dict, keys: list) -> dict[str, float]:
    """Spearman between every pair of ``keys`` of ``rankings``."""
    return {f"{a}-{b}": spearman(rankings[a], rankings[b])
            for a, b in itertools.combinations(keys, 2)}


def _mean(values) -> float | None:
    values = list(values)
    return round(float(np.mean(values)), 3) if values else None


def averaged(weights: list[dict[str, float]]) -> list[str]:
    """The organs by their weight averaged over several searches, best first."""
    organs = list(weights[0])
    mean = {o: float(np.mean([w[o] for w in weights])) for o in organs}
    return sorted(organs, key=lambda o: (-mean[o], organs.index(o)))


def run_searches(cohort, folds, seeds, args, cpu, say) -> dict:
    """Every fold's search for every training seed: rankings, weights and seconds."""
    from deepstationing.search.sweep import run_search
    from deepstationing.training import TrainBudget, TrainOptions

    work = Path(args.workdir)
    out = {"rankings": {}, "weights": {}, "seconds": {}}
    for seed in seeds:
        opts = TrainOptions(workdir=work / f"runs-s{seed}",
                            budget=TrainBudget(args.epochs, args.iterations), cpu=cpu,
                            device=args.device, threads=args.threads, seed=seed, progress=say)
        for fold in folds:
            t1 = time.perf_counter()
            res = run_search(cohort, fold, source=args.source, options=opts,
                             model_dir=work / "models" / f"search-{args.source}-s{seed}",
                             out_dir=work / "search" / f"fold{fold}" / f"seed{seed}")
            key = f"{fold}/{seed}"
            out["rankings"][key] = [r.organ for r in res.ranked]
            out["weights"][key] = {r.organ: r.weight for r in res.ranked}
            out["seconds"][key] = round(time.perf_counter() - t1, 1)
            if seed == seeds[0]:
                shutil.copyfile(res.ranking_file.parent / "weights.png",
                                RESULTS / f"{args.out_name}_weights_fold{fold}.png")
            say(f"fold {fold} seed {seed}: top-6 {out['rankings'][key][:6]}")
    return out


def stability(runs: dict, folds: list[int], seeds: list[int]) -> dict:
    """Spearman between folds (per seed and for seed-averaged weights) and between seeds."""
    rk = runs["rankings"]
    per_seed = {s: pairwise({f: rk[f"{f}/{s}"] for f in folds}, folds) for s in seeds}
    avg = {f: averaged([runs["weights"][f"{f}/{s}"] for s in seeds]) for f in folds}
    doc = {"between_folds": {str(s): per_seed[s] for s in seeds},
           "between_folds_mean": {str(s): _mean(per_seed[s].values()) for s in seeds},
           "averaged_rankings": {str(f): avg[f] for f in folds}}
    if len(seeds) > 1:
        between_seeds = {f: pairwise({s: rk[f"{f}/{s}"] for s in seeds}, seeds) for f in folds}
        avg_pairs = pairwise(avg, folds)
        doc.update({"between_seeds": {str(f): v for f, v in between_seeds.items()},
                    "between_seeds_mean": _mean(v for d in between_seeds.values()
                                                for v in d.values()),
                    "averaged_between_folds": avg_pairs,
                    "averaged_between_folds_mean": _mean(avg_pairs.values())})
    return doc


def run_ablations(cohort, folds, seed, args, cpu, say, averaged_rankings) -> dict:
    """The held-out drop ranking of every fold, its agreement with the weights' ranking
    (seed ``seed`` and seed-averaged) and between folds."""
    from deepstationing.search.ablation import rank_by_drop, run_ablation
    from deepstationing.training import TrainBudget, TrainOptions

    work = Path(args.workdir)
    opts = TrainOptions(workdir=work / f"runs-s{seed}",
                        budget=TrainBudget(args.epochs, args.iterations), cpu=cpu,
                        device=args.device, threads=args.threads, seed=seed, progress=say)
    rankings, doc = {}, {"drops": {}, "baseline": {}, "agreement_with_weights": {},
                         "agreement_with_averaged_weights": {}}
    for fold in folds:
        res = run_ablation(cohort, fold, source=args.source, options=opts,
                           model_dir=work / "models" / f"ablation-{args.source}",
                           out_dir=work / "search" / f"fold{fold}" / f"seed{seed}")
        rankings[fold] = [r.organ for r in rank_by_drop(res["drop"])]
        doc["drops"][str(fold)] = {k: round(v, 4) for k, v in res["drop"].items()}
        doc["baseline"][str(fold)] = round(res["baseline"], 4)
        doc["agreement_with_weights"][str(fold)] = round(res["agreement_with_weights"], 3)
        doc["agreement_with_averaged_weights"][str(fold)] = spearman(
            averaged_rankings[str(fold)], rankings[fold])
        say(f"fold {fold}: ablation top-6 {rankings[fold][:6]}")
    pairs = pairwise(rankings, folds)
    doc.update({"rankings": {str(f): r for f, r in rankings.items()},
                "between_folds": pairs, "between_folds_mean": _mean(pairs.values())})
    return doc


def run_sweeps(cohort, folds, args, cpu, say, averaged_rankings) -> dict:
    """CT + top-n of each fold's seed-averaged ranking, retrained for every n."""
    from deepstationing.search.ranking import RankedOrgan
    from deepstationing.search.sweep import parse_sweep, run_sweep
    from deepstationing.training import ModelFolder, TrainBudget, TrainOptions

    work = Path(args.workdir)
    opts = TrainOptions(workdir=work / f"runs-s{_ints(args.train_seeds)[0]}",
                        budget=TrainBudget(args.sweep_epochs, args.iterations), cpu=cpu,
                        device=args.device, threads=args.threads, progress=say)
    # the top-n stages go into the first seed's search model (as ``search --sweep`` does)
    model_dir = work / "models" / f"search-{args.source}-s{_ints(args.train_seeds)[0]}"
    ns = parse_sweep(args.sweep)
    per_fold = {}
    for fold in folds:
        ranked = [RankedOrgan(o, 0.0, i + 1)
                  for i, o in enumerate(averaged_rankings[str(fold)])]
        sweep = run_sweep(cohort, fold, ranked, ns, source=args.source, options=opts,
                          model=ModelFolder.open(model_dir),
                          out_dir=work / "search" / f"fold{fold}", progress=say)
        per_fold[str(fold)] = {r["n"]: r for r in sweep["results"]}
    summary = []
    for n in ns:
        dsc = [per_fold[str(f)][n]["mean_dsc"] for f in folds]
        summary.append({"n": n, "mean_dsc": _mean(dsc), "sd_dsc": round(float(np.std(dsc)), 3),
                        "per_fold": {str(f): round(d, 4) for f, d in zip(folds, dsc)}})
    return {"folds": folds, "results": summary}


def main(argv=None) -> int:
    args = parse_args(argv)
    from deepstationing import schema
    from deepstationing.data.cohort import Cohort
    from deepstationing.experiments.paper import SCALES
    from deepstationing.phantom import generate_cohort

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

    t0 = time.perf_counter()
    folds, seeds = _ints(args.folds), _ints(args.train_seeds)
    RESULTS.mkdir(exist_ok=True)
    runs = run_searches(cohort, folds, seeds, args, cpu, say)
    first = {f: runs["rankings"][f"{f}/{seeds[0]}"] for f in folds}
    doc = summary(first, folds)
    doc["runs"] = runs
    doc["stability"] = stability(runs, folds, seeds)
    avg = doc["stability"]["averaged_rankings"]
    if args.ablation:
        doc["ablation"] = run_ablations(cohort, folds, seeds[0], args, cpu, say, avg)
    if args.sweep:
        doc["sweep"] = run_sweeps(cohort, _ints(args.sweep_folds), args, cpu, say, avg)
        sweep_plot(doc["sweep"], RESULTS / f"{args.out_name}_sweep.png")
    doc["meta"] = {
        "command": "python benchmarks/bench_search.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.node()}: {os.cpu_count()} CPU cores, device {args.device}; "
                   f"load average at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())}",
        "cohort": f"phantom {args.preset} preset, {args.cases} cases, seed {args.seed}"
                  + (f", resampled to {spacing} mm" if spacing else ""),
        "network": (f"CPU configuration {cpu.to_json()}" if cpu else
                    "CPU configuration (defaults)"),
        "budget": f"search {args.epochs} x {args.iterations} iterations per fold and seed"
                  + (f"; sweep {args.sweep_epochs} x {args.iterations} per n" if args.sweep
                     else ""),
        "train_seeds": seeds, "paper_top6": list(schema.PAPER_TOP6_ORGANS),
        "note": args.note, "source": args.source,
        "total_minutes": round((time.perf_counter() - t0) / 60, 1)}
    (RESULTS / f"{args.out_name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / f"{args.out_name}.md").write_text(markdown(doc, folds))
    say(f"wrote {RESULTS / args.out_name}.{{json,md}}")
    return 0


def summary(rankings: dict[int, list[str]], folds: list[int]) -> dict:
    """One ranking per fold: non-boundary organs, top-6, Spearman, mean rank, paper top-6."""
    from deepstationing import schema
    from deepstationing.search.ranking import NON_BOUNDARY_ORGANS

    organs = list(schema.ORGANS.keys)
    ranks = {f: {o: rankings[f].index(o) + 1 for o in organs} for f in folds}
    pairs = pairwise(rankings, folds)
    mean_rank = {o: float(np.mean([ranks[f][o] for f in folds])) for o in organs}
    return {
        "rankings": {str(f): rankings[f] for f in folds},
        "non_boundary_ranks": {o: {str(f): ranks[f][o] for f in folds}
                               for o in NON_BOUNDARY_ORGANS},
        "top6_boundary_defining": {str(f): sum(o not in NON_BOUNDARY_ORGANS
                                               for o in rankings[f][:6]) for f in folds},
        "spearman_between_folds": pairs, "mean_spearman": _mean(pairs.values()),
        "mean_rank": dict(sorted(mean_rank.items(), key=lambda kv: kv[1])),
        "paper_top6_in_our_top6": {str(f): sorted(set(rankings[f][:6]) &
                                                  set(schema.PAPER_TOP6_ORGANS))
                                   for f in folds}}


def sweep_plot(sweep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sweep["results"]
    ns = [r["n"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for f in sweep["folds"]:
        ax.plot(ns, [100 * r["per_fold"][str(f)] for r in rows], "o-", alpha=0.35,
                lw=1, label=f"fold {f}")
    ax.errorbar(ns, [100 * r["mean_dsc"] for r in rows], [100 * r["sd_dsc"] for r in rows],
                color="k", lw=2, capsize=3, label="mean ± sd")
    ax.set_xlabel("top-n organ channels (CT + n)")
    ax.set_ylabel("held-out mean DSC (%)")
    ax.set_xticks(ns)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _table(columns: dict[str, list[str]], rows: int, first: str = "rank") -> list[str]:
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---" * (1 + len(columns)) + "|"]
    for i in range(rows):
        lines.append(f"| {i + 1} | " + " | ".join(c[i] for c in columns.values()) + " |")
    return lines


def markdown(doc: dict, folds: list[int]) -> str:
    meta = doc["meta"]
    seeds = meta["train_seeds"]
    lines = ["# Key-organ search on the phantom", "",
             f"Command: `{meta['command']}`  ", f"Date {meta['date']}; {meta['machine']}.  ",
             f"Cohort: {meta['cohort']}; {meta['network']}; organ channels: {meta['source']}; "
             f"{meta['budget']}; training seeds {seeds}; total {meta['total_minutes']} min.",
             *([meta["note"]] if meta.get("note") else []), "",
             f"## Ranking per fold (training seed {seeds[0]}, best first)", ""]
    lines += _table({f"fold {f}": doc["rankings"][str(f)] for f in folds},
                    len(doc["rankings"][str(folds[0])]))
    lines += ["", "## Organs that define no station boundary (docs/phantom.md)", "",
              "| organ | " + " | ".join(f"rank, fold {f}" for f in folds) + " |",
              "|---" * (1 + len(folds)) + "|"]
    for organ, per in doc["non_boundary_ranks"].items():
        lines.append(f"| {organ} | " + " | ".join(str(per[str(f)]) for f in folds) + " |")
    lines += ["", "Boundary-defining organs among each fold's top-6: "
              + ", ".join(f"fold {f}: {doc['top6_boundary_defining'][str(f)]}/6" for f in folds)
              + ".", "",
              f"Paper's top-6 ({', '.join(meta['paper_top6'])}) found in our top-6: "
              + "; ".join(f"fold {f}: {', '.join(v) or 'none'}"
                          for f, v in doc["paper_top6_in_our_top6"].items()) + ".", "",
              "Mean rank over the folds: " + ", ".join(f"{o} {r:.1f}" for o, r in
                                                       doc["mean_rank"].items()) + "."]
    lines += stability_lines(doc["stability"], seeds)
    if "ablation" in doc:
        lines += ablation_lines(doc["ablation"], folds)
    if "sweep" in doc:
        lines += sweep_lines(doc["sweep"])
    return "\n".join(lines) + "\n"


def stability_lines(st: dict, seeds: list[int]) -> list[str]:
    lines = ["", "## Stability (Spearman rank correlation, all 22 organs)", "",
             "| comparison | mean | pairs |", "|---|---|---|"]
    for s in seeds:
        lines.append(f"| between folds, seed {s} | {st['between_folds_mean'][str(s)]} | "
                     f"{st['between_folds'][str(s)]} |")
    if "between_seeds" in st:
        for f, pairs in st["between_seeds"].items():
            lines.append(f"| between seeds, fold {f} | {_mean(pairs.values())} | {pairs} |")
        lines += [f"| between seeds, all folds | {st['between_seeds_mean']} | |",
                  f"| between folds, weights averaged over seeds {seeds} | "
                  f"{st['averaged_between_folds_mean']} | {st['averaged_between_folds']} |",
                  "", "Top-6 of the seed-averaged weights: " + "; ".join(
                      f"fold {f}: {', '.join(r[:6])}"
                      for f, r in st["averaged_rankings"].items()) + "."]
    return lines


def ablation_lines(ab: dict, folds: list[int]) -> list[str]:
    lines = ["", "## Second opinion: held-out DSC lost per removed organ channel", "",
             "A CT + 22 network per fold (seed of the first search), its held-out cases "
             "predicted with each organ's channel emptied in turn; drop in DSC points.", ""]
    cols = {}
    for f in folds:
        drops = ab["drops"][str(f)]
        cols[f"fold {f}"] = [f"{o} ({100 * drops[o]:+.1f})" for o in ab["rankings"][str(f)]]
    lines += _table(cols, len(cols[f"fold {folds[0]}"]))
    lines += ["", "| fold | baseline DSC (%) | agreement with the weights (Spearman) | "
              "with the seed-averaged weights |", "|---|---|---|---|"]
    for f in folds:
        lines.append(f"| {f} | {100 * ab['baseline'][str(f)]:.1f} | "
                     f"{ab['agreement_with_weights'][str(f)]} | "
                     f"{ab['agreement_with_averaged_weights'][str(f)]} |")
    lines += ["", f"Ablation ranking between folds: mean Spearman {ab['between_folds_mean']}; "
              f"pairs {ab['between_folds']}."]
    return lines


def sweep_lines(sweep: dict) -> list[str]:
    folds = sweep["folds"]
    lines = ["", f"## Top-n sweep (folds {', '.join(map(str, folds))}; CT + the top-n of "
             "each fold's seed-averaged ranking, held-out cases)", "",
             "| top-n | mean DSC (%) | sd | " + " | ".join(f"fold {f}" for f in folds) + " |",
             "|---" * (3 + len(folds)) + "|"]
    for r in sweep["results"]:
        lines.append(f"| {r['n']} | {100 * r['mean_dsc']:.1f} | {100 * r['sd_dsc']:.1f} | "
                     + " | ".join(f"{100 * r['per_fold'][str(f)]:.1f}" for f in folds) + " |")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
