"""Export cases to an nnU-Net raw dataset; hand out dataset ids within a workspace.

One nnU-Net dataset per *stage and input* (e.g. anchor organs from CT; stations from CT +
22 predicted organs). Files follow nnU-Net's raw layout::

    nnunet_raw/Dataset601_<name>/
      dataset.json                channel_names, labels (consecutive 0..N), numTraining
      imagesTr/<case>_0000.nii.gz CT (HU)
      imagesTr/<case>_0001.nii.gz first organ channel (uint8 0/1), ...
      labelsTr/<case>.nii.gz      targets, relabelled to 0..N
      deepstationing_source.json  what the export was made from (to skip re-exports)

nnU-Net requires consecutive labels, so a stage's targets are relabelled: e.g. the 11
anchor organs (schema ids 2-7, 18-22) become 1..11; :class:`StageLabels` holds the map
both ways.

Examples
--------
>>> lab = StageLabels.from_keys(schema.ORGANS, ["heart", "trachea"])
>>> lab.dataset_labels()
{'background': 0, 'heart': 1, 'trachea': 2}
>>> lab.to_local(np.array([5, 22, 1]))
array([1, 2, 0], dtype=uint8)
>>> lab.to_schema(np.array([2, 1]))
array([22,  5], dtype=uint8)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepstationing import schema
from deepstationing.backbone.channels import ChannelSpec, encode_channels
from deepstationing.backbone.env import Workspace
from deepstationing.backbone.inputs import labels_on_grid, stage_grid
from deepstationing.data.cohort import write_json_atomic
from deepstationing.data.image import check_same_geometry, read_image, write_image
from deepstationing.data.locks import file_lock

__all__ = ["StageLabels", "ExportCase", "DatasetRef", "export_dataset", "dataset_id_for",
           "FIRST_DATASET_ID"]

#: First dataset id handed out in a workspace (clear of nnU-Net's public task ids).
FIRST_DATASET_ID = 601


@dataclass(frozen=True)
class StageLabels:
    """The target labels of one stage: schema label set + the keys it predicts, in order."""

    kind: str  # "organs" | "stations"
    keys: tuple[str, ...]

    @classmethod
    def from_keys(cls, labels: schema.LabelSet, keys: Sequence[str]) -> StageLabels:
        return cls(labels.kind + "s", tuple(labels.by_key(k).key for k in keys))

    @property
    def label_set(self) -> schema.LabelSet:
        return schema.get_label_set(self.kind)

    def dataset_labels(self) -> dict[str, int]:
        out = {"background": 0}
        out.update({k: i + 1 for i, k in enumerate(self.keys)})
        return out

    def _lut_to_local(self) -> np.ndarray:
        ls = self.label_set
        lut = np.zeros(len(ls) + 1, np.uint8)
        for i, k in enumerate(self.keys):
            lut[ls.by_key(k).id] = i + 1
        return lut

    def to_local(self, label_map: np.ndarray) -> np.ndarray:
        """Schema ids to this stage's 0..N (labels it does not predict become 0)."""
        return self._lut_to_local()[np.asarray(label_map).astype(np.int64)]

    def to_schema(self, local_map: np.ndarray) -> np.ndarray:
        """This stage's 0..N back to schema ids."""
        ls = self.label_set
        lut = np.zeros(len(self.keys) + 1, np.uint8)
        for i, k in enumerate(self.keys):
            lut[i + 1] = ls.by_key(k).id
        return lut[np.asarray(local_map).astype(np.int64)]

    def to_json(self) -> dict:
        return {"kind": self.kind, "keys": list(self.keys)}

    @classmethod
    def from_json(cls, obj: dict) -> StageLabels:
        return cls(obj["kind"], tuple(obj["keys"]))


@dataclass(frozen=True)
class ExportCase:
    """One case to export.

    Attributes:
        case_id: identifier (becomes the nnU-Net case name).
        ct: CT file.
        target: label map in schema ids (organs or stations).
        organs: 22-organ map for the organ channels (``None`` when the spec has none).
        fold: cross-validation fold (held out in fold ``fold``).
        channel_origin: free-form provenance of the organ channels (which model made them).
        patient: the case's patient (``None``: its own); the key-organ search splits the
            training cases of a fold by patient (``dataset.json``'s ``deepstationing``
            ``patients``).
    """

    case_id: str
    ct: Path
    target: Path
    fold: int | None
    organs: Path | None = None
    channel_origin: str = "gt"
    patient: str | None = None


@dataclass(frozen=True)
class DatasetRef:
    """An exported nnU-Net dataset."""

    id: int
    name: str
    raw_folder: Path

    @property
    def dataset_json(self) -> dict:
        return json.loads((self.raw_folder / "dataset.json").read_text())


def _stamp(p: Path | None) -> list | None:
    if p is None:
        return None
    st = Path(p).stat()
    return [str(Path(p).resolve()), st.st_size, int(st.st_mtime_ns)]


def dataset_id_for(workspace: Workspace, key: str) -> int:
    """The dataset id of ``key`` in this workspace (a new one the first time)."""
    reg_path = workspace.registry
    with file_lock(reg_path):  # jobs running at the same time get distinct ids
        reg = json.loads(reg_path.read_text()) if reg_path.exists() else {}
        if key not in reg:
            reg[key] = max([FIRST_DATASET_ID - 1, *reg.values()]) + 1
            if reg[key] > 999:
                raise RuntimeError(f"{reg_path}: no free nnU-Net dataset ids left (max 999)")
            write_json_atomic(reg, reg_path)
    return int(reg[key])


