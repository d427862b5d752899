"""
A common resolution and pixel grid for a set of prepared images.

`align_images` convolves every band to one PSF (by default the worst in the
set) and reprojects it with `reproject`'s adaptive, anti-aliased resampling
onto one celestial TAN grid whose pixels are, by default, as large as that
PSF's FWHM (paper Sect. 2.2).
"""

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from threading import Lock

import astropy.units as u
import numpy as np
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.stats import gaussian_fwhm_to_sigma
from ndcube import NDCollection
from reproject import reproject_adaptive
from reproject.mosaicking import find_optimal_celestial_wcs

from .._checks import _check_planned
from ..bands import get_band
from .io import _bad_pixels, _parse_collection
from .prepare import OUTPUT_UNIT
from .psf import _as_arcsec, psf_fwhm
from .psf_matching import _FWHM_RTOL, _pixel_scale, _workers, match_psf

__all__ = ['align_images']


def _angle(value, distance, name):
    """An angle, or a length turned into an angle at ``distance``."""
    if value is None:
        return None
    value = u.Quantity(value)
    if value.unit.is_equivalent(u.arcsec):
        return value.to(u.arcsec)
    if value.unit.is_equivalent(u.pc):
        if distance is None:
            raise ValueError(f'{name} is a physical length ({value}); give distance= '
                             'to turn it into an angle.')
        distance = u.Quantity(distance)
        if not distance.unit.is_equivalent(u.Mpc):
            raise TypeError(f'distance must be a length Quantity, got {distance!r}.')
        return (value / distance).to(u.arcsec, u.dimensionless_angles())
    raise TypeError(f'{name} must be an angle or a length Quantity, got {value!r}.')


def _footprint_box(image, out_wcs, out_shape):
    """Bounding box (x0, x1, y0, y1) of an image's edges on the output grid."""
    ny, nx = image.shape
    xs, ys = np.arange(nx), np.arange(ny)
    edge = np.concatenate([
        np.stack([xs, np.zeros(nx)], 1), np.stack([xs, np.full(nx, ny - 1)], 1),
        np.stack([np.zeros(ny), ys], 1), np.stack([np.full(ny, nx - 1), ys], 1)])
    world = image.wcs.pixel_to_world(edge[:, 0], edge[:, 1])
    x, y = out_wcs.world_to_pixel(world)
    return (max(0, int(np.floor(np.nanmin(x)))), min(out_shape[1], int(np.ceil(np.nanmax(x))) + 1),
            max(0, int(np.floor(np.nanmin(y)))), min(out_shape[0], int(np.ceil(np.nanmax(y))) + 1))


def _output_grid(images, pixel_scale, footprint):
    try:
        wcs, shape = find_optimal_celestial_wcs(
            [(im.shape, im.wcs) for im in images.values()], resolution=pixel_scale,
            projection='TAN')
    except Exception as exc:  # e.g. frames that cannot be combined
        raise ValueError(f'Cannot build a common grid for these images: {exc}') from exc
    if footprint == 'union':
        return wcs, shape
    boxes = np.array([_footprint_box(im, wcs, shape) for im in images.values()])
    x0, y0 = boxes[:, 0].max(), boxes[:, 2].max()
    x1, y1 = boxes[:, 1].min(), boxes[:, 3].min()
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError('The images do not overlap on the sky (their common footprint '
                         'is empty): they are mismatched members, e.g. different '
                         "galaxies. Check their WCS, or use footprint='union'.")
    return wcs[y0:y1, x0:x1], (int(y1 - y0), int(x1 - x0))


