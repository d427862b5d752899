"""
The analytic mock recipe (``dust_recipe='analytic'``): synthetic templates.

Three extensive maps: the mass of an old stellar population (exponential disc
plus bulge), of a young one (a wider disc with two spiral arms and clumps),
and the dust, whose luminosity is the energy the populations heat it with and
whose mass follows a smooth disc with arms, both scattered by smooth random
fields. Band fluxes are linear in the two stellar masses (fixed old and young
templates) and in the dust luminosity (a mid-infrared template); ``Td``
follows from Ldust/Mdust through the THEMIS relation. Its colour-dust
relation is synthetic, not DustPedia's: it serves tests that need colours
outside any real galaxy's.
"""

import astropy.constants as const
import astropy.units as u
import numpy as np

from ...bands import BANDS
from ._render import (_REFERENCE_STEP, _fir_flux, _Geometry, _random_waves, _tan_wcs, _temperature,
                      _wave_field)

__all__ = []

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
_HEATING = (10.0, 0.1)  # Ldust per Msun of young and of old stars (Lsun/Msun)


class _AnalyticModel(_Geometry):
    """Analytic extensive maps of the mock, evaluated on any sky grid."""

    def __init__(self, rng, *, stellar_mass, young_fraction, dust_to_stars, **geometry):
        super().__init__(**geometry)
        self.masses = (stellar_mass * (1 - young_fraction),
                       stellar_mass * young_fraction)
        self.ldust = _HEATING[0] * self.masses[1] + _HEATING[1] * self.masses[0]
        self.mdust = dust_to_stars * stellar_mass
        n_clumps = 20
        self.clump_r = rng.uniform(0.3, 3.2, n_clumps) * self.h
        self.clump_arm = rng.integers(0, 2, n_clumps)
        self.clump_amp = rng.uniform(0.5, 1.5, n_clumps)
        self.waves = [_random_waves(rng) for _ in range(2)]
        self.scatter = (0.35, 0.35)  # natural-log scatter of Ldust and Mdust

    def _profiles(self, xi, eta):
        """Unnormalised old mass, young mass, dust luminosity and dust mass."""
        major, minor, r, theta = self._disc(xi, eta)
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
        fields = [_wave_field(w, xi, eta) for w in self.waves]
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
        self.reference = self._raw_maps(wcs, (n, n))[0]

    def _raw_maps(self, wcs, shape):
        """Unsmoothed per-subpixel old and young mass, Ldust, Mdust, with the grid."""
        scale, oversample = self._grid(wcs, shape)
        xi, eta = self._offsets(wcs, shape, oversample)
        old, young, ldust, mdust = self._profiles(xi, eta)
        cell = ((scale / oversample) ** 2 / _REFERENCE_STEP ** 2).decompose().value
        maps = [old / self._old_norm * self.masses[0] * cell,
                young / self._young_norm * self.masses[1] * cell,
                ldust / self._ldust_norm * cell, mdust / self._mdust_norm * cell]
        return maps, scale, oversample

    def band_maps(self, wcs, shape, bands, distance):
        """Unsmoothed per-subpixel flux density (Jy) of each band, with the grid."""
        maps, scale, oversample = self._raw_maps(wcs, shape)
        return [_band_flux(b, *maps, distance) for b in bands], scale, oversample

    def total_flux(self, band, distance):
        """Total flux density (Jy) in the field, without PSF."""
        return float(_band_flux(band, *self.reference, distance).sum())

    def extensive(self, wcs, shape, fwhm):
        """Per-pixel stellar mass (Msun), dust luminosity (Lsun) and dust mass (Msun)."""
        old, young, ldust, mdust = self.smooth(self._raw_maps(wcs, shape), fwhm)
        return old + young, ldust, mdust

    def truth(self, wcs, shape, fwhm):
        """sLd, sMd, Td on a grid at a resolution (ratios of smoothed extensive maps)."""
        old, young, ldust, mdust = self.smooth(self._raw_maps(wcs, shape), fwhm)
        with np.errstate(divide='ignore', invalid='ignore'):
            return {'sLd': np.log10(ldust / (old + young)) * u.dex,
                    'sMd': np.log10(mdust / (old + young)) * u.dex,
                    'Td': _temperature(ldust / mdust)}

    def global_truth(self):
        """sLd, sMd, Td of the whole field."""
        old, young, ldust, mdust = (m.sum() for m in self.reference)
        return {'sLd': np.log10(ldust / (old + young)) * u.dex,
                'sMd': np.log10(mdust / (old + young)) * u.dex,
                'Td': _temperature(ldust / mdust)}


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
        flux += _fir_flux(BANDS[band], ldust, temperature, distance)
    return flux
