"""Organ-family builders of the phantom: one module per family of structures.

Each module holds ``build(anat) -> list[Part]`` and a ``RANK`` (the label priority of its parts:
where parts overlap, the lower rank keeps the label; within a rank, the order of the list).
:data:`FAMILIES` lists them in *build* order (a builder may use the centrelines and shapes of
the families before it: the heart is kept clear of the esophagus and the aorta). Adding an organ
means adding its part to its family's builder (or a new module here, listed in
:data:`FAMILIES`) and its label to :mod:`deepstationing.schema`.

The lung trees (``lung_tree``) are no parts: the builder grows the intrapulmonary vessels and
bronchi (:mod:`deepstationing.phantom.trees`), which change the HU inside the lungs and never
a label.

>>> [f.__name__.rsplit(".", 1)[1] for f in FAMILIES][:4]
['bones', 'airway', 'esophagus', 'aorta']
"""

from __future__ import annotations

from deepstationing.phantom.families import (
    airway,
    aorta,
    bones,
    esophagus,
    fillers,
    heart,
    lung_tree,
    neck,
    pulmonary,
    veins,
)

__all__ = ["FAMILIES"]

#: family modules in build order
FAMILIES = (bones, airway, esophagus, aorta, pulmonary, veins, heart, neck, fillers, lung_tree)
