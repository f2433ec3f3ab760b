"""Per-case random anatomy and appearance parameters, and the voxel-grid presets.

Every number that varies between phantom cases is drawn here, from the distribution listed in
:data:`DISTRIBUTIONS`, and recorded in the case's ``meta.json``. The means are the adult values
of ``stations-spec.md`` part C (C.2 layout relative to the carina, C.3 HU values); the spreads
give roughly +-15 % (2 SD) variation of sizes and positions, as the issue asks.

Lengths are in mm in the *anatomy frame*: origin at the carina, +x patient left, +y posterior,
+z superior (LPS axes). The world frame of the written images is the anatomy frame rotated
about z by ``rot_z_deg`` and shifted by ``shift_x``, ``shift_y``, ``z_carina_world``.

Each case draws from its own generator, ``np.random.SeedSequence([seed, index])``, so case
``k`` is the same whatever the cohort size and cases can be generated in parallel.

>>> import numpy as np
>>> p = draw_parameters(np.random.default_rng(np.random.SeedSequence([0, 3])))
>>> 100 <= p["trachea_len"] <= 140
True
>>> PRESETS["full"].shape_xy, PRESETS["small"].spacing
((512, 512), (2.8, 2.8, 5.0))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Preset", "PRESETS", "DISTRIBUTIONS", "ACQUISITIONS", "draw_parameters", "grid_for",
           "grid_for_case"]

#: ``fixed``: the preset's grid for every case; ``varied``: per-case field of view and slices
ACQUISITIONS = ("fixed", "varied")


@dataclass(frozen=True)
class Preset:
    """A voxel grid: in-plane size and spacing ``(x, y, z)`` in mm. The z extent is per case."""

    name: str
    spacing: tuple[float, float, float]
    shape_xy: tuple[int, int]
    description: str

    @property
    def fov_mm(self) -> tuple[float, float]:
        return (self.shape_xy[0] * self.spacing[0], self.shape_xy[1] * self.spacing[1])


#: ``full`` is the paper's geometry (about 512 x 512 x 80 at 0.7 x 0.7 x 5 mm); ``small`` is a
#: 4x coarser in-plane grid over the same 358 mm field of view, for CPU training.
PRESETS: dict[str, Preset] = {
    "full": Preset("full", (0.7, 0.7, 5.0), (512, 512),
                   "512 x 512 in-plane at 0.7 mm, 5 mm slices (the paper's geometry)"),
    "small": Preset("small", (2.8, 2.8, 5.0), (128, 128),
                    "128 x 128 in-plane at 2.8 mm, 5 mm slices (CPU training)"),
}


def grid_for(preset: str, spacing: tuple[float, float, float] | None = None
             ) -> tuple[tuple[float, float, float], tuple[int, int]]:
    """Spacing ``(x, y, z)`` and in-plane shape for a preset, optionally with another spacing.

    With ``spacing`` given, the in-plane field of view of the preset is kept (358.4 mm) and
    the number of columns/rows follows from it.

    >>> grid_for("small", (1.4, 1.4, 5.0))
    ((1.4, 1.4, 5.0), (256, 256))
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    p = PRESETS[preset]
    if spacing is None:
        return p.spacing, p.shape_xy
    sp = tuple(float(s) for s in spacing)
    if len(sp) != 3 or min(sp) <= 0:
        raise ValueError(f"spacing needs three positive values (x y z mm), got {spacing}")
    fx, fy = p.fov_mm
    return sp, (max(16, int(round(fx / sp[0]))), max(16, int(round(fy / sp[1]))))  # type: ignore


