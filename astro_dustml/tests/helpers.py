"""Small builders shared by the tests."""

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.modeling import models
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.stats import gaussian_fwhm_to_sigma

from astro_dustml.datasets.mock import _tan_wcs


def tan_wcs(shape, scale=1.0, center=(150.0, 2.0)):
    """North-up TAN WCS of ``scale`` arcsec pixels, centred on ``center`` in ``shape``."""
    if not isinstance(center, SkyCoord):
        center = SkyCoord(*center, unit='deg')
    return _tan_wcs(center, scale * u.arcsec, shape)


def point_source(band, scale, n, fwhm, total=100.0, center=(150.0, 2.0)):
    """
    A sampled Gaussian point source in MJy/sr, centred in an ``n`` x ``n`` image.

    ``scale`` and ``fwhm`` in arcsec; ``total`` is the sum of the pixels.
    Built with astropy.modeling, independently of the package's own kernels.
    """
    sigma = fwhm / scale * gaussian_fwhm_to_sigma
    y, x = np.mgrid[0:n, 0:n]
    c = (n - 1) / 2
    data = total * models.Gaussian2D(1 / (2 * np.pi * sigma ** 2), c, c, sigma, sigma)(x, y)
    return CCDData(data, unit='MJy/sr', wcs=tan_wcs((n, n), scale, center),
                   uncertainty=StdDevUncertainty(np.full((n, n), 0.01)),
                   meta={'band': band, 'psf_fwhm': fwhm * u.arcsec})


def check_bad_input(tmp_path, call, expected, words):
    """
    One row of a bad-input table: ``call(tmp_path)`` raises ``expected`` with all ``words``.

    With ``expected`` None, the call must succeed and ``words(result)`` be true;
    ``words`` may also be a function of ``tmp_path``. Returns the message.
    """
    import pytest
    if expected is None:
        assert words(call(tmp_path))
        return None
    with pytest.raises(expected) as info:
        call(tmp_path)
    message = str(info.value)
    for word in (words(tmp_path) if callable(words) else words):
        assert word in message, message
    return message
