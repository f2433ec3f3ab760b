"""Train one fold of a stage: export, plan, train (start, resume, extend or skip), record.

:func:`train_stage` is the single routine every stage goes through (organ cascade, single
network, station networks, key-organ search): stages differ only in their
:class:`~deepstationing.training.stages.StageDefinition` and in the cases (with their organ
channels) they are given. :func:`ensure_folds` trains the folds a later stage needs for
out-of-fold channels.

What a re-run does, per fold (decided before anything is exported or trained):

* the model holds the fold with at least the requested epochs: nothing (``skipped``);
* it holds the fold with fewer epochs: training is extended from its checkpoint;
* an interrupted run left a checkpoint: training resumes from it;
* ``retrain``: the fold starts again from scratch.

Examples
--------
>>> budget_covers({"budget": {"epochs": 40, "iterations": 25}}, TrainBudget(20, 25))
True
>>> budget_covers({"budget": {"epochs": 40, "iterations": 25}}, TrainBudget(80, 25))
False
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from deepstationing.backbone.datasets import ExportCase, export_dataset
from deepstationing.backbone.inputs import oriented_geometry, target_spacing
from deepstationing.backbone.plans import plan_and_preprocess
from deepstationing.backbone.train import ALL_CASES, TrainBudget, checkpoint_epoch, train_fold
from deepstationing.data.cohort import Cohort
from deepstationing.data.locks import file_lock
from deepstationing.errors import InputError
from deepstationing.training.cases import cohort_folds
from deepstationing.training.model import ModelFolder
from deepstationing.training.options import TrainOptions
from deepstationing.training.provenance import (
    PROVENANCE_KEY,
    case_digests,
    check_training_cases,
    fold_provenance,
)
from deepstationing.training.stages import STATION_ROLES, StageDefinition

__all__ = ["train_stage", "ensure_folds", "budget_covers", "fold_is_trained", "model_key",
           "training_digests", "cohort_training_digests", "check_fold_data", "stage_spacing"]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "x"


def model_key(model: ModelFolder) -> str:
    """Short key of a model folder (its absolute path)."""
    return hashlib.sha1(str(model.root.resolve()).encode()).hexdigest()[:10]


def budget_covers(record: dict | None, budget: TrainBudget) -> bool:
    """Whether a fold record already holds at least ``budget`` (resolved)."""
    if record is None:
        return False
    have = record["budget"]
    return have["iterations"] == budget.iterations and have["epochs"] >= budget.epochs


def training_digests(cases: Sequence[ExportCase], fold: int) -> dict[str, dict[str, str]]:
    """``{case: {"ct": sha256, "target": sha256}}`` of the cases fold ``fold`` trains on."""
    return {c.case_id: case_digests({"ct": c.ct, "target": c.target})
            for c in cases if c.fold is not None and int(c.fold) != int(fold)}


def cohort_training_digests(cohort: Cohort, fold: int, target: str) -> dict[str, dict[str, str]]:
    """The same for a cohort's cases and a target role (``organs`` or ``stations``)."""
    cases = [ExportCase(c.id, c.ct, c.path(target), c.fold) for c in cohort
             if c.fold is not None]
    return training_digests(cases, fold)


def check_fold_data(model: ModelFolder, folder: str, fold: int,
                    current: dict[str, dict[str, str]]) -> None:
    """Refuse a trained fold whose training cases are not ``current`` (see
    :func:`~deepstationing.training.provenance.check_training_cases`)."""
    check_training_cases(model.fold_record(folder, fold), current, where=model.root,
                         what=f"fold {fold} of stage '{folder}'")


def fold_is_trained(model: ModelFolder, definition: StageDefinition, fold: int,
                    options: TrainOptions, cohort: Cohort | None = None) -> bool:
    """The model holds ``fold`` of this stage with the requested budget (nothing to do).

    With ``cohort``, a fold trained on other data than the cohort's training cases of that
    fold is refused (one :class:`~deepstationing.errors.InputError` line) instead of being
    taken as trained.
    """
    if options.retrain or not model.has(definition.folder, fold):
        return False
    if cohort is not None:
        target = "stations" if definition.role in STATION_ROLES else "organs"
        check_fold_data(model, definition.folder, fold,
                        cohort_training_digests(cohort, fold, target))
    budget = options.budget.resolved(definition.config)
    return budget_covers(model.fold_record(definition.folder, fold), budget)


def stage_spacing(definition: StageDefinition, cases: Sequence[ExportCase]) -> tuple:
    """The grid a fold trains on: the definition's spacing, else nnU-Net's rule applied to
    the spacings of the fold's *training* cases (in the stage's orientation)."""
    if definition.spacing is not None:
        return tuple(definition.spacing)
    geometry = [oriented_geometry(c.ct, definition.orientation) for c in cases]
    spacings, shapes = [g[0] for g in geometry], [g[1] for g in geometry]
    return target_spacing(spacings, shapes)