def export_dataset(workspace: Workspace, key: str, name: str, cases: Sequence[ExportCase], *,
                   labels: StageLabels, channels: ChannelSpec, spacing: Sequence[float],
                   orientation: str = "LPS",
                   progress: Callable[[str], None] | None = None) -> tuple[DatasetRef, bool]:
    """Write ``cases`` as an nnU-Net raw dataset on the stage grid; skip an identical export.

    Every case goes through :func:`deepstationing.backbone.inputs.stage_grid` and
    :func:`~deepstationing.backbone.inputs.labels_on_grid`, the functions prediction uses,
    so nnU-Net finds every case at the target spacing and resamples nothing.

    Args:
        workspace: the workspace whose ``nnunet_raw`` receives the dataset.
        key: unique key of this dataset in the workspace (stage + cohort + channels).
        name: short name (``[A-Za-z0-9_]``) used in ``DatasetXXX_<name>``.
        cases: what to export.
        labels: the stage's targets (relabelled to 0..N).
        channels: the organ channels to add after the CT (and their encoding).
        spacing: the stage's target spacing ``(z, y, x)`` in mm, in ``orientation``.
        orientation: every case is written with its axes in this orientation (the one the
            network is trained in; predict re-orients its inputs the same way).

    Returns:
        The dataset and whether it was (re)written (``False``: unchanged, reused).
    """
    workspace.create()
    did = dataset_id_for(workspace, key)
    ref = DatasetRef(did, f"Dataset{did:03d}_{name}", workspace.raw / f"Dataset{did:03d}_{name}")
    source = _export_source(key, cases, labels=labels, channels=channels, spacing=spacing,
                            orientation=orientation)
    source_file = ref.raw_folder / "deepstationing_source.json"
    if source_file.exists() and json.loads(source_file.read_text()) == source:
        return ref, False
    images = ref.raw_folder / "imagesTr"
    targets = ref.raw_folder / "labelsTr"
    if source_file.exists():
        source_file.unlink()
    for folder in (images, targets):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.nii.gz"):
            old.unlink()
    for n, case in enumerate(cases, 1):
        if progress:
            progress(f"exporting {name}: case {n}/{len(cases)} ({case.case_id})")
        _export_case(case, images, targets, labels=labels, channels=channels, spacing=spacing,
                     orientation=orientation)
    write_json_atomic(_dataset_json(key, name, cases, labels, channels),
                      ref.raw_folder / "dataset.json")
    write_json_atomic(source, source_file)
    return ref, True


def _export_source(key: str, cases: Sequence[ExportCase], *, labels: StageLabels,
                   channels: ChannelSpec, spacing: Sequence[float], orientation: str) -> dict:
    """What an export is made from (``deepstationing_source.json``): equal means unchanged."""
    return {
        "key": key,
        "labels": labels.to_json(),
        "channels": channels.to_json(),
        "orientation": orientation,
        "spacing": [float(v) for v in spacing],
        "cases": [{"id": c.case_id, "fold": c.fold, "ct": _stamp(c.ct), "target": _stamp(c.target),
                   "organs": _stamp(c.organs) if channels.organs else None,
                   "channel_origin": c.channel_origin if channels.organs else None,
                   # only when set: exports of cohorts without patients stay as they were
                   **({"patient": c.patient} if c.patient is not None else {})}
                  for c in cases],
    }


def _export_case(case: ExportCase, images: Path, targets: Path, *, labels: StageLabels,
                 channels: ChannelSpec, spacing: Sequence[float], orientation: str) -> None:
    """Write one case's CT, target and organ channels on the stage grid."""
    ct = read_image(case.ct)
    grid = stage_grid(ct, spacing, orientation)
    write_image(grid, images / f"{case.case_id}_0000.nii.gz")
    target = read_image(case.target, label=True)
    check_same_geometry(ct, target, reference_name=str(case.ct))
    target = labels_on_grid(target, grid, orientation)
    write_image(grid.with_array(labels.to_local(target.array)),
                targets / f"{case.case_id}.nii.gz")
    if channels.organs:
        if case.organs is None:
            raise ValueError(f"case {case.case_id}: organ channels requested but no organ map")
        organ_map = read_image(case.organs, label=True)
        check_same_geometry(ct, organ_map, reference_name=str(case.ct))
        organ_map = labels_on_grid(organ_map, grid, orientation)
        encoded = encode_channels(organ_map.array, channels, grid.array_spacing)
        for i, channel in enumerate(encoded):
            write_image(grid.with_array(channel),
                        images / f"{case.case_id}_{i + 1:04d}.nii.gz")


def _dataset_json(key: str, name: str, cases: Sequence[ExportCase], labels: StageLabels,
                  channels: ChannelSpec) -> dict:
    """nnU-Net's ``dataset.json`` of the export (with the files of every case listed)."""
    patients = {c.case_id: c.patient for c in cases if c.patient is not None}
    return {
        "name": name,
        "channel_names": channels.channel_names(),
        "labels": labels.dataset_labels(),
        "numTraining": len(cases),
        "file_ending": ".nii.gz",
        # the files of every case, listed: nnU-Net then does not fork a pool of processes
        # to find them (a fork inside a multi-threaded process, e.g. a Ray worker, can hang)
        "dataset": {c.case_id: {"images": [f"imagesTr/{c.case_id}_{i:04d}.nii.gz"
                                           for i in range(channels.n_channels)],
                                "label": f"labelsTr/{c.case_id}.nii.gz"} for c in cases},
        "deepstationing": {"key": key, "labels": labels.to_json(),
                           "channels": channels.to_json(),
                           **({"patients": patients} if patients else {})},
    }
