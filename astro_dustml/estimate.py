"""
From UV–MIR images to dust maps in one call, and the dust-map FITS format.

`estimate_dust_maps` chains the public steps of the package (see DESIGN):
`~astro_dustml.prepare.prepare_images` -> optional foreground-star masking
(`astro_dustml.stars`) -> `~astro_dustml.align.align_images` ->
`~astro_dustml.sed.make_pixel_table` -> ``DustModel.predict`` -> maps.
Each step is also usable on its own. Without star masking, the bands go
through preparation, PSF matching and reprojection one at a time (the
target PSF and grid are planned from the headers first), so that the
memory peak stays below three times the input image stack.

The output is an `~ndcube.NDCollection` with members ``sLd``, ``sMd`` (dex)
and ``Td`` (K), each a `~astropy.nddata.CCDData` on the common WCS with a
`~astropy.nddata.StdDevUncertainty` (the model's per-pixel sigma) and a
boolean mask. ``maps.meta['flags']`` says why a pixel is masked (bits of
`MAP_FLAGS`).
"""

import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from types import SimpleNamespace

import astropy.units as u
import numpy as np
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.utils.console import ProgressBar
from ndcube import NDCollection

from . import __version__, conf
from . import stars as _stars
from ._checks import _positive_quantity
from .align import _match_one, _plan, _reproject, align_images
from .bands import INPUT_BANDS, REFERENCE_BAND, get_band
from .dustmap_io import read_dust_maps, write_dust_maps
from .exceptions import AstroDustMLWarning, OutOfDomainWarning
from .features import valid_bands
from .io import _parse_collection
from .prepare import OUTPUT_UNIT, _inside, _parse_galaxy, _sky_circle, prepare_images
from .psf import _workers
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
    'MISSING_INPUT': 4,  # off the image of a band given as input (still predicted)
    'OUT_OF_DOMAIN': 8,  # colours outside the training range, or too few bands
    'NO_PREDICTION': 16,  # the model returned no finite value
}


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


def _check_numbers(distance, pixel_scale, resolution):
    """Distance, pixel scale and resolution checked at the boundary (finite, > 0)."""
    if distance is not None:
        distance = _positive_quantity(distance, 'distance', 'length', default_unit=u.Mpc,
                                      example='10 * u.Mpc').to(u.Mpc)
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


def _check_arguments(images, *, galaxy, distance, pixel_scale, resolution):
    """Checks before any image is read: ``(name, region, distance, pixel_scale, resolution)``."""
    name, region, galaxy_distance = _parse_galaxy(galaxy)
    distance, pixel_scale, resolution = _check_numbers(
        galaxy_distance if distance is None else distance, pixel_scale, resolution)
    if isinstance(images, Mapping):  # the bands are known before any image is read
        _check_reference({get_band(key).name: None for key in images})
    return name, region, distance, pixel_scale, resolution


def _drop_uninformative(images):
    """
    Leave out bands whose pixels are all zero or all equal (no information).

    Returns the kept images and ``{band: reason}``; the reference band cannot
    be left out, so an uninformative one is an error.
    """
    unused = {}
    for band, image in images.items():
        values = np.asarray(image.data)[_usable(image)]
        if values.size and np.ptp(values) == 0:
            unused[band] = ('all zero' if values[0] == 0
                            else f'constant (every pixel {values[0]:.6g})')
    if REFERENCE_BAND in unused:
        raise ValueError(f'The {REFERENCE_BAND} image is {unused[REFERENCE_BAND]}: it carries '
                         'no signal, and WISE 3.4 µm is the reference band every '
                         'prediction needs. Check that the right file or array was given.')
    return {b: im for b, im in images.items() if b not in unused}, unused


