"""
The dust-map FITS file: self-describing headers, exact round trip.

`write_dust_maps` writes the output of
`~astro_dustml.maps.estimate_dust_maps` as one multi-extension FITS file
whose headers say, in standard readable keywords, which model made the maps
and from what (``fitsheader maps.fits`` shows it); `read_dust_maps` reads it
back exactly. `model_sha256` gives the identifier of a model written in the
``MODELSHA`` keyword.

Extensions, in order:

======================  ===============================================
``PRIMARY``             no data; provenance (model, inputs, galaxy, ...)
``NAME`` (per map)      values, ``BUNIT``, WCS, ``DESCRIP``
``NAME_ERR``            1-sigma uncertainty, same unit and WCS
``NAME_MASK``           1 = no valid estimate (uint8), WCS
``NAME_META``           the map's ``meta`` as JSON (one-row table)
``FLAGS``               why a pixel is masked (int16 bits), WCS; the bits
                        as ``FLAGn`` keywords
``MODELID``             which model predicted each pixel (int16; -1:
                        none): the ``MODNi`` (name), ``MODSHAi``
                        (SHA-256), ``MODPIXi``, ``MODHOWi`` of PRIMARY
``META``                the collection's ``meta`` as JSON, incl. the
                        full model card
======================  ===============================================
"""

import hashlib
import json
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.table import Table
from astropy.wcs import WCS
from ndcube import NDCollection

from .. import __version__
from ..imaging.prepare import _parse_galaxy
from ..model._integrity import _replacing_file

__all__ = ['write_dust_maps', 'read_dust_maps', 'model_sha256', 'MAP_DESCRIPTIONS',
           'FLAG_DESCRIPTIONS']


_FORMAT = 'astro_dustml dust maps'


#: What each map holds (``DESCRIP`` keyword of its extension).
MAP_DESCRIPTIONS = {
    'sLd': 'log10 specific dust luminosity Ldust/Mstar',
    'sMd': 'log10 specific dust mass Mdust/Mstar',
    'Td': 'dust temperature (THEMIS, DustPedia CIGALE scale)',
}


#: What each bit of the ``FLAGS`` extension means (``FLAGn`` keywords), by
#: name of `astro_dustml.maps.MAP_FLAGS`.
FLAG_DESCRIPTIONS = {
    'OUTSIDE': 'outside the galaxy ellipse or footprint',
    'MASKED_INPUT': 'an input band is masked (star, bad pixel)',
    'MISSING_INPUT': 'an input band has no data here',
    'OUT_OF_DOMAIN': 'out of the training domain, or too few bands',
    'NO_PREDICTION': 'the model returned no finite value',
}


def model_sha256(card):
    """
    SHA-256 of a saved model: the hash of its card file ``model.json``.

    The card lists the SHA-256 of every other file of the model (and holds
    its calibration), so this one hash identifies the whole model. It equals
    ``sha256sum model.json`` in the model folder and the ``model.json`` hash
    of the model's registry entry.

    Parameters
    ----------
    card : dict or `~astro_dustml.model.DustModel`
        A model card (``model.card`` or ``maps.meta['model']``), or a model.

    Returns
    -------
    sha256 : str or None
        64 hex digits; None for a model that was never saved (its card
        lists no files).

    Examples
    --------
    >>> from astro_dustml.maps import model_sha256
    >>> model_sha256({'name': 'unsaved'}) is None
    True
    """
    card = getattr(card, 'card', card) or {}
    if not card.get('files'):
        return None
    try:
        # DustModel.save writes the card with json.dumps(card, indent=2)
        text = json.dumps(card, indent=2)
    except TypeError:
        return None
    return hashlib.sha256(text.encode()).hexdigest()


# JSON of the metadata (exact round trip) -------------------------------------


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


