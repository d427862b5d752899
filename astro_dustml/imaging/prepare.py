"""
Image preparation: units, sky subtraction, Galactic extinction, uncertainty.

`prepare_image` turns a survey image into a sky-subtracted,
extinction-corrected surface-brightness map in **MJy/sr** with a
`~astropy.nddata.StdDevUncertainty` (paper Sect. 2.1), and `galaxy_region`
describes the galaxy aperture that is kept out of the sky estimate.
"""

import difflib
import warnings
from collections.abc import Mapping

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.modeling import fitting, models
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.stats import sigma_clip, sigma_clipped_stats
from astropy.wcs.utils import proj_plane_pixel_area
from ndcube import NDCollection
from regions import EllipseSkyRegion
from scipy import ndimage

from .._checks import _finite_angle, _positive_quantity
from ..bands import get_band
from ..exceptions import AstroDustMLWarning
from .io import _bad_pixels, _parse_collection, _parse_image

__all__ = ['prepare_image', 'prepare_images', 'galaxy_region', 'OUTPUT_UNIT', 'DEFAULT_EBV_ERROR',
           'SKY_ANNULUS']


OUTPUT_UNIT = u.MJy / u.sr


"""Unit of every prepared image (surface brightness)."""


DEFAULT_EBV_ERROR = 0.16


"""Fractional E(B-V) uncertainty used when none is given (Schlegel et al.
1998 quote 16 per cent)."""


#: The DustPedia/CAAPR sky annulus, in units of the aperture (Clark et al. 2018)
SKY_ANNULUS = (1.25, 1.601)


# Enough pixels for a stable plane fit; more only cost time
_MAX_SKY_PIXELS = 200_000


def galaxy_region(center, *, semimajor=None, d25=None, axis_ratio=1.0,
                  position_angle=0 * u.deg, convention='east-of-north'):
    """
    The elliptical aperture of a galaxy as a `regions.EllipseSkyRegion`.

    Parameters
    ----------
    center : `~astropy.coordinates.SkyCoord`
        Centre of the galaxy.
    semimajor : `~astropy.units.Quantity`, optional
        Semi-major axis (an angle), e.g. DustPedia's ``semimaj_arcsec``.
    d25 : `~astropy.units.Quantity`, optional
        Major-axis diameter instead of ``semimajor`` (e.g. HyperLEDA's D25);
        the semi-major axis is half of it.
    axis_ratio : float, optional
        Minor over major axis, ``b/a <= 1``. A value above one is read as
        ``a/b``, the convention of DustPedia's ``axial_ratio`` column.
    position_angle : `~astropy.units.Quantity`, optional
        Orientation of the major axis; see ``convention``.
    convention : {'east-of-north', 'dustpedia'}, optional
        ``'east-of-north'`` (default): the astronomical position angle,
        from North through East. ``'dustpedia'``: the ``pos_angle`` column
        of the DustPedia photometry table (Clark et al. 2018), which is
        measured counter-clockwise from the West (the RA axis of a North-up
        image) to the major axis, i.e. ``PA_east_of_north = pos_angle +
        90 deg``. For NGC 5584 DustPedia gives 58.3 deg, and the major axis
        of its light is at PA 152 deg east of North.

    Returns
    -------
    region : `regions.EllipseSkyRegion`
        ``width`` is the major axis, ``angle`` the rotation of the major axis
        counter-clockwise from the RA axis (regions' convention, equal to
        DustPedia's ``pos_angle``).

    Examples
    --------
    DustPedia's aperture of NGC 5584:

    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from astro_dustml.imaging import galaxy_region
    >>> region = galaxy_region(SkyCoord(215.59905, -0.38759, unit='deg'),
    ...                        semimajor=180.75 * u.arcsec, axis_ratio=1.3316,
    ...                        position_angle=58.31 * u.deg, convention='dustpedia')
    >>> region.width, region.angle
    (<Quantity 361.5 arcsec>, <Quantity 58.31 deg>)

    The same ellipse from an astronomical position angle:

    >>> galaxy_region(region.center, semimajor=180.75 * u.arcsec, axis_ratio=0.751,
    ...               position_angle=148.31 * u.deg).angle
    <Quantity 58.31 deg>
    """
    if not isinstance(center, SkyCoord):
        raise TypeError('center must be a SkyCoord, e.g. '
                        "SkyCoord(215.6, -0.39, unit='deg').")
    if (semimajor is None) == (d25 is None):
        raise ValueError('Give exactly one of semimajor= and d25= (angles).')
    if d25 is None:
        size = _positive_quantity(semimajor, 'semimajor', 'angle', example='90 * u.arcsec')
    else:
        size = 0.5 * _positive_quantity(d25, 'd25', 'angle', example='3 * u.arcmin')
    position_angle = _finite_angle(position_angle, 'position_angle')
    try:
        ratio = float(axis_ratio)
    except (TypeError, ValueError):
        ratio = np.nan
    if not np.isfinite(ratio) or ratio <= 0:
        raise ValueError(f'axis_ratio must be a finite positive number (b/a), got '
                         f'{axis_ratio!r}.')
    ratio = 1 / ratio if ratio > 1 else ratio
    if convention == 'east-of-north':
        angle = position_angle - 90 * u.deg
    elif convention == 'dustpedia':
        angle = position_angle
    else:
        raise ValueError(f"convention must be 'east-of-north' or 'dustpedia', not "
                         f'{convention!r}.')
    angle = angle.to(u.deg) % (180 * u.deg)
    size = size.to(u.arcsec)
    return EllipseSkyRegion(center=center, width=2 * size, height=2 * size * ratio,
                            angle=angle)


