"""
From UV–MIR images to dust maps in one call, and the dust-map FITS format.

`estimate_dust_maps` chains the public steps of the package (see DESIGN):
`~astro_dustml.prepare.prepare_images` -> optional foreground-star masking
(`astro_dustml.stars`) -> `~astro_dustml.align.align_images` ->
`~astro_dustml.sed.make_pixel_table` -> ``DustModel.predict`` -> maps.
Each step is also usable on its own.

The output is an `~ndcube.NDCollection` with members ``sLd``, ``sMd`` (dex)
and ``Td`` (K), each a `~astropy.nddata.CCDData` on the common WCS with a
`~astropy.nddata.StdDevUncertainty` (the model's per-pixel sigma) and a
boolean mask. ``maps.meta['flags']`` says why a pixel is masked (bits of
`MAP_FLAGS`).
"""

import json
import warnings
from collections.abc import Mapping

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import Table
from astropy.utils.console import ProgressBar
from astropy.wcs import WCS
from ndcube import NDCollection

from . import __version__, conf
from . import stars as _stars
from .align import align_images
from .bands import INPUT_BANDS, REFERENCE_BAND, get_band
from .exceptions import AstroDustMLWarning, OutOfDomainWarning
from .io import _parse_collection
from .prepare import _parse_galaxy, prepare_images
from .registry import get_model
from .sed import FLAG_MASKED, FLAG_MISSING, _as_wcs, _usable, make_pixel_table

__all__ = ['estimate_dust_maps', 'write_dust_maps', 'read_dust_maps', 'MAP_FLAGS',
           'TARGETS']

#: The predicted properties and their units.
TARGETS = {'sLd': u.dex, 'sMd': u.dex, 'Td': u.K}

#: Bits of ``maps.meta['flags']``: why a pixel of the dust maps is masked.
MAP_FLAGS = {
    'OUTSIDE': 1,        # outside the galaxy region or the common footprint
    'MASKED_INPUT': 2,   # an input band is masked there (foreground star, bad pixel)
    'MISSING_INPUT': 4,  # a band given as input has no data there
    'OUT_OF_DOMAIN': 8,  # colours outside the training range, or too few bands
    'NO_PREDICTION': 16,  # the model returned no finite value
}

_FORMAT = 'astro_dustml dust maps'


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, value=None):
        pass


def _progress(total, enabled):
    return ProgressBar(total) if enabled else _NoProgress()


def _check_reference(parsed):
    """The reference band is required."""
    if REFERENCE_BAND not in parsed:
        ref = get_band(REFERENCE_BAND)
        raise ValueError(
            f'No WISE 3.4 µm ({REFERENCE_BAND}) image among the inputs '
            f'({", ".join(parsed) or "none"}). WISE 3.4 µm is the reference band '
            'every feature is normalised by, so it is required: add a WISE band 1 '
            f'image ({ref.wavelength:.2f}; e.g. a DustPedia or unWISE cutout).')


def _check_not_all_masked(images):
    """Fail early on a band without a single usable pixel."""
    empty = [band for band, image in images.items() if not _usable(image).any()]
    if empty:
        raise ValueError(
            f'Every pixel is masked (or not finite) in {", ".join(empty)}: nothing to '
            'estimate from. Check the masks and data of these images, or leave the band '
            'out (WISE 3.4 µm is required).')


def _select_bands(parsed, model_bands):
    """Keep the model's input bands."""
    ignored = [b for b in parsed if b not in model_bands]
    if ignored:
        warnings.warn(f'Ignoring {", ".join(ignored)}: not an input band of the model '
                      f'(inputs: {", ".join(model_bands)}).', AstroDustMLWarning)
    return {b: im for b, im in parsed.items() if b in model_bands}, ignored


def _model_bands(model):
    card = getattr(model, 'card', None) or {}
    bands = card.get('bands') or getattr(model, 'bands', None) or INPUT_BANDS
    return [get_band(b).name for b in bands]


def _resolve_model(model):
    if model is None or isinstance(model, str) or hasattr(model, '__fspath__'):
        name = str(model) if model is not None else conf.default_model
        return get_model(model), name
    if not hasattr(model, 'predict'):
        raise TypeError('model= must be a model name, a model folder or a DustModel, '
                        f'not {type(model).__name__}.')
    card = getattr(model, 'card', None) or {}
    return model, card.get('name')


