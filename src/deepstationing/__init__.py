"""deepstationing: thoracic lymph node station parsing in chest CT.

Pipeline packages, in order: :mod:`deepstationing.data` (images, phantom),
:mod:`deepstationing.organs`, :mod:`deepstationing.stations`,
:mod:`deepstationing.evaluation`, :mod:`deepstationing.cli`. Label ids live in
:mod:`deepstationing.schema`.
"""

__version__ = "0.1.0"