def grid_for_case(preset: str, p: dict, spacing: tuple[float, float, float] | None = None,
                  acquisition: str = "fixed"
                  ) -> tuple[tuple[float, float, float], tuple[int, int]]:
    """Spacing and in-plane shape of a case: :func:`grid_for` with ``acquisition="fixed"``;
    with ``"varied"``, the preset's matrix over the case's field of view ``p["fov_mm"]``
    and slices of ``p["slice_mm"]`` (``spacing`` then may not be given).

    >>> grid_for_case("full", {"fov_mm": 400.0, "slice_mm": 1.25}, acquisition="varied")
    ((0.78125, 0.78125, 1.25), (512, 512))
    """
    if acquisition not in ACQUISITIONS:
        raise ValueError(f"unknown acquisition {acquisition!r}; choose from "
                         f"{', '.join(ACQUISITIONS)}")
    if acquisition == "fixed":
        return grid_for(preset, spacing)
    if spacing is not None:
        raise ValueError("a varied acquisition draws its own spacing; do not give spacing")
    _, (nx, ny) = grid_for(preset)
    fov = float(p["fov_mm"])
    return (fov / nx, fov / ny, round(float(p["slice_mm"]), 2)), (nx, ny)


# name: (kind, a, b, lo, hi, meaning). kind "normal": mean a, SD b; "uniform": a..b;
# clipped to [lo, hi]. "choice" entries are handled separately (see CHOICES).
DISTRIBUTIONS: dict[str, tuple[str, float, float, float, float, str]] = {
    # --- placement of the patient in the scanner
    "rot_z_deg": ("normal", 0.0, 2.5, -6, 6, "rotation of the patient about z (deg)"),
    "shift_x": ("normal", 0.0, 6.0, -15, 15, "patient off-centre, x (mm)"),
    "shift_y": ("normal", -10.0, 6.0, -25, 5, "patient off-centre, y (mm)"),
    "z_carina_world": ("uniform", -220.0, -140.0, -220, -140, "table position: world z of carina"),
    "margin_top": ("uniform", 8.0, 30.0, 8, 30, "scan starts this far above the cricoid (mm)"),
    "margin_bottom": ("uniform", 25.0, 50.0, 25, 50, "scan ends this far below the dome (mm)"),
    # --- body
    "body_half_width": ("normal", 150.0, 9.0, 128, 172, "mid-chest half-width of the body (mm)"),
    "body_half_ap": ("normal", 112.0, 9.0, 92, 135, "mid-chest half AP depth of the body (mm)"),
    "fat_subcut": ("normal", 14.0, 5.0, 4, 30, "subcutaneous fat thickness (mm)"),
    "muscle_wall": ("normal", 14.0, 3.0, 8, 22, "chest-wall muscle thickness (mm)"),
    "fat_med": ("normal", 1.0, 0.15, 0.7, 1.4, "scale of the mediastinal fat pads around organs"),
    # --- airway
    "trachea_len": ("normal", 120.0, 8.0, 100, 140, "cricoid to carina = z_cric (mm)"),
    "trachea_r": ("normal", 10.8, 0.9, 8.8, 12.8, "outer tracheal radius (lumen + 2.2 mm wall)"),
    "trachea_top_x": ("normal", -3.0, 2.0, -8, 3, "tracheal centre x at the cricoid (mm)"),
    "trachea_top_y": ("normal", -12.0, 3.0, -20, -4, "tracheal centre y at the cricoid (mm)"),
    "carina_angle": ("normal", 65.0, 8.0, 45, 85, "angle between the main bronchi (deg)"),
    "bronchus_r_len": ("normal", 22.0, 4.0, 14, 32, "right main bronchus length (mm)"),
    "bronchus_int_len": ("normal", 24.0, 4.0, 16, 34, "bronchus intermedius length (mm)"),
    "bronchus_l_len": ("normal", 48.0, 4.0, 38, 58, "left main bronchus length (mm)"),
    "bronchus_r_r": ("normal", 8.5, 0.8, 6.8, 10.5, "outer radius right main bronchus (mm)"),
    "bronchus_l_r": ("normal", 7.8, 0.7, 6.2, 9.6, "outer radius left main bronchus (mm)"),
    # --- vertical levels (mm relative to landmarks)
    "apex_r_below_cric": ("normal", 16.0, 5.0, 4, 30, "right lung apex below the cricoid (mm)"),
    "apex_l_minus_r": ("normal", 4.0, 4.0, -6, 12, "left apex above the right apex (mm)"),
    "notch_below_cric": ("normal", 56.0, 6.0, 42, 70, "sternal notch below the cricoid (mm)"),
    "bcv_below_notch": ("normal", 16.0, 3.5, 11, 26, "caudal margin of left BCV below notch (mm)"),
    "archtop_below_bcv": ("normal", 9.0, 3.0, 4, 18, "arch top below the left BCV margin (mm)"),
    "azy_top": ("normal", 19.0, 4.0, 11, 28, "top of the azygos arch above the carina (mm)"),
    "lpa_top": ("normal", 1.0, 3.5, -7, 9, "upper rim of the left PA above the carina (mm)"),
    "dia_z": ("normal", -165.0, 11.0, -192, -142, "right diaphragm dome z (mm)"),
    "dia_left_lower": ("normal", 15.0, 5.0, 4, 28, "left dome below the right dome (mm)"),
    "heart_top": ("normal", -28.0, 4.0, -38, -18, "roof of the left atrium (mm)"),
    # --- aorta
    "asc_r": ("normal", 16.8, 1.8, 13.5, 21, "ascending aorta radius (mm)"),
    "arch_r": ("normal", 13.8, 1.2, 11.5, 16.5, "aortic arch radius (mm)"),
    "desc_r": ("normal", 12.6, 1.3, 10, 15.5, "descending aorta radius (mm)"),
    "arch_height": ("normal", 22.0, 4.0, 13, 32, "height of the arch centreline above its base"),
    "asc_x": ("normal", -14.0, 3.0, -22, -6, "ascending aorta centre x at the arch base"),
    "asc_y": ("normal", -38.0, 3.5, -47, -29, "ascending aorta centre y at the arch base"),
    "desc_x": ("normal", 23.0, 2.5, 17, 30, "descending aorta centre x at the arch base"),
    "desc_y": ("normal", 36.0, 2.5, 30, 42, "descending aorta centre y at the arch base"),
    "arch_bulge_x": ("normal", 28.0, 3.0, 20, 36, "arch Bezier control point x"),
    "arch_bulge_y": ("normal", -44.0, 4.0, -54, -34, "arch Bezier control point y"),
    # --- veins
    "svc_r": ("normal", 9.3, 1.2, 7, 12, "SVC radius (mm)"),
    "svc_x": ("normal", -44.0, 2.5, -50, -38, "SVC centre x (mm)"),
    "svc_y": ("normal", -20.0, 3.0, -28, -12, "SVC centre y (mm)"),
    "bcv_l_r": ("normal", 5.8, 0.8, 4, 8, "left BCV radius (mm)"),
    "bcv_r_r": ("normal", 6.8, 0.8, 5, 9, "right BCV radius (mm)"),
    "ijv_r_r": ("normal", 7.5, 1.3, 5, 10.5, "right IJV radius (mm)"),
    "ijv_l_r": ("normal", 6.0, 1.2, 4, 9, "left IJV radius (mm)"),
    "cca_r": ("normal", 3.25, 0.4, 2.5, 4.2, "common carotid radius (mm)"),
    "azy_r": ("normal", 4.5, 0.7, 3, 6.5, "azygos radius at the SVC junction (mm)"),
    "azy_x": ("normal", -19.0, 2.0, -24, -15, "azygos centre x beside the spine (mm)"),
    # --- pulmonary vessels
    "pa_r": ("normal", 12.6, 1.3, 10, 15.5, "pulmonary trunk radius (mm)"),
    "lpa_r": ("normal", 8.5, 0.9, 6.5, 10.5, "left/right PA radius (mm)"),
    "pv_r": ("normal", 5.8, 0.8, 4, 7.5, "pulmonary vein radius (mm)"),
    # --- heart, esophagus, bones
    "heart_scale": ("normal", 1.0, 0.07, 0.85, 1.18, "heart size scale (120 x 85 x 60 mm base)"),
    "heart_rot_deg": ("normal", 30.0, 5.0, 18, 42, "long-axis angle of the heart in-plane (deg)"),
    "heart_x": ("normal", 22.0, 4.0, 12, 32, "heart centre x (mm)"),
    "eso_r": ("normal", 8.5, 1.0, 6.5, 11, "esophageal half-width (mm)"),
    "eso_x": ("normal", 6.0, 2.5, 0, 12, "esophageal centre x at the carina (mm)"),
    "vert_half_w": ("normal", 14.5, 1.0, 12, 17, "vertebral body half-width (mm)"),
    "vert_half_ap": ("normal", 12.5, 1.0, 10, 15, "vertebral body half AP depth (mm)"),
    "vert_pitch": ("normal", 23.0, 1.5, 20, 26, "vertebra + disc height (mm)"),
    "vert_phase": ("uniform", 0.0, 1.0, 0, 1, "phase of the vertebra/disc pattern"),
    "sternum_thick": ("normal", 12.0, 1.5, 9, 15, "sternal thickness (mm)"),
    "rib_phase": ("uniform", 0.0, 1.0, 0, 1, "phase of the rib pattern"),
    # --- appearance (HU)
    "contrast": ("normal", 1.0, 0.1, 0.75, 1.25, "enhancement scale (arterial 160 HU at 1.0)"),
    "venous_ratio": ("normal", 0.93, 0.06, 0.78, 1.08, "venous / arterial enhancement"),
    "small_vein_ratio": ("normal", 0.75, 0.1, 0.5, 0.95, "IJV/azygos enhancement vs venous"),
    "lung_hu": ("normal", -865.0, 20.0, -910, -810, "lung parenchyma HU (anterior)"),
    "lung_gravity": ("uniform", 30.0, 110.0, 30, 110, "posterior lung gradient (HU)"),
    "fat_hu": ("normal", -100.0, 8.0, -120, -80, "fat HU"),
    "muscle_hu": ("normal", 55.0, 6.0, 40, 70, "muscle HU"),
    "bone_hu": ("normal", 180.0, 35.0, 100, 260, "cancellous bone HU"),
    "cortex_hu": ("normal", 900.0, 120.0, 650, 1200, "cortical bone HU"),
    "noise_sd": ("uniform", 6.0, 18.0, 6, 18, "image noise SD at 5 mm, mid-chest (HU)"),
    "inflow_hu": ("uniform", 50.0, 250.0, 50, 250, "extra HU of the injected-side BCV"),
    # --- annotator variability of the station truth
    "annot_amp": ("uniform", 1.5, 4.0, 1.5, 4.0, "amplitude of the smooth boundary field (mm)"),
    # --- habitus (version 2): body outline, breasts, arms
    "bmi": ("normal", 26.0, 4.5, 17, 42, "body-mass index: subcutaneous fat x (bmi / 26)^2"),
    "body_power": ("uniform", 2.0, 2.8, 2.0, 2.8, "superellipse exponent of the torso outline"),
    "back_flat": ("uniform", 0.9, 0.98, 0.9, 0.98, "back flattened on the table at this "
                  "fraction of the half AP depth"),
    "breast_size": ("uniform", 0.2, 1.0, 0.2, 1.0, "breast size (female cases; radius 40-85 mm)"),
    "arm_r": ("normal", 40.0, 4.0, 32, 50, "upper-arm radius at BMI 26 (mm)"),
    "arm_gap": ("uniform", -3.0, 25.0, -3, 25, "gap between the arm and the chest, arms down"),
    "arm_fwd": ("normal", 5.0, 8.0, -15, 25, "arm centre in front of the mid-chest plane (mm)"),
    "arm_spread": ("uniform", 0.55, 0.85, 0.55, 0.85, "raised arms: lateral position / half-width"),
    "humerus_r": ("normal", 11.0, 1.0, 8.5, 13.5, "humeral shaft radius (mm)"),
    # --- CT table (version 2)
    "table_gap": ("uniform", 0.0, 12.0, 0, 12, "air gap between the back and the table (mm)"),
    "table_radius": ("uniform", 500.0, 1500.0, 500, 1500, "curvature radius of a curved table"),
    "table_hu": ("uniform", 150.0, 500.0, 150, 500, "HU of the table's carbon-fibre shell"),
    "table_half_width": ("normal", 235.0, 12.0, 205, 265, "half-width of the table top (mm)"),
    # --- contrast and tissue texture (version 2)
    "arterial_hu": ("uniform", 260.0, 480.0, 260, 480, "aortic HU in the arterial phase"),
    "fat_texture": ("uniform", 4.0, 14.0, 4, 14, "SD of the smooth fat heterogeneity (HU)"),
    "lung_texture": ("uniform", 20.0, 45.0, 20, 45, "SD of the smooth lung heterogeneity (HU)"),
    "vessel_scale": ("normal", 1.0, 0.08, 0.85, 1.2, "calibre of the intrapulmonary vessels"),
    # --- acquisition (version 2; used with acquisition="varied", recorded always)
    "slice_mm": ("uniform", 1.0, 5.0, 1.0, 5.0, "slice thickness = spacing (mm), varied"),
    "fov_mm": ("uniform", 300.0, 500.0, 300, 500, "reconstructed field of view (mm), varied"),
    "kernel": ("uniform", 0.0, 1.0, 0.0, 1.0, "reconstruction kernel: 0 soft .. 1 sharp"),
    "streaks": ("uniform", 0.3, 1.5, 0.3, 1.5, "strength of the streaks near dense bone"),
}

