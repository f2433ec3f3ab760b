"""``deepstationing predict``: CT -> 22 organs -> 12 stations with a trained model."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DESCRIPTION = """\
Run the whole trained cascade on one CT: anchor organs -> non-anchor organs -> stations.
Writes OUT/organs.nii.gz (22 organs) and OUT/stations.nii.gz (12 stations) on exactly the
input's voxel grid and geometry (same shape, spacing, origin, direction), whatever the
input's orientation.

The input is a NIfTI/NRRD/MHA file or a folder holding one DICOM CT series. For a DICOM
input, --format rtstruct,seg also writes OUT/rtstruct.dcm (an RT Structure Set with a ROI
per station and organ, referencing the series) and OUT/seg_stations.dcm /
OUT/seg_organs.dcm (DICOM SEG); see 'deepstationing export --help'.
"""

EPILOG = """\
examples:
  deepstationing predict ct.nii.gz -o out/ --model runs/models/phantom-cpu
  deepstationing predict dicom_folder/ -o out/ --model model/ --device cuda
  deepstationing predict ct.nrrd -o out/ --model model/ --organs organs.nii.gz
  deepstationing predict dicom_folder/ -o out/ --model model/ --format nifti,rtstruct,seg

Train a model first with 'deepstationing train organs ...' and 'deepstationing train
stations ...'; the model folder (WORKDIR/models/NAME) is self-contained and can be copied.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="segment organs and stations in a CT with a trained model",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="CT_OR_DICOM_FOLDER")
    parser.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder")
    parser.add_argument("--model", default=None, metavar="DIR", help="trained model folder")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--folds", default=None, metavar="LIST",
                        help="folds to ensemble, e.g. 0,1 (default: all in the model)")
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deepstationing.data.dicom.export import DICOM_FORMATS, export_dicom, parse_formats
    from deepstationing.data.image import read_ct, read_image, write_image
    from deepstationing.errors import InputError
    from deepstationing.training.model import HOW_TO_TRAIN, ModelFolder

    formats = parse_formats(args.format)
    dicom_formats = tuple(f for f in formats if f in DICOM_FORMATS)
    if dicom_formats and not Path(args.input).is_dir():
        raise InputError(args.input, f"--format {','.join(dicom_formats)} needs a DICOM CT "
                                     "series folder as input (its UIDs are referenced)")
    if args.model is None:
        raise InputError(None, f"no --model given; {HOW_TO_TRAIN}")
    model = ModelFolder.open(args.model)
    folds = None
    if args.folds:
        try:
            folds = [int(f) for f in args.folds.split(",")]
        except ValueError:
            raise InputError(None, f"--folds {args.folds!r}: expected e.g. 0,1") from None
    t0 = time.perf_counter()
    step = [0]

    def say(msg: str) -> None:
        step[0] += 1
        print(f"[{step[0]}/4] {msg} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr,
              flush=True)

    say(f"reading {args.input}")
    ct = read_ct(args.input)  # warns (stderr) when it does not look like a CT in HU
    organs = read_image(args.organs, label=True) if args.organs else None
    from deepstationing.stations.network import StationParser

    mirroring = None if args.tta == "auto" else args.tta == "on"
    parser = StationParser(model, folds, device=args.device, mirroring=mirroring,
                           threads=args.threads, stations=args.stations)
    if organs is not None or parser.organs is None:
        step[0] += 1  # no organ stage to report
    organs_out, stations = parser.predict(ct, organs, progress=say)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    say(f"writing {out}")
    if "nifti" in formats:
        if organs_out is not None:
            write_image(organs_out, out / "organs.nii.gz")
        write_image(stations, out / "stations.nii.gz")
    if dicom_formats:
        export_dicom(args.input, out, stations=stations, organs=organs_out,
                     formats=dicom_formats)
    written = [p.name for p in sorted(out.iterdir()) if p.name.endswith((".nii.gz", ".dcm"))]
    print(f"done in {time.perf_counter() - t0:.1f} s: {', '.join(written)} in {out}",
          file=sys.stderr)
    return 0
