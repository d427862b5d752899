"""
Matching the PSF of an image to a broader one.

`make_matching_kernel` builds the convolution kernel between two PSFs
(photutils' `~photutils.psf_matching.create_matching_kernel` with a window),
`kernel_quality` measures how well it reproduces the target, and
`match_psf` convolves an image to the target PSF (scipy FFTs, masked and NaN
pixels filled by normalised convolution, the uncertainty propagated).

Uses `astro_dustml.bands` and ``imaging.io``, ``imaging.psf``.
"""

import os
from functools import partial

import astropy.units as u
import numpy as np
from astropy.convolution import Kernel2D, convolve_fft
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy import fft as _scipy_fft

from ..bands import get_band
from .io import _bad_pixels, _parse_image
from .psf import _as_arcsec, _as_psf, _normalised, _psf_dir, gaussian_psf, load_psf, psf_fwhm

__all__ = ['make_matching_kernel', 'kernel_quality', 'match_psf']


try:  # photutils >= 3.0
    from photutils.psf_matching import SplitCosineBellWindow
    from photutils.psf_matching import make_kernel as _make_kernel
except ImportError:  # pragma: no cover - photutils 2.x
    from photutils.psf.matching import SplitCosineBellWindow, create_matching_kernel

    def _make_kernel(source_psf, target_psf, *, window=None, regularization=None):
        # photutils 2 has no regularization: the window alone tames the ratio
        return create_matching_kernel(source_psf, target_psf, window=window)


# Relative tolerance below which two FWHMs count as equal (no convolution)
_FWHM_RTOL = 1e-3


def _workers(parallel):
    """Thread count from a ``parallel=`` option: False/None/1 -> 1, True -> all cores."""
    if parallel is None or parallel is False:
        return 1
    if parallel is True:
        return os.cpu_count() or 1
    if isinstance(parallel, (int, np.integer)) and not isinstance(parallel, bool) \
            and parallel >= 1:
        return int(parallel)
    raise ValueError(f'parallel must be True, False or a number of threads >= 1, '
                     f'got {parallel!r}.')


def _fft_kwargs(workers):
    """convolve_fft options for scipy's FFT, threaded over ``workers``."""
    # scipy's pocketfft releases the GIL and splits multi-dimensional
    # transforms over threads; numpy's (astropy's default) does neither
    return dict(fftn=partial(_scipy_fft.fftn, workers=workers),
                ifftn=partial(_scipy_fft.ifftn, workers=workers))


def _default_window():
    # Keep frequencies up to 0.2 of Nyquist fully, taper to zero by 0.5:
    # the source OTF is negligible beyond that for any target broader than
    # the source, and the taper stops ringing (Aniano et al. 2011).
    return SplitCosineBellWindow(alpha=0.3, beta=0.2)


def _pad_to(array, size):
    pad = (size - array.shape[0]) // 2
    return np.pad(array, pad) if pad > 0 else array


def _crop(array, size):
    c, h = array.shape[0] // 2, size // 2
    return array[c - h:c + h + 1, c - h:c + h + 1] if array.shape[0] > size else array


def _to_size(array, size):
    """Zero-pad or crop a centred odd square array to ``size`` pixels."""
    return _crop(_pad_to(array, size), size)


def _check_broader(source_fwhm, target_fwhm):
    if target_fwhm < source_fwhm * (1 - _FWHM_RTOL):
        raise ValueError(
            f'The target PSF (FWHM {target_fwhm:.3g}) is sharper than the source PSF '
            f'(FWHM {source_fwhm:.3g}): convolution can only broaden a PSF. Choose a '
            f'target at least as broad as the source, e.g. the worst PSF of the set.')


