"""
The imaging chain as the later stages run it: prepare, mask stars, PSF-match, reproject.

`estimate_dust_maps`, `estimate_mosaic` and `build_training_table` run the
public steps of `astro_dustml.imaging` in one order:
`~astro_dustml.imaging.prepare_images` -> optional foreground-star masking
(`~astro_dustml.imaging.mask_foreground_stars`) ->
`~astro_dustml.imaging.align_images` (the union grid, cut to the WISE 3.4 µm
footprint). `_prepare_align_by_band` runs them one band at a time (the
target PSF and grid planned from the headers first), so that the memory
peak stays below three times the input image stack. The checks here (the
reference band present, overlapping, informative, not sign-flipped) are the
ones every caller needs before the chain starts.

Uses `astro_dustml.bands`, `astro_dustml.exceptions` and the other
``imaging`` modules.
"""

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from types import SimpleNamespace

import astropy.units as u
import numpy as np
from astropy.utils.console import ProgressBar
from ndcube import NDCollection

from ..bands import REFERENCE_BAND, get_band
from ..exceptions import MemoryLimitError
from . import stars as _stars
from .gaia import query_gaia_stars
from .align import _match_one, _plan, _reproject, align_images
from .io import _subset, _usable
from .prepare import OUTPUT_UNIT, _inside, _sky_circle, prepare_images
from .psf_matching import _workers


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, value=None):
        pass


class _StepProgress(ProgressBar):
    """A ProgressBar that names the step running: ``|===>--| 2/5 ... aligning images``."""

    def __init__(self, steps, **kwargs):
        self._steps = list(steps)
        self._width = max(len(step) for step in self._steps + ['done'])
        super().__init__(len(self._steps), **kwargs)

    def _handle_resize(self, signum=None, frame=None):
        super()._handle_resize(signum, frame)
        # room for the step's name on the same line
        self._bar_length = max(self._bar_length - self._width - 1, 10)

    def _update_console(self, value=None):
        super()._update_console(value)
        step = self._steps[value] if value < len(self._steps) else 'done'
        self._file.write(f' {step:<{self._width}s}')
        self._file.flush()


def _progress(total, enabled, *, steps=None):
    """
    A progress bar of ``total`` steps (or of the named ``steps``), or none.

    With ``steps`` (what runs before each ``update()``, in order) the bar
    names the step that runs.
    """
    if not enabled:
        return _NoProgress()
    return ProgressBar(total) if steps is None else _StepProgress(steps)


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
    return _subset(images, [b for b in images if b not in unused]), unused


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
        stars = query_gaia_stars(center, center.separation(corner))
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
    except MemoryLimitError:
        raise  # refused before anything is allocated: the all-bands path would allocate
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
    band after band in `~astro_dustml.imaging.fit_star_apertures` order (each
    band needs only its neighbour's fit). Returns ``(grids, aligned, flipped)``
    (``grids``: band -> its full-resolution grid, for `_coverage`), or None
    when the plan fails (the all-bands chain then raises the error).
    """
    bands = _subset(selected, list(selected))
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
            bands = _subset(bands, [b for b in bands if b not in found])
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
        prepared = _prepare(_subset(bands, [band]), ebv=ebv, region=region)
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
