"""What the organ grid costs: one trained organ cascade scored on the same phantom cases
rasterised on two grids.

A cascade trained on the 5.6 x 5.6 x 10 mm grid (the `demo`/`bench` scales) predicts each
held-out case of fold ``--fold`` twice: from the cohort generated on its own grid, and from
the cohort of the same seed generated on the small preset's 2.8 x 2.8 x 5 mm grid (same
anatomy, finer raster; the model resamples the CT to its grid and its labels back). Both
are scored against their own truth, with the margin rules on the predicted and the true
organs. The difference is what a coarse organ grid costs against finer truth.

Writes ``benchmarks/results/<out-name>.{json,md}``. Run from the repository root, after
``bench_organs.py --cohort-spacing 5.6,5.6,10`` (its model folder and cohort)::

    python benchmarks/bench_organ_grid.py --model WORKDIR/models/organs_coarse_2400 \\
        --cohorts WORKDIR/phantom_small_20_s0_5.6x5.6x10 OTHER/phantom_small_20_s0

A missing cohort folder is generated (``--cases``, ``--seed``, small preset; the folder
name's ``_<x>x<y>x<z>`` suffix gives its grid, none: the preset's own).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="organ model folder (a cascade)")
    p.add_argument("--cohorts", nargs="+", required=True, help="cohort folders to score")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--cases", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-name", default="organ_grid")
    return p.parse_args(argv)


def grid_of(name: str) -> tuple[float, float, float] | None:
    """The grid a cohort folder's name gives (``_<x>x<y>x<z>`` suffix), else ``None``.

    >>> grid_of("phantom_small_20_s0_5.6x5.6x10"), grid_of("phantom_small_20_s0")
    ((5.6, 5.6, 10.0), None)
    """
    m = re.search(r"_([\d.]+)x([\d.]+)x([\d.]+)$", name)
    return tuple(float(v) for v in m.groups()) if m else None


def score(cascade, cases) -> dict:
    """Per-organ mean DSC of ``cascade`` on ``cases`` and the rules on predicted/true organs."""
    import numpy as np

    from deepstationing import schema
    from deepstationing.data.image import read_image
    from deepstationing.evaluation.heldout import mean_dsc
    from deepstationing.evaluation.metrics import label_map_metrics
    from deepstationing.rules.evaluation import evaluate_rules

    per: dict[str, list[float]] = {o.key: [] for o in schema.ORGANS}
    maps = {}
    for case in cases:
        truth = read_image(case.organs, label=True)
        maps[case.id] = pred = cascade.predict(read_image(case.ct))
        m = label_map_metrics(truth.array, pred.array, truth.array_spacing,
                              [o.id for o in schema.ORGANS])
        for o in schema.ORGANS:
            per[o.key].append(float(m[o.id].dsc))
    organs = {k: float(np.nanmean(v)) for k, v in per.items()}
    return {"cases": [c.id for c in cases], "spacing": list(truth.spacing), "organs": organs,
            "anchors": float(np.mean([organs[k] for k in schema.ANCHOR_ORGANS])),
            "non_anchors": float(np.mean([organs[k] for k in schema.NON_ANCHOR_ORGANS])),
            "rules_pred": mean_dsc(evaluate_rules(cases, maps)),
            "rules_gt": mean_dsc(evaluate_rules(cases))}


def markdown(results: dict) -> str:
    from deepstationing import schema

    rows = results["cohorts"]
    names = list(rows)
    head = " | ".join(f"{' x '.join(f'{v:g}' for v in rows[n]['spacing'])} mm truth"
                      for n in names)
    lines = ["# What the organ grid costs: one cascade, the same cases on two grids", "",
             f"Command: `{results['command']}`  ", f"Date {results['date']}; model "
             f"`{results['model']}`, fold {results['fold']} held out "
             f"({', '.join(rows[names[0]]['cases'])}).", "",
             f"| organ | anchor | {head} |", "|---|---|" + "---|" * len(names)]
    for o in schema.ORGANS:
        anchor = "yes" if o.key in schema.ANCHOR_ORGANS else ""
        lines.append(f"| {o.key} | {anchor} | " + " | ".join(
            f"{100 * rows[n]['organs'][o.key]:.1f}" for n in names) + " |")
    for key, title in (("anchors", "mean anchors"), ("non_anchors", "mean non-anchors"),
                       ("rules_pred", "margin rules, predicted organs"),
                       ("rules_gt", "margin rules, true organs")):
        lines.append(f"| **{title}** | | " + " | ".join(
            f"**{100 * rows[n][key]:.1f}**" for n in names) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    from deepstationing.data.atomic import write_json_atomic, write_text_atomic
    from deepstationing.data.cohort import Cohort
    from deepstationing.organs.cascade import OrganCascade
    from deepstationing.phantom import generate_cohort
    from deepstationing.training import ModelFolder

    model = ModelFolder.open(args.model)
    cascade = OrganCascade(model, [args.fold], use="cascade", threads=args.threads)
    results = {"command": "python benchmarks/bench_organ_grid.py " +
               " ".join(argv or sys.argv[1:]), "date": time.strftime("%Y-%m-%d %H:%M"),
               "model": str(model.root), "fold": args.fold, "cohorts": {}}
    for folder in args.cohorts:
        path = Path(folder)
        cohort = Cohort(path) if (path / "manifest.json").exists() else generate_cohort(
            path, args.cases, seed=args.seed, preset="small", spacing=grid_of(path.name))
        cases = [cohort.case(c) for c in cohort.test_ids(args.fold)]
        results["cohorts"][path.name] = score(cascade, cases)
        r = results["cohorts"][path.name]
        print(f"{path.name}: anchors {100 * r['anchors']:.1f} %, non-anchors "
              f"{100 * r['non_anchors']:.1f} %, rules {100 * r['rules_pred']:.1f} % "
              f"(true organs {100 * r['rules_gt']:.1f} %)", file=sys.stderr, flush=True)
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(results, RESULTS / f"{args.out_name}.json")
    write_text_atomic(markdown(results), RESULTS / f"{args.out_name}.md")
    print(f"wrote {RESULTS / args.out_name}.{{json,md}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