def _galaxy_info(galaxy):
    """JSON-friendly description of the galaxy argument for the output meta."""
    if galaxy is None:
        return None
    if isinstance(galaxy, str):
        return galaxy
    if isinstance(galaxy, Mapping):
        out = {}
        for key, value in galaxy.items():
            if hasattr(value, 'to_string') and hasattr(value, 'ra'):
                out[key] = value.to_string('hmsdms')
            elif isinstance(value, (str, int, float, u.Quantity)):
                out[key] = value
        return out
    return type(galaxy).__name__


# The chained steps, each in one place so that the pipeline reads top-down


def _prepare(images, *, ebv, region):
    # Without a region the sky is estimated over the whole image
    return prepare_images(images, ebv=ebv, galaxy=region)


def _mask_stars(prepared, stars, *, region):
    if isinstance(stars, str):
        if stars.lower() != 'gaia':
            raise ValueError(f'stars= must be a Gaia table or "gaia", not {stars!r}.')
        ref = prepared[REFERENCE_BAND]
        ny, nx = ref.shape
        center = ref.wcs.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
        corner = ref.wcs.pixel_to_world(0, 0)
        stars = _stars.query_gaia_stars(center, center.separation(corner))
    # Only the galaxy centre goes along: stars.py protects a nucleus around it
    center = getattr(region, 'center', None)
    masked, _ = _stars.mask_foreground_stars(prepared, stars, galaxy=center)
    return masked


def _align(prepared, *, resolution, pixel_scale, distance, parallel=False):
    if isinstance(resolution, u.Quantity) and resolution.unit.physical_type == 'length':
        # A physical FWHM (needs the distance)
        return align_images(prepared, resolution=resolution, pixel_scale=pixel_scale,
                            distance=distance, parallel=parallel)
    return align_images(prepared, target=resolution, pixel_scale=pixel_scale,
                        distance=distance, parallel=parallel)


def _pixel_flags(table, bands, shape):
    """Per-pixel MAP_FLAGS from the pixel table's band flags."""
    flags = np.full(shape, MAP_FLAGS['OUTSIDE'], dtype=np.int16)
    y, x = np.asarray(table['y'], int), np.asarray(table['x'], int)
    row_flags = np.zeros(len(table), dtype=np.int16)
    for band in bands:
        col = f'{band}_flag'
        if col not in table.colnames:
            continue
        bits = np.asarray(table[col], dtype=int)
        row_flags |= np.where(bits & FLAG_MASKED, MAP_FLAGS['MASKED_INPUT'], 0).astype(np.int16)
        row_flags |= np.where(bits & FLAG_MISSING, MAP_FLAGS['MISSING_INPUT'],
                              0).astype(np.int16)
    flags[y, x] = row_flags
    return flags, y, x


