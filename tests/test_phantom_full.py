"""One full-preset case (the paper's 512 x 512 x ~80 grid at 0.7 x 0.7 x 5 mm)."""

from __future__ import annotations

import numpy as np

from deepstationing.phantom import generate_case
from deepstationing.schema import ORGANS, STATIONS


def test_full_preset_case():
    c = generate_case(0, seed=0, preset="full")
    nz, ny, nx = c.ct.shape
    assert (ny, nx) == (512, 512) and 60 <= nz <= 95
    assert c.ct.spacing == (0.7, 0.7, 5.0) and c.ct.array.dtype == np.int16
    assert c.organs.array.dtype == np.uint8 and c.nodes.array.dtype == np.uint16
    assert set(np.unique(c.organs.array)) == set(range(len(ORGANS) + 1))
    assert set(np.unique(c.stations.array)) == set(range(len(STATIONS) + 1))
    assert not np.any((c.stations.array > 0) & (c.organs.array > 0))
    # coverage: neck base above the cricoid down below the diaphragm dome
    lm = c.meta["landmarks"]
    z_top = c.ct.origin[2] + (nz - 1) * 5.0
    assert z_top > lm["z_cric"] and c.ct.origin[2] < lm["z_dia"]
    for n in c.nodes_list:
        assert np.all(c.stations.array[c.nodes.array == n["id"]]
                      == STATIONS.by_key(n["station"]).id)
