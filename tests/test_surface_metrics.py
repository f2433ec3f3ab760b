"""Surface distances and per-label metrics against analytic answers and the DeepMind library."""

from __future__ import annotations

import math

import numpy as np
import pytest
import surface_distance as sdl

from deepstationing.data.image import Image
from deepstationing.errors import InputError
from deepstationing.evaluation import surface as surface_mod
from deepstationing.evaluation.metrics import (
    Metrics,
    image_metrics,
    label_map_metrics,
    mask_metrics,
)
from deepstationing.evaluation.surface import surface_distances

CT_SPACING = (5.0, 0.7, 0.7)  # (z, y, x): 5 mm slices, 0.7 mm pixels


# ---------------------------------------------------------------------- analytic references
def analytic_shifted_box_assd(size_mm: tuple[float, float, float], axis: int, d: float) -> float:
    """Exact ASSD between a box and the same box shifted by ``d`` mm along ``axis``.

    Continuous surfaces, 0 < d < size along ``axis``. By symmetry (reflection) both directed
    means are equal, so ASSD is the area-weighted mean distance from the surface of box A
    to the surface of box B = A + d·e_axis. Faces of A, with (u, v) the two other extents:

    * trailing face (outside B, facing away from the shift): every point is d from B's
      trailing face -> integral u·v·d;
    * leading face (inside B): distance min(d, distance to the rectangle's edge m(p)) (the
      other candidates, B's far faces, are farther) -> ∫ min(d, m) dA = ∫_0^d (u-2t)(v-2t) dt
      (area where m > t), for d <= min(u, v)/2;
    * side faces (perimeter 2(u+v), length L along the axis): points at axial position s < d
      lie outside B, at distance d - s from B's side face; the rest lie on B's side
      -> integral 2(u+v)·d²/2.
    """
    size = list(size_mm)
    length = size.pop(axis)
    u, v = size
    assert 0 < d < length and d <= min(u, v) / 2
    lead = (u * v * d - (u + v) * d**2 + 4 * d**3 / 3)  # ∫_0^d (u-2t)(v-2t) dt
    num = u * v * d + lead + (u + v) * d**2
    den = 2 * u * v + 2 * (u + v) * length
    return num / den


def box_pair(shape, box, axis: int, shift_vox: int) -> tuple[np.ndarray, np.ndarray]:
    truth = np.zeros(shape, bool)
    truth[box] = True
    return truth, np.roll(truth, shift_vox, axis=axis)


def sphere(shape, spacing, centre_mm, radius_mm) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    r2 = sum((g * s - c) ** 2 for g, s, c in zip(grids, spacing, centre_mm))
    return r2 <= radius_mm**2


# ---------------------------------------------------------------------- shifted boxes
@pytest.mark.parametrize(
    "axis, shift_vox",
    [(0, 2), (0, 1), (2, 3), (1, 4)],
    ids=["z 2 slices (10 mm)", "z 1 slice (5 mm)", "x 3 px (2.1 mm)", "y 4 px (2.8 mm)"],
)
def test_shifted_box_assd_matches_exact_integral_on_anisotropic_grid(axis, shift_vox):
    # a box of 40 x 40 x 10 voxels (x, y, z) = 28 x 28 x 50 mm on a 0.7 x 0.7 x 5 mm grid
    shape, box = (16, 52, 52), (slice(3, 13), slice(6, 46), slice(6, 46))
    truth, pred = box_pair(shape, box, axis, shift_vox)
    size_mm = tuple((s.stop - s.start) * sp for s, sp in zip(box, CT_SPACING))
    d = shift_vox * CT_SPACING[axis]
    exact = analytic_shifted_box_assd(size_mm, axis, d)

    m = mask_metrics(truth, pred, CT_SPACING)
    assert abs(m.assd - exact) / exact < 0.03, (m.assd, exact)
    # every point of the trailing face is exactly d from the other box; nothing is farther
    assert m.hd == pytest.approx(d)
    n = box[axis].stop - box[axis].start
    assert m.dsc == pytest.approx((n - shift_vox) / n)


