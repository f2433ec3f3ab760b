"""Lymph-node zone accuracy (paper section 3): is each node inside a predicted station of its zone?

The paper merges the stations into four zones — supraclavicular (1L, 1R), superior (2L, 2R,
3A, 3P, 4L, 4R), aortic (5, 6), inferior (7, 8) — and counts a lymph-node instance as
correctly located when it lies in a predicted station of its own zone. A node occupies
several voxels (``nodes.nii.gz`` holds each node's voxels under its id); its predicted
station is the one that covers most of its voxels (background counts: a node mostly
outside every predicted station is wrong), ties going to the lower station id.

>>> import numpy as np
>>> from deepstationing.data.image import Image
>>> nodes_map = Image(np.array([[[1, 1, 2, 2, 2]]], np.uint16))
>>> pred = Image(np.array([[[8, 8, 9, 0, 0]]], np.uint8))   # 4R, 4R, 5, bg, bg
>>> nodes = [{"id": 1, "station": "2R", "zone": "superior"},
...          {"id": 2, "station": "6", "zone": "aortic"}]
>>> [(r.node, r.predicted_station, r.correct) for r in node_zone_results(nodes, nodes_map, pred)]
[(1, '4R', True), (2, None, False)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from deepstationing import schema
from deepstationing.data.image import Image, check_same_geometry

__all__ = ["NodeResult", "node_zone_results", "zone_accuracy"]


@dataclass(frozen=True)
class NodeResult:
    node: int
    station: str
    zone: str
    predicted_station: str | None
    predicted_zone: str | None

    @property
    def correct(self) -> bool:
        return self.predicted_zone == self.zone


def node_zone_results(nodes: Sequence[dict], nodes_map: Image,
                      stations: Image) -> list[NodeResult]:
    """One result per node of ``nodes`` (``nodes.json`` entries) against a station map."""
    check_same_geometry(nodes_map, stations, reference_name="node map",
                        other_name="station map")
    inst = np.asarray(nodes_map.array).astype(np.int64)
    pred = np.asarray(stations.array).astype(np.int64)
    ids = [int(n["id"]) for n in nodes]
    n_st = len(schema.STATIONS) + 1
    out = []
    boxes = ndimage.find_objects(inst, max_label=max(ids, default=0)) if ids else []
    for node in nodes:
        nid = int(node["id"])
        box = boxes[nid - 1] if nid - 1 < len(boxes) else None
        label = 0
        if box is not None:
            votes = np.bincount(pred[box][inst[box] == nid], minlength=n_st)
            label = int(np.argmax(votes))
        key = schema.STATIONS.by_id(label).key if label else None
        zone = schema.zone_of_station(label).name if label else None
        out.append(NodeResult(nid, str(node["station"]), str(node["zone"]), key, zone))
    return out


def zone_accuracy(results: Sequence[NodeResult]) -> dict[str, float]:
    """Accuracy overall and per zone (``nan`` for a zone without nodes).

    >>> r = [NodeResult(1, "4R", "superior", "4R", "superior"),
    ...      NodeResult(2, "7", "inferior", "5", "aortic")]
    >>> zone_accuracy(r)["all"], zone_accuracy(r)["inferior"]
    (0.5, 0.0)
    """
    acc = {"all": float(np.mean([r.correct for r in results])) if results else float("nan")}
    for zone in schema.ZONES:
        mine = [r.correct for r in results if r.zone == zone.name]
        acc[zone.name] = float(np.mean(mine)) if mine else float("nan")
    return acc
