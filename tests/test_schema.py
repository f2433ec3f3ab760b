import numpy as np
import pytest

from deepstationing import schema
from deepstationing.schema import ORGANS, STATIONS


def test_organ_ids_and_names_match_the_paper_list():
    assert len(ORGANS) == 22
    assert ORGANS.ids == list(range(1, 23))
    expected = ["esophagus", "aortic_arch", "ascending_aorta", "descending_aorta", "heart",
                "spine", "sternum", "bcv_r", "bcv_l", "pulmonary_vein", "ijv_r", "ijv_l",
                "cca_r", "cca_l", "svc", "pulmonary_artery", "azygos", "bronchus_r",
                "bronchus_l", "lung_r", "lung_l", "trachea"]
    assert ORGANS.keys == expected


def test_station_ids_and_zones():
    assert STATIONS.keys == ["1L", "1R", "2L", "2R", "3A", "3P", "4L", "4R", "5", "6", "7", "8"]
    in_zones = [s for z in schema.ZONES for s in z.stations]
    assert sorted(in_zones) == sorted(STATIONS.keys)  # every station in exactly one zone
    assert schema.zone_of_station("1R").name == "supraclavicular"
    assert schema.zone_of_station("3P").name == "superior"
    assert schema.zone_of_station(STATIONS.by_key("6").id).name == "aortic"
    assert schema.zone_of_station("8").name == "inferior"


def test_anchor_stratification_partitions_the_organs():
    assert set(schema.ANCHOR_ORGANS).isdisjoint(schema.NON_ANCHOR_ORGANS)
    assert set(schema.ANCHOR_ORGANS) | set(schema.NON_ANCHOR_ORGANS) == set(ORGANS.keys)
    # air-filled and bony organs are anchors; the low-contrast esophagus and small veins are not
    for key in ("trachea", "lung_r", "lung_l", "bronchus_r", "spine", "sternum"):
        assert key in schema.ANCHOR_ORGANS
    for key in ("esophagus", "azygos", "bcv_l", "ijv_r"):
        assert key in schema.NON_ANCHOR_ORGANS


def test_paper_rankings_use_known_keys():
    assert len(schema.PAPER_SEARCH_RANKING) == 22
    assert sorted(schema.PAPER_SEARCH_RANKING) == sorted(ORGANS.keys)
    assert schema.PAPER_SEARCH_RANKING[:6] == schema.PAPER_TOP6_ORGANS


def test_lookup_by_key_name_and_id():
    assert ORGANS.by_key("TRACHEA").id == 22
    assert ORGANS.by_key("superior vena cava").key == "svc"
    assert STATIONS.by_key("4r").id == 8
    assert STATIONS.by_key("8").key == "8"  # station "8" is a key before it is an id
    assert ORGANS.by_key("8").key == "bcv_r"  # organ "8" is an id
    with pytest.raises(KeyError, match="unknown station"):
        STATIONS.by_key("10R")


@pytest.mark.parametrize("labels,pairs", [
    (STATIONS, [("1L", "1R"), ("2L", "2R"), ("4L", "4R")]),
    (ORGANS, [("bcv_l", "bcv_r"), ("ijv_l", "ijv_r"), ("cca_l", "cca_r"),
              ("bronchus_l", "bronchus_r"), ("lung_l", "lung_r")]),
])
def test_mirror_lut_swaps_exactly_the_lateral_pairs(labels, pairs):
    lut = schema.mirror_lut(labels)
    swapped = set()
    for left, right in pairs:
        li, ri = labels.by_key(left).id, labels.by_key(right).id
        assert lut[li] == ri and lut[ri] == li
        swapped |= {li, ri}
    for lab in labels:
        if lab.id not in swapped:
            assert lut[lab.id] == lab.id
    assert lut[0] == 0
    assert np.array_equal(lut[lut], np.arange(len(labels) + 1))  # an involution


def test_lateral_labels_carry_the_patient_side():
    for lab in list(ORGANS) + list(STATIONS):
        if lab.side == "R":
            assert lab.key.endswith(("_r", "R"))
        elif lab.side == "L":
            assert lab.key.endswith(("_l", "L"))


def test_totalsegmentator_mapping():
    ts = schema.totalsegmentator_to_organ()
    assert ts["brachiocephalic_vein_left"] == "bcv_l"
    assert ts["common_carotid_artery_right"] == "cca_r"
    assert ts["vertebrae_T4"] == "spine"
    assert ts["lung_middle_lobe_right"] == "lung_r"
    assert ts["lung_upper_lobe_left"] == "lung_l"
    assert ts["aorta"] == "aorta"  # undivided: split geometrically by the rules
    assert "azygos" not in ts.values()


def test_colormap_and_unique_colours():
    for labels in (ORGANS, STATIONS):
        cmap = labels.colormap()
        assert cmap.shape == (len(labels) + 1, 3)
        assert np.all(cmap[0] == 0) and np.all((cmap >= 0) & (cmap <= 1))
        assert len({lab.color for lab in labels}) == len(labels)


def test_seg_codes_are_the_dicom_dictionary_concepts():
    """Every SEG code is a SNOMED CT concept that pydicom's DICOM code dictionary knows."""
    from pydicom.sr._concepts_dict import concepts

    known = {value for by_value in concepts["SCT"].values() for value in by_value}
    for labels in (ORGANS, STATIONS):
        for lab in labels:
            assert lab.code is not None and lab.code[0] == "SCT", lab.key
            assert lab.code[1] in known, (lab.key, lab.code)
    for code in (schema.SEG_CATEGORY, *schema.LATERALITY_CODES.values()):
        assert code[1] in known
    # every label has its own concept; lateralised pairs differ by their modifier
    idents = [(lab.code[1], schema.seg_modifier(lab)) for labels in (ORGANS, STATIONS)
              for lab in labels]
    assert len(set(idents)) == len(idents) == 34
    assert schema.seg_modifier(STATIONS.by_key("4R")) == ("SCT", "24028007", "Right")


def test_clinic_roi_names_map_to_one_label_each():
    assert STATIONS.by_key("4R").roi_name == "LNS_4R"
    assert ORGANS.by_key("lung_l").roi_name == "Lung_L"
    for name, key in (("LN 4R", "4R"), ("Station_4R", "4R"), ("4R", "4R"), ("4r", "4R"),
                      ("Trachea", "trachea"), ("Lung-Left", "lung_l"), ("Lt Lung", "lung_l"),
                      ("RT LUNG", "lung_r"), ("LNS_7", "7"), ("station 3a", "3A"),
                      ("Esophagus", "esophagus"), ("V_Jugular_R", "ijv_r")):
        assert schema.match_roi_name(name).key == key, name
    for name in ("SpinalCord", "BODY", "GTV-1", "7", "Lungs", "Lung"):
        assert schema.match_roi_name(name) is None, name
    # the ROI names we write come back to their label
    for labels in (ORGANS, STATIONS):
        for lab in labels:
            assert schema.match_roi_name(lab.roi_name) is lab
