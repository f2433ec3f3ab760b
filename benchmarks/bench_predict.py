"""Per-step profile of ``deepstationing predict``: reading, resampling, each network, writing.

Builds (or reuses) a model with the CPU configuration's networks — anchor, non-anchor and a
CT + 22 predicted organs station stage — trained for one iteration each (a network's cost
does not depend on how well it is trained), then predicts full-preset phantom CTs
(512 x 512 x ~75 at 0.7 x 0.7 x 5 mm, the paper's geometry) and a tall 512 x 512 x 400 CT
(the phantom stacked in z) through the same code as ``predict``, timing every step and the
peak memory (resident set, and CUDA's peak on a GPU). Writes ``predict_profile.json`` and
``predict_profile.md``.

With ``--dicom-slices N`` a full-resolution phantom case with about N slices is also written
as a DICOM CT series and predicted from that folder, its write step timing the RTSTRUCT and
the two SEGs as ``predict --format nifti,rtstruct,seg`` writes them (``DICOM: ...`` rows).
``--dicom-only`` times the DICOM writing alone, without a model: the RTSTRUCT + two SEGs of
that series for the phantom's truth and for a scattered copy (fragments of every label
strewn over each slice, as a model produces on a scan unlike its training data),
``--repeats`` times each, then checks the files with dciodvfy, plastimatch and highdicom
(``--validate``); it writes ``dicom_write.json`` and ``dicom_write.md`` (or ``--out-name``).
Run with an older checkout's sources on the path it times that code's writing (totals only).

    python benchmarks/bench_predict.py                       # CPU, 2 threads
    python benchmarks/bench_predict.py --device cuda --out-name predict_profile_gpu
    python benchmarks/bench_predict.py --dicom-only --validate   # DICOM writing, 134 slices
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
    p.add_argument("--dicom-slices", type=int, default=0,
                   help="also predict a full-resolution phantom DICOM series of about this "
                        "many slices, writing RTSTRUCT + SEGs (0: skip; --dicom-only: 134)")
    p.add_argument("--dicom-only", action="store_true",
                   help="time only the DICOM writing of that series (no model)")
    p.add_argument("--repeats", type=int, default=3, help="--dicom-only: runs per label map")
    p.add_argument("--validate", action="store_true",
                   help="--dicom-only: check the files with dciodvfy, plastimatch, highdicom")
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


def dicom_case(work: Path, slices: int):
    """A full-preset phantom case with about ``slices`` slices as a DICOM CT series, and its
    truth maps: ``(series folder, stations, organs)`` (made once, then reused)."""
    from deepstationing.data.dicom.series import write_ct_series
    from deepstationing.data.image import read_image, write_image
    from deepstationing.phantom import generate_case

    folder = work / f"dicom_{slices}"
    if not (folder / "stations.nii.gz").exists():
        # the case's head-foot extent from a cheap grid, then the slice spacing that gives
        # about ``slices`` slices over it
        extent = (generate_case(0, preset="small").ct.shape[0] - 1) * 5.0
        case = generate_case(0, preset="full",
                             spacing=(0.7, 0.7, round(extent / (slices - 1), 3)))
        write_ct_series(case.ct, folder / "ct", uid_seed="bench-dicom")
        write_image(case.stations, folder / "stations.nii.gz")
        write_image(case.organs, folder / "organs.nii.gz")
    return (folder / "ct", read_image(folder / "stations.nii.gz", label=True),
            read_image(folder / "organs.nii.gz", label=True))


def scattered(image, n_labels: int, per_slice: int, seed: int):
    """``image`` with ``per_slice`` fragments (3 x 3 to 9 x 9 voxels) of random labels
    strewn over each slice, in the background."""
    rng = np.random.default_rng(seed)
    arr = np.array(image.array)
    nz, ny, nx = arr.shape
    for k in range(nz):
        for _ in range(per_slice):
            h, w = rng.integers(3, 10, 2)
            r, c = rng.integers(0, ny - h), rng.integers(0, nx - w)
            box = arr[k, r:r + h, c:c + w]
            box[box == 0] = rng.integers(1, n_labels + 1)
    return image.with_array(arr)


def _validate(ct: Path, out: Path, stations, organs) -> dict:
    """dciodvfy errors, plastimatch Dice per label, exact read-back by highdicom and by us."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from deepstationing.data.dicom.export import RTSTRUCT_FILE, SEG_FILES
    from deepstationing.data.dicom.rtstruct import rasterize_rtstruct, read_rtstruct
    from deepstationing.data.dicom.seg import read_seg
    from deepstationing.data.dicom.series import read_series_reference
    from deepstationing.schema import ORGANS, STATIONS
    from dicom_tools import dciodvfy_report, dice, plastimatch_masks

    ref = read_series_reference(ct)
    res = {"dciodvfy_errors": {f.name: len(dciodvfy_report(f)[0]) for f in sorted(out.iterdir())}}
    masks = plastimatch_masks(out / RTSTRUCT_FILE, out.parent / f"{out.name}_pm",
                              referenced_ct=ct)
    scores = [dice(masks[lab.roi_name][0], lm.array == lab.id)
              for labels, lm in ((STATIONS, stations), (ORGANS, organs)) for lab in labels
              if (lm.array == lab.id).any()]
    res["plastimatch_dice_min"] = round(min(scores), 5)
    res["plastimatch_labels"] = len(scores)
    back = rasterize_rtstruct(read_rtstruct(out / RTSTRUCT_FILE), ref)
    res["own_reader_exact"] = all(np.array_equal(back[lab.roi_name], lm.array == lab.id)
                                  for labels, lm in ((STATIONS, stations), (ORGANS, organs))
                                  for lab in labels if lab.roi_name in back)
    res["seg_exact_highdicom"] = all(
        np.array_equal(read_seg(out / SEG_FILES[k], ref)[0].array, lm.array)
        for k, lm in (("stations", stations), ("organs", organs)))
    return res


