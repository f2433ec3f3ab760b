"""Train one fold of one planned dataset with our nnU-Net trainer: start, resume or extend.

What happens when :func:`train_fold` is called for a fold whose nnU-Net output folder
already holds something:

* ``checkpoint_final.pth`` from a run of at least the requested epochs (same trainer,
  iterations and training data): nothing to do;
* ``checkpoint_final.pth`` from a shorter run: training is *extended* from it to the new
  number of epochs (nnU-Net's poly learning rate then follows the new total);
* ``checkpoint_latest.pth`` (an interrupted run): training continues from it;
* a run with another trainer, another number of iterations per epoch or other training
  data (e.g. organ channels re-made by a retrained earlier stage), or ``restart=True``:
  the folder is cleared and training starts from scratch.

Augmentation runs in ``workers`` processes (``nnUNet_n_proc_DA``; see
:func:`deepstationing.backbone.env.default_workers`). Progress lines go to ``progress``.

Examples
--------
>>> run = {"trainer": "T", "iterations": 25, "data": "x", "epochs": 10}
>>> fold_plan(run, {**run, "epochs": 20}, final=True, latest=False)
'extend'
>>> fold_plan(run, {**run, "epochs": 10}, final=True, latest=False)
'done'
>>> fold_plan(run, {**run, "iterations": 50}, final=True, latest=False)
'restart'
>>> fold_plan(None, run, final=False, latest=False)
'start'
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

from deepstationing.backbone.budget import DEFAULT_BUDGETS, TrainBudget
from deepstationing.backbone.env import Workspace, nnunet_environment
from deepstationing.backbone.plans import PlansRef
from deepstationing.data.atomic import write_json_atomic

__all__ = ["TrainBudget", "train_fold", "fold_folder", "checkpoint_epoch", "fold_plan",
           "trainer_class", "TRAINER_CLASSES", "DEFAULT_BUDGETS", "ALL_CASES"]

#: nnU-Net's fold that trains on every case of a dataset (the toolkit exports one dataset
#: per fold holding only that fold's training cases).
ALL_CASES = "all"

#: Trainer class names of the toolkit, by configuration (the search trainers are added by
#: the stage definition, see :mod:`deepstationing.training.stages`).
TRAINER_CLASSES = {"cpu": "DeepStationingTrainerCPU", "full": "DeepStationingTrainer"}


def fold_folder(workspace: Workspace, plans: PlansRef, fold: int | str, trainer: str) -> Path:
    """nnU-Net's output folder of one fold."""
    return (workspace.results / plans.dataset.name /
            f"{trainer}__{plans.plans_identifier}__{plans.configuration}" / f"fold_{fold}")


def checkpoint_epoch(path: str | Path) -> int:
    """Number of epochs completed when a checkpoint was written."""
    from deepstationing.backbone.checkpoint import load_checkpoint_safely

    return int(load_checkpoint_safely(path)["current_epoch"])


def fold_plan(have: dict | None, want: dict, *, final: bool, latest: bool) -> str:
    """What to do with a fold folder: ``done``, ``extend``, ``resume``, ``start``/``restart``.

    ``have`` is the record of the run in the folder (``None``: none), ``want`` the requested
    one (``trainer``, ``iterations``, ``data``, ``settings``, ``epochs``); ``final`` and
    ``latest`` say whether the folder holds a final / an intermediate checkpoint.
    """
    if have is None:
        return "start"
    if any(have.get(k) != want.get(k) for k in ("trainer", "iterations", "data", "settings")):
        return "restart"
    if final:
        return "done" if int(have["epochs"]) >= int(want["epochs"]) else "extend"
    return "resume" if latest else "restart"


def _torch_device(device: str):
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        from deepstationing.errors import DeepStationingError

        raise DeepStationingError("--device cuda requested but no CUDA GPU is available")
    return torch.device(device)


def trainer_class(name: str, source: str | Path | None = None):
    """The toolkit's trainer class called ``name`` (call inside ``nnunet_environment``).

    Only the toolkit's own trainers are looked up (nnU-Net's search would import any class
    of that name from its packages): a checkpoint naming another one is refused.
    """
    from deepstationing.backbone.trainers import deepstationing_trainers as mod
    from deepstationing.errors import InputError

    cls = getattr(mod, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, mod.DeepStationingTrainer)):
        raise InputError(source, f"unknown trainer {name!r} (not one of the toolkit's)")
    return cls


