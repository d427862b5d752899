"""Shared pieces of the mock galaxies: sky geometry, grids, PSF smoothing, stars, headers."""

import astropy.constants as const
import astropy.units as u
import numpy as np
from astropy.stats import gaussian_fwhm_to_sigma
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area
from scipy.integrate import trapezoid
from scipy.ndimage import gaussian_filter
from scipy.special import erf

from ...sed.dust_emission import TD_UMIN1, UMIN_POWER

__all__ = []

_FINEST = 0.5  # arcsec: images are computed on pixels at most this large
_REFERENCE_STEP = 0.25 * u.arcsec  # grid of the normalisation and of the total fluxes
_BETA = 1.79
_FIR_FRACTION = 0.65  # share of Ldust in the far-infrared modified black body
_STAR_TEMPERATURE = 5000 * u.K
_G_WAVELENGTH = 0.64 * u.micron
_LD_PER_MD_PER_UMIN = 200.0  # Lsun/Msun


class _Geometry:
    """An inclined disc on the sky: offsets and polar coordinates in its plane."""

    def __init__(self, *, center, semimajor, axis_ratio, position_angle):
        self.center = center
        self.h = semimajor.to_value(u.arcsec) / 4  # disc scale length (arcsec)
        self.q = axis_ratio
        self.pa = position_angle.to_value(u.rad)
        self.finest = _FINEST  # arcsec
        self.reference_step = _REFERENCE_STEP

    def _offsets(self, wcs, shape, oversample, rows=None):
        """Sky offsets (arcsec) of the subpixel centres, of pixel rows ``rows=(y0, y1)``."""
        ny, nx = shape
        y0, y1 = rows if rows is not None else (0, ny)
        step = 1 / oversample
        x = np.arange(nx * oversample) * step - 0.5 + step / 2
        y = np.arange(y0 * oversample, y1 * oversample) * step - 0.5 + step / 2
        xx, yy = np.meshgrid(x, y)
        ra, dec = wcs.pixel_to_world_values(xx, yy)
        ra0, dec0 = self.center.ra.deg, self.center.dec.deg
        xi = (((ra - ra0 + 180) % 360) - 180) * np.cos(np.radians(dec0)) * 3600
        eta = (dec - dec0) * 3600
        return xi, eta

    def _disc(self, xi, eta):
        """Major and minor axis offsets (deprojected), radius and azimuth (arcsec, rad)."""
        major = eta * np.cos(self.pa) + xi * np.sin(self.pa)
        minor = (xi * np.cos(self.pa) - eta * np.sin(self.pa)) / self.q
        return major, minor, np.hypot(major, minor), np.arctan2(minor, major)

    def _grid(self, wcs, shape):
        scale = _pixel_scale(wcs)
        oversample = max(1, int(np.ceil(scale.to_value(u.arcsec) / self.finest)))
        return scale, oversample

    @staticmethod
    def smooth(raw, fwhm):
        """Smooth raw subpixel maps with a Gaussian PSF and bin them to pixels."""
        maps, scale, oversample = raw
        sigma = (fwhm / scale).decompose().value * oversample * gaussian_fwhm_to_sigma
        return [_smooth_and_bin(m, sigma, oversample) for m in maps]


