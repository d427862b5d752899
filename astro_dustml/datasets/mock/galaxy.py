"""Mock disc galaxies imaged in any registry band, with their true dust maps."""

from dataclasses import dataclass, field

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.nddata import CCDData, NDData
from astropy.table import QTable, Table
from ndcube import NDCollection

from ...bands import INPUT_BANDS, get_band
from ._analytic import _AnalyticModel
from ._render import _edge_level, _header, _random_stars, _render_stars, _tan_wcs
from ._templates import DUST_RECIPES, PATTERNS, _TemplateModel

__all__ = ['MockGalaxy', 'make_mock_galaxy']


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
    properties : dict
        How the mock was made: ``dust_recipe``, ``pattern``,
        ``stellar_mass`` (solMass), ``seed``, ``templates`` (names of the
        DustPedia galaxies whose SEDs it mixes; empty for the analytic
        recipe) and ``global`` (``sLd``, ``sMd``, ``Td`` of the whole field).
    """

    images: NDCollection
    stars: Table
    sed: QTable
    galaxy: dict
    sky_rms: dict
    properties: dict
    _model: object = field(repr=False)

    def truth_maps(self, wcs, shape, fwhm):
        """
        The true dust properties on a pixel grid at a resolution.

        The extensive maps (stellar mass, dust luminosity, dust mass and dust
        mass times temperature) are integrated over each pixel and smoothed
        with a Gaussian PSF of the given FWHM before the ratios are taken, as
        the images are.

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
        return self._model.truth(wcs, shape, fwhm)

    @property
    def global_truth(self):
        """``sLd``, ``sMd``, ``Td`` of the whole field (``properties['global']``)."""
        return dict(self.properties['global'])

    @property
    def truth(self):
        """The true maps on the WISE 3.4 micron grid and resolution, as NDData."""
        band = 'WISE_3.4' if 'WISE_3.4' in self.images else next(iter(self.images))
        image = self.images[band]
        maps = self.truth_maps(image.wcs, image.shape, image.meta['psf_fwhm'])
        return NDCollection([(name, NDData(q.value, unit=q.unit, wcs=image.wcs))
                             for name, q in maps.items()])


def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f'{name} must be one of {", ".join(map(repr, choices))}, '
                         f'got {value!r}.')


