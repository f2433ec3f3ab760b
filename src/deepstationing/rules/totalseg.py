"""Read a TotalSegmentator output folder (one NIfTI mask per class) as our 22-organ map.

Class names map to organ keys through :func:`deepstationing.schema.totalsegmentator_to_organ`
(several classes may fill one organ: lung lobes, vertebrae). TotalSegmentator has a single
``aorta``; :func:`split_aorta` divides it geometrically into ascending aorta, arch and
descending aorta (spec 0.1 L7: the arch is what lies above the highest slice where the
aorta shows two components; below it the anterior component is the ascending and the
posterior one the descending aorta, tracked slice by slice). Organs TotalSegmentator does
not provide (azygos, main bronchi) or that are absent from the folder are reported.

Masks on a grid other than the reference (the CT's, or else the most common grid in the
folder) are resampled onto it with nearest-neighbour interpolation (SimpleITK).

Examples
--------
>>> import tempfile, pathlib
>>> import numpy as np
>>> from deepstationing.data.image import write_image
>>> folder = pathlib.Path(tempfile.mkdtemp())  # a TotalSegmentator output with two classes
>>> trachea = np.zeros((8, 32, 32), np.uint8); trachea[2:, 14:18, 14:18] = 1
>>> heart = np.zeros((8, 32, 32), np.uint8); heart[:3, 6:20, 6:26] = 1
>>> for name, mask in (("trachea", trachea), ("heart", heart)):
...     _ = write_image(Image(mask, spacing=(1.5, 1.5, 5.0)), folder / f"{name}.nii.gz")
>>> organs, missing, notes = read_totalsegmentator_folder(folder)
>>> organs.shape, [ORGANS.by_id(int(i)).key for i in np.unique(organs.array) if i]
((8, 32, 32), ['heart', 'trachea'])
>>> "azygos" in missing, notes[0]
(True, "organ 'esophagus' missing: no esophagus.nii.gz in the folder")
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from deepstationing.data.image import Image, read_image
from deepstationing.errors import InputError
from deepstationing.rules.landmarks import Frame
from deepstationing.rules.margins import DEFAULT_MARGINS, Margins
from deepstationing.schema import ORGANS, totalsegmentator_to_organ

__all__ = ["read_totalsegmentator_folder", "split_aorta", "totalsegmentator_exclusion_mask"]

# painted first, so that smaller structures inside their masks win overlaps
_PAINT_FIRST = ("lung_r", "lung_l", "heart", "spine")


def _class_files(folder: Path) -> dict[str, Path]:
    out = {}
    for p in sorted(folder.iterdir()):
        name = p.name
        for suffix in (".nii.gz", ".nii"):
            if name.endswith(suffix) and p.is_file():
                out[name[: -len(suffix)]] = p
    return out


def _on_grid(img: Image, ref: Image) -> Image:
    if img.same_geometry(ref):
        return img
    res = sitk.Resample(img.to_sitk(), ref.to_sitk(), sitk.Transform(),
                        sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return Image.from_sitk(res)


def read_totalsegmentator_folder(folder: str | os.PathLike, reference: Image | None = None,
                                 margins: Margins = DEFAULT_MARGINS
                                 ) -> tuple[Image, list[str], list[str]]:
    """Build a 22-organ label map from a TotalSegmentator output folder.

    Args:
        folder: folder with one ``<class>.nii.gz`` per TotalSegmentator class.
        reference: image whose grid the organ map takes (e.g. the CT); default: the most
            common grid among the folder's organ masks.
        margins: margins (the minimum component area used by the aorta split).

    Returns:
        ``(organs, missing, warnings)``: the organ map (ids of
        :data:`~deepstationing.schema.ORGANS`), the keys of organs with no or an empty mask,
        and notes (resampled files, ignored files, the aorta split, missing organs).

    Raises:
        InputError: the folder does not exist or holds no mask of a known class.
    """
    d = Path(folder)
    if not d.is_dir():
        raise InputError(d, "no such folder (expected a TotalSegmentator output folder)")
    files = _class_files(d)
    mapping = totalsegmentator_to_organ()
    known = {c: p for c, p in files.items() if c in mapping}
    if not known:
        raise InputError(d, "no TotalSegmentator mask of a known class (e.g. trachea.nii.gz, "
                            "aorta.nii.gz, heart.nii.gz) in this folder")
    notes: list[str] = []
    masks = {c: read_image(p, label=True) for c, p in known.items()}
    if reference is None:
        grids = Counter((m.shape, m.spacing, m.origin, m.direction) for m in masks.values())
        best = grids.most_common(1)[0][0]
        reference = next(m for m in masks.values()
                         if (m.shape, m.spacing, m.origin, m.direction) == best)
    labels = np.zeros(reference.shape, np.uint8)
    per_organ: dict[str, np.ndarray] = {}
    for cls, img in masks.items():
        if not img.same_geometry(reference):
            notes.append(f"{known[cls].name}: on another grid, resampled (nearest neighbour) "
                         "onto the reference grid")
            img = _on_grid(img, reference)
        m = img.array > 0
        key = mapping[cls]
        per_organ[key] = per_organ[key] | m if key in per_organ else m
    aorta = per_organ.pop("aorta", None)
    if aorta is not None and aorta.any():
        parts, split_notes = split_aorta(reference.with_array(aorta), margins)
        notes.extend(split_notes)
        per_organ.update({k: v for k, v in parts.items() if v.any()})
    order = [k for k in _PAINT_FIRST if k in per_organ] + \
            [o.key for o in ORGANS if o.key in per_organ and o.key not in _PAINT_FIRST]
    for key in order:
        labels[per_organ[key]] = ORGANS.by_key(key).id
    present = set(np.unique(labels)) - {0}
    missing = [o.key for o in ORGANS if o.id not in present]
    for key in missing:
        classes = [c for c, k in mapping.items() if k == key or (c == "aorta" and key in
                   ("aortic_arch", "ascending_aorta", "descending_aorta"))]
        if not classes:
            notes.append(f"organ '{key}' missing: TotalSegmentator has no class for it")
        elif any(c in known for c in classes):
            notes.append(f"organ '{key}' missing: its mask ({', '.join(classes)}) is empty")
        else:
            names = [c + ".nii.gz" for c in classes]
            shown = " / ".join(names if len(names) <= 3 else names[:2] + ["..."])
            notes.append(f"organ '{key}' missing: no {shown} in the folder")
    ignored = sorted(set(files) - set(known))
    if ignored:
        notes.append(f"ignored {len(ignored)} file(s) that are no organ of the 22: "
                     + ", ".join(ignored))
    out = reference.with_array(labels)
    out.path = str(d)
    return out, missing, notes


def totalsegmentator_exclusion_mask(folder: str | os.PathLike, reference: Image
                                    ) -> np.ndarray | None:
    """Union, on ``reference``'s grid, of every *other* mask in the folder (classes that are
    none of the 22 organs: brachiocephalic trunk, subclavian arteries, thyroid, ribs, lumen
    variants, ...), so that no station covers any structure the folder segments. Files that
    are not label maps (a CT stored alongside) are skipped. ``None`` if there are none."""
    mapping = totalsegmentator_to_organ()
    out = None
    for cls, p in _class_files(Path(folder)).items():
        if cls in mapping:
            continue
        try:
            img = read_image(p, label=True)
        except InputError:
            continue  # not a label map (e.g. the CT)
        if img.array.dtype.itemsize > 2 or int(img.array.max(initial=0)) > 1000:
            continue
        m = _on_grid(img.with_array((img.array > 0).astype(np.uint8)), reference).array > 0
        out = m if out is None else out | m
    return out


def split_aorta(aorta: Image, margins: Margins = DEFAULT_MARGINS
                ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Split a whole-aorta mask into ``aortic_arch``, ``ascending_aorta``, ``descending_aorta``.

    The arch is every slice above the highest slice (``z_archbot``) where the aorta has two
    components of at least ``margins.min_component_area_mm2``; there the anterior component
    starts the ascending and the posterior one the descending aorta, and each lower
    component joins whichever of the two its centroid is nearest to on the slice above.

    Returns:
        ``({key: bool array in the image's layout}, notes)``.
    """
    frame = Frame.of(aorta)
    c = frame.to_canonical(aorta.array > 0)
    sz, sy, sx = frame.spacing
    min_vox = max(1, int(margins.min_component_area_mm2 / (sy * sx)))
    parts = {k: np.zeros(c.shape, bool) for k in
             ("aortic_arch", "ascending_aorta", "descending_aorta")}
    notes: list[str] = []
    slices = np.flatnonzero(c.any(axis=(1, 2)))
    comps: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for k in slices:
        lab, n = ndimage.label(c[k])
        sizes = np.bincount(lab.ravel())[1:]
        found = []
        for i in np.flatnonzero(sizes >= min_vox):
            m = lab == i + 1
            r, cc = np.nonzero(m)
            found.append((m, np.array([r.mean() * sy, cc.mean() * sx])))
        comps[int(k)] = found
    split = [k for k in slices[::-1] if len(comps[int(k)]) >= 2]
    archbot = None
    for k in split:
        below = comps.get(int(k) - 1)
        if below is None or len(below) >= 2:
            archbot = int(k)
            break
    if archbot is None:
        parts["descending_aorta"] = c.copy()
        notes.append("aorta never splits into two components: labelled as descending aorta; "
                     "arch and ascending aorta missing")
    else:
        parts["aortic_arch"][archbot + 1:] = c[archbot + 1:]
        two = sorted(comps[archbot], key=lambda t: -t[0].sum())[:2]
        two.sort(key=lambda t: t[1][0])  # anterior (smaller y) first
        centre = {"ascending_aorta": two[0][1], "descending_aorta": two[1][1]}
        for k in range(archbot, -1, -1):
            found = comps.get(k, [])
            if not found:
                continue
            new = {key: [] for key in centre}
            for m, cen in found:
                key = min(centre, key=lambda kk: float(np.sum((centre[kk] - cen) ** 2)))
                parts[key][k] |= m
                new[key].append(cen)
            for key, cens in new.items():
                if cens:
                    centre[key] = np.mean(cens, axis=0)
            leftover = c[k] & ~(parts["ascending_aorta"][k] | parts["descending_aorta"][k])
            if leftover.any():  # specks below the size limit: nearest part by distance
                d_asc = ndimage.distance_transform_edt(~parts["ascending_aorta"][k])
                d_desc = ndimage.distance_transform_edt(~parts["descending_aorta"][k])
                to_asc = leftover & (d_asc <= d_desc)
                parts["ascending_aorta"][k] |= to_asc
                parts["descending_aorta"][k] |= leftover & ~to_asc
        z = frame.z_world(archbot)
        notes.append(f"aorta split geometrically: arch above z = {z:.1f} mm, ascending and "
                     "descending aorta below")
    return {k: frame.from_canonical(v) for k, v in parts.items()}, notes
