"""
From UV–MIR images to dust maps in one call.

`estimate_dust_maps` chains the public steps of the package (see the
Architecture page): `~astro_dustml.imaging.prepare_images` -> optional
foreground-star masking (`~astro_dustml.imaging.mask_foreground_stars`) ->
`~astro_dustml.imaging.align_images` (together: ``imaging.chain``) ->
`~astro_dustml.sed.make_pixel_table` -> ``DustModel.predict`` -> maps.
Each step is also usable on its own.

The output is an `~ndcube.NDCollection` with members ``sLd``, ``sMd`` (dex)
and ``Td`` (K), each a `~astropy.nddata.CCDData` on the common WCS with a
`~astropy.nddata.StdDevUncertainty` (the model's per-pixel sigma) and a
boolean mask. ``maps.meta['flags']`` says why a pixel is masked (bits of
`~astro_dustml.maps.MAP_FLAGS`).

Uses `astro_dustml.imaging`, `astro_dustml.sed`, `astro_dustml.model` and
``maps.flags``.
"""

import warnings
from collections.abc import Mapping

import astropy.units as u
import numpy as np
from astropy.nddata import CCDData, StdDevUncertainty
from ndcube import NDCollection

from .. import __version__, conf
from .._checks import _galaxy_distance, _positive_quantity
from ..bands import INPUT_BANDS, REFERENCE_BAND, get_band
from ..exceptions import AstroDustMLWarning, OutOfDomainWarning
from ..farinfrared.stellar_mass import stellar_mass_map
from ..imaging import stars as _stars
from ..imaging.chain import (
    _align,
    _check_not_all_masked,
    _check_overlap,
    _check_reference,
    _coverage,
    _drop_uninformative,
    _foreground_stars,
    _prepare,
    _prepare_align_by_band,
    _progress,
    _sign_flipped,
)
from ..imaging.io import _parse_collection, _subset
from ..imaging.prepare import _extinction, _parse_galaxy
from ..model.band_set_routing import predict_by_band_set
from ..model.core import DustModel
from ..model.features import valid_bands
from ..model.registry import get_model
from ..sed.flags import FLAG_MASKED, FLAG_MISSING
from ..sed.tables import _as_wcs, make_pixel_table
from .flags import MAP_FLAGS, TARGETS
from .io import model_sha256

__all__ = ['estimate_dust_maps']


# What runs before each update of estimate_dust_maps' progress bar
_STEPS = ['preparing, PSF-matching and reprojecting the images', 'building the pixel table',
          'predicting', 'making the maps']


def _select_bands(parsed, model_bands):
    """Keep the model's input bands."""
    ignored = [b for b in parsed if b not in model_bands]
    if ignored:
        warnings.warn(f'Ignoring {", ".join(ignored)}: not an input band of the model '
                      f'(inputs: {", ".join(model_bands)}).', AstroDustMLWarning)
    return _subset(parsed, [b for b in parsed if b in model_bands]), ignored


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


def _check_numbers(distance, pixel_scale, resolution):
    """Distance, pixel scale and resolution checked at the boundary (finite, > 0)."""
    if distance is not None:
        distance = _galaxy_distance(distance)
    if pixel_scale is not None:
        pixel_scale = _positive_quantity(pixel_scale, 'pixel_scale', ('angle', 'length'),
                                         example='8 * u.arcsec or 400 * u.pc')
    if resolution is not None and not isinstance(resolution, str):
        resolution = _positive_quantity(resolution, 'resolution', ('angle', 'length'),
                                        example='18 * u.arcsec, 1 * u.kpc or a band name')
    for name, value in (('pixel_scale', pixel_scale), ('resolution', resolution)):
        if (isinstance(value, u.Quantity) and value.unit.physical_type == 'length'
                and distance is None):
            raise ValueError(f'{name} is a physical length ({value}); give the distance '
                             '(distance=) to turn it into an angle.')
    return distance, pixel_scale, resolution


