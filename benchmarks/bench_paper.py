"""The paper's protocol at the ``bench`` scale: Table 1 over all 4 folds on this machine.

Runs (or continues: finished jobs are kept) ``deepstationing experiment paper --scale bench``
(20 phantom cases at 5.6 x 5.6 x 10 mm, 4 patient-level folds; the organ cascade, Table 1's
station networks and the key-organ search on every fold) and writes
``benchmarks/results/paper_bench.md``: how it was run (command, machine, hours of each
kind of job), then the experiment report's tables (Table 1 per fold with mean and spread,
the paper's orderings per fold, the search's top-6 per fold, the organ table, zone
accuracy, QC verdicts). Run from the repository root::

    python benchmarks/bench_paper.py --out /tmp/ds-bench --jobs 2 --threads 1

An interrupted run continues where it stopped when run again with the same ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="/tmp/deepstationing-bench-paper",
                   help="the experiment folder (its cohort in OUT/phantom)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--scale", default="bench")
    p.add_argument("--out-name", default="paper_bench")
    p.add_argument("--note", default="",
                   help="how the run went, for the results file (e.g. 'nothing else ran'; "
                        "'interrupted and resumed': the span then includes the pause)")
    return p.parse_args(argv)


def job_hours(out: Path) -> dict[str, dict]:
    """Per kind of job (``organs/anchor``, ``stations/ct``, ...): count, total and longest
    seconds, from the jobs' status files; and the run's span from first start to last end
    (of the jobs that compute: the report is left out)."""
    kinds: dict[str, dict] = {}
    starts, ends = [], []
    for status in sorted((out / "jobs").rglob("status.json")):
        s = json.loads(status.read_text())
        job = s.get("job", {}).get("id", "")
        kind = "/".join(job.split("/")[:2])
        k = kinds.setdefault(kind, {"jobs": 0, "seconds": 0.0, "longest": 0.0})
        k["jobs"] += 1
        k["seconds"] += float(s.get("seconds", 0.0))
        k["longest"] = max(k["longest"], float(s.get("seconds", 0.0)))
        for key, bucket in (("started", starts), ("updated", ends)):
            if s.get(key) and job != "report":  # a report may be rewritten any time later
                bucket.append(time.mktime(time.strptime(s[key], "%Y-%m-%d %H:%M:%S")))
    span = (max(ends) - min(starts)) if starts and ends else 0.0
    return {"kinds": kinds, "span_s": span}


def search_stability(out: Path) -> list[str]:
    """Markdown: how the key-organ search's rankings of the folds agree (Spearman between
    every pair of folds), where the organs that bound no station land, the paper's top-6."""
    from itertools import combinations

    from deepstationing import schema
    from deepstationing.search.ablation import agreement
    from deepstationing.search.ranking import NON_BOUNDARY_ORGANS

    ranks = {}
    for f in sorted((out / "jobs" / "search" / "pred").glob("fold*/ranking.json")):
        doc = json.loads(f.read_text())
        ranks[int(f.parent.name[4:])] = [o["organ"] for o in doc["organs"]]
    if len(ranks) < 2:
        return []
    pairs = {(a, b): agreement(ranks[a], ranks[b]) for a, b in combinations(sorted(ranks), 2)}
    mean = sum(pairs.values()) / len(pairs)
    lines = ["## Key-organ search: agreement between folds", "",
             "Spearman rank correlation of the 22-organ rankings (predicted organ channels) "
             f"between every pair of folds; mean **{mean:.2f}** (the goal of issue 17: "
             "≥ 0.6).", "", "| folds | Spearman |", "|---|---|"]
    lines += [f"| {a} - {b} | {v:.2f} |" for (a, b), v in pairs.items()]
    lines += ["", "Rank (1 = largest weight) of the organs that bound no station in the "
              "phantom's protocol, and of the paper's top-6, per fold:", "",
              "| organ | " + " | ".join(f"fold {k}" for k in sorted(ranks)) + " |",
              "|---|" + "---|" * len(ranks)]
    for organ in list(NON_BOUNDARY_ORGANS) + [o for o in schema.PAPER_TOP6_ORGANS
                                              if o not in NON_BOUNDARY_ORGANS]:
        tag = " (no boundary)" if organ in NON_BOUNDARY_ORGANS else " (paper top-6)"
        lines.append(f"| {organ}{tag} | "
                     + " | ".join(str(ranks[k].index(organ) + 1) for k in sorted(ranks)) + " |")
    return lines + [""]


def main(argv=None) -> int:
    args = parse_args(argv)
    from deepstationing.data.atomic import write_text_atomic
    from deepstationing.experiments import run_paper
    from deepstationing.experiments.scales import SCALES

    out = Path(args.out)
    scale = SCALES[args.scale]
    summary = run_paper(out / "phantom", out, scale, threads=args.threads, jobs=args.jobs,
                        progress=lambda m: print(m, file=sys.stderr, flush=True))
    if not summary.ok:
        print(f"not every job finished: {summary.failed or summary.blocked}", file=sys.stderr)
        return 1
    report = (out / "report.md").read_text()
    body = [ln for ln in report.splitlines()[1:] if not ln.startswith("![")]
    hours = job_hours(out)
    lines = [f"# The paper's protocol at the `{args.scale}` scale (4 folds)", "",
             f"Command: `python benchmarks/bench_paper.py --out {args.out} --jobs {args.jobs} "
             f"--threads {args.threads}` (equivalently `deepstationing experiment paper "
             f"--cohort OUT/phantom --out OUT --scale {args.scale} --jobs {args.jobs} "
             f"--threads {args.threads}`).  ",
             f"Scale: {scale.description}.  ",
             f"Machine: {platform.node()}, {os.cpu_count()} CPU cores, no GPU; "
             f"{hours['span_s'] / 3600:.2f} h from the first job's start to the last job's "
             "end" + (f" ({args.note})." if args.note else "."), "",
             "| jobs | count | CPU-job minutes | longest (min) |", "|---|---|---|---|"]
    for kind, k in sorted(hours["kinds"].items()):
        lines.append(f"| {kind} | {k['jobs']} | {k['seconds'] / 60:.1f} | "
                     f"{k['longest'] / 60:.1f} |")
    lines += ["", "Everything below is the experiment's own report (`OUT/report.md`, "
              "pictures left out): held-out numbers only, each fold's test cases predicted "
              "by that fold's models.", ""]
    lines += body
    lines += [""] + search_stability(out)
    RESULTS.mkdir(exist_ok=True)
    write_text_atomic("\n".join(lines) + "\n", RESULTS / f"{args.out_name}.md")
    print(f"wrote {RESULTS / args.out_name}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
