"""Realism report: the phantom's CT next to real chest CTs, by the same measurements.

The same tissue masks are drawn on phantom and real CT from HU and geometry only
(:func:`tissue_masks`): the *body* (above -500 HU, largest component of each slice, holes
filled), the *lungs* (below -400 HU inside the body, components of at least 20 cm³, closed so
that their vessels belong to them), and inside the body but outside the lungs *fat*
(-190..-30 HU) and *soft tissue* (-29..150 HU); *air* is everything outside the body. On these
masks the report compares HU histograms and a few numbers (:func:`ct_stats`): the lung
parenchyma's median, the fraction of dense (vessel) voxels in the lungs, the fat and soft-tissue
peaks, the noise (median local SD in 5 x 5 windows of fat, and in the air), the body's share of
the field of view. Pictures: axial slices at matched levels (aortic arch, carina, heart) and a
coronal slice through the carina, phantom beside real, at the same windows.

Phantom levels come from its landmarks; those of a real CT from :data:`REAL_LEVELS` (chosen by
eye) or, for another CT, from fixed fractions of its slice range (a guess, said so in the
report).

>>> import numpy as np
>>> ct = np.full((2, 40, 40), -1000.0)
>>> ct[:, 5:35, 5:35] = 40.0          # a soft-tissue body ...
>>> ct[:, 10:30, 8:18] = -850.0        # ... with a lung
>>> m = tissue_masks(ct, (10.0, 10.0, 10.0))
>>> int(m["body"].sum()), int(m["lung"].sum()), int(m["soft"].sum())
(1800, 400, 1400)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from deepstationing.data.atomic import atomic_output, ensure_folder, write_text_atomic
from deepstationing.data.image import Image, read_ct

__all__ = ["tissue_masks", "ct_stats", "RealCT", "real_ct", "write_report", "REAL_LEVELS",
           "HIST_RANGES"]

#: slice index of the aortic arch, carina and heart levels of known real CTs (by eye)
REAL_LEVELS: dict[str, dict[str, int]] = {
    "lung2_image.nrrd": {"arch": 44, "carina": 39, "heart": 27},
    "lung1_image.nrrd": {"arch": 26, "carina": 22, "heart": 10},
}
#: HU range of each histogram
HIST_RANGES = {"lung": (-1024, -200), "body_outside_lungs": (-250, 600), "air": (-1024, -850)}
WINDOWS = {"mediastinum": (-160.0, 240.0), "lung": (-1000.0, 200.0)}


def tissue_masks(ct: np.ndarray, spacing) -> dict[str, np.ndarray]:
    """Body, lung, fat, soft-tissue and air masks of a CT ``[z, y, x]`` (HU)."""
    body = np.zeros(ct.shape, bool)
    for k in range(ct.shape[0]):
        lab, n = ndimage.label(ct[k] > -500)
        if n:
            big = np.argmax(np.bincount(lab.ravel())[1:]) + 1
            body[k] = ndimage.binary_fill_holes(lab == big)
    lung = body & (ct < -400)
    lab, n = ndimage.label(lung)
    voxel_cm3 = float(np.prod(spacing)) / 1000.0
    sizes = np.bincount(lab.ravel()) * voxel_cm3
    keep = np.nonzero(sizes >= 20.0)[0]
    lung = np.isin(lab, keep[keep > 0])
    ring = np.ones((1, 5, 5), bool)
    lung = ndimage.binary_closing(lung, ring) & body
    rest = body & ~lung
    return {"body": body, "lung": lung, "fat": rest & (ct >= -190) & (ct <= -30),
            "soft": rest & (ct > -30) & (ct <= 150), "air": ~body}


def _local_sd(ct: np.ndarray, mask: np.ndarray) -> float:
    """Median over ``mask`` of the SD in 5 x 5 in-plane windows (the image noise)."""
    if not mask.any():
        return float("nan")
    f = ct.astype(np.float32)
    m = ndimage.uniform_filter(f, (1, 5, 5))
    m2 = ndimage.uniform_filter(f * f, (1, 5, 5))
    inner = ndimage.binary_erosion(mask, np.ones((1, 5, 5), bool))
    sd = np.sqrt(np.maximum(m2 - m * m, 0.0))
    return float(np.median(sd[inner if inner.any() else mask]))


def _mode(values: np.ndarray, lo: float, hi: float) -> float:
    h, e = np.histogram(values, bins=int(hi - lo) // 5, range=(lo, hi))
    return float(0.5 * (e[h.argmax()] + e[h.argmax() + 1])) if values.size else float("nan")


def ct_stats(ct: np.ndarray, masks: dict) -> dict:
    """The report's numbers for one CT (HU, fractions)."""
    lung, body = ct[masks["lung"]], ct[masks["body"] & ~masks["lung"]]
    r = lambda v: round(float(v), 3)  # noqa: E731
    return {
        "lung_median_hu": r(np.median(lung)) if lung.size else None,
        "lung_dense_fraction": r((lung > -500).mean()) if lung.size else None,
        "fat_peak_hu": r(_mode(body, -190, -30)),
        "soft_tissue_peak_hu": r(_mode(body, -29, 150)),
        "bone_fraction_of_body": r((body > 300).mean()) if body.size else None,
        "noise_sd_fat_hu": r(_local_sd(ct, masks["fat"])),
        "noise_sd_air_hu": r(_local_sd(ct, masks["air"])),
        "body_fraction_of_fov": r(masks["body"].mean()),
    }


