"""Train one fold of one planned dataset with our nnU-Net trainer; resume when interrupted.

Resume semantics are nnU-Net's ``--c``: if the fold's output folder holds
``checkpoint_final.pth`` from a run with the same budget, training is already done; if it
holds ``checkpoint_latest.pth`` (an interrupted run with the same budget), training
continues from it; otherwise it starts from scratch. A different budget restarts from
scratch (the learning-rate schedule depends on it), and so does a change of the
preprocessed training data (e.g. organ channels re-made by a retrained earlier stage).

Examples
--------
>>> # doctest: +SKIP
>>> out = train_fold(ws, plans_ref, 0, budget=TrainBudget(2, 4), device="cpu")
>>> (out / "checkpoint_final.pth").exists()
True
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from deepstationing.backbone.env import Workspace, nnunet_environment, prepare_nnunet_import
from deepstationing.backbone.plans import PlansRef

__all__ = ["TrainBudget", "train_fold", "trainer_name", "fold_folder", "checkpoint_epoch"]


@dataclass(frozen=True)
class TrainBudget:
    """Epochs, iterations per epoch and validation iterations (``None``: trainer default)."""

    epochs: int | None = None
    iterations: int | None = None
    val_iterations: int | None = None

    def to_json(self) -> dict:
        return {"epochs": self.epochs, "iterations": self.iterations,
                "val_iterations": self.val_iterations}


def trainer_name(config: str) -> str:
    """Our trainer class for a configuration (``cpu`` or ``full``)."""
    return "DeepStationingTrainerCPU" if config == "cpu" else "DeepStationingTrainer"


def fold_folder(workspace: Workspace, plans: PlansRef, fold: int) -> Path:
    """nnU-Net's output folder of one fold."""
    return (workspace.results / plans.dataset.name /
            f"{trainer_name(plans.config)}__{plans.plans_identifier}__{plans.configuration}" /
            f"fold_{fold}")


def checkpoint_epoch(path: str | Path) -> int:
    """Number of epochs completed when a checkpoint was written."""
    import torch

    ck = torch.load(str(path), map_location="cpu", weights_only=False)
    return int(ck["current_epoch"])


def _torch_device(device: str):
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        from deepstationing.errors import DeepStationingError

        raise DeepStationingError("--device cuda requested but no CUDA GPU is available")
    return torch.device(device)


def train_fold(workspace: Workspace, plans: PlansRef, fold: int, *,
               budget: TrainBudget = TrainBudget(), device: str = "cpu",
               threads: int | None = 1, stop_after_epochs: int | None = None,
               verbose: bool = False) -> Path:
    """Train (or resume, or skip if done) fold ``fold``; return the fold's output folder.

    Args:
        workspace: where the preprocessed data and results live.
        plans: the planned dataset (from
            :func:`~deepstationing.backbone.plans.plan_and_preprocess`).
        fold: cohort fold held out for validation.
        budget: training budget; ``None`` fields keep the trainer's defaults.
        device: ``"cpu"`` or ``"cuda"``.
        threads: torch threads while training (``None``: torch's default).
        stop_after_epochs: stop after this many epochs of this run as if interrupted
            (raises :class:`TrainingStopped`); for tests and time-sliced runs.
        verbose: show nnU-Net's own console output.
    """
    prepare_nnunet_import()
    out = fold_folder(workspace, plans, fold)
    marker = workspace.preprocessed / plans.dataset.name / \
        f"deepstationing_{plans.plans_identifier}.json"
    data = hashlib.sha1(marker.read_bytes()).hexdigest()[:12] if marker.exists() else None
    # a different budget or different training data (e.g. re-made channels) starts afresh
    want = {**budget.to_json(), "trainer": trainer_name(plans.config), "data": data}
    budget_file = out / "deepstationing_budget.json"
    if out.exists():
        have = json.loads(budget_file.read_text()) if budget_file.exists() else None
        if have != want:
            shutil.rmtree(out)
        elif (out / "checkpoint_final.pth").exists():
            return out
    out.mkdir(parents=True, exist_ok=True)
    budget_file.write_text(json.dumps(want))
    resume = (out / "checkpoint_latest.pth").exists()
    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with nnunet_environment(workspace, n_proc_da=0, threads=threads), sink, \
            warnings.catch_warnings():
        # nnU-Net's pseudo Dice divides 0 by 0 for classes absent from a validation batch
        warnings.simplefilter("ignore", RuntimeWarning)
        from batchgenerators.utilities.file_and_folder_operations import load_json

        from deepstationing.backbone.trainers.deepstationing_trainers import (
            DeepStationingTrainer,
            DeepStationingTrainerCPU,
        )

        cls = DeepStationingTrainerCPU if plans.config == "cpu" else DeepStationingTrainer
        pre = workspace.preprocessed / plans.dataset.name
        plan_dict = load_json(str(pre / f"{plans.plans_identifier}.json"))
        plan_dict["continue_training"] = resume
        dataset_json = load_json(str(pre / "dataset.json"))
        trainer = cls(plan_dict, plans.configuration, fold, dataset_json,
                      device=_torch_device(device))
        if budget.epochs is not None:
            trainer.num_epochs = int(budget.epochs)
        if budget.iterations is not None:
            trainer.num_iterations_per_epoch = int(budget.iterations)
        if budget.val_iterations is not None:
            trainer.num_val_iterations_per_epoch = int(budget.val_iterations)
        trainer.stop_after_epochs = stop_after_epochs
        if resume:
            trainer.load_checkpoint(str(out / "checkpoint_latest.pth"))
            print(f"  resuming from epoch {trainer.current_epoch} "
                  f"(checkpoint_latest.pth)", file=sys.stderr, flush=True)
        trainer.run_training()
    return out