# The keys of a galaxy mapping (`_parse_galaxy`)
_GALAXY_KEYS = frozenset({'name', 'center', 'semimajor', 'd25', 'axis_ratio',
                          'position_angle', 'convention', 'distance'})


def _galaxy_center(center):
    """
    The galaxy centre as a `~astropy.coordinates.SkyCoord`.

    Accepted: a SkyCoord (or a frame), what ``SkyCoord`` reads on its own
    (a string with units, ``'150d 2d'`` or ``'10h00m00s +2d00m00s'``, a pair
    of angle Quantities), and a pair of plain numbers, taken as ICRS RA and
    Dec in degrees as on the command line.
    """
    if isinstance(center, SkyCoord):
        return center
    if (isinstance(center, (tuple, list, np.ndarray)) and len(center) == 2
            and all(np.isscalar(c) and not isinstance(c, (str, bool)) for c in center)):
        return SkyCoord(float(center[0]), float(center[1]), unit='deg')  # degrees, as --center
    try:
        if isinstance(center, (tuple, list)) and len(center) == 2:
            return SkyCoord(*center)
        return SkyCoord(center)
    except (ValueError, TypeError, u.UnitsError) as exc:
        raise ValueError(
            f'Cannot read the galaxy centre {center!r} ({exc}). Give a SkyCoord, a string '
            "with units ('150d 2d' or '10h00m00s +2d00m00s'), a pair of angles "
            '(150 * u.deg, 2 * u.deg), or (RA, Dec) in degrees as two numbers.') from None


