"""Run the external DICOM tools the clinical I/O tests validate against.

``dciodvfy`` (Debian ``dicom3tools``) checks a file against the DICOM IODs; ``plastimatch
convert`` (Debian ``plastimatch``) rasterises an RT structure set. Tests get them through the
``dciodvfy`` / ``plastimatch`` fixtures of ``conftest.py``, which skip when a tool is missing
unless ``DEEPSTATIONING_REQUIRE_TOOLS=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

#: tool -> Debian package that provides it
TOOLS = {"dciodvfy": "dicom3tools", "plastimatch": "plastimatch"}


def require_tool(name: str) -> str:
    """Path of ``name``; skip the test when absent (fail under DEEPSTATIONING_REQUIRE_TOOLS=1)."""
    path = shutil.which(name)
    if path is None:
        msg = (f"{name} not found (install the Debian package {TOOLS[name]}: "
               f"apt-get install {TOOLS[name]})")
        if os.environ.get("DEEPSTATIONING_REQUIRE_TOOLS") == "1":
            pytest.fail(msg + "; required because DEEPSTATIONING_REQUIRE_TOOLS=1")
        pytest.skip(msg)
    return path


def dciodvfy_report(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` lines of ``dciodvfy`` on one file."""
    res = subprocess.run([require_tool("dciodvfy"), str(path)], capture_output=True,
                         text=True, errors="replace", timeout=120)
    lines = (res.stdout + res.stderr).splitlines()
    return ([ln for ln in lines if ln.startswith("Error")],
            [ln for ln in lines if ln.startswith("Warning")])


def plastimatch_masks(rtstruct: str | os.PathLike, out: str | os.PathLike, *,
                      fixed: str | os.PathLike | None = None,
                      referenced_ct: str | os.PathLike | None = None,
                      xor: bool = True) -> dict[str, tuple[np.ndarray, object]]:
    """Rasterise an RTSTRUCT with ``plastimatch convert``: ``{ROI name: (mask, Image)}``.

    The grid is ``fixed`` (an image file) or ``referenced_ct`` (a DICOM folder). ``xor``
    passes ``--xor-contours`` (contours inside contours are holes, as we write them).
    """
    from deepstationing.data.image import read_image

    out = Path(out)
    cmd = [require_tool("plastimatch"), "convert", "--input", str(rtstruct),
           "--output-prefix", str(out), "--prefix-format", "nii.gz"]
    if fixed is not None:
        cmd += ["--fixed", str(fixed)]
    if referenced_ct is not None:
        cmd += ["--referenced-ct", str(referenced_ct)]
    if xor:
        cmd.append("--xor-contours")
    res = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    masks = {}
    for f in sorted(out.glob("*.nii.gz")):
        img = read_image(f, label=True)
        masks[f.name[: -len(".nii.gz")]] = (img.array > 0, img)
    return masks


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total
