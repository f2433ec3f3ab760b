"""Key-organ search on its known answer, over many seeds: how often it gets it right.

Runs :func:`deepstationing.search.known_answer.run_known_answer` (the toy cohort
``key-organs``: three informative, three noise and three empty organ channels; the settings
of ``tests/test_search.py`` unless changed here) for each seed and records whether every
informative organ ranks above every other one, the margin (weakest informative weight over
strongest other weight), the final weights and the CPU seconds of each search. Writes
``search_toy.json`` and ``search_toy.md``.

    python benchmarks/bench_search_toy.py --seeds 0-11
    python benchmarks/bench_search_toy.py --seeds 0-2 --threads 2 --out-name search_toy_t2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0-11", help="e.g. 0-11 or 0,3,5")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--cases", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workdir", default=None, help="default: a temporary folder")
    p.add_argument("--out-name", default="search_toy")
    return p.parse_args(argv)


def _seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = (int(v) for v in text.split("-"))
        return list(range(lo, hi + 1))
    return [int(v) for v in text.split(",")]


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> int:
    args = parse_args(argv)
    import dataclasses

    from deepstationing.search.known_answer import (
        CHANNELS,
        KnownAnswer,
        informative_first,
        margin,
        run_known_answer,
    )

    settings = dataclasses.replace(KnownAnswer(), **{
        k: v for k, v in (("epochs", args.epochs), ("iterations", args.iterations),
                          ("cases", args.cases)) if v is not None})
    work = Path(args.workdir or tempfile.mkdtemp(prefix="deepstationing-bench-search-toy-"))
    rows = []
    t0 = time.perf_counter()
    for seed in _seeds(args.seeds):
        c0, w0 = _cpu_seconds(), time.perf_counter()
        _, _, state = run_known_answer(seed, work / f"seed{seed}", settings,
                                       threads=args.threads)
        final = dict(zip(state["organs"], state["trajectory"][-1]["weights"]))
        rows.append({"seed": seed, "informative_first": informative_first(state),
                     "margin": round(margin(state), 3),
                     "weights": {o: round(final[o], 3) for o in CHANNELS},
                     "cpu_seconds": round(_cpu_seconds() - c0, 1),
                     "wall_seconds": round(time.perf_counter() - w0, 1)})
        r = rows[-1]
        print(f"seed {seed}: {'pass' if r['informative_first'] else 'FAIL'}, margin "
              f"{r['margin']:.2f}, {r['cpu_seconds']:.0f} s CPU", file=sys.stderr, flush=True)
    doc = {"settings": {"cases": settings.cases, "cases_per_patient": settings.cases_per_patient,
                        "epochs": settings.epochs, "iterations": settings.iterations,
                        "network": settings.network.to_json(), "threads": args.threads},
           "channels": list(CHANNELS), "runs": rows,
           "passed": sum(r["informative_first"] for r in rows), "of": len(rows),
           "meta": {"command": "python benchmarks/bench_search_toy.py "
                               + " ".join(argv if argv is not None else sys.argv[1:]),
                    "date": time.strftime("%Y-%m-%d %H:%M"),
                    "machine": f"{platform.node()}: {os.cpu_count()} CPU cores; load average "
                               f"at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())}",
                    "total_minutes": round((time.perf_counter() - t0) / 60, 1)}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out_name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / f"{args.out_name}.md").write_text(markdown(doc))
    print(f"wrote {RESULTS / args.out_name}.{{json,md}}", file=sys.stderr)
    return 0


def markdown(doc: dict) -> str:
    s, meta = doc["settings"], doc["meta"]
    short = {"azygos": "azy", "bcv_l": "bcv_l", "cca_l": "cca_l", "sternum": "stern",
             "esophagus": "eso", "aortic_arch": "arch", "heart": "HEART", "spine": "SPINE",
             "trachea": "TRACHEA"}
    lines = ["# Key-organ search on its known answer (toy cohort `key-organs`)", "",
             f"Command: `{meta['command']}`  ", f"Date {meta['date']}; {meta['machine']}; "
             f"total {meta['total_minutes']} min.  ",
             f"Settings: {s['cases']} cases ({s['cases_per_patient']} per patient), fold 0; "
             f"{s['epochs']} x {s['iterations']} iterations; network {s['network']}; "
             f"{s['threads']} torch thread(s).", "",
             f"**Every informative organ (capitals) above every other one: {doc['passed']} of "
             f"{doc['of']} seeds.** Margin: the weakest informative organ's final weight over "
             "the strongest other organ's (empty organs are left out of the search: weight 0).",
             "", "| seed | pass | margin | " + " | ".join(short[c] for c in doc["channels"])
             + " | CPU s |", "|---" * (4 + len(doc["channels"])) + "|"]
    for r in doc["runs"]:
        lines.append(f"| {r['seed']} | {'yes' if r['informative_first'] else '**no**'} | "
                     f"{r['margin']:.2f} | "
                     + " | ".join(f"{r['weights'][c]:.3f}" for c in doc["channels"])
                     + f" | {r['cpu_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