def align_images(collection, *, target=None, pixel_scale=None, distance=None,
                 resolution=None, footprint='intersection', psf_dir=None,
                 output_wcs=None, shape_out=None, kernel='hann', max_masked=0.5,
                 parallel=False):
    """
    Bring prepared images to one PSF and one pixel grid.

    Parameters
    ----------
    collection : `~ndcube.NDCollection` or mapping
        Prepared images (`astro_dustml.imaging.prepare_images`): surface
        brightness, each with ``meta['psf_fwhm']`` (else the registry FWHM).
    target : str or `~astropy.units.Quantity`, optional
        The PSF to match to: a band name (its FWHM) or a FWHM. Default: the
        worst PSF in the collection.
    pixel_scale : `~astropy.units.Quantity`, optional
        Output pixel size, an angle or a physical length (with
        ``distance``; the paper uses 150 pc, 400 pc, 1 kpc and 3 kpc).
        Default: the target FWHM, as in the paper.
    distance : `~astropy.units.Quantity`, optional
        Distance of the galaxy, for physical ``pixel_scale``/``resolution``.
    resolution : `~astropy.units.Quantity`, optional
        Target FWHM as an angle or physical length; the broader of this and
        ``target`` is used.
    footprint : {'intersection', 'union'}, optional
        Output grid over the sky area all images cover, or any image covers.
        Areas a band does not cover are masked in that band.
    psf_dir : str, optional
        Folder of PSF images; when given (or set in ``conf.psf_dir``) the
        kernels are built from the real PSFs (see
        `astro_dustml.imaging.make_matching_kernel`), else from Gaussians.
    output_wcs, shape_out : optional
        A ready output grid (celestial WCS and shape) instead of building one.
    kernel : {'hann', 'gaussian'}, optional
        Averaging kernel of `reproject.reproject_adaptive`. The default Hann
        kernel adds little blur; the Gaussian one anti-aliases more strongly
        but broadens the PSF by about 1.5 output pixels (FWHM), which at the
        default pixel size nearly doubles it.
    max_masked : float, optional
        An output pixel is masked when more than this fraction of its
        (kernel-weighted) input pixels were masked or outside the image.
    parallel : bool or int, optional
        Threads: bands are matched and reprojected concurrently (and the
        FFTs of a band use the threads left over). False for one, True for
        all cores, or a number. The result does not depend on it.

    Returns
    -------
    aligned : `~ndcube.NDCollection`
        ``aligned_axes='all'``; every member a `~astropy.nddata.CCDData` in
        MJy/sr on the same WCS and shape with ``StdDevUncertainty`` and mask,
        ``meta['psf_fwhm']`` the target FWHM. The collection ``meta`` holds
        ``'psf_fwhm'``, ``'pixel_scale'``, ``'wcs'``, ``'shape'`` and
        ``'distance'``.

    Notes
    -----
    The uncertainty is resampled like the data (the standard deviation, not
    the variance, is averaged): after PSF matching the noise is correlated
    on the scale of the output pixels, so averaging does not reduce it.

    Raises
    ------
    ValueError
        If the target PSF is sharper than a member's, the images do not
        overlap, or a member is not a prepared surface-brightness map.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.nddata import CCDData
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.imaging import align_images
    >>> def image(scale, fwhm):
    ...     wcs = WCS(naxis=2); wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    ...     wcs.wcs.crval = [150, 2]; wcs.wcs.crpix = [33, 33]
    ...     wcs.wcs.cdelt = [-scale / 3600, scale / 3600]
    ...     return CCDData(np.ones((64, 64)), unit='MJy/sr', wcs=wcs,
    ...                    meta={'psf_fwhm': fwhm * u.arcsec})
    >>> aligned = align_images({'WISE_3.4': image(1.375, 6), 'SPIRE_250': image(6, 18)})
    >>> aligned.meta['psf_fwhm'], aligned.meta['pixel_scale']
    (<Quantity 18. arcsec>, <Quantity 18. arcsec>)
    >>> aligned['WISE_3.4'].shape == aligned['SPIRE_250'].shape
    True
    """
    images = _members(collection)
    target_spec, target_fwhm, fwhms, scale, out_wcs, out_shape = _plan(
        images, target=target, resolution=resolution, distance=distance,
        pixel_scale=pixel_scale, footprint=footprint, output_wcs=output_wcs,
        shape_out=shape_out)

    workers = _workers(parallel)
    threads = min(workers, len(images))
    # One band at a time in PSF matching (its FFTs use every thread and most
    # of the memory); the other threads reproject meanwhile, so the memory
    # peak stays that of one convolution
    fft_lock = Lock() if threads > 1 else nullcontext()
    # astropy's WCS is not thread-safe: every task gets its own output WCS
    tasks = [(name, image, out_wcs.deepcopy()) for name, image in images.items()]

    def run(task):
        name, image, wcs = task
        member = _align_one(name, image, fwhms[name], target_spec, target_fwhm,
                            psf_dir=psf_dir, out_wcs=wcs, out_shape=out_shape,
                            kernel=kernel, max_masked=max_masked, workers=workers,
                            fft_lock=fft_lock)
        member.meta.update(psf_fwhm=target_fwhm, pixel_scale=scale)
        return name, member

    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            members = list(pool.map(run, tasks))
    else:
        members = [run(task) for task in tasks]
    meta = dict(getattr(collection, 'meta', None) or {})
    meta.update(psf_fwhm=target_fwhm, pixel_scale=scale.to(u.arcsec), wcs=out_wcs,
                shape=out_shape, distance=None if distance is None else u.Quantity(distance))
    return NDCollection(members, aligned_axes='all', meta=meta)