def _parse_galaxy(galaxy):
    """
    ``(name, region, distance)`` from any accepted description of a galaxy.

    Accepted: None; a name; a `regions.SkyRegion`; a mapping with ``center``
    and ``semimajor`` or ``d25`` (plus optional ``axis_ratio``,
    ``position_angle``, ``convention``, ``name``, ``distance``), such as
    `~astro_dustml.datasets.MockGalaxy.galaxy`; or an object with such a
    mapping as its ``galaxy`` attribute (a `~astro_dustml.datasets.MockGalaxy`).
    """
    if galaxy is None:
        return None, None, None
    if isinstance(galaxy, str):
        return galaxy, None, None
    if hasattr(galaxy, 'to_pixel'):
        return None, galaxy, None
    if not isinstance(galaxy, Mapping) and isinstance(getattr(galaxy, 'galaxy', None), Mapping):
        galaxy = galaxy.galaxy
    if not isinstance(galaxy, Mapping):
        raise TypeError('galaxy must be a name, a regions sky region (see galaxy_region) or a '
                        'mapping with center, semimajor, axis_ratio and position_angle, not '
                        f'{type(galaxy).__name__}.')
    unknown = sorted(str(k) for k in galaxy if k not in _GALAXY_KEYS)
    if unknown:
        hints = [f'{k!r} (did you mean {close[0]!r}?)' if close else repr(k)
                 for k in unknown
                 for close in [difflib.get_close_matches(k, _GALAXY_KEYS, n=1)]]
        raise ValueError(f'Unknown key(s) in the galaxy mapping: {", ".join(hints)}. The '
                         f'keys it takes are {", ".join(sorted(_GALAXY_KEYS))}.')
    region = None
    if 'center' in galaxy and ('semimajor' in galaxy or 'd25' in galaxy):
        keys = {'semimajor', 'd25', 'axis_ratio', 'position_angle', 'convention'}
        region = galaxy_region(_galaxy_center(galaxy['center']),
                               **{k: v for k, v in galaxy.items() if k in keys})
    elif 'center' in galaxy or 'semimajor' in galaxy:
        raise ValueError('A galaxy mapping needs both center and semimajor (or d25) to '
                         'define its ellipse.')
    return galaxy.get('name'), region, galaxy.get('distance')


def _pixel_area(wcs):
    return (proj_plane_pixel_area(wcs.celestial) * u.deg ** 2).to(u.sr)


def _to_output_factor(unit, pixel_area, band):
    """Multiplicative factor from ``unit`` to MJy/sr."""
    if unit.is_equivalent(OUTPUT_UNIT):
        return unit.to(OUTPUT_UNIT)
    per_pixel = unit * u.pix if unit.is_equivalent(u.Jy / u.pix) else (
        unit if unit.is_equivalent(u.Jy) else None)
    if per_pixel is None:
        raise u.UnitConversionError(
            f'The {band.name} image is in {unit.to_string() or "no unit (dimensionless)"}, '
            'which is neither a surface brightness (e.g. MJy/sr) nor a flux density per '
            'pixel (e.g. Jy/pix). Pass the right unit with unit=.')
    return per_pixel.to(u.MJy) / pixel_area.to_value(u.sr)


def _inside(region, wcs, shape, scale):
    scaled = region.to_pixel(wcs)
    scaled.width = scaled.width * scale
    scaled.height = scaled.height * scale
    inside = scaled.to_mask(mode='center').to_image(shape)
    return np.zeros(shape, bool) if inside is None else inside.astype(bool)


def _sky_mask(shape, wcs, region, annulus):
    """True where pixels may be used for the sky."""
    if region is None:
        return np.ones(shape, bool)
    usable = ~_inside(region, wcs, shape, annulus[0])
    if annulus[1] is not None:
        usable &= _inside(region, wcs, shape, annulus[1])
    return usable


def _source_mask(data, usable, fwhm_pix):
    """Without an aperture: mask bright sources found by sigma clipping."""
    clipped = sigma_clip(np.ma.masked_array(np.nan_to_num(data), ~usable), sigma=3.0,
                         maxiters=10, masked=True)
    _, median, _ = sigma_clipped_stats(data[usable], sigma=3.0, maxiters=10)
    bright = np.asarray(clipped.mask) & np.isfinite(data) & (data > median)
    grow = max(1, int(np.ceil(fwhm_pix)))
    return ndimage.binary_dilation(bright, iterations=grow)