def _meta_hdu(meta, name, what):
    text = json.dumps(_to_json({k: v for k, v in meta.items()
                                if k not in ('flags', 'model_id')}))
    hdu = fits.BinTableHDU(Table({'json': [text]}), name=name)
    _card(hdu.header, 'DESCRIP', f'{what} as JSON (read_dust_maps)', 'what this HDU holds')
    return hdu


def _read_meta(hdul, name):
    if name not in hdul:
        return {}
    return _from_json(json.loads(hdul[name].data['json'][0]))


# Header provenance -------------------------------------------------------------


def _value(quantity, unit):
    """A float in ``unit``, or None for a missing or unconvertible value."""
    if quantity is None:
        return None
    try:
        return float(u.Quantity(quantity).to_value(unit))
    except (TypeError, ValueError, u.UnitsError):
        return None


def _card(header, key, value, comment=''):
    """``header[key] = (value, comment)``, the comment cut to fit the 80-character card."""
    # A value with a comment takes at least 30 columns (keyword, '= ', 20 for the value)
    room = 80 - max(len(fits.Card(key, value).image.rstrip()), 30) - 3
    header[key] = (value, comment[:max(room, 0)])


def _set(header, key, value, comment):
    if value is not None:
        _card(header, key, value, comment)


def _galaxy_cards(header, galaxy):
    """Name and ellipse of the galaxy (``maps.meta['galaxy']``)."""
    if galaxy is None:
        return
    if isinstance(galaxy, str):
        _card(header, 'OBJECT', galaxy, 'galaxy name')
        return
    if not isinstance(galaxy, Mapping):
        return
    _set(header, 'OBJECT', galaxy.get('name'), 'galaxy name')
    try:
        _, region, _ = _parse_galaxy(galaxy)
    except (TypeError, ValueError):
        return
    if region is None:
        return
    center = region.center.icrs
    _card(header, 'GALRA', round(center.ra.deg, 7), '[deg] galaxy ellipse centre, ICRS RA')
    _card(header, 'GALDEC', round(center.dec.deg, 7), '[deg] galaxy ellipse centre, ICRS Dec')
    _card(header, 'GALSMA', round(region.width.to_value(u.arcsec) / 2, 4),
          '[arcsec] galaxy ellipse semi-major axis')
    _card(header, 'GALBA', round(float(region.height / region.width), 5),
          'galaxy ellipse axis ratio b/a')
    # regions' angle is from the RA axis; +90 deg gives the astronomical PA
    pa = (region.angle.to_value(u.deg) + 90.) % 180.
    _card(header, 'GALPA', round(pa, 4), '[deg] galaxy major axis PA, east of north')


def _model_cards(header, meta):
    card = meta.get('model') or {}
    name = meta.get('model_name') or card.get('name')
    _set(header, 'MODEL', name, 'astro_dustml model that made the maps')
    sha = model_sha256(card)
    if sha is not None:
        # 64 hex digits fill the card: no room for a comment
        header['MODELSHA'] = sha
        header.add_comment('MODELSHA = SHA-256 of the model card model.json, which '
                           'lists the SHA-256 of every model file')
    trained = (card.get('versions') or {}).get('astro_dustml')
    _set(header, 'MODELVER', trained, 'astro_dustml version that trained the model')
    models = meta.get('band_set_models') or []
    if models:
        _card(header, 'NMODELS', len(models), 'models that predicted pixels (MODELID)')
    for entry in models:
        i = int(entry['id'])
        _set(header, f'MODN{i}', entry.get('name'), f'model of MODELID = {i}')
        _set(header, f'MODPIX{i}', entry.get('n_pixels'), f'pixels predicted by model {i}')
        _set(header, f'MODHOW{i}', entry.get('how'), f'how model {i} was chosen')
        if entry.get('sha256'):
            header[f'MODSHA{i}'] = entry['sha256']


def _input_cards(header, meta):
    inputs = list(meta.get('inputs') or [])
    if inputs:
        _card(header, 'NINPUT', len(inputs), 'number of input bands used')
        for i, band in enumerate(inputs, 1):
            _card(header, f'INBAND{i}', band, f'input band {i}')
    for i, band in enumerate(meta.get('ignored_bands') or [], 1):
        _card(header, f'IGBAND{i}', band, 'given but not a model input: ignored')


