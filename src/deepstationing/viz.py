"""Render a case (CT with organ and station overlays) to a PNG a person can look at.

One row per label map (organs, stations, optionally a second station map to compare, e.g. a
rule baseline or a prediction, drawn on exactly the same slices), five panels per row: three
axial slices, one coronal and one sagittal, in radiological display (patient right on the
image left, anterior at the top of axial slices, superior at the top of coronal/sagittal
ones). The CT is shown with a mediastinal window (W400/L40). A legend lists the names and
colours (from :mod:`deepstationing.schema`) of every label present.

Default slices: axial through the centroids of the upper stations (1, 2), of the lower
paratracheal and aortic stations (4, 5, 6; without stations: the carina) and of the inferior
stations (7, 8); coronal and sagittal through the carina (lowest trachea slice; without
organs, the top of station 7).

>>> import tempfile, pathlib
>>> from deepstationing.phantom import generate_case
>>> case = generate_case(0, preset="small", spacing=(5.6, 5.6, 10.0))  # a coarse phantom
>>> png = render_case(pathlib.Path(tempfile.mkdtemp()) / "case.png", ct=case.ct,
...                   organs=case.organs, stations=case.stations, title=case.id)
>>> import matplotlib.image
>>> matplotlib.image.imread(png).shape  # 2 rows x (5 panels + legend), 100 dpi
(700, 1820, 4)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from deepstationing.data.atomic import atomic_output
from deepstationing.data.image import Image, check_same_geometry
from deepstationing.schema import ORGANS, STATIONS, LabelSet

__all__ = ["render_case", "default_views", "WINDOW"]

#: Mediastinal window (level 40, width 400).
WINDOW = (-160.0, 240.0)
_BG = "#111318"


def _axial_of(img: Image, z_mm: float) -> int:
    k = int(round(img.world_to_index((img.origin[0], img.origin[1], z_mm))[0]))
    return int(np.clip(k, 0, img.shape[0] - 1))


def default_views(ref: Image, organs: Image | None, stations: Image | None
                  ) -> tuple[list[int], int, int]:
    """Default ``(axial slice indices, coronal row, sagittal column)``."""
    nz, ny, nx = ref.shape
    car = None
    if organs is not None:
        tr = np.nonzero((organs.array == ORGANS.by_key("trachea").id).any(axis=(1, 2)))[0]
        if tr.size:
            k = int(tr.min())
            rr, cc = np.nonzero(organs.array[k] == ORGANS.by_key("trachea").id)
            car = (k, int(round(rr.mean())), int(round(cc.mean())))
    groups = [("1L", "1R", "2L", "2R"), ("7", "8"), ("4L", "4R", "5", "6")]
    cents = []
    if stations is not None and stations.array.any():
        for g in groups:
            ids = [STATIONS.by_key(s).id for s in g]
            kz = np.nonzero(np.isin(stations.array, ids).any(axis=(1, 2)))[0]
            cents.append(int(round(kz.mean())) if kz.size else None)
        kk, rr, cc = np.nonzero(stations.array)
        if car is None:
            s7 = np.nonzero((stations.array == STATIONS.by_key("7").id).any(axis=(1, 2)))[0]
            k = int(s7.max()) if s7.size else int(round(kk.mean()))
            car = (k, int(round(rr.mean())), int(round(cc.mean())))
    else:
        cents = [None, None, None]
    if car is None:
        car = (nz // 2, ny // 2, nx // 2)
    up = cents[0] if cents[0] is not None else min(nz - 1, car[0] + max(1, nz // 5))
    lo = cents[1] if cents[1] is not None else max(0, car[0] - max(1, nz // 6))
    if lo == car[0]:
        lo = max(0, car[0] - 3)
    mid = cents[2] if cents[2] is not None else car[0]
    return [int(up), int(mid), int(lo)], int(car[1]), int(car[2])


def _rgba(lab: np.ndarray, labels: LabelSet, alpha: float) -> np.ndarray:
    cm = labels.colormap()
    lab = np.clip(lab, 0, len(labels)).astype(np.int64)
    rgba = np.zeros(lab.shape + (4,), float)
    rgba[..., :3] = cm[lab]
    rgba[..., 3] = np.where(lab > 0, alpha, 0.0)
    return rgba


def _panels(img: Image, axial: list[int], row: int, col: int):
    """2D arrays and extents (mm) of the five views of ``img``."""
    a = img.array
    sx, sy, sz = img.spacing
    nz, ny, nx = img.shape
    ext_ax = (-0.5 * sx, (nx - 0.5) * sx, (ny - 0.5) * sy, -0.5 * sy)
    ext_cor = (-0.5 * sx, (nx - 0.5) * sx, -0.5 * sz, (nz - 0.5) * sz)
    ext_sag = (-0.5 * sy, (ny - 0.5) * sy, -0.5 * sz, (nz - 0.5) * sz)
    out = [(a[k], ext_ax, "upper") for k in axial]
    out.append((a[:, row, :], ext_cor, "lower"))
    out.append((a[:, :, col], ext_sag, "lower"))
    return out


def render_case(out_png: str | os.PathLike, *, ct: Image | None = None,
                organs: Image | None = None, stations: Image | None = None,
                compare: Image | None = None, compare_name: str = "compare",
                axial_mm: Sequence[float] | None = None,
                point_mm: Sequence[float] | None = None, title: str | None = None,
                notes: Sequence[str] | None = None, dpi: int = 100) -> Path:
    """Write a PNG of the case; any subset of ``ct``, ``organs``, ``stations`` may be given.

    Args:
        out_png: output file.
        ct, organs, stations: images on one grid (checked).
        compare: a second station map (rule output, prediction) drawn in an extra row.
        axial_mm: world z (mm) of the axial slices (default: see module docstring).
        point_mm: world ``(x, y, z)`` the coronal and sagittal slices pass through.
        title: figure title.
        notes: lines of text printed under the panels (the QC verdict and findings); a
            line starting with ``implausible`` is drawn in red, ``check`` in amber.
    """
    images = [(n, im) for n, im in (("ct", ct), ("organs", organs), ("stations", stations),
                                    (compare_name, compare)) if im is not None]
    if not images:
        raise ValueError("nothing to render: give at least one of ct, organs, stations")
    ref = images[0][1]
    for name, im in images[1:]:
        check_same_geometry(ref, im, reference_name=images[0][0], other_name=name)
    axial, row, col = default_views(ref, organs, stations if stations is not None else compare)
    if axial_mm:
        axial = [_axial_of(ref, z) for z in axial_mm]
    if point_mm is not None:
        k, r, c = ref.world_to_index(point_mm)
        row = int(np.clip(round(r), 0, ref.shape[1] - 1))
        col = int(np.clip(round(c), 0, ref.shape[2] - 1))
    rows = _label_rows(organs, stations, compare, compare_name)
    ncol = len(axial) + 2
    notes = list(notes or [])
    foot = 0.22 * len(notes) + (0.1 if notes else 0.0)  # inches of text under the panels
    height = 3.2 * len(rows) + 0.6 + foot
    fig = Figure(figsize=(3.0 * ncol + 3.2, height), dpi=dpi, facecolor=_BG)
    gs = fig.add_gridspec(len(rows), ncol + 1, width_ratios=[1] * ncol + [1.05],
                          left=0.01, right=0.995, top=1 - 0.5 / height,
                          bottom=(0.1 + foot) / height if notes else 0.01, wspace=0.03,
                          hspace=0.08)
    for n, line in enumerate(notes):
        colour = {"implausible": "#ff6b6b", "check": "#ffd54a"}.get(line.split(" ")[0].rstrip(":"),
                                                                     "white")
        fig.text(0.01, (foot - 0.22 * n - 0.05) / height, line, color=colour, fontsize=9,
                 va="top", ha="left", family="monospace")
    ct_p = _panels(ct, axial, row, col) if ct is not None else None
    view_names = [f"axial z={ref.index_to_world((k, 0, 0))[2]:.0f} mm" for k in axial] + [
        "coronal", "sagittal"]
    for i, (rname, lab, labels) in enumerate(rows):
        lab_p = _panels(lab, axial, row, col) if lab is not None else None
        for j in range(ncol):
            ax = fig.add_subplot(gs[i, j])
            _draw_panel(ax, ct_p[j] if ct_p is not None else None,
                        lab_p[j] if lab_p is not None else None, labels)
            if i == 0:
                ax.set_title(view_names[j], color="white", fontsize=9, pad=3)
            if j == 0:
                ax.text(0.02, 0.97, rname, transform=ax.transAxes, color="white",
                        fontsize=9, va="top", ha="left",
                        bbox=dict(facecolor="black", alpha=0.6, lw=0, pad=1.5))
            _draw_sides(ax, sagittal=j > len(axial))  # the last view is sagittal
        _draw_legend(fig.add_subplot(gs[i, ncol]), lab, labels, rname)
    if title:
        fig.suptitle(title, color="white", fontsize=11, y=0.998, va="top")
    out = Path(out_png)
    with atomic_output(out) as staged:  # a Figure without pyplot: no global backend change
        fig.savefig(staged.path, dpi=dpi, facecolor=_BG, format=out.suffix[1:].lower() or "png")
    return out


def _label_rows(organs: Image | None, stations: Image | None, compare: Image | None,
                compare_name: str) -> list[tuple[str, Image | None, LabelSet | None]]:
    """The figure's rows: (name, label map, its label set); one plain CT row when none."""
    rows: list[tuple[str, Image | None, LabelSet | None]] = []
    if organs is not None:
        rows.append(("organs", organs, ORGANS))
    if stations is not None:
        rows.append(("stations (truth)" if compare is not None else "stations", stations,
                     STATIONS))
    if compare is not None:
        rows.append((compare_name, compare, STATIONS))
    if not rows:
        rows.append(("CT", None, None))
    return rows