def train_fold(workspace: Workspace, plans: PlansRef, fold: int | str, *, trainer: str,
               budget: TrainBudget, device: str = "cpu",
               threads: int | None = 1, workers: int = 0,
               stop_after_epochs: int | None = None, restart: bool = False,
               trainer_settings: dict | None = None, snapshot_every: int | None = None,
               seed: int | None = 0, progress: Callable[[str], None] | None = None,
               verbose: bool = False) -> Path:
    """Train, extend, resume or skip fold ``fold``; return the fold's nnU-Net output folder.

    Args:
        workspace: where the preprocessed data and results live.
        plans: the planned dataset (from
            :func:`~deepstationing.backbone.plans.plan_and_preprocess`).
        fold: nnU-Net's fold (``"all"``: train on every case of the dataset, as the
            toolkit's per-fold datasets do; an integer: its ``splits_final.json`` entry).
        trainer: trainer class name (see :mod:`deepstationing.backbone.trainers`).
        budget: training budget, every field set (see :meth:`TrainBudget.resolved`).
        device: ``"cpu"`` or ``"cuda"``.
        threads: torch threads while training (``None``: torch's default).
        workers: data-augmentation worker processes.
        stop_after_epochs: stop after this many epochs of this run as if interrupted
            (raises ``TrainingStopped``); for tests and time-sliced runs.
        restart: discard what the folder holds and start again.
        trainer_settings: extra attributes set on the trainer before training (e.g. the
            key-organ search schedule); part of what a run is, like the budget.
        snapshot_every: also keep ``checkpoint_epoch_NNNN.pth`` every this many epochs
            (learning curves); not part of what a run is.
        seed: seeds the network's initialisation and the augmentation of a new run
            (``None``: unseeded); a CPU run without augmentation workers then repeats exactly.
        progress: receives one line per epoch and one when resuming.
        verbose: show nnU-Net's own console output.
    """
    say = progress or (lambda msg: None)
    out = fold_folder(workspace, plans, fold, trainer)
    data = _data_stamp(workspace, plans)
    with nnunet_environment(workspace, n_proc_da=workers, threads=threads), \
            warnings.catch_warnings():
        # nnU-Net's pseudo Dice divides 0 by 0 for classes absent from a validation batch
        warnings.simplefilter("ignore", RuntimeWarning)
        cls = trainer_class(trainer)
        epochs, iterations = int(budget.epochs), int(budget.iterations)
        val_iterations = int(budget.val_iterations)
        want = {"trainer": trainer, "iterations": iterations, "data": data, "epochs": epochs,
                "settings": trainer_settings or {}}
        plan = _prepare_fold_folder(out, want, restart)
        if plan == "done":
            return out
        sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
        with sink:
            from batchgenerators.utilities.file_and_folder_operations import load_json

            pre = workspace.preprocessed / plans.dataset.name
            plan_dict = load_json(str(pre / f"{plans.plans_identifier}.json"))
            plan_dict["continue_training"] = plan in ("resume", "extend")
            dataset_json = load_json(str(pre / "dataset.json"))
            tr = cls(plan_dict, plans.configuration, fold, dataset_json,
                     device=_torch_device(device))
            tr.num_epochs = epochs
            tr.num_iterations_per_epoch = iterations
            tr.num_val_iterations_per_epoch = val_iterations
            for key, value in (trainer_settings or {}).items():
                setattr(tr, key, value)
            tr.stop_after_epochs = stop_after_epochs
            tr.snapshot_every = snapshot_every
            tr.seed = seed
            tr.progress = say
            if plan in ("resume", "extend"):
                tr.load_checkpoint(str(out / "checkpoint_latest.pth"))
                verb = "resuming" if plan == "resume" else "extending"
                say(f"  {verb} from epoch {tr.current_epoch} to {epochs}")
            tr.run_training()
    return out


def _data_stamp(workspace: Workspace, plans: PlansRef) -> str | None:
    """A hash of the preprocessed data's marker file (``None`` when there is none)."""
    marker = workspace.preprocessed / plans.dataset.name / \
        f"deepstationing_{plans.plans_identifier}.json"
    return hashlib.sha1(marker.read_bytes()).hexdigest()[:12] if marker.exists() else None


def _prepare_fold_folder(out: Path, want: dict, restart: bool) -> str:
    """Decide what to do with the fold folder (:func:`fold_plan`) and get it ready for it.

    Returns the plan; on ``"done"`` nothing is touched. Otherwise the folder exists
    (emptied on ``"restart"``), an extension's final checkpoint became its latest one, and
    ``want`` is recorded in ``deepstationing_budget.json``.
    """
    record = out / "deepstationing_budget.json"
    have = json.loads(record.read_text()) if record.exists() else None
    final, latest = out / "checkpoint_final.pth", out / "checkpoint_latest.pth"
    plan = "restart" if restart and out.exists() else fold_plan(
        have, want, final=final.exists(), latest=latest.exists())
    if plan == "done":
        return plan
    if plan == "restart" and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if plan == "extend":
        # the final state becomes the latest one: an interrupted extension resumes from
        # it (or from a later checkpoint) and never mistakes it for a finished run
        final.replace(latest)
    write_json_atomic(want, record)
    return plan