def dicom_only(args, argv=None) -> int:
    """Time the RTSTRUCT + two SEGs of the DICOM series, truth and scattered, --repeats times."""
    import inspect
    import shutil

    from deepstationing.data.dicom.export import export_dicom
    from deepstationing.timing import Timings

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    slices = args.dicom_slices or 134
    ct, stations, organs = dicom_case(work, slices)
    maps = {"phantom truth": (stations, organs),
            "scattered (truth + 20 fragments per slice per map)":
                (scattered(stations, 12, 20, 1), scattered(organs, 22, 20, 2))}
    runs = []
    for name, (st, org) in maps.items():
        for i in range(args.repeats):
            out = work / "dicom_out" / f"{len(runs)}"
            shutil.rmtree(out, ignore_errors=True)
            t = Timings()
            # an export_dicom without step timings (older code, for a before/after): totals
            kw = {"timings": t} if "timings" in inspect.signature(export_dicom).parameters \
                else {}
            wall, cpu = time.perf_counter(), time.process_time()
            files = export_dicom(ct, out, stations=st, organs=org, **kw)
            run = {"maps": name, "run": i + 1, "wall_s": round(time.perf_counter() - wall, 2),
                   "cpu_s": round(time.process_time() - cpu, 2),
                   "steps_s": {k: round(v, 2) for k, v in t.steps.items()},
                   "sizes_mb": {f.name: round(f.stat().st_size / 1e6, 2) for f in files},
                   "load_average_1min": round(os.getloadavg()[0], 1)}
            runs.append(run)
            print(f"{name} run {i + 1}: {run['wall_s']} s wall, {run['cpu_s']} s CPU "
                  f"(load {run['load_average_1min']})\n{t.table()}", file=sys.stderr,
                  flush=True)
        if args.validate:
            runs[-1]["validation"] = _validate(ct, out, st, org)
            print(f"{name}: {runs[-1]['validation']}", file=sys.stderr, flush=True)
    shape = list(stations.shape)
    meta = {"command": "python benchmarks/bench_predict.py " + " ".join(argv or sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "series": f"full-preset phantom case 0 as a DICOM CT series: {shape[0]} slices of "
                      f"{shape[1]} x {shape[2]}, spacing "
                      f"{', '.join(f'{v:g}' for v in stations.spacing)} mm (x, y, z)",
            "machine": f"{platform.node()}: {os.cpu_count()} CPU cores, shared"}
    name = "dicom_write" if args.out_name == "predict_profile" else args.out_name
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "runs": runs},
                                                     indent=2) + "\n")
    steps = list(dict.fromkeys(k for r in runs for k in r["steps_s"]))
    lines = ["# predict: writing RTSTRUCT + two SEGs (seconds)", "",
             f"Command: `{meta['command']}`; {meta['date']}; {meta['machine']}.  ",
             f"Series: {meta['series']}. `wall` is elapsed time, `CPU` the process's CPU "
             "time (what it would take on a free core); run 1 of each process also loads "
             "highdicom's tables of the DICOM standard.", "",
             "| " + " | ".join(["maps", "run", *steps, "wall", "CPU", "load"]) + " |",
             "|" + "---|" * (len(steps) + 5)]
    for r in runs:
        cells = [r["maps"], str(r["run"]), *(f"{r['steps_s'].get(k, 0):.2f}" for k in steps),
                 f"**{r['wall_s']:.2f}**", f"{r['cpu_s']:.2f}", str(r["load_average_1min"])]
        lines.append("| " + " | ".join(cells) + " |")
    for r in runs:
        if "validation" in r:
            lines.append(f"\nValidation, {r['maps']}: {json.dumps(r['validation'])}")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / name}.{{json,md}}", file=sys.stderr)
    return 0


