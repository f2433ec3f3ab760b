"""A trained model folder: every stage's nnU-Net output plus ``deepstationing_model.json``.

The folder is self-contained (copy it to another machine and ``deepstationing predict
--model DIR`` works there)::

    MODEL/
      deepstationing_model.json     stages, their labels, input channels, config, folds
      anchor/                       nnU-Net result folder of the anchor-organ stage
        plans.json  dataset.json  fold_0/checkpoint_final.pth ...
      nonanchor/  single/  stations/

Stage names: ``anchor`` (CT -> 11 anchor organs), ``nonanchor`` (CT + anchor channels ->
11 non-anchor organs), ``single`` (CT -> all 22 organs, the non-stratified comparison) and
``stations`` (CT + organ channels -> 12 stations).

Examples
--------
>>> # doctest: +SKIP
>>> model = ModelFolder.open("runs/models/phantom-cpu")
>>> model.stage("stations").channels
ChannelSpec(source='pred', organs=(...))
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from deepstationing import __version__
from deepstationing.backbone.channels import ChannelSpec
from deepstationing.backbone.datasets import StageLabels
from deepstationing.data.cohort import write_json_atomic
from deepstationing.errors import InputError

__all__ = ["ModelFolder", "StageInfo", "MODEL_FILE", "STAGE_NAMES", "HOW_TO_TRAIN"]

MODEL_FILE = "deepstationing_model.json"
STAGE_NAMES = ("anchor", "nonanchor", "single", "stations")
HOW_TO_TRAIN = ("train one with 'deepstationing train organs --cohort DIR --fold K' and "
                "'deepstationing train stations --cohort DIR --fold K', then pass "
                "--model WORKDIR/models/NAME")


@dataclass
class StageInfo:
    """One stage of a model (everything predict needs besides the weights)."""

    name: str
    labels: StageLabels
    channels: ChannelSpec
    config: str
    trainer: str
    plans_identifier: str
    configuration: str
    folds: list[int] = field(default_factory=list)
    orientation: str = "LPS"
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"labels": self.labels.to_json(), "channels": self.channels.to_json(),
                "config": self.config, "trainer": self.trainer,
                "plans_identifier": self.plans_identifier, "configuration": self.configuration,
                "folds": sorted(self.folds), "orientation": self.orientation, **self.extra}

    @classmethod
    def from_json(cls, name: str, obj: dict) -> StageInfo:
        known = {"labels", "channels", "config", "trainer", "plans_identifier",
                 "configuration", "folds", "orientation"}
        return cls(name, StageLabels.from_json(obj["labels"]),
                   ChannelSpec.from_json(obj["channels"]), obj["config"], obj["trainer"],
                   obj["plans_identifier"], obj["configuration"], list(obj["folds"]),
                   obj.get("orientation", "LPS"),
                   {k: v for k, v in obj.items() if k not in known})

    def same_definition(self, other: StageInfo) -> bool:
        a, b = (json.loads(json.dumps(s.to_json())) for s in (self, other))  # tuples -> lists
        for d in (a, b):
            d.pop("folds")
        return a == b


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
            model = cls(p, data)
            for name in data["stages"]:
                model.stage(name)
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(p / MODEL_FILE, f"malformed model description ({exc})") from None
        return model

    @classmethod
    def open_or_create(cls, root: str | os.PathLike) -> ModelFolder:
        p = Path(root)
        if (p / MODEL_FILE).exists():
            return cls.open(p)
        return cls(p, {"format": 1, "created_by": f"deepstationing {__version__}", "stages": {}})

    def save(self) -> None:
        write_json_atomic(self.data, self.root / MODEL_FILE)

    # ---------------------------------------------------------------- stages
    @property
    def stage_names(self) -> list[str]:
        return [s for s in STAGE_NAMES if s in self.data["stages"]]

    def has(self, name: str, fold: int | None = None) -> bool:
        if name not in self.data["stages"]:
            return False
        return fold is None or fold in self.data["stages"][name]["folds"]

    def stage(self, name: str) -> StageInfo:
        try:
            return StageInfo.from_json(name, self.data["stages"][name])
        except KeyError:
            raise InputError(self.root, f"model has no '{name}' stage (it has: "
                                        f"{', '.join(self.stage_names) or 'none'}); "
                                        f"{HOW_TO_TRAIN}") from None

    def stage_folder(self, name: str) -> Path:
        return self.root / name

    def add_fold(self, info: StageInfo, fold: int, fold_output: Path) -> None:
        """Copy a trained fold (nnU-Net output folder ``.../fold_K``) into the model."""
        existing = self.data["stages"].get(info.name)
        if existing is not None:
            old = StageInfo.from_json(info.name, existing)
            if not old.same_definition(info):
                raise InputError(self.root, f"stage '{info.name}' of this model was trained "
                                            f"differently (channels {old.channels}, config "
                                            f"{old.config}); use another --model folder")
            info.folds = sorted(set(old.folds) | {fold})
        else:
            info.folds = [fold]
        dest = self.stage_folder(info.name)
        (dest / f"fold_{fold}").mkdir(parents=True, exist_ok=True)
        base = Path(fold_output).parent
        for fname in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
            if (base / fname).exists():
                shutil.copyfile(base / fname, dest / fname)
        _link_or_copy(Path(fold_output) / "checkpoint_final.pth",
                      dest / f"fold_{fold}" / "checkpoint_final.pth")
        for fname in ("deepstationing_runs.json", "progress.png"):
            if (Path(fold_output) / fname).exists():
                shutil.copyfile(Path(fold_output) / fname, dest / f"fold_{fold}" / fname)
        self.data["stages"][info.name] = info.to_json()
        self.save()

    def checkpoint(self, name: str, fold: int) -> Path:
        return self.stage_folder(name) / f"fold_{fold}" / "checkpoint_final.pth"


def _link_or_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
