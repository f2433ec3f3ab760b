"""The nnU-Net v2 backbone: the one place of the toolkit that talks to nnU-Net.

Everything nnU-Net-specific lives here — its raw/preprocessed/results folders and
environment variables (:mod:`.env`), dataset ids and ``dataset.json``
(:mod:`.datasets`), organ input channels (:mod:`.channels`), plans and the toolkit's
augmentation and CT-window entries in them (:mod:`.plans`), trainers (:mod:`.trainers`),
training a fold (:mod:`.train`) and prediction (:mod:`.predict`). The rest of the toolkit
speaks of cohorts, stages and folds (:mod:`deepstationing.training`,
:mod:`deepstationing.organs.cascade`, :mod:`deepstationing.stations.network`).

nnU-Net itself is imported lazily, inside functions, so importing this package is cheap.
"""

from deepstationing.backbone.channels import ChannelSpec, encode_channels, organ_channels
from deepstationing.backbone.datasets import DatasetRef, ExportCase, StageLabels, export_dataset
from deepstationing.backbone.env import DEFAULT_WORKDIR, Workspace, nnunet_environment
from deepstationing.backbone.plans import Augmentation, CpuConfig, PlansRef, plan_and_preprocess
from deepstationing.backbone.predict import StagePredictor, fold_spacing
from deepstationing.backbone.train import TrainBudget, checkpoint_epoch, train_fold

__all__ = [
    "ChannelSpec", "encode_channels", "organ_channels", "DatasetRef", "ExportCase",
    "StageLabels", "export_dataset", "DEFAULT_WORKDIR", "Workspace", "nnunet_environment",
    "Augmentation", "CpuConfig", "PlansRef", "plan_and_preprocess", "StagePredictor",
    "fold_spacing", "TrainBudget", "checkpoint_epoch", "train_fold",
]