def train_stage(cohort: Cohort, fold: int, model: ModelFolder, definition: StageDefinition,
                cases: Sequence[ExportCase], options: TrainOptions) -> Path:
    """Export, plan and train one fold of a stage and copy it into ``model``.

    Only the fold's *training* cases are exported: nnU-Net's fingerprint, its normalisation
    statistics and the target spacing come from them, never from the held-out cases, and
    nnU-Net trains on all of them (its fold ``all``; its per-epoch "pseudo Dice" is then a
    training-set number, and nothing is chosen by it). The fold record in the model
    describes the data (hashes of every training case's files and of the held-out CTs,
    :mod:`~deepstationing.training.provenance`).

    Returns the fold's nnU-Net output folder. The definition is checked against the model
    first (a clash costs nothing); a fold the model already holds with the requested budget
    is skipped, after checking that it was trained on these cases.
    """
    model.check(definition)
    name = definition.folder
    budget = options.budget.resolved(definition.config)
    train_cases = [c for c in cases if c.fold is not None and int(c.fold) != int(fold)]
    held_out = [c for c in cases if c.fold is not None and int(c.fold) == int(fold)]
    if not train_cases:
        raise InputError(cohort.root, f"fold {fold} leaves no training case")
    if model.has(name, fold) and not options.retrain:
        check_fold_data(model, name, fold, training_digests(cases, fold))
        if budget_covers(model.fold_record(name, fold), budget):
            options.say(f"[{name} fold {fold}] already trained "
                        f"({model.fold_record(name, fold)['epochs']} epochs) in {model.root}")
            return model.checkpoint(name, fold).parent
    ws = options.workspace.create()
    channels = definition.channels
    pred = model_key(model) if (channels.organs and channels.source == "pred") else "-"
    spacing = stage_spacing(definition, train_cases)
    key = json.dumps({"stage": definition.to_json(), "cohort": str(cohort.root.resolve()),
                      "fold": int(fold), "channels_from": pred}, sort_keys=True)
    with file_lock(ws.root / "datasets" / hashlib.sha1(key.encode()).hexdigest()[:16]):
        ref, written = export_dataset(
            ws, key, _safe(f"{name}_{cohort.root.resolve().name}_f{fold}"), train_cases,
            labels=definition.labels, channels=channels, spacing=spacing,
            orientation=definition.orientation)
        options.say(f"[{name} fold {fold}] dataset {ref.name} of its {len(train_cases)} "
                    f"training cases ({'exported' if written else 'unchanged'}) at "
                    f"{' x '.join(f'{v:g}' for v in spacing[::-1])} mm; planning/"
                    f"preprocessing ({definition.config} config)")
        plans = plan_and_preprocess(ws, ref, definition.config, definition.cpu,
                                    augmentation=definition.augmentation,
                                    ct_window=definition.ct_window, spacing=spacing,
                                    verbose=options.verbose)
    workers = options.resolved_workers()
    options.say(f"[{name} fold {fold}] training {budget.epochs} x {budget.iterations} "
                f"iterations ({definition.trainer}, device {options.device}, {workers} "
                "augmentation workers)")
    t0 = time.perf_counter()
    out = train_fold(ws, plans, ALL_CASES, trainer=definition.trainer, budget=budget,
                     device=options.device, threads=options.threads, workers=workers,
                     stop_after_epochs=options.stop_after_epochs, restart=options.retrain,
                     trainer_settings=definition.settings,
                     snapshot_every=options.snapshot_every, seed=options.seed,
                     progress=options.say,
                     verbose=options.verbose)
    record = {"budget": budget.to_json(),
              "epochs": checkpoint_epoch(out / "checkpoint_final.pth"),
              "seconds_this_run": round(time.perf_counter() - t0, 1),
              "device": options.device, "workers": workers,
              "trained": time.strftime("%Y-%m-%d %H:%M:%S"),
              "spacing": [float(v) for v in spacing],
              PROVENANCE_KEY: fold_provenance(
                  {c.case_id: {"ct": c.ct, "target": c.target, "organs": c.organs}
                   for c in train_cases},
                  {c.case_id: c.ct for c in held_out}, str(cohort.root.resolve()))}
    model.add_fold(definition, fold, out, record)
    options.say(f"[{name} fold {fold}] done -> {model.stage_folder(name)}")
    return out


def ensure_folds(cohort: Cohort, model: ModelFolder, definition: StageDefinition,
                 train_one: Callable[[int], object], options: TrainOptions) -> None:
    """Train every cohort fold of a stage that ``model`` lacks (out-of-fold channels need
    them all), with ``train_one(fold)``; a fold it holds must have trained on this cohort."""
    target = "stations" if definition.role in STATION_ROLES else "organs"
    for f in cohort_folds(cohort):
        if model.has(definition.folder, f):
            check_fold_data(model, definition.folder, f,
                            cohort_training_digests(cohort, f, target))
        else:
            options.say(f"[{definition.folder}] fold {f} is needed for out-of-fold channels; "
                        "training it")
            train_one(f)
