"""Tests of PSF loading, matching kernels and PSF matching."""

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.modeling import fitting, models
from astropy.nddata import CCDData, StdDevUncertainty

from astro_dustml.imaging import (
    gaussian_psf,
    kernel_quality,
    load_psf,
    make_matching_kernel,
    match_psf,
)
from astro_dustml.tests.helpers import check_bad_input, point_source, tan_wcs


def _wcs(scale, n):
    return tan_wcs((n, n), scale)


def _point_source(scale=1.375, n=161, fwhm=6.6, total=100.0, band='WISE_12'):
    return point_source(band, scale, n, fwhm, total)


def _fwhm(array, scale):
    y, x = np.mgrid[0:array.shape[0], 0:array.shape[1]]
    c = (array.shape[0] - 1) / 2
    fit = fitting.LevMarLSQFitter()(models.Gaussian2D(array.max(), c, c, 5, 5), x, y, array)
    return 2.3548200450309493 * np.sqrt(fit.x_stddev * fit.y_stddev) * scale


def test_point_source_matched_to_wider_fwhm():
    image = _point_source()
    before = image.data.copy()
    matched = match_psf(image, 18.2 * u.arcsec)
    assert np.array_equal(image.data, before)  # input not modified
    assert image.meta['psf_fwhm'] == 6.6 * u.arcsec
    assert abs(_fwhm(matched.data, 1.375) / 18.2 - 1) < 0.03
    assert abs(matched.data.sum() / 100 - 1) < 0.01
    assert matched.meta['psf_fwhm'] == 18.2 * u.arcsec
    assert matched.unit == image.unit


def test_variance_propagation():
    # white noise of sigma s convolved with kernel k has sigma s * sqrt(sum k^2)
    image = _point_source()
    kernel = make_matching_kernel(6.6 * u.arcsec, 18.2 * u.arcsec, pixel_scale=1.375 * u.arcsec)
    matched = match_psf(image, 18.2 * u.arcsec)
    expected = 0.01 * np.sqrt((kernel.data ** 2).sum())
    assert matched.uncertainty.array[80, 80] == pytest.approx(expected, rel=1e-6)
    rng = np.random.default_rng(3)
    noise = CCDData(rng.normal(0, 1, (256, 256)), unit='MJy/sr', wcs=_wcs(1.375, 256),
                    uncertainty=StdDevUncertainty(np.ones((256, 256))),
                    meta={'band': 'WISE_12', 'psf_fwhm': 6.6 * u.arcsec})
    out = match_psf(noise, 18.2 * u.arcsec)
    inner = out.data[60:-60, 60:-60]
    assert np.std(inner) == pytest.approx(out.uncertainty.array[128, 128], rel=0.25)


def test_calibration_error_is_not_averaged_down():
    # noise 1 plus a 5% calibration error common to the whole map: after
    # matching, the noise part shrinks as sqrt(sum k^2), the 5% does not
    rng = np.random.default_rng(4)
    flux = 100 + rng.normal(0, 1, (256, 256))
    image = CCDData(flux, unit='MJy/sr', wcs=_wcs(1.375, 256),
                    uncertainty=StdDevUncertainty(np.hypot(1.0, 0.05 * flux)),
                    meta={'band': 'WISE_12', 'psf_fwhm': 6.6 * u.arcsec,
                          'systematic_error': 0.05})
    kernel = make_matching_kernel(6.6 * u.arcsec, 18.2 * u.arcsec, pixel_scale=1.375 * u.arcsec)
    out = match_psf(image, 18.2 * u.arcsec)
    expected = np.hypot(np.sqrt((kernel.data ** 2).sum()), 0.05 * out.data[128, 128])
    assert out.uncertainty.array[128, 128] == pytest.approx(expected, rel=1e-6)
    assert out.uncertainty.array[128, 128] / out.data[128, 128] > 0.05