def test_voxel_counting_assd_is_far_off_where_area_weighting_is_right():
    """Why area weighting matters: MONAI counts boundary voxels and misses by ~2x here."""
    monai_metrics = pytest.importorskip("monai.metrics")
    torch = pytest.importorskip("torch")
    shape, box = (16, 52, 52), (slice(3, 13), slice(6, 46), slice(6, 46))
    truth, pred = box_pair(shape, box, 0, 2)
    exact = analytic_shifted_box_assd((50.0, 28.0, 28.0), 0, 10.0)

    ours = mask_metrics(truth, pred, CT_SPACING).assd
    y = torch.from_numpy(truth)[None, None].float()
    y_pred = torch.from_numpy(pred)[None, None].float()
    voxel_counting = float(monai_metrics.compute_average_surface_distance(
        y_pred, y, symmetric=True, spacing=CT_SPACING)[0, 0])
    assert abs(ours - exact) / exact < 0.03
    assert abs(voxel_counting - exact) / exact > 0.20, (voxel_counting, exact)


def test_spacing_axis_order_matters_z_shift_is_10_mm_not_1_4():
    # Image spacing is (x, y, z); the metrics need array order (z, y, x) = array_spacing
    shape, box = (16, 30, 30), (slice(3, 13), slice(5, 25), slice(5, 25))
    truth, pred = box_pair(shape, box, 0, 2)
    t_img = Image(truth.astype(np.uint8), spacing=(0.7, 0.7, 5.0))
    p_img = Image(pred.astype(np.uint8), spacing=(0.7, 0.7, 5.0))
    assert t_img.array_spacing == CT_SPACING
    m = image_metrics(t_img, p_img, labels=[1])[1]
    assert m.hd == pytest.approx(10.0)
    assert m.hd95 == pytest.approx(10.0)
    # the same arrays with the spacing given in the wrong order would say 1.4 mm
    wrong = mask_metrics(truth, pred, t_img.spacing)
    assert wrong.hd == pytest.approx(1.4)
    # an in-plane shift of 2 columns is 1.4 mm
    truth_x, pred_x = box_pair(shape, box, 2, 2)
    assert mask_metrics(truth_x, pred_x, CT_SPACING).hd == pytest.approx(1.4)


# ---------------------------------------------------------------------- spheres
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.7, 0.7)], ids=["iso", "aniso"])
def test_concentric_spheres(spacing):
    r, delta = 12.0, 3.0
    shape = tuple(int(math.ceil(2 * (r + delta + 3) / s)) for s in spacing)
    centre = tuple(n * s / 2 + 0.3 for n, s in zip(shape, spacing))  # off-lattice
    inner = sphere(shape, spacing, centre, r)
    outer = sphere(shape, spacing, centre, r + delta)
    m = mask_metrics(inner, outer, spacing)

    # Voxelised surfaces lie within half a voxel diagonal of the true spheres, so each
    # surfel distance (and HD) is within one voxel diagonal of delta. For the ASSD the
    # errors average out except for a staircase bias: the nearest corner of the other
    # voxelised surface is on average a little closer than the smooth sphere (about 0.45
    # voxel here, shrinking with the voxel size), so it is held to half the largest edge.
    diag = math.sqrt(sum(s * s for s in spacing))
    assert abs(m.hd - delta) <= diag
    assert abs(m.hd95 - delta) <= diag
    assert m.hd95 <= m.hd
    assert abs(m.assd - delta) <= max(spacing) / 2, m.assd

    # DSC: the inner sphere lies inside the outer one, so DSC = 2a / (a + b) with a, b the
    # sphere volumes. Voxelisation changes the volumes by relative errors e_a, e_b (a few
    # 0.1 % to ~1 % at these radii; checked < 2 %), which moves DSC by at most
    # 2ab / (a + b)² * (|e_a| + |e_b|): that is the tolerance.
    v = float(np.prod(spacing))
    a, b = (4 / 3 * math.pi * r**3), (4 / 3 * math.pi * (r + delta) ** 3)
    e_a, e_b = inner.sum() * v / a - 1, outer.sum() * v / b - 1
    assert abs(e_a) < 0.02 and abs(e_b) < 0.02
    tol = 2 * a * b / (a + b) ** 2 * (abs(e_a) + abs(e_b))
    assert abs(m.dsc - 2 * a / (a + b)) <= tol + 1e-12