def _plan(images, *, target, resolution, distance, pixel_scale, footprint, output_wcs,
          shape_out, grid_bytes=None):
    """
    Target PSF and output grid of `align_images` from the members' metadata.

    Only ``shape``, ``wcs``, ``unit`` and ``meta`` of the members are read, so
    a tiled run (`astro_dustml.maps.mosaic`) plans from headers alone. Returns
    ``(target_spec, target_fwhm, fwhms, pixel_scale, out_wcs, out_shape)``.
    """
    target_spec, target_fwhm, fwhms = _target(images, target)
    extra = _angle(resolution, distance, 'resolution')
    if extra is not None and extra > target_fwhm:
        target_fwhm = target_spec = extra
    broader = [n for n, f in fwhms.items() if f > target_fwhm * (1 + _FWHM_RTOL)]
    if broader:
        raise ValueError(
            f'The target PSF (FWHM {target_fwhm:.3g}) is sharper than that of '
            f'{", ".join(broader)}: convolution cannot sharpen an image. Use a '
            'broader target (the default is the worst PSF of the set) or drop those bands.')
    scale = _angle(pixel_scale, distance, 'pixel_scale')
    scale = target_fwhm if scale is None else scale
    if output_wcs is None:
        out_wcs, out_shape = _output_grid(images, scale, footprint)
    else:
        if shape_out is None:
            raise ValueError('Give shape_out= together with output_wcs=.')
        out_wcs, out_shape = output_wcs.celestial, tuple(shape_out)
        scale = _pixel_scale(out_wcs)
    _check_memory(images, fwhms, target_fwhm, scale, out_shape,
                  _GRID_BYTES if grid_bytes is None else grid_bytes)
    return target_spec, target_fwhm, fwhms, scale, out_wcs, out_shape


# Planned bytes per pixel (measured with tracemalloc, rounded up): the aligned
# grid (reproject_adaptive's planes, coordinates and footprint, and the
# aligned members), a PSF-matching FFT (per pixel of the padded array: the
# padded data, weights, variance and their transforms) and a kernel (the
# source and target PSFs, the kernel and the copies of kernel_quality)
_GRID_BYTES = 256
_FFT_BYTES = 64
_KERNEL_BYTES = 96


def _kernel_side(fwhm, target_fwhm, pixel_scale):
    """Side in pixels of the Gaussian matching kernel (and target PSF) of `make_matching_kernel`."""
    sigma = (target_fwhm / pixel_scale).to_value(u.one) * gaussian_fwhm_to_sigma
    return max(3, 2 * int(np.ceil(4 * sigma)) + 1)


def _check_memory(images, fwhms, target_fwhm, scale, out_shape, grid_bytes=_GRID_BYTES):
    """
    Refuse a plan whose grid or PSF matching would allocate more than ``conf.memory_limit``.

    Planned from the members' shapes and WCS alone (before any allocation):
    the output grid (naming the band whose footprint or pixels make it that
    large) and, per band, the matching kernel and its FFTs.
    """
    ny, nx = (int(n) for n in out_shape)
    scale = u.Quantity(scale, u.arcsec)
    scales = {name: _pixel_scale(im.wcs) for name, im in images.items()}
    if ny * nx * grid_bytes > 0:
        spans = {name: (np.sqrt(im.shape[0] * im.shape[1]) * scales[name]).to(u.deg)
                 for name, im in images.items()}
        widest = max(spans, key=spans.get)
        others = [s for n, s in spans.items() if n != widest]
        typical = np.median(u.Quantity(others)) if others else None
        if typical is not None and spans[widest] > 4 * typical:
            why = (f'{widest} makes it this large: its image spans {spans[widest]:.3g} on a '
                   f'side (pixels of {scales[widest]:.3g}), the others about {typical:.3g}. '
                   f'Check the WCS of {widest} (CDELT or CD: the pixel size), or leave it out.')
        else:
            why = (f'The images span up to {spans[widest]:.3g} ({widest}) in pixels of '
                   f'{scale:.3g}. Give a larger pixel_scale (or resolution), or cutouts.')
        _check_planned(ny * nx * grid_bytes,
                       f'The common grid planned for the images ({ny} x {nx} pixels of '
                       f'{scale:.3g})', why)
    for name, image in images.items():
        if abs(fwhms[name] - target_fwhm) <= _FWHM_RTOL * target_fwhm:
            continue  # not convolved
        side = _kernel_side(fwhms[name], target_fwhm, scales[name])
        fy, fx = (int(2 ** np.ceil(np.log2(n + side))) for n in image.shape)
        need = max(side * side * _KERNEL_BYTES, fy * fx * _FFT_BYTES)
        _check_planned(
            need, f'PSF matching {name} to FWHM {target_fwhm:.3g} (a {side} x {side} pixel '
            f'kernel on its {image.shape[0]} x {image.shape[1]} image of {scales[name]:.3g} '
            f'pixels, FFTs of {fy} x {fx})',
            f'Its pixels are {(target_fwhm / scales[name]).to_value(u.one):.3g} times smaller '
            f'than the target FWHM: check the WCS of {name} (CDELT or CD), or cut the image '
            'to the galaxy.')


