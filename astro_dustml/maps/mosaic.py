"""
Dust maps of mosaics larger than memory: tiled `estimate_dust_maps`.

`estimate_mosaic` runs the chain of `~astro_dustml.maps.estimate_dust_maps`
with bounded memory, optionally on a Dask cluster (`distributed.Client`):

1. each band is parsed, checked and prepared on its own (one task per band;
   the sky fit needs the whole band) with estimate_dust_maps' own helpers, so
   it is left out (all zero, constant, sign-flipped) or refused as there, and
   written to a scratch FITS file; with ``stars=``, foreground stars are then
   masked in those files, band after band, as estimate_dust_maps masks them;
2. the target PSF and the output grid (the union of the images, as
   `~astro_dustml.imaging.align_images` plans it with ``footprint='union'``) are
   planned from the headers alone;
3. WISE 3.4 µm alone is aligned tile by tile on that grid to find where it has
   data: the grid is cut to those pixels, as estimate_dust_maps cuts it;
4. the cut grid is split into tiles (one task each). A tile reads, from every
   prepared band, the cutout that covers it plus a margin wider than the PSF
   matching kernel and the reprojection footprint, matches and reprojects
   it, builds the pixel table, flags (coverage of each band included) and
   predicts;
5. each finished tile is written into memory-mapped output planes on disk;
   at the end `~astro_dustml.maps.write_dust_maps` writes the dust-map
   FITS file from them (read it back with `~astro_dustml.maps.read_dust_maps`).
   The input stack is never held whole, and of the maps (on the coarse
   output grid) at most one plane at a time.

Every tile pixel sees the same input pixels and kernel as in the in-memory
call, so the stitched maps equal `estimate_dust_maps` on the whole mosaic,
seams, flags and band selection included, up to the round-off of FFTs of a
different size (relative differences of about 1e-13).
"""

import os
import tempfile
from collections.abc import Mapping
from types import SimpleNamespace

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty
from ndcube import NDCollection

from ..bands import REFERENCE_BAND, get_band
from ..imaging import stars as _stars
from ..imaging.align import _align_one, _plan
from ..imaging.chain import (
    _align_target,
    _check_not_all_masked,
    _check_overlap,
    _check_reference,
    _coverage,
    _drop_uninformative,
    _foreground_stars,
    _prepare,
    _progress,
    _reference_box,
    _sign_flipped,
)
from ..imaging.io import (
    _band_key,
    _check_unit_bands,
    _pair_uncertainty_maps,
    _parse_collection,
    _usable,
)
from ..imaging.prepare import OUTPUT_UNIT
from ..imaging.psf_matching import _FWHM_RTOL, _pixel_scale, make_matching_kernel
from ..sed.tables import make_pixel_table
from .estimate import (
    _check_arguments,
    _check_reference_covered,
    _explain_all_masked,
    _make_maps,
    _map_mask,
    _maps_meta,
    _model_bands,
    _pixel_flags,
    _predict,
    _resolve_model,
    _select_bands,
    _uncovered_bands,
    _valid_counts,
    _warn_out_of_domain,
    _warn_unused,
)
from .flags import MAP_FLAGS, TARGETS
from .io import write_dust_maps

__all__ = ['estimate_mosaic']


# Output pixels added around a tile before it is mapped to input pixels: the
# adaptive resampling's Hann kernel reaches one output pixel (one more for
# safety; the tiled == in-memory test fails without this margin)
_OUT_MARGIN = 2


# Input pixels added beyond the PSF-matching kernel's half width
_IN_MARGIN = 4