def estimate_dust_maps(images, *, model=None, distance=None, ebv=None, galaxy=None,
                       stars=None, resolution=None, pixel_scale=None, bands=None,
                       progress=True, parallel=False):
    """
    Estimate resolved dust maps of a galaxy from its UV–MIR images.

    Parameters
    ----------
    images : `~ndcube.NDCollection`, mapping or sequence
        One image per band: FITS paths, HDUs, ``(array, wcs)`` tuples,
        `~astropy.nddata.CCDData`/`~astropy.nddata.NDData`; a mapping or
        collection names the bands, a sequence takes them from ``bands`` or
        from the FITS headers. Any mix of pixel grids and PSFs. WISE 3.4 µm
        is required; other model input bands may be missing; bands that are
        not model inputs are ignored with a warning.
    model : str, path-like or `~astro_dustml.model.DustModel`, optional
        A model name (`~astro_dustml.registry.list_models`), a saved model
        folder, or a model object. Default: ``conf.default_model``.
    distance : `~astropy.units.Quantity`, optional
        Distance of the galaxy; needed for a pixel scale in pc and used for
        models with a pixel-scale feature.
    ebv : float, optional
        Galactic E(B-V) for the extinction correction.
    galaxy : dict, `regions.EllipseSkyRegion` or str, optional
        The galaxy: a dict with ``center`` (`~astropy.coordinates.SkyCoord`),
        ``semimajor``, ``axis_ratio``, ``position_angle`` (and ``name``), or
        a region; pixels outside it are masked and it shields the galaxy
        from the sky estimate. A str only names the galaxy.
    stars : `~astropy.table.Table` or ``'gaia'``, optional
        Gaia ``gaia_source`` table of stars to mask, or ``'gaia'`` to query
        the Gaia archive (needs astroquery and network).
    resolution : `~astropy.units.Quantity` or str, optional
        Target PSF FWHM (an angle, or a length with ``distance``), or a band
        name whose PSF to match; default: the worst PSF among the inputs.
    pixel_scale : `~astropy.units.Quantity`, optional
        Output pixel scale, angular or in pc (with ``distance``); default:
        the target PSF FWHM.
    bands : sequence of str, optional
        Band names for a sequence of images without recognisable headers.
    progress : bool, optional
        Show a progress bar (on a terminal).
    parallel : bool or int, optional
        Threads for PSF matching and alignment (see
        `~astro_dustml.align.align_images`): False for one, True for all
        cores, or a number. The maps do not depend on it.

    Returns
    -------
    maps : `~ndcube.NDCollection`
        ``sLd``, ``sMd`` (u.dex) and ``Td`` (u.K) as
        `~astropy.nddata.CCDData` with the common WCS,
        `~astropy.nddata.StdDevUncertainty` and mask (True = no valid
        estimate). ``maps.meta`` holds ``flags`` (int array, bits of
        `MAP_FLAGS`), ``model`` (the model card), ``model_name``,
        ``inputs`` (bands used), ``ignored_bands``, ``psf_fwhm``,
        ``pixel_scale``, ``distance``, ``ebv``, ``galaxy``,
        ``out_of_domain_fraction`` and ``version``; each map's ``meta`` the
        same without ``flags``.

    Raises
    ------
    ValueError
        No WISE 3.4 µm image, an image without WCS, an unknown band, an
        unknown model name, or no pixel left to predict.

    Warns
    -----
    ~astro_dustml.exceptions.OutOfDomainWarning
        Some pixels lie outside the model's training domain (they are
        masked); the message gives the fraction.

    Examples
    --------
    Without WISE 3.4 µm there is nothing to normalise by:

    >>> import numpy as np
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.estimate import estimate_dust_maps
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> estimate_dust_maps({'WISE_12': (np.ones((5, 5)), wcs)})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: No WISE 3.4 µm (WISE_3.4) image among the inputs (WISE_12). ...
    """
    parsed = _parse_collection(images, bands=bands)
    _check_reference(parsed)
    name, region, galaxy_distance = _parse_galaxy(galaxy)
    dust_model, model_name = _resolve_model(model)
    selected, ignored = _select_bands(parsed, _model_bands(dust_model))
    _check_not_all_masked(selected)
    if distance is None:
        distance = galaxy_distance
    if distance is not None:
        distance = u.Quantity(distance, u.Mpc)

    steps = 5 + (stars is not None)
    with _progress(steps, progress) as bar:
        prepared = _prepare(selected, ebv=ebv, region=region)
        bar.update()
        if stars is not None:
            prepared = _mask_stars(prepared, stars, region=region)
            bar.update()
        aligned = _align(prepared, resolution=resolution, pixel_scale=pixel_scale,
                         distance=distance, parallel=parallel)
        bar.update()
        table = make_pixel_table(aligned, galaxy=name or 'galaxy', region=region,
                                 distance=distance)
        bar.update()
        # make_pixel_table records its grid (WCS as a header string) in the meta
        wcs, shape = _as_wcs(table.meta['wcs']), tuple(table.meta['shape'])
        flags, y, x = _pixel_flags(table, list(selected), shape)
        usable = (flags[y, x] & (MAP_FLAGS['MASKED_INPUT'] | MAP_FLAGS['MISSING_INPUT'])) == 0
        if len(table) == 0 or not usable.any():
            raise ValueError(
                'Every pixel is masked: no pixel has valid data in all input bands '
                f'({", ".join(selected)}) inside the galaxy region. Check the masks '
                'and footprints of the images, the galaxy= region and the star '
                'masks, or drop the band that covers too little.')
        prediction = _predict(dust_model, table)
        bar.update()
        maps, meta_flags = _make_maps(prediction, flags, y, x, wcs, shape)
        bar.update()

    n_valid = len(y)  # every row of the pixel table is inside the galaxy region
    ood = int(((meta_flags[y, x] & MAP_FLAGS['OUT_OF_DOMAIN']) != 0).sum())
    fraction = ood / max(n_valid, 1)
    if ood:
        warnings.warn(f'{fraction:.1%} of the galaxy pixels ({ood} of {n_valid}) lie '
                      'outside the training domain of the model (colours outside the '
                      'training range or too few bands); they are masked '
                      "(maps.meta['flags'] bit OUT_OF_DOMAIN).", OutOfDomainWarning)
    if not any((~m.mask).any() for m in maps.values()):
        raise ValueError('Every pixel is masked after prediction (out of the model '
                         'domain or no finite prediction); see the OutOfDomainWarning.')
    aligned_meta = getattr(aligned, 'meta', None) or {}
    meta = {
        'model': dict(getattr(dust_model, 'card', None) or {}),
        'model_name': model_name,
        'inputs': list(selected),
        'ignored_bands': ignored,
        'psf_fwhm': table.meta.get('psf_fwhm', aligned_meta.get('psf_fwhm')),
        'pixel_scale': aligned_meta.get('pixel_scale'),
        'distance': distance,
        'ebv': ebv,
        'galaxy': _galaxy_info(galaxy),
        'out_of_domain_fraction': fraction,
        'version': __version__,
    }
    members = []
    for name, ndd in maps.items():
        ndd.meta.update(meta)
        members.append((name, ndd))
    return NDCollection(members, aligned_axes='all', meta=dict(meta, flags=meta_flags))