def _check_arguments(images, *, galaxy, distance, pixel_scale, resolution, ebv=None):
    """Checks before any image is read: ``(name, region, distance, pixel_scale, resolution)``."""
    name, region, galaxy_distance = _parse_galaxy(galaxy)
    _extinction(get_band(REFERENCE_BAND), ebv, None)  # a scalar E(B-V), checked once here
    distance, pixel_scale, resolution = _check_numbers(
        galaxy_distance if distance is None else distance, pixel_scale, resolution)
    if isinstance(images, Mapping):  # the bands are known before any image is read
        _check_reference({get_band(key).name: None for key in images})
    return name, region, distance, pixel_scale, resolution


def _uncovered_bands(table, bands):
    """``{band: reason}`` of bands with no usable pixel in the pixel table."""
    out = {}
    for band in bands:
        col = f'{band}_flag'
        if col in table.colnames and len(table) and np.all(
                np.asarray(table[col]) & (FLAG_MASKED | FLAG_MISSING)):
            out[band] = 'no data inside the galaxy region'
    return out


def _warn_unused(unused):
    if unused:
        what = '; '.join(f'{band}: {why}' for band, why in unused.items())
        warnings.warn(f'Left out {", ".join(unused)} ({what}): treated as missing, the maps '
                      "are estimated without them (maps.meta['unused_bands']). Check those "
                      'images if they should have been used.', AstroDustMLWarning)


def _valid_counts(table, bands, model):
    """Pixels with each band usable, and the most usable bands of one pixel."""
    valid = valid_bands(table, bands=bands, min_snr=getattr(model, 'min_snr', None))
    return dict(zip(bands, valid.sum(axis=0))), int(valid.sum(axis=1).max()) if len(valid) else 0


def _colour_outliers(model, table, *, far=0.5):
    """
    ``[(band, excess_dex)]`` of bands whose colour with WISE 3.4 µm lies ``far`` outside training.

    The excess is the median over the pixels of how far ``log10(band /
    WISE_3.4)`` lies beyond the model's training range (positive: above,
    negative: below), largest first. Empty for a model without those features.
    """
    names = getattr(model, 'features_', None)
    lo, hi = getattr(model, 'feature_min_', None), getattr(model, 'feature_max_', None)
    if names is None or lo is None or hi is None or not hasattr(model, '_features'):
        return []
    try:
        X = model._features(table)[0]
    except (KeyError, ValueError, TypeError):
        return []
    out = []
    for k, name in enumerate(names):
        band, _, ref = name[4:].partition('/') if name.startswith('log_') else ('', '', '')
        if ref != REFERENCE_BAND:
            continue
        x = X[:, k][np.isfinite(X[:, k])]
        if x.size == 0:
            continue
        excess = np.median(np.where(x > hi[k], x - hi[k], np.where(x < lo[k], x - lo[k], 0)))
        if abs(excess) > far:
            out.append((band, float(excess)))
    return sorted(out, key=lambda item: -abs(item[1]))


