"""``deepstationing train organs|stations``: train the nnU-Net stages on a cohort."""

from __future__ import annotations

import argparse
import sys

from deepstationing.backbone.env import DEFAULT_WORKDIR

DESCRIPTION = """\
Train the organ cascade or the station network on a cohort (nnU-Net v2 backbone).

  organs    anchor organs (CT -> 11 anchors), then non-anchor organs (CT + one channel per
            anchor -> 11 non-anchors); or the single 22-organ network (--stages single)
  stations  CT + organ channels -> 12 stations (--channels)

Folds come from the cohort's manifest (patient level): fold K trains on all other folds and
never sees fold K (nnU-Net's fingerprint, normalisation and grid come from the training cases
only). Each fold records what it trained on and held out (hashes of the files), so a model
folder is never reused for other data by mistake. Everything (nnU-Net's raw/preprocessed/
results folders, the trained model) goes under --workdir; nnU-Net environment variables are
set for you.

Training on *predicted* organ channels (--anchor-channels pred, --channels pred:...) uses
out-of-fold predictions: each case's channels come from the earlier stage's model of the
fold that held that case out. The earlier stage is therefore needed on every fold; missing
folds are trained first, automatically, with the same settings. --nested-organs goes one
step further: the organ models behind fold K's training channels never saw fold K either
(a cascade trained on fold K's training cases alone, in MODEL/nested/foldK).

Re-running a command is safe and cheap: a fold already trained with at least the requested
--epochs is kept; one trained with fewer epochs is extended from its checkpoint; an
interrupted run continues from its last checkpoint; --retrain starts the folds again. Each
channel spec is its own station stage in the model folder (stations-gt-all, stations-ct,
...), so one model holds several station networks over one organ cascade. A stage defined
differently from the one already in the model (another config or network) is refused before
anything is trained.

Augmentation never mirrors and rotates at most 15 degrees: nnU-Net's default mirroring (and
its 180-degree in-plane rotation of thick-slice patches) would teach the networks that the
patient's left and right are interchangeable (lung_r/lung_l, 4R/4L, ...).
"""

EPILOG = """\
examples:
  deepstationing train organs --cohort phantom/ --fold 0 --config cpu
  deepstationing train organs --cohort phantom/ --fold 0 --stages single
  deepstationing train stations --cohort phantom/ --fold 0 --channels pred:all
  deepstationing train stations --cohort phantom/ --fold 0 --channels none \\
      --model runs/models/ct-only
  deepstationing train stations --cohort data/ --fold all --config full --device cuda

channel specs (--channels):
  none                 CT only
  gt:all | pred:all    CT + 22 organs (ground truth / out-of-fold cascade predictions)
  nested:all           pred:all with nested out-of-fold channels (= --nested-organs)
  pred:top6            CT + the paper's auto-searched 6 organs
  pred:esophagus,heart CT + a list of organ keys (see 'deepstationing rules --help')
  gt:all+sdm           any spec + '+sdm': organs as signed distance maps instead of binary
                       masks (an option beyond the paper; learns much faster on a CPU budget)

configs (--config):
  cpu   small PlainConvUNet (8-16-32-64 features, 32x64x64 patch, batch 2); default budget
        50 epochs x 25 iterations; minutes per stage on 2 cores for the phantom small preset
  full  nnU-Net's own 3d_fullres planning and 1000 x 250 training, for a GPU, as in the paper

augmentation workers (--workers): on cuda, what nnU-Net itself uses on this machine (12 on
most, bounded by the cores); on cpu, 0 (augmentation in the training process).
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train the organ cascade / station network (nnU-Net)",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("organs", "stations"), help="which network(s) to train")
    parser.add_argument("--cohort", required=True, metavar="DIR",
                        help="cohort folder (manifest.json + case folders)")
    parser.add_argument("--fold", required=True, metavar="K",
                        help="held-out fold (0..n_folds-1), or 'all' for every fold")
    parser.add_argument("--config", choices=("cpu", "full"), default="cpu",
                        help="network/training configuration (default: cpu)")
    parser.add_argument("--channels", default="pred:all", metavar="SPEC",
                        help="stations only: organ input channels, optionally with '+sdm' "
                             "(default: pred:all)")
    parser.add_argument("--stages", default="cascade", metavar="LIST",
                        help="organs only: 'cascade' (anchor,nonanchor; default), 'single', "
                             "'all', or a comma list of anchor,nonanchor,single")
    parser.add_argument("--nested-organs", action="store_true",
                        help="stations only: predicted organ channels made by organ models "
                             "that never saw the held-out fold (nested cross-validation; "
                             "trains a cascade per fold)")
    parser.add_argument("--spacing", nargs=3, type=float, default=None,
                        metavar=("SX", "SY", "SZ"),
                        help="voxel spacing (mm) the networks trained by this command run at "
                             "(default: nnU-Net's rule on each fold's training cases)")
    parser.add_argument("--anchor-channels", choices=("pred", "gt"), default="pred",
                        help="organs only: anchor channels of the non-anchor stage "
                             "(default: out-of-fold predictions)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: 50 for cpu, 1000 for full)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="iterations per epoch (default: 25 for cpu, 250 for full)")
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR),
                        help=f"workspace folder (default: ./{DEFAULT_WORKDIR})")
    parser.add_argument("--model", default=None, metavar="DIR",
                        help="model folder to train into (default: WORKDIR/models/"
                             "<cohort>-<config>)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default: 1)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="data-augmentation worker processes (default: nnU-Net's choice "
                             "on cuda, 0 on cpu)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the network initialisation and augmentation (default: "
                             "0; a CPU run with 0 workers then repeats exactly); -1: unseeded")
    parser.add_argument("--retrain", action="store_true",
                        help="train the requested folds again from scratch")
    parser.add_argument("--verbose", action="store_true", help="show nnU-Net's own output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deepstationing.api import train

    model_dir = train(args.what, args.cohort, args.fold, config=args.config,
                      channels=args.channels, stages=args.stages,
                      anchor_channels=args.anchor_channels, nested_organs=args.nested_organs,
                      spacing=args.spacing, epochs=args.epochs, iterations=args.iterations,
                      workdir=args.workdir, model=args.model, device=args.device,
                      threads=args.threads, workers=args.workers,
                      seed=None if args.seed < 0 else args.seed, retrain=args.retrain,
                      verbose=args.verbose,
                      progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"model: {model_dir}", file=sys.stderr)
    print(f"predict with: deepstationing predict CT -o OUT --model {model_dir}", file=sys.stderr)
    return 0
