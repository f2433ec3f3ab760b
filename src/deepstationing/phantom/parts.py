"""Parts: the rasterised structures of the phantom, and the helpers the organ builders share.

A :class:`Part` is one structure (an organ, an unlabelled vessel or bone, a fat filler): its
shape (:mod:`.shapes`), its label, how it looks in CT, how much mediastinal fat it carries, and
its label priority (``rank``). The organ-family builders
(:mod:`deepstationing.phantom.families`) return lists of parts.

>>> import numpy as np
>>> from deepstationing.phantom.shapes import Tube
>>> t = Part("vessel", Tube(np.array([[0, 0, -9.0], [0, 0, 9.0]]), np.array([3.0, 3.0])),
...          OID["svc"], ("solid", "venous"), pad=2.0)
>>> float(t.sd(None, np.array([[0.0, 5.0]]), np.zeros((1, 2)), 0.0)[0, 1])
2.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from deepstationing.phantom.shapes import Tube, smooth_curve
from deepstationing.schema import ORGANS

__all__ = ["Part", "OID", "tube", "AnatomyLike"]


class AnatomyLike(Protocol):
    """What parts need of an :class:`~deepstationing.phantom.anatomy.Anatomy` (which builds
    from parts, so parts do not import it): the registered centrelines and the diaphragm."""

    tubes: dict

    def diaphragm(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray: ...

#: organ id by key (``schema.ORGANS``)
OID = {o.key: o.id for o in ORGANS}


@dataclass
class Part:
    """One rasterised structure.

    ``label`` is an organ id, 0 for unlabelled tissue (ribs, subclavian vessels, larynx...), or
    a callable ``(z, u, x) -> ids`` (``u``: position along the tube, ``x``: anatomy x). ``look``
    selects the HU rendering: ``("solid", key)``, ``("wall", wall_key, lumen_key, mm)``,
    ``("bone", cortex_mm)`` or ``("vertebra", cortex_mm)``. ``pad`` grows the mediastinal
    envelope (fat) around the structure; ``claim=False`` marks a pure fat filler.
    """

    name: str
    shape: object
    label: int | Callable = 0
    look: tuple = ("solid", "muscle")
    pad: float = 0.0
    pv: bool = False
    claim: bool = True
    carve: tuple = ()  # ((shape, margin_mm), ...): keep this part ``margin`` away from them
    above_diaphragm: bool = False  # cut by the diaphragm surface
    rank: int = 0  # label priority: lower ranks win overlaps (stable within a rank)

    def sd(self, anat: AnatomyLike, X, Y, z, with_param: bool = False, high=None, low=None):
        """Signed distance on slice ``z`` (or, for a 1-D array ``z``, stacked over heights).

        ``high`` / ``low`` (None, or one number per height): the caller only tells values
        ``>= high`` apart from each other, and values ``< low`` likewise (it compares the
        result with thresholds, exactly only between ``low`` and ``high``). Tubes then skip
        the segments that cannot matter (:meth:`.shapes.Tube.sd` ``thr``): the part's own
        tube above ``high``, a carving tube where ``margin - sd`` falls below ``low``. Values
        in ``[low, high)`` are exactly those computed without them.
        """
        shp = self.shape
        kw = {"thr": high} if high is not None and isinstance(shp, Tube) else {}
        if with_param:
            sd, u = shp.sd(X, Y, z, with_param=True, **kw)
        else:
            sd, u = shp.sd(X, Y, z, **kw), None
        multi = np.ndim(z) > 0
        for other, margin in self.carve:
            okw = {}
            if low is not None and isinstance(other, Tube):
                okw = {"thr": margin - np.asarray(low, np.float64) + 0.01}
            if multi:
                on = np.array([other.bbox(float(zz)) is not None for zz in z])
                if on.any():
                    term = np.float32(margin) - other.sd(X, Y, z, **okw)
                    term[~on] = -np.inf
                    sd = np.maximum(sd, term)
            elif other.bbox(z) is not None:
                sd = np.maximum(sd, np.float32(margin) - other.sd(X, Y, z, **okw))
        if self.above_diaphragm:
            if multi:
                zf = np.asarray(z, np.float64).astype(np.float32)[:, None, None]
                sd = np.maximum(sd, (anat.diaphragm(X, Y)[None] - zf).astype(np.float32))
            else:
                sd = np.maximum(sd, (anat.diaphragm(X, Y) - np.float32(z)).astype(np.float32))
        return (sd, u) if with_param else sd


def tube(anat: AnatomyLike | None, name: str | None, pts, radii, step: float = 3.0, **kw) -> Tube:
    """A :class:`.shapes.Tube` along a C2 spline through ``pts`` (resampled every ``step``
    mm); with ``anat`` and ``name``, registered as ``anat.tubes[name]`` (the centrelines the
    station protocol and the other builders look up)."""
    pts_s, r_s = smooth_curve(pts, radii, step=step)
    t = Tube(pts_s, r_s, **kw)
    if anat is not None and name is not None:
        anat.tubes[name] = t
    return t