def _random_waves(rng, n=24):
    k = 2 * np.pi / rng.uniform(8, 40, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    return k * np.cos(angle), k * np.sin(angle), rng.uniform(0, 2 * np.pi, n)


def _wave_field(waves, xi, eta):
    """A smooth random field of unit variance: a sum of random plane waves."""
    kx, ky, phase = waves
    return sum(np.cos(a * xi + b * eta + p) for a, b, p in zip(kx, ky, phase)) / np.sqrt(
        len(kx) / 2)


def _temperature(ld_per_md):
    """THEMIS dust temperature from Ldust/Mdust (DustPedia CIGALE catalogue relation)."""
    umin = np.asarray(ld_per_md) / _LD_PER_MD_PER_UMIN
    with np.errstate(invalid='ignore'):
        return TD_UMIN1 * umin ** (1 / UMIN_POWER)


def _smooth_and_bin(array, sigma, oversample):
    if sigma > 0:
        array = gaussian_filter(array, sigma, mode='constant', truncate=5)
    if oversample > 1:
        ny, nx = array.shape
        array = array.reshape(ny // oversample, oversample,
                              nx // oversample, oversample).sum(axis=(1, 3))
    return array


def _pixel_scale(wcs):
    return np.sqrt(proj_plane_pixel_area(wcs.celestial)) * u.deg


def _tan_wcs(center, scale, shape):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [center.ra.deg, center.dec.deg]
    wcs.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    wcs.wcs.cdelt = [-scale.to_value(u.deg), scale.to_value(u.deg)]
    wcs.wcs.cunit = ['deg', 'deg']
    wcs.wcs.radesys = 'ICRS'
    return wcs


def _modified_black_body(wavelength, temperature):
    """nu^beta B_nu(T) per unit frequency, normalised to unit integral over frequency (1/Hz)."""
    nu = (const.c / wavelength).to_value(u.Hz)
    x = (const.h / const.k_B).to_value(u.s * u.K)

    def shape(f, t):
        with np.errstate(over='ignore'):
            return f ** (3 + _BETA) / np.expm1(x * f / t)

    # The integral is tabulated in temperature, not computed per pixel
    grid = np.geomspace(3e10, 1.5e14, 600)  # 2 mm to 2 micron
    table_t = np.geomspace(3, 300, 400)
    norms = trapezoid(shape(grid[:, None], table_t[None, :]), grid, axis=0)
    t = np.asarray(temperature)
    return shape(nu, t) / np.exp(np.interp(np.log(t), np.log(table_t), np.log(norms)))


def _fir_flux(band, ldust, temperature, distance):
    """Flux density (Jy) of the far-infrared modified black body carrying 65% of ldust (Lsun)."""
    lum_to_flux = (u.Lsun / (4 * np.pi * distance ** 2)).to_value(u.W / u.m ** 2)
    shape = _modified_black_body(band.wavelength, temperature)
    return _FIR_FRACTION * ldust * lum_to_flux * shape / 1e-26


def _render_stars(stars, band, wcs, shape, scale):
    """Pixel-integrated Gaussian images of the stars (Jy per pixel)."""
    image = np.zeros(shape)
    if len(stars) == 0:
        return image
    x, y = wcs.world_to_pixel_values(stars['ra'], stars['dec'])
    sigma = (band.fwhm / scale).decompose().value * gaussian_fwhm_to_sigma
    flux = _star_flux(stars['phot_g_mean_mag'], band)
    half = int(np.ceil(6 * sigma)) + 1
    for xs, ys, fs in zip(x, y, flux):
        ix, iy = int(round(xs)), int(round(ys))
        x0, x1 = max(ix - half, 0), min(ix + half + 1, shape[1])
        y0, y1 = max(iy - half, 0), min(iy + half + 1, shape[0])
        if x0 >= x1 or y0 >= y1:
            continue
        px = np.arange(x0, x1)
        py = np.arange(y0, y1)
        cx = 0.5 * (erf((px + 0.5 - xs) / (np.sqrt(2) * sigma))
                    - erf((px - 0.5 - xs) / (np.sqrt(2) * sigma)))
        cy = 0.5 * (erf((py + 0.5 - ys) / (np.sqrt(2) * sigma))
                    - erf((py - 0.5 - ys) / (np.sqrt(2) * sigma)))
        image[y0:y1, x0:x1] += fs * np.outer(cy, cx)
    return image


def _star_flux(g_mag, band):
    """Black-body star normalised to an AB-like flux at the Gaia G wavelength."""
    x = (const.h * const.c / const.k_B / _STAR_TEMPERATURE).to_value(u.micron)
    lam = band.wavelength.to_value(u.micron)
    lam_g = _G_WAVELENGTH.to_value(u.micron)
    ratio = (lam_g / lam) ** 3 * np.expm1(x / lam_g) / np.expm1(x / lam)
    return 3631 * 10 ** (-0.4 * np.asarray(g_mag, dtype=float)) * ratio


def _random_stars(rng, n, center, fov):
    half = fov.to_value(u.deg) / 2
    dra = rng.uniform(-half, half, n) / np.cos(center.dec.radian)
    ddec = rng.uniform(-half, half, n)
    # A steep number count: most stars faint, a few bright
    g = 20.5 - 7 * rng.power(3.0, n) ** 2
    parallax = rng.uniform(0.5, 3.0, n)
    parallax_error = rng.uniform(0.02, 0.3, n)
    return Table({
        'source_id': np.arange(1, n + 1, dtype=np.int64),
        'ra': center.ra.deg + dra, 'dec': center.dec.deg + ddec,
        'parallax': parallax, 'parallax_error': parallax_error,
        'parallax_over_error': parallax / parallax_error,
        'pmra': rng.normal(0, 8, n), 'pmdec': rng.normal(0, 8, n),
        'phot_g_mean_mag': g})


def _header(band, wcs, unit):
    header = wcs.to_header()
    header['TELESCOP'] = band.telescope
    header['INSTRUME'] = band.instrument
    header['FILTER'] = band.filter
    header['WVLNGTH'] = (f'{band.wavelength.to_value(u.micron):g}um',
                         'Pivot wavelength')
    header['BUNIT'] = unit.to_string('fits')
    return header


def _edge_level(model, flux, wcs, semimajor):
    """Median noise-free flux per pixel on the D25 ellipse."""
    xi, eta = model._offsets(wcs, flux.shape, 1)
    r = model._disc(xi, eta)[2] / semimajor.to_value(u.arcsec)
    ring = np.abs(r - 1) < 0.05
    return float(np.median(flux[ring])) if ring.any() else float(np.median(flux))