@dataclass
class RealCT:
    """A real CT for the report: its image, its levels and where they came from."""

    name: str
    image: Image
    levels: dict[str, int]
    levels_from: str


def real_ct(path: str | os.PathLike) -> RealCT:
    """Read a real CT (any format :func:`~deepstationing.data.image.read_ct` reads) with its
    arch / carina / heart slice indices."""
    img = read_ct(path)
    name = Path(path).name
    if name in REAL_LEVELS:
        return RealCT(name, img, dict(REAL_LEVELS[name]), "chosen by eye")
    nz = img.shape[0]
    guess = {k: int(round(f * (nz - 1))) for k, f in
             (("arch", 0.72), ("carina", 0.64), ("heart", 0.44))}
    return RealCT(name, img, guess, "fractions of the slice range (a guess)")


def _phantom_levels(case) -> dict[str, int]:
    lm = case.meta["landmarks"]
    k = lambda z: int(round((z - case.ct.origin[2]) / case.ct.spacing[2]))  # noqa: E731
    return {"arch": k(0.5 * (lm["z_archtop"] + lm["z_archbot"])), "carina": k(lm["z_car"]),
            "heart": k(lm["z_car"] - 60.0)}


def _histograms(groups: dict[str, list[tuple[np.ndarray, dict]]]) -> dict:
    """Normalised HU histograms per group (pooled over its CTs) and mask."""
    out = {}
    for name, items in groups.items():
        out[name] = {}
        for key, (lo, hi) in HIST_RANGES.items():
            vals = [ct[m["lung"]] if key == "lung" else
                    ct[m["body"] & ~m["lung"]] if key == "body_outside_lungs" else
                    ct[m["air"]] for ct, m in items]
            v = np.concatenate([x.ravel() for x in vals]) if vals else np.zeros(0)
            h, e = np.histogram(v, bins=(hi - lo) // 8, range=(lo, hi), density=True)
            out[name][key] = (h, e)
    return out


def _figure_histograms(hists: dict, out: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4))
    axes = fig.subplots(1, len(HIST_RANGES))
    for ax, key in zip(axes, HIST_RANGES):
        for name, h in hists.items():
            dens, e = h[key]
            ax.plot(0.5 * (e[1:] + e[:-1]), dens, label=name, lw=1.5)
        ax.set_title(key.replace("_", " "))
        ax.set_xlabel("HU")
        ax.set_yticks([])
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(out) as staged:
        fig.savefig(staged.path, dpi=70, format="png")
    return out