def _band_sources(images, bands, units):
    """
    ``{band: parse arguments}`` without reading any pixel data.

    Each band's arguments give `~astro_dustml.imaging.io._parse_collection` (the
    parser of `estimate_dust_maps`) a collection of that band alone, so a
    task parses one band, with the same messages.
    """
    units = {_band_key(k): v for k, v in (units or {}).items()}
    out = {}
    if isinstance(images, Mapping):
        if bands is not None:  # the parser's message
            _parse_collection({}, bands=bands)
        items = [(_band_key(key), {key: image}, None) for key, image in images.items()]
    elif isinstance(images, (list, tuple)):
        if bands is not None and len(bands) != len(images):
            raise ValueError(f'Got {len(images)} images but {len(bands)} band names.')
        images, bands, pairs = _pair_uncertainty_maps(list(images), bands)
        items = []
        for i, image in enumerate(images):
            if bands is not None:
                band = bands[i]
            elif isinstance(image, (str, os.PathLike)):
                band = fits.getheader(image)
            elif hasattr(image, 'header'):  # an HDU
                band = image.header
            else:
                band = (getattr(image, 'meta', None) or {}).get('band')
            if band is None:
                raise ValueError(f'Cannot tell the band of image #{i}; pass bands=.')
            band = get_band(band).name
            group = [image] + ([pairs[i]] if i in pairs else [])
            items.append((band, group, None if bands is None else [band] * len(group)))
    else:
        raise TypeError('images must be a mapping of band name to image or a list of '
                        f'images (FITS paths, HDUs, CCDData), not {type(images).__name__}.')
    for band, group, group_bands in items:
        if band in out:
            raise ValueError(f'Two images are in band {band}; pass one image per band.')
        out[band] = dict(images=group, bands=group_bands,
                         units={band: units[band]} if band in units else None)
    _check_unit_bands(units, out)
    return out


def _prepare_band(band, source, *, ebv, region, folder):
    """
    One band through estimate_dust_maps' checks and preparation, to a scratch FITS file.

    Returns the band's grid and PSF, or ``{'band', 'unused': reason}`` for a
    band that estimate_dust_maps leaves out (all zero, constant, sign-flipped).
    """
    parsed = _parse_collection(source['images'], bands=source['bands'], units=source['units'])
    _check_not_all_masked(parsed)
    parsed, unused = _drop_uninformative(parsed)
    if unused:
        return dict(band=band, unused=unused[band])
    prepared = _prepare(parsed, ebv=ebv, region=region)
    flipped = _sign_flipped(prepared, region)
    if flipped:
        return dict(band=band, unused=flipped[band])
    prepared = prepared[band]
    path = os.path.join(folder, f'{band}.fits')
    header = prepared.wcs.to_header(relax=True)
    fits.HDUList([fits.PrimaryHDU(prepared.data, header=header),
                  fits.ImageHDU(prepared.uncertainty.array, name='ERR'),
                  fits.ImageHDU(prepared.mask.astype(np.uint8), name='MASK')]).writeto(path)
    meta = prepared.meta
    # plain floats: Dask serialises Quantities (ndarray subclasses) as bare arrays
    return dict(band=band, path=path, shape=prepared.shape, wcs=prepared.wcs,
                psf_fwhm=float(meta['psf_fwhm'].to_value(u.arcsec)),
                systematic_error=meta['systematic_error'])


def _mask_band_stars(bands, stars, *, region):
    """
    Mask foreground stars in the prepared bands' scratch files, one band at a time.

    As `~astro_dustml.maps.estimate_dust_maps` does it: apertures fitted
    band after band in `~astro_dustml.imaging.fit_star_apertures` order, before
    PSF matching.
    """
    reference = next(b for b in bands if b['band'] == REFERENCE_BAND)
    stars = _foreground_stars(SimpleNamespace(shape=reference['shape'], wcs=reference['wcs']),
                              stars, region=region)
    by_band = {b['band']: b for b in bands}
    fitter = _stars._ApertureFitter(stars, by_band)
    for band in fitter.order:
        source = by_band[band]
        with fits.open(source['path'], mode='update') as hdul:
            image = CCDData(hdul[0].data, unit=OUTPUT_UNIT, wcs=source['wcs'],
                            uncertainty=StdDevUncertainty(hdul['ERR'].data),
                            mask=hdul['MASK'].data.astype(bool),
                            meta={'band': band, 'psf_fwhm': source['psf_fwhm'] * u.arcsec})
            masked = _stars.mask_stars(image, fitter.fit(band, image))
            hdul[0].data = masked.data
            hdul['MASK'].data = masked.mask.astype(np.uint8)
    fitter.warn_failures()


