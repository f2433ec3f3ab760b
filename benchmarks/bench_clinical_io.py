"""Validation of the clinical DICOM I/O with external tools, and its timing.

For phantom cases (written as DICOM CT series by our converter) and the real IBSI CT series:
export the truth as an RT Structure Set and DICOM SEGs, then count ``dciodvfy`` errors and
warnings (Debian dicom3tools), rasterise the RTSTRUCT with ``plastimatch convert`` (Debian
plastimatch; with ``--xor-contours`` = holes as we write them, and with its default OR) and
score it against the exported label maps (Dice per station and organ), read the SEG back
with highdicom. Then rasterise the real structure sets of ``../shared/data/real`` with our
reader and with plastimatch on the same CT grids. Writes
``benchmarks/results/clinical_io.{json,md}``.

    OMP_NUM_THREADS=1 python benchmarks/bench_clinical_io.py [--presets small full]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from deepstationing.data.dicom.export import RTSTRUCT_FILE, SEG_FILES, export_dicom  # noqa: E402
from deepstationing.data.dicom.rtstruct import rasterize_rtstruct, read_rtstruct  # noqa: E402
from deepstationing.data.dicom.seg import read_seg  # noqa: E402
from deepstationing.data.dicom.series import (  # noqa: E402
    read_series_reference,
    write_ct_series,
)
from deepstationing.data.image import read_image  # noqa: E402
from deepstationing.phantom import generate_case  # noqa: E402
from deepstationing.schema import ORGANS, STATIONS  # noqa: E402
from dicom_tools import dciodvfy_report, dice, plastimatch_masks  # noqa: E402

REAL = Path(os.environ.get("DEEPSTATIONING_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))


def _dciodvfy(files) -> dict:
    errors = warnings = 0
    for f in files:
        e, w = dciodvfy_report(f)
        errors, warnings = errors + len(e), warnings + len(w)
    return {"files": len(files), "errors": errors, "warnings": warnings}


def phantom(preset: str, index: int, tmp: Path) -> dict:
    case = generate_case(index, preset=preset)
    t0 = time.perf_counter()
    write_ct_series(case.ct, tmp / "ct", uid_seed=f"bench-{preset}-{index}")
    t1 = time.perf_counter()
    files = export_dicom(tmp / "ct", tmp / "out", stations=case.stations, organs=case.organs)
    t2 = time.perf_counter()
    ref = read_series_reference(tmp / "ct")
    back = rasterize_rtstruct(read_rtstruct(tmp / "out" / RTSTRUCT_FILE), ref)
    t3 = time.perf_counter()
    res: dict = {"case": f"phantom {preset} case {index}", "grid_zyx": list(case.ct.shape),
                 "seconds": {"write_ct_series": round(t1 - t0, 2),
                             "export_rtstruct_and_segs": round(t2 - t1, 2),
                             "read_and_rasterise_rtstruct": round(t3 - t2, 2)},
                 "sizes_mb": {f.name: round(f.stat().st_size / 1e6, 2) for f in files}}
    res["dciodvfy"] = {"ct_series": _dciodvfy(sorted((tmp / "ct").iterdir())),
                       "rtstruct": _dciodvfy([tmp / "out" / RTSTRUCT_FILE]),
                       "seg_stations": _dciodvfy([tmp / "out" / SEG_FILES["stations"]]),
                       "seg_organs": _dciodvfy([tmp / "out" / SEG_FILES["organs"]])}
    for mode, xor in (("xor", True), ("or", False)):
        masks = plastimatch_masks(tmp / "out" / RTSTRUCT_FILE, tmp / f"pm_{mode}",
                                  referenced_ct=tmp / "ct", xor=xor)
        res[f"plastimatch_dice_{mode}"] = {
            **{lab.key: round(dice(masks[lab.roi_name][0], case.stations.array == lab.id), 5)
               for lab in STATIONS},
            **{lab.key: round(dice(masks[lab.roi_name][0], case.organs.array == lab.id), 5)
               for lab in ORGANS}}
    res["own_reader_exact"] = all(
        np.array_equal(back[lab.roi_name], lm.array == lab.id)
        for labels, lm in ((STATIONS, case.stations), (ORGANS, case.organs)) for lab in labels)
    res["seg_exact"] = all(np.array_equal(read_seg(tmp / "out" / SEG_FILES[k], ref)[0].array,
                                          lm.array)
                           for k, lm in (("stations", case.stations), ("organs", case.organs)))
    return res


def ibsi(tmp: Path) -> dict:
    ref = read_series_reference(REAL / "ibsi_ct_phantom" / "dicom" / "image")
    gtv = read_image(REAL / "ibsi_ct_phantom" / "nifti" / "mask" / "mask.nii.gz", label=True)
    st = np.where(gtv.array > 0, STATIONS.by_key("4R").id, 0).astype(np.uint8)
    org = np.where((ref.image.array < -400) & (gtv.array == 0), ORGANS.by_key("lung_r").id,
                   0).astype(np.uint8)
    files = export_dicom(ref, tmp / "out", stations=ref.image.with_array(st),
                         organs=ref.image.with_array(org))
    masks = plastimatch_masks(tmp / "out" / RTSTRUCT_FILE, tmp / "pm", referenced_ct=ref.folder)
    return {"case": "IBSI CT series (real): GTV as station 4R, HU < -400 as lung_r",
            "dciodvfy": {f.name: _dciodvfy([f]) for f in files},
            "dciodvfy_original_ibsi_rtstruct": _dciodvfy(
                list((REAL / "ibsi_ct_phantom" / "dicom" / "mask").iterdir())),
            "plastimatch_dice_xor": {"4R": round(dice(masks["LNS_4R"][0], st > 0), 5),
                                     "lung_r": round(dice(masks["Lung_R"][0], org > 0), 5)}}


def real_rasterisation(tmp: Path) -> dict:
    import pydicom

    from deepstationing.data.image import Image

    out = {}
    h = pydicom.dcmread(REAL / "dicompyler_breast_rtstruct" / "ct.0.dcm", stop_before_pixels=True)
    ps = [float(v) for v in h.PixelSpacing]
    x, y, z = (float(v) for v in h.ImagePositionPatient)
    write_ct_series(Image(np.zeros((98, 512, 512), np.int16), spacing=(ps[1], ps[0], 3.0),
                          origin=(x, y, z - 97 * 3.0)), tmp / "breast_ct",
                    frame_of_reference_uid=str(h.FrameOfReferenceUID))
    for name, rs, ct in (
            ("dicompyler breast (CT regenerated on its grid)",
             REAL / "dicompyler_breast_rtstruct" / "rtss.dcm", tmp / "breast_ct"),
            ("IBSI", next((REAL / "ibsi_ct_phantom" / "dicom" / "mask").iterdir()),
             REAL / "ibsi_ct_phantom" / "dicom" / "image"),
            ("Visible Human neck", REAL / "visible_human_neck_rtstruct" /
             "RS_Body_SpinalCord.dcm", REAL / "visible_human_neck_rtstruct")):
        ref = read_series_reference(ct)
        t = time.perf_counter()
        ours = rasterize_rtstruct(read_rtstruct(rs), ref)
        dt = time.perf_counter() - t
        res = {"seconds": round(dt, 2)}
        for mode, xor in (("xor", True), ("or", False)):
            pm = plastimatch_masks(rs, tmp / f"{name[:5]}_{mode}", referenced_ct=ct, xor=xor)
            res[f"dice_{mode}"] = {n: round(dice(m, pm[n][0]), 5) for n, m in ours.items()
                                   if m.any()}
        out[name] = res
    return out


def markdown(results: dict) -> str:
    lines = ["# Clinical DICOM I/O validation", "",
             f"`python benchmarks/bench_clinical_io.py` on {results['date']}, "
             f"{results['cpus']} CPU(s), load average {results.get('load', '?')} (other "
             f"jobs share the machine: timings scale with it). Tools: {results['tools']}.", "",
             "## dciodvfy (errors / warnings)", "", "| case | object | files | errors | warnings |",
             "|---|---|---|---|---|"]
    for r in results["phantom"]:
        for obj, d in r["dciodvfy"].items():
            lines.append(f"| {r['case']} | {obj} | {d['files']} | {d['errors']} | "
                         f"{d['warnings']} |")
    for obj, d in results["ibsi"]["dciodvfy"].items():
        lines.append(f"| IBSI (real) | {obj} | {d['files']} | {d['errors']} | {d['warnings']} |")
    d = results["ibsi"]["dciodvfy_original_ibsi_rtstruct"]
    lines.append(f"| IBSI (real) | its original RTSTRUCT, for comparison | {d['files']} | "
                 f"{d['errors']} | {d['warnings']} |")
    lines += ["", "The IBSI warnings come with the source CT, whose identity our objects copy: "
              "empty Study Date / Time / ID, a one-component Patient's Name."]
    lines += ["", "## plastimatch reads our RTSTRUCT back (Dice vs the exported label map)", "",
              "With `--xor-contours` and with plastimatch's default (contours OR-ed): keyhole "
              "contours read the same either way.",
              "", "| case | label | Dice (xor) | Dice (or) |", "|---|---|---|---|"]
    for r in results["phantom"]:
        for k in r["plastimatch_dice_xor"]:
            lines.append(f"| {r['case']} | {k} | {r['plastimatch_dice_xor'][k]:.4f} | "
                         f"{r['plastimatch_dice_or'][k]:.4f} |")
    i = results["ibsi"]["plastimatch_dice_xor"]
    lines.append(f"| IBSI (real) | 4R / lung_r | {i['4R']:.4f} / {i['lung_r']:.4f} | |")
    lines += ["", "Own reader and highdicom read-back exact (voxel for voxel): " + ", ".join(
        f"{r['case']}: {r['own_reader_exact']} / {r['seg_exact']}" for r in results["phantom"]),
        "", "Timing (s): " + "; ".join(f"{r['case']} {r['grid_zyx']}: {r['seconds']}, sizes "
                                       f"{r['sizes_mb']} MB" for r in results["phantom"]),
        "", "## Rasterising real structure sets: ours vs plastimatch (Dice)", "",
        "| structure set | ROI | xor | or | our time (s) |", "|---|---|---|---|---|"]
    for name, r in results["real_rasterisation"].items():
        for roi in r["dice_xor"]:
            lines.append(f"| {name} | {roi} | {r['dice_xor'][roi]:.5f} | "
                         f"{r['dice_or'].get(roi, float('nan')):.5f} | {r['seconds']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["small", "full"])
    ap.add_argument("--case", type=int, default=0)
    args = ap.parse_args()
    import subprocess

    pm = subprocess.run(["plastimatch", "--version"], capture_output=True, text=True)
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
               "load": ", ".join(f"{v:.1f}" for v in os.getloadavg()),
               "platform": platform.platform(),
               "tools": f"plastimatch {pm.stdout.strip().split()[-1] if pm.stdout else '?'}, "
                        "dciodvfy (dicom3tools 1.00~20220618)",
               "phantom": [], "ibsi": {}, "real_rasterisation": {}}
    with tempfile.TemporaryDirectory() as d:
        for preset in args.presets:
            results["phantom"].append(phantom(preset, args.case, Path(d) / preset))
        results["ibsi"] = ibsi(Path(d) / "ibsi")
        results["real_rasterisation"] = real_rasterisation(Path(d) / "real")
    out = ROOT / "benchmarks" / "results"
    (out / "clinical_io.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "clinical_io.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