# ---------------------------------------------------------------------- empty masks
def test_empty_conventions_for_masks():
    a = np.zeros((6, 8, 8), bool)
    b = a.copy()
    b[2:4, 2:5, 2:5] = True
    both = mask_metrics(a, a, CT_SPACING)
    assert both.empty == "both" and all(math.isnan(x) for x in (both.dsc, both.hd, both.hd95,
                                                                  both.assd))
    pred_empty = mask_metrics(b, a, CT_SPACING)  # (truth, pred)
    assert pred_empty.empty == "pred" and pred_empty.dsc == 0.0
    assert all(math.isnan(x) for x in (pred_empty.hd, pred_empty.hd95, pred_empty.assd))
    truth_empty = mask_metrics(a, b, CT_SPACING)
    assert truth_empty.empty == "truth" and truth_empty.dsc == 0.0
    assert math.isnan(truth_empty.assd)


def test_empty_conventions_in_label_maps_and_surfaces():
    truth = np.zeros((8, 20, 20), np.uint8)
    pred = np.zeros_like(truth)
    truth[2:5, 3:9, 3:9] = 1   # only in truth
    pred[2:5, 10:16, 10:16] = 2  # only in prediction
    truth[5:7, 5:15, 5:15] = 3
    pred[5:7, 5:15, 5:15] = 3  # identical
    res = label_map_metrics(truth, pred, CT_SPACING, labels=[1, 2, 3, 4])
    assert list(res) == [1, 2, 3, 4]
    assert res[1] == Metrics(0.0, math.nan, math.nan, math.nan, "pred")
    assert res[2] == Metrics(0.0, math.nan, math.nan, math.nan, "truth")
    assert res[3] == Metrics(1.0, 0.0, 0.0, 0.0, "")
    assert res[4] == Metrics(math.nan, math.nan, math.nan, math.nan, "both")
    # labels=None: only labels present in either map
    assert sorted(label_map_metrics(truth, pred, CT_SPACING)) == [1, 2, 3]
    assert label_map_metrics(np.zeros_like(truth), np.zeros_like(truth), CT_SPACING) == {}
    # the surface layer does not crash on empty masks either (the library would, on NumPy 2)
    sd = surface_distances(truth == 1, pred == 1, CT_SPACING)
    assert sd.empty and math.isnan(sd.hausdorff()) and math.isnan(sd.assd())
    assert sd.truth_areas.sum() > 0 and sd.pred_areas.size == 0
    sd0 = surface_distances(truth == 9, pred == 9, CT_SPACING)
    assert sd0.empty and math.isnan(sd0.hausdorff(95))


