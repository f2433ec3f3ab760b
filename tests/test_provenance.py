"""A model knows what it saw: reuse of a trained fold, of cached organ maps and held-out
scoring are refused when the data at hand is not what the fold trained on or held out.

Tiny cohorts (4 cases at 11.2 x 11.2 x 20 mm, 2 folds) and one training iteration per
network: the networks mean nothing, the checks are what is tested.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from deepstationing.backbone.plans import CpuConfig
from deepstationing.data.cohort import Case, Cohort
from deepstationing.data.image import read_image, write_image
from deepstationing.errors import InputError
from deepstationing.organs.cascade import organ_oof_predictions, train_organs
from deepstationing.phantom import generate_cohort
from deepstationing.stations.evaluation import evaluate_station_stage
from deepstationing.stations.network import train_stations
from deepstationing.training import ModelFolder, TrainBudget, TrainOptions
from deepstationing.training.provenance import file_digest

TINY = CpuConfig((8, 16, 16), (2, 4), 1)
GRID = (11.2, 11.2, 20.0)


def _cohort(root: Path, seed: int) -> Cohort:
    return generate_cohort(root, 4, seed=seed, preset="small", spacing=GRID, n_folds=2,
                           progress=None)


def _options(workdir: Path) -> TrainOptions:
    return TrainOptions(workdir=workdir, cpu=TINY, budget=TrainBudget(1, 1, 1),
                        progress=lambda m: None)


def test_a_fold_records_what_it_trained_on_and_held_out(tmp_path):
    cohort = _cohort(tmp_path / "a" / "phantom", seed=0)
    model = train_stations(cohort, 0, channels="none", options=_options(tmp_path / "runs"))
    data = model.fold_record("stations-ct", 0)["data"]
    assert sorted(data["train"]) == sorted(cohort.train_ids(0))
    assert sorted(data["held_out"]) == sorted(cohort.test_ids(0))
    case = cohort.case(cohort.train_ids(0)[0])
    assert data["train"][case.id]["ct"] == file_digest(case.ct)
    assert data["train"][case.id]["target"] == file_digest(case.stations)


def test_another_cohort_of_the_same_name_is_not_taken_as_trained(tmp_path):
    """Two cohorts called ``phantom`` share the default model folder: the second is refused,
    not skipped as 'already trained' (and not mixed into the first one's model)."""
    runs = tmp_path / "runs"
    first = _cohort(tmp_path / "a" / "phantom", seed=0)
    second = _cohort(tmp_path / "b" / "phantom", seed=1)
    model = train_stations(first, 0, channels="none", options=_options(runs))
    before = json.loads((model.root / "deepstationing_model.json").read_text())
    with pytest.raises(InputError, match="was trained on other data than .*--retrain"):
        train_stations(second, 0, channels="none", options=_options(runs))
    after = json.loads((model.root / "deepstationing_model.json").read_text())
    assert after == before
    # the guard of held-out scoring: the second cohort's cases were never held out by it
    with pytest.raises(InputError, match="cannot score these cases as held out"):
        evaluate_station_stage(model, [second.case(c) for c in second.test_ids(0)], 0,
                               organs="gt")


def test_a_training_case_called_held_out_is_refused(tmp_path):
    cohort = _cohort(tmp_path / "phantom", seed=0)
    model = train_stations(cohort, 0, channels="none", options=_options(tmp_path / "runs"))
    trained_on = cohort.case(cohort.train_ids(0)[0])
    liar = Case(trained_on.id, trained_on.folder, 0)  # a manifest that says "fold 0"
    with pytest.raises(InputError, match="is one of its training cases"):
        evaluate_station_stage(model, [liar], 0, organs="gt")
    # the same CT under another case id is recognised by its content
    copy = tmp_path / "copy"
    shutil.copytree(trained_on.folder, copy)
    with pytest.raises(InputError, match=f"= {trained_on.id}"):
        evaluate_station_stage(model, [Case("renamed", copy, 0)], 0, organs="gt")
    held = [cohort.case(c) for c in cohort.test_ids(0)]
    assert len(evaluate_station_stage(model, held, 0, organs="gt")) == 12 * len(held)


def test_a_changed_ct_invalidates_cached_organ_maps_and_trained_folds(tmp_path):
    cohort = _cohort(tmp_path / "phantom", seed=0)
    opts = _options(tmp_path / "runs")
    model = train_organs(cohort, 0, options=opts, stages=("anchor",))
    files = organ_oof_predictions(cohort, model, ("anchor",), opts)
    case = next(iter(cohort))
    prov = json.loads((files[case.id][0].parent / "provenance.json").read_text())
    assert prov[case.id]["ct"] == file_digest(case.ct)  # the cache is keyed by the CT
    ct = read_image(case.ct)
    write_image(ct.with_array((ct.array + 7).astype(np.int16)), case.ct)
    with pytest.raises(InputError, match=f"case {case.id}'s ct"):
        organ_oof_predictions(cohort, ModelFolder.open(model.root), ("anchor",), opts)


def test_nested_organ_channels_never_saw_the_held_out_fold(tmp_path):
    """``nested:`` channels of station fold 0 come from a cascade trained on fold 0's
    training cases alone: no organ model behind them saw a fold-0 case."""
    cohort = generate_cohort(tmp_path / "phantom", 6, seed=0, preset="small", spacing=GRID,
                             n_folds=3, progress=None)
    opts = _options(tmp_path / "runs")
    model = train_stations(cohort, 0, channels="nested:heart,trachea", options=opts)
    held_out = set(cohort.test_ids(0))
    nested = ModelFolder.open(model.root / "nested" / "fold0")
    assert nested.stage_folders == ["anchor", "nonanchor"]
    for stage in nested.stage_folders:
        assert nested.folds(stage) == [0, 1]  # the inner folds: outer folds 1 and 2
        for f in nested.folds(stage):
            data = nested.fold_record(stage, f)["data"]
            assert not held_out & (set(data["train"]) | set(data["held_out"]))
    origins = {}
    for src in opts.workspace.raw.glob("Dataset*/deepstationing_source.json"):
        doc = json.loads(src.read_text())
        if json.loads(doc["key"])["stage"]["role"] == "stations":
            origins = {c["id"]: c["channel_origin"] for c in doc["cases"]}
    assert sorted(origins) == sorted(cohort.train_ids(0))
    assert all(o.startswith("nested cascade 0/") for o in origins.values())
    assert model.station_stage().startswith("stations-nested-2org-")
