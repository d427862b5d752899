"""
Dust maps of mosaics larger than memory: tiled `estimate_dust_maps`.

`estimate_mosaic` runs the chain of `~astro_dustml.estimate.estimate_dust_maps`
with bounded memory, optionally on a Dask cluster (`distributed.Client`):

1. each band is prepared on its own (one task per band; the sky fit needs the
   whole band) and written to a scratch FITS file;
2. the target PSF and the output grid are planned from the headers alone,
   exactly as `~astro_dustml.align.align_images` plans them;
3. the output grid is cut into tiles (one task each). A tile reads, from every
   prepared band, the cutout that covers it plus a margin wider than the PSF
   matching kernel and the reprojection footprint, matches and reprojects
   it, builds the pixel table and predicts;
4. each finished tile is written into memory-mapped output planes on disk;
   at the end `~astro_dustml.estimate.write_dust_maps` writes the dust-map
   FITS file from them (read it back with `~astro_dustml.estimate.read_dust_maps`).
   The input stack is never held whole, and of the maps (on the coarse
   output grid) at most one plane at a time.

Every tile pixel sees the same input pixels and kernel as in the in-memory
call, so the stitched maps equal `estimate_dust_maps` on the whole mosaic,
seams included, up to the round-off of FFTs of a different size (relative
differences of about 1e-13).
"""

import os
import tempfile
import warnings
from types import SimpleNamespace

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty
from ndcube import NDCollection

from . import __version__
from .align import _align_one, _plan
from .bands import get_band
from .estimate import (MAP_FLAGS, TARGETS, _check_reference, _galaxy_info, _make_maps,
                       _model_bands, _pixel_flags, _predict, _progress, _resolve_model,
                       _select_bands, write_dust_maps)
from .exceptions import OutOfDomainWarning
from .prepare import OUTPUT_UNIT, _parse_galaxy, prepare_image
from .psf import _FWHM_RTOL, _pixel_scale, make_matching_kernel
from .sed import make_pixel_table

__all__ = ['estimate_mosaic']

# Output pixels added around a tile before it is mapped to input pixels: the
# adaptive resampling's Hann kernel reaches one output pixel (one more for
# safety; the tiled == in-memory test fails without this margin)
_OUT_MARGIN = 2
# Input pixels added beyond the PSF-matching kernel's half width
_IN_MARGIN = 4


def _band_names(images, bands):
    """``{band: image or path}`` without reading any pixel data."""
    if isinstance(images, (list, tuple)):
        if bands is not None and len(bands) != len(images):
            raise ValueError(f'Got {len(images)} images but {len(bands)} band names.')
        out = {}
        for i, image in enumerate(images):
            if bands is not None:
                name = bands[i]
            elif isinstance(image, (str, os.PathLike)):
                name = fits.getheader(image)
            else:
                name = getattr(image, 'meta', {}).get('band')
            if name is None:
                raise ValueError(f'Cannot tell the band of image #{i}; pass bands=.')
            band = get_band(name).name
            if band in out:
                raise ValueError(f'Two images are in band {band}; pass one image per band.')
            out[band] = image
        return out
    if hasattr(images, 'items'):
        return {get_band(key).name: image for key, image in images.items()}
    raise TypeError('images must be a mapping of band name to image (FITS path, HDU or '
                    f'CCDData) or a list of FITS paths, not {type(images).__name__}.')


def _prepare_band(band, image, *, ebv, region, folder):
    """Prepare one band as estimate_dust_maps does and write it to a scratch FITS file."""
    prepared = prepare_image(image, band, ebv=ebv, galaxy=region)
    if np.all(prepared.mask | ~np.isfinite(prepared.data)):
        raise ValueError(
            f'Every pixel is masked (or not finite) in {band}: nothing to estimate from. '
            'Check the masks and data of this image, or leave the band out (WISE 3.4 µm '
            'is required).')
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