def make_matching_kernel(source, target, *, pixel_scale, window=None,
                         regularization=1e-4, psf_dir=None, size=None):
    """
    Build the kernel that turns a source PSF into a broader target PSF.

    Parameters
    ----------
    source, target : `~astropy.units.Quantity`, str, path-like or `~astropy.nddata.NDData`
        Each a FWHM (a Gaussian PSF), a band name (its PSF image from the PSF
        folder when one is configured, else a Gaussian of its registry FWHM),
        a PSF FITS file or an NDData PSF (see `load_psf`).
    pixel_scale : `~astropy.units.Quantity`
        Pixel size of the image the kernel will be applied to; PSF images are
        resampled to it with photutils' ``resize_psf``.
    window : callable, optional
        photutils window for the Fourier-ratio kernel; default a split cosine
        bell (alpha 0.3, beta 0.2). Unused when both PSFs are Gaussian (the
        kernel is then the analytic Gaussian of width
        sqrt(FWHM_target^2 - FWHM_source^2)).
    regularization : float, optional
        Passed to photutils (OTF amplitude threshold).
    psf_dir : str, optional
        Folder of PSF images; default ``conf.psf_dir``.
    size : int, optional
        Odd kernel width in pixels (PSF images are padded or cropped to it).

    Returns
    -------
    kernel : `~astropy.nddata.NDData`
        Kernel summing to one; ``meta`` holds ``'pixel_scale'``,
        ``'source_fwhm'``, ``'target_fwhm'`` and ``'quality'`` (see
        `kernel_quality`; 0 is perfect).

    Raises
    ------
    ValueError
        If the target PSF is sharper than the source.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_dustml.imaging import make_matching_kernel
    >>> kernel = make_matching_kernel(6 * u.arcsec, 10 * u.arcsec,
    ...                               pixel_scale=1 * u.arcsec)
    >>> kernel.meta['quality'] < 0.01
    True
    """
    pixel_scale = _as_arcsec(pixel_scale, 'pixel_scale')
    psf_dir = _psf_dir(psf_dir)
    src = _as_psf(source, pixel_scale, psf_dir=psf_dir)
    tgt = _as_psf(target, pixel_scale, psf_dir=psf_dir)
    src_fwhm, tgt_fwhm = src.meta['fwhm'], tgt.meta['fwhm']
    _check_broader(src_fwhm, tgt_fwhm)
    gaussian = src.meta['source'] == 'gaussian' and tgt.meta['source'] == 'gaussian'
    if gaussian:
        width = np.sqrt(max(tgt_fwhm.to_value(u.arcsec) ** 2
                            - src_fwhm.to_value(u.arcsec) ** 2, 0)) * u.arcsec
        kernel = gaussian_psf(width, pixel_scale=pixel_scale, size=size,
                              integrate=False).data
        n = max(kernel.shape[0], src.data.shape[0], tgt.data.shape[0])
    else:
        n = size or max(src.data.shape[0], tgt.data.shape[0])
        src_a, tgt_a = _to_size(src.data, n), _to_size(tgt.data, n)
        kernel = _make_kernel(src_a, tgt_a, window=window or _default_window(),
                              regularization=regularization)
        kernel = kernel / kernel.sum()
    quality = kernel_quality(_to_size(src.data, n), _to_size(kernel, n), _to_size(tgt.data, n))
    return NDData(kernel, meta={'pixel_scale': pixel_scale, 'source_fwhm': src_fwhm,
                                'target_fwhm': tgt_fwhm, 'quality': quality})


def kernel_quality(source_psf, kernel, target_psf):
    """
    How well a kernel turns the source PSF into the target PSF.

    Returns ``D = sum |source (x) kernel - target|`` for PSFs normalised to
    unit sum (Aniano et al. 2011, Eq. 20): 0 for a perfect kernel, 2 at
    worst.  All three arrays share one pixel scale.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_dustml.imaging import gaussian_psf, kernel_quality
    >>> p = gaussian_psf(4 * u.arcsec, pixel_scale=1 * u.arcsec, size=41).data
    >>> k = gaussian_psf(3 * u.arcsec, pixel_scale=1 * u.arcsec, size=41,
    ...                  integrate=False).data
    >>> q = gaussian_psf(5 * u.arcsec, pixel_scale=1 * u.arcsec, size=41).data
    >>> kernel_quality(p, k, q) < 0.01
    True
    """
    source_psf, kernel, target_psf = (np.asarray(a, dtype=float) / np.sum(a)
                                      for a in (source_psf, kernel, target_psf))
    n = max(a.shape[0] for a in (source_psf, kernel, target_psf))
    source_psf, target_psf = _pad_to(source_psf, n), _pad_to(target_psf, n)
    result = convolve_fft(source_psf, kernel, normalize_kernel=False, boundary='fill',
                          fill_value=0.0, **_fft_kwargs(1))
    return float(np.abs(result - target_psf).sum())


