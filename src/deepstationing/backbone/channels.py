"""Input channels of a network stage: CT plus optional binary organ channels.

A :class:`ChannelSpec` says which organ masks join the CT as extra input channels, and
where they come from:

* ``source``: ``"gt"`` (the cohort's ground-truth ``organs.nii.gz``), ``"pred"``
  (predictions of the stratified organ cascade; when *training* on predictions each case's
  channels come from the fold model that did not see that case, see
  :mod:`deepstationing.training.oof`), ``"nested"`` (the cascade's predictions as well,
  but a station fold ``K``'s training channels come from organ models that never saw fold
  ``K`` either: nested out-of-fold channels, see :mod:`deepstationing.stations.network`)
  or ``"single"`` (the same from the single 22-organ
  network, the paper's non-stratified comparison);
* ``organs``: the organ keys, one binary (0/1) channel each, in the given order; empty for
  CT only.

Each organ becomes one input channel, encoded in one of two ways (``encoding``):

* ``"binary"`` (the paper's, the default): the mask itself, 0/1;
* ``"sdm"``: a signed distance map, the distance in mm to the organ's surface (negative
  inside), clipped to +-:data:`SDM_CLIP_MM` and scaled to [-1, 1]. Every voxel then knows
  how far it is from each organ, the long-range geometry that a binary mask only reveals to
  a network whose receptive field reaches the organ (an option beyond the paper; see
  ``docs/learning.md`` for what it changes).

Organ channels go to nnU-Net as separate images with the ``"noNorm"`` normalisation
scheme (kept as they are), the CT channel with the ``"CT"`` scheme.

The text form, used on the command line and in model files::

    none                    CT only
    pred:all | gt:all       CT + all 22 organs (schema order)
    nested:all              CT + 22 predicted organs, nested out-of-fold when training
    pred:top6               CT + the paper's auto-searched top-6 organs
    pred:anchors            CT + the 11 anchor organs (the non-anchor stage's input)
    gt:esophagus,heart      CT + a named list of organ keys
    gt:all+sdm              any of the above with signed-distance encoding

Examples
--------
>>> spec = ChannelSpec.parse("pred:top6")
>>> spec.source, spec.organs[:2], spec.n_channels
('pred', ('esophagus', 'aortic_arch'), 7)
>>> str(ChannelSpec.parse("none"))
'none'
>>> ChannelSpec.parse("gt:heart,spine").channel_names()
{'0': 'CT', '1': 'noNorm', '2': 'noNorm'}
>>> sdm = ChannelSpec.parse("gt:all+sdm")
>>> sdm.encoding, str(sdm), sdm.tag
('sdm', 'gt:all+sdm', 'gt-all-sdm')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from deepstationing import schema

__all__ = ["ChannelSpec", "organ_channels", "encode_channels", "network_input", "signed_distance",
           "SUBSET_ALIASES", "ENCODINGS", "SDM_CLIP_MM"]

#: Named organ subsets accepted after ``gt:`` / ``pred:``.
SUBSET_ALIASES: dict[str, tuple[str, ...]] = {
    "all": tuple(schema.ORGANS.keys),
    "top6": schema.PAPER_TOP6_ORGANS,
    "anchors": schema.ANCHOR_ORGANS,
    "non_anchors": schema.NON_ANCHOR_ORGANS,
}
SOURCES = ("gt", "pred", "nested", "single")
#: Sources whose channels come from the stratified cascade at prediction time.
CASCADE_SOURCES = ("pred", "nested")
#: Organ channel encodings: binary masks (the paper) or signed distance maps.
ENCODINGS = ("binary", "sdm")
#: Signed distances are clipped to this many mm (then scaled to [-1, 1]). Stations reach
#: up to ~50 mm from the organs that bound them (spec part A); farther is "far".
SDM_CLIP_MM = 60.0


@dataclass(frozen=True)
class ChannelSpec:
    """CT plus binary organ channels (see module docstring)."""

    source: str = "pred"
    organs: tuple[str, ...] = ()
    encoding: str = "binary"

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"organ channel source must be one of {SOURCES}, got {self.source!r}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"organ channel encoding must be one of {ENCODINGS}, "
                             f"got {self.encoding!r}")
        keys = tuple(schema.ORGANS.by_key(k).key for k in self.organs)
        if len(set(keys)) != len(keys):
            raise ValueError(f"organ channel list repeats an organ: {', '.join(self.organs)}")
        object.__setattr__(self, "organs", keys)

    @classmethod
    def parse(cls, text: str | ChannelSpec) -> ChannelSpec:
        """Parse ``none``, ``SOURCE:SUBSET`` or ``SOURCE:key,key,...`` (see module docs)."""
        if isinstance(text, ChannelSpec):
            return text
        t = str(text).strip()
        encoding = "binary"
        if "+" in t:
            t, encoding = (v.strip() for v in t.rsplit("+", 1))
            if encoding.lower() not in ENCODINGS:
                raise ValueError(f"channel spec {text!r}: unknown encoding {encoding!r} "
                                 f"(use {' or '.join(ENCODINGS)})")
            encoding = encoding.lower()
        if t.lower() in ("none", "ct", "ct-only", ""):
            return cls("pred", ())
        if ":" not in t:
            raise ValueError(f"channel spec {text!r}: expected 'none', 'gt:SUBSET' or "
                             f"'pred:SUBSET' (SUBSET = {', '.join(SUBSET_ALIASES)} or a "
                             "comma-separated list of organ keys)")
        source, subset = (s.strip() for s in t.split(":", 1))
        source = source.lower()
        if subset.lower() in SUBSET_ALIASES:
            organs = SUBSET_ALIASES[subset.lower()]
        elif subset.lower() == "none":
            organs = ()
        else:
            organs = tuple(k.strip() for k in subset.split(",") if k.strip())
            try:
                organs = tuple(schema.ORGANS.by_key(k).key for k in organs)
            except KeyError as exc:
                raise ValueError(f"channel spec {text!r}: {exc.args[0]}") from None
        return cls(source, organs, encoding if organs else "binary")

    def __str__(self) -> str:
        if not self.organs:
            return "none"
        suffix = "" if self.encoding == "binary" else f"+{self.encoding}"
        for alias, keys in SUBSET_ALIASES.items():
            if tuple(keys) == self.organs:
                return f"{self.source}:{alias}{suffix}"
        return f"{self.source}:{','.join(self.organs)}{suffix}"

    @property
    def n_channels(self) -> int:
        """Number of input channels including the CT."""
        return 1 + len(self.organs)

    @property
    def tag(self) -> str:
        """Short file-name-safe name, e.g. ``ct``, ``pred-all``, ``gt-6org-1a2b``."""
        if not self.organs:
            return "ct"
        s = str(self)
        if "," not in s:
            return s.replace(":", "-").replace("+", "-")
        import hashlib

        h = hashlib.sha1(s.encode()).hexdigest()[:6]
        suffix = "" if self.encoding == "binary" else f"-{self.encoding}"
        return f"{self.source}-{len(self.organs)}org-{h}{suffix}"

    def channel_names(self) -> dict[str, str]:
        """nnU-Net ``channel_names``: CT scheme for channel 0, ``noNorm`` for organs."""
        names = {"0": "CT"}
        for i in range(len(self.organs)):
            names[str(i + 1)] = "noNorm"
        return names

    def to_json(self) -> dict:
        return {"spec": str(self), "source": self.source, "organs": list(self.organs),
                "encoding": self.encoding}

    @classmethod
    def from_json(cls, obj: dict) -> ChannelSpec:
        return cls(obj["source"], tuple(obj["organs"]), obj.get("encoding", "binary"))

    def with_organs(self, organs: Sequence[str]) -> ChannelSpec:
        """The same source and encoding with another organ list."""
        return ChannelSpec(self.source, tuple(organs), self.encoding if organs else "binary")


def organ_channels(organ_map: np.ndarray, organs: Sequence[str]) -> np.ndarray:
    """Binary channels ``[len(organs), z, y, x]`` (uint8) of a 22-organ label map.

    >>> m = np.array([[[0, 5, 6]]])
    >>> organ_channels(m, ["heart", "spine"])[:, 0, 0]
    array([[0, 1, 0],
           [0, 0, 1]], dtype=uint8)
    """
    out = np.zeros((len(organs),) + organ_map.shape, np.uint8)
    for i, key in enumerate(organs):
        out[i] = organ_map == schema.ORGANS.by_key(key).id
    return out


def signed_distance(mask: np.ndarray, spacing_zyx: Sequence[float],
                    clip_mm: float = SDM_CLIP_MM) -> np.ndarray:
    """Signed distance (mm) to a mask's surface, negative inside, clipped and scaled to [-1, 1].

    Computed only inside the mask's bounding box grown by ``clip_mm`` (farther voxels are
    clipped to +1 anyway), so the cost follows the organ's size, not the image's. An empty
    mask is +1 everywhere.

    >>> m = np.zeros((1, 1, 9), bool); m[0, 0, 3:6] = True
    >>> (signed_distance(m, (1.0, 1.0, 2.0), clip_mm=8.0) * 8).round(1).tolist()[0][0]
    [6.0, 4.0, 2.0, -2.0, -4.0, -2.0, 2.0, 4.0, 6.0]
    """
    out = np.ones(mask.shape, np.float32)
    idx = np.argwhere(mask)
    if idx.size == 0:
        return out
    sp = np.asarray(spacing_zyx, float)
    grow = np.ceil(clip_mm / sp).astype(int)
    lo = np.maximum(idx.min(0) - grow, 0)
    hi = np.minimum(idx.max(0) + grow + 1, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    m = mask[box].astype(bool)
    outside = ndimage.distance_transform_edt(~m, sampling=sp)
    inside = ndimage.distance_transform_edt(m, sampling=sp)
    d = np.where(m, -inside, outside)
    out[box] = np.clip(d / clip_mm, -1.0, 1.0)
    return out


def encode_channels(organ_map: np.ndarray, spec: ChannelSpec,
                    spacing_zyx: Sequence[float]) -> np.ndarray:
    """The organ input channels of ``spec`` for a 22-organ map: ``[n, z, y, x]``.

    Binary encoding gives uint8 masks, ``sdm`` float32 signed distances (see
    :func:`signed_distance`); ``spacing_zyx`` is the map's voxel spacing (array order).

    >>> m = np.zeros((3, 3, 3), np.uint8); m[1, 1, 1] = 5
    >>> encode_channels(m, ChannelSpec.parse("gt:heart"), (1, 1, 1)).dtype
    dtype('uint8')
    >>> float(encode_channels(m, ChannelSpec.parse("gt:heart+sdm"), (1, 1, 1))[0, 1, 1, 1])
    -0.016666...
    """
    masks = organ_channels(organ_map, spec.organs)
    if spec.encoding == "binary":
        return masks
    return np.stack([signed_distance(m, spacing_zyx) for m in masks]) if len(masks) else \
        np.zeros((0,) + organ_map.shape, np.float32)


def network_input(ct: np.ndarray, organ_map: np.ndarray | None, spec: ChannelSpec,
                  spacing_zyx: Sequence[float]) -> np.ndarray:
    """The network's input ``[1 + n_organs, z, y, x]`` float32: the CT, then the organ channels.

    Allocated once and filled channel by channel (no uint8 stack, no concatenated copies:
    for 22 organs on a 512 x 512 x 80 grid that saves about 2 GB of temporary arrays).

    >>> m = np.zeros((1, 2, 2), np.uint8); m[0, 0, 0] = 5
    >>> x = network_input(np.full((1, 2, 2), -100, np.int16), m,
    ...                   ChannelSpec.parse("gt:heart,spine"), (1, 1, 1))
    >>> x.dtype, x.shape, x[1].sum(), x[2].sum()
    (dtype('float32'), (3, 1, 2, 2), np.float32(1.0), np.float32(0.0))
    """
    out = np.empty((1 + len(spec.organs),) + ct.shape, np.float32)
    out[0] = ct
    for i, key in enumerate(spec.organs):
        mask = organ_map == schema.ORGANS.by_key(key).id
        out[1 + i] = signed_distance(mask, spacing_zyx) if spec.encoding == "sdm" else mask
    return out