# ---------------------------------------------------------------------- vs the library
def _label_pair(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Irregular labelled blobs, one touching the volume border, one with a far outlier."""
    rng = np.random.default_rng(seed)
    shape = (24, 96, 96)
    truth = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    zz, yy, xx = np.ogrid[:24, :96, :96]
    for label in range(1, 6):
        c = rng.uniform([5, 20, 20], [19, 76, 76])
        r = rng.uniform([2, 6, 6], [4, 16, 16])
        e = ((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2
        noise = rng.normal(0, 0.15, shape)
        truth[(e + noise) <= 1] = label
        c2 = c + rng.uniform(-1.5, 1.5, 3)
        e2 = ((zz - c2[0]) / r[0]) ** 2 + ((yy - c2[1]) / r[1]) ** 2 + ((xx - c2[2]) / r[2]) ** 2
        pred[(e2 + rng.normal(0, 0.15, shape)) <= 1] = label
    truth[0:3, 0:10, 40:60] = 6  # touches the volume border
    pred[0:4, 0:12, 42:60] = 6
    pred[20:23, 85:90, 85:90] = 2  # distant false positive -> large, nearly empty box
    return truth, pred


def _deepmind(truth, pred, spacing):
    sd = sdl.compute_surface_distances(truth, pred, spacing)
    a_t, a_p = sd["surfel_areas_gt"].sum(), sd["surfel_areas_pred"].sum()
    d_tp, d_pt = sdl.compute_average_surface_distance(sd)
    return sd, (sdl.compute_dice_coefficient(truth, pred), sdl.compute_robust_hausdorff(sd, 100),
                sdl.compute_robust_hausdorff(sd, 95), (d_tp * a_t + d_pt * a_p) / (a_t + a_p))


@pytest.mark.parametrize("path", ["auto", "edt", "kdtree"])
def test_cropped_label_maps_match_uncropped_library(path, monkeypatch):
    threshold = {"auto": surface_mod.EDT_VOXELS_PER_SURFEL, "edt": math.inf, "kdtree": 0.0}
    monkeypatch.setattr(surface_mod, "EDT_VOXELS_PER_SURFEL", threshold[path])
    truth, pred = _label_pair()
    spacing = (5.0, 0.7, 0.8)  # three different spacings: any axis mix-up would show
    ours = label_map_metrics(truth, pred, spacing)
    assert sorted(ours) == [1, 2, 3, 4, 5, 6]
    assert ours[2].hd95 < ours[2].hd  # the outlier moves HD, barely HD95
    for label, m in ours.items():
        sd, (dsc, hd, hd95, assd) = _deepmind(truth == label, pred == label, spacing)
        assert m.dsc == pytest.approx(dsc, abs=1e-12)
        assert m.hd == pytest.approx(hd, abs=1e-9)
        assert m.hd95 == pytest.approx(hd95, abs=1e-9)
        assert m.assd == pytest.approx(assd, abs=1e-9)
        # and surfel by surfel, on the full volume vs our crop
        box = tuple(slice(a.start, a.stop) for a in _union_box(truth, pred, label))
        ours_sd = surface_distances(truth[box] == label, pred[box] == label, spacing)
        np.testing.assert_allclose(ours_sd.truth_to_pred, sd["distances_gt_to_pred"], atol=1e-9)
        np.testing.assert_allclose(ours_sd.pred_to_truth, sd["distances_pred_to_gt"], atol=1e-9)
        np.testing.assert_allclose(np.sort(ours_sd.truth_areas), np.sort(sd["surfel_areas_gt"]))
        np.testing.assert_allclose(np.sort(ours_sd.pred_areas), np.sort(sd["surfel_areas_pred"]))


def _union_box(truth, pred, label):
    idx = np.argwhere((truth == label) | (pred == label))
    return tuple(slice(lo, hi + 1) for lo, hi in zip(idx.min(0), idx.max(0)))


def test_image_metrics_rejects_geometry_mismatch_naming_the_prediction():
    t = Image(np.zeros((4, 5, 6), np.uint8), spacing=(0.7, 0.7, 5.0))
    p = Image(np.zeros((4, 5, 6), np.uint8), spacing=(0.7, 0.7, 2.5), path="/x/pred.nii.gz")
    with pytest.raises(InputError, match=r"^/x/pred\.nii\.gz: geometry mismatch: spacing"):
        image_metrics(t, p)


def test_bad_inputs_raise_clear_errors():
    a = np.zeros((4, 5, 6), np.uint8)
    with pytest.raises(ValueError, match="same shape"):
        label_map_metrics(a, np.zeros((4, 5, 7), np.uint8), CT_SPACING)
    with pytest.raises(ValueError, match="integer"):
        label_map_metrics(a.astype(float), a, CT_SPACING)
    with pytest.raises(ValueError, match="spacing"):
        surface_distances(a, a, (1.0, 1.0))