def make_mock_galaxy(*, bands=INPUT_BANDS, seed=0, distance=10 * u.Mpc,
                     center=SkyCoord(150.0, 2.0, unit='deg'),
                     fov=4 * u.arcmin, pixel_scale=None,
                     semimajor=1 * u.arcmin, axis_ratio=0.6,
                     position_angle=30 * u.deg, stellar_mass=1e10,
                     dust_recipe='star_formation', pattern='arms', n_templates=20,
                     bulge=3.0, young_fraction=None, dust_to_stars=None,
                     n_stars=0, stars=None, noise=True, sky=True,
                     name='MOCK'):
    """
    Make a deterministic mock disc galaxy imaged in any registry bands.

    Each band is imaged on its own pixel scale (`~astro_dustml.bands.Band`
    ``pixel_scale``) with its own Gaussian PSF (``fwhm``), in Jy/pix (MJy/sr
    for Spitzer, as the Spitzer archives give), with a sky pedestal and
    gradient and Gaussian noise. The SED of every region is a mixture of the
    SEDs of real DustPedia galaxies of about the mock's stellar mass, and its
    true dust properties those galaxies' catalogue values; see the
    `astro_dustml.datasets.mock` module docstring for the physics.

    Parameters
    ----------
    bands : sequence of str, optional
        Bands to image (default: the 18 model inputs).
    seed : int, optional
        Seed of the random draws (templates, clumps, scatter fields, stars,
        noise).
    distance : `~astropy.units.Quantity`, optional
        Distance of the galaxy.
    center : `~astropy.coordinates.SkyCoord`, optional
        Centre of the galaxy and of every image.
    fov : `~astropy.units.Quantity`, optional
        Side of the square images.
    pixel_scale : `~astropy.units.Quantity`, optional
        One pixel scale for all bands instead of each band's own.
    semimajor : `~astropy.units.Quantity`, optional
        D25 radius (the size); the stellar disc scale length is a quarter of it.
    axis_ratio : float, optional
        Minor over major axis (the inclination: ``cos i`` for a thin disc).
    position_angle : `~astropy.units.Quantity`, optional
        Major axis, east of north.
    stellar_mass : float, optional
        Stellar mass in the field, in solar masses. The templates come from
        the DustPedia galaxies nearest to it in stellar mass.
    dust_recipe : str, optional
        Which dust property follows the galaxy's structure (inside out, and
        along its star-forming features): ``'star_formation'`` (templates
        ordered by specific star formation rate), ``'dust_mass'`` (by
        ``sMd``), ``'temperature'`` (warm centre, cold outskirts), or
        ``'analytic'`` (synthetic old and young stellar templates and dust
        heating, not calibrated on DustPedia: colours outside any real
        galaxy's, for tests of out-of-domain handling).
    pattern : str, optional
        Star-formation pattern: ``'arms'`` (two logarithmic spiral arms with
        clumps on them), ``'clumps'`` (clumps scattered over the disc),
        ``'bar'`` (an old bar and a star-forming ring), ``'smooth'``.
        The analytic recipe always has arms.
    n_templates : int, optional
        Number of DustPedia SED templates mixed over the galaxy.
    bulge : float, optional
        Central surface density of the bulge relative to the disc's.
    young_fraction, dust_to_stars : float, optional
        Analytic recipe only: mass fraction of the young population (default
        0.02) and dust to stellar mass ratio (default 5e-4).
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
    >>> len(mock.stars), len(mock.properties['templates'])
    (5, 20)
    """
    _check_choice(dust_recipe, 'dust_recipe', DUST_RECIPES + ('analytic',))
    _check_choice(pattern, 'pattern', PATTERNS)
    rng = np.random.default_rng(seed)
    bands = [get_band(b) for b in bands]
    geometry = dict(center=center, semimajor=semimajor, axis_ratio=axis_ratio,
                    position_angle=position_angle)
    if dust_recipe == 'analytic':
        if pattern != 'arms':
            raise ValueError(f"dust_recipe='analytic' always has spiral arms; got "
                             f"pattern={pattern!r}: leave pattern='arms' or use another recipe.")
        model = _AnalyticModel(rng, stellar_mass=stellar_mass,
                               young_fraction=0.02 if young_fraction is None else young_fraction,
                               dust_to_stars=5e-4 if dust_to_stars is None else dust_to_stars,
                               **geometry)
    else:
        if young_fraction is not None or dust_to_stars is not None:
            raise ValueError("young_fraction and dust_to_stars set the analytic recipe: give "
                             "dust_recipe='analytic' with them, or leave them out (the "
                             "DustPedia recipes take both from real galaxies).")
        if not 1 <= n_templates <= 200:
            raise ValueError(f'n_templates must be between 1 and 200, got {n_templates}.')
        model = _TemplateModel(rng, stellar_mass=stellar_mass, dust_recipe=dust_recipe,
                               pattern=pattern, n_templates=n_templates, bulge=bulge,
                               **geometry)
    model.normalise(fov)
    if stars is None:
        stars = _random_stars(rng, n_stars, center, fov)
    else:
        stars = Table(stars, copy=True)
        missing = {'ra', 'dec', 'phot_g_mean_mag'} - set(stars.colnames)
        if missing:
            raise ValueError(f'stars= needs the columns {sorted(missing)}.')

    # Bands sharing a pixel scale share one evaluation of the model
    grids = {}
    for band in bands:
        scale = pixel_scale if pixel_scale is not None else band.pixel_scale
        grids.setdefault(scale.to_value(u.arcsec), (scale, []))[1].append(band)
    fluxes = {}
    for scale, group in grids.values():
        n = int(np.ceil((fov / scale).decompose().value))
        wcs = _tan_wcs(center, scale, (n, n))
        maps, _, oversample = model.band_maps(wcs, (n, n), [b.name for b in group], distance)
        for band, raw in zip(group, maps):
            # Emission is computed where it arises, then blurred by the PSF
            flux = model.smooth(([raw], scale, oversample), band.fwhm)[0]
            fluxes[band.name] = (flux, wcs, scale)

    images, sky_rms = [], {}
    for band in bands:
        flux, wcs, scale = fluxes[band.name]
        n = flux.shape[0]
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
                  'flux': [model.total_flux(b.name, distance) for b in bands] * u.Jy})
    galaxy = {'name': name, 'center': center, 'semimajor': semimajor,
              'axis_ratio': axis_ratio, 'position_angle': position_angle,
              'distance': distance}
    templates = (list(model.templates['template']) if dust_recipe != 'analytic' else [])
    properties = {'dust_recipe': dust_recipe, 'pattern': pattern,
                  'stellar_mass': stellar_mass * u.solMass, 'seed': seed,
                  'templates': templates, 'global': model.global_truth()}
    return MockGalaxy(images=NDCollection(images), stars=stars, sed=sed, galaxy=galaxy,
                      sky_rms=sky_rms, properties=properties, _model=model)
