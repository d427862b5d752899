"""
Deterministic mock disc galaxies for tests, examples and benchmarks.

The mock is built from three extensive maps on the sky: the mass of an old
stellar population (exponential disc plus bulge), the mass of a young
population (a fainter, wider disc with two logarithmic spiral arms and
star-forming clumps), and the dust, whose luminosity is the energy the two
populations heat it with and whose mass follows a smooth disc with arms.
Smooth random fields (sums of random plane waves) scatter the dust luminosity
and mass around those relations.

The true dust properties follow from the extensive maps at any resolution:

- ``sLd = log10(Ldust / Mstar)``,
- ``sMd = log10(Mdust / Mstar)``,
- ``Td = 18.3 K * Umin**(1 / 5.79)`` with ``Umin = (Ldust / Mdust) / 200 Lsun/Msun``,
  the THEMIS relation of the DustPedia CIGALE catalogue (Ldust/Mdust is
  200 Lsun/Msun per unit Umin in that catalogue).

Band fluxes are linear in the stellar masses and the dust luminosity below
20 micron (two stellar templates and a mid-infrared dust template); the far
infrared is a modified black body (beta = 1.79) at the local ``Td`` carrying
65% of the local dust luminosity. So local colours trace the local dust
properties through a smooth relation, with the scatter of the random fields.
"""

from dataclasses import dataclass, field

import astropy.constants as const
import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.nddata import CCDData, NDData
from astropy.stats import gaussian_fwhm_to_sigma
from astropy.table import QTable, Table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area
from ndcube import NDCollection
from scipy.integrate import trapezoid
from scipy.ndimage import gaussian_filter
from scipy.special import erf

from ..bands import BANDS, INPUT_BANDS, get_band

__all__ = ['MockGalaxy', 'make_mock_galaxy']

_TEMPLATE_DISTANCE = 10 * u.Mpc
# Old and young stellar templates: flux (Jy) of 1e10 Msun at 10 Mpc. Shapes
# follow an early-type and a star-forming SED normalised at 3.4 micron.
_OLD_W1, _YOUNG_W1 = 0.25, 0.75
_STELLAR_COLOURS = {  # F_band / F_W1: old, young
    'GALEX_FUV': (0.005, 3.0), 'GALEX_NUV': (0.01, 3.0),
    'SDSS_u': (0.15, 3.0), 'SDSS_g': (0.6, 3.2), 'SDSS_r': (1.05, 3.0),
    'SDSS_i': (1.4, 2.8), 'SDSS_z': (1.6, 2.6), '2MASS_J': (2.5, 2.2),
    '2MASS_H': (2.9, 1.8), '2MASS_Ks': (2.3, 1.5), 'WISE_3.4': (1.0, 1.0),
    'WISE_4.6': (0.55, 0.7), 'WISE_12': (0.1, 0.2), 'WISE_22': (0.03, 0.08),
    'Spitzer_3.6': (1.05, 1.0), 'Spitzer_4.5': (0.6, 0.72),
    'Spitzer_5.8': (0.4, 0.5), 'Spitzer_8.0': (0.25, 0.3),
    'Spitzer_24': (0.03, 0.07)}
# Mid-infrared dust emission: nu L_nu / Ldust (PAHs and hot grains)
_MIR_DUST = {'WISE_3.4': 0.004, 'WISE_4.6': 0.006, 'Spitzer_3.6': 0.005,
             'Spitzer_4.5': 0.006, 'Spitzer_5.8': 0.05, 'Spitzer_8.0': 0.15,
             'WISE_12': 0.13, 'WISE_22': 0.12, 'Spitzer_24': 0.12}
_FIR_FRACTION = 0.65
_BETA = 1.79
_HEATING = (10.0, 0.1)  # Ldust per Msun of young and of old stars (Lsun/Msun)
_LD_PER_MD_PER_UMIN = 200.0  # Lsun/Msun
_STAR_TEMPERATURE = 5000 * u.K
_G_WAVELENGTH = 0.64 * u.micron
_FINEST = 0.5  # arcsec: images are computed on pixels at most this large
_REFERENCE_STEP = 0.25 * u.arcsec  # grid of the normalisation and of the total fluxes