def _sign_flipped(prepared, region):
    """
    ``{band: reason}`` of prepared bands whose significant signal is negative.

    A sky-subtracted galaxy is positive; when the significant (> 3 sigma)
    pixels sum to a negative total, the map is sign-flipped (or a
    difference image), and every colour with it would be wrong.
    """
    out = {}
    for band, image in prepared.items():
        data = np.asarray(image.data)
        sigma = np.asarray(image.uncertainty.array) if image.uncertainty is not None else None
        good = _usable(image)
        if region is not None:
            good &= _inside(region, image.wcs, data.shape, 1.0)
        if sigma is None or not good.any():
            continue
        with np.errstate(invalid='ignore'):
            significant = good & (np.abs(data) > 3 * sigma)
        positive = data[significant & (data > 0)].sum()
        negative = -data[significant & (data < 0)].sum()
        if significant.sum() >= 5 and negative > 2 * positive:
            out[band] = 'sign-flipped (its significant pixels are negative)'
    if REFERENCE_BAND in out:
        raise ValueError(f'The {REFERENCE_BAND} image is {out[REFERENCE_BAND]} after sky '
                         'subtraction, and WISE 3.4 µm is the reference band every '
                         'prediction needs. Check the file (a difference or inverted image?) '
                         'and its unit.')
    return out


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


def _check_overlap(images):
    """Every image must overlap the WISE 3.4 µm one somewhere on the sky."""
    ref = images[REFERENCE_BAND]
    ref_centre, ref_radius = _sky_circle(ref.wcs, ref.shape)
    for band, image in images.items():
        if band == REFERENCE_BAND:
            continue
        centre, radius = _sky_circle(image.wcs, image.shape)
        separation = ref_centre.separation(centre)
        if separation > ref_radius + radius:
            raise ValueError(
                f'The {band} image does not overlap the {REFERENCE_BAND} image: their '
                f'centres are {separation.to(u.deg):.3f} apart, more than the images '
                'span. They show different parts of the sky (e.g. another galaxy): check '
                'the files and their WCS.')


def _valid_counts(table, bands, model):
    """Pixels with each band usable, and the most usable bands of one pixel."""
    valid = valid_bands(table, bands=bands, min_snr=getattr(model, 'min_snr', None))
    return dict(zip(bands, valid.sum(axis=0))), int(valid.sum(axis=1).max()) if len(valid) else 0


def _explain_all_masked(counts, most, bands, model, ebv):
    """Why no pixel got a prediction (``_valid_counts``): bands, the model's needs, E(B-V)."""
    reasons = []
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
            '(astro_dustml.registry.list_models).')


# The chained steps, each in one place so that the pipeline reads top-down


def _prepare(images, *, ebv, region):
    # Without a region the sky is estimated over the whole image
    return prepare_images(images, ebv=ebv, galaxy=region)


def _foreground_stars(reference, stars, *, region):
    """The Gaia stars to mask (queried for ``'gaia'``) on the field of ``reference``."""
    if isinstance(stars, str):
        if stars.lower() != 'gaia':
            raise ValueError(f'stars= must be a Gaia table or "gaia", not {stars!r}.')
        ny, nx = reference.shape
        center = reference.wcs.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
        corner = reference.wcs.pixel_to_world(0, 0)
        stars = _stars.query_gaia_stars(center, center.separation(corner))
    # Only the galaxy centre goes along: stars.py protects a nucleus around it
    return _stars.select_foreground_stars(stars, galaxy=getattr(region, 'center', None))


def _mask_stars(prepared, stars, *, region):
    """The prepared images with the foreground stars of ``stars`` masked."""
    stars = _foreground_stars(prepared[REFERENCE_BAND], stars, region=region)
    masked, _ = _stars.mask_foreground_stars(prepared, stars, select=False)
    return masked


def _align(prepared, *, resolution, pixel_scale, distance, parallel=False):
    # The grid covers every image ('union'), then is cut to the WISE 3.4 µm
    # footprint: a band that covers only part of the galaxy is missing (and
    # flagged) there instead of cropping the maps to its footprint
    aligned = align_images(prepared, pixel_scale=pixel_scale, distance=distance,
                           footprint='union', parallel=parallel, **_align_target(resolution))
    return _crop_to_reference(aligned)


