"""
Masks of foreground stars: an aperture per star and band.

Following Dobbels & Baes (2021, Sect. 2.1): foreground stars come from Gaia
and are kept only when their astrometry (a significant parallax or proper
motion) places them in the Milky Way; each gets, in every band, a circular
aperture whose radius comes from a 2D Gaussian fit. Fitting starts in SDSS i
(closest to the Gaia G band), with a first guess from the G magnitude, and
moves outwards in wavelength, each band bounded by the previous band's
result. The masked pixels are later interpolated over by the PSF-matching
convolution and flagged in the outputs.

Apertures are `regions.CircleSkyRegion` objects gathered in a
`regions.Regions` per band, so adding, removing or resizing one by hand is an
ordinary `regions` operation (see the documentation page). The star
tables come from ``imaging.gaia``.

Uses `astro_dustml.bands`, `astro_dustml.exceptions` and ``imaging.io``,
``imaging.gaia``.
"""

import inspect
import warnings

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.modeling import fitting, models
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.stats import gaussian_fwhm_to_sigma, mad_std
from astropy.wcs.utils import proj_plane_pixel_scales
from ndcube import NDCollection
from regions import CircleSkyRegion, Regions, SkyRegion

from ..bands import get_band
from ..exceptions import StarMaskingWarning
from .gaia import _as_stars, select_foreground_stars
from .io import _parse_collection, _parse_image

__all__ = ['fit_star_apertures', 'mask_stars', 'mask_foreground_stars']


_START_BAND = 'SDSS_i'


def _band_order(bands):
    """Bands in fitting order, each with the band whose result bounds it."""
    wavelength = {b: get_band(b).wavelength.to_value(u.micron) for b in bands}
    ranked = sorted(bands, key=wavelength.get)
    start = (_START_BAND if _START_BAND in bands else
             min(bands, key=lambda b: abs(np.log(wavelength[b] / 0.766))))
    i = ranked.index(start)
    order = [(start, None)]
    order += [(ranked[j], ranked[j + 1]) for j in range(i - 1, -1, -1)]
    order += [(ranked[j], ranked[j - 1]) for j in range(i + 1, len(ranked))]
    return order


def _image_info(image, band):
    """Pixel scale (arcsec), PSF FWHM (arcsec), noise and flux conversion of an image."""
    scale = float(np.mean(proj_plane_pixel_scales(image.wcs.celestial))) * 3600
    fwhm = image.meta.get('psf_fwhm')
    fwhm = u.Quantity(fwhm if fwhm is not None else get_band(band).fwhm, u.arcsec).value
    data = np.asarray(image.data, dtype=float)
    if image.mask is not None:
        data = np.where(image.mask, np.nan, data)
    if image.uncertainty is not None:
        noise = np.asarray(image.uncertainty.represent_as(StdDevUncertainty).array, float)
        noise = np.broadcast_to(noise, data.shape)
    else:
        # Pixel-to-pixel differences remove the galaxy and sky; MAD ignores the stars
        diff = np.diff(data, axis=1)
        noise = mad_std(diff[np.isfinite(diff)]) / np.sqrt(2) if np.isfinite(diff).any() else 0.
        noise = np.full(data.shape, noise)
    unit = image.unit
    try:
        jy = (1 * u.Jy / u.pix).to_value(unit)
    except u.UnitsError:
        try:
            jy = (1 * u.Jy / (scale * u.arcsec) ** 2).to_value(unit)
        except u.UnitsError:
            jy = None
    return {'scale': scale, 'fwhm': fwhm, 'data': data, 'noise': noise, 'jy': jy, 'unit': unit}


def _magnitude_radius(g_mag, info, nsigma, min_radius, max_radius, noise):
    """
    Radius (arcsec) where a point source of the Gaia G magnitude falls to the noise.

    The G flux is taken as an AB-like flat spectrum (3631 Jy at G = 0), which
    overestimates stars in the infrared: a conservative, larger first guess.
    """
    sigma = info['fwhm'] * gaussian_fwhm_to_sigma
    if info['jy'] is None:
        raise ValueError(
            'Cannot turn a Gaia magnitude into the image unit '
            f'{info["unit"]}: give images in a flux density unit (e.g. '
            'prepare them with astro_dustml.imaging.prepare_image).')
    flux = 3631 * 10 ** (-0.4 * np.asarray(g_mag, float)) * info['jy']
    peak = flux / (2 * np.pi * (sigma / info['scale']) ** 2)
    return _radius(peak, sigma, nsigma * noise, min_radius * info['fwhm'], max_radius)


