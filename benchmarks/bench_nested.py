"""Nested against out-of-fold organ channels for the station network, at the bench scale.

After ``python benchmarks/bench_paper.py --out OUT`` (the bench-scale protocol), this copies
OUT's model folder, trains the station network of ``--fold`` on CT + 22 *nested* predicted
organ channels (``train stations --channels pred:all --nested-organs``: an organ cascade
trained inside the fold's training cases only makes the training cases' channels) with the
bench scale's network, grid and budget, and scores it on the fold's held-out cases with the
fold's own cascade, as the protocol scores ``stations/pred22``. Prints both numbers and writes
``--workdir/result.json``::

    python benchmarks/bench_nested.py --bench /tmp/ds-bench --fold 0 --workdir /tmp/ds-nested
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", required=True, help="the bench-scale experiment folder")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--workdir", default="/tmp/deepstationing-bench-nested")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    from deepstationing.api import train
    from deepstationing.data.cohort import Cohort
    from deepstationing.evaluation.heldout import mean_dsc
    from deepstationing.experiments.scales import SCALES
    from deepstationing.stations.evaluation import evaluate_station_stage
    from deepstationing.training import ModelFolder

    bench, work = Path(args.bench), Path(args.workdir)
    scale = SCALES["bench"]
    model_dir = work / "model"
    if not model_dir.exists():
        shutil.copytree(bench / "models" / "paper", model_dir)
    cohort = Cohort(bench / "phantom")
    t0 = time.time()
    cpu = scale.cpu
    train("stations", cohort, args.fold, channels="pred:all", nested_organs=True,
          spacing=scale.spacing, epochs=scale.station_budget[0],
          iterations=scale.station_budget[1],
          network=(cpu.patch_size, cpu.features, cpu.batch_size, cpu.convs_per_stage,
                   cpu.learning_rate),
          model=model_dir, workdir=work / "runs", threads=args.threads,
          progress=lambda m: print(m, file=sys.stderr, flush=True))
    test = [cohort.case(c) for c in cohort.test_ids(args.fold)]
    rows = evaluate_station_stage(ModelFolder.open(model_dir), test, args.fold,
                                  stations="nested:all", organs="model", threads=args.threads)
    oof = json.loads((bench / "jobs" / "stations" / "pred22" / f"fold{args.fold}" /
                      "status.json").read_text())["result"]["mean_dsc"]
    result = {"fold": args.fold, "nested_mean_dsc": mean_dsc(rows), "out_of_fold_mean_dsc": oof,
              "minutes": (time.time() - t0) / 60}
    (work / "result.json").write_text(json.dumps(result, indent=1))
    print(f"fold {args.fold}: nested {100 * result['nested_mean_dsc']:.1f} %, out-of-fold "
          f"{100 * oof:.1f} % (held-out mean station DSC)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
