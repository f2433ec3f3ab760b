"""Our nnU-Net trainers: nnU-Net's default training with a settable budget and a run log.

* :class:`DeepStationingTrainer` — nnU-Net's ``nnUNetTrainer`` (1000 epochs x 250
  iterations, poly learning rate, Dice + CE, deep supervision) with the optimiser of
  nnU-Net's own ``nnUNetTrainerAdam`` variant (AdamW from 1e-2) instead of its SGD, plus:
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

from deepstationing.backbone.budget import DEFAULT_BUDGETS
from deepstationing.data.atomic import write_json_atomic

__all__ = ["DeepStationingTrainer", "DeepStationingTrainerCPU", "DeepStationingSearchTrainer",
           "DeepStationingSearchTrainerCPU", "KeyOrganSearchMixin", "TrainingStopped",
           "RUNS_FILE"]

RUNS_FILE = "deepstationing_runs.json"


class TrainingStopped(RuntimeError):
    """Raised when a run stops at ``stop_after_epochs`` (latest checkpoint kept)."""


class DeepStationingTrainer(nnUNetTrainer):
    """nnU-Net's default trainer with a per-run budget, progress line and run log."""

    default_budget = DEFAULT_BUDGETS["full"]
    checkpoint_every = 10
    #: ``"adamw"``: AdamW (nnU-Net's ``nnUNetTrainerAdam``); ``"sgd"``: nnU-Net's default
    #: SGD (momentum 0.99, Nesterov). Both from 1e-2 with nnU-Net's poly learning-rate
    #: decay. AdamW because on the phantom SGD does not leave "background everywhere" for
    #: the stations: held-out DSC 3.8 % after 3000 iterations against AdamW's 57.4 %
    #: (``benchmarks/results/optimizer_{sgd,adamw}_3000.md``, ``docs/defaults.md``).
    optimizer_name = "adamw"
    learning_rate = 1e-2

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device=None):
        import torch

        super().__init__(plans, configuration, fold, dataset_json,
                         device if device is not None else torch.device("cuda"))
        # the plans may set them for their network (CpuConfig.learning_rate, .optimizer)
        self.initial_lr = float(self.toolkit_plans.get("learning_rate", self.learning_rate))
        self.optimizer_name = str(self.toolkit_plans.get("optimizer", self.optimizer_name))
        self.num_epochs = self.default_budget.epochs
        self.num_iterations_per_epoch = self.default_budget.iterations
        self.num_val_iterations_per_epoch = self.default_budget.val_iterations
        self.save_every = self.checkpoint_every
        self.stop_after_epochs: int | None = None
        self.snapshot_every: int | None = None  # keep checkpoint_epoch_NNNN.pth every N epochs
        self.seed: int | None = None  # seeds weights and (in-process) augmentation when set
        self.progress = None  # callable receiving one line per epoch (set by train_fold)
        self._run_start_epoch = 0
        self._run_started = 0.0

    def on_train_start(self):
        """Seed Python's, NumPy's and torch's generators (when :attr:`seed` is set) before
        nnU-Net builds the network and the data loaders.

        With augmentation in this process (0 workers, the CPU default) a seeded run on the
        CPU repeats exactly; augmentation workers draw their own seeds.
        """
        if self.seed is not None and not self.was_initialized:
            import random

            import numpy as np
            import torch

            random.seed(self.seed)
            np.random.seed(self.seed)
            torch.manual_seed(self.seed)
        super().on_train_start()

    def weight_parameters(self) -> list:
        """The parameters the weights' optimiser trains (all but the search's logits)."""
        return [p for name, p in self.network.named_parameters()
                if not name.endswith("channel_logits")]

    def configure_optimizers(self):
        """nnU-Net's SGD (momentum 0.99, Nesterov), or AdamW; nnU-Net's poly decay."""
        import torch
        from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

        if self.optimizer_name == "sgd":
            optimizer = torch.optim.SGD(self.weight_parameters(), self.initial_lr,
                                        weight_decay=self.weight_decay, momentum=0.99,
                                        nesterov=True)
        else:
            optimizer = torch.optim.AdamW(self.weight_parameters(), lr=self.initial_lr,
                                          weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

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
        done = int(self.current_epoch)
        if self.snapshot_every and done % int(self.snapshot_every) == 0:
            name = f"checkpoint_epoch_{done:04d}.pth"
            self._save_as_finished_epoch(os.path.join(self.output_folder, name))
        done_here = int(self.current_epoch) - self._run_start_epoch
        if (self.stop_after_epochs is not None and done_here >= self.stop_after_epochs
                and self.current_epoch < self.num_epochs):
            from batchgenerators.utilities.file_and_folder_operations import join

            self._save_as_finished_epoch(join(self.output_folder, "checkpoint_latest.pth"))
            self._close_run(finished=False)
            self._shutdown_loaders()
            raise TrainingStopped(f"stopped after {done_here} epoch(s) at epoch "
                                  f"{self.current_epoch}/{self.num_epochs}")

    def _save_as_finished_epoch(self, path: str) -> None:
        # on_epoch_end already advanced the counter; save with the finished epoch count
        self.current_epoch -= 1
        self.save_checkpoint(path)
        self.current_epoch += 1

    def epoch_note(self) -> str:
        """Extra text for the epoch line (subclasses, e.g. the key-organ search)."""
        return ""

    def _shutdown_loaders(self) -> None:
        for loader in (self.dataloader_train, self.dataloader_val):
            finish = getattr(loader, "_finish", None)
            if finish is not None:
                finish()


class DeepStationingTrainerCPU(DeepStationingTrainer):
    """The CPU configuration: a small budget, AdamW, a checkpoint every epoch.

    AdamW from 3e-3 (nnU-Net's poly decay) instead of nnU-Net's SGD: at CPU budgets of a
    few thousand iterations the small network's SGD run stays at "background everywhere"
    for the stations (held-out DSC 0 after 600 iterations; AdamW 48 % after 1000), see
    ``docs/learning.md``.
    """

    default_budget = DEFAULT_BUDGETS["cpu"]
    checkpoint_every = 1
    optimizer_name = "adamw"
    learning_rate = 3e-3


class KeyOrganSearchMixin:
    """The key-organ search (paper Eq. 4-5): softmax-weighted organ channels, DARTS schedule.

    The network is wrapped in :class:`deepstationing.backbone.weighting.ChannelWeighting`.
    Exactly how the alternation is done (see that module for the reasons):

    * the fold's training cases are split by patient into *W* (weights) and *A* (logits)
      halves (the patients come from ``dataset.json``'s ``deepstationing`` ``patients``, as
      the cohort manifest lists them; a case without one is its own patient);
      ``dataloader_train`` draws from *W*, ``dataloader_arch`` from *A*, both with the
      trainer's augmentation;
    * when a search starts, every training case is read once to count, per organ channel
      and half, the cases where the channel has a voxel; a channel without content in
      either half is left out of the softmax (weight 0, see the weighting module);
    * for the first ``freeze_epochs`` epochs (20 %, fixed when the search starts: resuming
      or extending keeps them) only weight steps are made;
    * afterwards each training iteration is a weight step on a *W* batch (nnU-Net's own
      ``train_step``; the logits are not in its optimiser), then a logit step on an *A*
      batch: the same loss, its gradient with respect to the logits only, one step of the
      logits' Adam optimiser (``logit_lr``);
    * the logits' data loader (its augmentation workers) is shut down with the others at
      the end of training, and also when a run stops early or fails.

    The organ weights after every epoch go to ``search_weights.json`` in the fold folder
    (written with each checkpoint, with the two halves, the content counts and which
    channels were searched; the logits themselves are part of the network weights, so a
    search model predicts like any other).
    """

    freeze_fraction = 0.2
    logit_lr = 1e-2
    search_file = "search_weights.json"

    @staticmethod
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                   num_output_channels, enable_deep_supervision=True):
        from deepstationing.backbone.weighting import ChannelWeighting

        network = nnUNetTrainer.build_network_architecture(
            plans_manager, configuration_manager, num_input_channels, num_output_channels,
            enable_deep_supervision)
        return ChannelWeighting(network, num_input_channels - 1)

    @property
    def weighting(self):
        """The :class:`ChannelWeighting` (under ``torch.compile`` or DDP wrappers, if any)."""
        net = self.network
        net = getattr(net, "module", net)
        return getattr(net, "_orig_mod", net)

    # ---------------------------------------------------------------- data
    def search_patients(self) -> dict[str, str]:
        """Case id to patient for the split (cases not listed are their own patient)."""
        return {str(k): str(v) for k, v in
                self.dataset_json.get("deepstationing", {}).get("patients", {}).items()}

    def do_split(self):
        from deepstationing.backbone.weighting import search_split

        tr_keys, val_keys = super().do_split()
        weights_half, logits_half = search_split(tr_keys, self.search_patients())
        self.search_halves = {"weights": weights_half, "logits": logits_half}
        return (logits_half if getattr(self, "_split_role", "") == "logits"
                else weights_half), val_keys

    def on_train_start(self):
        import numpy as np
        import torch

        from deepstationing.backbone.weighting import resumed_freeze_epochs

        state = self._read_search_state()
        done = int(self.current_epoch)  # > 0: resumed or extended from a checkpoint
        self.freeze_epochs = resumed_freeze_epochs(
            (state or {}).get("freeze_epochs") if done else None, done=done,
            num_epochs=int(self.num_epochs), fraction=self.freeze_fraction)
        self._split_role = "weights"
        super().on_train_start()
        self._split_role = "logits"
        try:
            self.dataloader_arch, spare = self.get_dataloaders()
        finally:
            self._split_role = "weights"
        _finish_loader(spare)
        weighting = self.weighting
        if done and state and state.get("content"):
            self.search_content = state["content"]
        else:
            self.search_content = self._count_content()
        if not done:  # the searched channels are fixed when a search starts
            searched = [bool(w and a) for w, a in zip(self.search_content["weights"],
                                                      self.search_content["logits"])]
            if any(searched):
                weighting.set_searched(searched)
            else:  # e.g. an organ cascade that found nothing: the network trains, no search
                self.print_to_log_file("key-organ search: no organ channel has a voxel in the "
                                       "training cases of both halves; nothing to search "
                                       "(every weight stays uniform)")
            self.print_to_log_file(
                f"key-organ search: halves of {len(self.search_halves['weights'])} (weights) "
                f"and {len(self.search_halves['logits'])} (logits) training cases; channels "
                f"left out (no voxel in a half): "
                f"{[i + 1 for i, s in enumerate(searched) if not s] or 'none'}")
        weighting.channel_logits.requires_grad_(False)  # weight steps leave them alone
        self.logit_optimizer = torch.optim.Adam([weighting.channel_logits],
                                                lr=float(self.logit_lr))
        if state and state.get("logit_optimizer") and done:
            self.logit_optimizer.load_state_dict(_optimizer_state_from_json(
                state["logit_optimizer"]))
        self.search_trajectory = [e for e in (state or {}).get("trajectory", [])
                                  if e["epoch"] <= done] if done else []
        if not self.search_trajectory:
            self.search_trajectory = [{"epoch": 0, "weights": np.round(
                weighting.weights().detach().cpu().numpy(), 6).tolist()}]

    def _count_content(self) -> dict[str, list[int]]:
        """Per half, per organ channel: the training cases where the channel has a voxel."""
        import numpy as np

        n = int(self.weighting.channel_logits.numel())
        counts = {}
        for role, keys in self.search_halves.items():
            dataset = self.dataset_class(self.preprocessed_dataset_folder, keys)
            found = np.zeros(n, int)
            for key in keys:
                data = dataset.load_case(key)[0]
                found += [bool(np.any(np.asarray(data[c + 1]) != 0)) for c in range(n)]
            counts[role] = found.tolist()
        return counts

    @property
    def nothing_to_search(self) -> bool:
        """No channel has content in both halves: no logit step is taken."""
        content = getattr(self, "search_content", None)  # None: before the search starts
        return content is not None and not any(
            w and a for w, a in zip(content["weights"], content["logits"]))

    def train_step(self, batch: dict) -> dict:
        out = super().train_step(batch)
        if self.current_epoch >= self.freeze_epochs and not self.nothing_to_search:
            self._logit_step(next(self.dataloader_arch))
        return out

    def _logit_step(self, batch: dict) -> None:
        import torch

        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        target = [t.to(self.device, non_blocking=True) for t in target] \
            if isinstance(target, list) else target.to(self.device, non_blocking=True)
        logits = self.weighting.channel_logits
        logits.requires_grad_(True)
        try:
            loss = self.loss(self.network(data), target)
            (grad,) = torch.autograd.grad(loss, [logits])  # the weights get no gradient
        finally:
            logits.requires_grad_(False)
        self.logit_optimizer.zero_grad(set_to_none=True)
        logits.grad = grad
        self.logit_optimizer.step()
        logits.grad = None

    # ---------------------------------------------------------------- loaders
    def run_training(self):
        try:
            super().run_training()
        finally:  # also when a run stops early, is interrupted or fails
            self._shutdown_loaders()

    def on_train_end(self):
        super().on_train_end()
        self._finish_arch_loader()

    def _shutdown_loaders(self) -> None:
        super()._shutdown_loaders()
        self._finish_arch_loader()

    def _finish_arch_loader(self) -> None:
        loader, self.dataloader_arch = getattr(self, "dataloader_arch", None), None
        _finish_loader(loader)

    # ---------------------------------------------------------------- record
    def on_epoch_end(self):
        import numpy as np

        weights = self.weighting.weights().detach().cpu().numpy()
        self.search_trajectory.append({"epoch": int(self.current_epoch) + 1,
                                       "weights": np.round(weights, 6).tolist()})
        super().on_epoch_end()

    def epoch_note(self) -> str:
        import numpy as np

        w = self.weighting.weights().detach().cpu().numpy()
        top = int(np.argmax(w))
        phase = "frozen" if self.current_epoch <= self.freeze_epochs else "searching"
        return f"; organ weights {phase}, top channel {top + 1} ({w[top]:.3f})"

    def _search_path(self) -> Path:
        return Path(self.output_folder) / self.search_file

    def _read_search_state(self) -> dict | None:
        p = self._search_path()
        return json.loads(p.read_text()) if p.exists() else None

    def save_checkpoint(self, filename: str) -> None:
        super().save_checkpoint(filename)
        if getattr(self, "logit_optimizer", None) is None:
            return
        names = self.dataset_json["channel_names"]
        organs = self.dataset_json.get("deepstationing", {}).get("channels", {}).get(
            "organs", [names[str(i)] for i in range(1, len(names))])
        write_json_atomic({
            "organs": organs, "freeze_epochs": int(self.freeze_epochs),
            "num_epochs": int(self.num_epochs), "logit_lr": float(self.logit_lr),
            "searched": [bool(v) and not self.nothing_to_search
                         for v in self.weighting.channel_searched.tolist()],
            "content": self.search_content, "halves": self.search_halves,
            "trajectory": self.search_trajectory,
            "logit_optimizer": _optimizer_state_to_json(self.logit_optimizer.state_dict()),
        }, self._search_path())


def _finish_loader(loader) -> None:
    """Stop a data loader's augmentation workers (nothing for an in-process loader)."""
    finish = getattr(loader, "_finish", None)
    if finish is not None:
        finish()


def _optimizer_state_to_json(state: dict) -> dict:
    out = {"param_groups": state["param_groups"], "state": {}}
    for key, value in state["state"].items():
        out["state"][str(key)] = {k: (v.tolist() if hasattr(v, "tolist") else v)
                                  for k, v in value.items()}
    return out


def _optimizer_state_from_json(obj: dict) -> dict:
    import torch

    state = {int(k): {name: torch.tensor(v) for name, v in value.items()}
             for k, value in obj["state"].items()}
    return {"param_groups": obj["param_groups"], "state": state}


class DeepStationingSearchTrainer(KeyOrganSearchMixin, DeepStationingTrainer):
    """The key-organ search with nnU-Net's full configuration (paper: 1000 epochs)."""


class DeepStationingSearchTrainerCPU(KeyOrganSearchMixin, DeepStationingTrainerCPU):
    """The key-organ search with the CPU configuration."""