@dataclass
class MockGalaxy:
    """
    A mock galaxy: images, foreground stars, and the truth behind them.

    Attributes
    ----------
    images : `~ndcube.NDCollection`
        Raw images (`~astropy.nddata.CCDData`, sky not subtracted, no
        uncertainty) keyed by band; each on its band's pixel scale and PSF.
        ``meta`` holds ``'band'``, ``'psf_fwhm'`` and a FITS ``'header'``.
    stars : `~astropy.table.Table`
        Injected foreground stars, with Gaia ``gaia_source`` column names.
    sed : `~astropy.table.QTable`
        Total flux density per band (Jy) of the galaxy within the field,
        computed without PSF on a 0.25 arcsec grid.
    galaxy : dict
        ``name``, ``center`` (`~astropy.coordinates.SkyCoord`), ``semimajor``
        (the D25 radius), ``axis_ratio`` (b/a), ``position_angle`` (east of
        north), ``distance``.
    sky_rms : dict
        Per band, the noise per pixel in the image unit.
    """

    images: NDCollection
    stars: Table
    sed: QTable
    galaxy: dict
    sky_rms: dict
    _model: object = field(repr=False)

    def truth_maps(self, wcs, shape, fwhm):
        """
        The true dust properties on a pixel grid at a resolution.

        The extensive maps (stellar mass, dust luminosity, dust mass) are
        integrated over each pixel and smoothed with a Gaussian PSF of the
        given FWHM before the ratios are taken, as the images are.

        Parameters
        ----------
        wcs : `~astropy.wcs.WCS`
            Celestial WCS of the grid.
        shape : tuple of int
            Grid shape ``(ny, nx)``.
        fwhm : `~astropy.units.Quantity`
            Resolution (zero for none).

        Returns
        -------
        truth : dict
            ``sLd`` and ``sMd`` (dex) and ``Td`` (K) as Quantity arrays.
        """
        mstar, ldust, mdust = self._model.extensive(wcs, shape, fwhm)
        with np.errstate(divide='ignore', invalid='ignore'):
            return {'sLd': np.log10(ldust / mstar) * u.dex,
                    'sMd': np.log10(mdust / mstar) * u.dex,
                    'Td': _temperature(ldust / mdust)}

    @property
    def truth(self):
        """The true maps on the WISE 3.4 micron grid and resolution, as NDData."""
        band = 'WISE_3.4' if 'WISE_3.4' in self.images else next(iter(self.images))
        image = self.images[band]
        maps = self.truth_maps(image.wcs, image.shape, image.meta['psf_fwhm'])
        return NDCollection([(name, NDData(q.value, unit=q.unit, wcs=image.wcs))
                             for name, q in maps.items()])


def _temperature(ld_per_md):
    umin = np.asarray(ld_per_md) / _LD_PER_MD_PER_UMIN
    with np.errstate(invalid='ignore'):
        return 18.3 * umin ** (1 / 5.79) * u.K


