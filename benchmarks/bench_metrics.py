"""Benchmark: DSC, HD, HD95 and ASSD of 12 labels on a 512 x 512 x 80 CT-sized pair.

Target: all four metrics for the 12 stations of a 512 x 512 x 80 pair at 0.7 x 0.7 x 5 mm in
at most 0.3 s (median), measured side by side with DeepMind's ``surface_distance`` used the
straightforward way (per label: ``mask == label`` on the full volume,
``compute_surface_distances``, Dice, robust Hausdorff 100 and 95, average distance) and,
with ``--with-monai``, MONAI's metrics. It also checks that our numbers and DeepMind's agree.

The pair: 12 station-sized ellipsoids (15-50 mm) in a mediastinum-like central region of the
volume; the prediction is the truth with every ellipsoid shifted by a few mm and resized by
up to 10 %, plus two small distant false-positive blobs (so HD differs from HD95).

Run as a user would (no thread limits)::

    python benchmarks/bench_metrics.py [--repeats 7] [--with-monai]

Results go to ``benchmarks/results/metrics.json`` and ``benchmarks/results/metrics.md``
(each run overwrites them). Other processes may be loading the machine; the load average at
the start of the run is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import surface_distance as sdl

from deepstationing.evaluation.metrics import METRIC_NAMES, label_map_metrics

SHAPE = (80, 512, 512)  # z, y, x
SPACING = (5.0, 0.7, 0.7)  # z, y, x in mm (array-axis order)
N_LABELS = 12
RESULTS = Path(__file__).resolve().parent / "results"


def _ellipsoid(shape, spacing, centre_mm, radii_mm) -> tuple[tuple[slice, ...], np.ndarray]:
    """Box and boolean mask of an axis-aligned ellipsoid (centre/radii in mm, z y x)."""
    lo = [max(0, int((c - r) / s) - 1) for c, r, s in zip(centre_mm, radii_mm, spacing)]
    hi = [min(n, int((c + r) / s) + 2) for c, r, s, n in zip(centre_mm, radii_mm, spacing, shape)]
    grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
    acc = 0.0
    for g, c, r, s in zip(grids, centre_mm, radii_mm, spacing):
        acc = acc + ((g * s - c) / r) ** 2
    return tuple(slice(a, b) for a, b in zip(lo, hi)), acc <= 1.0


def make_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Truth and prediction label maps (uint8, z y x) as described in the module docstring."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    extent = np.asarray(SHAPE) * np.asarray(SPACING)
    centre = extent / 2
    for label in range(1, N_LABELS + 1):
        # mediastinum-like region: 150 mm in z, +-40 mm left-right, +-35 mm front-back
        c = centre + rng.uniform([-75, -35, -40], [75, 35, 40])
        radii = rng.uniform(7.5, 25.0, size=3)  # diameters 15-50 mm
        box, m = _ellipsoid(SHAPE, SPACING, c, radii)
        truth[box][m] = label
        c2 = c + rng.uniform(-3, 3, size=3) * np.array([1.5, 1, 1])  # a few mm, z up to 4.5
        box, m = _ellipsoid(SHAPE, SPACING, c2, radii * rng.uniform(0.9, 1.1, size=3))
        pred[box][m] = label
    for label in (3, 8):  # distant small false positives
        c = centre + rng.uniform([-120, -100, -100], [120, 100, 100])
        box, m = _ellipsoid(SHAPE, SPACING, c, (6.0, 5.0, 5.0))
        pred[box][m] = label
    return truth, pred


def ours(truth: np.ndarray, pred: np.ndarray) -> dict[int, tuple[float, ...]]:
    res = label_map_metrics(truth, pred, SPACING, labels=range(1, N_LABELS + 1))
    return {k: tuple(getattr(m, n) for n in METRIC_NAMES) for k, m in res.items()}


def deepmind(truth: np.ndarray, pred: np.ndarray) -> dict[int, tuple[float, ...]]:
    out = {}
    for label in range(1, N_LABELS + 1):
        gt, pr = truth == label, pred == label
        sd = sdl.compute_surface_distances(gt, pr, SPACING)
        dsc = sdl.compute_dice_coefficient(gt, pr)
        hd = sdl.compute_robust_hausdorff(sd, 100)
        hd95 = sdl.compute_robust_hausdorff(sd, 95)
        d_gp, d_pg = sdl.compute_average_surface_distance(sd)
        a_g, a_p = sd["surfel_areas_gt"].sum(), sd["surfel_areas_pred"].sum()
        assd = (d_gp * a_g + d_pg * a_p) / (a_g + a_p)  # area-weighted over both surfaces
        out[label] = (float(dsc), float(hd), float(hd95), float(assd))
    return out


def deepmind_cropped(truth: np.ndarray, pred: np.ndarray) -> dict[int, tuple[float, ...]]:
    """The library itself on our per-label crops (the design alternative we measured)."""
    from scipy import ndimage

    boxes_t = ndimage.find_objects(truth, max_label=N_LABELS)
    boxes_p = ndimage.find_objects(pred, max_label=N_LABELS)
    out = {}
    for label in range(1, N_LABELS + 1):
        box = tuple(slice(min(a.start, b.start), max(a.stop, b.stop))
                    for a, b in zip(boxes_t[label - 1], boxes_p[label - 1]))
        gt, pr = truth[box] == label, pred[box] == label
        sd = sdl.compute_surface_distances(gt, pr, SPACING)
        dsc = sdl.compute_dice_coefficient(gt, pr)
        d_gp, d_pg = sdl.compute_average_surface_distance(sd)
        a_g, a_p = sd["surfel_areas_gt"].sum(), sd["surfel_areas_pred"].sum()
        out[label] = (float(dsc), float(sdl.compute_robust_hausdorff(sd, 100)),
                      float(sdl.compute_robust_hausdorff(sd, 95)),
                      float((d_gp * a_g + d_pg * a_p) / (a_g + a_p)))
    return out


def monai_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[int, tuple[float, ...]]:
    import torch
    from monai.metrics import (
        DiceMetric,
        compute_average_surface_distance,
        compute_hausdorff_distance,
    )

    labels = torch.arange(1, N_LABELS + 1, dtype=torch.uint8).view(1, -1, 1, 1, 1)
    y = (torch.from_numpy(truth)[None, None] == labels)
    y_pred = (torch.from_numpy(pred)[None, None] == labels)
    dsc = DiceMetric(include_background=True, reduction="none")(y_pred, y)[0]
    hd = compute_hausdorff_distance(y_pred, y, include_background=True, spacing=SPACING)[0]
    hd95 = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95,
                                      spacing=SPACING)[0]
    assd = compute_average_surface_distance(y_pred, y, include_background=True, symmetric=True,
                                            spacing=SPACING)[0]
    return {k + 1: (float(dsc[k]), float(hd[k]), float(hd95[k]), float(assd[k]))
            for k in range(N_LABELS)}


def _time(fn, truth, pred, repeats: int) -> tuple[list[float], dict]:
    times, result = [], {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn(truth, pred)
        times.append(time.perf_counter() - t0)
    return times, result


def _max_abs_diff(a: dict, b: dict) -> dict[str, float]:
    out = {}
    for i, name in enumerate(METRIC_NAMES):
        diffs = [abs(a[k][i] - b[k][i]) for k in a]
        out[name] = float(max(diffs))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of ours (default 7)")
    parser.add_argument("--deepmind-repeats", type=int, default=3)
    parser.add_argument("--with-monai", action="store_true", help="also time MONAI (1 run)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    load = os.getloadavg()
    truth, pred = make_pair()
    ours(truth, pred)  # warm-up (imports, lookup-table cache)
    t_ours, r_ours = _time(ours, truth, pred, max(5, args.repeats))
    t_dm, r_dm = _time(deepmind, truth, pred, max(3, args.deepmind_repeats))
    t_dc, r_dc = _time(deepmind_cropped, truth, pred, max(5, args.repeats))
    report: dict = {
        "benchmark": "DSC+HD+HD95+ASSD, 12 labels, 512x512x80 uint8 pair, spacing z,y,x "
                     f"{SPACING} mm",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            "nproc": os.cpu_count(),
            "loadavg_at_start": [round(v, 2) for v in load],
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "surface_distance": getattr(sdl, "__version__", "?"),
            "platform": platform.platform(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        },
        "target_s": 0.3,
        "ours_s": {"median": statistics.median(t_ours), "runs": t_ours},
        "deepmind_s": {"median": statistics.median(t_dm), "runs": t_dm},
        "deepmind_on_our_crops_s": {"median": statistics.median(t_dc), "runs": t_dc},
        "speedup_vs_deepmind": statistics.median(t_dm) / statistics.median(t_ours),
        "max_abs_diff_vs_deepmind": _max_abs_diff(r_ours, r_dm),
        "max_abs_diff_deepmind_cropped_vs_full": _max_abs_diff(r_dc, r_dm),
        "ours_per_label": {str(k): dict(zip(METRIC_NAMES, v)) for k, v in r_ours.items()},
    }
    if args.with_monai:
        t_mo, r_mo = _time(monai_metrics, truth, pred, 1)
        import monai

        report["machine"]["monai"] = monai.__version__
        report["monai_s"] = {"median": t_mo[0], "runs": t_mo}
        report["max_abs_diff_vs_monai"] = _max_abs_diff(r_ours, r_mo)
        report["monai_per_label"] = {str(k): dict(zip(METRIC_NAMES, v))
                                     for k, v in r_mo.items()}
    report["target_met"] = report["ours_s"]["median"] <= report["target_s"]
    report["history"] = _history(args.out / "metrics.json", report)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    md = _markdown(report)
    (args.out / "metrics.md").write_text(md)
    print(md)
    return 0


def _brief(r: dict) -> dict:
    keep = {"date": r["date"], "loadavg_at_start": r["machine"]["loadavg_at_start"],
            "ours_median_s": r["ours_s"]["median"], "deepmind_median_s": r["deepmind_s"]["median"]}
    if "monai_s" in r:
        keep["monai_s"] = r["monai_s"]["median"]
    return keep


def _history(previous: Path, report: dict, keep: int = 10) -> list[dict]:
    """Short records of this run and the previous ones (newest last), so reruns add up."""
    old: list[dict] = []
    if previous.is_file():
        try:
            old = json.loads(previous.read_text()).get("history", [])
        except (ValueError, AttributeError):
            old = []
    return (old + [_brief(report)])[-keep:]


def _markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        "# Metrics benchmark",
        "",
        f"{r['benchmark']}; {r['date']}; nproc {m['nproc']}, load average at start "
        f"{m['loadavg_at_start']}, numpy {m['numpy']}, scipy {m['scipy']}, "
        f"OMP_NUM_THREADS {m['OMP_NUM_THREADS']}.",
        "",
        "| implementation | median s | runs |",
        "|---|---|---|",
        f"| deepstationing (target <= {r['target_s']} s) | {r['ours_s']['median']:.3f} | "
        f"{len(r['ours_s']['runs'])} |",
        f"| DeepMind surface_distance, per label on full volume | "
        f"{r['deepmind_s']['median']:.3f} | {len(r['deepmind_s']['runs'])} |",
        f"| DeepMind surface_distance on our per-label crops | "
        f"{r['deepmind_on_our_crops_s']['median']:.3f} | "
        f"{len(r['deepmind_on_our_crops_s']['runs'])} |",
    ]
    if "monai_s" in r:
        lines.append(f"| MONAI {m['monai']} | {r['monai_s']['median']:.2f} | 1 |")
    lines += [
        "",
        f"Speed-up vs DeepMind: {r['speedup_vs_deepmind']:.1f}x. Target met: {r['target_met']}.",
        "",
        "Max abs difference vs DeepMind: "
        + ", ".join(f"{k} {v:.3g}" for k, v in r["max_abs_diff_vs_deepmind"].items()),
    ]
    lines.append("")
    lines.append("Max abs difference, DeepMind on crops vs on the full volume: "
                 + ", ".join(f"{k} {v:.3g}"
                             for k, v in r["max_abs_diff_deepmind_cropped_vs_full"].items()))
    if len(r.get("history", [])) > 1:
        lines += ["", "Recent runs (newest last):", "",
                  "| date | load avg | ours median s | DeepMind median s | MONAI s |",
                  "|---|---|---|---|---|"]
        for h in r["history"]:
            monai_s = f"{h['monai_s']:.2f}" if "monai_s" in h else "-"
            lines.append(f"| {h['date']} | {h['loadavg_at_start'][0]} | "
                         f"{h['ours_median_s']:.3f} | {h['deepmind_median_s']:.3f} | {monai_s} |")
    if "max_abs_diff_vs_monai" in r:
        lines.append("")
        lines.append("Max abs difference vs MONAI (voxel-counting surfaces, expected to differ): "
                     + ", ".join(f"{k} {v:.3g}" for k, v in r["max_abs_diff_vs_monai"].items()))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