def _tile(box, bands, plan, *, model, region, name, distance):
    """One tile of the maps: cutouts -> matched and reprojected -> pixel table -> prediction."""
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
    aligned = NDCollection(members, aligned_axes='all',
                           meta=dict(psf_fwhm=target_fwhm, pixel_scale=scale,
                                     wcs=wcs, shape=shape, distance=distance))
    table = make_pixel_table(aligned, galaxy=name or 'galaxy', region=region,
                             distance=distance)
    flags, y, x = _pixel_flags(table, [b['band'] for b in bands], shape)
    out = dict(box=box, flags=flags, n_valid=len(y), n_ood=0)
    if len(table) == 0:
        for target in TARGETS:
            out[target] = (np.full(shape, np.nan), np.full(shape, np.nan))
        return out
    maps, flags = _make_maps(_predict(model, table), flags, y, x, wcs, shape)
    out['flags'] = flags
    out['n_ood'] = int(((flags[y, x] & MAP_FLAGS['OUT_OF_DOMAIN']) != 0).sum())
    for target, ndd in maps.items():
        out[target] = (ndd.data, ndd.uncertainty.array)
    return out


def _tiles(shape, tile_shape):
    ty, tx = tile_shape
    return [(y, min(y + ty, shape[0]), x, min(x + tx, shape[1]))
            for y in range(0, shape[0], ty) for x in range(0, shape[1], tx)]


def estimate_mosaic(images, output, *, tile_shape=(128, 128), client=None, work_dir=None,
                    model=None, distance=None, ebv=None, galaxy=None, resolution=None,
                    pixel_scale=None, bands=None, overwrite=False, progress=True):
    """
    `~astro_dustml.estimate.estimate_dust_maps` on a mosaic, tile by tile.

    Memory is bounded by one prepared band (preparation), one tile of every
    band with its margins (estimation) and one output plane (writing), never
    by the whole stack.
    The result equals the in-memory call up to FFT round-off; foreground
    star masking (``stars=``) is not done here.

    Parameters
    ----------
    images : mapping or list
        Band name -> FITS path, HDU or `~astropy.nddata.CCDData`; or a list
        of FITS paths (bands from their headers, or ``bands``). With a Dask
        client, paths are best: each worker reads what it needs.
    output : str or path-like
        The dust-map FITS file to write (`~astro_dustml.estimate.read_dust_maps`
        reads it; astropy can memory-map its extensions).
    tile_shape : tuple of int, optional
        Tile size in output pixels ``(ny, nx)``.
    client : `distributed.Client`, optional
        Run bands and tiles as futures on this cluster (the workers must see
        ``work_dir``); default: here, one after the other.
    work_dir : str or path-like, optional
        Folder for the prepared bands (scratch); default a temporary folder,
        removed at the end.
    model, distance, ebv, galaxy, resolution, pixel_scale, bands
        As in `~astro_dustml.estimate.estimate_dust_maps`.
    overwrite : bool, optional
        Replace an existing output file.
    progress : bool, optional
        Show a progress bar over bands and tiles.

    Returns
    -------
    meta : dict
        What `~astro_dustml.estimate.estimate_dust_maps` puts in
        ``maps.meta`` (without ``flags``), plus ``'path'``, ``'shape'`` and
        ``'tiles'``.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.mosaic import estimate_mosaic
    >>> wcs = WCS(naxis=2); wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> estimate_mosaic({'WISE_12': (np.ones((5, 5)), wcs)}, 'maps.fits')
    Traceback (most recent call last):
    ValueError: No WISE 3.4 µm (WISE_3.4) image among the inputs (WISE_12). ...
    """
    named = _band_names(images, bands)
    _check_reference(named)
    name, region, galaxy_distance = _parse_galaxy(galaxy)
    dust_model, model_name = _resolve_model(model)
    selected, ignored = _select_bands(named, _model_bands(dust_model))
    distance = galaxy_distance if distance is None else distance
    distance = None if distance is None else u.Quantity(distance, u.Mpc)
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
        with _progress(len(selected), progress) as bar:
            kwargs = dict(ebv=ebv, region=region, folder=work_dir)
            if client is None:
                prepared = []
                for band, image in selected.items():
                    prepared.append(_prepare_band(band, image, **kwargs))
                    bar.update()
            else:
                futures = [client.submit(_prepare_band, band, image, **kwargs, pure=False)
                           for band, image in selected.items()]
                prepared = client.gather(futures)
                bar.update(len(futures))
        plan = _plan_tiles(prepared, resolution=resolution, pixel_scale=pixel_scale,
                           distance=distance)
        planes = _planes(work_dir, plan.shape)
        tiles = _tiles(plan.shape, tuple(int(t) for t in tile_shape))
        task = dict(model=dust_model, region=region, name=name, distance=distance)
        n_valid = n_ood = 0
        with _progress(len(tiles), progress) as bar:
            if client is None:
                results = (_tile(box, prepared, plan, **task) for box in tiles)
            else:
                from distributed import as_completed  # optional extra, needed only here
                bands_f, plan_f, model_f = client.scatter([prepared, plan, dust_model],
                                                          broadcast=True)
                task['model'] = model_f
                results = (f.result() for f in as_completed(
                    [client.submit(_tile, box, bands_f, plan_f, **task, pure=False)
                     for box in tiles]))
            for result in results:
                _write_tile(planes, result)
                n_valid += result['n_valid']
                n_ood += result['n_ood']
                bar.update()
        meta = _meta(dust_model, model_name, selected, ignored, plan, distance, ebv, galaxy,
                     n_ood / max(n_valid, 1))
        # the package's own writer, reading one memory-mapped plane at a time
        mask = planes['flags'] != 0
        maps = [(target, CCDData(planes[target], unit=unit, wcs=plan.wcs.deepcopy(),
                                 uncertainty=StdDevUncertainty(planes[f'{target}_err']),
                                 mask=mask, meta=dict(meta, quantity=target)))
                for target, unit in TARGETS.items()]
        write_dust_maps(NDCollection(maps, aligned_axes='all',
                                     meta=dict(meta, flags=planes['flags'])),
                        output, overwrite=overwrite)
        del maps, mask, planes
    finally:
        if scratch is not None:
            scratch.cleanup()

    if n_ood:
        warnings.warn(f'{meta["out_of_domain_fraction"]:.1%} of the galaxy pixels ({n_ood} '
                      f'of {n_valid}) lie outside the training domain of the model (colours '
                      'outside the training range or too few bands); they are masked '
                      "(FLAGS bit OUT_OF_DOMAIN).", OutOfDomainWarning)
    return dict(meta, path=str(output), shape=plan.shape, tiles=len(tiles))


