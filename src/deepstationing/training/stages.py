"""Stage definitions: what a network stage *is*, apart from how long each fold was trained.

A :class:`StageDefinition` fixes everything that makes two trained folds comparable: the
stage's role in the pipeline, its target labels, its input channels (organ list, source,
encoding), the configuration and network, the trainer class and its settings, the
augmentation it may use, the CT window and the orientation its arrays are in. How a fold
was trained (budget, epochs done, time) is recorded per fold in the model folder
(:mod:`deepstationing.training.model`), so a larger budget on the same definition extends
the fold instead of clashing with it.

Roles and their folders in a model:

=============  =====================================  ==============================
role           input -> output                        folder
=============  =====================================  ==============================
``anchor``     CT -> 11 anchor organs                 ``anchor``
``nonanchor``  CT + anchor channels -> 11 non-anchors ``nonanchor``
``single``     CT -> 22 organs (one network)          ``single``
``stations``   CT + organ channels -> 12 stations     ``stations-<channels>``
``search``     the same, organ channels weighted by   ``search-<channels>``
               learnable softmax weights (paper Eq.
               4-5, :mod:`deepstationing.search`)
=============  =====================================  ==============================

One model folder holds one organ cascade and any number of station stages (one per channel
spec and trainer). A definition that differs from the one already in its folder (another
config, network, window, ...) is refused *before* any training, by
:meth:`deepstationing.training.model.ModelFolder.check`.

Examples
--------
>>> d = station_stage("gt:all", config="cpu")
>>> d.folder, d.trainer, d.channels.n_channels
('stations-gt-all', 'DeepStationingTrainerCPU', 23)
>>> StageDefinition.from_json(d.to_json()) == d
True
>>> organ_stage("anchor", config="full").folder
'anchor'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from deepstationing import schema
from deepstationing.backbone.channels import ChannelSpec
from deepstationing.backbone.datasets import StageLabels
from deepstationing.backbone.plans import (
    CONFIGS,
    CONFIGURATION,
    CPU_PLANS,
    FULL_PLANS,
    Augmentation,
    CpuConfig,
)
from deepstationing.backbone.train import TRAINER_CLASSES

__all__ = ["StageDefinition", "organ_stage", "station_stage", "ORGAN_ROLES", "STATION_ROLES",
           "ANCHOR", "NON_ANCHOR", "SINGLE", "STATIONS", "SEARCH", "ANCHOR_LABELS",
           "NON_ANCHOR_LABELS", "ALL_ORGAN_LABELS", "STATION_LABELS", "AUGMENTATION",
           "STATION_CT_WINDOW", "SEARCH_TRAINERS"]

ANCHOR, NON_ANCHOR, SINGLE, STATIONS, SEARCH = "anchor", "nonanchor", "single", "stations", \
    "search"
ORGAN_ROLES = (ANCHOR, NON_ANCHOR, SINGLE)
STATION_ROLES = (STATIONS, SEARCH)
ANCHOR_LABELS = StageLabels.from_keys(schema.ORGANS, schema.ANCHOR_ORGANS)
NON_ANCHOR_LABELS = StageLabels.from_keys(schema.ORGANS, schema.NON_ANCHOR_ORGANS)
ALL_ORGAN_LABELS = StageLabels.from_keys(schema.ORGANS, schema.ORGANS.keys)
STATION_LABELS = StageLabels.from_keys(schema.STATIONS, schema.STATIONS.keys)

#: The key-organ search's trainers, by configuration (:mod:`deepstationing.search`).
SEARCH_TRAINERS = {"cpu": "DeepStationingSearchTrainerCPU", "full": "DeepStationingSearchTrainer"}

#: Augmentation of every stage: no mirroring (left-right would swap lateralised labels;
#: superior-inferior and anterior-posterior flips cost accuracy at equal budget, see
#: ``docs/learning.md``), rotation within +-15 degrees.
AUGMENTATION = Augmentation(mirror=(), max_rotation_deg=15.0)
#: CT window of the station stages (``None`` would be nnU-Net's statistics of the target's
#: foreground, i.e. mediastinal fat: about [-150, 220] HU; see ``docs/learning.md``).
STATION_CT_WINDOW: tuple[float, float] | None = (-1000.0, 1000.0)


@dataclass(frozen=True)
class StageDefinition:
    """Everything that defines a stage (see module docstring); folds are recorded apart.

    Attributes:
        role: ``anchor``, ``nonanchor``, ``single``, ``stations`` or ``search``.
        labels: the target labels.
        channels: organ input channels after the CT (``none`` for CT only).
        config: ``cpu`` or ``full``.
        cpu: the CPU network and patch (``cpu`` config only).
        trainer: nnU-Net trainer class name.
        augmentation: mirror axes and rotation limit.
        ct_window: fixed HU window of the CT channel (``None``: nnU-Net's statistics).
        orientation: orientation code of the arrays the network sees (``LPS``).
        settings: trainer settings (e.g. the key-organ search schedule).
        spacing: the network's voxel spacing ``(z, y, x)`` in mm in ``orientation``
            (``None``: nnU-Net's rule on each fold's training cases, see
            :func:`deepstationing.backbone.inputs.target_spacing`). Organ stages may run on
            a finer grid than station stages.
    """

    role: str
    labels: StageLabels
    channels: ChannelSpec
    config: str = "cpu"
    cpu: CpuConfig | None = None
    trainer: str = ""
    augmentation: Augmentation = AUGMENTATION
    ct_window: tuple[float, float] | None = None
    orientation: str = "LPS"
    settings: dict = field(default_factory=dict, hash=False)
    spacing: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.config not in CONFIGS:
            raise ValueError(f"unknown config {self.config!r}; use one of {CONFIGS}")
        if self.config == "cpu" and self.cpu is None:
            object.__setattr__(self, "cpu", CpuConfig())
        if self.config != "cpu":
            object.__setattr__(self, "cpu", None)
        if not self.trainer:
            object.__setattr__(self, "trainer", TRAINER_CLASSES[self.config])
        if self.ct_window is not None:
            object.__setattr__(self, "ct_window", tuple(float(v) for v in self.ct_window))
        if self.spacing is not None:
            sp = tuple(float(v) for v in self.spacing)
            if len(sp) != 3 or min(sp) <= 0:
                raise ValueError(f"spacing needs three positive values (z, y, x mm), got "
                                 f"{self.spacing}")
            object.__setattr__(self, "spacing", sp)

    # ---------------------------------------------------------------- naming
    @property
    def folder(self) -> str:
        """The stage's folder in a model (and its name in progress lines)."""
        if self.role in ORGAN_ROLES:
            return self.role
        return f"{self.role}-{self.channels.tag}"

    @property
    def plans_identifier(self) -> str:
        return CPU_PLANS if self.config == "cpu" else FULL_PLANS

    @property
    def configuration(self) -> str:
        return CONFIGURATION

    def with_orientation(self, code: str) -> StageDefinition:
        return replace(self, orientation=code)

    # ---------------------------------------------------------------- persistence
    def to_json(self) -> dict:
        return json.loads(json.dumps({
            "role": self.role, "labels": self.labels.to_json(),
            "channels": self.channels.to_json(), "config": self.config,
            "cpu": self.cpu.to_json() if self.cpu else None, "trainer": self.trainer,
            "augmentation": self.augmentation.to_json(),
            "ct_window": list(self.ct_window) if self.ct_window else None,
            "orientation": self.orientation, "settings": self.settings,
            "spacing": list(self.spacing) if self.spacing else None,
            "plans_identifier": self.plans_identifier, "configuration": self.configuration,
        }))

    @classmethod
    def from_json(cls, obj: dict) -> StageDefinition:
        return cls(obj["role"], StageLabels.from_json(obj["labels"]),
                   ChannelSpec.from_json(obj["channels"]), obj["config"],
                   CpuConfig.from_json(obj["cpu"]) if obj.get("cpu") else None,
                   obj["trainer"], Augmentation.from_json(obj.get("augmentation", {})),
                   tuple(obj["ct_window"]) if obj.get("ct_window") else None,
                   obj.get("orientation", "LPS"), dict(obj.get("settings", {})),
                   tuple(obj["spacing"]) if obj.get("spacing") else None)

    def differences(self, other: StageDefinition) -> list[str]:
        """Names of the fields in which two definitions differ.

        >>> a = station_stage("gt:all"); b = station_stage("gt:all", config="full")
        >>> a.differences(b)
        ['config', 'cpu', 'trainer', 'plans_identifier']
        """
        x, y = self.to_json(), other.to_json()
        return [k for k in x if x[k] != y.get(k)]


def organ_stage(role: str, *, config: str = "cpu", cpu: CpuConfig | None = None,
                anchor_source: str = "pred",
                spacing: tuple[float, float, float] | None = None) -> StageDefinition:
    """The definition of an organ stage (``anchor``, ``nonanchor`` or ``single``).

    The non-anchor stage gets one channel per anchor organ, from ``anchor_source``
    (``pred``: out-of-fold anchor predictions; ``gt``: the ground truth).
    """
    labels, channels = {
        ANCHOR: (ANCHOR_LABELS, ChannelSpec("pred", ())),
        NON_ANCHOR: (NON_ANCHOR_LABELS, ChannelSpec(anchor_source, schema.ANCHOR_ORGANS)),
        SINGLE: (ALL_ORGAN_LABELS, ChannelSpec("pred", ())),
    }.get(role, (None, None))
    if labels is None:
        raise ValueError(f"unknown organ stage {role!r}; use anchor, nonanchor or single")
    return StageDefinition(role, labels, channels, config, cpu, spacing=spacing)


def station_stage(channels: ChannelSpec | str, *, config: str = "cpu",
                  cpu: CpuConfig | None = None, role: str = STATIONS, trainer: str = "",
                  settings: dict | None = None,
                  spacing: tuple[float, float, float] | None = None) -> StageDefinition:
    """The definition of a station stage with the given organ channels."""
    if role not in STATION_ROLES:
        raise ValueError(f"unknown station stage role {role!r}")
    if role == SEARCH and not trainer:
        trainer = SEARCH_TRAINERS[config]
    return StageDefinition(role, STATION_LABELS, ChannelSpec.parse(channels), config, cpu,
                           trainer, ct_window=STATION_CT_WINDOW, settings=dict(settings or {}),
                           spacing=spacing)
