"""Synthetic venous-phase chest CT phantom with organ, station and lymph-node truth.

The embedded default cohort of the toolkit: the demo, the tests, the benchmarks and the
paper's experiments run on it. No public CT carries lymph-node station labels, so the
phantom ships its own ground truth. It is a test bed, **not a substitute for clinical
validation**. See ``docs/phantom.md`` for the anatomy, the parameter distributions, the HU
table and the institutional station protocol.

Modules: :mod:`.params` (random parameters, grid presets), :mod:`.shapes` (primitives),
:mod:`.grid` (voxel grid, world placement), :mod:`.parts` (rasterised structures),
:mod:`.anatomy` (levels, body outline, the organs), :mod:`.families` (one builder per organ
family), :mod:`.raster` (labels and HU per slice), :mod:`.landmarks` (landmark levels as
built), :mod:`.stations` (station truth), :mod:`.nodes` (lymph nodes), :mod:`.appearance`
(HU, noise), :mod:`.cohort` (cases, cohorts, folds).

>>> from deepstationing.phantom import generate_case, PRESETS
>>> case = generate_case(0, seed=0, preset="small")
>>> case.ct.array.dtype, case.stations.shape == case.ct.shape, case.ct.spacing
(dtype('int16'), True, (2.8, 2.8, 5.0))
>>> PRESETS["small"].shape_xy
(128, 128)
"""

from deepstationing.phantom.cohort import (
    GENERATOR,
    PHANTOM_VERSION,
    PhantomCase,
    case_id,
    generate_case,
    generate_cohort,
    write_case,
)
from deepstationing.phantom.params import DISTRIBUTIONS, PRESETS, Preset

__all__ = [
    "generate_case",
    "generate_cohort",
    "write_case",
    "case_id",
    "PhantomCase",
    "PRESETS",
    "Preset",
    "DISTRIBUTIONS",
    "PHANTOM_VERSION",
    "GENERATOR",
]