def _predict(model, table):
    """``model.predict(table)`` as a QTable aligned with the pixel table rows."""
    with warnings.catch_warnings():
        # estimate_dust_maps issues its own warning, with the fraction of pixels
        warnings.simplefilter('ignore', OutOfDomainWarning)
        prediction = model.predict(table)
    if len(prediction) != len(table):
        raise RuntimeError(f'The model returned {len(prediction)} predictions for '
                           f'{len(table)} pixels; its predict() must return one row per '
                           'table row, as DustModel.predict does.')
    return prediction


def _make_maps(prediction, flags, y, x, wcs, shape):
    """The maps, keyed by target, and the MAP_FLAGS array completed by the prediction."""
    flags = flags.copy()
    ood = np.asarray(prediction['out_of_domain'], dtype=bool) \
        if 'out_of_domain' in prediction.colnames else np.zeros(len(y), bool)
    flags[y[ood], x[ood]] |= MAP_FLAGS['OUT_OF_DOMAIN']
    values = {}
    finite = np.ones(len(y), dtype=bool)
    targets = {name: unit for name, unit in TARGETS.items() if name in prediction.colnames}
    if not targets:
        raise ValueError(f'The model predicts none of {", ".join(TARGETS)}; use a model '
                         'trained on them (see astro_dustml.registry.list_models).')
    for name, unit in targets.items():
        value = u.Quantity(prediction[name]).to_value(unit)
        error = u.Quantity(prediction[f'{name}_err']).to_value(unit)
        finite &= np.isfinite(value) & np.isfinite(error)
        values[name] = (value, error)
    flags[y[~finite], x[~finite]] |= MAP_FLAGS['NO_PREDICTION']
    mask = flags != 0
    maps = {}
    for name, unit in targets.items():
        data = np.full(shape, np.nan)
        sigma = np.full(shape, np.nan)
        data[y, x], sigma[y, x] = values[name]
        maps[name] = CCDData(data, unit=unit, wcs=wcs.deepcopy(),
                             uncertainty=StdDevUncertainty(sigma), mask=mask.copy(),
                             meta={'quantity': name})
    return maps, flags


# FITS format ---------------------------------------------------------------


