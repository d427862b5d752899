"""
Reading images into the form every other step takes.

The private parsers here are the single place where user input (paths, HDUs,
``(array, wcs)`` pairs, `~astropy.nddata.NDData`/`~astropy.nddata.CCDData`,
collections of them) becomes `~astropy.nddata.CCDData` keyed by canonical
band name.
"""

import os
import warnings
from collections.abc import Mapping

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.wcs import WCS
from ndcube import NDCollection

from .bands import get_band
from .exceptions import AstroDustMLWarning

__all__ = ['read_images', 'make_collection']

# Header keywords that carry a unit, in order of trust (DustPedia uses SIGUNIT)
_UNIT_KEYS = ('BUNIT', 'SIGUNIT')


def _header_unit(header):
    for key in _UNIT_KEYS:
        value = header.get(key)
        if value:
            # Some archives write the comment inside the string value
            text = str(value).split(' /')[0].strip()
            try:
                return u.Unit(text, parse_strict='raise')
            except ValueError:
                continue
    return None


def _parse_image(data, *, band=None, unit=None, wcs=None):
    """
    Turn one image in any accepted form into a new `~astropy.nddata.CCDData`.

    Accepted: a path to a FITS file, an HDU, an HDUList (first HDU with
    data), a ``(array, wcs)`` or ``(array, header)`` tuple, or an
    `~astropy.nddata.NDData`/`~astropy.nddata.CCDData`.  Attributes the object
    carries win over keyword arguments; a duplicate that disagrees warns.
    The band is recognised from the header when not given. An image without
    any unit is returned dimensionless with ``meta['unit_known']`` False, so
    that `astro_dustml.prepare.prepare_image` can fall back to the band's
    native unit.

    Returns
    -------
    image : `~astropy.nddata.CCDData`
        A copy; ``meta['band']`` holds the canonical band name.
    """
    uncertainty = mask = header = None
    meta = {}
    if isinstance(data, (str, os.PathLike)):
        with fits.open(data) as hdul:
            return _parse_image(hdul, band=band, unit=unit, wcs=wcs)
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
        unit = _merge(unit, data.unit, 'unit')
        uncertainty, mask = data.uncertainty, data.mask
        meta = dict(data.meta or {})
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

    array = np.asarray(array)
    if array.ndim != 2:
        array = np.squeeze(array)
        if array.ndim != 2:
            raise ValueError(f'Expected a 2D image, got shape {array.shape}.')
    if header is not None:
        if wcs is None:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', fits.verify.VerifyWarning)
                header_wcs = WCS(header).celestial
            wcs = header_wcs if header_wcs.has_celestial else None
        if unit is None:
            unit = _header_unit(header)
        meta.setdefault('header', header.copy())
    if wcs is None or not getattr(wcs, 'has_celestial', True):
        raise ValueError(
            'The image has no celestial WCS. Give one with wcs=, or pass a '
            'FITS file or header that holds one.')
    if band is None:
        if header is None:
            raise ValueError('Cannot tell the band of an image without a '
                             'header; pass band=, e.g. band="WISE_3.4".')
        band = get_band(header)
    band = get_band(band).name
    meta['band'] = band

    if uncertainty is not None and not isinstance(uncertainty,
                                                  StdDevUncertainty):
        uncertainty = uncertainty.represent_as(StdDevUncertainty)
    return CCDData(np.array(array, dtype=float),
                   unit=u.Unit(unit) if unit is not None else u.dimensionless_unscaled,
                   wcs=wcs.deepcopy() if hasattr(wcs, 'deepcopy') else wcs,
                   uncertainty=None if uncertainty is None
                   else StdDevUncertainty(np.array(uncertainty.array, dtype=float)),
                   mask=None if mask is None else np.array(mask, dtype=bool),
                   meta=dict(meta, unit_known=unit is not None))


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


def _labelled_parse(image, band, label):
    """`_parse_image`, with errors that say which input was wrong."""
    try:
        return _parse_image(image, band=band)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f'Input {label}: {exc}') from exc


def _parse_collection(images, *, bands=None):
    """
    Turn a collection of images into a dict ``{band name: CCDData}``.

    Accepted: an `~ndcube.NDCollection` or any mapping of band name to image;
    a sequence of images whose bands come from ``bands`` or from their
    headers.  Raises if two images have the same band.
    """
    if isinstance(images, Mapping):
        if bands is not None:
            raise ValueError('bands= is only for a list of images; a mapping '
                             'already names its bands.')
        items = [(_labelled_parse(image, key, key), key) for key, image in images.items()]
    elif isinstance(images, (list, tuple)):
        if bands is not None and len(bands) != len(images):
            raise ValueError(f'Got {len(images)} images but {len(bands)} '
                             'band names.')
        items = [(_labelled_parse(image, None if bands is None else bands[i],
                                  image if isinstance(image, (str, os.PathLike))
                                  else f'image #{i}'), i)
                 for i, image in enumerate(images)]
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
    return out


def make_collection(images, *, bands=None, aligned=False, meta=None):
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
    aligned : bool, optional
        Declare all axes aligned; every image must then share shape and WCS.
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
    >>> from astro_dustml.io import make_collection
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> coll = make_collection([(np.ones((4, 4)), wcs)], bands=['W1'])
    >>> list(coll.keys())
    ['WISE_3.4']
    """
    parsed = _parse_collection(images, bands=bands)
    if aligned:
        first = next(iter(parsed.values()))
        for band, image in parsed.items():
            if image.shape != first.shape:
                raise ValueError(
                    f'{band} has shape {image.shape} but the first image has '
                    f'{first.shape}; align them first with '
                    'astro_dustml.align.align_images.')
    return NDCollection(list(parsed.items()),
                        aligned_axes='all' if aligned else None,
                        meta=meta)


def read_images(paths, *, bands=None):
    """
    Read FITS images into an `~ndcube.NDCollection` keyed by band.

    Parameters
    ----------
    paths : sequence of str or path-like
        FITS files, one per band.
    bands : sequence of str, optional
        Band names, one per file; by default recognised from the headers.

    Returns
    -------
    collection : `~ndcube.NDCollection`
        Unaligned collection of `~astropy.nddata.CCDData`.
    """
    return make_collection(list(paths), bands=bands)