def _cutout_box(band, out_wcs, box):
    """Input pixel box (y0, y1, x0, x1) of a band that an output box needs, or None."""
    y0, y1, x0, x1 = box
    ys = np.arange(y0 - _OUT_MARGIN, y1 + _OUT_MARGIN + 1, dtype=float) - 0.5
    xs = np.arange(x0 - _OUT_MARGIN, x1 + _OUT_MARGIN + 1, dtype=float) - 0.5
    edge_x = np.concatenate([xs, xs, np.full(ys.size, xs[0]), np.full(ys.size, xs[-1])])
    edge_y = np.concatenate([np.full(xs.size, ys[0]), np.full(xs.size, ys[-1]), ys, ys])
    world = out_wcs.pixel_to_world(edge_x, edge_y)
    px, py = band['wcs'].world_to_pixel(world)
    pad = band['kernel_half'] + _IN_MARGIN
    ny, nx = band['shape']
    bx0 = max(0, int(np.floor(np.nanmin(px))) - pad)
    bx1 = min(nx, int(np.ceil(np.nanmax(px))) + pad + 1)
    by0 = max(0, int(np.floor(np.nanmin(py))) - pad)
    by1 = min(ny, int(np.ceil(np.nanmax(py))) + pad + 1)
    if bx1 - bx0 < 1 or by1 - by0 < 1:
        return None
    return by0, by1, bx0, bx1


def _read_cutout(band, box):
    y0, y1, x0, x1 = box
    with fits.open(band['path'], memmap=True) as hdul:
        data = np.array(hdul[0].section[y0:y1, x0:x1], dtype=float)
        err = np.array(hdul['ERR'].section[y0:y1, x0:x1], dtype=float)
        mask = np.array(hdul['MASK'].section[y0:y1, x0:x1], dtype=bool)
    return CCDData(data, unit=OUTPUT_UNIT, wcs=band['wcs'].slice((slice(y0, y1), slice(x0, x1))),
                   uncertainty=StdDevUncertainty(err), mask=mask,
                   meta={'band': band['band'], 'psf_fwhm': band['psf_fwhm'] * u.arcsec,
                         'systematic_error': band['systematic_error']})


def _aligned_tile(box, bands, plan):
    """Every band of one output box matched and reprojected as align_images does it."""
    y0, y1, x0, x1 = box
    shape = (y1 - y0, x1 - x0)
    wcs = plan.wcs.slice((slice(y0, y1), slice(x0, x1)))
    target_fwhm, scale = plan.target_fwhm * u.arcsec, plan.scale * u.arcsec
    members = []
    for band in bands:
        cut = _cutout_box(band, plan.wcs, box)
        if cut is None:  # the band does not reach this tile: as align_images leaves it
            blank = np.full(shape, np.nan)
            member = CCDData(blank, unit=OUTPUT_UNIT, wcs=wcs.deepcopy(),
                             uncertainty=StdDevUncertainty(blank.copy()),
                             mask=np.ones(shape, bool), meta={})
        else:
            # Gaussian kernels, as in estimate_dust_maps (no PSF folder)
            member = _align_one(band['band'], _read_cutout(band, cut),
                                band['psf_fwhm'] * u.arcsec, target_fwhm, target_fwhm,
                                psf_dir=None,
                                out_wcs=wcs.deepcopy(), out_shape=shape, kernel='hann',
                                max_masked=0.5)
        member.meta.update(psf_fwhm=target_fwhm, pixel_scale=scale)
        members.append((band['band'], member))
    return members, wcs, shape


def _reference_tile(box, bands, plan):
    """Where WISE 3.4 µm has data in one box of the union grid (estimate's crop)."""
    members, _, _ = _aligned_tile(box, [b for b in bands if b['band'] == REFERENCE_BAND], plan)
    return box, _usable(members[0][1])


def _tile(box, bands, plan, *, model, region, name, distance, model_name=None,
          band_sets=None):
    """One tile of the maps: cutouts -> matched and reprojected -> pixel table -> prediction."""
    members, wcs, shape = _aligned_tile(box, bands, plan)
    target_fwhm, scale = plan.target_fwhm * u.arcsec, plan.scale * u.arcsec
    aligned = NDCollection(members, aligned_axes='all',
                           meta=dict(psf_fwhm=target_fwhm, pixel_scale=scale,
                                     wcs=wcs, shape=shape, distance=distance))
    table = make_pixel_table(aligned, galaxy=name or 'galaxy', region=region,
                             distance=distance)
    used = [b['band'] for b in bands]
    # coverage of the whole prepared bands (their headers), as estimate_dust_maps sees it
    flags, y, x = _pixel_flags(table, used, shape, _coverage(_stand_ins(bands), wcs, shape))
    out = dict(box=box, flags=flags, n_rows=len(table), n_ood=0,
               uncovered=_uncovered_bands(table, used), counts=None,
               model_id=np.full(shape, -1, np.int16), models=[])
    if len(table) == 0:
        for target in TARGETS:
            out[target] = (np.full(shape, np.nan), np.full(shape, np.nan))
        return out
    out['counts'] = _valid_counts(table, used, model)
    prediction, model_id, out['models'] = _predict(model, table, model_name=model_name,
                                                   band_sets=band_sets)
    out['model_id'][y, x] = model_id
    maps, flags = _make_maps(prediction, flags, y, x, wcs, shape)
    out['flags'] = flags
    out['n_ood'] = int(((flags[y, x] & MAP_FLAGS['OUT_OF_DOMAIN']) != 0).sum())
    for target, ndd in maps.items():
        out[target] = (ndd.data, ndd.uncertainty.array)
    return out