def _pixel_scale(wcs):
    scales = proj_plane_pixel_scales(wcs.celestial) * u.deg
    return np.sqrt(scales[0] * scales[1]).to(u.arcsec)


def match_psf(image, target, *, kernel=None, source=None, window=None,
              regularization=1e-4, psf_dir=None, min_coverage=0.5, parallel=False):
    """
    Convolve an image to a broader PSF.

    The convolution is astropy's `~astropy.convolution.convolve_fft`. Masked
    and NaN pixels are interpolated over (as Dobbels & Baes 2021 do for
    masked foreground stars): each output pixel is the kernel-weighted mean of
    the good pixels around it.  A pixel stays masked when less than
    ``min_coverage`` of the kernel weight around it falls on good data, and
    pixels that were NaN stay NaN and masked.  The variance is convolved
    with the squared kernel, so the per-pixel uncertainty is exact for
    independent input noise (the output noise is correlated on the scale of
    the target PSF).  A fractional error common to the whole map (calibration
    and extinction, ``meta['systematic_error']`` as
    `~astro_dustml.imaging.prepare_image` sets it) is taken out first and
    added back after: convolution does not average it down.

    Parameters
    ----------
    image : `~astropy.nddata.CCDData` or any input of `astro_dustml.imaging.read_images`
        Its PSF FWHM is ``meta['psf_fwhm']`` or the band's registry value.
    target : `~astropy.units.Quantity`, str or PSF
        Target FWHM, band name or PSF image (see `make_matching_kernel`).
    kernel : path-like, array, `~astropy.nddata.NDData` or `~astropy.convolution.Kernel2D`, optional
        A ready kernel (e.g. Aniano et al. 2011); resampled to the image
        pixels when it carries its own pixel scale (FITS header or
        ``meta['pixel_scale']``); a bare array must already be on them.
    source : optional
        The image's PSF when not the Gaussian of its FWHM (a band name, file
        or NDData).
    window, regularization, psf_dir
        Passed to `make_matching_kernel`.
    min_coverage : float, optional
        Minimum kernel-weighted fraction of good pixels for an output pixel
        to be unmasked.
    parallel : bool or int, optional
        Threads for the FFTs (scipy's): False for one, True for all cores,
        or a number. The result does not depend on it.

    Returns
    -------
    matched : `~astropy.nddata.CCDData`
        New image with ``meta['psf_fwhm']`` set to the target FWHM and
        ``meta['kernel_quality']``.

    Raises
    ------
    ValueError
        If the target PSF is sharper than the image's own.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.nddata import CCDData
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.imaging import match_psf
    >>> wcs = WCS(naxis=2); wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> wcs.wcs.cdelt = [-1 / 3600, 1 / 3600]
    >>> data = np.zeros((101, 101)); data[50, 50] = 1.0
    >>> image = CCDData(data, unit='MJy/sr', wcs=wcs,
    ...                 meta={'band': 'WISE_3.4', 'psf_fwhm': 6 * u.arcsec})
    >>> matched = match_psf(image, 18 * u.arcsec)
    >>> matched.meta['psf_fwhm'], round(float(matched.data.sum()), 4)
    (<Quantity 18. arcsec>, 1.0)
    """
    workers = _workers(parallel)
    image = _parse_image(image)
    pixel_scale = _pixel_scale(image.wcs)
    src_fwhm = image.meta.get('psf_fwhm')
    if source is not None:
        src_spec = source
        src_fwhm = psf_fwhm(source) if src_fwhm is None else src_fwhm
    else:
        src_fwhm = get_band(image.meta['band']).fwhm if src_fwhm is None else src_fwhm
        src_spec = src_fwhm
    src_fwhm = _as_arcsec(u.Quantity(src_fwhm), 'psf_fwhm')
    if target is None:
        raise ValueError('Give the target FWHM (target=) that the image is matched to.')
    tgt_fwhm = psf_fwhm(target)
    _check_broader(src_fwhm, tgt_fwhm)
    quality = None
    if kernel is not None:
        kernel_arr = _user_kernel(kernel, pixel_scale)
    else:
        if abs(tgt_fwhm - src_fwhm) <= _FWHM_RTOL * src_fwhm and source is None:
            # _parse_image already returned a copy: nothing to convolve
            image.meta.update(psf_fwhm=src_fwhm, kernel_quality=0.0)
            return image
        made = make_matching_kernel(src_spec, target, pixel_scale=pixel_scale, window=window,
                                    regularization=regularization, psf_dir=psf_dir)
        kernel_arr, quality = made.data, made.meta['quality']
    data, variance, mask = _convolve(image, kernel_arr, min_coverage,
                                     image.meta.get('systematic_error', 0.0), workers)
    out = CCDData(data, unit=image.unit, wcs=image.wcs.deepcopy(), meta=dict(image.meta),
                  uncertainty=None if variance is None else StdDevUncertainty(np.sqrt(variance)),
                  mask=mask)
    out.meta['psf_fwhm'] = tgt_fwhm
    out.meta['kernel_quality'] = quality
    return out