def _radius(peak, sigma, level, rmin, rmax):
    with np.errstate(divide='ignore', invalid='ignore'):
        ratio = np.where(level > 0, peak / level, np.inf)
        r = sigma * np.sqrt(2 * np.log(np.maximum(ratio, 1)))
    return np.clip(np.nan_to_num(r, nan=rmin, posinf=rmax), rmin, rmax)


def _tie_circular(model):
    return model.x_stddev_0


def _fit_star(info, x, y, sigma_bounds, position_tol, nsigma_detect):
    """
    Fit a circular Gaussian on a plane to a cutout around pixel (x, y).

    Returns (status, x, y, sigma_pix, amplitude, noise) with status 'fit',
    'undetected' or 'failed'.
    """
    data, noise_map = info['data'], info['noise']
    ny, nx = data.shape
    half = int(np.ceil(max(3 * sigma_bounds[1], 2 * position_tol) + 2))
    ix, iy = int(round(x)), int(round(y))
    x0, x1 = max(ix - half, 0), min(ix + half + 1, nx)
    y0, y1 = max(iy - half, 0), min(iy + half + 1, ny)
    cut = data[y0:y1, x0:x1]
    noise = noise_map[y0:y1, x0:x1]
    good = np.isfinite(cut) & np.isfinite(noise)
    if good.sum() < 12:
        return 'failed', x, y, None, None, None
    level = float(np.median(noise[good]))
    yy, xx = np.mgrid[y0:y1, x0:x1]
    background = float(np.median(cut[good]))
    near = good & (np.hypot(xx - x, yy - y) <= max(position_tol, 1.5))
    amplitude = float(np.max(cut[near]) - background) if near.any() else 0.
    if not amplitude > nsigma_detect * level:
        return 'undetected', x, y, None, amplitude, level
    s0 = float(np.clip(np.mean(sigma_bounds), *sigma_bounds))
    gauss = models.Gaussian2D(amplitude, x, y, s0, s0, 0.,
                              bounds={'amplitude': (0, None),
                                      'x_mean': (x - position_tol, x + position_tol),
                                      'y_mean': (y - position_tol, y + position_tol),
                                      'x_stddev': sigma_bounds},
                              fixed={'theta': True})
    model = gauss + models.Planar2D(0., 0., background)
    model.y_stddev_0.tied = _tie_circular
    weights = 1 / np.where(noise[good] > 0, noise[good], np.inf) if level > 0 else None
    for _ in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            fitter = fitting.TRFLSQFitter()
            try:
                fit = fitter(model, xx[good], yy[good], cut[good], weights=weights,
                             maxiter=200)
            except Exception:
                return 'failed', x, y, None, None, level
        status = (getattr(fitter, 'fit_info', None) or {}).get('status', 1)
        g = fit[0]
        values = np.array([g.amplitude.value, g.x_mean.value, g.y_mean.value,
                           g.x_stddev.value])
        # A width at its bound is the soft constraint at work; a centre at its
        # bound means the fit ran off to a neighbour or a galaxy nucleus: then
        # try once more with the centre held at the expected position
        wandered = max(abs(g.x_mean.value - x), abs(g.y_mean.value - y)) > 0.999 * position_tol
        if not wandered:
            break
        model.x_mean_0.fixed = model.y_mean_0.fixed = True
    if status is not None and status <= 0 or not np.isfinite(values).all() or wandered:
        return 'failed', x, y, None, None, level
    if not g.amplitude.value > nsigma_detect * level:
        return 'undetected', x, y, None, g.amplitude.value, level
    return 'fit', g.x_mean.value, g.y_mean.value, g.x_stddev.value, g.amplitude.value, level