def _stand_ins(bands):
    """The prepared bands' grids and PSFs, standing in for the images (headers only)."""
    return {b['band']: SimpleNamespace(shape=b['shape'], wcs=b['wcs'], unit=OUTPUT_UNIT,
                                       meta={'psf_fwhm': b['psf_fwhm'] * u.arcsec})
            for b in bands}


def _tiles(shape, tile_shape):
    ty, tx = tile_shape
    return [(y, min(y + ty, shape[0]), x, min(x + tx, shape[1]))
            for y in range(0, shape[0], ty) for x in range(0, shape[1], tx)]


def estimate_mosaic(images, output, *, tile_shape=(128, 128), client=None, work_dir=None,
                    model=None, distance=None, ebv=None, galaxy=None, stars=None,
                    resolution=None, pixel_scale=None, bands=None, units=None,
                    overwrite=False, progress=True, band_sets=None):
    """
    `~astro_dustml.maps.estimate_dust_maps` on a mosaic, tile by tile.

    Memory is bounded by one band (parsing, preparation and star masking),
    one tile of every band with its margins (estimation) and one output plane
    (writing), never by the whole stack.
    The result equals the in-memory call (same grid, flags, bands, star
    masks and checks) up to FFT round-off.

    Parameters
    ----------
    images : mapping or list
        Band name -> FITS path, HDU, ``(array, wcs)`` or
        `~astropy.nddata.CCDData`; or a list of them (bands from ``bands``,
        the FITS headers or ``meta['band']``). With a Dask client, paths are
        best: each worker reads what it needs.
    output : str or path-like
        The dust-map FITS file to write (`~astro_dustml.maps.read_dust_maps`
        reads it; astropy can memory-map its extensions).
    tile_shape : tuple of int, optional
        Tile size in output pixels ``(ny, nx)``.
    client : `distributed.Client`, optional
        Run bands and tiles as futures on this cluster (the workers must see
        ``work_dir``); default: here, one after the other. Warnings of the
        parsing and preparation on workers stay there.
    work_dir : str or path-like, optional
        Folder for the prepared bands (scratch); default a temporary folder,
        removed at the end.
    model, distance, ebv, galaxy, stars, resolution, pixel_scale, bands, units
        As in `~astro_dustml.maps.estimate_dust_maps`; the star apertures
        are fitted here, band after band (a chain: each band starts from its
        neighbour's fit), not on the workers.
    band_sets : bool, optional
        As in `~astro_dustml.maps.estimate_dust_maps`, tile by tile: a
        pattern of usable bands gets its own model when it holds enough of
        the tile's pixels (``conf.band_set_min_fraction``,
        ``conf.band_set_min_pixels``); the ``MODELID`` plane numbers the
        models over the whole mosaic.
    overwrite : bool, optional
        Replace an existing output file.
    progress : bool, optional
        Show a progress bar over bands and tiles.

    Returns
    -------
    meta : dict
        What `~astro_dustml.maps.estimate_dust_maps` puts in
        ``maps.meta`` (without ``flags``), plus ``'path'``, ``'shape'`` and
        ``'tiles'``.

    Raises
    ------
    ValueError
        As `~astro_dustml.maps.estimate_dust_maps`, before the output
        file is written.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.maps import estimate_mosaic
    >>> wcs = WCS(naxis=2); wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> estimate_mosaic({'WISE_12': (np.ones((5, 5)), wcs)}, 'maps.fits')
    Traceback (most recent call last):
    ValueError: No WISE 3.4 µm (WISE_3.4) image among the inputs (WISE_12). ...
    """
    # estimate_dust_maps' boundary checks, in its order
    name, region, distance, pixel_scale, resolution = _check_arguments(
        images, galaxy=galaxy, distance=distance, pixel_scale=pixel_scale,
        resolution=resolution)
    sources = _band_sources(images, bands, units)
    _check_reference(sources)
    dust_model, model_name = _resolve_model(model)
    selected, ignored = _select_bands(sources, _model_bands(dust_model))
    if len(tile_shape) != 2 or min(tile_shape) < 1:
        raise ValueError(f'tile_shape must be two positive integers, got {tile_shape!r}.')
    if os.path.exists(output) and not overwrite:
        raise OSError(f'{output} exists; pass overwrite=True to replace it.')

    scratch = None
    if work_dir is None:
        scratch = tempfile.TemporaryDirectory(prefix='astro_dustml_mosaic_')
        work_dir = scratch.name
    os.makedirs(work_dir, exist_ok=True)
    try:
        kwargs = dict(ebv=ebv, region=region, folder=work_dir)
        with _progress(len(selected), progress) as bar:
            done = {r['band']: r for r in _run(client, _prepare_band, list(selected.items()),
                                               kwargs, bar)}
        results = [done[band] for band in selected]  # input order, as estimate_dust_maps
        unused = {r['band']: r['unused'] for r in results if 'unused' in r}
        prepared = [r for r in results if 'unused' not in r]
        _check_overlap(_stand_ins(prepared))
        if stars is not None:
            _mask_band_stars(prepared, stars, region=region)
        plan = _plan_grid(prepared, resolution=resolution, pixel_scale=pixel_scale,
                          distance=distance)
        tile_shape = tuple(int(t) for t in tile_shape)
        # estimate_dust_maps' grid: the union of the images cut to where WISE
        # 3.4 µm has data, which only the aligned WISE 3.4 µm image tells
        usable = np.zeros(plan.shape, bool)
        union_tiles = _tiles(plan.shape, tile_shape)
        with _progress(len(union_tiles), progress) as bar:
            for (y0, y1, x0, x1), tile in _run(client, _reference_tile, union_tiles,
                                               dict(bands=prepared, plan=plan), bar,
                                               unpack=False):
                usable[y0:y1, x0:x1] = tile
        y0, y1, x0, x1 = _reference_box(usable, plan.scale * u.arcsec)
        del usable
        plan.wcs = plan.wcs.slice((slice(y0, y1), slice(x0, x1)))
        plan.shape = (int(y1 - y0), int(x1 - x0))

        planes = _planes(work_dir, plan.shape)
        tiles = _tiles(plan.shape, tile_shape)
        used = [b['band'] for b in prepared]
        n_rows = n_ood = most = 0
        uncovered = None
        counts = dict.fromkeys(used, 0)
        task = dict(bands=prepared, plan=plan, model=dust_model, region=region, name=name,
                    distance=distance, model_name=model_name, band_sets=band_sets)
        models = {}  # name -> the provenance entry, ids over the whole mosaic
        with _progress(len(tiles), progress) as bar:
            for result in _run(client, _tile, tiles, task, bar, unpack=False):
                _merge_models(models, result)
                _write_tile(planes, result)
                n_ood += result['n_ood']
                if result['n_rows']:
                    n_rows += result['n_rows']
                    # a band is uncovered if no tile has a usable pixel of it
                    uncovered = dict(result['uncovered'] if uncovered is None else
                                     {b: why for b, why in uncovered.items()
                                      if b in result['uncovered']})
                    tile_counts, tile_most = result['counts']
                    counts = {b: counts[b] + tile_counts[b] for b in used}
                    most = max(most, tile_most)
        uncovered = uncovered or {}
        unused.update(uncovered)
        used = [b for b in used if b not in uncovered]
        _warn_unused(unused)
        _check_reference_covered(n_rows, uncovered)
        fraction = _warn_out_of_domain(n_ood, n_rows)
        mask = _map_mask(planes['flags'])
        if mask.all():
            raise ValueError(_explain_all_masked({b: counts[b] for b in used}, most, used,
                                                 dust_model, ebv))
        meta = _maps_meta(dust_model, model_name, used=used, ignored=ignored, unused=unused,
                          psf_fwhm=plan.target_fwhm * u.arcsec,
                          pixel_scale=plan.scale * u.arcsec, distance=distance, ebv=ebv,
                          galaxy=galaxy, fraction=fraction)
        meta['band_set_models'] = list(models.values())
        # the package's own writer, reading one memory-mapped plane at a time
        maps = [(target, CCDData(planes[target], unit=unit, wcs=plan.wcs.deepcopy(),
                                 uncertainty=StdDevUncertainty(planes[f'{target}_err']),
                                 mask=mask, meta=dict(meta, quantity=target)))
                for target, unit in TARGETS.items()]
        write_dust_maps(NDCollection(maps, aligned_axes='all',
                                     meta=dict(meta, flags=planes['flags'],
                                               model_id=planes['model_id'])),
                        output, overwrite=overwrite)
        del maps, mask, planes
    finally:
        if scratch is not None:
            scratch.cleanup()
    return dict(meta, path=str(output), shape=plan.shape, tiles=len(tiles))


