"""Every margin and threshold of the rule-based station baseline, in one place.

The rule baseline (:mod:`deepstationing.rules.inference`) never writes a number into its
geometry; it reads it from a :class:`Margins` instance. The defaults are the textbook values
of ``stations-spec.md`` (part A per-station rules, part B numbers confirmed in Sarrut's clitk,
part C adult geometry). Values the spec marks **[EST]** are tunable estimates, not literature.

All lengths are in millimetres in the patient (LPS) frame; HU thresholds in Hounsfield units.

Examples
--------
>>> from deepstationing.rules.margins import Margins
>>> m = Margins()
>>> m.aorta_shell_mm, m.posterior_to_vertebra_mm
(10.0, 10.0)
>>> Margins(aorta_shell_mm=8.0).aorta_shell_mm  # a variant for a sensitivity study
8.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Margins", "DEFAULT_MARGINS"]


@dataclass(frozen=True)
class Margins:
    """Named margins of the rule baseline (frozen; make variants with ``dataclasses.replace``)."""

    # ---------------------------------------------------------------- landmarks (spec 0.1)
    vertebra_window_mm: float = 15.0
    """L16 ``y_VA``: half-width of the column window around the spine centroid used to find the
    anterior border of the vertebral body (excludes ribs and transverse processes). [EST]"""

    bcv_column_halfwidth_mm: float = 2.0
    """L5 ``z_bcv``: half-width of the tracheal-midline column in which the left BCV must lie
    anterior to the trachea (the spec's "column test" widened by one voxel or so). [EST]"""

    azygos_arch_anterior_mm: float = 10.0
    """L8 ``z_azy``: azygos voxels at least this far anterior to ``y_VA`` belong to the azygos
    *arch* (the vertical azygos lies beside the vertebral body, about 3 mm in front of
    ``y_VA``; the arch runs forward to the SVC). [EST]"""

    azygos_svc_contact_mm: float = 2.0
    """L8 ``z_azy``: azygos voxels within this distance of the SVC (its 2 mm dilation) belong
    to the arch. [EST, spec 0.1 L8]"""

    diaphragm_above_lung_bottom_mm: float = 10.0
    """L12 ``z_dia``: the diaphragm is this far above the lowest lung voxel (clitk). [S10]"""

    min_component_area_mm2: float = 10.0
    """L7/L10: smallest in-slice area of a connected component of the airway or aorta counted
    when looking for the split into two components (ignores partial-volume specks). [EST]"""

    # ------------------------------------------------- estimates for missing organs [EST]
    notch_above_archtop_mm: float = 25.0
    """``z_notch`` estimate without a sternum: the arch top lies about 25 mm below the top of
    the manubrium. [spec C.1, Gray's via S34]"""

    apex_above_notch_mm: float = 40.0
    """``z_apex`` estimate without a lung: apices about 40 mm above the notch. [EST, spec C.2]"""

    bcv_above_archtop_mm: float = 12.0
    """``z_bcv`` estimate without a left BCV: its crossing is about 12 mm above the arch top.
    [EST, spec C.2: +40..+55 vs +30..+40 relative to the carina]"""

    azygos_above_carina_mm: float = 7.5
    """``z_azy`` estimate without an azygos: its arch's lower border is 5-10 mm above the
    carina. [EST, spec C.2]"""

    lpa_above_carina_mm: float = 0.0
    """``z_lpa`` estimate without a pulmonary artery: the LPA rim is at carina level (-5..+5 mm).
    [EST, spec C.2]"""

    station7_height_mm: float = 30.0
    """``z_7`` estimate without main-bronchus labels: the station 7 floor is about 30 mm below
    the carina. [EST, spec C.2: -25..-40 mm]"""

    trachea_halfwidth_mm: float = 9.0
    """``x_TL`` / ``y_TP`` estimate without a trachea: lumen radius about 9 mm. [spec C.1]"""

    trachea_to_vertebra_mm: float = 22.0
    """``y_TP`` from ``y_VA`` (or back) when one of trachea/spine is missing: the posterior
    tracheal wall lies about 22 mm in front of the vertebral body. [EST, spec C.2]"""

    mediastinum_halfwidth_mm: float = 45.0
    """Lateral half-width of the support around ``x_mid`` on slices without a lung (above the
    apices, below the lungs, or lungs missing). [EST]"""

    # ---------------------------------------------------------------- support (L19)
    mediastinum_posterior_to_vertebra_mm: float = 10.0
    """L19: the mediastinal support is cut this far behind the anterior vertebral border
    (clitk ``DistanceMaxToAnteriorPartOfTheVertebralBody``). [S10]"""

    ct_air_hu: float = -400.0
    """With a CT: voxels below this HU (air, unlabelled lung) are removed from the support.
    [EST]"""

    ct_bone_hu: float = 500.0
    """With a CT: voxels above this HU (cortical bone, ribs, clavicles) are removed from the
    support; contrast vessels (about 150-300 HU) stay. [EST, spec C.3]"""

    # ---------------------------------------------------------------- stations (part A)
    station1_anterior_to_trachea_mm: float = 3.0
    """1R/1L: drop what lies more than 3 mm anterior to the most anterior tracheal point
    (clitk ``ExtractStation_1RL_Ant_Limits``; a heuristic not in the articles). [S10]"""

    station1_lateral_to_ijv_mm: float = 7.5
    """1R/1L: lateral limit = lateral edge of the ipsilateral IJV plus this margin
    (spec: 5-10 mm). [EST]"""

    station1_lateral_to_cca_mm: float = 20.0
    """1R/1L: lateral limit from the CCA when the IJV is missing (the IJV lies about 15 mm
    lateral to the CCA, spec C.2). [EST]"""

    posterior_to_vertebra_mm: float = 10.0
    """3P and 8: posterior limit 10 mm behind the anterior vertebral border (Michigan atlas).
    [S11 via S10]"""

    aorta_shell_mm: float = 10.0
    """6 (and its split from 3A): voxels within 10 mm of the ascending aorta / arch wall,
    anterior or lateral to it (clitk). [S10]"""

    station8_anterior_to_esophagus_mm: float = 2.0
    """8: keep voxels not anterior to the esophagus dilated by 2 mm in y (clitk dilation
    (15, 2, 1) mm). [S10]"""

    station8_lateral_to_esophagus_mm: float = 15.0
    """8: lateral reach beside the esophagus on the side away from the aorta is limited by the
    esophagus dilated 15 mm in x (clitk's anterior-cut dilation). [S10]"""

    def as_dict(self) -> dict[str, float]:
        """The margins as a plain dict (for reports and JSON)."""
        return asdict(self)


#: The textbook defaults (frozen, so safe as a shared default argument).
DEFAULT_MARGINS = Margins()
