"""nnU-Net trainer subclasses of the toolkit.

This folder is what ``nnUNet_extTrainer`` points at (see :mod:`deepstationing.backbone.env`),
so that nnU-Net finds our trainers by class name when it restores a model for inference.
It holds only :mod:`.deepstationing_trainers`: nnU-Net imports every module of this folder
under its bare name while searching.
"""

from deepstationing.backbone.trainers.deepstationing_trainers import (
    DeepStationingTrainer,
    DeepStationingTrainerCPU,
    TrainingStopped,
)

__all__ = ["DeepStationingTrainer", "DeepStationingTrainerCPU", "TrainingStopped"]
