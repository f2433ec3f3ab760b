"""QC benchmark: silent on good phantom predictions, firing on the known failures.

Trains (or reuses, in ``--workdir``) a small model on the small phantom cohort with one fold
held out — a CT-only station network and a single 22-organ network, CPU configuration —
and runs the plausibility checks of ``deepstationing predict`` (:mod:`deepstationing.qc`)
on:

* the ground truth of every case of the cohort, each against the reference of the cases
  its fold's model trained on (must be silent);
* the held-out cases' predictions: stations and organs predicted, and the predicted
  stations with the ground-truth organs (good predictions: must be silent);
* the known failures: a real chest CT (``pyradiomics_thorax/lung2_image.nrrd`` from
  ``../shared/data/real``: table, arms, another scanner's appearance), each held-out CT
  mirrored left-right (the anatomy mirrored: the network puts its "4L" next to the arch,
  now on the patient's right), and held-out CTs cropped below the carina (a scan of the
  abdomen and lung bases); ``--failure-cases`` of them each.

Writes ``benchmarks/results/qc.{json,md}`` with every verdict and finding, the stations'
held-out DSC for context, and the QC time per case (small preset and a full-preset
512 x 512 case). Run from the repository root under ``nice`` (training about 15 minutes
per network on 2 free CPU cores; predictions and checks a few minutes)::

    nice -n 10 python benchmarks/bench_qc.py
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

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REAL = HERE.parent.parent / "shared" / "data" / "real"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=20)
    p.add_argument("--preset", default="small")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--spacing", default=None, metavar="X,Y,Z",
                   help="generate the cohort on this grid (mm; default: the preset's)")
    p.add_argument("--patch", default=None, help="network patch z,y,x (default: CpuConfig's)")
    p.add_argument("--features", default=None, help="features per level (default: CpuConfig's)")
    p.add_argument("--lr", type=float, default=None, help="AdamW learning rate")
    p.add_argument("--failure-cases", type=int, default=2,
                   help="how many held-out cases are also mirrored and cropped")
    p.add_argument("--real", default=str(REAL / "pyradiomics_thorax" / "lung2_image.nrrd"),
                   help="the real CT of failure (a)")
    p.add_argument("--workdir", default="/tmp/deepstationing-bench-qc")
    p.add_argument("--out-name", default="qc")
    return p.parse_args(argv)


def say(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def entry(name: str, report, **extra) -> dict:
    return {"input": name, "verdict": report.verdict, "line": report.line(),
            "seconds": round(report.seconds, 2), "findings": report.to_json()["findings"],
            "skipped": [s.to_json() for s in report.skipped], **extra}


def dice(a: np.ndarray, b: np.ndarray, ids) -> float:
    vals = []
    for i in ids:
        x, y = a == i, b == i
        n = x.sum() + y.sum()
        if n:
            vals.append(2 * (x & y).sum() / n)
    return float(np.mean(vals)) if vals else float("nan")


def main(argv=None) -> int:
    args = parse_args(argv)
    from deepstationing import schema
    from deepstationing.data.cohort import Cohort
    from deepstationing.data.image import Image, read_ct, read_image
    from deepstationing.organs.cascade import train_organs
    from deepstationing.phantom import generate_case, generate_cohort
    from deepstationing.qc import check_case, read_reference, record_training_cases
    from deepstationing.qc.run import QcRunner
    from deepstationing.stations.network import StationParser, train_stations
    from deepstationing.training import TrainBudget, TrainOptions

    t_start = time.perf_counter()
    work = Path(args.workdir)
    spacing = tuple(float(v) for v in args.spacing.split(",")) if args.spacing else None
    cohort_dir = work / (f"phantom_{args.preset}_{args.cases}_s{args.seed}"
                         + (f"_{args.spacing.replace(',', '_')}" if spacing else ""))
    cohort = Cohort(cohort_dir) if (cohort_dir / "manifest.json").exists() else \
        generate_cohort(cohort_dir, args.cases, seed=args.seed, preset=args.preset,
                        spacing=spacing)
    model_dir = work / "models" / "qc"
    cpu = None
    if args.patch or args.features or args.lr:
        from deepstationing.backbone.plans import CpuConfig

        base = CpuConfig()
        cpu = CpuConfig(tuple(int(v) for v in args.patch.split(",")) if args.patch
                        else base.patch_size,
                        tuple(int(v) for v in args.features.split(",")) if args.features
                        else base.features, base.batch_size, learning_rate=args.lr)
    opts = TrainOptions(workdir=work / "runs", config="cpu", cpu=cpu,
                        budget=TrainBudget(args.epochs, args.iterations), threads=args.threads,
                        seed=0, progress=say)
    t0 = time.perf_counter()
    train_stations(cohort, args.fold, channels="none", options=opts, model_dir=model_dir)
    train_organs(cohort, args.fold, options=opts, model_dir=model_dir, stages=("single",))
    train_minutes = (time.perf_counter() - t0) / 60
    record_training_cases(model_dir, cohort, args.fold)  # a model trained before the hook
    results: dict = {"truth": [], "heldout": [], "heldout_gt_organs": [], "real": [],
                     "mirrored": [], "cropped": []}

    # ---- the truth of every case, against its own fold's reference
    ref_all = work / "reference_all"
    for f in sorted({c.fold for c in cohort}):
        record_training_cases(ref_all, cohort, f)
    for case in cohort:
        ref = read_reference(ref_all, [case.fold])
        report = check_case(read_image(case.ct), read_image(case.organs, label=True),
                            read_image(case.stations, label=True), reference=ref)
        results["truth"].append(entry(case.id, report, reference_cases=ref.n_cases))
        say(f"truth {case.id}: {report.line()}")

    # ---- the model's predictions
    parser = StationParser(model_dir, [args.fold], threads=args.threads)
    qc = QcRunner(model_dir, [args.fold])
    test = [cohort.case(c) for c in cohort.test_ids(args.fold)]

    cache = work / "predictions"  # delete it to predict again (e.g. after retraining)

    def predict_cached(key: str, name: str, ct: Image) -> tuple:
        from deepstationing.data.image import write_image

        files = [cache / f"{key}_{name}_{role}.nii.gz" for role in ("organs", "stations")]
        if all(f.exists() for f in files):
            return tuple(read_image(f, label=True) for f in files)
        organs, stations = parser.predict(ct)
        write_image(organs, files[0])
        write_image(stations, files[1])
        return organs, stations

    def predict(name: str, ct: Image, key: str, **extra) -> tuple:
        organs, stations = predict_cached(key, name, ct)
        report = qc.check(ct, organs, stations)
        results[key].append(entry(name, report, **extra))
        say(f"{key} {name}: {report.line()}")
        return organs, stations

    for n, case in enumerate(test):
        ct = read_image(case.ct)
        truth_o, truth_s = (read_image(case.organs, label=True),
                            read_image(case.stations, label=True))
        organs, stations = predict_cached("heldout", case.id, ct)
        dsc = {"stations": round(100 * dice(truth_s.array, stations.array,
                                            schema.STATIONS.ids), 1),
               "organs": round(100 * dice(truth_o.array, organs.array,
                                          schema.ORGANS.ids), 1)}
        dsc.update({k: round(100 * dice(truth_o.array, organs.array,
                                        [schema.ORGANS.by_key(k).id]), 1)
                    for k in ("lung_r", "lung_l", "trachea", "heart")})
        report = qc.check(ct, organs, stations)
        results["heldout"].append(entry(case.id, report, dice=dsc))
        say(f"held-out {case.id} (DSC {dsc}): {report.line()}")
        report = qc.check(ct, truth_o, stations)
        results["heldout_gt_organs"].append(entry(case.id, report))
        say(f"held-out {case.id} with true organs: {report.line()}")
        if n >= args.failure_cases:
            continue
        # (b) the CT mirrored left-right
        mirrored = ct.with_array(ct.array[:, :, ::-1].copy())
        predict(case.id, mirrored, "mirrored")
        # (c) the CT cropped below the carina
        k_car = int(np.flatnonzero((truth_o.array == schema.ORGANS.by_key("trachea").id)
                                   .any(axis=(1, 2))).min())
        cropped = Image(ct.array[:k_car].copy(), ct.spacing, ct.origin, ct.direction)
        predict(case.id, cropped, "cropped", slices=f"0-{k_car - 1} of {ct.shape[0]}")
    # (a) a real CT
    real = Path(args.real)
    if real.exists():
        predict(real.name.split(".")[0], read_ct(real), "real")
    else:
        say(f"real CT {real} not found: failure (a) not run")

    # ---- QC time: a small case and a full-preset case (phantom truth)
    timing = {}
    for preset in ("small", "full"):
        c = generate_case(0, preset=preset)
        runs = []
        for _ in range(3):
            runs.append(check_case(c.ct, c.organs, c.stations,
                                   reference=read_reference(model_dir)).seconds)
        timing[preset] = {"shape": list(c.ct.shape), "seconds": round(min(runs), 2)}
        say(f"QC time {preset} {c.ct.shape}: {min(runs):.2f} s")

    results["meta"] = {
        "command": "python benchmarks/bench_qc.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
        "cohort": {"preset": args.preset, "cases": args.cases, "seed": args.seed,
                   "fold": args.fold, "test_cases": [c.id for c in test]},
        "budget": {"epochs": args.epochs, "iterations": args.iterations},
        "train_minutes_this_run": round(train_minutes, 1),
        "total_minutes": round((time.perf_counter() - t_start) / 60, 1),
        "qc_time": timing, "real": str(real)}
    RESULTS.mkdir(exist_ok=True)
    from deepstationing.data.atomic import write_json_atomic, write_text_atomic

    write_json_atomic(json.loads(json.dumps(results, default=float)),
                      RESULTS / f"{args.out_name}.json")
    write_text_atomic(markdown(results), RESULTS / f"{args.out_name}.md")
    say(f"wrote {RESULTS / args.out_name}.{{json,md}}")
    return 0


def machine() -> str:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{platform.node()}: {os.cpu_count()} CPU cores; load average at the end {load}"


SECTIONS = [
    ("truth", "Ground truth of every case (each against the reference of its fold's model)",
     "must be silent"),
    ("heldout", "Held-out predictions: organs and stations of the model", "good predictions"),
    ("heldout_gt_organs", "Held-out predictions: the model's stations with the true organs",
     "good predictions"),
    ("real", "(a) A real chest CT (table, arms, another scanner)", "must fire"),
    ("mirrored", "(b) Held-out CTs mirrored left-right", "must fire"),
    ("cropped", "(c) Held-out CTs cropped below the carina", "must fire"),
]


def markdown(results: dict) -> str:
    meta = results["meta"]
    lines = ["# QC benchmark: plausibility checks on good predictions and on known failures",
             "", f"Command: `{meta['command']}`  ",
             f"Date {meta['date']}; machine: {meta['machine']}.  ",
             f"Cohort: phantom `{meta['cohort']['preset']}` preset, {meta['cohort']['cases']} "
             f"cases (seed {meta['cohort']['seed']}), fold {meta['cohort']['fold']} held out "
             f"({', '.join(meta['cohort']['test_cases'])}).  ",
             f"Model: CT-only station network and single 22-organ network, CPU configuration, "
             f"{meta['budget']['epochs']} x {meta['budget']['iterations']} iterations each "
             f"(training in this run: {meta['train_minutes_this_run']} min; total "
             f"{meta['total_minutes']} min).  ",
             f"QC time per case (phantom truth, best of 3): small preset "
             f"{meta['qc_time']['small']['shape']} {meta['qc_time']['small']['seconds']} s, "
             f"full preset {meta['qc_time']['full']['shape']} "
             f"{meta['qc_time']['full']['seconds']} s.", "",
             "| inputs | expected | cases | ok | check | implausible |",
             "|---|---|---|---|---|---|"]
    for key, title, expected in SECTIONS:
        v = [e["verdict"] for e in results[key]]
        if v:
            lines.append(f"| {title} | {expected} | {len(v)} | {v.count('ok')} | "
                         f"{v.count('check')} | {v.count('implausible')} |")
    for key, title, _ in SECTIONS:
        if not results[key]:
            continue
        lines += ["", f"## {title}", ""]
        for e in results[key]:
            extra = ""
            if "dice" in e:
                d = e["dice"]
                extra = (f" (held-out DSC: stations {d['stations']} %, organs {d['organs']} %;"
                         f" lungs {d['lung_r']}/{d['lung_l']}, trachea {d['trachea']}, heart "
                         f"{d['heart']} %)")
            lines.append(f"- **{e['input']}**{extra}: {e['line']}")
        names = list(dict.fromkeys(f["name"] for e in results[key] for f in e["findings"]))
        lines += ["", "| finding | " + " | ".join(e["input"] for e in results[key]) + " |",
                  "|---|" + "---|" * len(results[key])]
        for name in names:
            cells = []
            for e in results[key]:
                f = next((f for f in e["findings"] if f["name"] == name), None)
                cells.append("skipped" if f is None else
                             f"{f['value']:g}" + (" **!**" if f["severity"] != "ok" else ""))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        skipped = sorted({f"{s['name']} ({s['reason']})" for e in results[key]
                          for s in e["skipped"]})
        if skipped:
            lines += ["", "Not checked: " + "; ".join(skipped) + "."]
    lines += ["", "**!** marks a finding that fired. Units: outside_body, outside_mediastinum, "
              "fragments, rules_agreement in %; station_side, organ_side, position_range in "
              "mm; volume_range a ratio; missing_* counts. Limits: `docs/qc.md`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
