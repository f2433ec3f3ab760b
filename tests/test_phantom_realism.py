"""Phantom 2.x realism: arms, table, body shapes, heart chambers, contrast phases, lung trees,
partial volume and acquisitions, each checked against its exact construction (small preset).

Cases of seed 0 used (their draws, from ``draw_parameters``): 0 arterial, arms down, male,
curved table 11.6 mm below the back; 3 venous, arms up, female; 7 non-contrast, arms down;
11 slices of 1.34 mm over a 377 mm field of view when the acquisition is varied.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from scipy import ndimage

from deepstationing.phantom import generate_case
from deepstationing.phantom.anatomy import Anatomy
from deepstationing.phantom.appearance import hu_table
from deepstationing.phantom.body import fat_thickness
from deepstationing.phantom.grid import Grid
from deepstationing.phantom.raster import rasterize
from deepstationing.phantom.raster_lungs import slab_fraction
from deepstationing.schema import ORGANS, STATIONS

OID = {o.key: o.id for o in ORGANS}


def _sha(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(a.tobytes() + str(a.dtype).encode() + str(a.shape).encode()).hexdigest()


#: sha256 of the truth of small cases 0 and 1 (seed 0) written by phantom version 1.0
V1_TRUTH = {
    0: {"organs": "8426d31144f380a7b410bc5a0aee1ef08f7fb453b5a5e6a9a441bb8c5cdb8324",
        "stations": "c8913ebfe620dfadcc779cc66f862eb115d8c79136112cb304101eabdd935ce5",
        "nodes": "552ec8c97e436f84ab99d901e7c00ffca909177ea5cb6c057e6250910e88e44c",
        "nodes_list": "8783706253296548b086fd332414965a0bdb13885d8a0f126605806a29d7cb39"},
    1: {"organs": "e6b2319e095b8d67874444d9d774541f13986ab946751d1d7d4bda432eaa3a4f",
        "stations": "81fc235a8e635522b866a4f02340d16061ecb233b0e73df5b9ce23eac39db8f8",
        "nodes": "5eeb26852a638e2fed8c08ce2907f8b4610c0b6cab57be98db5ae0de995a9e77",
        "nodes_list": "133006757d31cb7910c2ef6734b7cc65796ff53cae5d8bd10217da0a8faf5853"},
}


@pytest.fixture(scope="module")
def cases():
    return {i: generate_case(i, seed=0, preset="small") for i in (0, 1, 3, 7)}


def _grid(case) -> Grid:
    m = case.meta
    return Grid(tuple(m["spacing"]), tuple(m["shape_zyx"]), tuple(m["origin"]),
                float(np.deg2rad(m["world_from_anatomy"]["rot_z_deg"])),
                tuple(m["world_from_anatomy"]["shift_mm"]))


def _anatomy_xyz(case):
    g = _grid(case)
    xa, ya = g.anatomy_xy()
    return g, xa, ya, g.slice_z_world() - g.shift[2]


def test_truth_identical_to_version_1(cases):
    """The habitus, table, trees, chambers and acquisition change the CT only: organs,
    stations and nodes are the bytes phantom 1.0 wrote."""
    for i, want in V1_TRUTH.items():
        c = cases[i]
        got = {"organs": _sha(c.organs.array), "stations": _sha(c.stations.array),
               "nodes": _sha(c.nodes.array),
               "nodes_list": hashlib.sha256(json.dumps(c.nodes_list, sort_keys=True)
                                            .encode()).hexdigest()}
        assert got == want, i


def test_arms_carry_no_label_and_have_a_humerus(cases):
    for i, arms in ((0, "down"), (3, "up")):
        c = cases[i]
        assert c.meta["params"]["arms"] == arms
        anat = Anatomy(c.meta["params"])
        g, xa, ya, za = _anatomy_xyz(c)
        arm = np.zeros(c.ct.shape, bool)
        for k, z in enumerate(za):
            torso = anat.outline.sd(xa, ya, float(z)) < 0
            for a in anat.arms:
                arm[k] |= (a.limb.sd(xa, ya, float(z)) < -2.0) & ~torso
        assert arm.sum() > 200, (i, arm.sum())
        assert not c.organs.array[arm].any() and not c.stations.array[arm].any()
        assert c.body.array[arm].all()  # the body mask holds the arms
        slices = np.nonzero(arm.any(axis=(1, 2)))[0]
        if arms == "down":  # beside the chest on (nearly) every slice
            assert len(slices) > 0.8 * c.ct.shape[0]
        else:  # raised: only beside the neck, in the top slices
            assert slices.min() > 0.6 * c.ct.shape[0]
        assert np.percentile(c.ct.array[arm], 99) > 300  # humerus


def test_table_below_the_body_with_its_air_gap(cases):
    c = cases[0]  # curved table, 11.6 mm gap
    g = _grid(c)
    y_top = c.meta["body"]["table_top_y_world"]
    row = int(np.ceil((y_top - g.origin[1]) / g.spacing[1]))
    mid = slice(c.ct.shape[2] // 2 - 4, c.ct.shape[2] // 2 + 4)
    ct, body = c.ct.array, c.body.array
    assert not body[:, row:, :].any()  # the table is below every body voxel
    assert np.median(ct[:, row, mid]) > -300 or np.median(ct[:, row + 1, mid]) > -300
    lowest = max(np.nonzero(body[k, :, mid].any(axis=1))[0].max() for k in range(len(ct)))
    gap_rows = ct[:, lowest + 2:row - 1, mid]
    assert gap_rows.size and np.median(gap_rows) < -900  # air between back and table
    assert not c.organs.array[:, row:, :].any() and not c.stations.array[:, row:, :].any()


def test_heart_chambers_left_and_right(cases):
    """Arterial phase: left-heart blood is brighter than the right heart's and lies to the
    patient's left (+x, LPS), posterior of it (+y)."""
    c = cases[0]
    p = c.meta["params"]
    assert p["phase"] == "arterial"
    anat = Anatomy(p)
    g = _grid(c)
    hu = hu_table(p)
    ras = rasterize(anat, g, hu)
    heart = ras.organs == OID["heart"]
    left = heart & (np.abs(ras.hu - hu["blood_left"]) < 1)
    right = heart & (np.abs(ras.hu - hu["blood_right"]) < 1)
    assert left.sum() > 50 and right.sum() > 50
    cl, cr = np.argwhere(left).mean(axis=0), np.argwhere(right).mean(axis=0)
    assert cl[2] > cr[2] and cl[1] > cr[1]  # columns grow to the left, rows posteriorly
    myo = heart & (np.abs(ras.hu - hu["myocardium"]) < 1)
    assert myo.sum() > 0.1 * heart.sum()