def _run(client, func, items, kwargs, bar, *, unpack=True):
    """``func(*item, **kwargs)`` (or ``func(item, ...)``) for each item, here or on ``client``."""
    args = [item if unpack else (item,) for item in items]
    if client is None:
        for arg in args:
            yield func(*arg, **kwargs)
            bar.update()
        return
    from distributed import as_completed  # optional extra, needed only here
    # the same objects go to every task: sent once to each worker (own keys:
    # the same content scattered by an earlier pass may be being released)
    shared = dict(zip(kwargs, client.scatter(list(kwargs.values()), broadcast=True,
                                             hash=False)))
    for future in as_completed([client.submit(func, *arg, **shared, pure=False)
                                for arg in args]):
        yield future.result()
        bar.update()


# Bytes per output pixel a mosaic holds in memory (the reference-coverage map
# and a flag plane; the map planes are memory-mapped files, filled tile by tile)
_GRID_BYTES = 16


def _plan_grid(prepared, *, resolution, pixel_scale, distance):
    """align_images' plan (as estimate_dust_maps asks for it) from the prepared bands' headers."""
    target = {'target': None, 'resolution': None, **_align_target(resolution)}
    _, target_fwhm, fwhms, scale, out_wcs, out_shape = _plan(
        _stand_ins(prepared), **target, distance=distance, pixel_scale=pixel_scale,
        footprint='union', output_wcs=None, shape_out=None, grid_bytes=_GRID_BYTES)
    for band in prepared:
        fwhm = fwhms[band['band']]
        band['kernel_half'] = 0
        if abs(fwhm - target_fwhm) > _FWHM_RTOL * target_fwhm:
            kernel = make_matching_kernel(fwhm, target_fwhm,
                                          pixel_scale=_pixel_scale(band['wcs']))
            band['kernel_half'] = kernel.data.shape[0] // 2
    # plain floats (arcsec): Dask serialises Quantities as bare arrays
    return SimpleNamespace(target_fwhm=float(target_fwhm.to_value(u.arcsec)),
                           scale=float(scale.to_value(u.arcsec)), wcs=out_wcs,
                           shape=tuple(int(n) for n in out_shape))


