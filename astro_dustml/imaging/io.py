"""
Reading images into the form every other step takes.

The private parsers here are the single place where user input (paths, HDUs,
``(array, wcs)`` pairs, `~astropy.nddata.NDData`/`~astropy.nddata.CCDData`,
collections of them) becomes `~astropy.nddata.CCDData` keyed by canonical
band name.
"""

import copy
import os
import warnings
from collections.abc import Mapping

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.wcs import WCS
from ndcube import NDCollection

from .._checks import _check_planned
from ..bands import dn_unit, get_band
from ..exceptions import AstroDustMLWarning

__all__ = ['read_images', 'make_collection']


# Header keywords that carry a unit, in order of trust (DustPedia uses SIGUNIT)
_UNIT_KEYS = ('BUNIT', 'SIGUNIT')


# Unit strings of survey products in data numbers (zero point in MAGZP)
_DN_NAMES = {'dn', 'dn/pix', 'data number', 'data numbers', 'counts', 'adu'}


class NoCelestialWCSError(ValueError):
    """An image without a celestial WCS (a private class: the CLI rewords it)."""


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


def _directory_error(path):
    path = os.fspath(path)
    pattern = os.path.join(path, '*.fits*')
    return IsADirectoryError(
        f'{path} is a directory, not a FITS file: give the FITS files in it, e.g. with a '
        f'glob: read_images(sorted(glob.glob({pattern!r}))) in Python, {pattern} on the '
        'command line.')


def _open_fits(path, **kwargs):
    """`_parse_image` of a FITS file, with errors that name the file."""
    if os.path.isdir(path):
        raise _directory_error(path)
    try:
        hdul = fits.open(path)
    except FileNotFoundError:
        raise FileNotFoundError(f'No such file: {os.fspath(path)}') from None
    except (OSError, ValueError) as exc:
        reason = str(exc).split('. If this')[0].rstrip('.')
        raise OSError(f'Cannot read {os.fspath(path)}: it is not a readable FITS file '
                      f'({reason}).') from None
    with hdul:
        return _parse_image(hdul, **kwargs)