def _grid_plan(images, *, resolution, pixel_scale, distance):
    """
    `_align`'s target PSF and grid from the bands' headers, or None if planning fails.

    The prepared images keep the parsed ones' grids and PSF FWHMs, so the
    plan needs no pixel. A failure is left to the all-bands path, which
    raises it after the same checks as before.
    """
    stand_ins = {band: SimpleNamespace(
        shape=im.shape, wcs=im.wcs, unit=OUTPUT_UNIT,
        meta={'psf_fwhm': (im.meta or {}).get('psf_fwhm', get_band(band).fwhm)})
        for band, im in images.items()}
    target = {'target': None, 'resolution': None, **_align_target(resolution)}
    try:
        return _plan(stand_ins, **target, distance=distance, pixel_scale=pixel_scale,
                     footprint='union', output_wcs=None, shape_out=None)
    except (ValueError, TypeError, u.UnitsError):
        return None


def _same_plan(a, b):
    """Two `_grid_plan` results give the same aligned images."""
    return (a[1] == b[1] and a[3] == b[3] and tuple(a[5]) == tuple(b[5])
            and a[4].to_header_string() == b[4].to_header_string())


def _prepare_align_by_band(selected, *, ebv, region, resolution, pixel_scale, distance,
                           stars=None, parallel=False):
    """
    `_prepare`, `_sign_flipped`, `_mask_stars` and `_align` one band at a time.

    The same images as the all-bands chain, but only one band's
    full-resolution arrays are alive at a time: the target PSF and the grid
    are planned from the headers first, and the star apertures are fitted
    band after band in `~astro_dustml.stars.fit_star_apertures` order (each
    band needs only its neighbour's fit). Returns ``(grids, aligned, flipped)``
    (``grids``: band -> its full-resolution grid, for `_coverage`), or None
    when the plan fails (the all-bands chain then raises the error).
    """
    bands = dict(selected)
    plan = _grid_plan(bands, resolution=resolution, pixel_scale=pixel_scale,
                      distance=distance)
    if plan is None:
        return None
    workers = _workers(parallel)
    # With threads, a band's reprojection runs while the next one is prepared
    # (never while one is PSF-matched: that is the memory peak)
    flipped = {}
    with ThreadPoolExecutor(1) if workers > 1 else nullcontext() as pool:
        while True:
            members, grids, meta, found = _band_pass(bands, plan, ebv=ebv, region=region,
                                                     stars=stars, workers=workers, pool=pool)
            if not found:
                break
            # A sign-flipped band is left out: plan again without it, and redo
            # the bands if it set the target PSF or widened the grid, or if
            # star apertures were fitted from it
            flipped.update(found)
            bands = {b: im for b, im in bands.items() if b not in found}
            replan = _grid_plan(bands, resolution=resolution, pixel_scale=pixel_scale,
                                distance=distance)
            if replan is None:
                return None
            if stars is None and _same_plan(plan, replan):
                break
            plan = replan
    _, target_fwhm, _, scale, out_wcs, out_shape = plan
    meta = dict(meta, psf_fwhm=target_fwhm, pixel_scale=scale.to(u.arcsec), wcs=out_wcs,
                shape=out_shape, distance=None if distance is None else u.Quantity(distance))
    aligned = NDCollection(members, aligned_axes='all', meta=meta)
    return grids, _crop_to_reference(aligned), flipped