#: Categorical draws: name -> (options, probabilities).
CHOICES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "eso_lumen": (("collapsed", "air", "fluid"), (0.6, 0.25, 0.15)),
    "inflow_side": (("none", "left", "right"), (0.6, 0.3, 0.1)),
    "sex": (("female", "male"), (0.5, 0.5)),
    "arms": (("up", "down"), (0.6, 0.4)),
    "phase": (("venous", "arterial", "non-contrast"), (0.6, 0.2, 0.2)),
    "table": (("curved", "flat"), (0.7, 0.3)),
}


#: the parameters added in phantom version 2 (habitus, table, contrast phase, texture,
#: acquisition) are drawn after those of version 1, so a case keeps its version-1 anatomy
FIRST_V2 = ("bmi", "sex")


def draw_parameters(rng: np.random.Generator) -> dict[str, float | str]:
    """Draw every per-case parameter (a flat, JSON-ready dict) in a fixed order: the
    version-1 numbers, the version-1 choices, then the version-2 numbers and choices."""
    out: dict[str, float | str] = {}
    names = list(DISTRIBUTIONS)
    choices = list(CHOICES)
    cut_d, cut_c = names.index(FIRST_V2[0]), choices.index(FIRST_V2[1])
    for group in (names[:cut_d], choices[:cut_c], names[cut_d:], choices[cut_c:]):
        for name in group:
            if name in CHOICES:
                options, probs = CHOICES[name]
                out[name] = str(options[int(rng.choice(len(options), p=probs))])
            else:
                kind, a, b, lo, hi, _doc = DISTRIBUTIONS[name]
                v = rng.normal(a, b) if kind == "normal" else rng.uniform(a, b)
                out[name] = round(float(np.clip(v, lo, hi)), 4)
    return out


def distribution_table() -> str:
    """Markdown table of :data:`DISTRIBUTIONS` (used in ``docs/phantom.md``)."""
    rows = ["| parameter | distribution | clipped to | meaning |", "|---|---|---|---|"]
    for name, (kind, a, b, lo, hi, doc) in DISTRIBUTIONS.items():
        dist = f"N({a:g}, {b:g})" if kind == "normal" else f"U({a:g}, {b:g})"
        rows.append(f"| `{name}` | {dist} | [{lo:g}, {hi:g}] | {doc} |")
    for name, (options, probs) in CHOICES.items():
        dist = ", ".join(f"{o} {p:g}" for o, p in zip(options, probs))
        rows.append(f"| `{name}` | categorical: {dist} | | |")
    return "\n".join(rows)
