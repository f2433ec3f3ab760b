"""The label schema: the single source of truth for organ, station and zone labels.

Every label map the toolkit reads or writes uses the integer ids defined here. Nothing
else in the package may hard-code an organ or station id; look it up here instead.

Organs (22, the DeepStationing list)
------------------------------------
Ids 1-22, background 0. Each organ has a short ``key`` (used in code, file names and
command-line lists), a human ``name``, a ``side`` (``"R"``, ``"L"`` or ``None``), a
display colour, the TotalSegmentator classes that map onto it, and its stratum.

Names from other sources (per-source aliases)
---------------------------------------------
Every label carries the names other software and people use for it, next to its id:
``totalseg`` (TotalSegmentator classes), ``clinic`` (ROI names and synonyms that clinics
use in RT structure sets: ``"Lung_L"``, ``"Lt Lung"``, ``"LN 4R"``, ``"Station_4R"``; the
first one is the ROI name the toolkit writes) and ``code`` (the SNOMED CT concept a DICOM-SEG
segment is coded with, from DICOM CID 7600 / 7151 as pydicom's code dictionary spells them;
lateralised labels without their own concept get a Right/Left modifier).
:func:`match_roi_name` finds the label of a clinic's ROI name; a clinic adds its own names
with a mapping file (``deepstationing dataset import --map``), not by editing this module.

Anchor / non-anchor stratification (paper section 2.1)
------------------------------------------------------
*Anchors* are segmented from CT alone; *non-anchors* from CT plus the anchor predictions.
An organ is an anchor when its boundary is visible from intensity alone in a venous-phase
contrast CT and it is large enough that a 5 mm slice does not hide it:

* air-filled: ``trachea``, ``bronchus_r``, ``bronchus_l``, ``lung_r``, ``lung_l``
  (-1000 HU lumen against soft tissue; the sharpest edges in the chest);
* bone: ``spine``, ``sternum`` (cortex at 400-1500 HU);
* large contrast-filled vessels and the heart: ``ascending_aorta``, ``aortic_arch``,
  ``descending_aorta``, ``heart`` (25-35 mm calibre, 150-160 HU against -100 HU fat).

The non-anchors are low contrast or small, and are best found *relative to* anchors:
``esophagus`` (a collapsed muscular tube at ~50 HU against fat and the trachea, with no fat
plane in its upper third), the thin veins and arteries of the neck and upper mediastinum
(``bcv_r``, ``bcv_l``, ``ijv_r``, ``ijv_l``, ``cca_r``, ``cca_l``, 6-18 mm), ``azygos``
(4-16 mm, seen on 1-2 slices where it arches), and the contrast-filled vessels whose
boundaries are a matter of convention rather than of contrast, because they touch other
vessels of the same HU: ``svc`` (joins the BCVs and the right atrium), ``pulmonary_artery``
(leaves the heart, runs under the arch) and ``pulmonary_vein`` (enters the left atrium).

Stations (12, IASLC) and zones (4, paper)
-----------------------------------------
Ids 1-12 in the order 1L, 1R, 2L, 2R, 3A, 3P, 4L, 4R, 5, 6, 7, 8. Zones, used for the
lymph-node zone accuracy: supraclavicular (1L, 1R), superior (2L, 2R, 3A, 3P, 4L, 4R),
aortic (5, 6) and inferior (7, 8).

Left and right are the *patient's*. In the LPS world frame used throughout (ITK, DICOM),
patient left is +x. :func:`mirror_lut` swaps the lateral pairs of a label set, which is
what a left-right flip of the image must do to its labels.

Examples
--------
>>> from deepstationing import schema
>>> schema.ORGANS.by_key("trachea").id
22
>>> schema.STATIONS.by_name("4R").id
8
>>> schema.zone_of_station("5").name
'aortic'
>>> [o.key for o in schema.ORGANS if o.anchor][:3]
['aortic_arch', 'ascending_aorta', 'descending_aorta']
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Label",
    "LabelSet",
    "Zone",
    "ORGANS",
    "STATIONS",
    "ZONES",
    "ANCHOR_ORGANS",
    "NON_ANCHOR_ORGANS",
    "PAPER_TOP6_ORGANS",
    "PAPER_SEARCH_RANKING",
    "get_label_set",
    "mirror_lut",
    "zone_of_station",
    "totalsegmentator_to_organ",
    "SCHEMA_VERSION",
    "SEG_CATEGORY",
    "LATERALITY_CODES",
    "normalize_roi_name",
    "match_roi_name",
    "seg_modifier",
]

#: Version of the label definitions (ids, keys, meaning). Recorded in model packages and
#: checked on import: a model trained with other label ids would paint the wrong stations.
SCHEMA_VERSION = "1"

#: DICOM-SEG Segmented Property Category of every label: SCT 91723000 "Anatomical Structure".
SEG_CATEGORY: tuple[str, str, str] = ("SCT", "91723000", "Anatomical Structure")
#: SNOMED CT laterality qualifiers (DICOM CID 244) used as Segmented Property Type Modifier.
LATERALITY_CODES: dict[str, tuple[str, str, str]] = {
    "R": ("SCT", "24028007", "Right"),
    "L": ("SCT", "7771000", "Left"),
}


@dataclass(frozen=True)
class Label:
    """One foreground label of a label map.

    Attributes:
        id: integer value in the label map (1-based; 0 is background).
        key: short machine name (``"bcv_l"``, ``"4R"``).
        name: human-readable name.
        color: display colour, RGB in 0-255.
        side: ``"R"``/``"L"`` for lateralised structures (patient side), else ``None``.
        anchor: organs only: ``True`` for anchor organs (see module docstring).
        totalseg: TotalSegmentator class names that map onto this organ (may be empty).
        clinic: ROI names and synonyms used in clinics' RT structure sets; the first is
            the ROI name the toolkit writes (:attr:`roi_name`).
        code: ``(scheme, value, meaning)`` of the coded concept for DICOM-SEG.
    """

    id: int
    key: str
    name: str
    color: tuple[int, int, int]
    side: str | None = None
    anchor: bool = False
    totalseg: tuple[str, ...] = field(default_factory=tuple)
    clinic: tuple[str, ...] = field(default_factory=tuple)
    code: tuple[str, str, str] | None = None

    @property
    def roi_name(self) -> str:
        """The ROI name written to RT structure sets (``"LNS_4R"``, ``"Lung_R"``)."""
        return self.clinic[0] if self.clinic else self.key


class LabelSet(Sequence[Label]):
    """An ordered, immutable collection of :class:`Label` with lookups by id and key."""

    def __init__(self, kind: str, labels: Sequence[Label]):
        ids = [lab.id for lab in labels]
        if ids != list(range(1, len(labels) + 1)):
            raise ValueError(f"{kind} ids must be 1..N in order, got {ids}")
        keys = [lab.key for lab in labels]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{kind} keys must be unique")
        self.kind = kind
        self._labels = tuple(labels)
        self._by_key = {lab.key.lower(): lab for lab in labels}

    def __getitem__(self, index):  # type: ignore[override]
        return self._labels[index]

    def __len__(self) -> int:
        return len(self._labels)

    def __iter__(self) -> Iterator[Label]:
        return iter(self._labels)

    def __repr__(self) -> str:
        return f"LabelSet({self.kind!r}, {len(self)} labels)"

    @property
    def ids(self) -> list[int]:
        return [lab.id for lab in self._labels]

    @property
    def keys(self) -> list[str]:
        return [lab.key for lab in self._labels]

    def by_id(self, label_id: int) -> Label:
        """The label with integer value ``label_id`` (``KeyError`` if absent)."""
        if not 1 <= int(label_id) <= len(self._labels):
            raise KeyError(f"no {self.kind} label with id {label_id}")
        return self._labels[int(label_id) - 1]

    def by_key(self, key: str) -> Label:
        """The label whose key (or id as text, or name) is ``key``, case-insensitively."""
        k = str(key).strip().lower()
        if k in self._by_key:
            return self._by_key[k]
        if k.isdigit():
            return self.by_id(int(k))
        for lab in self._labels:
            if lab.name.lower() == k:
                return lab
        raise KeyError(f"unknown {self.kind} label {key!r}; known: {', '.join(self.keys)}")

    by_name = by_key

    def select(self, keys: Sequence[str]) -> list[Label]:
        """Labels for a list of keys, in the given order."""
        return [self.by_key(k) for k in keys]

    def colormap(self) -> np.ndarray:
        """``(N+1, 3)`` float RGB table in 0-1, row 0 (background) black."""
        table = np.zeros((len(self) + 1, 3), dtype=float)
        for lab in self._labels:
            table[lab.id] = np.asarray(lab.color, dtype=float) / 255.0
        return table


def _o(i, key, name, color, side=None, anchor=False, ts=(), clinic=(), code=None):
    return Label(i, key, name, color, side, anchor, tuple(ts), tuple(clinic), code)


def _sct(value: str, meaning: str) -> tuple[str, str, str]:
    return ("SCT", value, meaning)


def _side_names(base: Sequence[str], side: str) -> tuple[str, ...]:
    """Usual spellings of a lateralised structure: ``Lung_L``, ``Lung Left``, ``Lt Lung``..."""
    word = "Left" if side == "L" else "Right"
    short = "Lt" if side == "L" else "Rt"
    out: list[str] = []
    for b in base:
        out += [f"{b}_{side}", f"{b}_{short}", f"{b} {word}", f"{word} {b}", f"{short} {b}",
                f"{side} {b}", f"{b}{side}"]
    return tuple(out)


def _station(i, key, name, color, side, code):
    names = (f"LNS_{key}", f"LN {key}", f"LN_{key}", f"LN{key}", f"Station {key}",
             f"Station_{key}", f"LN Station {key}", f"Level {key}", f"IASLC {key}",
             f"LNS {key}")
    if not key.isdigit():  # "4R", "3A": unambiguous alone; a bare "7" is not
        names += (key,)
    return Label(i, key, name, color, side, False, (), names, code)


_VERTEBRAE = tuple(f"vertebrae_C{i}" for i in range(1, 8)) + tuple(
    f"vertebrae_T{i}" for i in range(1, 13)
) + tuple(f"vertebrae_L{i}" for i in range(1, 6))

#: The 22 reference organs. TotalSegmentator has a single undivided ``aorta`` (split
#: geometrically into ascending / arch / descending by the rule module), no azygos vein and
#: no main bronchi (its ``lung_trachea_bronchia`` of the ``lung_vessels`` task merges the
#: airway tree); the internal jugular veins come from its head-and-neck vessel task.
ORGANS = LabelSet(
    "organ",
    [
        _o(1, "esophagus", "esophagus", (214, 160, 110), ts=("esophagus",),
           clinic=("Esophagus", "Oesophagus", "Esoph"), code=_sct("32849002", "Esophagus")),
        _o(2, "aortic_arch", "aortic arch", (230, 40, 40), anchor=True, ts=("aorta",),
           clinic=("Aorta_Arch", "A_Aorta_Arch", "Aortic Arch", "Arch of Aorta"),
           code=_sct("57034009", "Aortic arch")),
        _o(3, "ascending_aorta", "ascending aorta", (255, 110, 90), anchor=True, ts=("aorta",),
           clinic=("Aorta_Asc", "A_Aorta_Asc", "Ascending Aorta", "Aorta Ascending"),
           code=_sct("54247002", "Ascending aorta")),
        _o(4, "descending_aorta", "descending aorta", (180, 20, 60), anchor=True, ts=("aorta",),
           clinic=("Aorta_Desc", "A_Aorta_Desc", "Descending Aorta", "Aorta Descending"),
           code=_sct("281130003", "Descending aorta")),
        _o(5, "heart", "heart", (200, 60, 140), anchor=True, ts=("heart",),
           clinic=("Heart", "Cor"), code=_sct("80891009", "Heart")),
        # the bony spine, not the spinal cord or canal (different structures)
        _o(6, "spine", "spine", (240, 240, 200), anchor=True, ts=_VERTEBRAE,
           clinic=("Spine", "Vertebrae", "Vertebral Column", "Spinal Column", "Bone_Spine"),
           code=_sct("421060004", "Spine")),
        _o(7, "sternum", "sternum", (250, 220, 160), anchor=True, ts=("sternum",),
           clinic=("Sternum", "Bone_Sternum"), code=_sct("56873002", "Sternum")),
        _o(8, "bcv_r", "brachiocephalic vein R", (60, 120, 230), "R",
           ts=("brachiocephalic_vein_right",),
           clinic=_side_names(("V_Brachioceph", "Brachiocephalic Vein", "BCV"), "R"),
           code=_sct("8887007", "Brachiocephalic vein")),
        _o(9, "bcv_l", "brachiocephalic vein L", (90, 160, 250), "L",
           ts=("brachiocephalic_vein_left",),
           clinic=_side_names(("V_Brachioceph", "Brachiocephalic Vein", "BCV"), "L"),
           code=_sct("8887007", "Brachiocephalic vein")),
        _o(10, "pulmonary_vein", "pulmonary vein", (140, 90, 220), ts=("pulmonary_vein",),
           clinic=("V_Pulmonary", "Pulmonary Vein", "Pulmonary Veins", "PV"),
           code=_sct("122972007", "Pulmonary vein")),
        _o(11, "ijv_r", "internal jugular vein R", (40, 90, 180), "R",
           ts=("internal_jugular_vein_right",),
           clinic=_side_names(("V_Jugular", "Internal Jugular Vein", "IJV", "Jugular Vein"),
                              "R"),
           code=_sct("12123001", "Internal jugular vein")),
        _o(12, "ijv_l", "internal jugular vein L", (70, 130, 200), "L",
           ts=("internal_jugular_vein_left",),
           clinic=_side_names(("V_Jugular", "Internal Jugular Vein", "IJV", "Jugular Vein"),
                              "L"),
           code=_sct("12123001", "Internal jugular vein")),
        _o(13, "cca_r", "common carotid artery R", (250, 130, 30), "R",
           ts=("common_carotid_artery_right",),
           clinic=_side_names(("A_Carotid", "Common Carotid Artery", "CCA", "Carotid"), "R"),
           code=_sct("32062004", "Common carotid artery")),
        _o(14, "cca_l", "common carotid artery L", (250, 180, 40), "L",
           ts=("common_carotid_artery_left",),
           clinic=_side_names(("A_Carotid", "Common Carotid Artery", "CCA", "Carotid"), "L"),
           code=_sct("32062004", "Common carotid artery")),
        _o(15, "svc", "superior vena cava", (30, 60, 160), ts=("superior_vena_cava",),
           clinic=("V_Venacava_S", "SVC", "Superior Vena Cava", "VCS"),
           code=_sct("48345005", "Superior vena cava")),
        _o(16, "pulmonary_artery", "pulmonary artery", (120, 40, 200),
           ts=("pulmonary_artery",),
           clinic=("A_Pulmonary", "Pulmonary Artery", "PA", "Pulmonary Trunk"),
           code=_sct("81040000", "Pulmonary artery")),
        _o(17, "azygos", "azygos vein", (20, 170, 200),
           clinic=("V_Azygos", "Azygos", "Azygos Vein", "Azygous"),
           code=_sct("72107004", "Azygos vein")),
        _o(18, "bronchus_r", "bronchus R", (120, 220, 220), "R", anchor=True,
           clinic=_side_names(("Bronchus", "Main Bronchus"), "R"),
           code=_sct("70074004", "Right main bronchus")),
        _o(19, "bronchus_l", "bronchus L", (150, 240, 240), "L", anchor=True,
           clinic=_side_names(("Bronchus", "Main Bronchus"), "L"),
           code=_sct("75245000", "Left main bronchus")),
        _o(20, "lung_r", "lung R", (120, 200, 120), "R", anchor=True,
           ts=("lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right"),
           clinic=_side_names(("Lung",), "R"), code=_sct("39607008", "Lung")),
        _o(21, "lung_l", "lung L", (160, 230, 140), "L", anchor=True,
           ts=("lung_upper_lobe_left", "lung_lower_lobe_left"),
           clinic=_side_names(("Lung",), "L"), code=_sct("39607008", "Lung")),
        _o(22, "trachea", "trachea", (100, 255, 255), anchor=True, ts=("trachea",),
           clinic=("Trachea",), code=_sct("44567001", "Trachea")),
    ],
)

#: The 12 IASLC stations, in the paper's order.
#: SEG codes: the SNOMED CT lymph-node concepts of DICOM CID 7600 (the ATS/Mountain-Dresler
#: mediastinal groups). 3A has no concept of its own there and gets "anterior mediastinal
#: lymph node" (prevascular nodes lie in the anterior mediastinum).
STATIONS = LabelSet(
    "station",
    [
        _station(1, "1L", "1L low cervical / supraclavicular, left", (255, 187, 120), "L",
                 _sct("76838003", "Supraclavicular lymph node")),
        _station(2, "1R", "1R low cervical / supraclavicular, right", (255, 127, 14), "R",
                 _sct("76838003", "Supraclavicular lymph node")),
        _station(3, "2L", "2L upper paratracheal, left", (152, 223, 138), "L",
                 _sct("127927006", "Upper paratracheal lymph node")),
        _station(4, "2R", "2R upper paratracheal, right", (44, 160, 44), "R",
                 _sct("127927006", "Upper paratracheal lymph node")),
        _station(5, "3A", "3A prevascular", (255, 152, 150), None,
                 _sct("5296000", "Anterior mediastinal lymph node")),
        _station(6, "3P", "3P retrotracheal", (214, 39, 40), None,
                 _sct("127931000", "Retrotracheal lymph node")),
        _station(7, "4L", "4L lower paratracheal, left", (197, 176, 213), "L",
                 _sct("127932007", "Lower paratracheal lymph node")),
        _station(8, "4R", "4R lower paratracheal, right", (148, 103, 189), "R",
                 _sct("127932007", "Lower paratracheal lymph node")),
        _station(9, "5", "5 subaortic (aortopulmonary window)", (196, 156, 148), None,
                 _sct("127938006", "Lymph node of aortopulmonary window")),
        _station(10, "6", "6 para-aortic", (140, 86, 75), None,
                 _sct("127939003", "Para-aortic lymph node of the anterior mediastinum")),
        _station(11, "7", "7 subcarinal", (247, 182, 210), None,
                 _sct("28330007", "Subcarinal lymph node")),
        _station(12, "8", "8 paraesophageal", (227, 119, 194), None,
                 _sct("127940001", "Paraesophageal lymph node below carina")),
    ],
)


@dataclass(frozen=True)
class Zone:
    """A lymph-node zone of the paper: a group of stations."""

    id: int
    name: str
    stations: tuple[str, ...]


ZONES: tuple[Zone, ...] = (
    Zone(1, "supraclavicular", ("1L", "1R")),
    Zone(2, "superior", ("2L", "2R", "3A", "3P", "4L", "4R")),
    Zone(3, "aortic", ("5", "6")),
    Zone(4, "inferior", ("7", "8")),
)

ANCHOR_ORGANS: tuple[str, ...] = tuple(o.key for o in ORGANS if o.anchor)
NON_ANCHOR_ORGANS: tuple[str, ...] = tuple(o.key for o in ORGANS if not o.anchor)

#: The paper's auto-searched key organs (top-6), for the "+6 searched organs" setting.
PAPER_TOP6_ORGANS: tuple[str, ...] = (
    "esophagus", "aortic_arch", "ascending_aorta", "heart", "spine", "sternum",
)

#: The paper's full auto-search ranking of the 22 organs (section 3), best first.
PAPER_SEARCH_RANKING: tuple[str, ...] = PAPER_TOP6_ORGANS + (
    "bcv_r", "bcv_l", "pulmonary_vein", "descending_aorta", "ijv_r", "ijv_l", "cca_r",
    "cca_l", "svc", "pulmonary_artery", "azygos", "bronchus_r", "bronchus_l", "lung_r",
    "lung_l", "trachea",
)


def get_label_set(kind: str) -> LabelSet:
    """``"organs"`` or ``"stations"`` (singular accepted) to the :class:`LabelSet`."""
    k = kind.lower().rstrip("s")
    if k == "organ":
        return ORGANS
    if k == "station":
        return STATIONS
    raise ValueError(f"unknown label set {kind!r}; use 'organs' or 'stations'")


def zone_of_station(station: str | int) -> Zone:
    """The zone that contains a station, given by key (``"4R"``) or id."""
    key = STATIONS.by_id(station).key if isinstance(station, int) else STATIONS.by_key(station).key
    for zone in ZONES:
        if key in zone.stations:
            return zone
    raise KeyError(station)  # pragma: no cover - every station is in a zone


def mirror_lut(labels: LabelSet) -> np.ndarray:
    """Lookup table that swaps left and right labels: ``mirrored = lut[label_map]``.

    Apply it together with a flip of the patient left-right axis; unlateralised labels map
    to themselves.

    >>> lut = mirror_lut(STATIONS)
    >>> STATIONS.by_id(int(lut[STATIONS.by_key("4R").id])).key
    '4L'
    """
    lut = np.arange(len(labels) + 1, dtype=np.int64)
    for lab in labels:
        if lab.side is None:
            continue
        other = "L" if lab.side == "R" else "R"
        for cand in labels:
            if cand.side == other and _strip_side(cand.key) == _strip_side(lab.key):
                lut[lab.id] = cand.id
    return lut


def _strip_side(key: str) -> str:
    for suffix in ("_r", "_l", "R", "L"):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def totalsegmentator_to_organ() -> dict[str, str]:
    """Map of TotalSegmentator class name to our organ key.

    ``aorta`` maps to all three aortic segments and must be split geometrically
    (:mod:`deepstationing.stations` does this); it is reported under ``"aorta"``.
    """
    out: dict[str, str] = {}
    for organ in ORGANS:
        for ts in organ.totalseg:
            out[ts] = "aorta" if ts == "aorta" else organ.key
    return out


def normalize_roi_name(name: str) -> str:
    """A ROI name as matched: lower case; runs of blanks, ``_ - . /`` become one space.

    >>> normalize_roi_name("  Lung-Left ") == normalize_roi_name("LUNG_left")
    True
    """
    return re.sub(r"[\s_\-./]+", " ", str(name)).strip().lower()


def _roi_table() -> dict[str, Label]:
    table: dict[str, Label] = {}
    for labels in (ORGANS, STATIONS):
        for lab in labels:
            for name in lab.clinic:
                norm = normalize_roi_name(name)
                if table.get(norm, lab) is not lab:  # pragma: no cover - checked by tests
                    raise ValueError(f"ROI name {name!r} is claimed by two labels")
                table[norm] = lab
    return table


_ROI_TABLE = _roi_table()


def match_roi_name(name: str) -> Label | None:
    """The organ or station that a clinic's ROI name means, from the built-in synonyms.

    Returns ``None`` when no built-in synonym matches (the clinic's mapping file decides).

    >>> match_roi_name("Lt Lung").key, match_roi_name("Station_4R").key
    ('lung_l', '4R')
    >>> match_roi_name("LN 7") is STATIONS.by_key("7"), match_roi_name("SpinalCord")
    (True, None)
    """
    return _ROI_TABLE.get(normalize_roi_name(name))


def seg_modifier(label: Label) -> tuple[str, str, str] | None:
    """The laterality modifier of a label's SEG code, when its concept does not say the side.

    >>> seg_modifier(ORGANS.by_key("lung_l")), seg_modifier(ORGANS.by_key("bronchus_l"))
    (('SCT', '7771000', 'Left'), None)
    """
    if label.side is None or label.code is None:
        return None
    meaning = label.code[2].lower()
    if "left" in meaning or "right" in meaning:
        return None
    return LATERALITY_CODES[label.side]