def _parse_image(data, *, band=None, unit=None, wcs=None, units=None,
                 given_unit_wins=False):
    """
    Turn one image in any accepted form into a new `~astropy.nddata.CCDData`.

    Accepted: a path to a FITS file, an HDU, an HDUList (first HDU with
    data), a ``(array, wcs)`` or ``(array, header)`` tuple, or an
    `~astropy.nddata.NDData`/`~astropy.nddata.CCDData`.  Attributes the object
    carries win over keyword arguments; a duplicate that disagrees warns
    (``given_unit_wins``: the ``unit`` keyword wins instead, silently).
    ``units`` (canonical band name -> unit) gives ``unit`` once the band is known.
    The band is recognised from the header when not given. The unit is
    resolved here, once (see `_resolve_unit`): the result always carries its
    real unit and ``meta['unit_source']`` says where it came from.

    Returns
    -------
    image : `~astropy.nddata.CCDData`
        A copy; ``meta['band']`` holds the canonical band name.
    """
    uncertainty = mask = header = carried_unit = None
    meta = {}
    if isinstance(data, (str, os.PathLike)):
        return _open_fits(data, band=band, unit=unit, wcs=wcs, units=units,
                          given_unit_wins=given_unit_wins)
    if isinstance(data, fits.HDUList):
        hdus = [h for h in data if h.data is not None and h.data.ndim >= 2]
        if not hdus:
            raise ValueError('The FITS file holds no image HDU.')
        data = hdus[0]
    if isinstance(data, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
        header = data.header
        array = data.data
    elif isinstance(data, tuple) and len(data) == 2:
        array, second = data
        if isinstance(second, fits.Header):
            header = second
        else:
            wcs = _merge(wcs, second, 'wcs')
    elif isinstance(data, NDData):
        array = data.data
        wcs = _merge(wcs, data.wcs, 'wcs')
        carried_unit = data.unit
        if carried_unit is not None and unit is not None and not given_unit_wins:
            _merge(unit, carried_unit, 'unit')  # warns when they disagree
        uncertainty, mask = data.uncertainty, data.mask
        meta = copy.deepcopy(dict(data.meta or {}))  # nothing shared with the input
        header = meta.get('header')
        if header is None and isinstance(data.meta, fits.Header):
            header = data.meta
        band = _merge(band, meta.get('band'), 'band')
    elif isinstance(data, np.ndarray):
        array = data
    else:
        raise TypeError(
            f'Cannot read an image from {type(data).__name__}; pass a FITS '
            'path, an HDU, an (array, wcs) tuple, or NDData/CCDData.')

    if isinstance(array, np.ma.MaskedArray):  # a numpy.ma mask is a mask too
        mask = _or_masks(mask, np.ma.getmaskarray(array))
        array = array.data
    array = np.asarray(array)
    if array.ndim != 2:
        array = np.squeeze(array)
        if array.ndim != 2:
            raise ValueError(f'Expected a 2D image, got shape {array.shape}.')
        if mask is not None and np.ndim(mask) > 2:
            mask = np.squeeze(np.asarray(mask))
    if header is not None:
        if wcs is None:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', fits.verify.VerifyWarning)
                header_wcs = WCS(header).celestial
            wcs = header_wcs if header_wcs.has_celestial else None
        meta.setdefault('header', header.copy())
    if wcs is not None:
        _check_wcs(wcs, _band_name(band, header))  # before wcsset() (has_celestial) runs
    if wcs is None or not getattr(wcs, 'has_celestial', True):
        raise NoCelestialWCSError(
            'The image has no celestial WCS. Give one with wcs=, or pass a '
            'FITS file or header that holds one.')
    if band is None:
        if header is None:
            raise ValueError('Cannot tell the band of an image without a '
                             'header; pass band=, e.g. band="WISE_3.4".')
        band = get_band(header)
    given_band = band
    band = get_band(band)
    if header is not None and given_band is not None:
        _check_header_band(header, band)
    meta['band'] = band.name
    array = _check_data(array, band)
    # the float copy made below (and its uncertainty): a broadcast view or a
    # memory map is not materialised beyond the limit
    _check_planned(array.size * 8 * (1 if uncertainty is None else 2),
                   f'A float64 copy of the {band.name} image ({array.shape[0]} x '
                   f'{array.shape[1]} pixels)',
                   'Give a cutout of the galaxy; if the image is not that large, check its '
                   'data (a broadcast view or a wrong shape?).')
    mask = _check_mask(mask, array.shape, band)
    if unit is None and units:
        unit = units.get(band.name)
        if carried_unit is not None and unit is not None:
            _merge(unit, carried_unit, 'unit')  # warns when they disagree
    resolved, source = _resolve_unit(carried_unit, unit, header, band,
                                     given_wins=given_unit_wins)
    if source == 'image' and meta.get('unit_source'):
        source = meta['unit_source']  # already resolved by an earlier parse
    meta.pop('unit_known', None)
    meta['unit_source'] = source

    sigma = _check_uncertainty(uncertainty, array.shape, resolved, band)
    return CCDData(np.array(array, dtype=float), unit=resolved,
                   wcs=wcs.deepcopy() if hasattr(wcs, 'deepcopy') else wcs,
                   uncertainty=None if sigma is None else StdDevUncertainty(sigma),
                   mask=mask, meta=meta)


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


def _bad_pixels(data, mask):
    """Boolean map of the pixels that are not finite or are masked."""
    bad = ~np.isfinite(data)
    if mask is not None:
        bad |= np.asarray(mask, dtype=bool)
    return bad


def _merge(given, carried, what):
    """The object's own attribute wins; warn if a keyword disagrees."""
    if carried is None:
        return given
    if given is not None and not _same(given, carried):
        warnings.warn(f'The {what} carried by the image overrides the {what}= '
                      'keyword.', AstroDustMLWarning)
    return carried


def _same(a, b):
    try:
        return bool(a == b)
    except Exception:
        return a is b


def _labelled_parse(image, band, label, units=None):
    """`_parse_image`, with errors that say which input was wrong."""
    try:
        return _parse_image(image, band=band, units=units)
    except (ValueError, TypeError) as exc:
        labelled = type(exc)(f'Input {label}: {exc}')
        labelled.source = label  # lets the command line name the file its own way
        raise labelled from exc


def _band_key(band):
    return get_band(band).name


# AllWISE Atlas products: ``<coadd>-w1-int-3...fits`` (intensity) and
# ``<coadd>-w1-unc-3...fits`` (its 1-sigma uncertainty, same grid and unit)
_UNC_TAG, _INT_TAG = '-unc-', '-int-'


def _pair_uncertainty_maps(images, bands):
    """
    Split AllWISE ``-unc-`` maps off a list of images.

    Returns the remaining images, their bands, and ``{index: unc path}``
    mapping each ``-int-`` image to the uncertainty map of the same name.
    """
    names = [os.path.basename(os.fspath(im)) if isinstance(im, (str, os.PathLike)) else None
             for im in images]
    unc = [i for i, name in enumerate(names) if name and _UNC_TAG in name]
    if not unc:
        return list(images), bands, {}
    keep = [i for i in range(len(images)) if i not in unc]
    pairs = {}
    for i in unc:
        partner = names[i].replace(_UNC_TAG, _INT_TAG)
        match = [j for j in keep if names[j] == partner]
        if not match:
            raise ValueError(
                f'{images[i]} is an AllWISE uncertainty (-unc-) map, but its intensity '
                f'map {partner} is not among the inputs; give both, or leave the '
                '-unc- map out.')
        pairs[keep.index(match[0])] = images[i]
    return ([images[j] for j in keep],
            None if bands is None else [bands[j] for j in keep], pairs)


def _attach_uncertainty(image, path, units):
    """The intensity image with the -unc- map at ``path`` as its uncertainty."""
    unc = _parse_image(path, band=image.meta['band'], units=units)
    if unc.shape != image.shape:
        raise ValueError(f'{path} has shape {unc.shape} but its intensity map has '
                         f'{image.shape}: they are not a matching pair.')
    sigma = (unc.data * unc.unit).to_value(image.unit)
    image.uncertainty = StdDevUncertainty(np.abs(sigma))
    image.meta['uncertainty_file'] = os.fspath(path)
    return image


class _ImageStack(NDCollection):
    """
    The parsed images of one call: canonical band name -> `~astropy.nddata.CCDData`.

    Every member has a float array, a real unit (``meta['unit_source']``
    says where it came from), a celestial WCS, ``meta['band']`` and, if
    any, a `~astropy.nddata.StdDevUncertainty`. `_parse_collection` makes
    it at the public boundary and returns it unchanged when given one, so
    the steps after the boundary do not parse the images again.
    """

    def subset(self, bands):
        """The stack of the members in ``bands`` (the same image objects)."""
        return _ImageStack([(b, self[b]) for b in bands if b in self], meta=self.meta)


def _subset(images, bands):
    """``images`` cut to ``bands``, an `_ImageStack` if it was one."""
    if isinstance(images, _ImageStack):
        return images.subset(bands)
    return {b: images[b] for b in bands if b in images}


def _parse_collection(images, *, bands=None, units=None):
    """
    Turn a collection of images into an `_ImageStack` ``{band name: CCDData}``.

    Accepted: an `~ndcube.NDCollection` or any mapping of band name to image;
    a sequence of images whose bands come from ``bands`` or from their
    headers. AllWISE ``-unc-`` files in a sequence become the uncertainty of
    the ``-int-`` file of the same name. ``units`` maps band names to the
    unit of images that carry none. Raises if two images have the same band.
    An `_ImageStack` is returned as it is (it was parsed already).
    """
    if isinstance(images, _ImageStack) and bands is None and not units:
        return images
    units = {_band_key(k): v for k, v in (units or {}).items()}
    if isinstance(images, Mapping):
        if bands is not None:
            raise ValueError('bands= is only for a list of images; a mapping '
                             'already names its bands.')
        items = [(_labelled_parse(image, key, key, units), key)
                 for key, image in images.items()]
    elif isinstance(images, (list, tuple)):
        if bands is not None and len(bands) != len(images):
            raise ValueError(f'Got {len(images)} images but {len(bands)} '
                             'band names.')
        images, bands, pairs = _pair_uncertainty_maps(list(images), bands)
        items = []
        for i, image in enumerate(images):
            band = None if bands is None else bands[i]
            label = image if isinstance(image, (str, os.PathLike)) else f'image #{i}'
            parsed = _labelled_parse(image, band, label, units)
            if i in pairs:
                parsed = _attach_uncertainty(parsed, pairs[i], units)
            items.append((parsed, i))
    else:
        raise TypeError('Expected an NDCollection, a mapping of band name to '
                        f'image, or a list of images, not {type(images).__name__}.')
    out = {}
    for image, source in items:
        band = image.meta['band']
        if band in out:
            raise ValueError(f'Two images are in band {band} (the second is '
                             f'{source!r}); pass one image per band.')
        out[band] = image
    if not out:
        raise ValueError('The collection holds no images.')
    _check_unit_bands(units, out)
    return _ImageStack(list(out.items()))


def _check_unit_bands(units, bands):
    """units= may only name bands that are in the collection."""
    unknown = sorted(set(units) - set(bands))
    if unknown:
        raise ValueError(f'units= names bands not in the collection: {unknown}; the '
                         f'collection has {sorted(bands)}. Drop those entries or fix their '
                         'band names.')


def make_collection(images, *, bands=None, units=None, aligned=False, meta=None):
    """
    Build an `~ndcube.NDCollection` keyed by canonical band name.

    Parameters
    ----------
    images : mapping or sequence
        Images as FITS paths, HDUs, ``(array, wcs)`` tuples or
        `~astropy.nddata.NDData`; a mapping names their bands, a sequence
        takes them from ``bands`` or from the FITS headers.
    bands : sequence of str, optional
        Band names for a sequence of images.
    units : dict, optional
        Band name -> unit of the images that carry none (no unit attribute,
        ``BUNIT``, ``SIGUNIT`` or ``MAGZP``); without it such an image gets
        its band's native survey unit, with a warning.
    aligned : bool, optional
        Declare all axes aligned; every image must then share the shape and
        the WCS (each pixel within 0.01 pixel of the same pixel of the first
        image), else it is an error.
    meta : dict, optional
        Collection metadata.

    Returns
    -------
    collection : `~ndcube.NDCollection`
        New `~astropy.nddata.CCDData` objects; the inputs are not modified.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.imaging import make_collection
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> coll = make_collection([(np.ones((4, 4)), wcs)], bands=['W1'],
    ...                        units={'W1': 'MJy/sr'})
    >>> list(coll.keys()), coll['WISE_3.4'].unit
    (['WISE_3.4'], Unit("MJy / sr"))
    """
    parsed = _parse_collection(images, bands=bands, units=units)
    if aligned:
        first = next(iter(parsed.values()))
        for band, image in parsed.items():
            if image.shape != first.shape:
                raise ValueError(
                    f'{band} has shape {image.shape} but the first image has '
                    f'{first.shape}; align them first with '
                    'astro_dustml.imaging.align_images.')
        _check_same_grid(parsed)
    return NDCollection(list(parsed.items()),
                        aligned_axes='all' if aligned else None,
                        meta=meta)


# how far (in pixels) the grids of "aligned" images may differ anywhere on the image
_ALIGNED_TOLERANCE = 0.01


def _check_same_grid(images):
    """aligned=True: every image's WCS puts each pixel where the first's does."""
    (first_band, first), *others = images.items()
    ny, nx = first.shape
    # the corners and the centre of the first image, on the sky and then on each image
    x = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2])
    y = np.array([0, 0, ny - 1, ny - 1, (ny - 1) / 2])
    sky = first.wcs.pixel_to_world(x, y)
    for band, image in others:
        with np.errstate(invalid='ignore'):
            px, py = image.wcs.world_to_pixel(sky)
        offset = np.hypot(np.asarray(px) - x, np.asarray(py) - y)
        worst = np.max(offset) if np.all(np.isfinite(offset)) else np.inf
        if not worst <= _ALIGNED_TOLERANCE:
            raise ValueError(
                f'aligned=True, but {band} is on another grid than {first_band}: their '
                f'shapes agree, their WCS do not (a pixel of {first_band} falls '
                f'{worst:.3g} pixels off the same pixel of {band}; at most '
                f'{_ALIGNED_TOLERANCE} is allowed). Reproject them onto one grid first '
                '(astro_dustml.imaging.align_images), or pass aligned=False.')


