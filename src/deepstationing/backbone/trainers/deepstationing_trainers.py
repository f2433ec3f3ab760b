"""Our nnU-Net trainers: nnU-Net's default training with a settable budget and a run log.

* :class:`DeepStationingTrainer` — nnU-Net's ``nnUNetTrainer`` (1000 epochs x 250
  iterations, SGD, poly learning rate, Dice + CE, deep supervision) unchanged, plus:
  a budget set per run (``num_epochs``, ``num_iterations_per_epoch``), a checkpoint every
  10 epochs instead of 50 (so an interrupted GPU run loses less), a one-line progress
  report per epoch on stderr, and ``deepstationing_runs.json`` in the fold folder that
  records from which epoch each run started (so resuming is visible and testable).
  Checkpoints are written atomically (temporary file, then rename).
* :class:`DeepStationingTrainerCPU` — the same with a small default budget
  (50 epochs x 25 iterations, 5 validation iterations) and a checkpoint every epoch.

Anatomy has a handedness, so both trainers change nnU-Net's spatial augmentation:

* **mirroring** only along the axes listed in the plans (``plans["deepstationing"]
  ["mirror_axes"]``, written by :func:`deepstationing.backbone.plans.plan_and_preprocess`
  from the stage definition; none when absent). nnU-Net's default mirrors every training
  patch along all three axes, which teaches a network that lung_r and lung_l, 4R and 4L
  are interchangeable; the same list is what prediction may mirror at test time
  (``inference_allowed_mirroring_axes`` in the checkpoint).
* **rotation** limited to +-``max_rotation_deg`` (default 15 degrees). nnU-Net rotates
  anisotropic patches (e.g. 5 mm slices) by up to +-180 degrees in-plane, and a 180 degree
  turn maps the patient's left onto the right just as a mirror does.

``stop_after_epochs`` ends a run early *as an interruption would*: the latest checkpoint
is on disk and no final checkpoint is written, so the next run continues from it.

This module is imported by nnU-Net under its bare name (``deepstationing_trainers``) when it
searches ``nnUNet_extTrainer``; it must only import absolute packages.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from deepstationing.backbone.train import DEFAULT_BUDGETS
from deepstationing.data.atomic import write_json_atomic

__all__ = ["DeepStationingTrainer", "DeepStationingTrainerCPU", "TrainingStopped", "RUNS_FILE"]

RUNS_FILE = "deepstationing_runs.json"


class TrainingStopped(RuntimeError):
    """Raised when a run stops at ``stop_after_epochs`` (latest checkpoint kept)."""


class DeepStationingTrainer(nnUNetTrainer):
    """nnU-Net's default trainer with a per-run budget, progress line and run log."""

    default_budget = DEFAULT_BUDGETS["full"]
    checkpoint_every = 10

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device=None):
        import torch

        super().__init__(plans, configuration, fold, dataset_json,
                         device if device is not None else torch.device("cuda"))
        self.num_epochs = self.default_budget.epochs
        self.num_iterations_per_epoch = self.default_budget.iterations
        self.num_val_iterations_per_epoch = self.default_budget.val_iterations
        self.save_every = self.checkpoint_every
        self.stop_after_epochs: int | None = None
        self.progress = None  # callable receiving one line per epoch (set by train_fold)
        self._run_start_epoch = 0
        self._run_started = 0.0

    # ---------------------------------------------------------------- augmentation
    @property
    def toolkit_plans(self) -> dict:
        """The toolkit's own entries of the plans (``plans["deepstationing"]``)."""
        return self.plans_manager.plans.get("deepstationing", {})

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        """nnU-Net's choice with the toolkit's mirror axes and rotation limit."""
        base = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        rotation, dummy_2d = base[0], base[1]
        limit = math.radians(float(self.toolkit_plans.get("max_rotation_deg", 15.0)))
        rotation = (max(rotation[0], -limit), min(rotation[1], limit))
        mirror_axes = tuple(int(a) for a in self.toolkit_plans.get("mirror_axes", ()))
        patch_size = self.configuration_manager.patch_size
        from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size

        initial = get_patch_size(patch_size[-3:], rotation, rotation, rotation, (0.85, 1.25))
        if dummy_2d:
            initial[0] = patch_size[0]
        self.inference_allowed_mirroring_axes = mirror_axes or None
        return rotation, dummy_2d, initial, mirror_axes or None

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, written to a temporary name and renamed into place.

        A process killed while saving then leaves the previous checkpoint intact, so the
        next run can always resume from it.
        """
        tmp = f"{filename}.tmp"
        super().save_checkpoint(tmp)
        if os.path.exists(tmp):
            os.replace(tmp, filename)

    # ---------------------------------------------------------------- run log
    def _runs_path(self) -> Path:
        return Path(self.output_folder) / RUNS_FILE

    def _read_runs(self) -> list[dict]:
        p = self._runs_path()
        return json.loads(p.read_text()) if p.exists() else []

    def _write_runs(self, runs: list[dict]) -> None:
        write_json_atomic(runs, self._runs_path())

    def run_training(self):
        self._run_start_epoch = int(self.current_epoch)
        self._run_started = time.time()
        runs = self._read_runs()
        runs.append({"start_epoch": self._run_start_epoch, "end_epoch": None,
                     "num_epochs": int(self.num_epochs),
                     "iterations": int(self.num_iterations_per_epoch), "finished": False})
        self._write_runs(runs)
        super().run_training()
        self._close_run(finished=True)

    def _close_run(self, finished: bool) -> None:
        runs = self._read_runs()
        if runs:
            runs[-1].update(end_epoch=int(self.current_epoch), finished=finished,
                            seconds=round(time.time() - self._run_started, 1))
            self._write_runs(runs)

    def on_epoch_end(self):
        epoch = int(self.current_epoch)
        super().on_epoch_end()
        if self.progress is not None:
            log = self.logger.get_value
            took = log("epoch_end_timestamps", step=-1) - log("epoch_start_timestamps", step=-1)
            dice = log("ema_fg_dice", step=-1)
            self.progress(f"  epoch {epoch + 1}/{self.num_epochs}: train loss "
                          f"{log('train_losses', step=-1):.3f}, val loss "
                          f"{log('val_losses', step=-1):.3f}, pseudo Dice {dice:.3f} "
                          f"({took:.1f} s){self.epoch_note()}")
        done_here = int(self.current_epoch) - self._run_start_epoch
        if (self.stop_after_epochs is not None and done_here >= self.stop_after_epochs
                and self.current_epoch < self.num_epochs):
            from batchgenerators.utilities.file_and_folder_operations import join

            latest = join(self.output_folder, "checkpoint_latest.pth")
            # on_epoch_end already advanced the counter; save with the finished epoch count
            self.current_epoch -= 1
            self.save_checkpoint(latest)
            self.current_epoch += 1
            self._close_run(finished=False)
            self._shutdown_loaders()
            raise TrainingStopped(f"stopped after {done_here} epoch(s) at epoch "
                                  f"{self.current_epoch}/{self.num_epochs}")

    def epoch_note(self) -> str:
        """Extra text for the epoch line (subclasses, e.g. the key-organ search)."""
        return ""

    def _shutdown_loaders(self) -> None:
        for loader in (self.dataloader_train, self.dataloader_val):
            finish = getattr(loader, "_finish", None)
            if finish is not None:
                finish()


class DeepStationingTrainerCPU(DeepStationingTrainer):
    """Small budget for the CPU configuration; checkpoint every epoch."""

    default_budget = DEFAULT_BUDGETS["cpu"]
    checkpoint_every = 1
