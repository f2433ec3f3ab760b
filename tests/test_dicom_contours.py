"""Contours from masks and back: exact round trips, holes, world coordinates, slab rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from deepstationing.data.dicom.contours import (
    contours_to_mask,
    fill_polygons,
    join_holes,
    label_map_contours,
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


# ----------------------------------------------------------- label maps traced in bulk
def _canonical(contours) -> list:
    """Contours as comparable values: each a cyclic sequence from its least vertex."""
    out = []
    for k, pts in contours:
        p = [tuple(np.round(v, 6)) for v in pts]
        i = min(range(len(p)), key=p.__getitem__)
        out.append((k, tuple(p[i:] + p[:i])))
    return sorted(out)


def _scattered_labels(seed: int, shape=(4, 70, 90), n_labels=5) -> np.ndarray:
    """Blobs of several labels touching each other, holes, islands and specks everywhere."""
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.uint8)
    for v in range(1, n_labels + 1):
        lab[_blobs(seed * 10 + v, shape)] = v
    specks = rng.random(shape) < 0.01
    lab[specks] = rng.integers(1, n_labels + 1, size=int(specks.sum()))
    return lab


@pytest.mark.parametrize("seed", range(3))
def test_label_map_contours_match_each_label_traced_alone(seed, monkeypatch):
    """All labels at once = each label's mask alone, however the boxes are packed."""
    import deepstationing.data.dicom.tracing as tracing

    lab = _scattered_labels(seed)
    img = Image(np.zeros(lab.shape, np.int16), spacing=(0.8, 0.7, 2.5), origin=(5.0, -3.0, 9.0))
    alone = {v: _canonical(mask_to_contours(lab == v, img)) for v in range(1, 6)}
    variants = {"default": {}, "many fields": {"FIELD_CELLS": 3000}}
    for name, settings in variants.items():
        for key, value in settings.items():
            monkeypatch.setattr(tracing, key, value)
        bulk = label_map_contours(lab, img, 5)
        for v in range(1, 6):
            assert _canonical(bulk[v]) == alone[v], (name, v)
            back = contours_to_mask([c for _, c in bulk[v]], img)
            assert np.array_equal(back, lab == v), (name, v)
        monkeypatch.undo()


@pytest.mark.parametrize("seed", range(3))
def test_holes_join_the_region_around_them(seed):
    """Holes given their region by the pixel next to them = join_holes' point-in-polygon
    assignment: many regions, holes, islands in holes, corners touching."""
    rng = np.random.default_rng(seed)
    sl = np.zeros((120, 150), bool)
    for _ in range(12):  # rings (regions with a hole), some with an island inside
        r, c, h = rng.integers(8, 100), rng.integers(8, 130), rng.integers(6, 16)
        sl[r:r + h, c:c + h] = True
        sl[r + 2:r + h - 2, c + 2:c + h - 2] = False
        if h > 9:
            sl[r + 4:r + h - 4, c + 4:c + h - 4] = True
    sl |= _blobs(seed, (1, 120, 150))[0] & (rng.random((120, 150)) < 0.5)
    img = Image(np.zeros((1, 120, 150), np.int16))
    ours = _canonical(mask_to_contours(sl[None], img))
    geometric = [(0, np.column_stack([p[:, 1], p[:, 0], np.zeros(len(p))]))
                 for p in join_holes(mask_to_polygons(sl))]
    assert ours == _canonical(geometric)
    assert sum(signed_area(p) < 0 for p in mask_to_polygons(sl)) >= 5  # holes were there


def test_contours_of_a_label_map_in_another_slice_order_land_on_the_right_slices(tmp_path):
    """A label map whose slices run the other way (z flipped) still names each contour's
    CT slice by its world z; a map between the CT's slices is refused."""
    from deepstationing.data.dicom.rtstruct import (
        rasterize_rtstruct,
        read_rtstruct,
        rois_from_label_map,
        write_rtstruct,
    )
    from deepstationing.data.dicom.series import write_ct_series
    from deepstationing.schema import STATIONS

    ct = Image(np.zeros((5, 16, 16), np.int16), spacing=(1.0, 1.0, 2.0))
    ref = write_ct_series(ct, tmp_path / "ct", uid_seed="order")
    lab = np.zeros(ct.shape, np.uint8)
    lab[1, 3:7, 3:9] = 8
    lab[3, 9:12, 4:6] = 7
    z_flipped = Image(lab[::-1].copy(), spacing=(1.0, 1.0, 2.0),
                      origin=ct.index_to_world((4, 0, 0)),
                      direction=(1, 0, 0, 0, 1, 0, 0, 0, -1))
    write_rtstruct(rois_from_label_map(z_flipped, STATIONS), ref, tmp_path / "rs.dcm")
    back = rasterize_rtstruct(read_rtstruct(tmp_path / "rs.dcm"), ref)
    assert np.array_equal(back["LNS_4R"], lab == 8) and np.array_equal(back["LNS_4L"], lab == 7)
    between = Image(lab, spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 1.0))
    with pytest.raises(InputError, match="LNS_4L: a contour at .* lies on no slice"):
        write_rtstruct(rois_from_label_map(between, STATIONS), ref, tmp_path / "rs2.dcm")


def test_ds_joined_is_format_ds_of_each_value():
    from deepstationing.data.dicom.values import ds_joined, ds_list

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 300, 500), np.round(rng.normal(0, 300, 500), 1),
                             [0.0, -0.0, 1e-17, -123456.78901234567, 2.5, 2.5]])
    text, ends = ds_joined(values.reshape(-1, 2))
    assert text.decode("ascii").split("\\")[:-1] == ds_list(values)
    assert len(ends) == len(values) and text[ends[9]:ends[19] - 1].decode("ascii") == \
        "\\".join(ds_list(values[10:20]))
    assert max(len(v) for v in ds_list(values)) <= 16


@pytest.mark.parametrize("seed", range(3))
def test_outlines_are_scikit_image_marching_squares(seed):
    """The same polygons as skimage.measure.find_contours (level 0.5, zero-padded slice),
    straight-run vertices removed: another implementation of marching squares."""
    from skimage.measure import find_contours

    def canon(polys):
        out = []
        for p in polys:
            p = [tuple(v) for v in np.round(p, 6)]
            keep = [v for i, v in enumerate(p)
                    if np.cross(np.subtract(v, p[i - 1]),
                                np.subtract(p[(i + 1) % len(p)], v)) != 0]
            i = min(range(len(keep)), key=keep.__getitem__)
            out.append(tuple(keep[i:] + keep[:i]))
        return sorted(out)

    mask = _scattered_labels(seed)[1] > 0
    sk = [c[:-1] - 1 for c in find_contours(np.pad(mask, 1).astype(float), 0.5)]
    assert canon(mask_to_polygons(mask)) == canon(sk)
