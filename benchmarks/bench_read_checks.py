"""Benchmark: cost of the header checks of ``read_image`` on a 512 x 512 x 80 CT.

The checks (:mod:`deepstationing.data.headers`) catch what ITK reads silently: a truncated
file, zero/negative/non-finite spacing, a singular direction matrix. For a complete gzip
file they read the header and the 4-byte gzip trailer; only a file whose trailer disagrees
with its header is decompressed (the "slow path", timed too, for a truncated file).

The CT is the phantom's full preset case 0 (512 x 512, 0.7 mm) cut or padded to 80 slices,
written as ``.nii.gz`` (zlib level 1, as ``write_image`` does), ``.nii``, ``.nrrd`` (gzip) and
``.mha`` (zlib). Writes ``benchmarks/results/read_checks.json``.

    OMP_NUM_THREADS=1 python benchmarks/bench_read_checks.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from deepstationing.data.headers import _gzip_problem, header_problem
from deepstationing.data.image import Image, read_image, write_image

ROOT = Path(__file__).resolve().parents[1]


def ct_512x512x80() -> Image:
    from deepstationing.phantom import generate_case

    ct = generate_case(0, seed=0, preset="full").ct
    arr = ct.array[:80]
    if arr.shape[0] < 80:
        arr = np.concatenate([arr, arr[: 80 - arr.shape[0]]])
    return Image(arr, ct.spacing, ct.origin, ct.direction)


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    ct = ct_512x512x80()
    results = {"shape_zyx": list(ct.shape), "repeats": args.repeats,
               "machine": platform.processor() or platform.machine(), "formats": {}}
    with tempfile.TemporaryDirectory() as d:
        for name in ("ct.nii.gz", "ct.nii", "ct.nrrd", "ct.mha"):
            path = write_image(ct, Path(d) / name)
            row = {
                "file_mb": round(path.stat().st_size / 2**20, 1),
                "header_checks_s": median_time(lambda p=path: header_problem(p), args.repeats),
                "sitk_read_s": median_time(lambda p=path: sitk.ReadImage(str(p)),
                                           args.repeats),
                "read_image_s": median_time(lambda p=path: read_image(p), args.repeats),
            }
            if name == "ct.nii.gz":  # slow path: what a truncated file costs to diagnose
                row["full_decompression_check_s"] = median_time(
                    lambda p=path: _gzip_problem(p, 0, 1 << 40), args.repeats)
            results["formats"][name] = row
            print(name, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    out = ROOT / "benchmarks" / "results" / "read_checks.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
