"""Input channels of a network stage: CT plus optional binary organ channels.

A :class:`ChannelSpec` says which organ masks join the CT as extra input channels, and
where they come from:

* ``source``: ``"gt"`` (the cohort's ground-truth ``organs.nii.gz``) or ``"pred"``
  (predictions of the organ stages; when *training* on predictions each case's channels
  come from the fold model that did not see that case, see :mod:`deepstationing.organs.cascade`);
* ``organs``: the organ keys, one binary (0/1) channel each, in the given order; empty for
  CT only.

Organ channels go to nnU-Net as separate images with the ``"noNorm"`` normalisation
scheme (kept as 0/1), the CT channel with the ``"CT"`` scheme.

The text form, used on the command line and in model files::

    none                    CT only
    pred:all | gt:all       CT + all 22 organs (schema order)
    pred:top6               CT + the paper's auto-searched top-6 organs
    pred:anchors            CT + the 11 anchor organs (the non-anchor stage's input)
    gt:esophagus,heart      CT + a named list of organ keys

Examples
--------
>>> spec = ChannelSpec.parse("pred:top6")
>>> spec.source, spec.organs[:2], spec.n_channels
('pred', ('esophagus', 'aortic_arch'), 7)
>>> str(ChannelSpec.parse("none"))
'none'
>>> ChannelSpec.parse("gt:heart,spine").channel_names()
{'0': 'CT', '1': 'noNorm', '2': 'noNorm'}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deepstationing import schema

__all__ = ["ChannelSpec", "organ_channels", "SUBSET_ALIASES"]

#: Named organ subsets accepted after ``gt:`` / ``pred:``.
SUBSET_ALIASES: dict[str, tuple[str, ...]] = {
    "all": tuple(schema.ORGANS.keys),
    "top6": schema.PAPER_TOP6_ORGANS,
    "anchors": schema.ANCHOR_ORGANS,
    "non_anchors": schema.NON_ANCHOR_ORGANS,
}
SOURCES = ("gt", "pred")


@dataclass(frozen=True)
class ChannelSpec:
    """CT plus binary organ channels (see module docstring)."""

    source: str = "pred"
    organs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"organ channel source must be one of {SOURCES}, got {self.source!r}")
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
        return cls(source, organs)

    def __str__(self) -> str:
        if not self.organs:
            return "none"
        for alias, keys in SUBSET_ALIASES.items():
            if tuple(keys) == self.organs:
                return f"{self.source}:{alias}"
        return f"{self.source}:{','.join(self.organs)}"

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
            return s.replace(":", "-")
        import hashlib

        h = hashlib.sha1(s.encode()).hexdigest()[:6]
        return f"{self.source}-{len(self.organs)}org-{h}"

    def channel_names(self) -> dict[str, str]:
        """nnU-Net ``channel_names``: CT scheme for channel 0, ``noNorm`` for organs."""
        names = {"0": "CT"}
        for i in range(len(self.organs)):
            names[str(i + 1)] = "noNorm"
        return names

    def to_json(self) -> dict:
        return {"spec": str(self), "source": self.source, "organs": list(self.organs)}

    @classmethod
    def from_json(cls, obj: dict) -> ChannelSpec:
        return cls(obj["source"], tuple(obj["organs"]))


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
