"""A trained model folder: every stage's nnU-Net output plus ``deepstationing_model.json``.

The folder is self-contained (copy it to another machine and ``deepstationing predict
--model DIR`` works there)::

    MODEL/
      deepstationing_model.json     per stage: its definition and, per fold, how it was trained
      anchor/                       nnU-Net result folder of the anchor-organ stage
        fold_0/checkpoint_final.pth plans.json dataset.json ...   (each fold planned apart)
      nonanchor/  single/
      stations-gt-all/  stations-ct/  search-pred-all/ ...   one folder per station stage

A stage's *definition* (:class:`~deepstationing.training.stages.StageDefinition`) is
stored once; each fold has its own record (budget, epochs done, training time, its grid,
and what it saw: hashes of its training cases' files and of its held-out CTs, see
:mod:`~deepstationing.training.provenance`), so a fold trained longer later simply updates
its record.

Examples
--------
>>> import tempfile
>>> from deepstationing.training.stages import station_stage
>>> model = ModelFolder.open_or_create(Path(tempfile.mkdtemp()) / "m")
>>> model.check(station_stage("gt:all"))     # nothing there yet: any definition fits
>>> model.stage_folders, model.has("stations-gt-all")
([], False)
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from deepstationing import __version__
from deepstationing.data.atomic import write_json_atomic
from deepstationing.data.locks import file_lock
from deepstationing.errors import InputError
from deepstationing.training.stages import (
    ORGAN_ROLES,
    STATION_ROLES,
    STATIONS,
    StageDefinition,
)

__all__ = ["ModelFolder", "MODEL_FILE", "HOW_TO_TRAIN", "FORMAT", "FOLD_PLAN_FILES"]

MODEL_FILE = "deepstationing_model.json"
#: Version of the model description's layout (3: plans per fold, and what each fold saw).
FORMAT = 3
#: nnU-Net's files of a fold, kept in its ``fold_K`` folder: each fold is planned (target
#: spacing, normalisation statistics) on its own training cases.
FOLD_PLAN_FILES = ("plans.json", "dataset.json", "dataset_fingerprint.json")
HOW_TO_TRAIN = ("train one with 'deepstationing train organs --cohort DIR --fold K' and "
                "'deepstationing train stations --cohort DIR --fold K', then pass "
                "--model WORKDIR/models/NAME")


class ModelFolder:
    """Read or build a model folder (see module docstring)."""

    def __init__(self, root: str | os.PathLike, data: dict):
        self.root = Path(root)
        self.data = data

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, root: str | os.PathLike) -> ModelFolder:
        """Open an existing model folder; :class:`InputError` with a hint if it is not one."""
        p = Path(root)
        if not p.exists():
            raise InputError(p, f"no such model folder; {HOW_TO_TRAIN}")
        if not (p / MODEL_FILE).exists():
            raise InputError(p, f"not a deepstationing model folder (no {MODEL_FILE}); "
                                f"{HOW_TO_TRAIN}")
        try:
            data = json.loads((p / MODEL_FILE).read_text())
        except ValueError as exc:
            raise InputError(p / MODEL_FILE, f"malformed model description ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, dict) else None
            raise InputError(p / MODEL_FILE, f"model description format {got!r}, this version "
                                             f"reads format {FORMAT}; retrain the model")
        model = cls(p, data)
        try:
            for folder in data["stages"]:
                model.stage(folder)
                for fold in data["stages"][folder]["folds"]:
                    int(fold)
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(p / MODEL_FILE, f"malformed model description ({exc})") from None
        return model

    @classmethod
    def open_or_create(cls, root: str | os.PathLike) -> ModelFolder:
        p = Path(root)
        if (p / MODEL_FILE).exists():
            return cls.open(p)
        return cls(p, {"format": FORMAT, "created_by": f"deepstationing {__version__}",
                       "stages": {}})

    def save(self) -> None:
        write_json_atomic(self.data, self.root / MODEL_FILE)

    # ---------------------------------------------------------------- stages
    @property
    def stage_folders(self) -> list[str]:
        """Stage folders, organ stages first (cascade order), then station stages by name."""
        names = list(self.data["stages"])
        organs = [r for r in ORGAN_ROLES if r in names]
        return organs + sorted(n for n in names if n not in organs)

    def stages_of_role(self, *roles: str) -> list[str]:
        """Folders of the stages with one of ``roles``."""
        return [f for f in self.stage_folders if self.data["stages"][f]["definition"]["role"]
                in roles]

    def has(self, folder: str, fold: int | None = None) -> bool:
        if folder not in self.data["stages"]:
            return False
        return fold is None or str(int(fold)) in self.data["stages"][folder]["folds"]

    def stage(self, folder: str) -> StageDefinition:
        try:
            return StageDefinition.from_json(self.data["stages"][folder]["definition"])
        except KeyError:
            raise InputError(self.root, f"model has no '{folder}' stage (it has: "
                                        f"{', '.join(self.stage_folders) or 'none'}); "
                                        f"{HOW_TO_TRAIN}") from None

    def folds(self, folder: str) -> list[int]:
        return sorted(int(f) for f in self.data["stages"].get(folder, {}).get("folds", {}))

    def fold_record(self, folder: str, fold: int) -> dict | None:
        return self.data["stages"].get(folder, {}).get("folds", {}).get(str(int(fold)))

    def stage_folder(self, folder: str) -> Path:
        return self.root / folder

    def checkpoint(self, folder: str, fold: int) -> Path:
        return self.stage_folder(folder) / f"fold_{int(fold)}" / "checkpoint_final.pth"

    def fold_spacing(self, folder: str, fold: int) -> tuple:
        """The voxel spacing ``(z, y, x)`` fold ``fold`` of a stage was trained at."""
        return tuple(float(v) for v in self.fold_record(folder, fold)["spacing"])

    def station_stage(self, which: str | None = None) -> str:
        """The folder of a station stage: ``which`` is a folder name, a channel spec, or
        ``None`` for the only one.

        >>> import tempfile
        >>> ModelFolder.open_or_create(tempfile.mkdtemp()).station_stage()
        Traceback (most recent call last):
        ...
        deepstationing.errors.InputError: ...: model has no station stage; ...
        """
        folders = self.stages_of_role(*STATION_ROLES)
        if not folders:
            raise InputError(self.root, f"model has no station stage; {HOW_TO_TRAIN}")
        if which is None:
            if len(folders) > 1:
                raise InputError(self.root, "model has several station stages ("
                                            f"{', '.join(folders)}); choose one with "
                                            "--stations")
            return folders[0]
        if which in folders:
            return which
        matches = [f for f in folders if str(self.stage(f).channels) == which]
        if len(matches) > 1:  # a plain station stage before a search run on the same channels
            matches = [f for f in matches if self.stage(f).role == STATIONS] or matches
        if len(matches) == 1:
            return matches[0]
        raise InputError(self.root, f"no station stage {which!r} in this model (it has: "
                                    f"{', '.join(folders)})")

    # ---------------------------------------------------------------- writing
    def check(self, definition: StageDefinition) -> None:
        """Refuse a definition that clashes with the stage already in its folder.

        Called before any training, so that a clash costs nothing.
        """
        if definition.folder not in self.data["stages"]:
            if definition.role in ORGAN_ROLES:
                self._check_organ_config(definition)
            return
        old = self.stage(definition.folder)
        diff = old.differences(definition)
        if diff:
            raise InputError(self.root, f"stage '{definition.folder}' of this model was "
                                        f"defined differently ({', '.join(diff)} differ: "
                                        f"config {old.config}, channels {old.channels}); "
                                        "train into another --model folder")

    def _check_organ_config(self, definition: StageDefinition) -> None:
        for folder in self.stages_of_role(*ORGAN_ROLES):
            other = self.stage(folder)
            if other.config != definition.config or other.cpu != definition.cpu:
                raise InputError(self.root, f"the organ stages of this model use config "
                                            f"{other.config}; a '{definition.folder}' stage "
                                            f"with config {definition.config} would not match "
                                            "them; train into another --model folder")

    def add_fold(self, definition: StageDefinition, fold: int, fold_output: Path,
                 record: dict) -> None:
        """Copy a trained fold (nnU-Net output folder ``.../fold_K``) into the model."""
        self.check(definition)
        dest = self.stage_folder(definition.folder)
        (dest / f"fold_{fold}").mkdir(parents=True, exist_ok=True)
        base = Path(fold_output).parent
        for fname in FOLD_PLAN_FILES:  # each fold was planned on its own training cases
            if (base / fname).exists():
                shutil.copyfile(base / fname, dest / f"fold_{fold}" / fname)
        _link_or_copy(Path(fold_output) / "checkpoint_final.pth",
                      dest / f"fold_{fold}" / "checkpoint_final.pth")
        for fname in ("deepstationing_runs.json", "progress.png", "search_weights.json"):
            if (Path(fold_output) / fname).exists():
                shutil.copyfile(Path(fold_output) / fname, dest / f"fold_{fold}" / fname)
        for snapshot in sorted(Path(fold_output).glob("checkpoint_epoch_*.pth")):
            _link_or_copy(snapshot, dest / f"fold_{fold}" / snapshot.name)  # learning curves
        with file_lock(self.root / MODEL_FILE):  # other jobs may add folds at the same time
            if (self.root / MODEL_FILE).exists():
                self.data = json.loads((self.root / MODEL_FILE).read_text())
            entry = self.data["stages"].setdefault(definition.folder,
                                                   {"definition": definition.to_json(),
                                                    "folds": {}})
            entry["folds"][str(int(fold))] = record
            self.save()


def _link_or_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
