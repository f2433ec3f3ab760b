"""The CT acquisition of a phantom case: tissue texture, streaks near bone, noise, int16 HU.

Applied slice by slice to the noise-free HU of :func:`.raster.rasterize`:

1. *Tissue texture.* Fat and lung are not uniform in real CT: a smooth random field (about
   12 mm grain for fat, 7 mm for lung; SD ``fat_texture`` and ``lung_texture`` HU) is added,
   weighted by how close a voxel's HU is to the case's fat (within 35 HU) or lung (within
   120 HU) value, so partial-volume edges and other tissues keep their HU; muscle is marbled
   with fat (up to 60 % in about a third of it, the same 7 mm grain). The lung also gets
   sparse specks of vessel HU (:func:`speck_bank`, a few % of its area): the small peripheral
   vessels that the geometric trees (:mod:`.trees`) leave out. Texture only: no label changes.
2. *Streaks near bone.* Where both humeri lie in a slice (arms down: most slices; arms up: the
   top slices), photon starvation along the line through them darkens a band as wide as the
   bones (up to ``45 x streaks`` HU between them, fading beyond), and thin bright and dark
   streaks fan out from each humerus (``streaks`` 0.3-1.5).
3. *Noise* with a CT-like noise power spectrum: ramp-filtered and apodised white noise
   (:func:`noise_bank`; ``kernel`` 0 soft .. 1 sharp), slightly elongated left-right when the
   arms are down. Its SD is ``noise_sd`` (10-25 HU at 5 mm, mid-chest), scaled by
   ``sqrt(5 mm / slice thickness)`` and per slice by the attenuation of its widest row
   (``exp(0.004 (L - 300 mm))``, 0.7-2, ``L`` the water-equivalent width: shoulders and arms
   raise it); a quarter of it in the air outside the body. Each slice takes one of a few
   precomputed noise images, shifted and flipped at random (cheap, and the same spectrum).
4. Clipping to [-1024, 3071] and rounding to int16.

>>> import numpy as np
>>> bank = noise_bank(np.random.default_rng(0), (64, 64), 1.0, kernel=0.5, aniso=0.0)
>>> bank.shape, bool(abs(bank.std() - 1.0) < 0.05)
((3, 64, 64), True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["noise_bank", "speck_bank", "finish_ct"]


#: noise outside the body relative to inside (real CT: about 4 HU in the air around a chest)
AIR_NOISE = 0.25


def noise_bank(rng: np.random.Generator, shape: tuple[int, int], px: float, kernel: float,
               aniso: float, n: int = 3) -> np.ndarray:
    """``n`` noise images of unit SD with a CT-like spectrum: ``(f + 0.05) exp(-(f / fc)^2)``
    (``f`` cycles/mm, ``fc`` 0.25-0.6 with ``kernel``), the x frequency scaled by
    ``1 + aniso`` (``aniso > 0``: grain elongated left-right)."""
    ny, nx = shape
    fy = np.fft.fftfreq(ny, d=px)[:, None]
    fx = np.fft.rfftfreq(nx, d=px)[None, :] * (1.0 + aniso)
    f = np.sqrt(fx * fx + fy * fy)
    fc = 0.25 + 0.35 * kernel
    amp = np.sqrt((f + 0.05) * np.exp(-((f / fc) ** 2)))
    out = np.empty((n, ny, nx), np.float32)
    for i in range(n):
        w = rng.standard_normal((ny, nx))
        img = np.fft.irfft2(np.fft.rfft2(w) * amp, s=(ny, nx))
        out[i] = img / img.std()
    return out


def speck_bank(rng: np.random.Generator, shape: tuple[int, int], px: float, n: int = 4,
               grain_mm: tuple[float, float] = (1.1, 3.0), level: float = 1.2,
               ramp: float = 1.8) -> np.ndarray:
    """``n`` images of sparse specks (coverage 0..1): white noise smoothed over an elongated
    Gaussian (``grain_mm`` across and along, a random direction per image), kept where it
    exceeds ``level`` SD (coverage rising over ``ramp`` SD: partial volume). They stand for
    the small peripheral vessels, seen in a slice as dots and short lines 1-3 mm across, and
    the haze of those below the resolution."""
    ny, nx = shape
    fy = np.fft.fftfreq(ny, d=px)[:, None]
    fx = np.fft.rfftfreq(nx, d=px)[None, :]
    out = np.empty((n, ny, nx), np.float32)
    for i in range(n):
        th = rng.uniform(0, np.pi)
        fu = fx * np.cos(th) + fy * np.sin(th)
        fv = -fx * np.sin(th) + fy * np.cos(th)
        g = np.exp(-2.0 * np.pi ** 2 * ((grain_mm[1] * fu) ** 2 + (grain_mm[0] * fv) ** 2))
        img = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((ny, nx))) * g, s=(ny, nx))
        out[i] = np.clip((img / img.std() - level) / ramp, 0.0, 1.0)
    return out


def _smooth_field(rng: np.random.Generator, nz: int, shape: tuple[int, int], px: float,
                  grain_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A coarse random field (unit SD) and the bilinear upsampling matrices to ``shape``."""
    ny, nx = shape
    step = max(grain_mm / px, 1.0)
    gy, gx = int(np.ceil(ny / step)) + 2, int(np.ceil(nx / step)) + 2
    coarse = rng.standard_normal((nz, gy, gx)).astype(np.float32)
    return coarse, _interp_matrix(ny, gy, step), _interp_matrix(nx, gx, step)


