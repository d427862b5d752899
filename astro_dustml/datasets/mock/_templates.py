"""
The DustPedia mock recipe: every region's SED is a mixture of real galaxies' SEDs.

See the `astro_dustml.datasets.mock` module docstring for the physics.
"""

import functools
from importlib import resources

import astropy.units as u
import numpy as np
from astropy.table import Table

from ...bands import BANDS, INPUT_BANDS
from ...sed.dust_emission import TD_UMIN1, UMIN_POWER
from ._render import _LD_PER_MD_PER_UMIN, _fir_flux, _Geometry, _tan_wcs

__all__ = []

DUST_RECIPES = ('star_formation', 'dust_mass', 'temperature')
PATTERNS = ('arms', 'clumps', 'bar', 'smooth')
_TEMPLATE_DISTANCE = 10 * u.Mpc
_EDGE = 0.15  # softness of the region boundaries, in units of the region size
_CHUNK = 200_000  # subpixels per block (bounds the memory of the mixture weights)


@functools.lru_cache(maxsize=1)
def _library():
    """The bundled template table (scripts/make_mock_templates.py)."""
    path = resources.files('astro_dustml') / 'data' / 'mock_templates.ecsv'
    with resources.as_file(path) as p:
        return Table.read(p, format='ascii.ecsv')


def _template_sed(lib, band):
    """Flux density (Jy) per solar mass of stars at 10 Mpc of every template in a band."""
    band = BANDS[band]
    if band.name in lib.colnames:
        return 10 ** np.asarray(lib[band.name], dtype=float)
    wave = band.wavelength.to_value(u.micron)
    if wave < 30:
        # Mid-infrared bands outside the templates: log-log interpolation
        # (extrapolation) from the two template bands nearest in wavelength
        waves = np.array([BANDS[b].wavelength.to_value(u.micron) for b in INPUT_BANDS])
        i, j = np.argsort(np.abs(np.log(waves / wave)))[:2]
        slope = (np.log(wave) - np.log(waves[i])) / (np.log(waves[j]) - np.log(waves[i]))
        a, b = (np.asarray(lib[INPUT_BANDS[k]], dtype=float) for k in (i, j))
        return 10 ** (a + slope * (b - a))
    # Far infrared from the dust mass and temperature: the luminosity of dust
    # heated by Umin(Td) (THEMIS relation of the catalogue), as the analytic
    # recipe and the package's far-infrared predictions have it
    td = np.asarray(lib['Td'], dtype=float)
    heated = (10 ** np.asarray(lib['sMd'], dtype=float) * _LD_PER_MD_PER_UMIN
              * (td / TD_UMIN1.to_value(u.K)) ** UMIN_POWER)
    return _fir_flux(band, heated, td, _TEMPLATE_DISTANCE)


