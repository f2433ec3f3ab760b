"""The key-organ search on a known answer: which organs define the target is known.

The toy cohort ``key-organs`` (:mod:`deepstationing.phantom.toy`) draws three informative
organs (a station shell around each is the target), three noise organs (random blobs,
unrelated to it) and three organs empty in every case; the CT is noise. A search over the
nine channels (:data:`CHANNELS`: the informative ones last, so that a tie could never
favour them) should rank every informative organ above every other one
(:func:`informative_first`); :func:`margin` says by how much. ``tests/test_search.py``
runs :func:`run_known_answer` for 3 seeds, ``benchmarks/bench_search_toy.py`` for many.

Examples
--------
>>> weights = [0.0, 0.0, 0.0, 0.1, 0.1, 0.15, 0.2, 0.2, 0.25]   # in CHANNELS order
>>> state = {"organs": list(CHANNELS), "searched": [o not in KEY_EMPTY for o in CHANNELS],
...          "trajectory": [{"epoch": 5, "weights": weights}]}
>>> informative_first(state), round(margin(state), 3)
(True, 1.333)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from deepstationing.backbone.plans import CpuConfig
from deepstationing.data.cohort import Cohort
from deepstationing.phantom.toy import KEY_EMPTY, KEY_INFORMATIVE, KEY_NOISE
from deepstationing.search.ranking import ranking
from deepstationing.training import ModelFolder

__all__ = ["CHANNELS", "SPEC", "KnownAnswer", "run_known_answer", "informative_first",
           "margin", "KEY_INFORMATIVE", "KEY_NOISE", "KEY_EMPTY"]

#: The search's organ channels: empty, noise, then informative ones.
CHANNELS = KEY_EMPTY + KEY_NOISE + KEY_INFORMATIVE
SPEC = "gt:" + ",".join(CHANNELS)


@dataclass(frozen=True)
class KnownAnswer:
    """Cohort and budget of the known-answer search (the test's settings by default).

    16 cases, two per patient (fold 0 trains on 12: 6 per half); 5 epochs of 40
    iterations, the first frozen (the paper's 20 %); a 16 x 24 x 24 patch of the
    24 x 40 x 40 toy, 8-16-32 features, batch 2.
    """

    cases: int = 16
    cases_per_patient: int = 2
    epochs: int = 5
    iterations: int = 40
    network: CpuConfig = field(default_factory=lambda: CpuConfig((16, 24, 24), (8, 16, 32), 2))


def run_known_answer(seed: int, workdir: str | os.PathLike, settings: KnownAnswer = KnownAnswer(),
                     *, threads: int | None = 1) -> tuple[Cohort, ModelFolder, dict]:
    """Write the toy cohort of ``seed`` and search fold 0 (training seeded alike).

    Returns the cohort, the model folder and the search state (``search_weights.json``).
    """
    from deepstationing.phantom.toy import write_toy_cohort
    from deepstationing.search.ranking import read_search_state
    from deepstationing.stations.network import train_stations
    from deepstationing.training import TrainBudget, TrainOptions

    work = Path(workdir)
    cohort = write_toy_cohort(work / "toy", settings.cases, kind="key-organs", seed=seed,
                              cases_per_patient=settings.cases_per_patient)
    opts = TrainOptions(workdir=work / "runs", seed=seed, threads=threads,
                        budget=TrainBudget(settings.epochs, settings.iterations, 1),
                        cpu=settings.network, progress=lambda m: None)
    model = train_stations(cohort, 0, channels=SPEC, options=opts, role="search")
    state = read_search_state(model.checkpoint(model.station_stage(), 0).parent)
    return cohort, model, state


def informative_first(state: dict) -> bool:
    """Every informative organ ranks above every noise and every empty one."""
    rank = {r.organ: r.rank for r in ranking(state)}
    return max(rank[o] for o in KEY_INFORMATIVE) < min(rank[o] for o in KEY_NOISE + KEY_EMPTY)


def margin(state: dict) -> float:
    """The weakest informative organ's final weight over the strongest other organ's."""
    weight = {r.organ: r.weight for r in ranking(state)}
    other = max(weight[o] for o in KEY_NOISE + KEY_EMPTY)
    weakest = min(weight[o] for o in KEY_INFORMATIVE)
    return weakest / other if other > 0 else float("inf")
