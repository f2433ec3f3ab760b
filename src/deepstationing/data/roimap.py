"""Which of a clinic's ROI names mean which organ or station: the ROI mapping file.

Clinics name the same structure many ways (``Lung_L``, ``Lt Lung``, ``LUNG-LEFT``; ``LN 4R``,
``Station_4R``, ``4R``). The schema (:mod:`deepstationing.schema`) knows common spellings
as per-label aliases; a clinic's own names go into a YAML mapping file::

    # rois.yaml
    organs:                      # organ keys of deepstationing.schema.ORGANS
      lung_l: [Lt Lung, LUNG-LEFT]
      heart: Heart
      esophagus: ["Esoph*"]      # shell-style wildcards: * ? [..]
    stations:                    # station names of deepstationing.schema.STATIONS
      4R: [LN 4R, "Station_4R"]
      "7": [Subcarinal]
    ignore: [BODY, External, "Couch*", "PTV*"]   # known, not wanted: listed as ignored
    builtin: true                # also use the schema's built-in names (default true)

Names match case-insensitively, with runs of spaces, ``_``, ``-``, ``.`` and ``/`` counting
as one space (``LUNG-LEFT`` = ``lung left``). A ROI is looked up in the file's names first,
then in ``ignore``, then in the built-in names; a ROI that matches none is *unmapped* and
the import report lists it (never dropped silently). A name claimed by two labels is an
error that names the file.

>>> m = RoiMapping.from_dict({"organs": {"lung_l": ["Lt Lung"]}, "stations": {"4R": "LN 4R"},
...                           "ignore": ["BODY", "PTV*"]})
>>> for name in ("lt-lung", "LN_4R", "PTV_50", "Trachea", "SpinalCord"):
...     status, label = m.match(name)
...     print(name, status, label and label.key)
lt-lung label lung_l
LN_4R label 4R
PTV_50 ignored None
Trachea label trachea
SpinalCord unmapped None
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

from deepstationing.errors import InputError
from deepstationing.schema import ORGANS, STATIONS, Label, match_roi_name, normalize_roi_name

__all__ = ["RoiMapping", "MAPPED", "IGNORED", "UNMAPPED"]

MAPPED, IGNORED, UNMAPPED = "label", "ignored", "unmapped"


def _names(value, where: str, source) -> list[str]:
    if isinstance(value, str | int | float):
        return [str(value)]
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    raise InputError(source, f"{where}: expected a ROI name or a list of names, got "
                             f"{type(value).__name__}")


@dataclass
class RoiMapping:
    """A clinic's ROI names per schema label, ROIs to ignore, and the built-in names."""

    names: list[tuple[str, Label]] = field(default_factory=list)  # (normalised pattern, label)
    ignore: list[str] = field(default_factory=list)               # normalised patterns
    builtin: bool = True
    source: str | None = None

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | os.PathLike | None) -> RoiMapping:
        """Read a YAML mapping file; ``None`` gives the built-in names only."""
        if path is None:
            return cls()
        import yaml

        p = Path(path)
        if not p.is_file():
            raise InputError(p, "no such mapping file")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(p, f"not a readable YAML mapping file ({first})") from None
        return cls.from_dict(data if data is not None else {}, source=str(p))

    @classmethod
    def from_dict(cls, data: dict, *, source: str | None = None) -> RoiMapping:
        if not isinstance(data, dict):
            raise InputError(source, "a mapping file is a YAML mapping with 'organs', "
                                     "'stations', 'ignore' and 'builtin' keys")
        unknown = set(data) - {"organs", "stations", "ignore", "builtin"}
        if unknown:
            raise InputError(source, f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                                     "expected organs, stations, ignore, builtin")
        m = cls(builtin=bool(data.get("builtin", True)), source=source)
        claimed: dict[str, Label] = {}
        for section, labels in (("organs", ORGANS), ("stations", STATIONS)):
            block = data.get(section) or {}
            if not isinstance(block, dict):
                raise InputError(source, f"'{section}' must map label keys to ROI names")
            for key, value in block.items():
                try:
                    label = labels.by_key(str(key))
                except KeyError:
                    raise InputError(source, f"{section}: unknown {labels.kind} {key!r}; known: "
                                             f"{', '.join(labels.keys)}") from None
                for name in _names(value, f"{section}.{key}", source):
                    norm = normalize_roi_name(name)
                    if claimed.get(norm, label) is not label:
                        raise InputError(source, f"ROI name {name!r} is given for both "
                                                 f"{claimed[norm].key} and {label.key}")
                    claimed[norm] = label
                    m.names.append((norm, label))
        m.ignore = [normalize_roi_name(n) for n in _names(data.get("ignore") or [], "ignore",
                                                          source)]
        return m

    # ---------------------------------------------------------------- matching
    def match(self, roi_name: str) -> tuple[str, Label | None]:
        """``("label", Label)``, ``("ignored", None)`` or ``("unmapped", None)``.

        Raises:
            InputError: the name matches patterns of two different labels.
        """
        norm = normalize_roi_name(roi_name)
        hits = {lab.key: lab for pattern, lab in self.names if fnmatch.fnmatchcase(norm, pattern)}
        if len(hits) > 1:
            raise InputError(self.source, f"ROI {roi_name!r} matches the names of "
                                          f"{' and '.join(sorted(hits))}")
        if hits:
            return MAPPED, next(iter(hits.values()))
        if any(fnmatch.fnmatchcase(norm, pattern) for pattern in self.ignore):
            return IGNORED, None
        if self.builtin:
            lab = match_roi_name(roi_name)
            if lab is not None:
                return MAPPED, lab
        return UNMAPPED, None
