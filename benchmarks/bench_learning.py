"""Learning benchmark: held-out station DSC against training iterations, with the rules beside.

Trains the station network of each setting (default: CT only, and CT + the 22 ground-truth
organs) on a phantom cohort with one fold held out, keeping a checkpoint every few epochs,
then evaluates every kept checkpoint on the held-out cases (organ channels from the
ground truth) and the margin rules on the same cases (ground-truth organs). Writes
``learning.json``, ``learning.md`` and ``learning.png`` (DSC vs iterations, the rules as a
line) with the command and the machine.

Run from the repository root (about one hour per setting at the default budget on two
CPU cores)::

    python benchmarks/bench_learning.py                           # CT only, CT + 22 GT organs
    python benchmarks/bench_learning.py --settings gt:all+sdm --out-name learning_sdm
    python benchmarks/bench_learning.py --device cuda --epochs 60 --iterations 100 \\
        --out-name learning_gpu

Settings are channel specs (``none``, ``gt:all``, ``gt:all+sdm``, ...). Existing training
in ``--workdir`` is reused (a finished setting is not retrained).

``--inner`` is for choosing settings (learning rate, optimiser, CT window, network, grid)
without looking at the reported fold: the run then uses the *inner* cohort of ``--fold``
(its training cases only) and scores inner fold 0, validation cases inside the training
folds (``docs/defaults.md`` lists what was chosen this way)::

    python benchmarks/bench_learning.py --inner --settings gt:all --optimizer sgd --lr 1e-2 \
        --out-name tune_sgd
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", default="none,gt:all", help="comma-separated channel specs; "
                   "';' separates specs that contain commas")
    p.add_argument("--cases", type=int, default=20)
    p.add_argument("--preset", default="small")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--snapshot-every", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--workdir", default="/tmp/deepstationing-bench-learning")
    p.add_argument("--inner", action="store_true",
                   help="tune: run on the training cases of --fold, score inner fold 0")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: trainer's)")
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default=None)
    p.add_argument("--ct-window", default="fixed", choices=("fixed", "nnunet"),
                   help="station CT window: the toolkit's fixed [-1000, 1000] HU or nnU-Net's "
                        "statistics of the target's foreground")
    p.add_argument("--patch", default=None, help="patch z,y,x (default: CpuConfig's)")
    p.add_argument("--features", default=None, help="features per level (default: CpuConfig's)")
    p.add_argument("--spacing", default=None, metavar="X,Y,Z",
                   help="grid of the station network in mm (default: the cohort's)")
    p.add_argument("--out-name", default="learning")
    p.add_argument("--note", default="", help="a sentence for the results (how it was run)")
    return p.parse_args(argv)


def split_settings(text: str) -> list[str]:
    return [s.strip() for s in (text.split(";") if ";" in text else text.split(",")) if s.strip()]


def summarize(rows) -> dict:
    """Mean DSC and per-station mean DSC of metric rows."""
    from deepstationing import schema
    from deepstationing.evaluation.heldout import mean_dsc

    per = [mean_dsc(r for r in rows if r.label == k) for k in schema.STATIONS.keys]
    return {"mean_dsc": mean_dsc(rows), "per_station": per}


def main(argv=None) -> int:
    args = parse_args(argv)
    from deepstationing import schema
    from deepstationing.backbone.channels import ChannelSpec
    from deepstationing.backbone.plans import CpuConfig
    from deepstationing.data.cohort import Cohort, inner_cohort
    from deepstationing.phantom import generate_cohort
    from deepstationing.rules.evaluation import evaluate_rules
    from deepstationing.stations.evaluation import evaluate_station_stage
    from deepstationing.stations.network import train_stations
    from deepstationing.training import ModelFolder, TrainBudget, TrainOptions

    work = Path(args.workdir)
    cohort_dir = work / f"phantom_{args.preset}_{args.cases}_s{args.seed}"
    if (cohort_dir / "manifest.json").exists():
        cohort = Cohort(cohort_dir)
    else:
        cohort = generate_cohort(cohort_dir, args.cases, seed=args.seed, preset=args.preset)
    fold = args.fold
    if args.inner:
        cohort = inner_cohort(cohort, args.fold, work / f"{cohort_dir.name}_inner{args.fold}")
        fold = 0
    test = [cohort.case(c) for c in cohort.test_ids(fold)]
    base = CpuConfig()
    cpu = CpuConfig(tuple(int(v) for v in args.patch.split(",")) if args.patch
                    else base.patch_size,
                    tuple(int(v) for v in args.features.split(",")) if args.features
                    else base.features, base.batch_size, learning_rate=args.lr,
                    optimizer=args.optimizer)
    spacing = tuple(float(v) for v in args.spacing.split(","))[::-1] if args.spacing else None
    if args.ct_window == "nnunet":  # the comparison of docs/defaults.md: nnU-Net's statistics
        import deepstationing.training.stages as stages

        stages.STATION_CT_WINDOW = None
    settings = split_settings(args.settings)
    print(f"cohort {cohort.root} ({len(cohort)} cases), fold {fold} held out "
          f"({len(test)} cases); settings {settings}", file=sys.stderr)
    t0 = time.perf_counter()
    rules = summarize(evaluate_rules(test))
    print(f"rules (ground-truth organs): mean DSC {100 * rules['mean_dsc']:.1f} %",
          file=sys.stderr)
    results = {"rules": rules, "settings": {}}
    for spec_text in settings:
        spec = ChannelSpec.parse(spec_text)
        opts = TrainOptions(workdir=work / "runs", config="cpu", cpu=cpu, spacing=spacing,
                            budget=TrainBudget(args.epochs, args.iterations),
                            device=args.device, threads=args.threads, workers=args.workers,
                            snapshot_every=args.snapshot_every,
                            progress=lambda m: print(m, file=sys.stderr, flush=True))
        model_dir = work / "models" / f"{args.out_name}-{spec.tag}"
        t1 = time.perf_counter()
        model = train_stations(cohort, fold, channels=spec, options=opts,
                               model_dir=model_dir)
        model = ModelFolder.open(model.root)
        folder = model.station_stage(str(spec))
        record = model.fold_record(folder, fold)
        runs = json.loads((model.checkpoint(folder, fold).parent /
                           "deepstationing_runs.json").read_text())
        train_seconds, per_iteration = training_speed(runs)
        curve = []
        fold_dir = model.checkpoint(folder, fold).parent
        for snap in sorted(fold_dir.glob("checkpoint_epoch_*.pth")):
            epoch = int(snap.stem.rsplit("_", 1)[1])
            ev = summarize(evaluate_station_stage(model, test, fold, stations=folder,
                                                  organs="gt", checkpoint=snap.name,
                                                  device=args.device, threads=args.threads))
            curve.append({"epoch": epoch, "iterations": epoch * args.iterations,
                          "train_minutes": round(per_iteration * epoch * args.iterations / 60,
                                                 1),
                          **ev})
            print(f"[{spec}] epoch {epoch} ({epoch * args.iterations} iterations): held-out "
                  f"mean DSC {100 * ev['mean_dsc']:.1f} %", file=sys.stderr, flush=True)
        results["settings"][str(spec)] = {
            "curve": curve, "train_seconds": round(train_seconds, 1),
            "seconds_per_iteration": round(per_iteration, 3),
            "record": record, "wall_seconds_incl_eval": round(time.perf_counter() - t1, 1)}
    results["meta"] = {
        "command": "python benchmarks/bench_learning.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
        "cohort": {"preset": args.preset, "cases": args.cases, "seed": args.seed,
                   "fold": args.fold, "inner": args.inner, "test_cases": [c.id for c in test]},
        "network": cpu.to_json(), "spacing": args.spacing, "ct_window": args.ct_window,
        "budget": {"epochs": args.epochs, "iterations": args.iterations,
                   "snapshot_every": args.snapshot_every},
        "total_minutes": round((time.perf_counter() - t0) / 60, 1), "note": args.note,
        "stations": list(schema.STATIONS.keys)}
    RESULTS.mkdir(exist_ok=True)
    from deepstationing.data.atomic import write_json_atomic, write_text_atomic

    write_json_atomic(results, RESULTS / f"{args.out_name}.json")
    write_text_atomic(markdown(results), RESULTS / f"{args.out_name}.md")
    plot(results, RESULTS / f"{args.out_name}.png")
    print(f"wrote {RESULTS / args.out_name}.{{json,md,png}}", file=sys.stderr)
    return 0


def training_speed(runs: list[dict]) -> tuple[float, float]:
    """Seconds of the timed training runs and seconds per iteration over them.

    A run that was killed (no ``seconds``) is left out of both: the speed comes from the
    runs that finished, and the training minutes of a curve are iterations x that speed.

    >>> training_speed([{"start_epoch": 0, "end_epoch": None, "iterations": 50},
    ...                 {"start_epoch": 20, "end_epoch": 60, "iterations": 50, "seconds": 1000}])
    (1000.0, 0.5)
    """
    timed = [r for r in runs if r.get("seconds") is not None and r.get("end_epoch") is not None]
    seconds = float(sum(r["seconds"] for r in timed))
    iterations = sum((r["end_epoch"] - r["start_epoch"]) * r["iterations"] for r in timed)
    return seconds, (seconds / iterations if iterations else float("nan"))


def machine() -> str:
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name(0)}"
    except Exception:  # noqa: BLE001 - describing the machine must not fail the benchmark
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"{platform.node()}: {os.cpu_count()} CPU cores ({platform.processor() or 'cpu'})"
            f"{gpu}; load average at the end {load}")


def markdown(results: dict) -> str:
    meta = results["meta"]
    names = meta["stations"]
    lines = ["# Learning benchmark: held-out station DSC against training iterations", "",
             f"Command: `{meta['command']}`  ",
             f"Date {meta['date']}; machine: {meta['machine']}.  ",
             f"Cohort: phantom `{meta['cohort']['preset']}` preset, {meta['cohort']['cases']} "
             f"cases (seed {meta['cohort']['seed']}), " + (
                 f"the training cases of fold {meta['cohort']['fold']} only, inner fold 0 held "
                 "out (validation cases for choosing settings)"
                 if meta["cohort"].get("inner") else f"fold {meta['cohort']['fold']} held out")
             + f" ({len(meta['cohort']['test_cases'])} cases); CPU configuration "
             f"{meta.get('network', '')}, grid {meta.get('spacing') or 'the cohort''s'}, "
             f"CT window {meta.get('ct_window', 'fixed')}; organ channels from the ground "
             "truth.  ",
             f"Budget per setting: {meta['budget']['epochs']} epochs x "
             f"{meta['budget']['iterations']} iterations (batch 2), a checkpoint kept every "
             f"{meta['budget']['snapshot_every']} epochs. Total time {meta['total_minutes']} "
             "min.", *([meta["note"]] if meta.get("note") else []), "",
             f"Reference: margin rules on the same cases with ground-truth organs: mean DSC "
             f"**{100 * results['rules']['mean_dsc']:.1f} %**.", "",
             "## Mean held-out DSC (%) after N iterations", ""]
    header = "| iterations | training minutes | " + " | ".join(results["settings"]) + " |"
    lines += [header, "|---" * (2 + len(results["settings"])) + "|"]
    curves = {k: {c["iterations"]: c for c in v["curve"]} for k, v in results["settings"].items()}
    its = sorted({i for c in curves.values() for i in c})
    for it in its:
        first = next(c[it] for c in curves.values() if it in c)
        cells = [f"{100 * c[it]['mean_dsc']:.1f}" if it in c else "" for c in curves.values()]
        lines.append(f"| {it} | {first['train_minutes']} | " + " | ".join(cells) + " |")
    lines += ["", "## Per station at the end of training (DSC %)", "",
              "| station | rules | " + " | ".join(results["settings"]) + " |",
              "|---" * (2 + len(results["settings"])) + "|"]
    for i, name in enumerate(names):
        cells = [f"{100 * v['curve'][-1]['per_station'][i]:.1f}" if v["curve"] else ""
                 for v in results["settings"].values()]
        lines.append(f"| {name} | {100 * results['rules']['per_station'][i]:.1f} | "
                     + " | ".join(cells) + " |")
    lines += ["", "## Training speed", ""]
    for k, v in results["settings"].items():
        lines.append(f"- `{k}`: {v['train_seconds'] / 60:.1f} min of timed training, "
                     f"{v['seconds_per_iteration']} s per iteration "
                     f"({v['record']['device']}, {v['record']['workers']} augmentation "
                     "workers)")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.style.context("default"):  # nnU-Net's progress plots restyle matplotlib
        _plot(results, path, plt)


def _plot(results: dict, path: Path, plt) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name, v in results["settings"].items():
        xs = [c["iterations"] for c in v["curve"]]
        ys = [100 * c["mean_dsc"] for c in v["curve"]]
        ax.plot(xs, ys, marker="o", label=f"network: CT + {name}" if name != "none"
                else "network: CT only")
    ax.axhline(100 * results["rules"]["mean_dsc"], color="k", ls="--",
               label="margin rules (ground-truth organs)")
    finish_curve_plot(fig, ax, path, plt, "held-out mean station DSC (%)",
                      "Station network learning on the phantom (held-out fold)")


def finish_curve_plot(fig, ax, path: Path, plt, ylabel: str, title: str) -> None:
    """Axes, grid, legend and title of a DSC-against-iterations plot; saves and closes it."""
    ax.set_xlabel("training iterations (batch 2)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