def _interp_matrix(n: int, g: int, step: float) -> np.ndarray:
    """``(n, g)`` linear interpolation weights from ``g`` knots ``step`` pixels apart."""
    pos = np.arange(n) / step
    i0 = np.clip(np.floor(pos).astype(int), 0, g - 2)
    f = (pos - i0).astype(np.float32)
    m = np.zeros((n, g), np.float32)
    m[np.arange(n), i0] = 1 - f
    m[np.arange(n), i0 + 1] = f
    return m


def _streaks(hs: np.ndarray, centres: np.ndarray, radius_px: float, strength: float,
             rng: np.random.Generator) -> None:
    """Dark band through two dense bones and thin streaks fanning out from them (in place).
    ``centres``: ``(2, 2)`` pixel (row, col) of the two humeri."""
    (r0, c0), (r1, c1) = centres
    ny, nx = hs.shape
    if abs(c1 - c0) < 1:
        return
    slope = (r1 - r0) / (c1 - c0)
    cols = np.arange(nx)
    line = r0 + slope * (cols - c0)
    lo, hi = min(c0, c1), max(c0, c1)
    along = np.clip(1.0 - np.maximum(np.maximum(lo - cols, cols - hi), 0) / (2 * radius_px
                                                                              + 20), 0, 1)
    w = max(int(np.ceil(1.5 * radius_px)), 1)
    offs = np.arange(-w, w + 1)
    prof = (1.0 - (offs / (w + 1.0)) ** 2) * 45.0 * strength
    _add_band(hs, line, offs, -prof[:, None] * along[None, :])
    for rc, cc in ((r0, c0), (r1, c1)):
        for sign in (1.0, -1.0, 1.0, -1.0):
            sl = slope + rng.normal(0.0, 0.12)
            ln = rc + sl * (cols - cc)
            fade = np.exp(-np.abs(cols - cc) / (0.6 * nx))
            amp = sign * rng.uniform(15.0, 35.0) * strength * fade
            _add_band(hs, ln, np.array([0]), amp[None, :])


def _add_band(hs: np.ndarray, line: np.ndarray, offs: np.ndarray, vals: np.ndarray) -> None:
    """``hs[round(line) + o, col] += vals[o, col]`` where the row is inside the image."""
    ny, nx = hs.shape
    rows = np.rint(line).astype(int)[None, :] + offs[:, None]
    cols = np.broadcast_to(np.arange(nx)[None, :], rows.shape)
    ok = (rows >= 0) & (rows < ny)
    hs[rows[ok], cols[ok]] += vals[ok].astype(np.float32)


def _humerus_pixels(anat, grid, za: np.ndarray) -> np.ndarray:
    """``(nz, 2, 2)`` pixel (row, col) of both humeri per slice (NaN where absent)."""
    out = np.full((len(za), 2, 2), np.nan)
    for j, arm in enumerate(anat.arms):
        xy = arm.humerus.centres_at(za)
        ok = ~np.isnan(xy[:, 0])
        xw, yw, _ = grid.to_world(xy[ok, 0], xy[ok, 1], 0.0)
        out[ok, j, 0] = (yw - grid.origin[1]) / grid.spacing[1]
        out[ok, j, 1] = (xw - grid.origin[0]) / grid.spacing[0]
    return out