def _plan_tiles(prepared, *, resolution, pixel_scale, distance):
    """align_images' plan (as estimate_dust_maps asks for it) from the prepared bands' headers."""
    stand_ins = {b['band']: SimpleNamespace(shape=b['shape'], wcs=b['wcs'], unit=OUTPUT_UNIT,
                                            meta={'psf_fwhm': b['psf_fwhm'] * u.arcsec})
                 for b in prepared}
    # estimate_dust_maps: a physical FWHM is a resolution, anything else a target
    physical = isinstance(resolution, u.Quantity) and \
        resolution.unit.physical_type == 'length'
    _, target_fwhm, fwhms, scale, out_wcs, out_shape = _plan(
        stand_ins, target=None if physical else resolution,
        resolution=resolution if physical else None, distance=distance,
        pixel_scale=pixel_scale, footprint='intersection', output_wcs=None, shape_out=None)
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
    planes = {'flags': np.lib.format.open_memmap(os.path.join(folder, 'flags.npy'), 'w+',
                                                 np.int16, shape)}
    for target in TARGETS:
        for key in (target, f'{target}_err'):
            planes[key] = np.lib.format.open_memmap(os.path.join(folder, f'{key}.npy'),
                                                    'w+', np.float64, shape)
    return planes


def _write_tile(planes, result):
    y0, y1, x0, x1 = result['box']
    planes['flags'][y0:y1, x0:x1] = result['flags']
    for target in TARGETS:
        planes[target][y0:y1, x0:x1], planes[f'{target}_err'][y0:y1, x0:x1] = result[target]


def _meta(model, model_name, selected, ignored, plan, distance, ebv, galaxy, fraction):
    """maps.meta as estimate_dust_maps gives it (without flags)."""
    return {
        'model': dict(getattr(model, 'card', None) or {}),
        'model_name': model_name,
        'inputs': list(selected),
        'ignored_bands': ignored,
        'psf_fwhm': plan.target_fwhm * u.arcsec,
        'pixel_scale': plan.scale * u.arcsec,
        'distance': distance,
        'ebv': ebv,
        'galaxy': _galaxy_info(galaxy),
        'out_of_domain_fraction': fraction,
        'version': __version__,
    }