def phantom_cts(work: Path, n: int, *, preset: str = "full",
                spacing: tuple[float, float, float] | None = None) -> list[Path]:
    """``n`` phantom CTs (cases 10, 11, ... of seed 0; the preset's grid, or ``spacing``
    x, y, z mm) as NIfTI files in ``work``, written once and reused."""
    from deepstationing.data.image import write_image
    from deepstationing.phantom import generate_case

    tag = preset if spacing is None else f"{preset}_{'x'.join(f'{v:g}' for v in spacing)}"
    paths = []
    for i in range(n):
        path = work / f"{tag}_{i}.nii.gz"
        if not path.exists():
            write_image(generate_case(10 + i, seed=0, preset=preset, spacing=spacing).ct, path)
        paths.append(path)
    return paths


def time_case(parser, path: Path, out_root: Path, *, device: str, dicom: bool = False) -> dict:
    """Predict one input (a CT file or, with ``dicom``, a DICOM series folder) with a loaded
    :class:`~deepstationing.stations.network.StationParser` as ``predict`` does, timing
    every step: read, each network and its input/output steps, writing NIfTI (and, for a
    series, the RTSTRUCT + two SEGs). Returns the row of the profile (seconds per step,
    total, peak resident memory so far, CUDA's peak on a GPU)."""
    from deepstationing.data.image import read_image, write_image
    from deepstationing.timing import Timings

    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    t = Timings()
    with t("read"):
        ct = read_image(path)
    organs, stations = parser.predict(ct, timings=t)
    out = out_root / (path.parent.name if dicom else path.name.split(".")[0])
    with t("write"):
        if organs is not None:
            write_image(organs, out / "organs.nii.gz")
        write_image(stations, out / "stations.nii.gz")
    if dicom:  # as predict --format nifti,rtstruct,seg
        from deepstationing.data.dicom.export import export_dicom

        export_dicom(path, out, stations=stations, organs=organs, timings=t)
    row = {"input": f"{path.parent.name}/{path.name}" if dicom else path.name,
           "shape_zyx": list(ct.shape),
           "spacing_xyz": [round(v, 2) for v in ct.spacing],
           "steps": {k: round(v, 2) for k, v in t.steps.items()},
           "total_s": round(t.total(), 2), "peak_rss_mb_so_far": round(peak_rss_mb())}
    if device == "cuda":
        import torch

        row["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    print(f"{path.name} {ct.shape}: {t.total():.1f} s\n{t.table()}", file=sys.stderr,
          flush=True)
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.dicom_only:
        return dicom_only(args, argv)
    from deepstationing.data.image import Image, read_image, write_image
    from deepstationing.stations.network import StationParser

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    model = build_model(work, args.device)
    t0 = time.perf_counter()
    parser = StationParser(model, [0], device=args.device, threads=args.threads)
    load_s = time.perf_counter() - t0
    inputs = phantom_cts(work, args.cases)
    dicom = set()
    if args.dicom_slices:
        ct_dir, _, _ = dicom_case(work, args.dicom_slices)
        inputs.append(ct_dir)
        dicom.add(ct_dir)
    if args.tall:
        path = work / f"tall_{args.tall}.nii.gz"
        if not path.exists():
            ct = read_image(inputs[0])
            reps = int(np.ceil(args.tall / ct.shape[0]))
            arr = np.concatenate([ct.array] * reps)[: args.tall]
            write_image(Image(arr, ct.spacing, ct.origin, ct.direction), path)
        inputs.append(path)
    rows = [time_case(parser, path, work / "out", device=args.device, dicom=path in dicom)
            for path in inputs]
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
