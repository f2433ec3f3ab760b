"""The nnU-Net workspace: its three folders and the environment it reads, set for the user.

nnU-Net v2 finds its data through environment variables (``nnUNet_raw``,
``nnUNet_preprocessed``, ``nnUNet_results``), its worker counts through others
(``nnUNet_def_n_proc``, ``nnUNet_n_proc_DA``, ``nnUNet_compile``) and external trainer
classes through ``nnUNet_extTrainer``. Users of this toolkit never set any of them: a
:class:`Workspace` holds the three folders under one ``--workdir`` and
:func:`nnunet_environment` sets the variables for the current process only, for the
duration of a ``with`` block, restoring what was there before.

Some of nnU-Net's settings are read once, when ``nnunetv2`` is first imported
(``nnUNet_def_n_proc``), so every module of :mod:`deepstationing.backbone` imports nnU-Net
lazily, *inside* a :func:`nnunet_environment` block. Nothing here changes the process's
environment outside such a block.

Layout of a workspace::

    WORKDIR/
      nnunet_raw/            exported nnU-Net raw datasets (DatasetXXX_<name>/)
      nnunet_preprocessed/   nnU-Net's preprocessed data and plans
      nnunet_results/        nnU-Net's training output folders
      models/<name>/         self-contained trained models (see deepstationing.training.model)
      predictions/           cached out-of-fold predictions used as training channels
      registry.json          dataset ids handed out in this workspace

Examples
--------
>>> ws = Workspace("/tmp/runs")
>>> ws.raw.name, ws.results.name
('nnunet_raw', 'nnunet_results')
>>> with nnunet_environment(ws, n_proc_da=0):
...     os.environ["nnUNet_raw"] == str(ws.raw)
True
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Workspace", "nnunet_environment", "TRAINER_FOLDER", "DEFAULT_WORKDIR",
           "default_workers", "CPU_WORKERS"]

#: Default ``--workdir`` of the command-line interface.
DEFAULT_WORKDIR = Path("runs")

#: Folder that ``nnUNet_extTrainer`` points at: it holds only our trainer module, so that
#: nnU-Net's trainer search imports nothing else from the package.
TRAINER_FOLDER = Path(__file__).resolve().parent / "trainers"

#: What nnU-Net reads when it is imported or trains, set inside :func:`nnunet_environment`:
#: one process for its planning helpers (the toolkit passes its own counts where it matters)
#: and no ``torch.compile`` (minutes of compilation; Triton is not on every machine).
_NNUNET_DEFAULTS = {
    "nnUNet_def_n_proc": "1",
    "nnUNet_compile": "f",
}

#: Augmentation workers for CPU training (see :func:`default_workers`).
CPU_WORKERS = 0


def default_workers(device: str) -> int:
    """Data-augmentation worker processes for training on ``device``.

    On a GPU, what nnU-Net itself would use on this machine (its per-host table, 12 by
    default), bounded by the cores left beside the training process: a GPU otherwise waits
    for augmentation (measured on an H200: 0.34 s per iteration with augmentation in the
    training process, 0.03 s with 12 workers). On the CPU, augmentation competes with the
    network for the same cores: :data:`CPU_WORKERS` (measured, see ``docs/learning.md``).

    >>> default_workers("cpu") == CPU_WORKERS
    True
    """
    if device != "cuda":
        return CPU_WORKERS
    saved = os.environ.pop("nnUNet_n_proc_DA", None)  # ask nnU-Net's own table
    try:
        from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

        wanted = int(get_allowed_n_proc_DA())
    finally:
        if saved is not None:
            os.environ["nnUNet_n_proc_DA"] = saved
    return max(1, min(wanted, (os.cpu_count() or 2) - 1))


@dataclass(frozen=True)
class Workspace:
    """The folder tree of one ``--workdir``; created on first use.

    >>> Workspace("runs").models
    PosixPath('runs/models')
    """

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    @property
    def raw(self) -> Path:
        return self.root / "nnunet_raw"

    @property
    def preprocessed(self) -> Path:
        return self.root / "nnunet_preprocessed"

    @property
    def results(self) -> Path:
        return self.root / "nnunet_results"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def registry(self) -> Path:
        return self.root / "registry.json"

    def create(self) -> Workspace:
        for p in (self.raw, self.preprocessed, self.results, self.models, self.predictions):
            p.mkdir(parents=True, exist_ok=True)
        return self


@contextlib.contextmanager
def nnunet_environment(workspace: Workspace | None = None, *, n_proc_da: int = 0,
                       threads: int | None = 1) -> Iterator[None]:
    """Set nnU-Net's environment for this process inside the block, then restore it.

    Args:
        workspace: the folders to point ``nnUNet_raw/preprocessed/results`` at (``None``:
            leave them unset, enough for inference from a model folder).
        n_proc_da: data-augmentation worker processes (``nnUNet_n_proc_DA``). 0 runs
            augmentation in the training process, right for 1-2 cores; planning and
            preprocessing need at least 1 and get ``max(1, n_proc_da)``.
        threads: torch intra-op threads inside the block (``None``: leave as is).
    """
    values = {**_NNUNET_DEFAULTS, "nnUNet_n_proc_DA": str(int(n_proc_da)),
              "nnUNet_extTrainer": str(TRAINER_FOLDER)}
    if workspace is not None:
        workspace.create()
        values.update(nnUNet_raw=str(workspace.raw.resolve()),
                      nnUNet_preprocessed=str(workspace.preprocessed.resolve()),
                      nnUNet_results=str(workspace.results.resolve()))
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    old_threads = None
    if threads is not None:
        import torch

        old_threads = torch.get_num_threads()
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if old_threads is not None:
            import torch

            torch.set_num_threads(old_threads)
