"""How to train: workspace, configuration, budget, device, workers, progress.

>>> opts = TrainOptions(workdir="runs", config="cpu", budget=TrainBudget(epochs=20))
>>> opts.workspace.models, opts.resolved_workers() == CPU_WORKERS
(PosixPath('runs/models'), True)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deepstationing.backbone.env import CPU_WORKERS, DEFAULT_WORKDIR, Workspace, default_workers
from deepstationing.backbone.plans import CpuConfig
from deepstationing.backbone.train import TrainBudget

__all__ = ["TrainOptions", "TrainBudget", "CPU_WORKERS"]

log = logging.getLogger("deepstationing.training")


@dataclass
class TrainOptions:
    """How to train (the same for every stage a command trains).

    Attributes:
        workdir: the workspace folder (nnU-Net folders, models, cached predictions).
        config: ``"cpu"`` (small network, for CPUs) or ``"full"`` (nnU-Net's defaults).
        cpu: the CPU network/patch (``None``: :class:`CpuConfig` defaults).
        budget: epochs/iterations (``None`` fields: the trainer's defaults, 1000 x 250
            for ``full``, 50 x 25 for ``cpu``). A fold trained before with fewer epochs is
            extended from its checkpoint; with more, it is kept as it is.
        device: ``"cpu"`` or ``"cuda"``.
        threads: torch threads (``None``: torch's default).
        workers: data-augmentation processes (``None``: see
            :func:`~deepstationing.backbone.env.default_workers`).
        stop_after_epochs: end each training run after this many epochs as if interrupted.
        retrain: start the requested folds again from scratch.
        snapshot_every: keep a checkpoint every this many epochs (learning curves).
        seed: seeds each fold's network initialisation and augmentation (``None``: unseeded).
        spacing: the voxel spacing ``(z, y, x)`` mm of the stages trained with these options
            (``None``: nnU-Net's rule on each fold's training cases).
        verbose: show nnU-Net's console output.
        progress: where progress lines go (``None``: the ``deepstationing.training`` log).
    """

    workdir: str | Path | Workspace = DEFAULT_WORKDIR
    config: str = "cpu"
    cpu: CpuConfig | None = None
    budget: TrainBudget = field(default_factory=TrainBudget)
    device: str = "cpu"
    threads: int | None = 1
    workers: int | None = None
    stop_after_epochs: int | None = None
    retrain: bool = False
    snapshot_every: int | None = None
    seed: int | None = 0
    spacing: tuple[float, float, float] | None = None
    verbose: bool = False
    progress: Callable[[str], None] | None = None

    @property
    def workspace(self) -> Workspace:
        w = self.workdir
        return w if isinstance(w, Workspace) else Workspace(w)

    def say(self, msg: str) -> None:
        if self.progress is not None:
            self.progress(msg)
        else:
            log.info(msg)

    def resolved_workers(self) -> int:
        return default_workers(self.device) if self.workers is None else int(self.workers)