def _primary_header(names, meta):
    header = fits.Header()
    _card(header, 'CONTENT', _FORMAT, 'written by astro_dustml.write_dust_maps')
    _card(header, 'ORIGIN', 'astro_dustml', 'software that wrote the file')
    _card(header, 'DMLVERS', __version__, 'astro_dustml version')
    _card(header, 'DATE', datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S'),
          'UTC date the file was written')
    _card(header, 'MAPS', ','.join(names), 'map extensions')
    _galaxy_cards(header, meta.get('galaxy'))
    _model_cards(header, meta)
    _input_cards(header, meta)
    _set(header, 'PSFFWHM', _value(meta.get('psf_fwhm'), u.arcsec),
         '[arcsec] PSF FWHM of the maps (matched inputs)')
    _set(header, 'PIXSCALE', _value(meta.get('pixel_scale'), u.arcsec),
         '[arcsec] pixel scale of the maps')
    _set(header, 'DISTANCE', _value(meta.get('distance'), u.Mpc), '[Mpc] galaxy distance')
    ebv = meta.get('ebv')
    _set(header, 'EBV', None if ebv is None else float(ebv),
         'Galactic E(B-V) used for the extinction correction')
    fraction = meta.get('out_of_domain_fraction')
    _set(header, 'OODFRAC', None if fraction is None else round(float(fraction), 5),
         'fraction of galaxy pixels out of model domain')
    noise = meta.get('photometric_noise')
    _set(header, 'PHOTNOIS', None if noise is None else bool(noise),
         'uncertainties include flux errors through model')
    return header


def _flag_cards(header):
    from .flags import MAP_FLAGS
    for name, bit in MAP_FLAGS.items():
        n = int(bit).bit_length() - 1
        _card(header, f'FLAG{n}', name, f'{bit}: {FLAG_DESCRIPTIONS.get(name, name)}')


def _map_header(name, ndd, wcs_header, kind):
    header = wcs_header.copy()
    what = MAP_DESCRIPTIONS.get(name, name)
    if kind == 'mask':
        _card(header, 'DESCRIP', f'1 = no valid {name} estimate (see FLAGS)'[:68],
              'what this HDU holds')
    else:
        header['BUNIT'] = ndd.unit.to_string() if ndd.unit is not None else ''
        text = what if kind == 'value' else f'1-sigma uncertainty of {name}'
        _card(header, 'DESCRIP', text[:68], 'what this HDU holds')
    _card(header, 'QUANTITY', name, 'dust property')
    _card(header, 'INHERIT', True, 'the primary header applies')
    return header


_STELLAR_MASS = 'stellar_mass'  # maps.meta key of the stellar-mass map (an extension)


def _map_hdus(name, ndd, hdus):
    """Append ``NAME``, ``NAME_ERR``, ``NAME_MASK`` and ``NAME_META`` of one map; its WCS header."""
    wcs_header = ndd.wcs.to_header(relax=True) if ndd.wcs is not None else fits.Header()
    hdus.append(fits.ImageHDU(np.asarray(ndd.data), name=name,
                              header=_map_header(name, ndd, wcs_header, 'value')))
    if ndd.uncertainty is not None:
        err = ndd.uncertainty.represent_as(StdDevUncertainty).array
        hdus.append(fits.ImageHDU(np.asarray(err), name=f'{name}_ERR',
                                  header=_map_header(name, ndd, wcs_header, 'error')))
    if ndd.mask is not None:
        hdus.append(fits.ImageHDU(np.asarray(ndd.mask, dtype=np.uint8),
                                  name=f'{name}_MASK',
                                  header=_map_header(name, ndd, wcs_header, 'mask')))
    hdus.append(_meta_hdu(dict(ndd.meta or {}), f'{name}_META', f'metadata of {name}'))
    return wcs_header


