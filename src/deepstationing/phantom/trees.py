"""Intrapulmonary vessel and bronchial trees of the phantom: grown per case, rendered per slice.

Each lung gets three trees of straight segments (a radius at each end), grown to fill it:
pulmonary arteries from the end of the left / right pulmonary artery, pulmonary veins from the
outer end of the upper pulmonary vein, and bronchi that run beside the arteries' first five
generations (bronchovascular bundles). A tree is grown by recursive partition of random
points spread evenly through the lung (approximated by the thoracic cavity above the
diaphragm and below the apices, outside a mediastinal slab): a branch heads for the centroid of
its points and stops 55 % of the way; its points are split in two across their longest axis,
one half per child, until one point is left (the branch then ends on it). Radii follow the
pipe model, ``r = r_root (n / N)^(1/3)`` for a branch that serves ``n`` of the ``N`` points:
lobar arteries start at 5.5-6.5 mm radius and end near 1 mm, so vessels reach the lung's
periphery evenly, as in CT.

The trees change the HU inside the lungs only; every voxel keeps its ``lung_r`` / ``lung_l``
label (the lung label of a CT segmentation includes its vessels). Partial volume: each
segment's coverage of a voxel is averaged over three heights of the slice; a segment thinner
than a pixel covers ``2 r / px`` at its centre (a tent one pixel wide), so sub-pixel vessels keep
their true integrated density instead of showing as full-contrast dots.

>>> import numpy as np
>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.params import draw_parameters
>>> anat = Anatomy(draw_parameters(np.random.default_rng(0)), tree_seed=1)
>>> t = anat.trees
>>> sorted(set(t.kind.tolist())), bool(t.r0.max() < 8.0), len(t.a)
([0, 1, 2, 3], True, 1144)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Trees", "grow_trees", "ARTERY", "VEIN", "BRONCHUS", "LUMEN"]

ARTERY, VEIN, BRONCHUS, LUMEN = 0, 1, 2, 3
LUMEN_FRACTION = 0.6  # bronchial lumen radius / outer radius
N_POINTS = 128  # terminal points per vessel tree
BRONCHUS_DEPTH = 5  # generations of the arterial tree that have a bronchus beside them


@dataclass
class Trees:
    """Segments ``a -> b`` (``(n, 3)`` mm, anatomy frame) with end radii ``r0``, ``r1``."""

    a: np.ndarray
    b: np.ndarray
    r0: np.ndarray
    r1: np.ndarray
    kind: np.ndarray  # ARTERY, VEIN or BRONCHUS

    def __post_init__(self) -> None:
        rmax = np.maximum(self.r0, self.r1)
        lo, hi = np.minimum(self.a, self.b), np.maximum(self.a, self.b)
        self.boxes = np.stack([lo[:, 0] - rmax, hi[:, 0] + rmax, lo[:, 1] - rmax,
                               hi[:, 1] + rmax], axis=1)
        self.zlo, self.zhi = lo[:, 2] - rmax, hi[:, 2] + rmax

    def active(self, z: float, half: float) -> np.ndarray:
        """Indices of the segments that reach the slab ``[z - half, z + half]``."""
        return np.nonzero((self.zlo <= z + half) & (self.zhi >= z - half))[0]


def _lung_test(anat):
    """``inside(q)`` for ``(n, 3)`` points: (roughly) in a lung, clear of the mediastinum."""
    cav = anat.cavity

    def inside(q: np.ndarray) -> np.ndarray:
        x, y, z = q[:, 0], q[:, 1], q[:, 2]
        (cx, cy, a, b), ok = cav.params_multi(np.clip(z, cav.z[0], cav.z[-1]))
        ok = (z >= cav.z[0]) & (z <= cav.z[-1])
        ok &= ((x - cx) / (0.93 * a)) ** 2 + ((y - cy) / (0.93 * b)) ** 2 <= 1.0
        ok &= np.abs(x) >= 22.0 + 0.12 * a
        apex = np.where(x < 0, anat.apex_surface(x, y, "r"), anat.apex_surface(x, y, "l"))
        ok &= z <= apex - 2.0
        return ok & (z > anat.diaphragm(x, y) + 2.0)
    return inside


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _sample_lung(anat, inside, rng, sg: float, n: int) -> np.ndarray:
    """``n`` random points spread evenly through the lung of side ``sg`` (rejection)."""
    cav, lv = anat.cavity, anat.lv
    z0, z1 = lv["dia"] - 60.0, max(lv["apex_r"], lv["apex_l"])
    cx, cy, a, b = cav.params(0.0)
    out = np.zeros((0, 3))
    while len(out) < n:
        q = np.column_stack([sg * rng.uniform(0, a, 8 * n), rng.uniform(cy - b, cy + b, 8 * n),
                             rng.uniform(z0, z1, 8 * n)])
        out = np.concatenate([out, q[inside(q)]])
    return out[:n]


def _partition(root, pts: np.ndarray, r_root: float, n_all: int, depth: int, out: list,
               kind: int) -> None:
    """Grow one tree from ``root`` over its points (see the module docstring); appends
    ``(a, b, r0, r1, kind, depth)`` rows to ``out``."""
    stack = [(np.asarray(root, float), pts, depth)]
    while stack:
        p0, q, d = stack.pop()
        r = r_root * (len(q) / n_all) ** (1.0 / 3.0)
        if len(q) == 1:
            out.append((p0, q[0], r, 0.9 * r, kind, d))
            continue
        c = q.mean(axis=0)
        p1 = p0 + 0.55 * (c - p0)
        out.append((p0, p1, r, 0.95 * r, kind, d))
        dev = q - c
        axis = np.linalg.svd(dev, full_matrices=False)[2][0]
        order = np.argsort(dev @ axis)
        half = len(q) // 2
        stack.append((p1, q[order[:half]], d + 1))
        stack.append((p1, q[order[half:]], d + 1))


def _bronchi(arteries: list, offset_mm: float = 1.5) -> list:
    """Bronchi beside the first :data:`BRONCHUS_DEPTH` generations of an arterial tree,
    each displaced sideways by the two radii plus ``offset_mm``."""
    out = []
    for a, b, r0, r1, _k, d in arteries:
        if d >= BRONCHUS_DEPTH:
            continue
        side = _unit(np.cross(b - a, np.array([0.0, 0.0, 1.0])) + 1e-6)
        shift = side * (2.0 * r0 + offset_mm)
        out.append((a + shift, b + shift, r0, r1, BRONCHUS, d))
    return out


def grow_trees(anat, rng: np.random.Generator) -> Trees:
    """The vessel and bronchial trees of both lungs for the anatomy ``anat``."""
    inside = _lung_test(anat)
    vs = anat.p["vessel_scale"]
    ht = anat.lv["heart_top"]
    rows: list = []
    for sg, pa, pv in ((-1.0, "rpa", (-60.0, -2.0, ht - 8)), (1.0, "lpa", (60.0, -4.0, ht - 6))):
        art: list = []
        pts = _sample_lung(anat, inside, rng, sg, N_POINTS)
        _partition(anat.tubes[pa].points[-1], pts, 6.0 * vs, N_POINTS, 0, art, ARTERY)
        pts = _sample_lung(anat, inside, rng, sg, N_POINTS)
        _partition(np.array(pv), pts, 5.5 * vs, N_POINTS, 0, rows, VEIN)
        bro = _bronchi(art)
        lumen = [(a, b, LUMEN_FRACTION * r0, LUMEN_FRACTION * r1, LUMEN, d)
                 for a, b, r0, r1, _k, d in bro]
        rows += art + bro + lumen
    a = np.array([r[0] for r in rows], float)
    b = np.array([r[1] for r in rows], float)
    return Trees(a, b, np.array([r[2] for r in rows]), np.array([r[3] for r in rows]),
                 np.array([r[4] for r in rows], np.int8))


def coverage(X: np.ndarray, Y: np.ndarray, zq: np.ndarray, a, b, r0, r1,
             px: float) -> np.ndarray:
    """Coverage (0..1) of pixels by segments, averaged over the heights ``zq``.

    ``X, Y``: ``(n, h, w)`` pixel coordinates of ``n`` segments (or ``(h, w)`` for one);
    ``a, b``: ``(n, 3)`` ends (or ``(3,)``), ``r0, r1``: ``(n,)`` end radii (or numbers).
    A segment at least a pixel thick covers ``clip(0.5 + (r - d) / px)`` at distance ``d``
    from its axis; a thinner one ``2 r / px`` at its axis, falling to 0 one pixel away.

    >>> X, Y = np.meshgrid(np.arange(-3.0, 3.5), np.zeros(1))
    >>> c = coverage(X, Y, np.array([0.0]), np.array([0, 0, -9.0]), np.array([0, 0, 9.0]),
    ...              2.0, 2.0, 1.0)
    >>> c.round(2).tolist()
    [[0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0]]
    """
    one = np.ndim(X) == 2
    f32 = np.float32
    X = np.asarray(X, f32).reshape((-1,) + np.shape(X)[-2:])[:, None]  # (n, 1, h, w)
    Y = np.asarray(Y, f32).reshape(X.shape)
    a = np.asarray(a, f32).reshape(-1, 3)
    ab = np.asarray(b, f32).reshape(-1, 3) - a
    e = (slice(None), None, None, None)
    L2 = np.maximum((ab * ab).sum(1), f32(1e-9))
    dx, dy = X - a[:, 0][e], Y - a[:, 1][e]
    dz = (np.asarray(zq, f32)[None, :] - a[:, 2][:, None])[:, :, None, None]  # (n, m, 1, 1)
    t = (dx * ab[:, 0][e] + dy * ab[:, 1][e] + dz * ab[:, 2][e]) / L2[e]
    np.clip(t, 0.0, 1.0, out=t)
    d = np.sqrt((dx - t * ab[:, 0][e]) ** 2 + (dy - t * ab[:, 1][e]) ** 2
                + (dz - t * ab[:, 2][e]) ** 2)
    r0 = np.broadcast_to(np.asarray(r0, f32), (len(a),))
    r1 = np.broadcast_to(np.asarray(r1, f32), (len(a),))
    r = r0[e] + t * (r1 - r0)[e]
    cov = np.clip(0.5 + (r - d) / f32(px), 0.0, 1.0)
    thin = 2 * np.maximum(r0, r1) < px
    if thin.any():
        tent = (2 * r / f32(px)) * np.clip(1.0 - d / f32(px), 0.0, 1.0)
        cov = np.where(thin[e], tent, cov)
    cov = cov.mean(axis=1)
    return cov[0] if one else cov


def slab_boxes(trees: Trees, idx: np.ndarray, z: float, half: float) -> np.ndarray:
    """``(n, 4)`` anatomy boxes ``x0, x1, y0, y1`` of the parts of segments ``idx`` that reach
    the slab ``[z - half, z + half]`` (each end grown by its radius)."""
    a, b = trees.a[idx], trees.b[idx]
    r = np.maximum(trees.r0[idx], trees.r1[idx])
    dzs = b[:, 2] - a[:, 2]
    flat = np.abs(dzs) < 1e-6
    dzs = np.where(flat, 1.0, dzs)
    t0 = (z - half - r - a[:, 2]) / dzs
    t1 = (z + half + r - a[:, 2]) / dzs
    lo = np.where(flat, 0.0, np.clip(np.minimum(t0, t1), 0.0, 1.0))
    hi = np.where(flat, 1.0, np.clip(np.maximum(t0, t1), 0.0, 1.0))
    p0 = a + lo[:, None] * (b - a)
    p1 = a + hi[:, None] * (b - a)
    return np.stack([np.minimum(p0[:, 0], p1[:, 0]) - r, np.maximum(p0[:, 0], p1[:, 0]) + r,
                     np.minimum(p0[:, 1], p1[:, 1]) - r, np.maximum(p0[:, 1], p1[:, 1]) + r],
                    axis=1)


def _upsample2(c: np.ndarray, h: int, w: int) -> np.ndarray:  # as Evaluator._up
    """Bilinear 2x upsampling of the last two axes, cropped to ``(h, w)``."""
    hc, wc = c.shape[-2:]
    f = np.empty(c.shape[:-2] + (2 * hc - 1, 2 * wc - 1), np.float32)
    f[..., ::2, ::2] = c
    f[..., 1::2, ::2] = 0.5 * (c[..., :-1, :] + c[..., 1:, :])
    f[..., 1::2] = 0.5 * (f[..., :-2:2] + f[..., 2::2])
    return f[..., :h, :w]


def splat(acc: np.ndarray, trees: Trees, idx: np.ndarray, pix: np.ndarray,
          xa: np.ndarray, ya: np.ndarray, z: float, dz: float, px: float, window: tuple,
          coarse: tuple | None = None) -> None:
    """Max-combine the coverage of segments ``idx`` on the slice at ``z`` (thickness ``dz``)
    into ``acc[kind]`` (``(4, h, w)``: the pixels of ``window``, ``(rows, cols)`` slices of
    the image). ``pix``: ``(n, 4)`` pixel boxes ``r0, r1, c0, c1`` of the segments on this
    slab. Segments are evaluated in batches of similar box height and width (each padded up
    to the next power of two), at three heights of the slice (z - dz/3, z, z + dz/3). With
    ``coarse`` (the anatomy coordinates of an image grid extended by 4 rows and columns, as
    :class:`~deepstationing.phantom.raster_core.Evaluator` takes them), coverage is computed
    at every second row and column and interpolated bilinearly (fine pixels)."""
    w0, w1 = window
    b = np.asarray(pix).copy()
    b[:, 0] = np.maximum(b[:, 0], w0.start)
    b[:, 1] = np.minimum(b[:, 1], w0.stop)
    b[:, 2] = np.maximum(b[:, 2], w1.start)
    b[:, 3] = np.minimum(b[:, 3], w1.stop)
    h, w = b[:, 1] - b[:, 0], b[:, 3] - b[:, 2]
    ok = (h > 0) & (w > 0)
    idx, b, h, w = idx[ok], b[ok], h[ok], w[ok]
    key = _POW2[np.searchsorted(_POW2, h)] * 4096 + _POW2[np.searchsorted(_POW2, w)]
    zq = z + np.array([-dz / 3.0, 0.0, dz / 3.0])
    for kv in np.unique(key).tolist():
        Sh, Sw = divmod(kv, 4096)
        sel = np.nonzero(key == kv)[0]
        bs = b[sel]
        i = idx[sel]
        rr = np.minimum(bs[:, 0, None] + np.arange(Sh)[None], bs[:, 1, None] - 1)
        cc = np.minimum(bs[:, 2, None] + np.arange(Sw)[None], bs[:, 3, None] - 1)
        R, C = rr[:, :, None], cc[:, None, :]
        if coarse is None:
            cov = coverage(xa[R, C], ya[R, C], zq, trees.a[i], trees.b[i], trees.r0[i],
                           trees.r1[i], px)
        else:
            Rc = (bs[:, 0, None] + 2 * np.arange(Sh // 2 + 1)[None])[:, :, None]
            Cc = (bs[:, 2, None] + 2 * np.arange(Sw // 2 + 1)[None])[:, None, :]
            cov = _upsample2(coverage(coarse[0][Rc, Cc], coarse[1][Rc, Cc], zq, trees.a[i],
                                      trees.b[i], trees.r0[i], trees.r1[i], 2 * px), Sh, Sw)
        # one scatter per batch: padded pixels repeat an edge pixel with its own value;
        # where two segments of a batch overlap, the later one's value is kept
        K = np.broadcast_to(trees.kind[i][:, None, None].astype(np.intp), cov.shape)
        ri = np.broadcast_to(R - w0.start, cov.shape)
        ci = np.broadcast_to(C - w1.start, cov.shape)
        acc[K, ri, ci] = np.maximum(acc[K, ri, ci], cov)


_POW2 = 2 ** np.arange(1, 12)