def test_masked_pixels_interpolated():
    image = _point_source(n=101)
    image.data[:] = 2.0
    image.data[50, 50] = np.nan
    mask = np.zeros(image.shape, bool)
    mask[20:23, 20:23] = True
    image.data[20:23, 20:23] = 1e6  # a masked star
    image.mask = mask
    out = match_psf(image, 18.2 * u.arcsec)
    assert out.data[21, 21] == pytest.approx(2.0)      # interpolated over
    assert not out.mask[21, 21]
    assert np.isnan(out.data[50, 50]) and out.mask[50, 50]   # NaN stays NaN
    assert out.data[49, 50] == pytest.approx(2.0)


def test_sharper_target_is_an_error():
    with pytest.raises(ValueError, match='sharper'):
        match_psf(_point_source(), 3 * u.arcsec)
    with pytest.raises(ValueError, match='sharper'):
        make_matching_kernel('SPIRE_250', 'WISE_3.4', pixel_scale=2 * u.arcsec, psf_dir='')


def test_same_fwhm_is_a_copy():
    image = _point_source()
    out = match_psf(image, 6.6 * u.arcsec)
    assert np.array_equal(out.data, image.data) and out.data is not image.data


def test_gaussian_kernel_quality():
    kernel = make_matching_kernel(6 * u.arcsec, 18 * u.arcsec, pixel_scale=1 * u.arcsec)
    assert kernel.data.sum() == pytest.approx(1)
    assert kernel.meta['quality'] < 0.01
    assert kernel.meta['target_fwhm'] == 18 * u.arcsec
    # a wrong kernel has a poor quality
    psf_a = gaussian_psf(6 * u.arcsec, pixel_scale=1 * u.arcsec, size=101).data
    psf_b = gaussian_psf(18 * u.arcsec, pixel_scale=1 * u.arcsec, size=101).data
    assert kernel_quality(psf_a, psf_a, psf_b) > 0.5


def test_user_kernel_fits(tmp_path):
    # a kernel FITS at 0.5"/pixel applied to 1"/pixel data is resampled
    kernel = gaussian_psf(16.97 * u.arcsec, pixel_scale=0.5 * u.arcsec, integrate=False)
    path = tmp_path / 'kernel.fits'
    header = fits.Header({'CD1_1': -0.5 / 3600, 'CD2_2': 0.5 / 3600})
    fits.PrimaryHDU(kernel.data, header=header).writeto(path)
    image = _point_source(scale=1.0, n=151, fwhm=6.0)
    out = match_psf(image, 18 * u.arcsec, kernel=path)
    assert abs(_fwhm(out.data, 1.0) / 18 - 1) < 0.03
    with pytest.raises(ValueError, match='odd'):
        match_psf(image, 18 * u.arcsec, kernel=np.ones((4, 4)))


def test_load_psf_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='psf_dir'):
        load_psf('WISE_3.4', psf_dir=str(tmp_path))
    with pytest.raises(ValueError, match='pixel scale'):
        load_psf(np.ones((5, 5)))
    with pytest.raises(FileNotFoundError, match='neither'):
        load_psf('NOT_A_BAND')


def test_real_psfs(shared_data):
    psf_dir = shared_data / 'psf'
    for band, fwhm in [('WISE_12', 6.6), ('SPIRE_250', 18.2), ('GALEX_NUV', 5.05)]:
        psf = load_psf(band, psf_dir=psf_dir)
        assert psf.data.sum() == pytest.approx(1)
        assert psf.data.shape[0] % 2 == 1
        # the measured FWHM agrees with the registry (Aniano et al. 2011) within 10%
        assert abs(psf.meta['fwhm'].to_value(u.arcsec) / fwhm - 1) < 0.1
    kernel = make_matching_kernel('GALEX_NUV', 'SPIRE_250', pixel_scale=3.2 * u.arcsec,
                                  psf_dir=psf_dir)
    assert kernel.meta['quality'] < 0.15
    assert kernel.data.sum() == pytest.approx(1)


