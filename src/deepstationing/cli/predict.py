"""``deepstationing predict``: CT -> 22 organs -> 12 stations with a trained model."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DESCRIPTION = """\
Run the whole trained cascade on CTs: anchor organs -> non-anchor organs -> stations.
Writes OUT/organs.nii.gz (22 organs) and OUT/stations.nii.gz (12 stations) on exactly the
input's voxel grid and geometry (same shape, spacing, origin, direction), whatever the
input's orientation.

Several CTs (several inputs, or a folder of CT files / DICOM series folders / case folders)
are predicted with one model load, the next case read while the current one runs, each
into OUT/<case>/; a case that fails is reported and skipped, the others finish (exit code 1
if any failed). --verbose prints the seconds of every step; --ray sends the cases to a Ray
cluster, one job per case.

The input is a NIfTI/NRRD/MHA file or a folder holding one DICOM CT series. For a DICOM
input, --format rtstruct,seg also writes OUT/rtstruct.dcm (an RT Structure Set with a ROI
per station and organ, referencing the series) and OUT/seg_stations.dcm /
OUT/seg_organs.dcm (DICOM SEG); see 'deepstationing export --help'.

Every prediction is checked for plausibility (QC: labels outside the body, stations outside
the mediastinum or on the wrong side of the trachea, islands, missing stations, volumes and
positions outside the training cohort's, disagreement with the margin rules) and gets a
verdict, ok / check / implausible, printed with the findings that fired and written to
qc.json beside the outputs; --no-qc switches it off. The exit code does not depend on the
verdicts unless --fail-on is given: then it is 3 when a case's verdict is that bad or worse
(and no case failed). 'deepstationing qc OUT' runs the checks again; docs/qc.md explains
them.
"""

EPILOG = """\
examples:
  deepstationing predict ct.nii.gz -o out/ --model runs/models/phantom-cpu
  deepstationing predict cts/ -o out/ --model model/ --verbose     # every CT in cts/
  deepstationing predict dicom_folder/ -o out/ --model model/ --device cuda
  deepstationing predict ct.nrrd -o out/ --model model/ --organs organs.nii.gz
  deepstationing predict dicom_folder/ -o out/ --model model/ --format nifti,rtstruct,seg
  deepstationing predict cts/ -o out/ --model model/ --fail-on implausible   # for scripts

Train a model first with 'deepstationing train organs ...' and 'deepstationing train
stations ...'; the model folder (WORKDIR/models/NAME) is self-contained and can be copied.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="segment organs and stations in a CT with a trained model",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", nargs="+", metavar="CT_OR_FOLDER",
                        help="CT files (NIfTI/NRRD/MHA), DICOM series folders, or folders "
                             "holding several of those (one case each)")
    parser.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder")
    parser.add_argument("--model", default=None, metavar="DIR", help="trained model folder")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--folds", default=None, metavar="LIST",
                        help="folds to ensemble, e.g. 0,1 (default: all in the model). To "
                             "score a case of the training cohort, use only the fold that "
                             "held it out: every other fold's models trained on it, so the "
                             "default ensemble would leak training cases into the score "
                             "('experiment paper' does this for you)")
    parser.add_argument("--organs", default=None, metavar="FILE",
                        help="use this 22-organ map instead of predicting organs")
    parser.add_argument("--tta", choices=("auto", "on", "off"), default="auto",
                        help="test-time mirroring, only ever along the axes the model's "
                             "training mirrored: none for models trained by this toolkit, "
                             "whose left-right labels (4R/4L, lung_r/lung_l) a flip would mix "
                             "(default auto: off for cpu models, on for full)")
    parser.add_argument("--stations", default=None, metavar="SPEC",
                        help="which station stage of the model (its channel spec, e.g. "
                             "gt:all, or folder name; default: the only one)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--format", default="nifti", metavar="LIST",
                        help="outputs, comma-separated: nifti, rtstruct, seg (the DICOM ones "
                             "need a DICOM input; default: nifti)")
    parser.add_argument("--verbose", action="store_true",
                        help="print the seconds of every step of every case")
    parser.add_argument("--no-qc", action="store_true",
                        help="do not check the predictions for plausibility (no qc.json)")
    parser.add_argument("--fail-on", choices=("implausible", "check"), default=None,
                        help="exit with code 3 when a case's QC verdict is this or worse "
                             "(default: the verdicts do not change the exit code)")
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="predict the cases on a Ray cluster ('auto', 'ray://HOST:10001' "
                             "or 'local'), one job per case")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deepstationing.api import predict
    from deepstationing.errors import DeepStationingError, InputError
    from deepstationing.qc.verdict import QcReport, at_least
    from deepstationing.timing import Timings

    try:
        folds = [int(f) for f in args.folds.split(",")] if args.folds else None
    except ValueError:
        raise InputError(None, f"--folds {args.folds!r}: expected e.g. 0,1") from None
    t0 = time.perf_counter()

    def on_case(i, n, r):
        if r.ok:
            _say(f"[{i}/{n}] {r.name}: {r.seconds:.1f} s, {r.stations_found} stations -> "
                 f"{r.folder} ({', '.join(r.outputs)})")
        else:
            _say(f"[{i}/{n}] {r.name}: FAILED: {r.error}")
        if r.qc is not None:
            line = (f"failed: {r.qc.get('error', '')}" if r.qc.get("verdict") == "error"
                    else QcReport.from_json(r.qc).line())
            _say(f"[{i}/{n}] {r.name}: QC {line}")
        if args.verbose:
            _say(Timings(r.timings).table())

    results = predict(args.input, args.out, args.model, formats=args.format,
                      organs=args.organs, device=args.device, folds=folds,
                      qc=not args.no_qc, mirroring=None if args.tta == "auto" else
                      args.tta == "on", threads=args.threads, stations=args.stations,
                      ray=args.ray, on_case=on_case, progress=_say)
    failed = [r for r in results if not r.ok]
    verdicts = [r.qc["verdict"] for r in results if r.qc is not None]
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in ("ok", "check", "implausible",
                                                           "error") if v in verdicts)
    _say(f"done in {time.perf_counter() - t0:.1f} s: {len(results) - len(failed)} of "
         f"{len(results)} case(s) predicted"
         + (f", {len(failed)} failed: " + ", ".join(r.name for r in failed) if failed else "")
         + (f"; QC: {counts}" if verdicts else ""))
    if failed and Path(failed[0].folder) == Path(args.out):  # one CT, straight into OUT
        raise DeepStationingError(failed[0].error)
    if failed:
        return 1
    if args.fail_on and any(v != "error" and at_least(v, args.fail_on) for v in verdicts):
        return 3
    return 0


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
