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
from deepstationing.backbone.plans import plan_and_preprocess
from deepstationing.backbone.train import TrainBudget, checkpoint_epoch, train_fold
from deepstationing.data.cohort import Cohort
from deepstationing.data.locks import file_lock
from deepstationing.training.cases import cohort_folds
from deepstationing.training.model import ModelFolder
from deepstationing.training.options import TrainOptions
from deepstationing.training.stages import StageDefinition

__all__ = ["train_stage", "ensure_folds", "budget_covers", "fold_is_trained", "model_key"]


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


def fold_is_trained(model: ModelFolder, definition: StageDefinition, fold: int,
                    options: TrainOptions) -> bool:
    """The model holds ``fold`` of this stage with the requested budget (nothing to do)."""
    if options.retrain or not model.has(definition.folder, fold):
        return False
    budget = options.budget.resolved(definition.config)
    return budget_covers(model.fold_record(definition.folder, fold), budget)


def train_stage(cohort: Cohort, fold: int, model: ModelFolder, definition: StageDefinition,
                cases: Sequence[ExportCase], options: TrainOptions) -> Path:
    """Export, plan and train one fold of a stage and copy it into ``model``.

    Returns the fold's nnU-Net output folder. The definition is checked against the model
    first (a clash costs nothing); a fold the model already holds with the requested budget
    is skipped.
    """
    model.check(definition)
    name = definition.folder
    budget = options.budget.resolved(definition.config)
    if fold_is_trained(model, definition, fold, options):
        options.say(f"[{name} fold {fold}] already trained "
                    f"({model.fold_record(name, fold)['epochs']} epochs) in {model.root}")
        return model.checkpoint(name, fold).parent
    ws = options.workspace.create()
    channels = definition.channels
    pred = model_key(model) if (channels.organs and channels.source == "pred") else "-"
    key = json.dumps({"stage": definition.to_json(), "cohort": str(cohort.root.resolve()),
                      "channels_from": pred}, sort_keys=True)
    # folds of one stage share their dataset: one job exports and plans it, others wait
    with file_lock(ws.root / "datasets" / hashlib.sha1(key.encode()).hexdigest()[:16]):
        ref, written = export_dataset(ws, key, _safe(f"{name}_{cohort.root.resolve().name}"),
                                      cases, labels=definition.labels, channels=channels,
                                      orientation=definition.orientation)
        options.say(f"[{name} fold {fold}] dataset {ref.name} "
                    f"({'exported' if written else 'unchanged'}); planning/preprocessing "
                    f"({definition.config} config)")
        plans = plan_and_preprocess(ws, ref, definition.config, definition.cpu,
                                    augmentation=definition.augmentation,
                                    ct_window=definition.ct_window, verbose=options.verbose)
    workers = options.resolved_workers()
    options.say(f"[{name} fold {fold}] training {budget.epochs} x {budget.iterations} "
                f"iterations ({definition.trainer}, device {options.device}, {workers} "
                "augmentation workers)")
    t0 = time.perf_counter()
    out = train_fold(ws, plans, fold, trainer=definition.trainer, budget=budget,
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
              "trained": time.strftime("%Y-%m-%d %H:%M:%S")}
    model.add_fold(definition, fold, out, record)
    from deepstationing.qc.reference import record_training_cases

    record_training_cases(model.root, cohort, fold)  # the cohort's label ranges for QC
    options.say(f"[{name} fold {fold}] done -> {model.stage_folder(name)}")
    return out


def ensure_folds(cohort: Cohort, model: ModelFolder, definition: StageDefinition,
                 train_one: Callable[[int], object], options: TrainOptions) -> None:
    """Train every cohort fold of a stage that ``model`` lacks (out-of-fold channels need
    them all), with ``train_one(fold)``."""
    for f in cohort_folds(cohort):
        if not model.has(definition.folder, f):
            options.say(f"[{definition.folder}] fold {f} is needed for out-of-fold channels; "
                        "training it")
            train_one(f)