def _members(collection):
    """
    Band -> image, without copying in-memory CCDData members.

    Nothing here writes into the members (matching and reprojection make new
    arrays), so only a shallow CCDData with its own ``meta`` is made for each;
    other inputs go through the usual parser (which copies).
    """
    if isinstance(collection, Mapping) and all(
            isinstance(im, CCDData) and im.wcs is not None and im.unit is not None
            and (im.uncertainty is None or isinstance(im.uncertainty, StdDevUncertainty))
            for im in collection.values()):
        out = {}
        for key, image in collection.items():
            try:
                band = get_band(key).name
                same = band == get_band((image.meta or {}).get('band', band)).name
            except ValueError:
                same = False
            if not same or band in out:
                # the parser's messages and warnings for these cases
                return _parse_collection(collection)
            # own WCS copy: astropy's WCS is not thread-safe and bands may share one
            out[band] = CCDData(image.data, unit=image.unit, wcs=image.wcs.deepcopy(),
                                uncertainty=image.uncertainty, mask=image.mask,
                                meta=dict(image.meta or {}, band=band), copy=False)
        if out:
            return out
    return _parse_collection(collection)


def _target(images, target):
    """Target PSF (a band name or a FWHM, for match_psf), its FWHM, and each member's FWHM."""
    for name, image in images.items():
        if not image.unit.is_equivalent(OUTPUT_UNIT):
            raise ValueError(
                f'{name} is in {image.unit}, not a surface brightness: mismatched member. '
                'Run astro_dustml.imaging.prepare_images on the collection first.')
    fwhms = {name: _as_arcsec(u.Quantity(im.meta.get('psf_fwhm', get_band(name).fwhm)),
                              'psf_fwhm') for name, im in images.items()}
    if target is None:
        target_spec = max(fwhms, key=fwhms.get)  # the worst PSF of the set
        target_fwhm = fwhms[target_spec]
    elif isinstance(target, str):
        target_spec = get_band(target).name
        target_fwhm = fwhms.get(target_spec, get_band(target_spec).fwhm)
    else:
        target_fwhm = target_spec = psf_fwhm(target)
    return target_spec, target_fwhm, fwhms


def _align_one(name, image, fwhm, target_spec, target_fwhm, *, psf_dir, out_wcs,
               out_shape, kernel, max_masked, workers=1, fft_lock=None):
    """Match one band to the target PSF and reproject it onto the output grid."""
    matched = _match_one(name, image, fwhm, target_spec, target_fwhm, psf_dir=psf_dir,
                         workers=workers, fft_lock=fft_lock)
    return _reproject(matched, out_wcs, out_shape, kernel, max_masked)


def _match_one(name, image, fwhm, target_spec, target_fwhm, *, psf_dir, workers=1,
               fft_lock=None):
    """The PSF-matching half of `_align_one`."""
    image.meta['psf_fwhm'] = fwhm  # image is align_images' own (shallow) copy
    if abs(fwhm - target_fwhm) <= _FWHM_RTOL * target_fwhm:
        return image  # already at the target resolution
    with fft_lock or nullcontext():
        if psf_dir is not None:
            return match_psf(image, target_spec, source=name, psf_dir=psf_dir,
                             parallel=workers)
        return match_psf(image, target_fwhm, parallel=workers)


