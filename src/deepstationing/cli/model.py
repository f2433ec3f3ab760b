"""``deepstationing model export|import|reference``: move a trained model between machines as
one file; record its training cohort's statistics for QC."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deepstationing.cli._actions import command_with_actions

DESCRIPTION = """\
Pack a trained model folder into one zip file, and unpack such a file safely.

  export MODEL_DIR -o model.zip   the whole folder (every stage and fold: checkpoints,
                                  nnU-Net plans, deepstationing_model.json with the channel
                                  specs) plus a manifest: label schema version, stages,
                                  SHA-256 and size of every file. Only .json, .pth, .png,
                                  .txt and .md files may be in the folder; every checkpoint
                                  is test-loaded first.
  import model.zip [--to DIR]     check, then unpack into a new folder (default
                                  runs/models/<archive name>)

A package from elsewhere is untrusted. Import refuses, with one line naming the archive and
the problem and without writing anything: paths that are absolute or climb out ('..'),
symbolic or hard links and devices, file kinds outside the list above, files missing from
or not listed in the manifest, checksum mismatches, oversized or zip-bomb entries, a label
schema other than this installation's, and checkpoints that ask for anything but tensors
and plain values (loaded with torch.load(weights_only=True): no code from the archive runs).
Files go to a temporary folder beside the target, which is renamed into place only when
everything checks out.

  reference MODEL_DIR --cohort DIR  record the training cases' label volumes and positions
                                  in MODEL_DIR/qc_reference.json, for the plausibility
                                  checks of 'predict' (training does this itself; this is
                                  for models trained before it did)
"""

EPILOG = """\
examples:
  deepstationing model export runs/models/phantom-cpu -o phantom-cpu.zip
  deepstationing model import phantom-cpu.zip --to models/phantom-cpu
  deepstationing predict ct.nii.gz -o out/ --model models/phantom-cpu
  deepstationing model reference runs/models/phantom-cpu --cohort phantom_small/
"""


def register(subparsers) -> None:
    add = command_with_actions(
        subparsers, "model", help="export / import a trained model as a checked zip package",
        description=DESCRIPTION, epilog=EPILOG)
    ex = add("export", "pack a model folder into a zip package")
    ex.add_argument("model_dir", metavar="MODEL_DIR", help="trained model folder")
    ex.add_argument("-o", "--out", required=True, metavar="ZIP", help="package file to write")
    ex.set_defaults(func=run_export)
    im = add("import", "check and unpack a model package")
    im.add_argument("archive", metavar="ZIP", help="model package")
    im.add_argument("--to", default=None, metavar="DIR",
                    help="new model folder (default: runs/models/<archive name>)")
    im.set_defaults(func=run_import)
    ref = add("reference", "record the training cohort's label statistics for QC")
    ref.add_argument("model_dir", metavar="MODEL_DIR", help="trained model folder")
    ref.add_argument("--cohort", required=True, metavar="DIR",
                     help="the cohort the model was trained on")
    ref.add_argument("--folds", default=None, metavar="LIST",
                     help="folds whose training cases to record (default: every fold a "
                          "stage of the model holds)")
    ref.set_defaults(func=run_reference)


def _say(msg: str) -> None:
    print(f"[model] {msg}", file=sys.stderr, flush=True)


def run_export(args: argparse.Namespace) -> int:
    from deepstationing.training.package import export_model_package

    manifest = export_model_package(args.model_dir, args.out, progress=_say)
    size = sum(f["size"] for f in manifest["files"])
    print(f"{args.out}: {len(manifest['files'])} files, {size / 1e6:.1f} MB, stages "
          f"{', '.join(manifest['stages']) or 'none'}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from deepstationing.backbone.env import DEFAULT_WORKDIR
    from deepstationing.training.package import import_model_package

    target = Path(args.to) if args.to else DEFAULT_WORKDIR / "models" / Path(args.archive).stem
    import_model_package(args.archive, target, progress=_say)
    print(f"model imported into {target}; use it with --model {target}")
    return 0


def run_reference(args: argparse.Namespace) -> int:
    from deepstationing.data.cohort import Cohort
    from deepstationing.errors import InputError
    from deepstationing.qc.reference import read_reference, record_cases
    from deepstationing.training.model import ModelFolder

    model = ModelFolder.open(args.model_dir)
    cohort = Cohort(args.cohort)
    if args.folds:
        try:
            folds = sorted({int(f) for f in args.folds.split(",")})
        except ValueError:
            raise InputError(None, f"--folds {args.folds!r}: expected e.g. 0,1") from None
    else:
        folds = sorted({f for s in model.stage_folders for f in model.folds(s)})
    if not folds:
        raise InputError(model.root, "the model holds no trained fold; give --folds")
    for fold in folds:
        path = record_cases(model.root, [cohort.case(c) for c in cohort.train_ids(fold)],
                            fold, cohort_name=cohort.root.name)
    ref = read_reference(model.root)
    print(f"{path}: {ref.n_cases if ref else 0} training cases of folds "
          f"{', '.join(map(str, folds))}")
    return 0
