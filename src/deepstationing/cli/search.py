"""``deepstationing search``: the key-organ auto-search, its ranking, and the top-n sweep."""

from __future__ import annotations

import argparse
import sys

from deepstationing.backbone.env import DEFAULT_WORKDIR

DESCRIPTION = """\
Key-organ auto-search (DeepStationing, section 2.2): train the station network on CT + all
22 organ channels, each organ channel multiplied by a learnable weight (softmax over one
logit per organ; the CT is not weighted). The weights stay at 1/22 for the first 20 % of
the epochs, then are updated alternately with the network: each iteration one step of the
network on half of the fold's training cases, then one step of the weights on the other
half (first-order differentiable architecture search; the halves split by patient). The
organs with the largest final weights are the key organs. An organ channel with no voxel in
the training cases of a half is left out of the search (weight 0, ranked last): its weight
could move only through the softmax's normalisation, which is no evidence of use.

Writes into --out (default: WORKDIR/search/<cohort>-fold<K>):
  ranking.json   the 22 organs, best first, with their final weights (summing to 1) and
                 which were left out
  weights.png    every organ's weight over the epochs
and prints the top-n as a ready --channels spec for 'deepstationing train stations'.

--sweep 3,6,9,... retrains the station network with CT + the top-n organs for each n and
scores each on the fold's held-out cases (the paper's Fig. 3b): sweep.json/.md/.png.

--method ablation is a second, independent ranking: a station network on CT + all 22
organ channels (trained, or reused from the model folder) predicts the fold's held-out
cases with each organ removed in turn; an organ's score is the mean station DSC lost
without it (ablation.json). It uses the held-out cases: a check of the search's ranking,
not a way to choose channels for a network reported on the same fold.
"""

EPILOG = """\
examples:
  deepstationing search --cohort phantom/ --fold 0                 # over predicted organs
  deepstationing search --cohort phantom/ --fold 0 --source gt     # over ground-truth organs
  deepstationing search --cohort phantom/ --fold 0 --sweep 3-21/3  # + Fig. 3b
  deepstationing train stations --cohort phantom/ --fold 0 --channels pred:esophagus,...

Searching over predicted organs (the paper) trains the organ cascade on every fold first
(out-of-fold channels), as 'train stations --channels pred:...' does.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "search", help="key-organ auto-search: rank the 22 organs for station parsing",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", required=True, metavar="DIR", help="cohort folder")
    parser.add_argument("--fold", required=True, type=int, metavar="K", help="held-out fold")
    parser.add_argument("--source", choices=("pred", "gt"), default="pred",
                        help="organ channels: out-of-fold predictions (default) or ground "
                             "truth")
    parser.add_argument("--config", choices=("cpu", "full"), default="cpu")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: 50 for cpu, 1000 for full)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="iterations per epoch (default: 25 for cpu, 250 for full)")
    parser.add_argument("--method", choices=("weights", "ablation"), default="weights",
                        help="weights: the paper's search (default); ablation: a second "
                             "opinion, the held-out DSC lost when each organ channel of a "
                             "CT + 22 network is removed (ablation.json; compared with the "
                             "weights' ranking.json when that is in --out)")
    parser.add_argument("--top", type=int, default=6, help="organs in the printed spec "
                        "(default: 6, as the paper)")
    parser.add_argument("--sweep", default=None, metavar="LIST",
                        help="also train CT + top-n for each n, e.g. 3,6,9 or 3-21/3")
    parser.add_argument("--out", default=None, metavar="DIR", help="output folder")
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR),
                        help=f"workspace folder (default: ./{DEFAULT_WORKDIR})")
    parser.add_argument("--model", default=None, metavar="DIR",
                        help="model folder (default: WORKDIR/models/<cohort>-<config>)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="data-augmentation workers (default: nnU-Net's choice on cuda, "
                             "0 on cpu)")
    parser.add_argument("--verbose", action="store_true", help="show nnU-Net's own output")
    parser.set_defaults(func=run)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from deepstationing.api import search

    found = search(args.cohort, args.fold, source=args.source, method=args.method,
                   top=args.top, sweep=args.sweep, config=args.config, epochs=args.epochs,
                   iterations=args.iterations, workdir=args.workdir, model=args.model,
                   out=args.out, device=args.device, threads=args.threads,
                   workers=args.workers, verbose=args.verbose, progress=_say)
    if found.method == "ablation":
        print(f"ablation ({args.source} organs, fold {args.fold}; held-out mean DSC with all "
              f"organs {100 * found.baseline:.1f} %), DSC lost without each organ:")
        for rank, organ in enumerate(sorted(found.drops, key=lambda k: -found.drops[k]), 1):
            print(f"  {rank:2d}. {organ:17s} {100 * found.drops[organ]:+.2f} points")
        if found.agreement_with_weights is not None:
            print(f"Spearman agreement with the weights' ranking: "
                  f"{found.agreement_with_weights:.2f}")
    else:
        print(f"ranking ({args.source} organs, fold {args.fold}):")
        for rank, (organ, weight, searched) in enumerate(found.ranked, 1):
            left_out = "" if searched else "  left out: no voxel in the training cases of a half"
            print(f"  {rank:2d}. {organ:17s} {weight:.4f}{left_out}")
        print(f"top-{args.top}: {found.top_spec}")
        if args.source == "gt":
            print(f"(for predicted organs: {found.top_spec.replace('gt:', 'pred:', 1)})")
        for r in found.sweep:
            print(f"  top-{r['n']:2d}: held-out mean DSC {100 * r['mean_dsc']:.1f} %")
    print(f"wrote {', '.join(str(f) for f in found.files)}", file=sys.stderr)
    return 0