def _figure_slices(phantom, real: RealCT, out: Path) -> Path:
    """Axial slices at the three levels and a coronal slice, phantom beside real, in the
    mediastinal and the lung window."""
    from matplotlib.figure import Figure

    pl = _phantom_levels(phantom)
    fig = Figure(figsize=(16, 16))
    axes = fig.subplots(4, 4)
    for i, level in enumerate(("arch", "carina", "heart")):
        for j, (win_name, win) in enumerate(WINDOWS.items()):
            for col, (img, k, who) in enumerate(((phantom.ct, pl[level], phantom.id),
                                                 (real.image, real.levels[level], real.name))):
                ax = axes[i, 2 * j + col]
                ax.imshow(img.array[int(np.clip(k, 0, img.shape[0] - 1))], cmap="gray",
                          vmin=win[0], vmax=win[1])
                ax.set_title(f"{who} {level} ({win_name})", fontsize=9)
    for col, (img, k, who) in enumerate(((phantom.ct, pl["carina"], phantom.id),
                                         (real.image, real.levels["carina"], real.name))):
        for j, win in enumerate(WINDOWS.values()):
            ax = axes[3, 2 * j + col]
            row = _carina_row(img, k)
            ax.imshow(img.array[::-1, row, :], cmap="gray", vmin=win[0], vmax=win[1],
                      aspect=img.spacing[2] / img.spacing[0])
            ax.set_title(f"{who} coronal", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    with atomic_output(out) as staged:
        fig.savefig(staged.path, dpi=45, format="png")
        from PIL import Image as PILImage  # grey levels only: a third of the bytes

        PILImage.open(staged.path).convert("L").save(staged.path, format="PNG", optimize=True)
    return out


def _carina_row(img: Image, k: int) -> int:
    """Row through the airway's air on slice ``k`` (the image centre without one)."""
    s = img.array[int(np.clip(k, 0, img.shape[0] - 1))]
    ny, nx = s.shape
    centre = s[ny // 4: 3 * ny // 4, nx // 2 - nx // 10: nx // 2 + nx // 10]
    rows = np.nonzero((centre < -900).any(axis=1))[0]
    return int(ny // 4 + rows.mean()) if rows.size else ny // 2


def write_report(out: str | os.PathLike, phantom_cases: list, reals: list[RealCT]) -> Path:
    """Write ``realism.md``, ``realism.json`` and the PNGs into ``out``; return the md path."""
    d = ensure_folder(out)
    groups: dict[str, list] = {"phantom": []}
    stats: dict[str, dict] = {}
    for c in phantom_cases:
        m = tissue_masks(c.ct.array, c.ct.spacing)
        groups["phantom"].append((c.ct.array, m))
        stats[f"phantom {c.id}"] = {**ct_stats(c.ct.array, m), "phase": c.meta["params"]
                                    ["phase"], "arms": c.meta["params"]["arms"]}
    for r in reals:
        m = tissue_masks(r.image.array, r.image.spacing)
        groups[r.name] = [(r.image.array, m)]
        stats[r.name] = ct_stats(r.image.array, m)
    pngs = [_figure_histograms(_histograms(groups), d / "realism_histograms.png")]
    if reals:
        pngs.append(_figure_slices(phantom_cases[0], reals[0], d / "realism_slices.png"))
    from deepstationing.phantom.cohort import PHANTOM_VERSION

    summary = {"phantom_version": PHANTOM_VERSION, "stats": stats,
               "real_levels": {r.name: {"levels": r.levels, "from": r.levels_from}
                               for r in reals}, "pictures": [p.name for p in pngs]}
    write_text_atomic(json.dumps(summary, indent=2) + "\n", d / "realism.json")
    return write_text_atomic(_markdown(summary), d / "realism.md")


def _markdown(summary: dict) -> str:
    stats = summary["stats"]
    keys = [k for k in next(iter(stats.values())) if k not in ("phase", "arms")]
    lines = [f"# Phantom realism (phantom version {summary['phantom_version']})", "",
             "Same HU/geometry tissue masks on phantom and real CT "
             "(`deepstationing.phantom.realism`).", "",
             "| CT | " + " | ".join(k.replace("_", " ") for k in keys) + " |",
             "|---|" + "---|" * len(keys)]
    for name, st in stats.items():
        tag = f" ({st['phase']}, arms {st['arms']})" if "phase" in st else ""
        lines.append(f"| {name}{tag} | " + " | ".join(
            "" if st[k] is None else f"{st[k]:g}" for k in keys) + " |")
    lines += ["", "Real CT levels (slice indices): " + "; ".join(
        f"{n}: {v['levels']} ({v['from']})" for n, v in summary["real_levels"].items()), ""]
    lines += [f"![{p}]({p})" for p in summary["pictures"]] + [""]
    return "\n".join(lines)
