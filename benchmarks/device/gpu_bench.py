"""The GPU benchmark of issue 21, in one process sized for one device call (~8 minutes).

Steps, in this order, each timed; a step that fails is recorded with its error and the
next one runs; a step is skipped when the deadline (``--minutes`` from the start) leaves it
too little time, and the trainings are sized to leave ``--reserve-minutes`` for predict:

1. ``environment``: device, torch / CUDA / cuDNN / nnU-Net versions, the machine.
2. ``cohort``: a small phantom cohort (``--cases`` of ``--preset``, 4 folds).
3. ``organs``: the ``--config`` (default ``full``) anchor organ stage on fold 0, trained for
   about ``--organ-minutes``: 2 epochs are run alone (stopped as an interruption would) to
   time an epoch, then training resumes to the number of epochs that fills the minutes
   (nnU-Net's poly learning rate follows that total); ``--organ-epochs`` fixes the epochs
   instead. A checkpoint is kept ``--snapshots`` times; the final one, then the others
   while time allows, are scored on fold 0's held-out cases (per-organ DSC,
   ``bench_organs.score_snapshot``).
4. ``cascade``: the non-anchor organ stage for 1 iteration (a network's cost does not
   depend on its training), so that ``predict`` runs the whole cascade.
5. ``stations``: the station stage with CT + 22 ground-truth organ channels (``gt:all``),
   the same way (``--station-minutes``), scored with ground-truth organs
   (``evaluate_station_stage(checkpoint=...)`` as in ``bench_learning.py``).
6. ``predict``: the cascade loaded once per setting, test-time mirroring off (on
   ``--predict-cases`` CTs) then on (the first ``--tta-cases``), timing every step
   (``bench_predict.time_case``); then, if time allows, ``api.predict`` (the command's
   path: background reading, QC) over the same CTs.
7. ``logs``: nnU-Net's training logs and the run records, copied to ``OUT/train_logs``.

Seconds per iteration come from nnU-Net's epoch times in the progress lines
(``epoch k/N ... (s)``, validation iterations included), from the clock between those lines
(nnU-Net's per-epoch logging, plotting and checkpoints included) and from the run records
(wall time of each training run, set-up included). With ``--gpu-log`` (the ``nvidia-smi``
CSV that ``run.sh`` records) each step gets its mean GPU utilisation and peak memory.

Writes ``OUT/gpu.json`` and ``OUT/gpu.md`` after every step (a run cut short keeps what it
measured). ``run.sh`` beside this file runs it on the device machine::

    python benchmarks/device/gpu_bench.py --device cuda --out /tmp/ds-device-out
    python benchmarks/device/gpu_bench.py --device cpu --config full --cases 4 \\
        --preset small --spacing 11.2,11.2,20 --organ-epochs 2 --station-epochs 2 \\
        --iterations 2 --predict-preset small --predict-spacing 11.2,11.2,20   # a dry run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))  # benchmarks/: bench_predict, bench_organs, bench_learning

from bench_learning import summarize, training_speed  # noqa: E402
from bench_organs import score_snapshot  # noqa: E402
from bench_predict import phantom_cts, time_case  # noqa: E402

STEPS = ("environment", "cohort", "organs", "cascade", "stations", "predict", "logs")
#: Nominal epochs of the calibration run (only its first epoch runs).
NOMINAL_EPOCHS = 1000
#: Epochs run before the rest of the training is sized (the second one is timed).
CALIBRATION_EPOCHS = 2
EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+): train loss (\S+), val loss (\S+), "
                        r"pseudo Dice (\S+) \(([\d.]+) s\)")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--config", choices=("cpu", "full"), default="full")
    p.add_argument("--cases", type=int, default=8, help="phantom cases (4 folds)")
    p.add_argument("--preset", default="full")
    p.add_argument("--spacing", default=None, metavar="X,Y,Z",
                   help="the cohort's grid in mm (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--organ-minutes", type=float, default=1.0)
    p.add_argument("--station-minutes", type=float, default=1.5)
    p.add_argument("--organ-epochs", type=int, default=None,
                   help="fixed epochs instead of --organ-minutes")
    p.add_argument("--station-epochs", type=int, default=None,
                   help="fixed epochs instead of --station-minutes")
    p.add_argument("--iterations", type=int, default=50, help="iterations per epoch")
    p.add_argument("--val-iterations", type=int, default=5)
    p.add_argument("--snapshots", type=int, default=3, help="checkpoints scored per stage "
                   "(besides the final one)")
    p.add_argument("--workers", type=int, default=None,
                   help="augmentation processes (default: the toolkit's for the device)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for prediction (default: torch's)")
    p.add_argument("--predict-cases", type=int, default=3)
    p.add_argument("--tta-cases", type=int, default=2,
                   help="of those, how many are also timed with test-time mirroring on")
    p.add_argument("--predict-preset", default="full")
    p.add_argument("--predict-spacing", default=None, metavar="X,Y,Z")
    p.add_argument("--minutes", type=float, default=8.0,
                   help="deadline from the start; steps that would not fit are skipped")
    p.add_argument("--reserve-minutes", type=float, default=2.5,
                   help="kept for the cascade and predict steps when sizing the trainings")
    p.add_argument("--steps", default=",".join(STEPS))
    p.add_argument("--workdir", default="/tmp/ds-device-work")
    p.add_argument("--out", default=os.environ.get("OUT", "/tmp/ds-device-out"))
    p.add_argument("--gpu-log", default=None,
                   help="nvidia-smi CSV (default OUT/gpu_util.csv when present)")
    p.add_argument("--note", default="")
    return p.parse_args(argv)


def _xyz(text: str | None) -> tuple[float, float, float] | None:
    return tuple(float(v) for v in text.split(",")) if text else None  # type: ignore[return-value]


class Bench:
    """The results, the deadline, and the files: ``step`` runs one step and saves."""

    def __init__(self, args: argparse.Namespace, argv):
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(args.workdir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.t0 = time.time()
        self.deadline = self.t0 + 60 * args.minutes
        self.lines: list[tuple[float, str]] = []
        self.results: dict = {
            "meta": {"command": "python benchmarks/device/gpu_bench.py " +
                                " ".join(sys.argv[1:] if argv is None else argv),
                     "run_sh": os.environ.get("DS_RUN_SH_COMMAND", ""),
                     "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                     "args": vars(args), "note": args.note},
            "steps": {}}
        self.state: dict = {}

    def left(self) -> float:
        return self.deadline - time.time()

    def say(self, msg: str) -> None:
        now = time.time()
        self.lines.append((now, msg))
        line = f"[{now - self.t0:7.1f} s] {msg}"
        print(line, file=sys.stderr, flush=True)
        with open(self.out / "progress.log", "a") as f:
            f.write(line + "\n")

    def step(self, name: str, fn: Callable[[], dict], need_s: float = 0.0) -> None:
        if name not in self.args.steps.split(","):
            return
        rec: dict = {"start_s": round(time.time() - self.t0, 1)}
        self.results["steps"][name] = rec
        if need_s > 0 and self.left() < need_s:
            rec.update(status="skipped", error=f"out of time: {self.left():.0f} s left, "
                                                f"needs about {need_s:.0f} s")
            self.say(f"== {name}: skipped ({rec['error']})")
            self.save()
            return
        self.say(f"== {name} ({self.left():.0f} s left)")
        _reset_cuda_peak()
        try:
            rec.update(fn() or {})
            rec["status"] = "ok"
        except Exception as e:  # noqa: BLE001 - record and go on: device time is precious
            rec["status"] = "failed"
            rec["error"] = f"{type(e).__name__}: {e}"
            rec["traceback"] = traceback.format_exc()[-3000:]
            self.say(f"!! {name} failed: {rec['error']}")
        rec["end_s"] = round(time.time() - self.t0, 1)
        rec["seconds"] = round(rec["end_s"] - rec["start_s"], 1)
        peak = _cuda_peak_mb()
        if peak is not None:
            rec["cuda_peak_mb"] = peak
        self.say(f"== {name}: {rec['status']} in {rec['seconds']} s")
        self.save()

    def save(self) -> None:
        from deepstationing.data.atomic import write_json_atomic, write_text_atomic

        self.results["meta"]["elapsed_s"] = round(time.time() - self.t0, 1)
        self.results["gpu_util"] = gpu_util_by_step(self.gpu_log(), self.t0,
                                                    self.results["steps"])
        write_json_atomic(self.results, self.out / "gpu.json")
        write_text_atomic(markdown(self.results), self.out / "gpu.md")

    def gpu_log(self) -> Path:
        return Path(self.args.gpu_log) if self.args.gpu_log else self.out / "gpu_util.csv"


def _reset_cuda_peak() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
    except Exception:  # noqa: BLE001 - a measurement aid only
        pass


def _cuda_peak_mb() -> int | None:
    try:
        import torch

        if torch.cuda.is_available():
            return round(torch.cuda.max_memory_allocated() / 2**20)
    except Exception:  # noqa: BLE001
        pass
    return None


# ---------------------------------------------------------------------- steps
def environment(b: Bench) -> dict:
    import importlib.metadata as md

    import torch

    import deepstationing

    env = {"python": sys.version.split()[0], "platform": platform.platform(),
           "host": platform.node(), "cpu_cores": os.cpu_count(),
           "torch": torch.__version__, "torch_cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
           else None,
           "cuda_available": torch.cuda.is_available(),
           "deepstationing": deepstationing.__version__,
           "deepstationing_from": str(Path(deepstationing.__file__).parent),
           "git_commit": os.environ.get("DS_GIT_COMMIT") or _git("rev-parse", "HEAD"),
           "git_dirty_files": os.environ.get("DS_GIT_DIRTY")}
    for pkg in ("nnunetv2", "dynamic-network-architectures", "batchgeneratorsv2", "numpy",
                "SimpleITK"):
        try:
            env[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            env[pkg] = None
    if torch.cuda.is_available():
        prop = torch.cuda.get_device_properties(0)
        env["gpu"] = prop.name
        env["gpu_memory_gib"] = round(prop.total_memory / 2**30, 1)
        env["gpu_count"] = torch.cuda.device_count()
    b.results["meta"]["device_name"] = env.get("gpu") or f"CPU ({env['cpu_cores']} cores)"
    return {"env": env}


def _git(*cmd: str) -> str | None:
    try:
        return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def cohort_step(b: Bench) -> dict:
    from deepstationing.data.cohort import Cohort
    from deepstationing.phantom import generate_cohort

    a = b.args
    spacing = _xyz(a.spacing)
    tag = a.preset if spacing is None else f"{a.preset}_{'x'.join(f'{v:g}' for v in spacing)}"
    root = b.work / f"phantom_{tag}_{a.cases}_s{a.seed}"
    if (root / "manifest.json").exists():
        cohort, made = Cohort(root), False
    else:
        cohort = generate_cohort(root, a.cases, seed=a.seed, preset=a.preset, spacing=spacing,
                                 workers=min(8, os.cpu_count() or 1), progress=None)
        made = True
    b.state["cohort"] = cohort
    test = cohort.test_ids(0)
    from deepstationing.data.image import read_image

    ct = read_image(cohort.case(test[0]).ct)
    return {"root": str(root), "generated": made, "cases": len(cohort),
            "test_cases_fold0": test, "shape_zyx": list(ct.shape),
            "spacing_xyz": [round(v, 3) for v in ct.spacing]}


def _options(b: Bench, budget, *, stop_after=None, snapshot_every=None):
    from deepstationing.training import TrainOptions

    a = b.args
    return TrainOptions(workdir=b.work / "runs", config=a.config, budget=budget,
                        device=a.device, workers=a.workers, stop_after_epochs=stop_after,
                        snapshot_every=snapshot_every, progress=b.say)


def timed_training(b: Bench, train: Callable, *, minutes: float, epochs: int | None,
                   reserve_s: float) -> dict:
    """Train one stage (``train(options)``) for ``epochs``, or for about ``minutes`` (epoch 1
    alone first, to measure an epoch), keeping ``--snapshots`` checkpoints."""
    from deepstationing.backbone.trainers.deepstationing_trainers import TrainingStopped
    from deepstationing.training import TrainBudget

    a = b.args
    first_line = len(b.lines)
    started = time.time()
    info: dict = {"iterations_per_epoch": a.iterations, "val_iterations": a.val_iterations}
    if epochs is None:
        try:
            train(_options(b, TrainBudget(NOMINAL_EPOCHS, a.iterations, a.val_iterations),
                           stop_after=CALIBRATION_EPOCHS))
        except TrainingStopped:
            pass
        rec = training_record(b, first_line, started)
        walls = [e["wall_s"] for e in rec["epoch_lines"] if e.get("wall_s")]
        if not walls:
            raise RuntimeError("the calibration epochs printed no epoch lines")
        epoch_s = walls[-1]  # an epoch as the clock sees it (nnU-Net's logging included)
        # the calibration epochs count as training time
        budget_s = max(0.0, min(60 * minutes, b.left() - reserve_s +
                                CALIBRATION_EPOCHS * epoch_s))
        epochs = max(CALIBRATION_EPOCHS, int(budget_s // epoch_s))
        info["calibration"] = {"epochs": CALIBRATION_EPOCHS, "epoch_wall_s": epoch_s,
                               "wall_s_incl_export_and_planning": round(time.time() - started,
                                                                        1),
                               "training_seconds_allowed": round(budget_s, 1)}
        b.say(f"   an epoch takes {epoch_s:.1f} s: training to {epochs} epochs")
    every = max(1, epochs // max(1, a.snapshots))
    model = train(_options(b, TrainBudget(epochs, a.iterations, a.val_iterations),
                           snapshot_every=every))
    info.update(epochs=epochs, snapshot_every=every,
                wall_s=round(time.time() - started, 1),
                **training_record(b, first_line, started))
    return {"model": model, **info}


def training_record(b: Bench, first_line: int, started: float) -> dict:
    """Epoch lines and the phases (export, planning/preprocessing, set-up) of the lines
    said since ``first_line``."""
    lines = b.lines[first_line:]
    epochs = []
    before = None  # time of the line before, when it was an epoch line of the same run
    for t, line in lines:
        m = EPOCH_LINE.search(line)
        if m:
            epochs.append({"epoch": int(m.group(1)), "of": int(m.group(2)),
                           "train_loss": _num(m.group(3)), "val_loss": _num(m.group(4)),
                           "pseudo_dice": _num(m.group(5)), "seconds": float(m.group(6)),
                           "wall_s": round(t - before, 2) if before else None})
        before = t if m else None

    def first(pattern: str) -> float | None:
        return next((t for t, line in lines if re.search(pattern, line)), None)

    t_data, t_train = first(r"\] dataset "), first(r"\] training \d+ x")
    t_epoch = next((t for t, line in lines if EPOCH_LINE.search(line)), None)
    phases = {}
    if t_data:
        phases["to_dataset_exported_s"] = round(t_data - started, 1)
    if t_data and t_train:
        phases["planning_preprocessing_s"] = round(t_train - t_data, 1)
    if t_train and t_epoch:
        phases["trainer_setup_and_first_epoch_s"] = round(t_epoch - t_train, 1)
    return {"epoch_lines": epochs, "phases": phases}


def _num(text: str) -> float | None:
    try:
        return float(text.rstrip(","))
    except ValueError:
        return None


def speed(model, role: str, fold: int, iterations: int, epoch_lines: list[dict]) -> dict:
    runs = json.loads((model.checkpoint(role, fold).parent /
                       "deepstationing_runs.json").read_text())
    seconds, per_it = training_speed(runs)
    steady = [e["seconds"] for e in epoch_lines[1:]] or [e["seconds"] for e in epoch_lines]
    walls = [e["wall_s"] for e in epoch_lines if e.get("wall_s")]
    return {"runs": runs, "train_seconds_runs": round(seconds, 1),
            "seconds_per_iteration_runs": round(per_it, 4),
            "seconds_per_iteration_epochs": round(sum(steady) / len(steady) / iterations, 4)
            if steady else None,
            "seconds_per_iteration_wall": round(sum(walls) / len(walls) / iterations, 4)
            if walls else None,
            "first_epoch_s": epoch_lines[0]["seconds"] if epoch_lines else None}


def snapshots_of(model, role: str, fold: int) -> list[tuple[int, str]]:
    """``(epoch, checkpoint file)`` of the kept snapshots and the final checkpoint."""
    fold_dir = model.checkpoint(role, fold).parent
    final = int(model.fold_record(role, fold)["epochs"])
    snaps = [(int(p.stem.rsplit("_", 1)[1]), p.name)
             for p in sorted(fold_dir.glob("checkpoint_epoch_*.pth"))]
    snaps = [s for s in snaps if s[0] != final]
    return snaps + [(final, "checkpoint_final.pth")]


def scored_curve(b: Bench, snaps: list[tuple[int, str]], score: Callable[[str], dict],
                 iterations: int, reserve_s: float) -> list[dict]:
    """Score the final checkpoint first, then the others while the deadline allows."""
    curve, took = [], 0.0
    for epoch, name in [snaps[-1], *snaps[:-1]]:
        if curve and b.left() - reserve_s < 1.5 * took:
            b.say(f"   snapshot {name}: not scored (out of time)")
            continue
        t = time.time()
        curve.append({"epoch": epoch, "iterations": epoch * iterations, "checkpoint": name,
                      **score(name)})
        took = time.time() - t
        b.say(f"   {name}: held-out mean DSC {100 * curve[-1]['mean_dsc']:.1f} % "
              f"({took:.1f} s)")
    return sorted(curve, key=lambda c: c["epoch"])


def organs_step(b: Bench) -> dict:
    import numpy as np

    from deepstationing.organs.cascade import train_organs
    from deepstationing.training import ModelFolder

    a = b.args
    cohort = b.state["cohort"]
    model_dir = b.work / "model"
    reserve = 60 * (a.station_minutes + a.reserve_minutes) + 120  # cascade, station set-up
    res = timed_training(b, lambda o: train_organs(cohort, 0, options=o, model_dir=model_dir,
                                                   stages=("anchor",)),
                         minutes=a.organ_minutes, epochs=a.organ_epochs, reserve_s=reserve)
    model = ModelFolder.open(res.pop("model").root)
    b.state["model"] = model
    test = [cohort.case(c) for c in cohort.test_ids(0)]

    def score(name: str) -> dict:
        per = score_snapshot(model, "anchor", 0, test, name, threads=a.threads,
                             device=a.device)
        means = {k: float(np.nanmean(v)) if v else float("nan") for k, v in per.items()}
        return {"mean_dsc": float(np.nanmean(list(means.values()))), "per_organ": means}

    res["speed"] = speed(model, "anchor", 0, a.iterations, res["epoch_lines"])
    res["curve"] = scored_curve(b, snapshots_of(model, "anchor", 0), score, a.iterations,
                                reserve)
    res["record"] = model.fold_record("anchor", 0)
    return res


def stations_step(b: Bench) -> dict:
    from deepstationing.stations.evaluation import evaluate_station_stage
    from deepstationing.stations.network import train_stations
    from deepstationing.training import ModelFolder

    a = b.args
    cohort = b.state["cohort"]
    model_dir = b.work / "model"
    reserve = 60 * a.reserve_minutes
    res = timed_training(b, lambda o: train_stations(cohort, 0, channels="gt:all", options=o,
                                                     model_dir=model_dir),
                         minutes=a.station_minutes, epochs=a.station_epochs, reserve_s=reserve)
    model = ModelFolder.open(res.pop("model").root)
    folder = model.station_stage("gt:all")
    test = [cohort.case(c) for c in cohort.test_ids(0)]

    def score(name: str) -> dict:
        return summarize(evaluate_station_stage(model, test, 0, stations=folder, organs="gt",
                                                checkpoint=name, device=a.device,
                                                threads=a.threads))

    res["speed"] = speed(model, folder, 0, a.iterations, res["epoch_lines"])
    res["curve"] = scored_curve(b, snapshots_of(model, folder, 0), score, a.iterations,
                                reserve)
    res["record"] = model.fold_record(folder, 0)
    return res


def cascade_step(b: Bench) -> dict:
    from deepstationing.organs.cascade import train_organs
    from deepstationing.training import TrainBudget

    first_line, started = len(b.lines), time.time()
    train_organs(b.state["cohort"], 0, options=_options(b, TrainBudget(1, 1, 1)),
                 model_dir=b.work / "model", stages=("nonanchor",), anchor_source="gt")
    return {"what": "non-anchor organ stage, 1 epoch x 1 iteration (anchor channels from "
                    "the ground truth), for timing the cascade only",
            **training_record(b, first_line, started)}


def predict_step(b: Bench) -> dict:
    from deepstationing import api
    from deepstationing.stations.network import StationParser

    a = b.args
    model = b.work / "model"
    res: dict = {"modes": {}}
    b.results["steps"]["predict"].update(res)  # saved after every CT: a cut run keeps them
    cts: list[Path] = []
    for mode in (False, True):
        key = "tta_on" if mode else "tta_off"
        t = time.time()
        parser = StationParser(model, [0], device=a.device, mirroring=mode, threads=a.threads)
        load_s = time.time() - t
        if not cts:  # after the first load: a missing model fails before making CTs
            t = time.time()
            cts = phantom_cts(b.work / "predict_cts", a.predict_cases, preset=a.predict_preset,
                              spacing=_xyz(a.predict_spacing))
            res["cts_made_s"] = round(time.time() - t, 1)
        stages = {"stations": parser.stations, **(parser.organs.predictors
                                                   if parser.organs else {})}
        mirror = {name: {"use_mirroring": bool(p.folds[0].predictor.use_mirroring),
                         "allowed_mirroring_axes": _axes(
                             p.folds[0].predictor.allowed_mirroring_axes)}
                  for name, p in stages.items()}
        rows, took = [], 0.0
        for path in (cts[:a.tta_cases] if mode else cts):
            if rows and b.left() < 1.3 * took + 20:
                b.say(f"   {key} {path.name}: not timed (out of time)")
                continue
            t = time.time()
            rows.append(time_case(parser, path, b.work / "predict_out" / key,
                                  device=a.device))
            took = time.time() - t
            b.say(f"   {key} {path.name}: {rows[-1]['total_s']} s")
            res["modes"][key] = {"model_load_s": round(load_s, 2), "mirroring": mirror,
                                 "rows": rows, **_totals(rows)}
            b.save()
        res["modes"].setdefault(key, {"model_load_s": round(load_s, 2), "mirroring": mirror,
                                      "rows": []})
        del parser
    mean = res["modes"]["tta_off"].get("mean_total_s") or 0.0
    need = len(cts) * mean + 30
    if b.left() < need:
        res["api_predict"] = {"status": "skipped", "error": f"out of time ({b.left():.0f} s "
                                                           f"left, needs about {need:.0f} s)"}
        return res
    out = b.work / "api_predict_out"
    shutil.rmtree(out, ignore_errors=True)
    t = time.time()
    results = api.predict(cts, out, model, device=a.device, folds=[0], mirroring=False,
                          threads=a.threads)
    res["api_predict"] = {"what": "api.predict over the CTs (model loaded once, next CT read "
                                  "in the background, QC on, NIfTI written), mirroring off",
                          "wall_s": round(time.time() - t, 1),
                          "cases": [{"name": r.name, "ok": r.ok, "seconds": round(r.seconds, 2),
                                     "error": r.error,
                                     "timings": {k: round(v, 2) for k, v in r.timings.items()}}
                                    for r in results]}
    return res


def _axes(axes) -> list[int] | None:
    return None if axes is None else [int(v) for v in axes]


def _totals(rows: list[dict]) -> dict:
    if not rows:
        return {}
    totals = [r["total_s"] for r in rows]
    rest = totals[1:] or totals
    return {"first_total_s": totals[0], "mean_total_s": round(sum(totals) / len(totals), 2),
            "mean_total_after_first_s": round(sum(rest) / len(rest), 2)}


def logs_step(b: Bench) -> dict:
    """nnU-Net's training logs and the run records of every stage, to OUT/train_logs."""
    dest = b.out / "train_logs"
    copied = []
    model = b.work / "model"
    for f in sorted(model.glob("*/fold_*/*")):
        if f.suffix in (".txt", ".json", ".png") and f.stat().st_size < 2_000_000:
            target = dest / f.parent.parent.name / f.parent.name / f.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
            copied.append(str(target.relative_to(b.out)))
    for f in sorted((b.work / "runs").glob("nnunet_results/*/*/fold_all/training_log_*.txt")):
        target = dest / "nnunet" / f.parents[2].name / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
        copied.append(str(target.relative_to(b.out)))
    return {"copied": copied}


