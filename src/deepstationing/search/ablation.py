"""A second opinion on the key-organ search: the held-out drop when one organ is removed.

The search ranks organs by softmax weights learned during training (:mod:`.ranking`). This
module ranks them another way, independently: a station network trained on CT + the organ
channels predicts its fold's held-out cases once with every organ and once with each organ
removed from the organ map (its channel all zero, as for an organ the cascade did not find);
an organ's *drop* is the mean station DSC lost without it. Organs the network relies on
have a large drop; organs it ignores, ~0 (a negative drop: the network does better without
it). :func:`agreement` gives the Spearman rank correlation of two rankings.

The drop is measured on the fold's held-out cases, so use it to check a ranking, not to
choose the channels of a network reported on the same fold.

Examples
--------
>>> drops = {"heart": 0.01, "trachea": 0.20, "spine": -0.02, "esophagus": 0.05}
>>> [r.organ for r in rank_by_drop(drops)]
['trachea', 'esophagus', 'heart', 'spine']
>>> round(agreement(["trachea", "esophagus", "heart", "spine"],
...                 ["trachea", "heart", "esophagus", "spine"]), 2)
0.8
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepstationing import schema
from deepstationing.data.atomic import write_json_atomic
from deepstationing.data.cohort import Case
from deepstationing.data.image import Image, read_image
from deepstationing.evaluation.heldout import mean_dsc, score_stations
from deepstationing.stations.evaluation import check_held_out_by
from deepstationing.stations.network import StationParser, train_stations

__all__ = ["AblatedOrgan", "ablation_drops", "rank_by_drop", "agreement", "write_ablation",
           "run_ablation", "ABLATION_FILE"]

ABLATION_FILE = "ablation.json"


@dataclass(frozen=True)
class AblatedOrgan:
    organ: str
    drop: float
    rank: int


def _mean_dsc(case_id: str, truth: Image, pred: Image) -> float:
    return mean_dsc(score_stations(case_id, truth, pred))


def ablation_drops(model, cases: Sequence[Case], fold: int, *, stations: str | None = None,
                   organs: str = "gt", device: str = "cpu", threads: int | None = None,
                   progress: Callable[[str], None] | None = None) -> dict:
    """Held-out mean station DSC with all organ channels, and the drop without each.

    Args:
        model: the model folder with a station stage on CT + organ channels.
        cases: fold ``fold``'s held-out cases (checked against what the fold trained on).
        stations: which station stage (``None``: the only one).
        organs: the organ maps given to the network: ``"gt"`` (the cases' truth) or
            ``"model"`` (the model's own fold-``fold`` organ cascade, predicted once).

    Returns:
        ``{"fold", "baseline", "organs", "drop": {organ: mean DSC lost}, "per_case"}``.
    """
    parser = StationParser(model, [fold], stations=stations, device=device, threads=threads)
    check_held_out_by(parser, cases, fold, organs)
    channel_organs = list(parser.channels.organs)
    say = progress or (lambda m: None)
    per_case: dict[str, dict[str, float]] = {}
    for n, case in enumerate(cases, 1):
        say(f"ablation: case {n}/{len(cases)} ({case.id}), {len(channel_organs)} organs")
        ct = read_image(case.ct)
        truth = read_image(case.stations, label=True)
        organ_map = read_image(case.organs, label=True) if organs == "gt" else \
            parser.organs.predict(ct)
        scores = {"": _mean_dsc(case.id, truth, parser.predict(ct, organ_map)[1])}
        for key in channel_organs:
            without = organ_map.with_array(np.where(
                organ_map.array == schema.ORGANS.by_key(key).id, 0, organ_map.array))
            scores[key] = _mean_dsc(case.id, truth, parser.predict(ct, without)[1])
        per_case[case.id] = scores
    baseline = float(np.mean([s[""] for s in per_case.values()]))
    drop = {k: baseline - float(np.mean([s[k] for s in per_case.values()]))
            for k in channel_organs}
    return {"fold": fold, "organs_source": organs, "baseline": baseline,
            "organs": channel_organs, "drop": drop, "per_case": per_case}


def rank_by_drop(drops: dict[str, float]) -> list[AblatedOrgan]:
    """Organs by drop, largest first (ties in the given order)."""
    order = sorted(drops, key=lambda k: -drops[k])
    return [AblatedOrgan(k, float(drops[k]), i) for i, k in enumerate(order, 1)]


def agreement(a: Sequence[str], b: Sequence[str]) -> float:
    """Spearman rank correlation of two rankings of the same organs (best first)."""
    from scipy.stats import spearmanr

    common = [o for o in a if o in set(b)]
    if len(common) < 2:
        raise ValueError("two rankings need at least two organs in common")
    rank_b = {o: i for i, o in enumerate(o for o in b if o in set(common))}
    return float(spearmanr(range(len(common)), [rank_b[o] for o in common]).statistic)


def write_ablation(result: dict, out_dir: str | os.PathLike) -> Path:
    """``ablation.json``: the result of :func:`ablation_drops` with its ranking."""
    doc = {**result, "ranking": [{"organ": r.organ, "drop": round(r.drop, 5), "rank": r.rank}
                                 for r in rank_by_drop(result["drop"])]}
    path = Path(out_dir) / ABLATION_FILE
    write_json_atomic(doc, path)
    return path


def run_ablation(cohort, fold: int, *, source: str, options, model_dir: str | os.PathLike,
                 out_dir: str | os.PathLike) -> dict:
    """Train (or reuse) the station network on CT + all 22 ``source`` organ channels for
    ``fold``, measure :func:`ablation_drops` on the fold's held-out cases and write
    ``ablation.json`` into ``out_dir``; with a weights ranking there (``ranking.json`` of
    the search) the result also holds the two rankings' :func:`agreement`."""
    spec = f"{source}:all"
    model = train_stations(cohort, fold, channels=spec, options=options, model_dir=model_dir)
    cases = [cohort.case(c) for c in cohort.test_ids(fold)]
    result = ablation_drops(model, cases, fold, stations=spec,
                            organs="gt" if source == "gt" else "model",
                            device=options.device, threads=options.threads,
                            progress=options.say)
    weights = Path(out_dir) / "ranking.json"
    if weights.exists():
        by_weight = [o["organ"] for o in json.loads(weights.read_text())["organs"]]
        result["agreement_with_weights"] = agreement(
            by_weight, [r.organ for r in rank_by_drop(result["drop"])])
    result["file"] = str(write_ablation(result, out_dir))
    return result