@pytest.mark.parametrize("case_index, phase, lo, hi", [(0, "arterial", 250, 500),
                                                       (3, "venous", 110, 215),
                                                       (7, "non-contrast", 20, 65)])
def test_contrast_phase_of_the_aorta(cases, case_index, phase, lo, hi):
    c = cases[case_index]
    assert c.meta["params"]["phase"] == phase
    m = c.organs.array == OID["descending_aorta"]
    core = ndimage.binary_erosion(m, structure=np.ones((1, 3, 3), bool))
    assert lo <= np.median(c.ct.array[core]) <= hi


def test_lung_trees_change_hu_not_labels(cases):
    """Vessels inside the lungs (noise-free): a few percent of the lung voxels are at least
    300 HU above the parenchyma; every one keeps its lung label."""
    c = cases[3]
    p = c.meta["params"]
    anat = Anatomy(p, tree_seed=1)
    ras = rasterize(anat, _grid(c), hu_table(p))
    lung = np.isin(ras.organs, [OID["lung_r"], OID["lung_l"]])
    assert np.array_equal(ras.organs, c.organs.array)  # the trees' seed changes no label
    dense = ras.hu[lung] > p["lung_hu"] + p["lung_gravity"] + 300
    assert 0.003 < dense.mean() < 0.2, dense.mean()
    assert len(anat.trees.a) > 500