# ---------------------------------------------------------------------- GPU log
def gpu_util_by_step(csv_path: Path, t0: float, steps: dict) -> dict:
    """Mean GPU utilisation and peak memory per step from ``nvidia-smi``'s CSV
    (``timestamp, utilization.gpu [%], memory.used [MiB], ...``, one row per second).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "u.csv"
    >>> _ = p.write_text("timestamp, utilization.gpu [%], memory.used [MiB]\\n"
    ...                  "2030/01/01 00:00:01.000, 50, 1000\\n"
    ...                  "2030/01/01 00:00:02.000, 100, 3000\\n")
    >>> t0 = datetime.datetime(2030, 1, 1).timestamp()
    >>> gpu_util_by_step(p, t0, {"a": {"start_s": 0, "end_s": 5}})["a"]
    {'samples': 2, 'mean_util_pct': 75.0, 'max_memory_mib': 3000.0}
    """
    if not csv_path.exists():
        return {}
    rows = []
    for line in csv_path.read_text().splitlines()[1:]:
        cells = [c.strip() for c in line.split(",")]
        try:
            t = datetime.datetime.strptime(cells[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
            rows.append((t - t0, float(cells[1]), float(cells[2])))
        except (ValueError, IndexError):
            continue
    out = {}
    for name, rec in steps.items():
        if "end_s" not in rec:
            continue
        sel = [r for r in rows if rec["start_s"] <= r[0] <= rec["end_s"]]
        if sel:
            out[name] = {"samples": len(sel),
                         "mean_util_pct": round(sum(r[1] for r in sel) / len(sel), 1),
                         "max_memory_mib": max(r[2] for r in sel)}
    return out


# ---------------------------------------------------------------------- report
def _pct(v) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.1f}"


def markdown(r: dict) -> str:
    meta, steps = r["meta"], r["steps"]
    env = steps.get("environment", {}).get("env", {})
    lines = ["# GPU benchmark (issue 21)", "",
             f"Command: `{meta['command']}`  ",
             *([f"Run as: `{meta['run_sh']}`  "] if meta.get("run_sh") else []),
             f"Started {meta['started']}; {meta.get('elapsed_s')} s elapsed at the last save.  ",
             f"Device: **{meta.get('device_name', '?')}**; torch {env.get('torch')} (CUDA "
             f"{env.get('torch_cuda')}, cuDNN {env.get('cudnn')}), nnU-Net "
             f"{env.get('nnunetv2')}, Python {env.get('python')}, {env.get('cpu_cores')} CPU "
             f"cores; deepstationing {env.get('deepstationing')} at "
             f"{env.get('git_commit') or 'unknown commit'}.",
             *([meta["note"]] if meta.get("note") else []), "",
             "## Steps", "", "| step | status | seconds | CUDA peak (MB) | GPU util (mean %) | "
             "GPU memory (max MiB) | error |", "|---|---|---|---|---|---|---|"]
    util = r.get("gpu_util", {})
    for name, rec in steps.items():
        u = util.get(name, {})
        lines.append(f"| {name} | {rec.get('status', 'running')} | {rec.get('seconds', '')} | "
                     f"{rec.get('cuda_peak_mb', '')} | {u.get('mean_util_pct', '')} | "
                     f"{u.get('max_memory_mib', '')} | {rec.get('error', '')} |")
    c = steps.get("cohort", {})
    if c.get("status") == "ok":
        lines += ["", f"Cohort: {c['cases']} phantom cases, {c['shape_zyx']} voxels (z, y, x) "
                      f"at {c['spacing_xyz']} mm (x, y, z); fold 0 held out: "
                      f"{', '.join(c['test_cases_fold0'])}."]
    for name, title in (("organs", "Anchor organ stage (CT -> 11 anchor organs)"),
                        ("stations", "Station stage (CT + 22 ground-truth organs)")):
        s = steps.get(name, {})
        if "epochs" not in s:
            continue
        sp = s.get("speed", {})
        lines += ["", f"## {title}, `{meta['args']['config']}` configuration", "",
                  f"{s['epochs']} epochs x {s['iterations_per_epoch']} iterations "
                  f"(+ {s['val_iterations']} validation iterations per epoch), a checkpoint "
                  f"every {s['snapshot_every']} epochs; {s['wall_s']} s in all.  ",
                  f"Seconds per iteration: **{sp.get('seconds_per_iteration_epochs')}** from "
                  f"nnU-Net's epoch times after the first (validation included), "
                  f"{sp.get('seconds_per_iteration_wall')} from the clock between epoch lines "
                  f"(nnU-Net's logging, plotting, checkpoints included), "
                  f"{sp.get('seconds_per_iteration_runs')} from the run records (set-up "
                  f"included); first epoch {sp.get('first_epoch_s')} s.  ",
                  "Phases (s): " + ", ".join(f"{k} {v}" for k, v in s["phases"].items())
                  + (f"; calibration {s['calibration']}" if s.get("calibration") else "")
                  + ".", "", "| epoch | iterations | held-out mean DSC (%) |", "|---|---|---|"]
        for p in s.get("curve", []):
            lines.append(f"| {p['epoch']} | {p['iterations']} | {_pct(p['mean_dsc'])} |")
        dice = [f"{e['epoch']}: {e['pseudo_dice']}" for e in s["epoch_lines"]]
        lines.append(f"\nnnU-Net's pseudo Dice (training cases) by epoch: {', '.join(dice)}")
    p = steps.get("predict", {})
    for key, m in p.get("modes", {}).items():
        rows = m["rows"]
        lines += ["", f"## predict, test-time mirroring {key[4:]} (model loaded once in "
                      f"{m['model_load_s']} s)", "",
                  "Mirroring as the predictors were set: " + "; ".join(
                      f"{k}: use {v['use_mirroring']}, allowed axes "
                      f"{v['allowed_mirroring_axes']}" for k, v in m["mirroring"].items()), ""]
        if not rows:
            continue
        step_names = list(dict.fromkeys(k for row in rows for k in row["steps"]))
        lines += ["| step | " + " | ".join(f"{row['input']} {tuple(row['shape_zyx'])}"
                                           for row in rows) + " |",
                  "|---|" + "---|" * len(rows)]
        for sn in step_names:
            lines.append(f"| {sn} | " + " | ".join(f"{row['steps'].get(sn, 0):.2f}"
                                                    for row in rows) + " |")
        lines.append("| **total** | " + " | ".join(f"**{row['total_s']:.1f}**" for row in rows)
                     + " |")
        if rows and "cuda_peak_mb" in rows[0]:
            lines.append("| CUDA peak (MB) | " + " | ".join(str(row["cuda_peak_mb"])
                                                           for row in rows) + " |")
        lines.append(f"\nMean per CT {m.get('mean_total_s')} s; after the first "
                     f"{m.get('mean_total_after_first_s')} s.")
    ap = p.get("api_predict")
    if ap:
        if "cases" in ap:
            lines += ["", f"`api.predict` over the CTs: {ap['wall_s']} s wall; per case: " +
                      ", ".join(f"{c['name']} {c['seconds']} s" + ("" if c["ok"] else
                                                                   f" (failed: {c['error']})")
                                for c in ap["cases"])]
        else:
            lines += ["", f"`api.predict`: {ap.get('status')} ({ap.get('error')})"]
    failed = [(n, s) for n, s in steps.items() if s.get("status") == "failed"]
    if failed:
        lines += ["", "## Errors", ""]
        for n, s in failed:
            lines += [f"### {n}", "", "```", s.get("traceback", s.get("error", "")).strip(),
                      "```", ""]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    b = Bench(args, argv)
    b.say(f"gpu_bench: out {b.out}, workdir {b.work}, deadline {args.minutes} min")
    b.step("environment", lambda: environment(b))
    b.step("cohort", lambda: cohort_step(b))
    b.step("organs", lambda: organs_step(b), need_s=90)
    b.step("cascade", lambda: cascade_step(b), need_s=60)
    b.step("stations", lambda: stations_step(b), need_s=90)
    b.step("predict", lambda: predict_step(b), need_s=20)
    b.step("logs", lambda: logs_step(b))
    b.say(f"wrote {b.out / 'gpu.json'} and {b.out / 'gpu.md'}")
    failed = [n for n, s in b.results["steps"].items() if s.get("status") != "ok"]
    if failed:
        b.say(f"steps not ok: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
