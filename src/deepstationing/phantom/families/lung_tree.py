"""Lung trees: the intrapulmonary arteries, veins and bronchi (:mod:`deepstationing.phantom.trees`),
grown from the hilar ends of the pulmonary arteries, the pulmonary veins and the bronchi. They
are not parts: they change the HU inside the lungs only, and the voxels keep the ``lung``
label. The branching is random, from the case's own stream (``Anatomy(tree_seed=...)``).

>>> from deepstationing.phantom.anatomy import Anatomy
>>> from deepstationing.phantom.params import draw_parameters
>>> import numpy as np
>>> anat = Anatomy(draw_parameters(np.random.default_rng(0)), tree_seed=3)
>>> build(anat), anat.trees is not None
([], True)
"""

from __future__ import annotations

import numpy as np

from deepstationing.phantom.parts import Part
from deepstationing.phantom.trees import grow_trees

RANK = 200


def build(anat) -> list[Part]:
    seed = anat.tree_seed
    if seed is None:
        p = anat.p
        seed = int(abs(p["lung_hu"] * 1000 + p["heart_x"] * 77)) % (2**32)
    anat.trees = grow_trees(anat, np.random.default_rng(seed))
    return []
