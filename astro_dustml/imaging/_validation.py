"""
What an input image must be: its unit, data, mask, uncertainty, WCS and band.

The checks ``imaging.io``'s one parser runs on every image as it enters:
the unit resolved once from the object, the keywords or the header
(``BUNIT``, ``SIGUNIT``, survey DN with ``MAGZP``), real 2-D finite
data, a boolean mask of the image's shape, an uncertainty in the data's
unit and never negative, a finite celestial WCS, and a band that agrees
with the FITS keywords. Each error names the band and says how to fix it.

Uses `astro_dustml.bands` and `astro_dustml.exceptions`.
"""

import warnings

import astropy.units as u
import numpy as np
from astropy.nddata import StdDevUncertainty

from ..bands import dn_unit, get_band
from ..exceptions import AstroDustMLWarning

# Header keywords that carry a unit, in order of trust (DustPedia uses SIGUNIT)
_UNIT_KEYS = ('BUNIT', 'SIGUNIT')


# Unit strings of survey products in data numbers (zero point in MAGZP)
_DN_NAMES = {'dn', 'dn/pix', 'data number', 'data numbers', 'counts', 'adu'}


def _header_unit(header, band):
    """
    ``(unit, source)`` from a FITS header, or ``(None, None)``.

    ``BUNIT``/``SIGUNIT`` when astropy can read them; data numbers (``BUNIT =
    'DN'``, or no unit keyword but a ``MAGZP`` zero point, as on 2MASS Atlas
    tiles) through the band's Vega zero point and the header's own ``MAGZP``.
    """
    for key in _UNIT_KEYS:
        value = header.get(key)
        if value is None or not str(value).strip():
            continue
        # Some archives write the comment inside the string value
        text = str(value).split(' /')[0].strip()
        if text.lower() in _DN_NAMES:
            return _dn_unit(header, band, f"{key} = '{text}'")
        try:
            return u.Unit(text, parse_strict='raise'), f'header {key}'
        except ValueError:
            raise ValueError(
                f"The {band.name} header says {key} = '{text}', which is not a unit "
                "astropy can read. Give the real unit instead (unit=, units={band: "
                "unit}, or --units BAND=UNIT on the command line), e.g. 'Jy/pix' or "
                "'MJy/sr'.") from None
    if header.get('MAGZP') is not None and band.vega_zero_flux is not None:
        return _dn_unit(header, band, 'no BUNIT')
    return None, None


def _dn_unit(header, band, why):
    """DN per pixel at the header's own zero point (MAGZP)."""
    if header.get('MAGZP') is not None and band.vega_zero_flux is not None:
        zero_point = header['MAGZP']
        return dn_unit(band, zero_point), f'DN, MAGZP = {zero_point} from the header'
    native = band.native_unit
    if 'DN' in native.to_string():
        warnings.warn(f'The {band.name} image is in data numbers ({why}) but its header '
                      'has no zero point (MAGZP); using the nominal zero point of the band '
                      f'registry ({native}).', AstroDustMLWarning)
        return native, 'DN, registry zero point'
    raise ValueError(f'The {band.name} image is in data numbers ({why}) but its header has '
                     'no zero point (MAGZP) to convert them to Jy. Give the real unit '
                     '(unit=, units= or --units BAND=UNIT).')


def _resolve_unit(carried, given, header, band, *, given_wins=False):
    """
    ``(unit, source)`` of an image; the one place where units are decided.

    Order: the unit the image object carries (NDData/CCDData; ``given`` wins
    only with ``given_wins``), the ``unit=`` given, the FITS header, and
    last the band's native survey unit, with a warning.
    """
    if given is not None and (carried is None or given_wins):
        try:
            return u.Unit(given), 'given'
        except (TypeError, ValueError):
            raise ValueError(f'The unit given for {band.name}, {given!r}, is not a unit '
                             "astropy can read; e.g. 'Jy/pix' or 'MJy/sr'.") from None
    if carried is not None:
        return carried, 'image'
    if header is not None:
        unit, source = _header_unit(header, band)
        if unit is not None:
            return unit, source
    warnings.warn(
        f'The {band.name} image carries no unit (no unit attribute, BUNIT or SIGUNIT); '
        f'assuming the native survey unit {band.native_unit}. Pass unit= (units= for a '
        'collection, --units on the command line) to state the real unit and silence '
        'this warning.', AstroDustMLWarning)
    return band.native_unit, 'native unit of the band (assumed)'


def _or_masks(a, b):
    """The union of two masks (either may be None)."""
    if a is None:
        return b
    return np.asarray(a, dtype=bool) | np.asarray(b, dtype=bool)


def _check_header_band(header, band):
    """Warn when the band given contradicts the band the FITS keywords name."""
    try:
        said = get_band(header)
    except (ValueError, TypeError):
        return  # the header names no band: nothing to contradict
    if said.name != band.name:
        keys = ', '.join(f'{k} = {header[k]!r}' for k in
                         ('TELESCOP', 'INSTRUME', 'ORIGIN', 'FILTER', 'BAND')
                         if str(header.get(k, '')).strip())
        warnings.warn(f'The band given ({band.name}, from band= or bands=) contradicts the '
                      f'FITS header ({keys}), which says {said.name}; using {band.name}. '
                      'Check the order of bands= or the file, or leave bands= out to take '
                      'the band from the header.', AstroDustMLWarning)


