"""The margin-based rule baseline: stations inferred from organ masks with the IASLC margins.

* :mod:`.landmarks` — landmark levels and per-slice organ geometry from an organ map;
* :mod:`.margins` — every margin of the rules, citing the spec;
* :mod:`.inference` — :func:`~deepstationing.rules.inference.rule_stations`;
* :mod:`.totalseg` — the same from a TotalSegmentator output folder;
* :mod:`.evaluation` — the rules scored against station truth.
"""
