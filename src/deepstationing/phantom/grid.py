"""Voxel grid of a phantom case and its placement in the world (LPS) frame.

The anatomy is built in the *anatomy frame* (origin at the carina, +x patient left,
+y posterior, +z superior); the world frame of the images is the anatomy frame rotated about z
by ``rot`` and shifted by ``shift``. :class:`Grid` maps pixels to anatomy coordinates and
anatomy boxes to pixel boxes.

>>> g = Grid((2.0, 2.0, 5.0), (3, 4, 4), (-3.0, -3.0, -5.0), 0.0, (0.0, 0.0, 0.0))
>>> g.slice_z_world().tolist()
[-5.0, 0.0, 5.0]
>>> g.pixel_box((-1.0, 1.0, -1.0, 1.0))
(slice(0, 4, None), slice(0, 4, None))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Grid"]


@dataclass
class Grid:
    """Voxel grid and world placement of one case."""

    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]  # z, y, x
    origin: tuple[float, float, float]
    rot: float  # radians about z, anatomy -> world
    shift: tuple[float, float, float]  # world position of the anatomy origin (carina)

    def slice_z_world(self) -> np.ndarray:
        return self.origin[2] + np.arange(self.shape[0]) * self.spacing[2]

    def anatomy_xy(self) -> tuple[np.ndarray, np.ndarray]:
        nz, ny, nx = self.shape
        xw = self.origin[0] + np.arange(nx) * self.spacing[0] - self.shift[0]
        yw = self.origin[1] + np.arange(ny) * self.spacing[1] - self.shift[1]
        c, s = np.cos(self.rot), np.sin(self.rot)
        xa = (c * xw[None, :] + s * yw[:, None]).astype(np.float32)
        ya = (-s * xw[None, :] + c * yw[:, None]).astype(np.float32)
        return xa, ya

    def coords(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Anatomy ``(x, y)`` of pixel rows/cols (any integers, also outside the image)."""
        xw = self.origin[0] + np.asarray(cols) * self.spacing[0] - self.shift[0]
        yw = self.origin[1] + np.asarray(rows) * self.spacing[1] - self.shift[1]
        c, s = np.cos(self.rot), np.sin(self.rot)
        xa = (c * xw[None, :] + s * yw[:, None]).astype(np.float32)
        ya = (-s * xw[None, :] + c * yw[:, None]).astype(np.float32)
        return xa, ya

    def to_world(self, x, y, z):
        c, s = np.cos(self.rot), np.sin(self.rot)
        return (c * x - s * y + self.shift[0], s * x + c * y + self.shift[1], z + self.shift[2])

    def pixel_box(self, bb) -> tuple[slice, slice] | None:
        """Pixel slices ``(rows, cols)`` covering an anatomy-frame box ``(x0, x1, y0, y1)``."""
        x0, x1, y0, y1 = bb
        xs = np.array([x0, x1, x0, x1])
        ys = np.array([y0, y0, y1, y1])
        wx, wy, _ = self.to_world(xs, ys, 0.0)
        sx, sy = self.spacing[0], self.spacing[1]
        c0 = int(np.floor((wx.min() - self.origin[0]) / sx)) - 1
        c1 = int(np.ceil((wx.max() - self.origin[0]) / sx)) + 2
        r0 = int(np.floor((wy.min() - self.origin[1]) / sy)) - 1
        r1 = int(np.ceil((wy.max() - self.origin[1]) / sy)) + 2
        ny, nx = self.shape[1], self.shape[2]
        c0, c1, r0, r1 = max(c0, 0), min(c1, nx), max(r0, 0), min(r1, ny)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def pixel_boxes(self, boxes: np.ndarray) -> list:
        """:meth:`pixel_box` for ``(n, 4)`` anatomy boxes (NaN rows: no box), vectorised."""
        boxes = np.asarray(boxes, np.float64)
        ok = ~np.isnan(boxes).any(axis=1)
        b = np.where(ok[:, None], boxes, 0.0)
        x0, x1, y0, y1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
        xs = np.stack([x0, x1, x0, x1])
        ys = np.stack([y0, y0, y1, y1])
        wx, wy, _ = self.to_world(xs, ys, 0.0)
        sx, sy = self.spacing[0], self.spacing[1]
        c0 = np.floor((wx.min(axis=0) - self.origin[0]) / sx).astype(np.int64) - 1
        c1 = np.ceil((wx.max(axis=0) - self.origin[0]) / sx).astype(np.int64) + 2
        r0 = np.floor((wy.min(axis=0) - self.origin[1]) / sy).astype(np.int64) - 1
        r1 = np.ceil((wy.max(axis=0) - self.origin[1]) / sy).astype(np.int64) + 2
        ny, nx = self.shape[1], self.shape[2]
        c0, c1 = np.maximum(c0, 0), np.minimum(c1, nx)
        r0, r1 = np.maximum(r0, 0), np.minimum(r1, ny)
        ok &= (c0 < c1) & (r0 < r1)
        return [(slice(a, b_), slice(c, d)) if o else None
                for o, a, b_, c, d in zip(ok.tolist(), r0.tolist(), r1.tolist(), c0.tolist(),
                                         c1.tolist())]