def read_images(paths, *, bands=None, units=None):
    """
    Read FITS images into an `~ndcube.NDCollection` keyed by band.

    Parameters
    ----------
    paths : sequence of str or path-like
        FITS files, one per band (or the path of one file); a directory is
        an error: give the files in it (e.g. ``sorted(glob.glob('dir/*.fits'))``).
    bands : sequence of str, optional
        Band names, one per file; by default recognised from the headers.
    units : dict, optional
        Band name -> unit for files whose header gives none (see
        `make_collection`). AllWISE Atlas (``BUNIT = 'DN'``) and 2MASS Atlas
        files need none: their data numbers are converted with the header's
        own zero point ``MAGZP``. An AllWISE ``-unc-`` file becomes the
        uncertainty of the ``-int-`` file of the same name.

    Returns
    -------
    collection : `~ndcube.NDCollection`
        Unaligned collection of `~astropy.nddata.CCDData`: new objects that
        share no data, header or metadata with the inputs.
    """
    if isinstance(paths, (str, os.PathLike)):
        if os.path.isdir(paths):
            raise _directory_error(paths)
        paths = [paths]  # one file
    return make_collection(list(paths), bands=bands, units=units)


def _usable(image):
    usable = np.isfinite(image.data)
    if image.mask is not None:
        usable &= ~np.asanyarray(image.mask, dtype=bool)
    return usable