def _read_map(hdul, name):
    """The CCDData `_map_hdus` wrote as ``name``."""
    header = hdul[name].header
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', fits.verify.VerifyWarning)
        wcs = WCS(header)
    err = (StdDevUncertainty(np.array(hdul[f'{name}_ERR'].data))
           if f'{name}_ERR' in hdul else None)
    mask = (np.array(hdul[f'{name}_MASK'].data, dtype=bool)
            if f'{name}_MASK' in hdul else None)
    return CCDData(np.array(hdul[name].data), unit=u.Unit(header.get('BUNIT') or ''),
                   wcs=wcs, uncertainty=err, mask=mask, meta=_read_meta(hdul, f'{name}_META'))


def write_dust_maps(maps, path, *, overwrite=False):
    """
    Write dust maps to a self-describing multi-extension FITS file.

    The primary header holds the provenance in standard keywords: ``DATE``,
    ``DMLVERS`` (package version), ``MODEL`` and ``MODELSHA`` (the model's
    name and `~astro_dustml.maps.model_sha256`), ``MODELVER``, ``NINPUT``
    and ``INBAND1``... (the input bands), ``PSFFWHM`` and ``PIXSCALE``
    (arcsec), ``DISTANCE`` (Mpc), ``EBV``, ``OBJECT`` and the galaxy ellipse (``GALRA``, ``GALDEC``,
    ``GALSMA``, ``GALBA``, ``GALPA``), ``OODFRAC`` and ``PHOTNOIS``. Per map ``NAME``
    follow ``NAME`` (values, ``BUNIT``, WCS, ``DESCRIP``), ``NAME_ERR``
    (1-sigma uncertainty), ``NAME_MASK`` (1 = masked) and ``NAME_META`` (the
    map's metadata as JSON); then ``FLAGS`` (bits of
    `~astro_dustml.maps.MAP_FLAGS`, with the WCS and one ``FLAGn``
    keyword per bit ``2**n``), the stellar-mass map of ``maps.meta['stellar_mass']``
    (``STELLAR_MASS``, ``_ERR``, ``_MASK``, ``_META``) if there is one, and
    ``META`` (all other metadata, including the model card, as JSON). Read
    back with `read_dust_maps`.

    Parameters
    ----------
    maps : `~ndcube.NDCollection` or mapping
        Output of `~astro_dustml.maps.estimate_dust_maps`.
    path : str or path-like
        Output file.
    overwrite : bool, optional
        Replace an existing file -- only one that `write_dust_maps` wrote
        (its ``CONTENT`` keyword); any other file is left alone, with a
        `FileExistsError`. The new file is written beside it and swapped in
        when complete, so an interrupted write leaves the old one intact.

    Raises
    ------
    TypeError
        A map is not `~astropy.nddata.NDData` (e.g. a plain array).
    FileExistsError
        ``path`` exists and ``overwrite`` is False, or it is not a dust-map file.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.io import fits
    >>> from astropy.nddata import CCDData, NDData, StdDevUncertainty
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.maps import read_dust_maps, write_dust_maps
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> td = CCDData(np.full((3, 3), 21.5), unit=u.K, wcs=wcs,
    ...              uncertainty=StdDevUncertainty(np.ones((3, 3))),
    ...              mask=np.eye(3, dtype=bool))
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), 'maps.fits')
    >>> write_dust_maps({'Td': td}, path)
    >>> fits.getheader(path, 'Td')['DESCRIP']
    'dust temperature (THEMIS, DustPedia CIGALE scale)'
    >>> back = read_dust_maps(path)
    >>> back['Td'].unit, bool(back['Td'].mask[1, 1])
    (Unit("K"), True)
    """
    _check_maps(maps)
    names = list(maps.keys())
    meta = dict(getattr(maps, 'meta', None) or {})
    if not meta and names:
        # A plain mapping of maps: the provenance lives in each map's meta
        meta = dict(getattr(maps[names[0]], 'meta', None) or {})
    hdus = [fits.PrimaryHDU(header=_primary_header(names, meta))]
    wcs_header = fits.Header()
    for name in names:
        wcs_header = _map_hdus(name, maps[name], hdus)
    if meta.get('flags') is not None:
        # The maps share one grid: the last map's WCS is the flags' WCS
        header = wcs_header.copy()
        _card(header, 'DESCRIP', 'why a pixel is masked: OR of the FLAGn bits',
              'what this HDU holds')
        _flag_cards(header)
        _card(header, 'INHERIT', True, 'the primary header applies')
        hdus.append(fits.ImageHDU(np.asarray(meta['flags'], dtype=np.int16), name='FLAGS',
                                  header=header))
    if meta.get('model_id') is not None:
        header = wcs_header.copy()
        _card(header, 'DESCRIP', 'model of each pixel (MODNi in PRIMARY), -1: none',
              'what this HDU holds')
        _card(header, 'INHERIT', True, 'the primary header applies')
        hdus.append(fits.ImageHDU(np.asarray(meta['model_id'], dtype=np.int16),
                                  name='MODELID', header=header))
    if isinstance(meta.get(_STELLAR_MASS), NDData):  # estimate_dust_maps' M* map
        _map_hdus(_STELLAR_MASS, meta.pop(_STELLAR_MASS), hdus)
    hdus.append(_meta_hdu(meta, 'META', 'metadata of the maps and the model card'))
    with _replacing_file(path, overwrite=overwrite, is_ours=_is_dust_map_file,
                         what='a dust-map file of write_dust_maps') as partial:
        fits.HDUList(hdus).writeto(partial)