def fit_star_apertures(images, stars, *, nsigma=1.0, detect_nsigma=3.0, min_radius=1.0,
                       max_radius=60 * u.arcsec, tolerance=0.3):
    """
    Fit circular apertures to foreground stars in every band.

    In each band every star is fitted with a circular 2D Gaussian on a
    plane (`astropy.modeling`); its aperture radius is where the fitted
    profile falls to ``nsigma`` times the local noise, so brighter stars get
    larger apertures. Fitting starts in SDSS i when present (else the band
    nearest to it in wavelength) with a first guess from the Gaia G
    magnitude, then proceeds to shorter and to longer wavelengths; each band
    starts at, and is bounded around, the neighbouring band's fitted position
    and intrinsic width (added in quadrature to this band's PSF) - a soft
    constraint that keeps faint bands from wandering.

    A star not detected in a band (peak below ``detect_nsigma`` times the
    noise) gets the smallest aperture. A fit that fails (no convergence, width
    at a bound, too few pixels) falls back to the radius a point source of
    the star's G magnitude would have (flat AB spectrum, so generous in the
    infrared); one `~astro_dustml.exceptions.StarMaskingWarning` reports how
    many did. A band on which no star falls gets an empty
    `regions.Regions`, with a warning.

    Parameters
    ----------
    images : `~ndcube.NDCollection`, mapping or sequence
        Images (CCDData with WCS, unit convertible to Jy/pix or MJy/sr),
        keyed by band; their own PSF FWHM is read from
        ``meta['psf_fwhm']``, else from the band registry. An
        ``uncertainty`` gives the noise, else it is estimated from the data.
    stars : `~astropy.table.Table`
        Foreground stars with Gaia column names, e.g. from
        `select_foreground_stars`.
    nsigma : float, optional
        Aperture edge: where the fitted star is this many times the noise.
    detect_nsigma : float, optional
        Peak significance for a star to be fitted in a band.
    min_radius : float, optional
        Smallest aperture radius, in units of the band's PSF FWHM.
    max_radius : `~astropy.units.Quantity`, optional
        Largest aperture radius.
    tolerance : float, optional
        Relative bound around the width expected from the previous band.

    Returns
    -------
    apertures : dict of `regions.Regions`
        Per band, one `regions.CircleSkyRegion` per star on the image;
        ``meta['label']`` is the Gaia ``source_id`` and ``meta['comment']``
        says ``fit``, ``undetected`` or ``fallback``.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from astro_dustml.datasets import make_mock_galaxy
    >>> from astro_dustml.imaging import fit_star_apertures
    >>> mock = make_mock_galaxy(bands=['SDSS_i'], fov=1 * u.arcmin,
    ...                         semimajor=15 * u.arcsec, n_stars=3, seed=1)
    >>> apertures = fit_star_apertures(mock.images, mock.stars)
    >>> len(apertures['SDSS_i'])
    3
    >>> apertures['SDSS_i'][0].radius.unit
    Unit("arcsec")
    """
    parsed = _parse_collection(images)
    fitter = _ApertureFitter(stars, parsed, nsigma=nsigma, detect_nsigma=detect_nsigma,
                             min_radius=min_radius, max_radius=max_radius,
                             tolerance=tolerance)
    results = {band: fitter.fit(band, parsed[band]) for band in fitter.order}
    fitter.warn_failures()
    return {band: results[band] for band in parsed}