def _attenuation_scale(hs: np.ndarray, px: float) -> float:
    """Noise scale of a slice from the water-equivalent width of its widest row."""
    mu = np.clip((hs + 1000.0) / 1000.0, 0.0, None)
    width = float(mu.sum(axis=1).max()) * px
    return float(np.clip(np.exp(0.004 * (width - 300.0)), 0.7, 2.0))


def _window(bank: np.ndarray, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A random window of a random (periodic, tiled 2 x 2) bank image, flipped at random."""
    ny, nx = shape
    w = bank[int(rng.integers(len(bank)))]
    dy, dx = int(rng.integers(ny)), int(rng.integers(nx))
    w = w[dy:dy + ny, dx:dx + nx]
    return w[:, ::-1] if rng.random() < 0.5 else w


def _texture(hs, box, inb, fields, H, p, specks_w) -> None:
    """Fat and lung texture, fat marbling of muscle and the vessel specks inside the body's
    bounding ``box``."""
    (fat_f, fy, fx), (lung_f, ly, lx) = fields
    r, c = box
    h = hs[r, c]
    w = np.clip(1.0 - np.abs(h - np.float32(H["fat"])) / np.float32(35.0), 0.0, 1.0)
    w *= inb
    h += np.float32(p["fat_texture"]) * w * (fy[r] @ fat_f @ fx[c].T)
    small = ly[r] @ lung_f @ lx[c].T  # ~7 mm grain (lung and muscle never overlap)
    w = np.clip(1.0 - np.abs(h - np.float32(H["muscle"])) / np.float32(30.0), 0.0, 1.0)
    w *= inb
    w *= np.clip(0.4 * (small - 0.3), 0.0, 0.6)  # intramuscular fat in about a third
    h += w * (np.float32(H["fat"]) - h)
    w = np.clip(1.0 - np.abs(h - np.float32(H["lung"] + 30.0)) / np.float32(120.0), 0.0, 1.0)
    w *= inb
    h += np.float32(p["lung_texture"]) * w * small
    w *= specks_w[r, c]
    h += w * (np.float32(H["pulm_arterial"]) - h)


def finish_ct(hu: np.ndarray, p: dict, H: dict, anat, grid, rng: np.random.Generator,
              body: np.ndarray) -> np.ndarray:
    """Texture, streaks and noise on ``hu`` (float32 ``[z, y, x]``, modified in place);
    returns the int16 CT. ``body`` (bool ``[z, y, x]``) limits the tissue texture to the
    body (the table's foam core is not lung)."""
    nz, ny, nx = hu.shape
    px, dz = float(grid.spacing[0]), float(grid.spacing[2])
    tile = lambda b: np.tile(b, (1, 2, 2))  # noqa: E731 - periodic banks, windows are views
    bank = tile(noise_bank(rng, (ny, nx), px, p["kernel"],
                           0.35 if p["arms"] == "down" else 0.1))
    specks = tile(speck_bank(rng, (ny, nx), px))
    fat_f, fy, fx = _smooth_field(rng, nz, (ny, nx), px, 12.0)
    lung_f, ly, lx = _smooth_field(rng, nz, (ny, nx), px, 7.0)
    hum = _humerus_pixels(anat, grid, grid.slice_z_world() - grid.shift[2])
    hum_r = anat.arms[0].humerus.radii[0] / px if anat.arms else 0.0
    sd0 = p["noise_sd"] * np.sqrt(5.0 / dz)
    out = np.empty(hu.shape, np.int16)
    for k in range(nz):
        hs = hu[k]
        rows, cols = np.nonzero(body[k].any(axis=1))[0], np.nonzero(body[k].any(axis=0))[0]
        sp = _window(specks, rng, (ny, nx))
        if rows.size:
            box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
            _texture(hs, box, body[k][box], ((fat_f[k], fy, fx), (lung_f[k], ly, lx)), H,
                     p, sp)
        if not np.isnan(hum[k]).any():
            _streaks(hs, hum[k], hum_r, p["streaks"], rng)
        scale = sd0 * _attenuation_scale(hs, px)
        noise = _window(bank, rng, (ny, nx)) * np.where(body[k], np.float32(scale),
                                                          np.float32(AIR_NOISE * scale))
        hs += noise
        np.clip(hs, -1024, 3071, out=hs)
        out[k] = np.rint(hs)
    return out
