"""Lymph nodes of the phantom: counts and sizes per station (``stations-spec.md`` part D).

Per station the count is Poisson (or 1 + Poisson where the station always holds a node, or
Bernoulli for the low-prevalence stations 2L, 3P and 8). The short axis is lognormal with a
median of 5 mm (sigma 0.3), truncated to [3 mm, the station's normal maximum]; the long axis is
1.5-2 times the short axis, oriented mostly cranio-caudally. A node is an ellipsoid placed
inside its station, entirely in mediastinal fat: every node voxel carries its station's label,
and no organ voxel (or other node) lies within 1.5 mm of its surface. A node that cannot be
placed after 80 tries (shrinking it a little every 20) is dropped; ``meta.json`` records how
many were drawn and placed.

Node voxels are part of their station (the station map is unchanged); the CT gets 60 +- 10 HU
inside the node with a soft (partial-volume) edge.
"""

from __future__ import annotations

import numpy as np

from deepstationing.schema import STATIONS, zone_of_station

__all__ = ["NODE_RULES", "place_nodes"]

#: station -> (count model, parameter, normal maximum short axis in mm)
NODE_RULES: dict[str, tuple[str, float, float]] = {
    "1L": ("poisson", 2.0, 8.0),
    "1R": ("poisson", 2.5, 8.0),
    "2L": ("bernoulli", 0.32, 8.0),
    "2R": ("poisson", 2.5, 8.0),
    "3A": ("poisson", 2.0, 8.0),
    "3P": ("bernoulli", 0.36, 8.0),
    "4L": ("poisson", 2.0, 10.0),
    "4R": ("1+poisson", 2.5, 10.0),
    "5": ("poisson", 2.5, 8.0),
    "6": ("poisson", 2.0, 8.0),
    "7": ("1+poisson", 1.5, 12.0),
    "8": ("bernoulli", 0.54, 8.0),
}


def _count(rng, model, par) -> int:
    if model == "poisson":
        return int(rng.poisson(par))
    if model == "1+poisson":
        return 1 + int(rng.poisson(par))
    return int(rng.random() < par)


def _short_axis(rng, vmax) -> float:
    for _ in range(50):
        v = float(np.exp(rng.normal(np.log(5.0), 0.3)))
        if 3.0 <= v <= vmax:
            return v
    return float(np.clip(v, 3.0, vmax))


def place_nodes(stations: np.ndarray, organs: np.ndarray, hu: np.ndarray, spacing, origin,
                rng: np.random.Generator) -> tuple[np.ndarray, list[dict], dict]:
    """Place nodes; returns the instance map, the node list and per-station counts.

    ``hu`` (float32) gets the node intensities painted in place.
    """
    sx, sy, sz = spacing
    nodes = np.zeros(stations.shape, np.uint16)
    out: list[dict] = []
    counts: dict[str, dict[str, int]] = {}
    nid = 0
    flat = np.flatnonzero(stations)
    labels = stations.ravel()[flat]
    order = np.argsort(labels, kind="stable")
    flat, labels = flat[order], labels[order]
    for st in STATIONS:
        model, par, vmax = NODE_RULES[st.key]
        n = _count(rng, model, par)
        lo, hi = np.searchsorted(labels, [st.id, st.id + 1])
        vox = np.stack(np.unravel_index(flat[lo:hi], stations.shape), axis=1)
        placed = 0
        for _ in range(n):
            short = _short_axis(rng, vmax)
            ratio = rng.uniform(1.5, 2.0)
            d = np.array([rng.normal(0, 0.5), rng.normal(0, 0.5), 1.0])
            d /= np.linalg.norm(d)
            node_hu = float(rng.normal(60.0, 10.0))
            ok = False
            for attempt in range(80):
                if vox.size == 0:
                    break
                scale = 0.85 ** (attempt // 20)
                a_s, a_l = 0.5 * short * scale, 0.5 * short * ratio * scale
                k, r, c = vox[rng.integers(len(vox))]
                off = rng.uniform(-0.25, 0.25, 3) * np.array([sx, sy, sz])
                cen = np.array([c * sx, r * sy, k * sz]) + off  # index-space mm (x, y, z)
                res = _try(stations, organs, nodes, cen, d, a_s, a_l, (sx, sy, sz), st.id,
                           (k, r, c))
                if res is None:
                    continue
                box, inside, alpha = res
                nid += 1
                nodes[box][inside] = nid
                h = hu[box]
                h += alpha * (np.float32(node_hu) - h)
                world = [float(origin[0] + cen[0]), float(origin[1] + cen[1]),
                         float(origin[2] + cen[2])]
                out.append({"id": nid, "station": st.key, "zone": zone_of_station(st.key).name,
                            "center_mm": [round(v, 2) for v in world],
                            "short_axis_mm": round(2 * a_s, 2),
                            "long_axis_mm": round(2 * a_l, 2),
                            "hu": round(node_hu, 1)})
                placed += 1
                ok = True
                break
            del ok
        counts[st.key] = {"drawn": n, "placed": placed}
    return nodes, out, counts


def _try(stations, organs, nodes, cen, d, a_s, a_l, sp, sid, kvox):
    sx, sy, sz = sp
    margin = 1.5
    ext = a_l + margin
    k0 = max(int(np.floor((cen[2] - ext) / sz)), 0)
    k1 = min(int(np.ceil((cen[2] + ext) / sz)) + 1, stations.shape[0])
    r0 = max(int(np.floor((cen[1] - ext) / sy)), 0)
    r1 = min(int(np.ceil((cen[1] + ext) / sy)) + 1, stations.shape[1])
    c0 = max(int(np.floor((cen[0] - ext) / sx)), 0)
    c1 = min(int(np.ceil((cen[0] + ext) / sx)) + 1, stations.shape[2])
    box = (slice(k0, k1), slice(r0, r1), slice(c0, c1))
    zz, yy, xx = np.meshgrid(np.arange(k0, k1) * sz - cen[2], np.arange(r0, r1) * sy - cen[1],
                             np.arange(c0, c1) * sx - cen[0], indexing="ij")
    along = xx * d[0] + yy * d[1] + zz * d[2]
    perp2 = np.maximum(xx ** 2 + yy ** 2 + zz ** 2 - along ** 2, 0.0)
    rho = np.sqrt(perp2 / a_s ** 2 + along ** 2 / a_l ** 2)
    rho_m = np.sqrt(perp2 / (a_s + margin) ** 2 + along ** 2 / (a_l + margin) ** 2)
    inside = rho <= 1.0
    kk, rr, cc = kvox
    inside[kk - k0, rr - r0, cc - c0] = True
    near = rho_m <= 1.0
    near |= inside
    if not (stations[box][inside] == sid).all():
        return None
    if (organs[box][near] != 0).any() or (nodes[box][near] != 0).any():
        return None
    # soft edge in HU: distance-like (1 - rho) * short radius, over one in-plane pixel
    alpha = np.clip((1.0 - rho) * a_s / sx + 0.5, 0.0, 1.0).astype(np.float32)
    alpha[inside] = np.maximum(alpha[inside], 0.5)
    return box, inside, alpha