def _user_kernel(kernel, pixel_scale):
    if isinstance(kernel, Kernel2D):
        array = kernel.array
    elif isinstance(kernel, np.ndarray):
        array = kernel
    else:
        try:
            loaded = load_psf(kernel, pixel_scale=pixel_scale)
        except ValueError as exc:
            raise ValueError(f'Cannot use the kernel: {exc}') from exc
        return loaded.data
    array = np.asarray(array, dtype=float)
    if array.ndim != 2 or array.shape[0] % 2 == 0 or array.shape[1] % 2 == 0:
        raise ValueError(f'A kernel array must be 2D with odd sides, got {array.shape}.')
    return _normalised(array, 'kernel')


def _convolve(image, kernel, min_coverage, systematic, workers=1):
    data = np.asarray(image.data, dtype=float)
    nan = ~np.isfinite(data)
    bad = _bad_pixels(data, image.mask)
    filled = np.where(bad, 0.0, data)
    kwargs = dict(normalize_kernel=False, boundary='fill', fill_value=0.0,
                  nan_treatment='fill', allow_huge=True, **_fft_kwargs(workers))
    # Three convolutions are the minimum: good-pixel weights and data share the
    # kernel but astropy returns only the real part of one array per call, and
    # the variance needs the squared kernel. In-place steps keep the number of
    # full-size temporaries (and the memory peak) low.
    var = None
    if image.uncertainty is not None:
        var = np.square(np.asarray(image.uncertainty.array, dtype=float))
        var -= np.square(systematic * filled)  # keep the independent part
        np.maximum(var, 0.0, out=var)
        var[bad] = 0.0
        np.nan_to_num(var, copy=False, nan=0.0)
    # Kernel-weighted mean of the good pixels (astropy's NaN interpolation,
    # written out so that the variance below uses the same weights)
    coverage = convolve_fft(~bad, kernel, **kwargs)
    with np.errstate(invalid='ignore', divide='ignore'):
        result = convolve_fft(filled, kernel, **kwargs)
        del filled
        result /= coverage
    variance = None
    if var is not None:
        variance = convolve_fft(var, kernel ** 2, **kwargs)
        del var
        with np.errstate(invalid='ignore', divide='ignore'):
            variance /= np.square(coverage)
            variance += np.square(systematic * result)
        # FFT round-off leaves tiny negative variances next to bright (or masked,
        # zero-weight) pixels: a variance is >= 0
        np.maximum(variance, 0.0, out=variance, where=np.isfinite(variance))
    mask = (coverage < min_coverage) | nan
    result[nan] = np.nan
    result[coverage <= 0] = np.nan
    if variance is not None:
        variance[coverage <= 0] = np.nan
        variance[nan] = np.nan
    return result, variance, mask