def test_diaphragm_partial_volume(cases):
    """Right-lung voxels within half a slice above the dome mix lung and liver by the fraction
    ``f`` of the slab above the diaphragm: HU between ``f lung + (1 - f) liver`` and the same
    with the posterior lung gradient; higher up, lung is pure parenchyma (noise-free)."""
    c = cases[3]
    p = c.meta["params"]
    anat = Anatomy(p, tree_seed=1)
    g, xa, ya, za = _anatomy_xyz(c)
    hu = hu_table(p)
    anat.trees = None  # no vessels: the parenchyma and the slab mix alone
    ras = rasterize(anat, g, hu)
    dia = anat.diaphragm(xa, ya)
    dz = g.spacing[2]
    gap = za[:, None, None] - dia[None]
    # away from the organs' soft (partial-volume) edges, which blend over the lung
    lung_r = ndimage.binary_erosion(ras.organs == OID["lung_r"], np.ones((1, 5, 5), bool))
    near = lung_r & (gap < 0.5 * dz) & (xa < -30.0)[None]  # liver under the right dome
    assert near.sum() > 20
    f = slab_fraction(gap[near], dz)
    lo = f * p["lung_hu"] + (1 - f) * hu["liver"]
    hi = f * (p["lung_hu"] + p["lung_gravity"]) + (1 - f) * hu["liver"]
    mixed = ras.hu[near]
    assert np.all(mixed >= lo - 0.5) and np.all(mixed <= hi + 0.5)
    assert np.median(mixed) > p["lung_hu"] + 100  # visibly mixed, not parenchyma
    far = lung_r & (gap > dz)
    assert np.percentile(ras.hu[far], 99) <= p["lung_hu"] + p["lung_gravity"] + 1


def test_breasts_in_female_cases_only(cases):
    for i in (0, 3):
        c = cases[i]
        anat = Anatomy(c.meta["params"])
        assert bool(anat.outline.breasts) == (c.meta["params"]["sex"] == "female")
    c = cases[3]
    anat = Anatomy(c.meta["params"])
    g = _grid(c)
    for b in anat.outline.breasts:
        x, y, z = g.to_world(b.c[0], b.c[1] - 0.3 * b.ax[1], b.c[2])
        k, r, col = (int(round((v - o) / s)) for v, o, s in
                     zip((z, y, x), g.origin[::-1], g.spacing[::-1]))
        assert c.body.array[k, r, col] and c.organs.array[k, r, col] == 0
        assert c.stations.array[k, r, col] == 0


def test_noise_lower_in_the_air(cases):
    c = cases[3]
    air = c.ct.array[:, :6, :6].astype(float)
    m = c.organs.array == OID["descending_aorta"]
    core = ndimage.binary_erosion(m, structure=np.ones((1, 3, 3), bool))
    assert air.std() < 0.5 * c.ct.array[core].std()
    assert fat_thickness(c.meta["params"]) == pytest.approx(c.meta["body"]["fat_mm"], abs=0.01)


def test_varied_acquisition_grid_and_exact_truth():
    c = generate_case(11, seed=0, preset="small", acquisition="varied")
    p = c.meta["params"]
    fov, dz = p["fov_mm"], round(p["slice_mm"], 2)
    assert c.ct.spacing == pytest.approx((fov / 128, fov / 128, dz))
    assert c.ct.shape[1:] == (128, 128) and c.meta["acquisition"] == "varied"
    lm = c.meta["landmarks"]
    top = c.ct.origin[2] + (c.ct.shape[0] - 1) * dz
    assert top > lm["z_cric"] and c.ct.origin[2] < lm["z_dia"]
    assert set(np.unique(c.organs.array)) == set(range(len(ORGANS) + 1))
    assert set(np.unique(c.stations.array)) == set(range(len(STATIONS) + 1))
    assert not np.any((c.stations.array > 0) & (c.organs.array > 0))
    with pytest.raises(ValueError, match="varied"):
        generate_case(0, preset="small", spacing=(2.0, 2.0, 2.0), acquisition="varied")


def test_cli_varied_cohort(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "v"
    cmd = [sys.executable, "-m", "deepstationing", "phantom", "--cases", "2", "--out", str(out),
           "--acquisition", "varied", "--seed", "1", "--quiet"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["acquisition"] == "varied" and manifest["spacing"] is None
    spacings = {json.loads((out / f"case_00{i}" / "meta.json").read_text())["spacing"][2]
                for i in range(2)}
    assert len(spacings) == 2  # each case its own slice thickness
    res = subprocess.run(cmd[:-1] + ["--spacing", "2", "2", "2"], capture_output=True,
                         text=True)
    assert res.returncode == 2 and "--spacing" in res.stderr and "Traceback" not in res.stderr