def _fit_sky(data, good, kind, sigma):
    """Sigma-clipped plane or constant; returns (model array, rms, params)."""
    ny, nx = data.shape
    yy, xx = np.nonzero(good)
    step = max(1, yy.size // _MAX_SKY_PIXELS)
    yy, xx = yy[::step], xx[::step]
    values = data[yy, xx]
    if kind == 'constant':
        _, level, _ = sigma_clipped_stats(values, sigma=sigma, maxiters=10)
        sky = np.full(data.shape, level)
        params = {'type': 'constant', 'level': level}
    else:
        # coordinates scaled to ~[-1, 1] for a well-conditioned fit
        cx, cy, s = (nx - 1) / 2, (ny - 1) / 2, max(nx, ny) / 2
        fitter = fitting.FittingWithOutlierRemoval(fitting.LinearLSQFitter(), sigma_clip,
                                                   niter=5, sigma=sigma)
        plane, _ = fitter(models.Planar2D(), (xx - cx) / s, (yy - cy) / s, values)
        gy, gx = np.mgrid[0:ny, 0:nx]
        sky = plane((gx - cx) / s, (gy - cy) / s)
        params = {'type': 'plane', 'intercept': float(plane.intercept.value),
                  'slope_x': float(plane.slope_x.value) / s,
                  'slope_y': float(plane.slope_y.value) / s}
    residual = values - sky[yy, xx]
    _, _, rms = sigma_clipped_stats(residual, sigma=sigma, maxiters=10)
    return sky, rms, params


# A pixel this many times brighter than the 99th percentile of an image is a
# hot pixel or a corrupt value, not sky or galaxy (a bright nucleus or star is
# at most ~1e4 times brighter). It is masked before anything else: an FFT
# convolution spreads ~1e-16 of it over the whole map, and 1e300 overflows.
_ABSURD_FACTOR = 1e6


# Fewer sky pixels than this give no stable sky fit
_MIN_SKY_PIXELS = 10


def _absurd_pixels(values, bad):
    """True where a finite value is absurdly large for the image it is in."""
    magnitude = np.abs(values[~bad])
    magnitude = magnitude[magnitude > 0]
    if magnitude.size == 0:
        return np.zeros(values.shape, bool)
    level = np.percentile(magnitude, 99)
    with np.errstate(invalid='ignore', over='ignore'):
        return ~bad & (np.abs(values) > _ABSURD_FACTOR * level)


def _mask_absurd(data, noise, bad, band):
    """
    Mask non-finite and absurd pixels (data or uncertainty) in one place.

    Returns ``data`` (the caller's copy, NaN where masked) and ``bad``; warns
    naming the band when finite pixels had to be masked.
    """
    absurd = _absurd_pixels(data, bad)
    noisy = np.zeros(data.shape, bool)
    if noise is not None:
        noise_bad = ~np.isfinite(noise)
        noisy = (noise_bad | _absurd_pixels(noise, bad | noise_bad)) & ~bad & ~absurd
    if absurd.any() or noisy.any():
        parts = []
        if absurd.any():
            peak = np.max(np.abs(data[absurd]))
            parts.append(f'{int(absurd.sum())} with absurd values (up to {peak:.3g}, more '
                         f'than {_ABSURD_FACTOR:.0e} times its 99th percentile)')
        if noisy.any():
            parts.append(f'{int(noisy.sum())} with a non-finite or absurd uncertainty')
        warnings.warn(f'{int((absurd | noisy).sum())} pixel(s) of the {band.name} image are '
                      f'masked as bad pixels: {"; ".join(parts)}.', AstroDustMLWarning)
    absurd |= noisy
    # Masked (by the user), absurd and non-finite pixels become NaN: a masked
    # pixel is no data, so PSF matching leaves it masked as it does NaN
    # (foreground stars, masked after this step, are interpolated over instead)
    data[bad | absurd | ~np.isfinite(data)] = np.nan  # the caller's own copy
    return data, bad | absurd


def _sky_circle(wcs, shape):
    """Centre of an image on the sky and its radius (to the farthest pixel corner)."""
    ny, nx = shape
    centre = wcs.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
    corners = wcs.pixel_to_world([-0.5, nx - 0.5, -0.5, nx - 0.5],
                                 [-0.5, -0.5, ny - 0.5, ny - 0.5])
    return centre, max(centre.separation(corners))


def _check_on_image(region, wcs, shape, band):
    """Fail clearly when the galaxy ellipse does not reach the image at all."""
    if region is None:
        return
    ny, nx = shape
    middle, radius = _sky_circle(wcs, shape)
    reach = radius + region.width / 2
    offset = middle.separation(region.center)
    inside = offset <= reach
    if inside:
        # Separation says maybe; the pixel box says for sure
        x, y = wcs.world_to_pixel(region.center)
        a = (region.width / 2 / (np.sqrt(_pixel_area(wcs)).to(u.arcsec))).to_value(u.one)
        inside = bool(np.isfinite(x) and np.isfinite(y) and -0.5 - a <= x <= nx - 0.5 + a
                      and -0.5 - a <= y <= ny - 0.5 + a)
    if not inside:
        center = region.center.to_string('hmsdms', precision=1)
        raise ValueError(
            f'The galaxy is not on the {band.name} image: its centre ({center}) lies '
            f'{offset.to(u.arcmin):.1f} from the image centre, and neither it nor its '
            f'ellipse (semi-major {region.width.to(u.arcsec) / 2:.1f}) reaches the '
            f'{nx} x {ny} pixel image. Check the galaxy centre (RA, Dec in degrees, ICRS) '
            'and that this image shows the galaxy, or leave the band out.')


def _sky_advice(region, wcs, shape, usable, annulus, band):
    """Why there are too few sky pixels, and what to do about it."""
    n = int(usable.sum())
    if region is None:
        return (f'Only {n} usable pixels in the {band.name} image to estimate the sky; '
                'give a larger image, or fewer masked/NaN pixels.')
    scale = np.sqrt(_pixel_area(wcs)).to(u.arcsec)
    a_pix = (region.width / 2 / scale).to_value(u.one)
    b_pix = (region.height / 2 / scale).to_value(u.one)
    outer = annulus[1] if annulus[1] is not None else 2 * annulus[0]
    ring_area = np.pi * a_pix * b_pix * (outer ** 2 - annulus[0] ** 2)
    if ring_area < 2 * _MIN_SKY_PIXELS:
        return (f'The galaxy ellipse is tiny for the {band.name} pixels (semi-major '
                f'{region.width.to(u.arcsec) / 2:.2f} = {a_pix:.2g} pixels): its sky annulus '
                f'({annulus[0]:g} to {outer:g} times the ellipse) holds only {n} usable '
                'pixels. Give the galaxy its real size (a larger semimajor or d25, e.g. '
                'the D25 diameter), or use all pixels beyond the ellipse with '
                f'sky_annulus=({annulus[0]:g}, None).')
    return (f'Only {n} usable sky pixels in the {band.name} image: the sky annulus around '
            f'the galaxy ({annulus[0]:g} to {outer:g} times its ellipse of semi-major '
            f'{region.width.to(u.arcsec) / 2:.1f}) lies mostly off the image or is masked. '
            'The image is too small for the galaxy: give a larger cutout (at least '
            f'{2 * outer:g} times the ellipse), a smaller ellipse if it is too large, or '
            f'sky_annulus=({annulus[0]:g}, None) to use every pixel beyond the ellipse.')


def prepare_image(image, band=None, *, unit=None, ebv=None, ebv_err=None, galaxy=None,
                  sky='plane', sky_annulus=SKY_ANNULUS, psf_fwhm=None, sigma=3.0):
    """
    Bring one image to MJy/sr, subtract the sky and correct Galactic extinction.

    Parameters
    ----------
    image : `~astropy.nddata.CCDData`, FITS path, HDU or ``(array, wcs)``
        Any input of `astro_dustml.imaging.read_images`; it needs a celestial WCS.
    band : str, optional
        Band name; default ``image.meta['band']`` or the FITS header.
    unit : `~astropy.units.Unit` or str, optional
        The image unit. Wins over everything else; otherwise the unit is the
        image's own (NDData unit, header ``BUNIT`` or ``SIGUNIT``; data numbers
        of AllWISE and 2MASS Atlas files through the header's zero point
        ``MAGZP``), and failing that the band's native survey unit (with a
        warning). An unreadable ``BUNIT`` is an error. Flux densities per
        pixel (Jy/pix, native DN, nanomaggies, counts/s) and surface
        brightnesses are accepted; a bare flux density (Jy) is read as per pixel.
    ebv : float or `~astropy.units.Quantity`, optional
        Galactic E(B-V) in magnitudes. The image is multiplied by
        ``10**(0.4 * A)`` with ``A = band.extinction * ebv`` (Schlafly &
        Finkbeiner 2011 coefficients from the band registry). None: no
        correction.
    ebv_err : float or `~astropy.units.Quantity`, optional
        Its uncertainty; default `DEFAULT_EBV_ERROR` times ``ebv``.
    galaxy : `regions.SkyRegion` or dict, optional
        The galaxy aperture (see `galaxy_region`, or a dict of its
        arguments with ``center``). Pixels inside 1.25 times it are kept out
        of the sky fit (see ``sky_annulus``). Without one, the whole image
        is used, with sources found by sigma clipping masked (grown by one
        PSF FWHM).
    sky : {'plane', 'constant', None}, optional
        Sky model fitted with sigma clipping to the sky pixels: a tilted
        plane (as CAAPR does), a constant, or None when the image is already
        sky-subtracted (the sky pixels still give the noise).
    sky_annulus : tuple of two floats, optional
        Inner and outer size of the sky region around the galaxy, in units
        of its aperture; default `SKY_ANNULUS`, the DustPedia/CAAPR annulus
        (1.25 to 1.601 times the aperture) that makes the sky estimate
        local. An outer size of None uses everything beyond the inner one.
    psf_fwhm : `~astropy.units.Quantity`, optional
        PSF FWHM; default ``image.meta['psf_fwhm']`` or the registry value.
    sigma : float, optional
        Clipping threshold in standard deviations.

    Returns
    -------
    prepared : `~astropy.nddata.CCDData`
        New image in MJy/sr (`OUTPUT_UNIT`). ``uncertainty`` is a
        `~astropy.nddata.StdDevUncertainty`: the sigma-clipped background RMS
        (or the uncertainty the image carried), the calibration error
        (``band.calibration_error``) and the extinction uncertainty, in
        quadrature; the last two are correlated over the whole map. ``mask``
        is True at NaN pixels (and wherever the input was masked), and at
        absurd pixels (more than 1e6 times the image's 99th percentile, or
        with a non-finite uncertainty), which are also set to NaN, with a
        warning, so that no convolution spreads them. ``meta``
        holds ``'band'``, ``'psf_fwhm'``, ``'background_rms'``, ``'sky'``,
        ``'ebv'``, ``'ebv_err'``, ``'extinction_factor'``, ``'galaxy_region'``,
        ``'input_unit'`` and ``'systematic_error'`` (the fractional
        calibration and extinction error, which `~astro_dustml.imaging.match_psf`
        keeps out of its noise averaging).

    Raises
    ------
    ValueError
        If the image has no celestial WCS, the band is unknown, the galaxy
        is not on the image, or too few sky pixels are left (the message says
        whether the ellipse is too small or the image too small).
    astropy.units.UnitConversionError
        If the unit is neither a surface brightness nor a flux per pixel.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.nddata import CCDData
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.imaging import prepare_image
    >>> wcs = WCS(naxis=2); wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> wcs.wcs.cdelt = [-2 / 3600, 2 / 3600]
    >>> rng = np.random.default_rng(1)
    >>> data = 5.0 + rng.normal(0, 0.1, (64, 64))      # a flat sky of 5 MJy/sr
    >>> image = CCDData(data, unit='MJy/sr', wcs=wcs)
    >>> out = prepare_image(image, 'WISE_3.4', ebv=0.0)
    >>> out.unit, round(float(np.median(out.data)), 2) + 0.0
    (Unit("MJy / sr"), 0.0)
    >>> round(float(out.meta['background_rms'].value), 2), out.meta['psf_fwhm']
    (0.1, <Quantity 5.79 arcsec>)
    """
    # The one parse of the image: it resolves the unit (explicit unit= wins)
    parsed = _parse_image(image, band=band, unit=unit, given_unit_wins=True)
    return _prepare_parsed(parsed, ebv=ebv, ebv_err=ebv_err, galaxy=galaxy, sky=sky,
                           sky_annulus=sky_annulus, psf_fwhm=psf_fwhm, sigma=sigma)


def _prepare_parsed(parsed, *, ebv, ebv_err, galaxy, sky, sky_annulus, psf_fwhm, sigma):
    """`prepare_image` of an image `_parse_image` made (it is not modified)."""
    if sky not in ('plane', 'constant', None):
        raise ValueError(f"sky must be 'plane', 'constant' or None, not {sky!r}.")
    band = get_band(parsed.meta['band'])
    wcs = parsed.wcs
    pixel_area = _pixel_area(wcs)
    in_unit = parsed.unit
    factor = _to_output_factor(in_unit, pixel_area, band)

    fwhm = psf_fwhm if psf_fwhm is not None else parsed.meta.get('psf_fwhm', band.fwhm)
    fwhm = _positive_quantity(fwhm, 'psf_fwhm', 'angle', example='6 * u.arcsec')
    fwhm = fwhm.to(u.arcsec)
    fwhm_pix = (fwhm / np.sqrt(pixel_area).to(u.arcsec)).to_value(u.one)

    given_noise = (None if parsed.uncertainty is None
                   else np.abs(np.asarray(parsed.uncertainty.array, dtype=float)))
    data, bad = _mask_absurd(np.array(parsed.data, dtype=float), given_noise,
                             _bad_pixels(parsed.data, parsed.mask), band)
    region = _parse_galaxy(galaxy)[1]
    _check_on_image(region, wcs, data.shape, band)
    usable = _sky_mask(data.shape, wcs, region, sky_annulus) & ~bad
    if region is None and usable.any():
        usable &= ~_source_mask(data, usable, fwhm_pix)
    if usable.sum() < _MIN_SKY_PIXELS:
        raise ValueError(_sky_advice(region, wcs, data.shape, usable, sky_annulus, band))
    # sky=None still needs the sky pixels' RMS, from a constant fit
    sky_model, rms, params = _fit_sky(data, usable, sky or 'constant', sigma)
    # in place, here and below: each temporary of a band adds to the memory peak
    if sky is not None:
        data -= sky_model
    else:
        params = {'type': None}

    noise = np.full(data.shape, rms) if given_noise is None else given_noise

    ebv_value, ebv_error, ext_factor, ext_frac = _extinction(band, ebv, ebv_err)
    data *= factor * ext_factor
    noise *= factor * ext_factor
    uncertainty = data ** 2
    uncertainty *= band.calibration_error ** 2 + ext_frac ** 2
    uncertainty += np.square(noise, out=noise)
    np.sqrt(uncertainty, out=uncertainty)

    meta = dict(parsed.meta)
    if 'header' in meta:
        header = meta['header'].copy()
        for key in ('BUNIT', 'SIGUNIT'):
            header.remove(key, ignore_missing=True, remove_all=True)
        meta['header'] = header
    # sky parameters in output units (slopes per pixel)
    sky_params = {k: (v * factor * ext_factor * OUTPUT_UNIT if isinstance(v, float) else v)
                  for k, v in params.items()}
    meta.update(band=band.name, psf_fwhm=fwhm,
                background_rms=rms * factor * ext_factor * OUTPUT_UNIT,
                sky=sky_params, ebv=ebv_value, ebv_err=ebv_error,
                extinction_factor=ext_factor, galaxy_region=region, input_unit=in_unit,
                systematic_error=float(np.hypot(band.calibration_error, ext_frac)))
    return CCDData(data, unit=OUTPUT_UNIT, wcs=wcs.deepcopy(), mask=bad,
                   uncertainty=StdDevUncertainty(uncertainty), meta=meta)


def _extinction(band, ebv, ebv_err):
    if ebv is None:
        return None, None, 1.0, 0.0
    try:
        ebv = u.Quantity(ebv, u.mag).to_value(u.mag)
    except (TypeError, ValueError, u.UnitsError):
        raise ValueError(f'E(B-V) (ebv=) must be a number of magnitudes, e.g. 0.03, got '
                         f'{ebv!r}.') from None
    if np.ndim(ebv) != 0:
        raise ValueError(f'E(B-V) (ebv=) must be a single number (the Galactic foreground '
                         f'colour excess towards the galaxy, e.g. 0.03), got an array of '
                         f'shape {np.shape(ebv)}. Maps of E(B-V) are not supported: give its '
                         'value at the galaxy centre (it varies little across a galaxy).')
    if not np.isfinite(ebv) or ebv < 0:
        raise ValueError(f'E(B-V) must be a finite non-negative number, got {ebv}.')
    ebv_err = (DEFAULT_EBV_ERROR * ebv if ebv_err is None
               else u.Quantity(ebv_err, u.mag).to_value(u.mag))
    a_band = band.extinction * ebv
    factor = 10 ** (0.4 * a_band)
    frac = 0.4 * np.log(10) * band.extinction * ebv_err
    return ebv * u.mag, ebv_err * u.mag, factor, frac


def prepare_images(collection, *, ebv=None, ebv_err=None, galaxy=None, units=None,
                   sky='plane', sky_annulus=SKY_ANNULUS, psf_fwhm=None, sigma=3.0):
    """
    `prepare_image` for every member of a collection.

    Parameters
    ----------
    collection : `~ndcube.NDCollection`, mapping or sequence
        Images keyed by band (see `astro_dustml.imaging.make_collection`).
    ebv, ebv_err, galaxy, sky, sky_annulus, sigma
        As in `prepare_image`, the same for every band.
    units : dict, optional
        Band name -> unit for images whose unit must be stated.
    psf_fwhm : dict, optional
        Band name -> PSF FWHM overriding the registry.

    Returns
    -------
    prepared : `~ndcube.NDCollection`
        Unaligned collection of prepared `~astropy.nddata.CCDData` (MJy/sr)
        with the input collection's ``meta`` plus ``'galaxy_name'``,
        ``'galaxy_region'`` and ``'ebv'``.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.imaging import prepare_images
    >>> wcs = WCS(naxis=2); wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> wcs.wcs.cdelt = [-2 / 3600, 2 / 3600]
    >>> sky = np.random.default_rng(0).normal(1.0, 0.1, (32, 32))
    >>> out = prepare_images({'W1': (sky, wcs), 'W2': (sky, wcs)},
    ...                      units={'WISE_3.4': 'MJy/sr', 'WISE_4.6': 'MJy/sr'})
    >>> list(out.keys()), out['WISE_4.6'].unit
    (['WISE_3.4', 'WISE_4.6'], Unit("MJy / sr"))
    """
    # One parse of each image, which resolves its unit (units= first); none
    # for images parsed already at the public boundary
    parsed = _parse_collection(collection, units=units)
    fwhms = {get_band(k).name: v for k, v in (psf_fwhm or {}).items()}
    name, region, _ = _parse_galaxy(galaxy)
    out = [(band, _prepare_parsed(image, ebv=ebv, ebv_err=ebv_err, galaxy=region, sky=sky,
                                  sky_annulus=sky_annulus, psf_fwhm=fwhms.get(band),
                                  sigma=sigma))
           for band, image in parsed.items()]
    meta = dict(getattr(collection, 'meta', None) or {})
    meta.update(galaxy_name=name, galaxy_region=region,
                ebv=None if ebv is None else u.Quantity(ebv, u.mag))
    return NDCollection(out, meta=meta)
