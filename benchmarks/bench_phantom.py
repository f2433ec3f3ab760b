"""Benchmark: phantom generation speed and memory (issue targets: full case <= 2 s, small case
<= 0.3 s on the 2-core machine, < 2 GB per case; 20 full + 20 small cases).

Measures, per preset, the median over a few cases (wall and CPU seconds, with the machine's
load average) of: generation (``generate_case``), writing
the six files (``write_case``, SimpleITK NIfTI, compression level 1) and both together; the
peak resident memory of one case in a fresh subprocess (``ru_maxrss``, includes the Python +
numpy + SimpleITK baseline, also reported); and the wall time of a 20-case cohort per preset
(serial, and with 2 workers). Writes ``benchmarks/results/phantom.json`` and ``.md``.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_phantom.py [--repeats 3] [--cohort 20]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deepstationing.phantom import PHANTOM_VERSION, generate_case, generate_cohort

ROOT = Path(__file__).resolve().parent
MEM_SNIPPET = """
import resource, sys, tempfile, tracemalloc
from deepstationing.phantom import generate_case
tracemalloc.start()
c = generate_case(0, preset=sys.argv[1])
with tempfile.TemporaryDirectory() as d:
    c.write(d)
peak = tracemalloc.get_traced_memory()[1]
print(peak // 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def time_case(preset: str, repeats: int) -> dict:
    """Medians of wall (``perf_counter``) and CPU (``process_time``) seconds per case.

    CPU time is the robust number on a shared machine: other jobs stretch the wall time but
    not the CPU seconds this process spends."""
    gen, wri, tot, stages = [], [], [], []
    cgen, cwri, ctot = [], [], []
    generate_case(99, preset=preset)  # warm-up (imports, caches)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        for i in range(repeats):
            tm: dict = {}
            t0, c0 = time.perf_counter(), time.process_time()
            c = generate_case(i, preset=preset, timings=tm)
            t1, c1 = time.perf_counter(), time.process_time()
            c.write(Path(d) / c.id)
            t2, c2 = time.perf_counter(), time.process_time()
            gen.append(t1 - t0)
            wri.append(t2 - t1)
            tot.append(t2 - t0)
            cgen.append(c1 - c0)
            cwri.append(c2 - c1)
            ctot.append(c2 - c0)
            stages.append(tm)
    shape = list(c.ct.shape)
    med = lambda v: round(statistics.median(v), 3)  # noqa: E731
    med_stage = {k: med(s[k] for s in stages) for k in stages[0]}
    return {"shape_zyx_last": shape, "generate_s": med(gen), "write_s": med(wri),
            "total_s": med(tot), "total_all_s": [round(v, 3) for v in tot],
            "cpu_generate_s": med(cgen), "cpu_write_s": med(cwri), "cpu_total_s": med(ctot),
            "cpu_total_all_s": [round(v, 3) for v in ctot], "stages_s": med_stage,
            "loadavg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)]}


def peak_memory(preset: str) -> dict:
    res = subprocess.run([sys.executable, "-c", MEM_SNIPPET, preset], capture_output=True,
                         text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    traced, peak = (int(v) for v in res.stdout.split())
    return {"peak_rss_mb": round(peak / 1024, 1), "case_mb": round(traced / 1024, 1)}


def time_cohort(preset: str, n: int, workers: int, check: bool = False) -> tuple[float, dict]:
    """Wall time of an ``n``-case cohort; with ``check``, which cases lack an organ/station."""
    import numpy as np

    from deepstationing.data.image import read_image

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        coh = generate_cohort(Path(d) / "c", n, preset=preset, workers=workers,
                              progress=False)
        dt = round(time.perf_counter() - t0, 2)
        missing: dict = {}
        if check:
            for case in coh:
                org = np.unique(read_image(case.organs, label=True).array)
                st = np.unique(read_image(case.stations, label=True).array)
                if len(org) != 23 or len(st) != 13:
                    missing[case.id] = {"organs": 23 - len(org), "stations": 13 - len(st)}
        return dt, missing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cohort", type=int, default=20)
    args = ap.parse_args()
    out: dict = {"phantom_version": PHANTOM_VERSION, "machine": platform.machine(),
                 "cpus": os.cpu_count(), "python": platform.python_version(),
                 "date": time.strftime("%Y-%m-%d %H:%M"), "note": "shared CPU; medians"}
    for preset in ("small", "full"):
        r = time_case(preset, args.repeats)
        r["memory"] = peak_memory(preset)
        r[f"cohort_{args.cohort}_serial_s"], miss = time_cohort(preset, args.cohort, 1, True)
        r[f"cohort_{args.cohort}_2workers_s"], _ = time_cohort(preset, args.cohort, 2)
        r["cases_missing_an_organ_or_station"] = miss
        out[preset] = r
        print(preset, json.dumps(r), flush=True)
    res = ROOT / "results"
    res.mkdir(exist_ok=True)
    (res / "phantom.json").write_text(json.dumps(out, indent=2) + "\n")
    n = args.cohort
    lines = [
        "# Phantom generation benchmark", "",
        f"`python benchmarks/bench_phantom.py` on {out['date']}, {out['cpus']} CPU(s) "
        f"(shared with other jobs), phantom version {PHANTOM_VERSION}. Medians of "
        f"{args.repeats} cases.", "",
        "Wall seconds (CPU seconds of the process in brackets); load average (1 min) of the "
        "machine before/after the timed cases in the last column.", "",
        "| preset | grid (z,y,x) | generate (s) | write (s) | total (s) | target | peak RSS "
        f"(MB) | arrays, tracemalloc peak (MB) | {n} cases serial (s) "
        f"| {n} cases, 2 workers (s) | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for preset, target in (("full", "<= 2 s"), ("small", "<= 0.3 s")):
        r = out[preset]
        lines.append(f"| {preset} | {r['shape_zyx_last']} | {r['generate_s']} "
                     f"({r['cpu_generate_s']}) | {r['write_s']} ({r['cpu_write_s']}) "
                     f"| {r['total_s']} ({r['cpu_total_s']}) | {target} | "
                     f"{r['memory']['peak_rss_mb']} | "
                     f"{r['memory']['case_mb']} | {r[f'cohort_{n}_serial_s']} | "
                     f"{r[f'cohort_{n}_2workers_s']} | "
                     f"{' / '.join(str(v) for v in r['loadavg_1min'])} |")
    lines += ["", "Cases lacking an organ or a station: " + ", ".join(
        f"{p}: {len(out[p]['cases_missing_an_organ_or_station'])} of {n}"
        for p in ("full", "small")) + "."]
    lines += ["", "Stage medians (s): " + "; ".join(
        f"{p}: " + ", ".join(f"{k} {v}" for k, v in out[p]["stages_s"].items())
        for p in ("full", "small")), ""]
    (res / "phantom.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