class _Model:
    """Analytic extensive maps of the mock, evaluated on any sky grid."""

    def __init__(self, rng, *, center, semimajor, axis_ratio, position_angle,
                 stellar_mass, young_fraction, dust_to_stars):
        self.center = center
        self.h = semimajor.to_value(u.arcsec) / 4
        self.q = axis_ratio
        self.pa = position_angle.to_value(u.rad)
        self.masses = (stellar_mass * (1 - young_fraction),
                       stellar_mass * young_fraction)
        self.ldust = _HEATING[0] * self.masses[1] + _HEATING[1] * self.masses[0]
        self.mdust = dust_to_stars * stellar_mass
        n_clumps = 20
        self.clump_r = rng.uniform(0.3, 3.2, n_clumps) * self.h
        self.clump_arm = rng.integers(0, 2, n_clumps)
        self.clump_amp = rng.uniform(0.5, 1.5, n_clumps)
        self.waves = [self._random_waves(rng) for _ in range(2)]
        self.scatter = (0.35, 0.35)  # natural-log scatter of Ldust and Mdust

    @staticmethod
    def _random_waves(rng, n=24):
        k = 2 * np.pi / rng.uniform(8, 40, n)
        angle = rng.uniform(0, 2 * np.pi, n)
        return k * np.cos(angle), k * np.sin(angle), rng.uniform(0, 2 * np.pi, n)

    def _offsets(self, wcs, shape, oversample):
        ny, nx = shape
        step = 1 / oversample
        x = np.arange(nx * oversample) * step - 0.5 + step / 2
        y = np.arange(ny * oversample) * step - 0.5 + step / 2
        xx, yy = np.meshgrid(x, y)
        ra, dec = wcs.pixel_to_world_values(xx, yy)
        ra0, dec0 = self.center.ra.deg, self.center.dec.deg
        xi = (((ra - ra0 + 180) % 360) - 180) * np.cos(np.radians(dec0)) * 3600
        eta = (dec - dec0) * 3600
        return xi, eta

    def _profiles(self, xi, eta):
        """Unnormalised old mass, young mass, dust luminosity and dust mass."""
        major = eta * np.cos(self.pa) + xi * np.sin(self.pa)
        minor = (xi * np.cos(self.pa) - eta * np.sin(self.pa)) / self.q
        r = np.hypot(major, minor)
        theta = np.arctan2(minor, major)
        h = self.h
        old = np.exp(-r / h) + 3 * np.exp(-r / (0.15 * h))
        spiral = np.log(np.maximum(r, 0.05 * h) / h) / np.tan(np.radians(20))
        arms = 1 + 0.8 * np.cos(2 * (theta - spiral))
        young = np.exp(-r / (1.2 * h)) * arms
        for rc, arm, amp in zip(self.clump_r, self.clump_arm, self.clump_amp):
            phase = np.log(rc / h) / np.tan(np.radians(20)) + arm * np.pi
            dmaj = major - rc * np.cos(phase)
            dmin = minor - rc * np.sin(phase)
            young = young + amp * 4 * np.exp(-(dmaj ** 2 + dmin ** 2) / (2 * 2.0 ** 2))
        fields = [sum(np.cos(kx * xi + ky * eta + ph) for kx, ky, ph in zip(*w))
                  / np.sqrt(len(w[0]) / 2) for w in self.waves]
        heating = (_HEATING[0] * self.masses[1] * young / self._young_norm
                   + _HEATING[1] * self.masses[0] * old / self._old_norm)
        ldust = heating * np.exp(self.scatter[0] * fields[0])
        mdust = np.exp(-r / (1.3 * h)) * (1 + 0.5 * (arms - 1)) * np.exp(
            self.scatter[1] * fields[1])
        return old, young, ldust, mdust

    def normalise(self, fov):
        """Set the total masses and luminosity within the field of view."""
        n = int(np.ceil(fov.to_value(u.arcsec) / _REFERENCE_STEP.to_value(u.arcsec)))
        wcs = _tan_wcs(self.center, _REFERENCE_STEP, (n, n))
        xi, eta = self._offsets(wcs, (n, n), 1)
        # The dust heating uses the stellar norms: set them, then evaluate again
        self._old_norm = self._young_norm = 1.0
        old, young, ldust, mdust = self._profiles(xi, eta)
        self._old_norm, self._young_norm = old.sum(), young.sum()
        old, young, ldust, mdust = self._profiles(xi, eta)
        self._ldust_norm = ldust.sum() / self.ldust
        self._mdust_norm = mdust.sum() / self.mdust
        # Unsmoothed maps on the fine grid: the reference for total fluxes
        self.reference = self.raw_maps(wcs, (n, n))[0]

    def extensive(self, wcs, shape, fwhm):
        """Per-pixel stellar mass, dust luminosity and dust mass."""
        old, young, ldust, mdust = self.smooth(self.raw_maps(wcs, shape), fwhm)
        return old + young, ldust, mdust

    def raw_maps(self, wcs, shape):
        """Unsmoothed per-subpixel old and young mass, Ldust, Mdust, with the grid."""
        scale = _pixel_scale(wcs)
        oversample = max(1, int(np.ceil(scale.to_value(u.arcsec) / _FINEST)))
        xi, eta = self._offsets(wcs, shape, oversample)
        old, young, ldust, mdust = self._profiles(xi, eta)
        cell = ((scale / oversample) ** 2 / _REFERENCE_STEP ** 2).decompose().value
        maps = [old / self._old_norm * self.masses[0] * cell,
                young / self._young_norm * self.masses[1] * cell,
                ldust / self._ldust_norm * cell, mdust / self._mdust_norm * cell]
        return maps, scale, oversample

    @staticmethod
    def smooth(raw, fwhm):
        """Smooth raw maps with a Gaussian PSF and bin them to pixels."""
        maps, scale, oversample = raw
        sigma = (fwhm / scale).decompose().value * oversample * gaussian_fwhm_to_sigma
        return [_smooth_and_bin(m, sigma, oversample) for m in maps]


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
    """nu^beta B_nu(T), normalised to unit integral over frequency."""
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


