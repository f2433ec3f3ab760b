"""Phantom anatomy and station truth: presence, ordering, adjacency, exclusion (small preset)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from deepstationing.phantom import generate_case
from deepstationing.schema import ORGANS, STATIONS

CASES = (0, 1, 2)


@pytest.fixture(scope="module")
def cases():
    return [generate_case(i, seed=0, preset="small") for i in CASES]


def _sid(key):
    return STATIONS.by_key(key).id


def _oid(key):
    return ORGANS.by_key(key).id


def _zs(img, mask):
    """World z of the slices containing ``mask``."""
    ks = np.nonzero(mask.any(axis=(1, 2)))[0]
    return img.origin[2] + ks * img.spacing[2]


def test_every_organ_and_station_present(cases):
    for c in cases:
        org, st = c.organs.array, c.stations.array
        assert set(np.unique(org)) == set(range(len(ORGANS) + 1)), c.id
        assert set(np.unique(st)) == set(range(len(STATIONS) + 1)), c.id


def test_station_sizes_plausible(cases):
    for c in cases:
        vol = np.prod(c.stations.spacing) / 1000.0  # cm3 per voxel
        for s in STATIONS:
            v = (c.stations.array == s.id).sum() * vol
            assert 0.3 < v < 150.0, (c.id, s.key, v)


def test_no_station_voxel_inside_an_organ_or_air(cases):
    for c in cases:
        st, org = c.stations.array, c.organs.array
        assert not np.any((st > 0) & (org > 0)), c.id
        # stations live in fat: no station voxel is air or bone-dense in the noise-free sense
        hu = c.ct.array[(st > 0) & (c.nodes.array == 0)]
        assert np.median(hu) < -40 and np.percentile(hu, 99) < 300, c.id


def test_nodes_inside_their_station(cases):
    for c in cases:
        st, nodes = c.stations.array, c.nodes.array
        assert len(c.nodes_list) > 0
        ids = {n["id"] for n in c.nodes_list}
        assert ids == set(np.unique(nodes)) - {0}
        for n in c.nodes_list:
            vals = st[nodes == n["id"]]
            assert vals.size > 0 and np.all(vals == _sid(n["station"])), (c.id, n)
            assert 3.0 <= n["short_axis_mm"] <= 12.0
            assert 1.4 <= n["long_axis_mm"] / n["short_axis_mm"] <= 2.01


NODE_MARGIN_MM = 1.5  # nodes.py: no organ voxel within 1.5 mm of a node's surface


@pytest.fixture(scope="module")
def fine_cases():
    """A 1.4 mm in-plane grid: finer than the margin, so an organ voxel next to a node voxel
    (1.4 mm apart) breaks the check; on the 2.8 mm preset grid it could never fail."""
    return [generate_case(i, seed=0, preset="small", spacing=(1.4, 1.4, 5.0)) for i in (0, 1)]


def test_nodes_keep_their_margin_from_organs(fine_cases):
    for c in fine_cases:
        assert max(c.organs.spacing) > NODE_MARGIN_MM > min(c.organs.spacing)
        node = c.nodes.array > 0
        assert node.any()
        # around the nodes, padded by more than the margin (2 voxels in-plane, 1 slice)
        box = tuple(slice(max(s.start - p, 0), s.stop + p) for s, p in
                    zip(ndimage.find_objects(node.astype(np.uint8))[0], (1, 2, 2)))
        organ = c.organs.array[box] > 0
        assert organ.any()
        mm_to_organ = ndimage.distance_transform_edt(~organ, sampling=c.organs.array_spacing)
        assert mm_to_organ[node[box]].min() > NODE_MARGIN_MM, c.id


def test_vertical_order(cases):
    for c in cases:
        st = c.stations.array
        z = {s.key: _zs(c.stations, st == s.id) for s in STATIONS}
        lm = c.meta["landmarks"]
        assert z["2R"].min() > z["4R"].max()  # 2R above 4R
        assert z["2L"].min() > z["4L"].max()  # 2L above 4L
        assert z["4L"].min() > lm["z_lpa"] - 1e-3 and z["5"].min() > lm["z_lpa"] - 1e-3
        assert z["1R"].min() > lm["z_notch"] and z["1L"].min() > lm["z_notch"]
        assert z["1R"].max() <= lm["z_cric"] and z["1L"].max() <= lm["z_cric"]
        assert z["7"].max() <= lm["z_car"]  # 7 below (or at) the carina
        for k in ("3A", "3P"):
            assert z[k].min() > lm["z_car"] - 1e-3, k
        assert z["8"].max() < z["7"].max() and z["8"].min() > lm["z_dia"]
        assert z["6"].min() > lm["z_archbot"] - 5.01 and z["6"].max() <= lm["z_archtop"] + 5.01
        assert z["5"].max() <= lm["z_archbot"] + 5.01


def test_in_plane_relations(cases):
    """3P behind the trachea; 3A in front of 3P; right stations right of left ones."""
    tid = _oid("trachea")
    for c in cases:
        st, org = c.stations.array, c.organs.array
        for k in np.nonzero((st == _sid("3P")).any(axis=(1, 2)))[0]:
            tr_r, _ = np.nonzero(org[k] == tid)
            if tr_r.size == 0:
                continue
            r3p, _ = np.nonzero(st[k] == _sid("3P"))
            assert r3p.min() > tr_r.mean(), (c.id, k)  # rows grow posteriorly
        cen = {s.key: np.argwhere(st == s.id).mean(axis=0) for s in STATIONS}  # (k, row, col)
        assert cen["3A"][1] < cen["3P"][1]
        for rk, lk in (("1R", "1L"), ("2R", "2L"), ("4R", "4L")):
            assert cen[rk][2] < cen[lk][2], (c.id, rk, lk)


def test_adjacency_2r_4r_and_1_2(cases):
    """2R abuts 4R and 1R abuts 2R (touching after a 1-voxel dilation), as in spec A.1."""
    for c in cases:
        st = c.stations.array
        for a, b in (("2R", "4R"), ("1R", "2R"), ("4L", "5"), ("3P", "2R")):
            grown = ndimage.binary_dilation(st == _sid(a), iterations=2)
            assert np.any(grown & (st == _sid(b))), (c.id, a, b)


def test_landmarks_consistent_with_masks(cases):
    for c in cases:
        org = c.organs.array
        lm = c.meta["landmarks"]
        img = c.organs
        z_tr = _zs(img, org == _oid("trachea"))
        assert lm["z_cric"] == pytest.approx(z_tr.max())
        assert lm["z_car"] == pytest.approx(z_tr.min())
        assert lm["z_notch"] == pytest.approx(_zs(img, org == _oid("sternum")).max())
        z_arch = _zs(img, org == _oid("aortic_arch"))
        assert lm["z_archtop"] == pytest.approx(z_arch.max())
        assert lm["z_archbot"] == pytest.approx(z_arch.min())
        assert lm["z_apex_r"] == pytest.approx(_zs(img, org == _oid("lung_r")).max())
        # the airway splits at the carina: one component on z_car, two just below
        airway = np.isin(org, [_oid("trachea"), _oid("bronchus_r"), _oid("bronchus_l")])
        k = int(round((lm["z_car"] - img.origin[2]) / img.spacing[2]))
        assert ndimage.label(airway[k])[1] == 1
        assert ndimage.label(airway[k - 1])[1] == 2
        # below the arch the aorta is two separate circles (ascending and descending)
        kb = int(round((lm["z_archbot"] - img.origin[2]) / img.spacing[2])) - 1
        aorta = np.isin(org[kb], [_oid("ascending_aorta"), _oid("descending_aorta")])
        assert ndimage.label(aorta)[1] == 2
        order = [lm[k] for k in ("z_cric", "z_notch", "z_bcv", "z_archtop", "z_archbot")]
        assert order == sorted(order, reverse=True) and len(set(order)) == len(order)
        assert lm["z_lpa"] < lm["z_archbot"] and lm["z_dia"] < lm["z_car"] < lm["z_archbot"]
        assert lm["z_azy"] < lm["z_bcv"]
        assert lm["carina_lps"][2] == lm["z_car"]


def test_meta_has_all_parameters(cases):
    from deepstationing.phantom.params import CHOICES, DISTRIBUTIONS

    for c in cases:
        assert set(DISTRIBUTIONS) | set(CHOICES) <= set(c.meta["params"])
        assert c.meta["annotator"]["field"] and c.meta["nodes_per_station"]


def test_stations_differ_from_textbook_margins(cases):
    """The truth is not a margin rule of the masks: e.g. 4R reaches the azygos slice."""
    for c in cases:
        lm = c.meta["landmarks"]
        sh = c.meta["annotator"]["level_shift_slices"]
        z4r = _zs(c.stations, c.stations.array == _sid("4R"))
        expected = lm["z_azy"] + sh["z_azy"] * c.stations.spacing[2]
        assert z4r.min() <= max(expected, lm["z_car"] - 10) + 1e-3
