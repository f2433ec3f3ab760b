"""Benchmark: the nnU-Net cascade on the phantom with the CPU configuration.

Trains, on a phantom cohort (default 20 small-preset cases, 4 patient-level folds):

* the anchor and non-anchor organ stages (non-anchor on out-of-fold anchor predictions;
  both on all 4 folds, because the station stage's predicted organ channels must be
  out-of-fold),
* the single 22-organ network (fold 0),
* the station network with CT only and with CT + 22 predicted organs (fold 0),

then evaluates on the held-out fold 0: Dice per organ (stratified cascade vs single
network; anchors vs non-anchors) and per station (CT only vs CT + 22 predicted organs), and
times the full cascade (anchor -> non-anchor -> stations) per held-out case.

Dice is computed here with numpy (3D overlap per label, over each case, then averaged over
cases where the label is present in the truth) to keep the benchmark self-contained.

Writes ``benchmarks/results/cascade.json`` and ``cascade.md``. Run from the repo root::

    OMP_NUM_THREADS=1 nohup python benchmarks/bench_cascade.py --workdir /tmp/bench_cascade \
        > /tmp/bench_cascade.log 2>&1 &

The CPU budget is deliberately tiny (minutes per stage on 2 shared cores); the numbers show
that the pipeline learns and how the settings compare at *this* budget, not the paper's
accuracy (which needs ``--config full``, 1000 epochs on a GPU).
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def dice_per_label(truth: np.ndarray, pred: np.ndarray, ids) -> dict[int, float | None]:
    out = {}
    for i in ids:
        t, p = truth == i, pred == i
        nt, npd = int(t.sum()), int(p.sum())
        if nt == 0:
            out[i] = None  # absent in truth: not scored
            continue
        out[i] = 2.0 * int(np.logical_and(t, p).sum()) / (nt + npd)
    return out


def mean_over_cases(per_case: list[dict[int, float | None]], ids) -> dict[int, float | None]:
    res = {}
    for i in ids:
        vals = [d[i] for d in per_case if d.get(i) is not None]
        res[i] = float(np.mean(vals)) if vals else None
    return res


def _avg(values) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/bench_cascade")
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--spacing", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                    help="override the preset's voxel spacing (mm), e.g. for a quick dry run")
    ap.add_argument("--patch", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                    help="CPU-config patch (default: CpuConfig's 32 64 64)")
    ap.add_argument("--features", type=int, nargs="+", default=None,
                    help="CPU-config features per level (default: 8 16 32 64)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--val-iterations", type=int, default=2)
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for training")
    ap.add_argument("--infer-threads", type=int, default=2, help="torch threads for timing")
    ap.add_argument("--out", default=str(RESULTS / "cascade"))
    args = ap.parse_args()

    from deepstationing import schema
    from deepstationing.backbone.plans import CpuConfig
    from deepstationing.backbone.train import TrainBudget
    from deepstationing.data.cohort import Cohort
    from deepstationing.data.image import read_image
    from deepstationing.organs.cascade import OrganCascade, TrainOptions, train_organs
    from deepstationing.phantom import generate_cohort
    from deepstationing.stations.network import StationParser, train_stations

    t_start = time.time()
    work = Path(args.workdir)
    cohort_dir = work / f"phantom_{args.preset}_{args.cases}"
    if not (cohort_dir / "manifest.json").exists():
        generate_cohort(cohort_dir, args.cases, seed=0, preset=args.preset, n_folds=4,
                        workers=1, spacing=args.spacing,
                        progress=lambda done, total, case, dt: print(
                            f"[phantom] {done}/{total} {case} ({dt:.2f} s)", flush=True))
    cohort = Cohort(cohort_dir)
    budget = TrainBudget(args.epochs, args.iterations, args.val_iterations)
    defaults = CpuConfig()
    cpu = CpuConfig(tuple(args.patch) if args.patch else defaults.patch_size,
                    tuple(args.features) if args.features else defaults.features)
    opts = TrainOptions(workdir=work / "runs", config="cpu", cpu=cpu, budget=budget,
                        threads=args.threads)
    models = work / "runs" / "models"
    timings: dict[str, float] = {}

    def timed(name, fn):
        t = time.time()
        r = fn()
        timings[name] = round(time.time() - t, 1)
        print(f"== {name}: {timings[name]} s", file=sys.stderr, flush=True)
        return r

    k = args.fold
    pred_model = timed("train cascade (anchor+nonanchor, fold 0 + OOF folds)",
                       lambda: train_organs(cohort, k, options=opts,
                                            model_dir=models / "pred22"))
    timed("train stations CT+22 pred organs (incl. OOF cascade predictions)",
          lambda: train_stations(cohort, k, channels="pred:all", options=opts,
                                 model_dir=models / "pred22"))
    timed("train single 22-organ network",
          lambda: train_organs(cohort, k, options=opts, model_dir=models / "single",
                               stages=("single",)))
    timed("train stations CT only",
          lambda: train_stations(cohort, k, channels="none", options=opts,
                                 model_dir=models / "ctonly"))

    # ------------------------------------------------------------ evaluation
    test_ids = cohort.test_ids(k)
    organ_ids = schema.ORGANS.ids
    station_ids = schema.STATIONS.ids
    cascade = OrganCascade(pred_model, [k], use="cascade", threads=args.infer_threads)
    from deepstationing.training.model import ModelFolder

    single = OrganCascade(ModelFolder.open(models / "single"), [k], use="single",
                          threads=args.infer_threads)
    parser_pred = StationParser(models / "pred22", [k], threads=args.infer_threads)
    parser_ct = StationParser(models / "ctonly", [k], threads=args.infer_threads)
    d_casc, d_single, d_st_pred, d_st_ct, per_case_s = [], [], [], [], []
    for cid in test_ids:
        case = cohort.case(cid)
        ct = read_image(case.ct)
        organs_t = read_image(case.organs, label=True).array
        stations_t = read_image(case.stations, label=True).array
        t = time.perf_counter()
        organs_p, stations_p = parser_pred.predict(ct)  # the full cascade, timed
        per_case_s.append(time.perf_counter() - t)
        d_casc.append(dice_per_label(organs_t, organs_p.array, organ_ids))
        d_st_pred.append(dice_per_label(stations_t, stations_p.array, station_ids))
        d_single.append(dice_per_label(organs_t, single.predict(ct).array, organ_ids))
        _, st_ct = parser_ct.predict(ct)
        d_st_ct.append(dice_per_label(stations_t, st_ct.array, station_ids))
        print(f"evaluated {cid} (cascade {per_case_s[-1]:.1f} s)", file=sys.stderr, flush=True)
    del cascade

    def organ_table(per_case):
        m = mean_over_cases(per_case, organ_ids)
        per = {schema.ORGANS.by_id(i).key: m[i] for i in organ_ids}
        return {"per_organ": per,
                "anchors": _avg(per[o] for o in schema.ANCHOR_ORGANS),
                "non_anchors": _avg(per[o] for o in schema.NON_ANCHOR_ORGANS),
                "all": _avg(per.values())}

    def station_table(per_case):
        m = mean_over_cases(per_case, station_ids)
        per = {schema.STATIONS.by_id(i).key: m[i] for i in station_ids}
        return {"per_station": per, "average": _avg(per.values())}

    shape = read_image(cohort.case(test_ids[0]).ct).shape
    result = {
        "benchmark": "bench_cascade",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"host": platform.node(), "cpu_count": os.cpu_count(),
                    "note": "2 CPU cores shared with other jobs; no GPU",
                    "load_average_at_end": list(os.getloadavg())},
        "cohort": {"preset": args.preset, "spacing_override": args.spacing,
                   "cases": len(cohort), "fold_held_out": k,
                   "test_cases": test_ids, "example_shape_zyx": list(shape)},
        "config": {"config": "cpu", "cpu": cpu.to_json(),
                   "budget": budget.to_json(), "train_threads": args.threads,
                   "nonanchor_channels": "pred:anchors (out-of-fold)"},
        "organs": {"stratified_cascade": organ_table(d_casc),
                   "single_network": organ_table(d_single)},
        "stations": {"ct_only": station_table(d_st_ct),
                     "ct_plus_22_pred_organs": station_table(d_st_pred)},
        "inference": {
            "full_cascade_seconds_per_case": [round(s, 2) for s in per_case_s],
            "mean_seconds": round(float(np.mean(per_case_s)), 2),
            "threads": args.infer_threads, "device": "cpu",
            "machine": "this CI-like machine, 2 shared CPU cores",
            "gpu_full_config": "not measured (no GPU lent to this session); goal <= 15 s on "
                               "one H100 for a full-preset case",
        },
        "timings_s": timings,
        "total_minutes": round((time.time() - t_start) / 60, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(_markdown(result, schema))
    print(f"wrote {out.with_suffix('.json')} and .md", file=sys.stderr)
    return 0


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def _markdown(r: dict, schema) -> str:
    c, o, s = r["config"], r["organs"], r["stations"]
    lines = [
        "# Cascade benchmark (nnU-Net v2, CPU configuration, phantom)",
        "",
        f"Date {r['date']}; machine: {r['machine']['note']} (load average at end "
        f"{', '.join(f'{x:.1f}' for x in r['machine']['load_average_at_end'])}).",
        f"Cohort: phantom `{r['cohort']['preset']}` preset"
        + (f" at spacing {r['cohort']['spacing_override']} mm (x, y, z)"
           if r["cohort"].get("spacing_override") else "")
        + f", {r['cohort']['cases']} cases, "
        f"4 patient-level folds; held-out fold {r['cohort']['fold_held_out']} "
        f"({len(r['cohort']['test_cases'])} cases, shape z,y,x ~ "
        f"{r['cohort']['example_shape_zyx']}).",
        f"Budget per stage and fold: {c['budget']['epochs']} epochs x "
        f"{c['budget']['iterations']} iterations (batch {c['cpu']['batch_size']}, patch "
        f"{c['cpu']['patch_size']}, PlainConvUNet features {c['cpu']['features']}), "
        f"{c['train_threads']} torch thread. Total wall time {r['total_minutes']} min.",
        "This is a tiny training budget: the numbers compare settings at this budget; they "
        "are not the paper's accuracy.",
        "",
        "## Organs: Dice (%) on the held-out fold",
        "",
        "| organ | anchor | stratified cascade | single network |",
        "|---|---|---|---|",
    ]
    for org in schema.ORGANS:
        lines.append(f"| {org.key} | {'yes' if org.anchor else ''} | "
                     f"{_pct(o['stratified_cascade']['per_organ'][org.key])} | "
                     f"{_pct(o['single_network']['per_organ'][org.key])} |")
    for key, name in (("anchors", "**mean anchors**"), ("non_anchors", "**mean non-anchors**"),
                      ("all", "**mean all 22**")):
        lines.append(f"| {name} | | {_pct(o['stratified_cascade'][key])} | "
                     f"{_pct(o['single_network'][key])} |")
    lines += ["", "## Stations: Dice (%) on the held-out fold", "",
              "| station | CT only | CT + 22 predicted organs |", "|---|---|---|"]
    for st in schema.STATIONS:
        lines.append(f"| {st.key} | {_pct(s['ct_only']['per_station'][st.key])} | "
                     f"{_pct(s['ct_plus_22_pred_organs']['per_station'][st.key])} |")
    lines.append(f"| **average** | {_pct(s['ct_only']['average'])} | "
                 f"{_pct(s['ct_plus_22_pred_organs']['average'])} |")
    inf = r["inference"]
    lines += ["", "## Inference time (full cascade: anchor -> non-anchor -> stations)", "",
              f"- CPU config, {inf['machine']}, {inf['threads']} torch threads: "
              f"{inf['mean_seconds']} s per case "
              f"(per case: {inf['full_cascade_seconds_per_case']})",
              f"- Full config on a GPU: {inf['gpu_full_config']}.", "",
              "## Wall time per step (s)", ""]
    lines += [f"- {k}: {v}" for k, v in r["timings_s"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
