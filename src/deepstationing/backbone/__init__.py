"""The nnU-Net v2 backbone: the one place of the toolkit that talks to nnU-Net.

Everything nnU-Net-specific lives here — its raw/preprocessed/results folders and
environment variables (:mod:`.env`), dataset ids and ``dataset.json``
(:mod:`.datasets`), plans (:mod:`.plans`), trainers (:mod:`.trainers`), training
(:mod:`.train`), prediction (:mod:`.predict`) and the self-contained model folder
(:mod:`.model`). The rest of the toolkit speaks of cohorts, stages and folds
(:mod:`deepstationing.organs.cascade`, :mod:`deepstationing.stations.network`).

nnU-Net itself is imported lazily, inside functions, so importing this package is cheap.
"""

from deepstationing.backbone.channels import ChannelSpec, organ_channels
from deepstationing.backbone.datasets import DatasetRef, ExportCase, StageLabels, export_dataset
from deepstationing.backbone.env import DEFAULT_WORKDIR, Workspace, nnunet_environment
from deepstationing.backbone.model import MODEL_FILE, ModelFolder, StageInfo
from deepstationing.backbone.plans import CpuConfig, PlansRef, plan_and_preprocess
from deepstationing.backbone.predict import StagePredictor, from_orientation, to_orientation
from deepstationing.backbone.train import TrainBudget, checkpoint_epoch, train_fold

__all__ = [
    "ChannelSpec", "organ_channels", "DatasetRef", "ExportCase", "StageLabels",
    "export_dataset", "DEFAULT_WORKDIR", "Workspace", "nnunet_environment", "MODEL_FILE",
    "ModelFolder", "StageInfo", "CpuConfig", "PlansRef", "plan_and_preprocess",
    "StagePredictor", "from_orientation", "to_orientation", "TrainBudget",
    "checkpoint_epoch", "train_fold",
]