def _planes(folder, shape):
    """Memory-mapped output planes in the scratch folder, filled tile by tile."""
    planes = {key: np.lib.format.open_memmap(os.path.join(folder, f'{key}.npy'), 'w+',
                                             np.int16, shape)
              for key in ('flags', 'model_id')}
    planes['model_id'][:] = -1
    for target in TARGETS:
        for key in (target, f'{target}_err'):
            planes[key] = np.lib.format.open_memmap(os.path.join(folder, f'{key}.npy'),
                                                    'w+', np.float64, shape)
    return planes


def _merge_models(models, result):
    """Renumber a tile's model ids into the mosaic's (one id per model name)."""
    ids = result['model_id']
    new = ids.copy()
    for entry in result['models']:
        if entry['name'] not in models:
            models[entry['name']] = dict(entry, id=len(models), n_pixels=0, patterns=[])
        merged = models[entry['name']]
        merged['n_pixels'] += entry['n_pixels']
        merged['patterns'] += [p for p in entry['patterns'] if p not in merged['patterns']]
        if entry['how'] not in merged['how'].split('+'):
            merged['how'] = '+'.join(sorted(merged['how'].split('+') + [entry['how']]))
        new[ids == entry['id']] = merged['id']
    result['model_id'] = new


def _write_tile(planes, result):
    y0, y1, x0, x1 = result['box']
    planes['flags'][y0:y1, x0:x1] = result['flags']
    planes['model_id'][y0:y1, x0:x1] = result['model_id']
    for target in TARGETS:
        planes[target][y0:y1, x0:x1], planes[f'{target}_err'][y0:y1, x0:x1] = result[target]