def _masked_noisy_image(n=180):
    rng = np.random.default_rng(11)
    image = _point_source(n=n)
    image.data[:] += rng.normal(0, 0.05, image.shape)
    image.data[5, 7] = np.nan
    image.mask = np.zeros(image.shape, bool)
    image.mask[40:46, 60:63] = True
    image.uncertainty = StdDevUncertainty(np.abs(rng.normal(0.05, 0.01, image.shape)))
    image.meta['systematic_error'] = 0.03
    return image


def test_threaded_fft_equals_serial_and_direct_convolution():
    """FFT threads do not change the result; the result is the direct convolution."""
    from astropy.convolution import convolve
    image = _masked_noisy_image()
    serial = match_psf(image, 18.2 * u.arcsec)
    threaded = match_psf(image, 18.2 * u.arcsec, parallel=2)
    assert np.array_equal(serial.data, threaded.data, equal_nan=True)
    assert np.array_equal(serial.uncertainty.array, threaded.uncertainty.array,
                          equal_nan=True)
    assert np.array_equal(serial.mask, threaded.mask)
    # independent truth: direct (non-FFT) convolution of the same weights
    kernel = make_matching_kernel(6.6 * u.arcsec, 18.2 * u.arcsec,
                                  pixel_scale=1.375 * u.arcsec).data
    bad = ~np.isfinite(image.data) | image.mask
    direct = dict(boundary='fill', fill_value=0.0, normalize_kernel=False,
                  nan_treatment='fill')
    coverage = convolve((~bad).astype(float), kernel, **direct)
    expected = convolve(np.where(bad, 0.0, image.data), kernel, **direct) / coverage
    good = ~serial.mask
    np.testing.assert_allclose(serial.data[good], expected[good], rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match='parallel'):
        match_psf(image, 18.2 * u.arcsec, parallel=0)


def _nan_psf_file(t):
    header = fits.Header({'CDELT1': -1 / 3600, 'CDELT2': 1 / 3600})
    fits.writeto(t / 'nan_psf.fits', np.full((9, 9), np.nan), header)
    return t / 'nan_psf.fits'


# (id, call taking tmp_path, expected class or None, words, or a check of the result)
BAD_PSF_CASES = [
    ('negative FWHM', lambda t: gaussian_psf(-5 * u.arcsec, pixel_scale=1 * u.arcsec),
     ValueError, ['fwhm must be a finite non-negative angle', '-5']),
    ('NaN FWHM', lambda t: gaussian_psf(np.nan * u.arcsec, pixel_scale=1 * u.arcsec),
     ValueError, ['fwhm must be a finite non-negative angle']),
    ('negative pixel scale', lambda t: gaussian_psf(5 * u.arcsec, pixel_scale=-1 * u.arcsec),
     ValueError, ['pixel_scale must be a finite positive angle']),
    ('zero FWHM: a point source',
     lambda t: gaussian_psf(0 * u.arcsec, pixel_scale=1 * u.arcsec).data, None,
     lambda data: data.shape == (3, 3) and data[1, 1] == 1),
    ('all-NaN PSF array',
     lambda t: load_psf(np.full((9, 9), np.nan), pixel_scale=1 * u.arcsec), ValueError,
     ['PSF image (array) is all NaN', 'no finite pixel', 'gaussian_psf']),
    ('all-NaN PSF file', lambda t: load_psf(_nan_psf_file(t)), ValueError,
     ['nan_psf.fits', 'is all NaN']),
    ('all-zero PSF still "sums to 0"',
     lambda t: load_psf(np.zeros((9, 9)), pixel_scale=1 * u.arcsec), ValueError,
     ['sums to 0.0']),
]


@pytest.mark.parametrize('call, expected, words',
                         [pytest.param(*case[1:], id=case[0]) for case in BAD_PSF_CASES])
def test_bad_psf_input(tmp_path, call, expected, words):
    message = check_bad_input(tmp_path, call, expected, words)
    if message and 'NaN' in message:
        assert 'sums to' not in message