class _TemplateModel(_Geometry):
    """Stellar mass map times a spatially varying mixture of DustPedia SED templates."""

    def __init__(self, rng, *, stellar_mass, dust_recipe, pattern, n_templates, bulge,
                 **geometry):
        super().__init__(**geometry)
        # The smallest structures (clumps, bulge) are a fixed fraction of the
        # disc: large galaxies need no finer sampling than that
        self.finest = max(self.finest, self.h / 15)
        self.reference_step = max(self.reference_step, self.h / 30 * u.arcsec)
        lib = _library()
        # Regions of a galaxy borrow the SEDs of real galaxies of about its
        # stellar mass, so the global scaling relations with mass hold
        offset = np.abs(np.asarray(lib['log_mstar']) - np.log10(stellar_mass))
        pool = np.argsort(offset)[:max(2 * n_templates, int(np.sum(offset < 0.5)))]
        chosen = rng.choice(pool, size=min(n_templates, len(pool)), replace=False)
        key = {'star_formation': lib['log_ssfr'], 'dust_mass': lib['sMd'],
               'temperature': -np.asarray(lib['Td'])}[dust_recipe]
        self.templates = lib[chosen[np.argsort(np.asarray(key)[chosen])]]
        self.stellar_mass = stellar_mass
        self.pattern = pattern
        self.bulge = bulge
        props = self.templates
        self._truth_columns = np.column_stack([
            np.ones(len(props)), 10 ** props['sLd'], 10 ** props['sMd'],
            10 ** props['sMd'] * np.asarray(props['Td']) ** UMIN_POWER])
        h = self.h
        n_clumps = 40 if pattern == 'clumps' else 20
        self.clump_r = rng.uniform(0.3, 3.2, n_clumps) * h
        self.clump_phase = rng.uniform(0, 2 * np.pi, n_clumps)
        self.clump_arm = rng.integers(0, 2, n_clumps)
        self.clump_amp = rng.uniform(0.5, 1.5, n_clumps)
        self.bar_angle = rng.uniform(0, np.pi)
        # Regions: a Voronoi tessellation of the disc plane, one template each
        n = len(self.templates)
        radius = 4.4 * h * np.sqrt(rng.uniform(0, 1, n))
        angle = rng.uniform(0, 2 * np.pi, n)
        self.cells = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
        self.cell_size = np.sqrt(np.pi * (4.4 * h) ** 2 / n)
        # Inside out: central regions take the start of the sequence (low sSFR,
        # low dust-to-stars, warm dust), outer ones the end; star-forming
        # features move a region along
        _, place = self._components(*self.cells.T)
        place = place + rng.normal(0, 0.05, n)
        self.cells = self.cells[np.argsort(place)]  # cell k holds template k

    def _components(self, major, minor):
        """Stellar mass density (unnormalised) and place in the template sequence (0 to 1)."""
        r = np.hypot(major, minor)
        theta = np.arctan2(minor, major)
        h = self.h
        mass = np.exp(-r / h) + self.bulge * np.exp(-r / (0.15 * h))
        place = np.clip(r / (4 * h), 0, 1)
        if self.pattern in ('arms', 'clumps'):
            if self.pattern == 'arms':
                spiral = np.log(np.maximum(r, 0.05 * h) / h) / np.tan(np.radians(20))
                arms = np.cos(2 * (theta - spiral)) * np.clip(r / h, 0, 1)
                mass = mass * (1 + 0.4 * arms)
                place = place + 0.15 * arms
            for rc, ph, arm, amp in zip(self.clump_r, self.clump_phase, self.clump_arm,
                                        self.clump_amp):
                if self.pattern == 'arms':  # clumps on the arms
                    ph = np.log(rc / h) / np.tan(np.radians(20)) + arm * np.pi
                d2 = (major - rc * np.cos(ph)) ** 2 + (minor - rc * np.sin(ph)) ** 2
                clump = amp * np.exp(-d2 / (2 * (0.12 * h) ** 2))
                mass = mass + 0.5 * clump * np.exp(-r / h)
                place = place + 0.3 * clump
        elif self.pattern == 'bar':
            along = major * np.cos(self.bar_angle) + minor * np.sin(self.bar_angle)
            across = -major * np.sin(self.bar_angle) + minor * np.cos(self.bar_angle)
            bar = np.exp(-0.5 * ((along / (1.5 * h)) ** 2 + (across / (0.3 * h)) ** 2))
            mass = mass + 0.8 * bar
            ring = np.exp(-0.5 * ((r - 1.6 * h) / (0.25 * h)) ** 2)
            place = place + 0.25 * ring - 0.2 * bar  # old bar, star-forming ring at its ends
        return mass, place

    def _weights(self, major, minor):
        """Mixture weights of the templates: nearly hard Voronoi regions, softened at the edges."""
        d2 = ((major[..., None] - self.cells[:, 0]) ** 2
              + (minor[..., None] - self.cells[:, 1]) ** 2)
        d2 -= d2.min(axis=-1, keepdims=True)
        weights = np.exp(-d2 / (2 * (_EDGE * self.cell_size) ** 2))
        return weights / weights.sum(axis=-1, keepdims=True)

    def _mix(self, wcs, shape, columns, oversample, cell):
        """Subpixel maps of mass x (mixture weights @ columns), in blocks of rows."""
        ny, nx = shape
        rows = max(1, _CHUNK // (nx * oversample ** 2))
        out = np.empty((columns.shape[1], ny * oversample, nx * oversample))
        for y0 in range(0, ny, rows):
            y1 = min(ny, y0 + rows)
            xi, eta = self._offsets(wcs, shape, oversample, rows=(y0, y1))
            major, minor, _, _ = self._disc(xi, eta)
            mass = self._components(major, minor)[0]
            weights = self._weights(major, minor)
            block = (mass * cell / self._mass_norm)[..., None] * (weights @ columns)
            out[:, y0 * oversample:y1 * oversample] = np.moveaxis(block, -1, 0)
        return out

    def normalise(self, fov):
        """Set the stellar mass in the field; keep the mass per template for total fluxes."""
        step = self.reference_step
        n = int(np.ceil((fov / step).decompose().value))
        wcs = _tan_wcs(self.center, step, (n, n))
        self._mass_norm = 1.0
        ones = np.eye(len(self.templates))
        per_template = self._mix(wcs, (n, n), ones, 1, 1.0).sum(axis=(1, 2))
        self._mass_norm = per_template.sum() / self.stellar_mass
        self.reference = per_template / self._mass_norm  # Msun of each template

    def _grid_cell(self, wcs, shape):
        scale, oversample = self._grid(wcs, shape)
        cell = ((scale / oversample) ** 2 / self.reference_step ** 2).decompose().value
        return scale, oversample, cell

    def band_maps(self, wcs, shape, bands, distance):
        """Unsmoothed per-subpixel flux density (Jy) of each band, with the grid."""
        scale, oversample, cell = self._grid_cell(wcs, shape)
        dilution = (_TEMPLATE_DISTANCE / distance).decompose().value ** 2
        columns = np.column_stack([_template_sed(self.templates, b) for b in bands]) * dilution
        return list(self._mix(wcs, shape, columns, oversample, cell)), scale, oversample

    def total_flux(self, band, distance):
        """Total flux density (Jy) in the field, without PSF."""
        dilution = (_TEMPLATE_DISTANCE / distance).decompose().value ** 2
        return float(self.reference @ _template_sed(self.templates, band) * dilution)

    def _extensive(self, wcs, shape, fwhm):
        scale, oversample, cell = self._grid_cell(wcs, shape)
        raw = self._mix(wcs, shape, self._truth_columns, oversample, cell)
        return self.smooth((list(raw), scale, oversample), fwhm)

    def extensive(self, wcs, shape, fwhm):
        """Per-pixel stellar mass (Msun), dust luminosity (Lsun) and dust mass (Msun)."""
        return self._extensive(wcs, shape, fwhm)[:3]

    def truth(self, wcs, shape, fwhm):
        """sLd, sMd and Td from the smoothed extensive maps."""
        return _ratios(*self._extensive(wcs, shape, fwhm))

    def global_truth(self):
        """sLd, sMd, Td of the whole field."""
        return {k: v[()] for k, v in _ratios(*(self.reference @ self._truth_columns)).items()}


def _ratios(mstar, ldust, mdust, mdust_umin):
    # Td of a mixture: that of the dust-mass-weighted mean Umin, Umin ~ Td**5.79
    with np.errstate(divide='ignore', invalid='ignore'):
        return {'sLd': np.log10(ldust / mstar) * u.dex,
                'sMd': np.log10(mdust / mstar) * u.dex,
                'Td': (mdust_umin / mdust) ** (1 / UMIN_POWER) * u.K}
