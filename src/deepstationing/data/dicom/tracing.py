"""Marching-squares outlines of every label on every slice of a label map, traced in bulk.

:func:`trace_label_map` outlines each label's regions and holes on each slice: marching
squares at level 0.5 on the label's zero-padded mask (contourpy, matplotlib's contouring
library, in C++), so an outline runs half-way between the label's pixel centres and the
others', and pixels touching only at a corner get separate outlines (scikit-image's
``find_contours`` draws the same polygons; it assembles them in Python, which took half of a
full-resolution export).

In bulk, so that thousands of regions (a prediction scattered over a scan unlike its
training data) cost little more than a few:

* each label's box on each slice is cut out of the slice's labelled part (one
  :func:`scipy.ndimage.find_objects` pass per slice);
* the boxes are packed side by side, a background row or column between them, into a few
  fields of at most :data:`FIELD_CELLS` cells, each traced by one call (contourpy's C++
  generator, called directly);
* vertices in the middle of straight runs are dropped for all outlines at once (the
  polygons are unchanged);
* each hole is given the region around it (:attr:`Rings.region`): where a box holds several
  regions, the 4-connected region of a pixel next to the hole (no polygon-in-polygon tests,
  which grew with the product of holes and regions).

>>> import numpy as np
>>> lab = np.zeros((2, 6, 8), np.uint8)
>>> lab[0, 1:4, 1:4] = 1; lab[0, 2, 2] = 0; lab[1, 2:5, 5:7] = 2
>>> rings = trace_label_map(lab, 2)
>>> [(int(k), int(v), float(a)) for k, v, a in zip(rings.slice, rings.label, rings.areas())]
[(0, 1, 8.5), (0, 1, -0.5), (1, 2, 5.5)]
>>> rings.ring(2).tolist()  # (row, column): half-way between pixel centres, corners cut
[[2.0, 4.5], [1.5, 5.0], [1.5, 6.0], [2.0, 6.5], [4.0, 6.5], [4.5, 6.0], [4.5, 5.0], [4.0, 4.5]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Rings", "trace_label_map", "FIELD_CELLS"]

#: Most cells of one traced field (bounds the tracer's memory: 8 bytes a cell, a few times).
FIELD_CELLS = 2_000_000

@dataclass
class Rings:
    """Closed outlines: ring ``i`` is ``points[starts[i]:starts[i + 1]]`` ((row, column)
    vertices on the slice's grid, implicitly closed), of label ``label[i]`` on slice
    ``slice[i]``. Outlines have positive area, holes negative. ``region[i]`` numbers the
    region a ring bounds: an outline and the holes of its region share the number, and the
    rings of a region are consecutive, its outline first."""

    points: np.ndarray
    starts: np.ndarray
    label: np.ndarray
    slice: np.ndarray
    region: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def ring(self, i: int) -> np.ndarray:
        return self.points[self.starts[i]:self.starts[i + 1]]

    def areas(self) -> np.ndarray:
        """Signed (shoelace) area of every ring, as :func:`.contours.signed_area`."""
        counts = np.diff(self.starts)
        ring = np.repeat(np.arange(len(counts)), counts)
        i = np.arange(len(self.points))
        nxt = np.where(i == self.starts[1:][ring] - 1, self.starts[:-1][ring], i + 1)
        y, x = self.points[:, 0], self.points[:, 1]
        return 0.5 * np.bincount(ring, weights=x * y[nxt] - x[nxt] * y, minlength=len(counts))


@dataclass
class _Box:
    k: int
    label: int
    row: int
    col: int
    mask: np.ndarray


def _boxes(labels: np.ndarray, n_labels: int) -> list[_Box]:
    """Each label's box on each slice (one pass over the labelled part of each slice)."""
    from scipy.ndimage import find_objects

    out: list[_Box] = []
    labelled = labels != 0
    rows, cols = labelled.any(axis=2), labelled.any(axis=1)
    for k in np.flatnonzero(rows.any(axis=1)):
        # the slice's labelled part only (stations fill a small part of a slice)
        r0, r1 = np.flatnonzero(rows[k])[[0, -1]]
        c0, c1 = np.flatnonzero(cols[k])[[0, -1]]
        a = labels[k, r0:r1 + 1, c0:c1 + 1]
        out += [_Box(int(k), value, int(r0 + sl[0].start), int(c0 + sl[1].start),
                     a[sl] == value)
                for value, sl in enumerate(find_objects(a, n_labels), start=1)
                if sl is not None]
    return out


def _drop_straight_runs(points: np.ndarray, counts: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Remove vertices that continue a straight edge in the same direction, in every ring.

    ``points`` holds the rings one after the other, ``counts`` their lengths; returns the
    kept points and the new lengths.
    """
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    ring = np.repeat(np.arange(len(counts)), counts)
    i = np.arange(len(points))
    prev = np.where(i == starts[ring], i + counts[ring] - 1, i - 1)
    nxt = np.where(i == starts[ring] + counts[ring] - 1, starts[ring], i + 1)
    before = points - points[prev]
    after = points[nxt] - points
    cross = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    dot = (before * after).sum(axis=1)
    keep = (np.abs(cross) > 1e-9) | (dot <= 0)
    return points[keep], np.bincount(ring[keep], minlength=len(counts))


def _pack(boxes: list[_Box]) -> tuple[int, list[list[tuple[int, int, int]]]]:
    """Shelves: boxes by decreasing height, left to right, a background column after each
    and a background row under each shelf; a field holds shelves up to FIELD_CELLS.

    Returns the fields' width and, per field, ``(box, row, column)`` of its boxes.
    """
    order = sorted(range(len(boxes)), key=lambda i: -boxes[i].mask.shape[0])
    width = max([1024] + [boxes[i].mask.shape[1] + 2 for i in order])
    fields: list[list[tuple[int, int, int]]] = [[]]
    x = y = shelf_h = 0
    for i in order:
        h, w = boxes[i].mask.shape
        if fields[-1] and x + w + 2 > width:  # next shelf
            y, x, shelf_h = y + shelf_h + 1, 0, 0
            if (y + h + 2) * width > FIELD_CELLS:  # next field
                fields.append([])
                y = 0
        shelf_h = max(shelf_h, h)
        fields[-1].append((i, y + 1, x + 1))
        x += w + 1
    return width, [f for f in fields if f]


def _trace_field(placed: list[tuple[int, int, int]], boxes: list[_Box], width: int,
                 grid: tuple[np.ndarray, np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trace one field: ``(points, counts, box index)`` of its rings, on the slices' grid."""
    import contourpy

    rows = max(r + boxes[b].mask.shape[0] for b, r, _ in placed) + 1
    field = np.zeros((rows, width))
    for b, r, c in placed:
        h, w = boxes[b].mask.shape
        field[r:r + h, c:c + w] = boxes[b].mask
    # contourpy's generator class itself: its contour_generator() wrapper builds the
    # coordinate grids and checks the field for NaN on every call (2.5 times the time)
    gen = contourpy.SerialContourGenerator(
        grid[0][:rows], grid[1][:rows], field, None, corner_mask=True,
        line_type=contourpy.LineType.ChunkCombinedOffset,
        fill_type=contourpy.FillType.OuterOffset, quad_as_tri=False,
        z_interp=contourpy.ZInterp.Linear, x_chunk_size=0, y_chunk_size=0)
    lines, offsets = gen.lines(0.5)
    if lines[0] is None:  # pragma: no cover - every box holds foreground
        return np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros(0, np.int64)
    xy, off = lines[0], offsets[0].astype(np.int64)
    keep = np.ones(len(xy), bool)
    keep[off[1:] - 1] = False  # each ring's closing vertex repeats its first
    xy = xy[keep]
    counts = np.diff(off) - 1
    ring = np.repeat(np.arange(len(counts)), counts)
    # the box of a ring: its mean vertex lies inside the box's rectangle (within the
    # convex hull); boxes found by (shelf row, column) in placement order
    my = np.floor(np.bincount(ring, xy[:, 1], len(counts)) / counts + 0.5)
    mx = np.floor(np.bincount(ring, xy[:, 0], len(counts)) / counts + 0.5)
    shelf_rows = np.unique([r for _, r, _ in placed])
    key = np.array([np.searchsorted(shelf_rows, r) * (width + 1) + c for _, r, c in placed])
    ring_key = (np.searchsorted(shelf_rows, my, side="right") - 1) * (width + 1) + mx
    owner = np.array([b for b, _, _ in placed])[np.searchsorted(key, ring_key, side="right")
                                                 - 1]
    shift = np.array([(boxes[b].row - r, boxes[b].col - c) for b, r, c in placed], float)
    where = {b: j for j, (b, _, _) in enumerate(placed)}
    rc = np.column_stack([xy[:, 1], xy[:, 0]]) + np.repeat(
        shift[[where[b] for b in owner.tolist()]], counts, axis=0)
    points, counts = _drop_straight_runs(rc, counts)
    return points, counts, owner


def _regions(rings_of_box: list[np.ndarray], areas: np.ndarray, box: _Box) -> np.ndarray:
    """The region (0, 1, ...) each ring of a box bounds: outlines one each, a hole that of
    the region around it, found as the region of a pixel next to the hole's first vertex
    (4-connected regions of the box's mask: marching squares at 0.5 keeps pixels touching
    at a corner apart, so a hole is bounded by one region)."""
    outline = areas > 0
    if outline.sum() == 1 or outline.all():
        return np.where(outline, np.cumsum(outline) - 1, 0)
    from scipy.ndimage import label

    comp = np.pad(label(box.mask)[0], 1)
    first = np.array([r[0] for r in rings_of_box]) - (box.row - 1, box.col - 1)
    # a vertex lies half-way between two pixels, along the row or along the column
    along_row = first[:, 0] == np.round(first[:, 0])
    step = np.where(along_row[:, None], [0.0, 0.5], [0.5, 0.0])
    a = np.round(first - step).astype(int)
    b = np.round(first + step).astype(int)
    ca, cb = comp[a[:, 0], a[:, 1]], comp[b[:, 0], b[:, 1]]
    return np.where(ca > 0, ca, cb) - 1


def trace_label_map(labels: np.ndarray, n_labels: int) -> Rings:
    """Outlines of every region and hole of labels ``1..n_labels`` on every slice.

    ``labels`` is a ``[z, y, x]`` array of label ids (0 is background; values above
    ``n_labels`` are left out). Rings are ordered by label, then slice, then region.
    """
    arr = np.asarray(labels)
    if arr.dtype.kind not in "iu" or arr.dtype.itemsize > 4:
        arr = arr.astype(np.int32)
    boxes = sorted(_boxes(arr, n_labels), key=lambda b: (b.label, b.k))
    width, fields = _pack(boxes)
    parts = []
    if fields:
        rows = max(r + boxes[b].mask.shape[0] for f in fields for b, r, _ in f) + 1
        grid = np.meshgrid(np.arange(width, dtype=float), np.arange(rows, dtype=float))
        parts = [_trace_field(f, boxes, width, (grid[0], grid[1])) for f in fields]
    empty = np.zeros(0, np.int64)
    if not parts:
        return Rings(np.zeros((0, 2)), np.zeros(1, np.int64), empty, empty, empty)
    points = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    box = np.concatenate([p[2] for p in parts])
    # a ring of fewer than 3 vertices encloses nothing (marching squares makes none)
    valid = counts >= 3
    points = points[np.repeat(valid, counts)]
    counts, box = counts[valid], box[valid]
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    areas = Rings(points, starts, empty, empty, empty).areas()
    # regions: numbered over all boxes; where a box has holes, each hole joins the
    # region around it
    region = np.arange(len(box))
    by_box = np.argsort(box, kind="stable")
    bounds = np.flatnonzero(np.diff(box[by_box])) + 1
    next_id = len(box)
    for group in np.split(by_box, bounds):
        if len(group) > 1 and (areas[group] < 0).any():
            local = _regions([points[starts[i]:starts[i + 1]] for i in group], areas[group],
                             boxes[int(box[group[0]])])
            region[group] = next_id + local
            next_id += int(local.max()) + 1
    # order: box (label, slice), region, outline before its holes, then as traced
    order = np.lexsort((np.arange(len(box)), areas < 0, region, box))
    first = starts[:-1][order]
    kept = counts[order]
    new_starts = np.concatenate([[0], np.cumsum(kept)]).astype(np.int64)
    take = np.repeat(first - new_starts[:-1], kept) + np.arange(new_starts[-1])
    box, region = box[order], region[order]
    return Rings(points[take], new_starts, np.array([boxes[b].label for b in box], np.int64),
                 np.array([boxes[b].k for b in box], np.int64), region)