def _band_flux(band, old, young, ldust, mdust, distance):
    """Flux density (Jy) per pixel from the per-pixel extensive maps."""
    dilution = (_TEMPLATE_DISTANCE / distance).decompose().value ** 2
    flux = np.zeros_like(old)
    if band in _STELLAR_COLOURS:
        c_old, c_young = _STELLAR_COLOURS[band]
        flux += dilution * 1e-10 * (_OLD_W1 * c_old * old + _YOUNG_W1 * c_young * young)
    lum_to_flux = (u.Lsun / (4 * np.pi * distance ** 2)).to_value(u.W / u.m ** 2)
    nu = (const.c / BANDS[band].wavelength).to_value(u.Hz)
    if band in _MIR_DUST:
        flux += _MIR_DUST[band] * ldust * lum_to_flux / nu / 1e-26
    if BANDS[band].wavelength > 20 * u.micron:
        with np.errstate(divide='ignore', invalid='ignore'):
            temperature = _temperature(np.where(mdust > 0, ldust / mdust, 0)).value
        temperature = np.nan_to_num(temperature, nan=10.0)
        shape = _modified_black_body(BANDS[band].wavelength, temperature)
        flux += _FIR_FRACTION * ldust * lum_to_flux * shape / 1e-26
    return flux


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


