"""Contours from masks and back: exact round trips, holes, world coordinates, slab rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from deepstationing.data.dicom.contours import (
    contours_to_mask,
    fill_polygons,
    join_holes,
    mask_to_contours,
    mask_to_polygons,
    signed_area,
)
from deepstationing.data.image import Image
from deepstationing.errors import InputError


def _blobs(seed: int, shape=(6, 40, 50)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.normal(size=shape), (0.5, 2.0, 2.0))
    return noise > 0.05  # irregular regions with holes, islands and diagonal contacts


@pytest.mark.parametrize("seed", range(4))
def test_mask_contour_mask_round_trip_is_exact(seed):
    mask = _blobs(seed)
    img = Image(np.zeros(mask.shape, np.int16), spacing=(0.7, 0.9, 3.0),
                origin=(-12.0, 30.0, -50.0))
    contours = mask_to_contours(mask, img)
    assert np.array_equal(contours_to_mask([c for _, c in contours], img), mask)
    # the planes are the slices, at the slices' world z
    for k, c in contours:
        assert np.allclose(c[:, 2], img.index_to_world((k, 0, 0))[2])


def test_holes_islands_and_orientation():
    sl = np.zeros((30, 30), bool)
    sl[2:28, 2:28] = True      # outer square
    sl[8:22, 8:22] = False     # hole
    sl[12:18, 12:18] = True    # island in the hole
    polys = mask_to_polygons(sl)
    # hole (-), island (+), outer (+); marching squares cuts each corner by 1/8 pixel
    assert sorted(signed_area(p) for p in polys) == [-(14 * 14 - 0.5), 6 * 6 - 0.5,
                                                     26 * 26 - 0.5]
    assert np.array_equal(fill_polygons(polys, sl.shape), sl)


@pytest.mark.parametrize("seed", range(4))
def test_keyhole_contours_read_the_same_with_or_and_xor(seed):
    """One contour per region (holes attached): OR-ing readers and XOR-ing readers agree."""
    from matplotlib.path import Path as MplPath

    box = np.zeros((3, 60, 70), bool)
    box[:, 4:56, 4:66] = True
    mask = box & ~_blobs(seed, shape=(3, 60, 70))  # blobs inside the box become holes
    mask[:, 30:33, 30:33] = True
    mask[:, 29, 29:34] = mask[:, 33, 29:34] = mask[:, 29:34, 29] = mask[:, 29:34, 33] = False
    rr, cc = np.mgrid[0:60, 0:70]
    centres = np.column_stack([rr.ravel(), cc.ravel()])
    for k in range(mask.shape[0]):
        raw = mask_to_polygons(mask[k])
        joined = join_holes(raw)
        n_holes = sum(signed_area(p) < 0 for p in raw)
        assert len(joined) == len(raw) - n_holes and n_holes >= 2
        xor = fill_polygons(joined, mask[k].shape)
        union = np.zeros_like(mask[k])
        for p in joined:
            union |= fill_polygons([p], mask[k].shape)  # OR of separately filled contours
            # matplotlib's non-zero winding fill of the same polygon (another rasteriser)
            wind = MplPath(p[:, ::-1]).contains_points(centres[:, ::-1]).reshape(60, 70)
            assert np.array_equal(wind, fill_polygons([p], mask[k].shape))
        assert np.array_equal(xor, mask[k]) and np.array_equal(union, mask[k])
        # every channel is horizontal: each joined contour's extra edges have zero height
        for p in joined:
            assert signed_area(p) > 0


def test_fill_polygons_agrees_with_skimage_draw_polygon():
    from skimage.draw import polygon as sk_polygon

    rng = np.random.default_rng(1)
    for _ in range(20):
        n = rng.integers(3, 12)
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(3, 15, n)
        # irrational-ish offsets: no pixel centre exactly on an edge
        poly = np.column_stack([20.123 + rad * np.sin(ang), 20.377 + rad * np.cos(ang)])
        ours = fill_polygons([poly], (40, 40))
        ref = np.zeros((40, 40), bool)
        rr, cc = sk_polygon(poly[:, 0], poly[:, 1], (40, 40))
        ref[rr, cc] = True
        assert np.array_equal(ours, ref)


def test_flipped_x_axis_keeps_world_positions():
    """The same voxels stored with a mirrored x axis give the same world contours."""
    mask = np.zeros((3, 20, 24), bool)
    mask[1, 5:9, 2:6] = True  # near index x = 0
    img = Image(np.zeros(mask.shape), spacing=(1.5, 1.0, 2.0), origin=(-10.0, 0.0, 0.0))
    flipped = Image(np.zeros(mask.shape), spacing=(1.5, 1.0, 2.0),
                    origin=img.index_to_world((0, 0, 23)),
                    direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1))
    a = mask_to_contours(mask, img)
    b = mask_to_contours(mask[:, :, ::-1], flipped)
    assert len(a) == len(b) == 1
    box = lambda c: (c[:, 0].min(), c[:, 0].max(), c[:, 1].min(), c[:, 1].max())  # noqa: E731
    assert np.allclose(box(a[0][1]), box(b[0][1]))
    # x (patient left is +x) spans columns 2..5 of the unflipped grid
    assert np.allclose(box(a[0][1])[:2], (-10 + 1.5 * 1.5, -10 + 5.5 * 1.5))
    assert np.array_equal(contours_to_mask([a[0][1]], flipped), mask[:, :, ::-1])


def _square(z: float, x0=2.0, x1=8.0) -> np.ndarray:
    return np.array([[x0, x0, z], [x1, x0, z], [x1, x1, z], [x0, x1, z]])


def test_contours_between_slices_and_coarser_or_finer_planes():
    img = Image(np.zeros((10, 12, 12)), spacing=(1.0, 1.0, 3.0))  # slices at z = 0, 3, ..., 27
    # planes half-way between slices: each lands on one slice, never two
    m = contours_to_mask([_square(1.5 + 3 * i) for i in range(3)], img)
    assert m.any(axis=(1, 2)).nonzero()[0].tolist() == [1, 2, 3]
    # planes every 1 mm (finer than the CT): each slice takes only its own plane
    fine = [_square(z, 2, 8 if z != 6 else 5) for z in np.arange(3.0, 10.0, 1.0)]
    m = contours_to_mask(fine, img)
    assert m.any(axis=(1, 2)).nonzero()[0].tolist() == [1, 2, 3]
    assert m[2].sum() == 9  # the z = 6 plane (a smaller square), not a union with z = 5, 7
    # planes every 6 mm (coarser): each plane stands for a 6 mm slab, (z - 3, z + 3] mm, so
    # the slices between planes are filled and the last slab (9, 15] holds the 15 mm slice
    m = contours_to_mask([_square(z) for z in (0.0, 6.0, 12.0)], img)
    assert m.any(axis=(1, 2)).nonzero()[0].tolist() == [0, 1, 2, 3, 4, 5]
    # a gap in the ROI's planes stays a gap
    m = contours_to_mask([_square(z) for z in (0.0, 3.0, 6.0, 21.0, 24.0)], img)
    assert m.any(axis=(1, 2)).nonzero()[0].tolist() == [0, 1, 2, 7, 8]


def test_oblique_contour_is_refused():
    img = Image(np.zeros((4, 10, 10)), spacing=(1.0, 1.0, 2.0))
    tilted = np.array([[1.0, 1.0, 0.0], [5.0, 1.0, 2.0], [5.0, 5.0, 4.0]])
    with pytest.raises(InputError, match="not parallel to the CT slices"):
        contours_to_mask([tilted], img, name="GTV", source="rs.dcm")