def _band_name(band, header):
    """The canonical band name for a message, or a stand-in when it is not known yet."""
    try:
        return get_band(band if band is not None else header).name
    except (ValueError, TypeError):
        return 'given'


def _check_wcs(wcs, name):
    """A celestial WCS must have finite CRVAL, CRPIX and an invertible pixel matrix."""
    inner = getattr(wcs, 'wcs', None)
    if inner is None:
        return  # a non-FITS (APE 14) WCS: nothing to inspect here
    parts = {'CRVAL': inner.crval, 'CRPIX': inner.crpix}
    if inner.has_cd():
        parts['CD'] = inner.cd
    else:
        # the raw PC (get_pc() runs wcsset, which fails on a singular matrix); none
        # with CROTA, whose rotation cannot be singular
        pc = inner.pc if inner.has_pc() else np.eye(len(inner.cdelt))
        parts['CDELT'], parts['PC'] = inner.cdelt, pc
    for key, value in parts.items():
        value = np.asarray(value, dtype=float)
        if not np.all(np.isfinite(value)):
            raise ValueError(f'The WCS of the {name} image has non-finite {key} '
                             f'({value.tolist()}): it cannot place the image on the sky. '
                             'Fix the header (or the WCS given with the array).')
    matrix = np.asarray(inner.cd if inner.has_cd()
                        else np.asarray(pc) * np.asarray(inner.cdelt)[None, :], float)
    if matrix.shape == (2, 2) and np.linalg.det(matrix) == 0:
        raise ValueError(f'The WCS of the {name} image has a singular pixel matrix '
                         f'(CD or CDELT x PC = {matrix.tolist()}, zero pixel size): it cannot '
                         'place the image on the sky. Fix the header.')


# Fewer pixels than this along an axis is a strip, not an image: no PSF
# matching, sky plane or resampling is defined on it
_MIN_SIDE = 2


def _check_data(array, band):
    """The image values: real numbers on a 2D grid at least `_MIN_SIDE` wide."""
    kind = array.dtype.kind
    if kind == 'c':
        raise TypeError(f'The {band.name} image holds complex values ({array.dtype}): an '
                        'image is a real surface brightness or flux. Give the real part '
                        '(data.real) or the modulus (abs(data)) if that is what you mean.')
    if kind == 'b':
        raise TypeError(f'The {band.name} image holds boolean values: that is a mask, not '
                        'an image. Give the mask as mask= of a CCDData (or a numpy.ma '
                        'array) together with the image values.')
    if kind not in 'iuf':
        raise TypeError(f'The {band.name} image holds {array.dtype} values, not numbers.')
    if min(array.shape) < _MIN_SIDE:
        raise ValueError(f'The {band.name} image is {array.shape[0]} x {array.shape[1]} '
                         f'pixels: a strip, not an image (at least {_MIN_SIDE} pixels are '
                         'needed along each axis for the sky fit, PSF matching and '
                         'resampling). Give a 2D cutout of the galaxy.')
    return array


def _check_mask(mask, shape, band):
    """A boolean copy of the mask, of the image's shape."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.ndim == 0:
        return np.full(shape, bool(mask))
    if mask.shape != shape:
        raise ValueError(f'The mask of the {band.name} image has shape {mask.shape} but the '
                         f'image has {shape}: give a mask of the same shape.')
    return np.array(mask, dtype=bool)


def _check_uncertainty(uncertainty, shape, unit, band):
    """The standard deviation in ``unit`` (the data's), checked; None if there is none."""
    if uncertainty is None:
        return None
    if not isinstance(uncertainty, StdDevUncertainty):
        uncertainty = uncertainty.represent_as(StdDevUncertainty)
    sigma = np.array(uncertainty.array, dtype=float)
    if sigma.shape != shape:
        raise ValueError(f'The uncertainty of the {band.name} image has shape {sigma.shape} '
                         f'but the image has {shape}: give one of the same shape.')
    own = getattr(uncertainty, '_unit', None)  # its own unit, not the parent's
    if own is not None and u.Unit(own) != unit:
        try:
            sigma = (sigma * u.Unit(own)).to_value(unit)
        except u.UnitConversionError:
            raise u.UnitConversionError(
                f'The uncertainty of the {band.name} image is in {own}, which cannot be '
                f'converted to the unit of its data ({unit}). Give the uncertainty in a '
                'unit of the same kind as the data.') from None
    with np.errstate(invalid='ignore'):
        negative = sigma < 0
    if negative.any():
        raise ValueError(f'The uncertainty of the {band.name} image has {int(negative.sum())} '
                         f'negative pixel(s) (down to {np.nanmin(sigma):.3g}): a standard '
                         'deviation is never negative. Check the uncertainty map (is it a '
                         'variance, an inverse variance or a difference image?); '
                         'give abs() of it if only its sign is wrong.')
    return sigma