def make_mock_galaxy(*, bands=INPUT_BANDS, seed=0, distance=10 * u.Mpc,
                     center=SkyCoord(150.0, 2.0, unit='deg'),
                     fov=4 * u.arcmin, pixel_scale=None,
                     semimajor=1 * u.arcmin, axis_ratio=0.6,
                     position_angle=30 * u.deg, stellar_mass=1e10,
                     young_fraction=0.02, dust_to_stars=5e-4,
                     n_stars=0, stars=None, noise=True, sky=True,
                     name='MOCK'):
    """
    Make a deterministic mock disc galaxy imaged in any registry bands.

    Each band is imaged on its own pixel scale (`~astro_dustml.bands.Band`
    ``pixel_scale``) with its own Gaussian PSF (``fwhm``), in Jy/pix (MJy/sr
    for Spitzer, as the Spitzer archives give), with a sky pedestal and
    gradient and Gaussian noise. See the module docstring for the physics.

    Parameters
    ----------
    bands : sequence of str, optional
        Bands to image (default: the 18 model inputs).
    seed : int, optional
        Seed of the random draws (clumps, scatter fields, stars, noise).
    distance : `~astropy.units.Quantity`, optional
        Distance of the galaxy.
    center : `~astropy.coordinates.SkyCoord`, optional
        Centre of the galaxy and of every image.
    fov : `~astropy.units.Quantity`, optional
        Side of the square images.
    pixel_scale : `~astropy.units.Quantity`, optional
        One pixel scale for all bands instead of each band's own.
    semimajor : `~astropy.units.Quantity`, optional
        D25 radius; the stellar disc scale length is a quarter of it.
    axis_ratio : float, optional
        Minor over major axis.
    position_angle : `~astropy.units.Quantity`, optional
        Major axis, east of north.
    stellar_mass : float, optional
        Stellar mass in the field, in solar masses.
    young_fraction : float, optional
        Mass fraction of the young population.
    dust_to_stars : float, optional
        Dust to stellar mass ratio.
    n_stars : int, optional
        Number of random foreground stars to inject.
    stars : `~astropy.table.Table`, optional
        Stars to inject instead (``ra``, ``dec`` in degrees,
        ``phot_g_mean_mag``; other Gaia columns are kept).
    noise, sky : bool, optional
        Add Gaussian noise; add a sky pedestal with a gradient.
    name : str, optional
        Galaxy name.

    Returns
    -------
    mock : `MockGalaxy`

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_dustml.datasets import make_mock_galaxy
    >>> mock = make_mock_galaxy(bands=['WISE_3.4', 'WISE_12'], fov=2 * u.arcmin,
    ...                         semimajor=40 * u.arcsec, n_stars=5)
    >>> mock.images['WISE_3.4'].shape
    (88, 88)
    >>> mock.images['WISE_3.4'].unit
    Unit("Jy / pix")
    >>> len(mock.stars)
    5
    """
    rng = np.random.default_rng(seed)
    bands = [get_band(b) for b in bands]
    model = _Model(rng, center=center, semimajor=semimajor, axis_ratio=axis_ratio,
                   position_angle=position_angle, stellar_mass=stellar_mass,
                   young_fraction=young_fraction, dust_to_stars=dust_to_stars)
    model.normalise(fov)
    if stars is None:
        stars = _random_stars(rng, n_stars, center, fov)
    else:
        stars = Table(stars, copy=True)
        missing = {'ra', 'dec', 'phot_g_mean_mag'} - set(stars.colnames)
        if missing:
            raise ValueError(f'stars= needs the columns {sorted(missing)}.')

    images, sky_rms, total = [], {}, []
    grids = {}
    for band in bands:
        scale = pixel_scale if pixel_scale is not None else band.pixel_scale
        n = int(np.ceil((fov / scale).decompose().value))
        wcs = _tan_wcs(center, scale, (n, n))
        key = scale.to_value(u.arcsec)
        if key not in grids:
            grids[key] = model.raw_maps(wcs, (n, n))
        # Emission is computed where it arises, then blurred by the PSF
        maps, _, oversample = grids[key]
        flux = model.smooth(([_band_flux(band.name, *maps, distance)], scale, oversample),
                            band.fwhm)[0]
        total.append(_band_flux(band.name, *model.reference, distance).sum())
        flux = flux + _render_stars(stars, band, wcs, (n, n), scale)

        unit = u.MJy / u.sr if band.telescope == 'Spitzer' else u.Jy / u.pix
        to_unit = (1.0 if unit == u.Jy / u.pix
                   else (u.Jy / scale ** 2).to_value(unit))
        data = flux * to_unit
        # Noise: signal-to-noise about 2 per pixel at the D25 radius
        edge = _edge_level(model, flux, wcs, semimajor) * to_unit
        rms = 0.5 * edge if noise else 0.0
        if sky:
            yy, xx = np.mgrid[:n, :n] / n
            data = data + 5 * edge * (1 + 0.2 * (xx - 0.5) + 0.1 * (yy - 0.5))
        if noise:
            data = data + rng.normal(0, rms, data.shape)
        sky_rms[band.name] = rms * unit
        meta = {'band': band.name, 'psf_fwhm': band.fwhm,
                'header': _header(band, wcs, unit)}
        images.append((band.name, CCDData(data, unit=unit, wcs=wcs, meta=meta)))

    sed = QTable({'band': [b.name for b in bands],
                  'wavelength': u.Quantity([b.wavelength for b in bands]),
                  'flux': total * u.Jy})
    galaxy = {'name': name, 'center': center, 'semimajor': semimajor,
              'axis_ratio': axis_ratio, 'position_angle': position_angle,
              'distance': distance}
    return MockGalaxy(images=NDCollection(images), stars=stars, sed=sed,
                      galaxy=galaxy, sky_rms=sky_rms, _model=model)


def _edge_level(model, flux, wcs, semimajor):
    """Median noise-free flux per pixel on the D25 ellipse."""
    ny, nx = flux.shape
    xi, eta = model._offsets(wcs, (ny, nx), 1)
    major = eta * np.cos(model.pa) + xi * np.sin(model.pa)
    minor = (xi * np.cos(model.pa) - eta * np.sin(model.pa)) / model.q
    r = np.hypot(major, minor) / semimajor.to_value(u.arcsec)
    ring = np.abs(r - 1) < 0.05
    return float(np.median(flux[ring])) if ring.any() else float(np.median(flux))