def _to_json(value):
    if isinstance(value, u.Quantity):
        return {'__quantity__': _to_json(value.value), 'unit': value.unit.to_string()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _from_json(value):
    if isinstance(value, dict):
        if set(value) == {'__quantity__', 'unit'}:
            return u.Quantity(value['__quantity__'], u.Unit(value['unit']))
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _meta_hdu(meta, name):
    text = json.dumps(_to_json({k: v for k, v in meta.items() if k != 'flags'}))
    return fits.BinTableHDU(Table({'json': [text]}), name=name)


def write_dust_maps(maps, path, *, overwrite=False):
    """
    Write dust maps to a multi-extension FITS file.

    Per map ``NAME`` three image extensions: ``NAME`` (values, ``BUNIT``
    and the WCS in the header), ``NAME_ERR`` (1-sigma uncertainty) and
    ``NAME_MASK`` (1 = masked); then ``FLAGS`` (bits of `MAP_FLAGS`) and
    ``META`` (a one-row table holding the metadata as JSON). Read back with
    `read_dust_maps`.

    Parameters
    ----------
    maps : `~ndcube.NDCollection` or mapping
        Output of `estimate_dust_maps`.
    path : str or path-like
        Output file.
    overwrite : bool, optional
        Replace an existing file.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.nddata import CCDData, StdDevUncertainty
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.estimate import read_dust_maps, write_dust_maps
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> td = CCDData(np.full((3, 3), 21.5), unit=u.K, wcs=wcs,
    ...              uncertainty=StdDevUncertainty(np.ones((3, 3))),
    ...              mask=np.eye(3, dtype=bool))
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), 'maps.fits')
    >>> write_dust_maps({'Td': td}, path)
    >>> back = read_dust_maps(path)
    >>> back['Td'].unit, bool(back['Td'].mask[1, 1])
    (Unit("K"), True)
    """
    hdus = [fits.PrimaryHDU()]
    primary = hdus[0].header
    primary['CONTENT'] = (_FORMAT, 'written by astro_dustml.write_dust_maps')
    primary['DMLVERS'] = (__version__, 'astro_dustml version')
    names = list(maps.keys())
    primary['MAPS'] = (','.join(names), 'map extensions')
    for name in names:
        ndd = maps[name]
        wcs_header = ndd.wcs.to_header(relax=True) if ndd.wcs is not None else fits.Header()
        header = wcs_header.copy()
        header['BUNIT'] = ndd.unit.to_string() if ndd.unit is not None else ''
        hdus.append(fits.ImageHDU(np.asarray(ndd.data), header=header, name=name))
        if ndd.uncertainty is not None:
            err = ndd.uncertainty.represent_as(StdDevUncertainty).array
            hdus.append(fits.ImageHDU(np.asarray(err), header=header, name=f'{name}_ERR'))
        if ndd.mask is not None:
            hdus.append(fits.ImageHDU(np.asarray(ndd.mask, dtype=np.uint8), header=wcs_header,
                                      name=f'{name}_MASK'))
        hdus.append(_meta_hdu(dict(ndd.meta or {}), f'{name}_META'))
    meta = dict(getattr(maps, 'meta', None) or {})
    if meta.get('flags') is not None:
        hdus.append(fits.ImageHDU(np.asarray(meta['flags'], dtype=np.int16), name='FLAGS'))
    hdus.append(_meta_hdu(meta, 'META'))
    fits.HDUList(hdus).writeto(path, overwrite=overwrite)


def _read_meta(hdul, name):
    if name not in hdul:
        return {}
    return _from_json(json.loads(hdul[name].data['json'][0]))


def read_dust_maps(path):
    """
    Read dust maps written by `write_dust_maps`.

    Parameters
    ----------
    path : str or path-like
        File to read.

    Returns
    -------
    maps : `~ndcube.NDCollection`
        The same maps, uncertainties, masks, WCS, units and metadata.
    """
    with fits.open(path) as hdul:
        if hdul[0].header.get('CONTENT') != _FORMAT:
            raise ValueError(f'{path} is not a dust-map file written by '
                             'astro_dustml.write_dust_maps (no CONTENT keyword).')
        names = [n for n in hdul[0].header['MAPS'].split(',') if n]
        members = []
        for name in names:
            header = hdul[name].header
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', fits.verify.VerifyWarning)
                wcs = WCS(header)
            err = (StdDevUncertainty(np.array(hdul[f'{name}_ERR'].data))
                   if f'{name}_ERR' in hdul else None)
            mask = (np.array(hdul[f'{name}_MASK'].data, dtype=bool)
                    if f'{name}_MASK' in hdul else None)
            members.append((name, CCDData(np.array(hdul[name].data),
                                          unit=u.Unit(header.get('BUNIT') or ''),
                                          wcs=wcs, uncertainty=err, mask=mask,
                                          meta=_read_meta(hdul, f'{name}_META'))))
        meta = _read_meta(hdul, 'META')
        if 'FLAGS' in hdul:
            meta['flags'] = np.array(hdul['FLAGS'].data)
    return NDCollection(members, aligned_axes='all', meta=meta)