class _ApertureFitter:
    """
    `fit_star_apertures` one band at a time, in the order of ``self.order``.

    Each band needs only its neighbour's fitted positions and widths, kept
    here, so a caller can prepare, fit and mask one image at a time.
    """

    def __init__(self, stars, bands, *, nsigma=1.0, detect_nsigma=3.0, min_radius=1.0,
                 max_radius=60 * u.arcsec, tolerance=0.3):
        self.stars = _as_stars(stars)
        self.coords = SkyCoord(self.stars['ra'], self.stars['dec'], unit='deg')
        self.neighbour = dict(_band_order(list(bands)))
        self.order = list(self.neighbour)
        self.nsigma, self.detect_nsigma, self.tolerance = nsigma, detect_nsigma, tolerance
        self.min_radius = min_radius
        self.max_radius = u.Quantity(max_radius, u.arcsec).value
        self.previous, self.failures, self.failed_bands = {}, 0, []

    def fit(self, band, image):
        """The apertures (`regions.Regions`) of ``band``, whose neighbour is fitted already."""
        stars, coords, nsigma = self.stars, self.coords, self.nsigma
        min_radius, max_radius, tolerance = self.min_radius, self.max_radius, self.tolerance
        info = _image_info(image, band)
        ny, nx = info['data'].shape
        # PSF width in pixels, including the pixel integration
        sigma_psf = np.hypot(info['fwhm'] * gaussian_fwhm_to_sigma / info['scale'],
                             np.sqrt(1 / 12))
        prior = self.previous.get(self.neighbour[band])
        x, y = image.wcs.celestial.world_to_pixel(coords if prior is None else prior['coords'])
        x, y = np.atleast_1d(x), np.atleast_1d(y)
        on_image = (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
        fitted_x, fitted_y = x.copy(), y.copy()
        intrinsic = np.zeros(len(stars))  # arcsec^2 beyond the PSF
        regions = []
        # a neighbour's fitted position is a better start than Gaia's
        tol = (0.5 if prior is not None else 1.0) * info['fwhm'] / info['scale']
        rmin = min_radius * info['fwhm']
        for i in np.flatnonzero(on_image):
            if prior is not None:
                expected = np.sqrt(sigma_psf ** 2 + prior['intrinsic'][i] / info['scale'] ** 2)
                bounds = (max(expected * (1 - tolerance), 0.9 * sigma_psf),
                          expected * (1 + tolerance))
            else:
                bounds = (0.9 * sigma_psf, 3.0 * sigma_psf)
            status, xf, yf, sigma, amplitude, level = _fit_star(
                info, x[i], y[i], bounds, tol, self.detect_nsigma)
            if status == 'fit':
                radius = _radius(amplitude, sigma * info['scale'], nsigma * level,
                                 rmin, max_radius)
                fitted_x[i], fitted_y[i] = xf, yf
                intrinsic[i] = max((sigma * info['scale']) ** 2
                                   - (sigma_psf * info['scale']) ** 2, 0)
            elif status == 'undetected':
                radius = rmin
                if prior is not None:
                    intrinsic[i] = prior['intrinsic'][i]
            else:
                self.failures += 1
                if band not in self.failed_bands:
                    self.failed_bands.append(band)
                level = level if level is not None else float(np.nanmedian(info['noise']))
                radius = _magnitude_radius(stars['phot_g_mean_mag'][i], info, nsigma,
                                           min_radius, max_radius, level)
                if prior is not None:
                    intrinsic[i] = prior['intrinsic'][i]
            center = image.wcs.celestial.pixel_to_world(fitted_x[i], fitted_y[i])
            region = CircleSkyRegion(center=center, radius=float(radius) * u.arcsec)
            region.meta['label'] = str(stars['source_id'][i])
            region.meta['comment'] = 'fallback' if status == 'failed' else status
            regions.append(region)
        if len(stars) and not on_image.any():
            warnings.warn(f'None of the {len(stars)} stars lies on the {band} image; '
                          'its apertures are empty. Check the star table is for '
                          'this field.', StarMaskingWarning)
        new_coords = image.wcs.celestial.pixel_to_world(fitted_x, fitted_y)
        # Stars off this image keep the neighbour's position for the next band
        if prior is not None:
            keep = ~on_image
            ra = np.where(keep, prior['coords'].ra.deg, new_coords.ra.deg)
            dec = np.where(keep, prior['coords'].dec.deg, new_coords.dec.deg)
            intrinsic = np.where(keep, prior['intrinsic'], intrinsic)
        else:
            ra = np.where(on_image, new_coords.ra.deg, coords.ra.deg)
            dec = np.where(on_image, new_coords.dec.deg, coords.dec.deg)
        self.previous[band] = {'coords': SkyCoord(ra, dec, unit='deg', frame=coords.frame),
                               'intrinsic': intrinsic}
        return Regions(regions)

    def warn_failures(self):
        if self.failures:
            warnings.warn(f'{self.failures} star fit(s) failed (bands: '
                          f'{", ".join(self.failed_bands)}); their apertures use the radius '
                          'from the Gaia G magnitude.', StarMaskingWarning)


def _copy_image(image, band=None):
    if isinstance(image, NDData) and band is None and not (image.meta or {}).get('band'):
        wcs = image.wcs
        return CCDData(np.array(image.data, dtype=float),
                       unit=image.unit if image.unit is not None else u.dimensionless_unscaled,
                       wcs=wcs.deepcopy() if hasattr(wcs, 'deepcopy') else wcs,
                       uncertainty=None if image.uncertainty is None else
                       StdDevUncertainty(np.array(
                           image.uncertainty.represent_as(StdDevUncertainty).array, float)),
                       mask=None if image.mask is None else np.array(image.mask, bool),
                       meta=dict(image.meta or {}))
    return _parse_image(image, band=band)


def _region_mask(regions, wcs, shape):
    mask = np.zeros(shape, dtype=bool)
    for region in regions:
        if isinstance(region, SkyRegion):
            region = region.to_pixel(wcs)
        region_mask = region.to_mask(mode='center')
        cut = region_mask.to_image(shape, dtype=bool)
        if cut is not None:
            mask |= cut
    return mask


def mask_stars(image, regions, *, band=None, fill_value=np.nan):
    """
    Mask the pixels inside star apertures.

    Parameters
    ----------
    image : `~astropy.nddata.CCDData` or other image form
        The image (any form `astro_dustml.imaging.make_collection` accepts).
    regions : `regions.Regions`, list of regions, or dict of them
        Sky (or pixel) regions to mask; a dict (as returned by
        `fit_star_apertures`) is looked up by the image's band.
    band : str, optional
        Band of the image, when neither its meta nor header tell.
    fill_value : float or None, optional
        Value written into the masked pixels (None: data left as is).

    Returns
    -------
    masked : `~astropy.nddata.CCDData`
        A copy with ``mask`` True inside the apertures (or-ed with any existing
        mask) and ``meta['star_mask']`` the star mask alone.

    Examples
    --------
    >>> import numpy as np
    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from astropy.nddata import CCDData
    >>> from astropy.wcs import WCS
    >>> from regions import CircleSkyRegion, Regions
    >>> from astro_dustml.imaging import mask_stars
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> wcs.wcs.cdelt = [-1 / 3600, 1 / 3600]
    >>> wcs.wcs.crpix = [10.5, 10.5]
    >>> image = CCDData(np.ones((20, 20)), unit='MJy/sr', wcs=wcs)
    >>> star = CircleSkyRegion(SkyCoord(0, 0, unit='deg'), 3 * u.arcsec)
    >>> masked = mask_stars(image, Regions([star]))
    >>> int(masked.mask.sum()), bool(np.isnan(masked.data).any()), image.mask is None
    (32, True, True)
    """
    out = _copy_image(image, band=band)
    if isinstance(regions, dict):
        key = out.meta.get('band')
        if key not in regions:
            raise KeyError(f'No apertures for band {key!r}; the dict has '
                           f"{sorted(regions)}. Pass this band's apertures (a Regions) "
                           'instead of the dict, or add them to it.')
        regions = regions[key]
    if isinstance(regions, SkyRegion) or hasattr(regions, 'to_mask'):
        regions = [regions]
    star_mask = _region_mask(regions, out.wcs.celestial, out.shape)
    out.mask = star_mask if out.mask is None else (np.asarray(out.mask, bool) | star_mask)
    if fill_value is not None:
        out.data[star_mask] = fill_value
    out.meta['star_mask'] = star_mask
    return out


def mask_foreground_stars(collection, stars, *, galaxy=None, select=True, **kwargs):
    """
    Select, fit and mask the foreground stars of a collection of images.

    The chain `select_foreground_stars` -> `fit_star_apertures` ->
    `mask_stars` used by `astro_dustml.maps.estimate_dust_maps` on the
    prepared (not yet aligned) images: the masked pixels are interpolated over
    by the PSF-matching convolution and flagged in the outputs.

    Parameters
    ----------
    collection : `~ndcube.NDCollection`, mapping or sequence
        Images keyed by band.
    stars : `~astropy.table.Table`
        Gaia sources (``gaia_source`` column names).
    galaxy : optional
        Galaxy centre or nucleus region, see `select_foreground_stars`.
    select : bool, optional
        Run `select_foreground_stars` (False: ``stars`` are all foreground).
    **kwargs
        Options of `select_foreground_stars` and of `fit_star_apertures`.

    Returns
    -------
    masked : `~ndcube.NDCollection`
        New images with the star apertures masked (NaN data).
    apertures : dict of `regions.Regions`
        The apertures per band, for inspection or hand editing.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_dustml.datasets import make_mock_galaxy
    >>> from astro_dustml.imaging import mask_foreground_stars
    >>> mock = make_mock_galaxy(bands=['SDSS_i', '2MASS_J'], fov=1 * u.arcmin,
    ...                         semimajor=15 * u.arcsec, n_stars=3, seed=1)
    >>> masked, apertures = mask_foreground_stars(mock.images, mock.stars,
    ...                                           galaxy=mock.galaxy)
    >>> sorted(masked.keys()), len(apertures['2MASS_J'])
    (['2MASS_J', 'SDSS_i'], 3)
    >>> bool(masked['SDSS_i'].mask.any())
    True
    """
    select_names = set(inspect.signature(select_foreground_stars).parameters) - {'table'}
    fit_names = set(inspect.signature(fit_star_apertures).parameters) - {'images', 'stars'}
    unknown = set(kwargs) - select_names - fit_names
    if unknown:
        raise TypeError(f'Unknown option(s) {sorted(unknown)}; options are those of '
                        'select_foreground_stars and fit_star_apertures.')
    parsed = _parse_collection(collection)
    if select:
        stars = select_foreground_stars(
            stars, galaxy=galaxy, **{k: v for k, v in kwargs.items() if k in select_names})
    apertures = fit_star_apertures(parsed, stars,
                                   **{k: v for k, v in kwargs.items() if k in fit_names})
    masked = [(band, mask_stars(image, apertures[band])) for band, image in parsed.items()]
    meta = dict(getattr(collection, 'meta', None) or {})
    return NDCollection(masked, meta=meta or None), apertures