def _draw_panel(ax, ct_panel: tuple | None, lab_panel: tuple | None,
                labels: LabelSet | None) -> None:
    """One view: the CT in the mediastinal window with the label map over it."""
    ax.set_facecolor("black")
    if ct_panel is not None:
        arr, ext, org = ct_panel
        ax.imshow(arr, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], extent=ext,
                  origin=org, interpolation="bilinear")
    if lab_panel is not None:
        arr, ext, org = lab_panel
        alpha = 0.45 if labels is ORGANS else 0.65
        ax.imshow(_rgba(arr, labels, alpha), extent=ext, origin=org,
                  interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for sp in ax.spines.values():
        sp.set_color("#444")


def _draw_sides(ax, *, sagittal: bool) -> None:
    """The patient's sides on a view: R/L (axial and coronal: R on the left) or A/P."""
    near, far = ("A", "P") if sagittal else ("R", "L")
    ax.text(0.02, 0.5, near, transform=ax.transAxes, color="#ffd54a", fontsize=8,
            va="center")
    ax.text(0.96, 0.5, far, transform=ax.transAxes, color="#ffd54a", fontsize=8,
            va="center")


def _draw_legend(lax, lab: Image | None, labels: LabelSet | None, rname: str) -> None:
    """The row's legend: the labels present in its label map."""
    lax.axis("off")
    if lab is not None:
        present = set(np.unique(lab.array).tolist()) - {0}
        handles = [Patch(facecolor=np.asarray(lb.color) / 255.0, edgecolor="none",
                         label=(lb.key if labels is STATIONS else lb.name))
                   for lb in labels if lb.id in present]
        if handles:
            ncols = 1 if len(handles) <= 12 else 2
            leg = lax.legend(handles=handles, loc="center left", fontsize=7.5,
                             ncol=ncols, frameon=False, handlelength=1.2,
                             labelcolor="white", borderaxespad=0.2,
                             title=rname, title_fontsize=8.5)
            leg.get_title().set_color("white")