def _describe_outliers(outliers, n_colours):
    """The reason `_explain_all_masked` gives for `_colour_outliers`."""
    signs = {np.sign(e) for _, e in outliers}
    if len(outliers) >= max(3, 2 * n_colours // 3) and len(signs) == 1:
        median = float(np.median([e for _, e in outliers]))
        return (f'the colours of {len(outliers)} of {n_colours} bands with {REFERENCE_BAND} '
                f'all lie {abs(median):.1f} dex {"above" if median > 0 else "below"} the '
                f'training range: the {REFERENCE_BAND} values look '
                f'{"too low" if median > 0 else "too high"} by at least a factor of about '
                f'{10 ** abs(median):.2g}; check its unit (units=, --units)')
    what = ', '.join(f'{band} ({abs(e):.1f} dex {"above" if e > 0 else "below"} it: '
                     f'{"too high" if e > 0 else "too low"} by at least a factor of about '
                     f'{10 ** abs(e):.2g})' for band, e in outliers)
    return (f'the colours with {REFERENCE_BAND} of {what} lie far outside the training '
            'range (median over the pixels): check the unit of those images (units=, '
            '--units; e.g. Jy/pix read as DN), or leave them out')


def _explain_all_masked(counts, most, bands, model, ebv, table=None):
    """Why no pixel got a prediction (``_valid_counts``): bands, the model's needs, E(B-V)."""
    reasons = []
    outliers = [] if table is None else _colour_outliers(model, table)
    if outliers:
        n_colours = sum(1 for b in bands if b != REFERENCE_BAND and counts.get(b))
        reasons.append(_describe_outliers(outliers, max(n_colours, len(outliers))))
    min_bands = getattr(model, 'min_bands', None)
    card = getattr(model, 'card', None) or {}
    core = list(getattr(model, 'core_bands_', None) or card.get('core_bands') or [])
    empty = [b for b, n in counts.items() if n == 0]
    if empty:
        reasons.append(f'{", ".join(empty)} has no pixel above the minimum signal-to-noise '
                       'or with positive flux')
    if min_bands is not None and most < min_bands:
        reasons.append(f'the model needs {REFERENCE_BAND} and at least {min_bands} usable '
                       f'bands per pixel, but the pixels have at most {most} '
                       f'(usable: {", ".join(b for b in bands if counts[b]) or "none"})')
    missing_core = [b for b in core if counts.get(b, 0) == 0]
    if missing_core:
        reasons.append(f'its core bands are {", ".join(core)}; missing here: '
                       f'{", ".join(missing_core)}')
    ebv_value = None if ebv is None else u.Quantity(ebv, u.mag).to_value(u.mag)
    if ebv_value is not None and ebv_value > 1:
        reasons.append(f'E(B-V) = {ebv_value:g} mag is absurd for Galactic foreground '
                       'extinction (it is below ~0.5 mag away from the Galactic plane) and '
                       'pushes the colours out of the training domain')
    if not reasons:
        reasons.append('the colours lie outside the training range of the model: check the '
                       'units of the images (units=, --units) and E(B-V)')
    return ('Every pixel is masked after prediction: ' + '; '.join(reasons) + '. Add the '
            'missing bands, fix the values named, or use a model trained on these bands '
            '(astro_dustml.model.registry.list_models).')


def _pixel_flags(table, bands, shape, covered=None):
    """
    Per-pixel MAP_FLAGS from the pixel table's band flags.

    ``covered`` (band -> boolean map of the pixels on that band's image): a
    band without data outside its image is MISSING_INPUT there (the pixel is
    predicted from the other bands); masked or NaN on its image is
    MASKED_INPUT (a foreground star or bad pixel: the pixel is masked).
    """
    flags = np.full(shape, MAP_FLAGS['OUTSIDE'], dtype=np.int16)
    y, x = np.asarray(table['y'], int), np.asarray(table['x'], int)
    row_flags = np.zeros(len(table), dtype=np.int16)
    for band in bands:
        col = f'{band}_flag'
        if col not in table.colnames:
            continue
        bits = np.asarray(table[col], dtype=int)
        on_image = np.ones(len(table), bool) if covered is None else covered[band][y, x]
        no_data = (bits & (FLAG_MASKED | FLAG_MISSING)) != 0
        row_flags |= np.where(no_data & on_image, MAP_FLAGS['MASKED_INPUT'], 0).astype(np.int16)
        row_flags |= np.where(no_data & ~on_image, MAP_FLAGS['MISSING_INPUT'],
                              0).astype(np.int16)
    flags[y, x] = row_flags
    return flags, y, x


def estimate_dust_maps(images, *, model=None, distance=None, ebv=None, galaxy=None,
                       stars=None, resolution=None, pixel_scale=None, bands=None,
                       units=None, progress=True, parallel=False, band_sets=None):
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
        A model name (`~astro_dustml.model.registry.list_models`), a saved model
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
    units : dict, optional
        Band name -> unit of the images that carry none (no unit attribute,
        ``BUNIT``/``SIGUNIT``, or ``MAGZP`` for AllWISE and 2MASS Atlas
        files); without it such an image is read in its band's native survey
        unit, with a warning.
    progress : bool, optional
        Show a progress bar (on a terminal).
    parallel : bool or int, optional
        Threads for PSF matching and alignment (see
        `~astro_dustml.imaging.align_images`): False for one, True for all
        cores, or a number. The maps do not depend on it.
    band_sets : bool, optional
        Predict each pixel with the band-set model of exactly its usable
        bands (`~astro_dustml.model.band_sets.predict_by_band_set`; pixels
        with every band keep ``model``); False for ``model`` everywhere (band
        dropout). Default: ``conf.band_sets`` when ``model`` is the default
        model (``conf.default_model``), else False. Only for a
        `~astro_dustml.model.DustModel`.

    Returns
    -------
    maps : `~ndcube.NDCollection`
        ``sLd``, ``sMd`` (u.dex) and ``Td`` (u.K) as
        `~astropy.nddata.CCDData` with the common WCS,
        `~astropy.nddata.StdDevUncertainty` and mask (True = no valid
        estimate). ``maps.meta`` holds ``flags`` (int array, bits of
        `~astro_dustml.maps.MAP_FLAGS`), ``model`` (the model card),
        ``model_name``, ``inputs`` (the bands really used), ``ignored_bands``
        (not model inputs), ``unused_bands`` (band -> why it was left out: all zero,
        constant, sign-flipped, or no data inside the galaxy), ``psf_fwhm``,
        ``pixel_scale``, ``distance``, ``ebv``, ``galaxy``,
        ``out_of_domain_fraction``, ``photometric_noise`` (whether the
        uncertainties include the flux errors propagated through the model:
        ``conf.photometric_noise``, for models trained on global
        photometry), ``version``, ``band_set_models`` (per
        model that predicted pixels: ``id``, ``name``, ``sha256``, ``bands``,
        ``how``, ``patterns``, ``n_pixels``), ``model_id`` (int array: the
        ``id`` of the model of each pixel, -1 where none) and ``stellar_mass`` (the
        stellar mass per pixel on the maps' grid, a `~astropy.nddata.CCDData`
        in solMass from the WISE 3.4 and 4.6 µm images as the maps saw them,
        by `~astro_dustml.farinfrared.stellar_mass_map`; None without a
        distance); each map's ``meta`` the same without ``flags``,
        ``model_id`` and ``stellar_mass``. `~astro_dustml.farinfrared.predict_fir_maps`,
        `~astro_dustml.farinfrared.constrain_to_lowres` and
        `~astro_dustml.training.global_from_pixels` take the stellar mass
        from there.

    Raises
    ------
    ValueError
        No WISE 3.4 µm image, an image without WCS, an unknown band, an
        unknown model name, a galaxy that is not on the images, a
        non-positive or non-finite distance, pixel scale or resolution, or no
        pixel left to predict (the message names the cause).

    Warns
    -----
    ~astro_dustml.exceptions.AstroDustMLWarning
        A band is all zero, constant or sign-flipped, or has no data inside
        the galaxy: it is left out (``meta['unused_bands']``). Pixels with
        absurd values are masked. A band that covers only part of the galaxy
        is missing there (flag ``MISSING_INPUT``); the pixels are still
        predicted from the other bands.
    ~astro_dustml.exceptions.OutOfDomainWarning
        Some pixels lie outside the model's training domain (they are
        masked); the message gives the fraction.

    Examples
    --------
    Without WISE 3.4 µm there is nothing to normalise by:

    >>> import numpy as np
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.maps import estimate_dust_maps
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> estimate_dust_maps({'WISE_12': (np.ones((5, 5)), wcs)})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: No WISE 3.4 µm (WISE_3.4) image among the inputs (WISE_12). ...
    """
    name, region, distance, pixel_scale, resolution = _check_arguments(
        images, galaxy=galaxy, distance=distance, pixel_scale=pixel_scale,
        resolution=resolution, ebv=ebv)
    parsed = _parse_collection(images, bands=bands, units=units)
    _check_reference(parsed)
    dust_model, model_name = _resolve_model(model)
    selected, ignored = _select_bands(parsed, _model_bands(dust_model))
    _check_not_all_masked(selected)
    selected, unused = _drop_uninformative(selected)
    _check_overlap(selected)

    if stars is not None:
        stars = _foreground_stars(selected[REFERENCE_BAND], stars, region=region)
    with _progress(len(_STEPS), progress, steps=_STEPS) as bar:
        staged = _prepare_align_by_band(
            selected, ebv=ebv, region=region, resolution=resolution,
            pixel_scale=pixel_scale, distance=distance, stars=stars, parallel=parallel)
        if staged is not None:
            prepared, aligned, flipped = staged
            unused.update(flipped)
        else:
            prepared = _prepare(selected, ebv=ebv, region=region)
            flipped = _sign_flipped(prepared, region)
            if flipped:
                unused.update(flipped)
                prepared = NDCollection([(b, im) for b, im in prepared.items()
                                         if b not in flipped], meta=prepared.meta)
            if stars is not None:
                prepared, _ = _stars.mask_foreground_stars(prepared, stars, select=False)
            aligned = _align(prepared, resolution=resolution, pixel_scale=pixel_scale,
                             distance=distance, parallel=parallel)
        bar.update()
        table = make_pixel_table(aligned, galaxy=name or 'galaxy', region=region,
                                 distance=distance)
        bar.update()
        # make_pixel_table records its grid (WCS as a header string) in the meta
        wcs, shape = _as_wcs(table.meta['wcs']), tuple(table.meta['shape'])
        used = [b for b in prepared.keys() if b in selected]
        flags, y, x = _pixel_flags(table, used, shape, _coverage(prepared, wcs, shape))
        uncovered = _uncovered_bands(table, used)
        unused.update(uncovered)
        used = [b for b in used if b not in uncovered]
        _warn_unused(unused)
        _check_reference_covered(len(table), uncovered)
        _warn_surface_brightness(aligned[REFERENCE_BAND], y, x)
        prediction, model_id, band_set_models = _predict(
            dust_model, table, model_name=model_name, band_sets=band_sets)
        bar.update()
        maps, meta_flags = _make_maps(prediction, flags, y, x, wcs, shape)
        bar.update()

    # every row of the pixel table is inside the galaxy region
    fraction = _warn_out_of_domain(
        int(((meta_flags[y, x] & MAP_FLAGS['OUT_OF_DOMAIN']) != 0).sum()), len(y))
    if not any((~m.mask).any() for m in maps.values()):
        raise ValueError(_explain_all_masked(*_valid_counts(table, used, dust_model), used,
                                             dust_model, ebv, table=table))
    aligned_meta = getattr(aligned, 'meta', None) or {}
    meta = _maps_meta(dust_model, model_name, used=used, ignored=ignored, unused=unused,
                      psf_fwhm=table.meta.get('psf_fwhm', aligned_meta.get('psf_fwhm')),
                      pixel_scale=aligned_meta.get('pixel_scale'), distance=distance,
                      ebv=ebv, galaxy=galaxy, fraction=fraction)
    meta['band_set_models'] = band_set_models
    id_map = np.full(shape, -1, np.int16)
    id_map[y, x] = model_id
    members = []
    for name, ndd in maps.items():
        ndd.meta.update(meta)
        members.append((name, ndd))
    return NDCollection(members, aligned_axes='all',
                        meta=dict(meta, flags=meta_flags, model_id=id_map,
                                  stellar_mass=_stellar_mass(aligned, wcs, distance,
                                                             meta['psf_fwhm'])))


def _stellar_mass(aligned, wcs, distance, psf_fwhm):
    """
    ``maps.meta['stellar_mass']``: M* per pixel on the maps' grid, or None without a distance.

    From the WISE 3.4 (and 4.6) µm images as the chain left them (prepared,
    star-masked, PSF-matched and on the maps' grid), so that
    `~astro_dustml.farinfrared.predict_fir_maps`,
    `~astro_dustml.farinfrared.constrain_to_lowres` and
    `~astro_dustml.training.global_from_pixels` can use it as it is.
    """
    if distance is None:
        return None
    wise = {b: aligned[b] for b in (REFERENCE_BAND, 'WISE_4.6') if b in aligned}
    mass = stellar_mass_map(wise, distance=distance)
    # exactly the maps' WCS (the grid is the same), and the maps' PSF
    return CCDData(mass.data, unit=mass.unit, wcs=wcs.deepcopy(), mask=mass.mask,
                   uncertainty=mass.uncertainty,
                   meta=dict(mass.meta, psf_fwhm=psf_fwhm))


def _check_reference_covered(n_rows, uncovered):
    if n_rows == 0 or REFERENCE_BAND in uncovered:
        raise ValueError(
            'Every pixel is masked: no pixel inside the galaxy region has valid WISE '
            '3.4 µm data (the reference band every prediction needs). Check the '
            'WISE 3.4 µm mask and footprint, the galaxy= region and the star masks.')


# Median WISE 3.4 µm surface brightness of the galaxy pixels of a galaxy, in
# MJy/sr: 1e-4 to 1e3 MJy/sr is 28 to 10 Vega mag/arcsec^2 (a bright nucleus is
# about 16, the faintest outskirts the training set measured about 24). Colours
# do not change when every band has the same wrong unit; intensities do.
_W1_SURFACE_BRIGHTNESS = (1e-4, 1e3)


def _warn_surface_brightness(reference, y, x):
    """Warn when the galaxy's WISE 3.4 µm surface brightness is far outside any galaxy's."""
    values = np.asarray(reference.data)[y, x]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    median = float(np.median(values))
    low, high = _W1_SURFACE_BRIGHTNESS
    if not low <= median <= high:
        warnings.warn(
            f'The galaxy pixels of {REFERENCE_BAND} have a median surface brightness of '
            f'{median:.3g} {reference.unit}, far outside that of any galaxy in the training '
            f'set ({low:g} to {high:g} {reference.unit}, 28 to 10 mag/arcsec^2): the units of '
            'the images are probably wrong (all bands alike, since the colours look '
            'normal). Check the units (units=, --units, BUNIT); the maps are estimated from '
            'the colours, which a shared unit error leaves unchanged.', OutOfDomainWarning)


def _warn_out_of_domain(ood, n_valid):
    """Warn about ``ood`` of ``n_valid`` galaxy pixels out of domain; return the fraction."""
    fraction = ood / max(n_valid, 1)
    if ood:
        warnings.warn(f'{fraction:.1%} of the galaxy pixels ({ood} of {n_valid}) lie '
                      'outside the training domain of the model (colours outside the '
                      'training range or too few bands); they are masked '
                      "(maps.meta['flags'] bit OUT_OF_DOMAIN).", OutOfDomainWarning)
    return fraction


def _maps_meta(model, model_name, *, used, ignored, unused, psf_fwhm, pixel_scale, distance,
               ebv, galaxy, fraction):
    """``maps.meta`` without the flags."""
    return {
        'model': dict(getattr(model, 'card', None) or {}),
        'model_name': model_name,
        'inputs': used,
        'ignored_bands': ignored,
        'unused_bands': unused,
        'psf_fwhm': psf_fwhm,
        'pixel_scale': pixel_scale,
        'distance': distance,
        'ebv': ebv,
        'galaxy': _galaxy_info(galaxy),
        'out_of_domain_fraction': fraction,
        'photometric_noise': isinstance(model, DustModel) and _photometric_noise(model),
        'version': __version__,
    }


def _map_mask(flags):
    """Masked map pixels from MAP_FLAGS."""
    # A band missing at a pixel (partial coverage) is flagged, not masked: the
    # model predicts from the other bands there (or flags it out of domain)
    return (flags & ~MAP_FLAGS['MISSING_INPUT']) != 0


def _photometric_noise(model):
    """
    Whether the pixels' flux errors join the model's sigma (``conf.photometric_noise``).

    Only for a model trained on global photometry, one row per galaxy: its
    sigma knows fluxes of high signal-to-noise ratio only. A model trained on
    pixels learned their noise into its sigma.
    """
    training = (getattr(model, 'card', None) or {}).get('training', {})
    n_rows, n_galaxies = training.get('n_rows'), training.get('n_galaxies')
    return bool(conf.photometric_noise) and n_galaxies is not None and n_rows == n_galaxies


def _predict(model, table, *, model_name=None, band_sets=None):
    """
    The prediction of every pixel-table row, the model id of each, and the models.

    With band sets (`~astro_dustml.model.band_sets.predict_by_band_set`) each
    pattern of usable bands has its model; else ``model.predict(table)``.
    """
    if band_sets is None:
        # the band-set models are trained like the default model: another
        # model (e.g. on pcigale fluxes) keeps its own predictions unless asked
        band_sets = conf.band_sets and model_name == conf.default_model
    ours = isinstance(model, DustModel)
    noise = {'photometric_noise': _photometric_noise(model)} if ours else {}
    with warnings.catch_warnings():
        # estimate_dust_maps issues its own warning, with the fraction of pixels
        warnings.simplefilter('ignore', OutOfDomainWarning)
        if band_sets and ours:
            prediction, model_id, models = predict_by_band_set(
                model, table, default_name=model_name, n_jobs=getattr(model, 'n_jobs', 1),
                **noise)
        else:
            prediction = model.predict(table, **noise)
            card = dict(getattr(model, 'card', None) or {})
            model_id = np.zeros(len(table), np.int16)
            models = [{'id': 0, 'name': model_name, 'bands': list(_model_bands(model)),
                       'card': card, 'how': 'default', 'patterns': [],
                       'n_pixels': int(len(table))}]
    if len(prediction) != len(table):
        raise RuntimeError(f'The model returned {len(prediction)} predictions for '
                           f'{len(table)} pixels; its predict() must return one row per '
                           'table row, as DustModel.predict does.')
    for entry in models:
        entry['sha256'] = model_sha256(entry.pop('card'))
    return prediction, model_id, models


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
                         'trained on them (see astro_dustml.model.registry.list_models).')
    for name, unit in targets.items():
        value = u.Quantity(prediction[name]).to_value(unit)
        error = u.Quantity(prediction[f'{name}_err']).to_value(unit)
        finite &= np.isfinite(value) & np.isfinite(error)
        values[name] = (value, error)
    flags[y[~finite], x[~finite]] |= MAP_FLAGS['NO_PREDICTION']
    mask = _map_mask(flags)
    maps = {}
    for name, unit in targets.items():
        data = np.full(shape, np.nan)
        sigma = np.full(shape, np.nan)
        data[y, x], sigma[y, x] = values[name]
        maps[name] = CCDData(data, unit=unit, wcs=wcs.deepcopy(),
                             uncertainty=StdDevUncertainty(sigma), mask=mask.copy(),
                             meta={'quantity': name})
    return maps, flags