def _band_pass(bands, plan, *, ebv, region, stars, workers, pool):
    """
    One pass of `_prepare_align_by_band` over ``bands`` with ``plan``.

    Returns ``(members, grids, meta, found)``: the aligned members, the
    prepared grids, the prepared collection's meta and the sign-flipped bands.
    """
    target_spec, target_fwhm, fwhms, scale, out_wcs, out_shape = plan
    done, grids, meta, found = {}, {}, {}, {}
    pending = None
    fitter = None if stars is None else _stars._ApertureFitter(stars, bands)
    for band in bands if fitter is None else fitter.order:
        prepared = _prepare({band: bands[band]}, ebv=ebv, region=region)
        meta = prepared.meta
        found.update(_sign_flipped(prepared, region))
        if band in found:
            continue
        prepared = prepared[band]
        if fitter is not None:
            prepared = _stars.mask_stars(prepared, fitter.fit(band, prepared))
        grids[band] = SimpleNamespace(shape=prepared.shape, wcs=prepared.wcs)
        prepared.meta['band'] = band  # as align_images' own copy of the member
        if pending is not None:
            pending.result()
        matched = _match_one(band, prepared, fwhms[band], target_spec, target_fwhm,
                             psf_dir=None, workers=workers)
        del prepared  # the full-resolution arrays go before the next band
        # astropy's WCS is not thread-safe: the task gets its own output WCS
        task = (band, matched, out_wcs.deepcopy(), out_shape, done)
        del matched
        if pool is None:
            _reproject_member(*task)
        else:
            pending = pool.submit(_reproject_member, *task)
        del task
    if pending is not None:
        pending.result()
    if fitter is not None:
        fitter.warn_failures()
    grids = {band: grids[band] for band in bands if band in grids}  # input order
    members = [(band, done[band]) for band in grids]
    for _, member in members:
        member.meta.update(psf_fwhm=target_fwhm, pixel_scale=scale)
    return members, grids, meta, found


def _reproject_member(band, matched, out_wcs, out_shape, members):
    """`_align_one`'s reprojection of a PSF-matched band, into ``members[band]``."""
    members[band] = _reproject(matched, out_wcs, out_shape, 'hann', 0.5)


def _align_target(resolution):
    """align_images keywords for ``resolution=``: a physical FWHM (needs the distance) or not."""
    if isinstance(resolution, u.Quantity) and resolution.unit.physical_type == 'length':
        return dict(resolution=resolution)
    return dict(target=resolution)


def _reference_box(usable, scale):
    """``(y0, y1, x0, x1)`` of the output pixels where WISE 3.4 µm has data."""
    rows, cols = np.nonzero(usable)
    if rows.size == 0 or np.ptp(rows) < 1 or np.ptp(cols) < 1:
        raise ValueError(
            f'The output pixels ({scale:.4g}) are too large for the images: the '
            f'{REFERENCE_BAND} image covers fewer than 2 x 2 of them. Give a smaller '
            'pixel_scale (or resolution), or larger images.')
    return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


def _crop_to_reference(aligned):
    """The aligned collection cut to the pixels where WISE 3.4 µm has data."""
    y0, y1, x0, x1 = _reference_box(_usable(aligned[REFERENCE_BAND]),
                                    aligned.meta['pixel_scale'])
    members = [(band, image[y0:y1, x0:x1]) for band, image in aligned.items()]
    meta = dict(aligned.meta, wcs=members[0][1].wcs, shape=(int(y1 - y0), int(x1 - x0)))
    return NDCollection(members, aligned_axes='all', meta=meta)


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