def _check_maps(maps):
    """Dust maps must be NDData (as estimate_dust_maps returns), keyed by name."""
    if not callable(getattr(maps, 'keys', None)):
        raise TypeError(f'maps must be an NDCollection or a mapping of map name to NDData '
                        f'(as estimate_dust_maps returns), not {type(maps).__name__}.')
    for name in maps.keys():
        if not isinstance(maps[name], NDData):
            raise TypeError(
                f'Map {name!r} is a {type(maps[name]).__name__}, not NDData: write_dust_maps '
                'writes each map with its unit, WCS, uncertainty and mask, as '
                'estimate_dust_maps returns them. Wrap a plain array first, e.g. '
                "CCDData(array, unit='K', wcs=wcs, uncertainty=StdDevUncertainty(error)).")


def _is_dust_map_file(path):
    """Whether ``path`` is a dust-map file that `write_dust_maps` wrote."""
    try:
        return fits.getheader(path, 0).get('CONTENT') == _FORMAT
    except (OSError, ValueError, IndexError, TypeError):
        return False


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
        The same maps, uncertainties, masks, WCS, units and metadata
        (``maps.meta['flags']`` from the ``FLAGS`` extension).

    Raises
    ------
    ValueError
        The file was not written by `write_dust_maps`.
    """
    with fits.open(path) as hdul:
        if hdul[0].header.get('CONTENT') != _FORMAT:
            raise ValueError(f'{path} is not a dust-map file written by '
                             'astro_dustml.write_dust_maps (no CONTENT keyword).')
        names = [n for n in hdul[0].header['MAPS'].split(',') if n]
        members = [(name, _read_map(hdul, name)) for name in names]
        meta = _read_meta(hdul, 'META')
        if 'FLAGS' in hdul:
            meta['flags'] = np.array(hdul['FLAGS'].data)
        if 'MODELID' in hdul:
            meta['model_id'] = np.array(hdul['MODELID'].data, dtype=np.int16)
        if _STELLAR_MASS.upper() in hdul:
            meta[_STELLAR_MASS] = _read_map(hdul, _STELLAR_MASS.upper())
    return NDCollection(members, aligned_axes='all', meta=meta)