def _handedness(wcs):
    """Sign of the determinant of a celestial WCS's pixel matrix (-1: east to the left)."""
    return np.sign(np.linalg.det(wcs.celestial.pixel_scale_matrix))


def _to_parity(image, out_wcs):
    """
    ``image`` mirrored in x when its WCS is of the other handedness than ``out_wcs``.

    reproject's adaptive resampling (0.21) is not mirror-symmetric: an image
    whose x axis is flipped in both data and WCS resamples up to 7% differently
    (on the mock, median Td 0.01-0.8 K) from the unflipped one, while a 180 degree
    rotation resamples identically. Mirroring the array and its WCS is exact,
    so every image reaches the resampling with the output grid's handedness
    and a flipped image gives the maps of the unflipped one.
    """
    inner = getattr(image.wcs, 'wcs', None)
    if (inner is None or image.wcs.sip is not None or image.wcs.naxis != 2
            or _handedness(image.wcs) == _handedness(out_wcs)):
        return image
    wcs = image.wcs.deepcopy()
    nx = image.shape[1]
    if wcs.wcs.has_cd():
        wcs.wcs.cd[:, 0] *= -1
    else:
        wcs.wcs.cdelt[0] *= -1
    wcs.wcs.crpix[0] = nx + 1 - wcs.wcs.crpix[0]
    wcs.wcs.set()

    def mirror(array):
        return None if array is None else np.asarray(array)[:, ::-1]

    return CCDData(mirror(image.data), unit=image.unit, wcs=wcs, mask=mirror(image.mask),
                   uncertainty=None if image.uncertainty is None
                   else StdDevUncertainty(mirror(image.uncertainty.array)),
                   meta=image.meta, copy=False)


def _reproject(image, out_wcs, out_shape, kernel, max_masked):
    if 0 in tuple(out_shape):
        # An empty grid (pixels larger than the images): reproject cannot stack
        # it; the caller (estimate_dust_maps) says what to change
        empty = np.full(tuple(out_shape), np.nan)
        return CCDData(empty, unit=image.unit, wcs=out_wcs.deepcopy(),
                       mask=np.ones(empty.shape, bool), meta=_regridded_meta(image.meta),
                       uncertainty=None if image.uncertainty is None
                       else StdDevUncertainty(empty.copy()))
    image = _to_parity(image, out_wcs)
    bad = _bad_pixels(np.asarray(image.data), image.mask)
    # One reprojection per band: the good-pixel map, the data and sigma share
    # the geometry, so they go in as one stack (reproject broadcasts leading
    # axes, computing the transformation once)
    planes = 2 if image.uncertainty is None else 3
    stack = np.empty((planes,) + bad.shape)
    np.subtract(1.0, bad, out=stack[0])
    stack[1] = image.data
    stack[1][bad] = 0.0
    if image.uncertainty is not None:
        stack[2] = image.uncertainty.array
        np.nan_to_num(stack[2], copy=False)
        stack[2][bad] = 0.0
    del bad
    # Surface brightness: average, not sum; masked input (zeroed above) enters
    # with zero weight through the 'good' map, which also gives the masked fraction
    out, footprint = reproject_adaptive(
        (stack, image.wcs), out_wcs, shape_out=(planes,) + tuple(out_shape), kernel=kernel,
        conserve_flux=False, boundary_mode='constant', boundary_fill_value=0.0,
        return_footprint=True)
    del stack
    good, num = out[0], out[1]
    err = out[2] if planes == 3 else np.zeros_like(num)
    footprint = footprint[0]
    weight = np.where(footprint > 0, good, 0.0)
    with np.errstate(invalid='ignore', divide='ignore'):
        out = num / weight
        err = err / weight
    mask = ~(weight > 1 - max_masked) | ~np.isfinite(out)
    # No input reaches these pixels: NaN rather than num / 0 (inf or NaN)
    out[weight <= 0] = np.nan
    err[weight <= 0] = np.nan
    return CCDData(out, unit=image.unit, wcs=out_wcs.deepcopy(), mask=mask,
                   uncertainty=None if image.uncertainty is None else StdDevUncertainty(err),
                   meta=_regridded_meta(image.meta))


def _regridded_meta(meta):
    """A reprojected image's meta: without the pixel maps of the input grid."""
    # a star mask of the input's pixels means nothing on the output grid, and
    # one per band would stay alive in every aligned member
    return {key: value for key, value in meta.items() if key != 'star_mask'}
