"""Run the key-organ search and the top-n sweep on a cohort fold (paper Fig. 3b).

:func:`run_search` trains the search stage (CT + all 22 organ channels through the softmax
weights, :mod:`deepstationing.backbone.weighting`) and writes the ranking;
:func:`run_sweep` retrains the station network with CT + the top-n organs for each n and
scores each on the fold's held-out cases (the fold's models only).

Examples
--------
>>> parse_sweep("3,6,9")
[3, 6, 9]
>>> parse_sweep("3-21/3")
[3, 6, 9, 12, 15, 18, 21]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deepstationing.data.atomic import atomic_output, write_json_atomic, write_text_atomic
from deepstationing.data.cohort import Cohort
from deepstationing.errors import InputError
from deepstationing.search.ranking import (
    SEARCH_FILE,
    RankedOrgan,
    ranking,
    read_search_state,
    top_spec,
    write_ranking,
)
from deepstationing.training import ModelFolder, TrainOptions
from deepstationing.training.stages import SEARCH

__all__ = ["SearchResult", "run_search", "run_sweep", "parse_sweep"]


@dataclass
class SearchResult:
    model: ModelFolder
    folder: str
    ranked: list[RankedOrgan]
    ranking_file: Path


def parse_sweep(text: str) -> list[int]:
    """``"3,6,9"`` or ``"3-21/3"`` (from-to/step) to a list of n."""
    t = text.strip()
    try:
        if "-" in t:
            span, _, step = t.partition("/")
            lo, hi = (int(v) for v in span.split("-"))
            return list(range(lo, hi + 1, int(step or 1)))
        return [int(v) for v in t.split(",") if v.strip()]
    except ValueError:
        raise InputError(None, f"--sweep {text!r}: expected e.g. 3,6,9 or 3-21/3") from None


def run_search(cohort: Cohort, fold: int, *, source: str, options: TrainOptions,
               model_dir: str | Path | None, out_dir: str | Path,
               settings: dict | None = None) -> SearchResult:
    """Train (or reuse) the search stage of ``fold`` and write ``ranking.json`` +
    ``weights.png`` into ``out_dir``."""
    from deepstationing.stations.network import train_stations

    model = train_stations(cohort, fold, channels=f"{source}:all", options=options,
                           model_dir=model_dir, role=SEARCH, settings=settings)
    folder = f"{SEARCH}-{source}-all"
    state = read_search_state(model.checkpoint(folder, fold).parent / SEARCH_FILE)
    path = write_ranking(state, out_dir, meta={
        "fold": fold, "source": source, "config": options.config,
        "cohort": str(cohort.root), "model": str(model.root), "stage": folder,
        "budget": model.fold_record(folder, fold)["budget"]})
    return SearchResult(model, folder, ranking(state), path)


def run_sweep(cohort: Cohort, fold: int, ranked: list[RankedOrgan], ns: list[int], *,
              source: str, options: TrainOptions, model: ModelFolder, out_dir: str | Path,
              progress: Callable[[str], None] | None = None) -> dict:
    """Train CT + top-n for each n and score the held-out cases; writes ``sweep.json``,
    ``sweep.md`` and ``sweep.png`` into ``out_dir``."""
    from deepstationing.evaluation.heldout import mean_dsc
    from deepstationing.stations.evaluation import evaluate_station_stage
    from deepstationing.stations.network import train_stations

    say = progress or (lambda m: None)
    test = [cohort.case(c) for c in cohort.test_ids(fold)]
    organs = "gt" if source == "gt" else "model"
    results = []
    for n in ns:
        spec = top_spec(ranked, n, source=source)
        say(f"[sweep] top-{n}: {spec}")
        train_stations(cohort, fold, channels=spec, options=options, model_dir=model.root)
        model = ModelFolder.open(model.root)
        rows = evaluate_station_stage(model, test, fold, stations=spec, organs=organs,
                                      device=options.device, threads=options.threads)
        results.append({"n": n, "spec": spec, "mean_dsc": mean_dsc(rows),
                        "mean_hd95": _mean(r.hd95 for r in rows),
                        "mean_assd": _mean(r.assd for r in rows)})
        say(f"[sweep] top-{n}: held-out mean DSC {100 * results[-1]['mean_dsc']:.1f} %")
    out = Path(out_dir)
    doc = {"fold": fold, "source": source, "test_cases": [c.id for c in test],
           "organ_channels_at_test": organs, "results": results}
    write_json_atomic(doc, out / "sweep.json")
    lines = ["| top-n | organs | held-out DSC (%) | HD95 (mm) | ASSD (mm) |",
             "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['n']} | {r['spec'].split(':', 1)[1].replace(',', ', ')} | "
                     f"{100 * r['mean_dsc']:.1f} | {r['mean_hd95']:.1f} | "
                     f"{r['mean_assd']:.2f} |")
    write_text_atomic("\n".join(lines) + "\n", out / "sweep.md")
    _plot_sweep(results, out / "sweep.png")
    return doc


def _mean(values) -> float:
    import numpy as np

    v = [x for x in values if not np.isnan(x)]
    return float(np.mean(v)) if v else float("nan")


def _plot_sweep(results: list[dict], path: Path) -> None:
    import matplotlib.style
    from matplotlib.figure import Figure

    with matplotlib.style.context("default"):
        fig = Figure(figsize=(5.5, 3.6), dpi=120)
        ax = fig.add_subplot()
        ax.plot([r["n"] for r in results], [100 * r["mean_dsc"] for r in results], "o-")
        ax.set_xlabel("number of searched organs (top-n)")
        ax.set_ylabel("held-out mean station DSC (%)")
        ax.set_title("Station DSC with CT + the top-n searched organs", fontsize=10)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_output(path) as staged:
            fig.savefig(staged.path, format="png")


def load_sweep(out_dir: str | Path) -> dict:
    """A written ``sweep.json``."""
    return json.loads((Path(out_dir) / "sweep.json").read_text())