def _coverage(images, wcs, shape):
    """Per band: True where an output pixel centre falls on the band's image."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    world = wcs.pixel_to_world(xx, yy)
    out = {}
    for band, image in images.items():
        ny, nx = image.shape
        with np.errstate(invalid='ignore'):
            x, y = image.wcs.world_to_pixel(world)
            out[band] = (np.isfinite(x) & np.isfinite(y) & (x > -0.5) & (x < nx - 0.5)
                         & (y > -0.5) & (y < ny - 0.5))
    return out


def estimate_dust_maps(images, *, model=None, distance=None, ebv=None, galaxy=None,
                       stars=None, resolution=None, pixel_scale=None, bands=None,
                       units=None, progress=True, parallel=False):
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
    units : dict, optional
        Band name -> unit of the images that carry none (no unit attribute,
        ``BUNIT``/``SIGUNIT``, or ``MAGZP`` for AllWISE and 2MASS Atlas
        files); without it such an image is read in its band's native survey
        unit, with a warning.
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
        `~astro_dustml.estimate.MAP_FLAGS`), ``model`` (the model card),
        ``model_name``, ``inputs`` (the bands really used), ``ignored_bands``
        (not model inputs), ``unused_bands`` (band -> why it was left out: all zero,
        constant, sign-flipped, or no data inside the galaxy), ``psf_fwhm``,
        ``pixel_scale``, ``distance``, ``ebv``, ``galaxy``,
        ``out_of_domain_fraction`` and ``version``; each map's ``meta`` the
        same without ``flags``.

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
    >>> from astro_dustml.estimate import estimate_dust_maps
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> estimate_dust_maps({'WISE_12': (np.ones((5, 5)), wcs)})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: No WISE 3.4 µm (WISE_3.4) image among the inputs (WISE_12). ...
    """
    name, region, distance, pixel_scale, resolution = _check_arguments(
        images, galaxy=galaxy, distance=distance, pixel_scale=pixel_scale,
        resolution=resolution)
    parsed = _parse_collection(images, bands=bands, units=units)
    _check_reference(parsed)
    dust_model, model_name = _resolve_model(model)
    selected, ignored = _select_bands(parsed, _model_bands(dust_model))
    _check_not_all_masked(selected)
    selected, unused = _drop_uninformative(selected)
    _check_overlap(selected)

    if stars is not None:
        stars = _foreground_stars(selected[REFERENCE_BAND], stars, region=region)
    with _progress(5, progress) as bar:
        staged = _prepare_align_by_band(
            selected, ebv=ebv, region=region, resolution=resolution,
            pixel_scale=pixel_scale, distance=distance, stars=stars, parallel=parallel)
        if staged is not None:
            prepared, aligned, flipped = staged
            unused.update(flipped)
            bar.update()
        else:
            prepared = _prepare(selected, ebv=ebv, region=region)
            flipped = _sign_flipped(prepared, region)
            if flipped:
                unused.update(flipped)
                prepared = NDCollection([(b, im) for b, im in prepared.items()
                                         if b not in flipped], meta=prepared.meta)
            bar.update()
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
        prediction = _predict(dust_model, table)
        bar.update()
        maps, meta_flags = _make_maps(prediction, flags, y, x, wcs, shape)
        bar.update()

    # every row of the pixel table is inside the galaxy region
    fraction = _warn_out_of_domain(
        int(((meta_flags[y, x] & MAP_FLAGS['OUT_OF_DOMAIN']) != 0).sum()), len(y))
    if not any((~m.mask).any() for m in maps.values()):
        raise ValueError(_explain_all_masked(*_valid_counts(table, used, dust_model), used,
                                             dust_model, ebv))
    aligned_meta = getattr(aligned, 'meta', None) or {}
    meta = _maps_meta(dust_model, model_name, used=used, ignored=ignored, unused=unused,
                      psf_fwhm=table.meta.get('psf_fwhm', aligned_meta.get('psf_fwhm')),
                      pixel_scale=aligned_meta.get('pixel_scale'), distance=distance,
                      ebv=ebv, galaxy=galaxy, fraction=fraction)
    members = []
    for name, ndd in maps.items():
        ndd.meta.update(meta)
        members.append((name, ndd))
    return NDCollection(members, aligned_axes='all', meta=dict(meta, flags=meta_flags))


def _check_reference_covered(n_rows, uncovered):
    if n_rows == 0 or REFERENCE_BAND in uncovered:
        raise ValueError(
            'Every pixel is masked: no pixel inside the galaxy region has valid WISE '
            '3.4 µm data (the reference band every prediction needs). Check the '
            'WISE 3.4 µm mask and footprint, the galaxy= region and the star masks.')


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
        'version': __version__,
    }


def _map_mask(flags):
    """Masked map pixels from MAP_FLAGS."""
    # A band missing at a pixel (partial coverage) is flagged, not masked: the
    # model predicts from the other bands there (or flags it out of domain)
    return (flags & ~MAP_FLAGS['MISSING_INPUT']) != 0


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
