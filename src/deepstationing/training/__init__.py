"""The training layer: stage definitions, model folders, fold training, out-of-fold channels.

Every network of the toolkit (anchor and non-anchor organs, the single organ network, the
station networks, the key-organ search) is a *stage* trained fold by fold through the same
routine:

* :mod:`.stages` — :class:`StageDefinition`: what a stage is (role, labels, channels,
  configuration, trainer, augmentation, CT window), apart from how a fold was trained;
* :mod:`.model` — :class:`ModelFolder`: the self-contained trained model (definitions +
  per-fold records + nnU-Net folders);
* :mod:`.options` — :class:`TrainOptions`: workspace, config, budget, device, workers;
* :mod:`.fold` — :func:`train_stage` (export, plan, train/extend/resume/skip, record) and
  :func:`ensure_folds`;
* :mod:`.oof` — :func:`oof_predictions`, out-of-fold channel predictions;
* :mod:`.cases` — :func:`cohort_cases`, the cases a stage trains on.

The organ cascade (:mod:`deepstationing.organs.cascade`) and the station network
(:mod:`deepstationing.stations.network`) build their definitions and cases and call these.
"""

from deepstationing.training.cases import cohort_cases, cohort_folds
from deepstationing.training.fold import ensure_folds, fold_is_trained, train_stage
from deepstationing.training.model import MODEL_FILE, ModelFolder
from deepstationing.training.oof import oof_predictions
from deepstationing.training.options import TrainBudget, TrainOptions
from deepstationing.training.stages import StageDefinition, organ_stage, station_stage

__all__ = ["cohort_cases", "cohort_folds", "ensure_folds", "fold_is_trained", "train_stage",
           "MODEL_FILE", "ModelFolder", "oof_predictions", "TrainBudget", "TrainOptions",
           "StageDefinition", "organ_stage", "station_stage"]
