"""
Every pixel out of domain because one band is off by orders of magnitude:
the error names the band and by how much (issue #21).
"""

import re
import warnings

import astropy.units as u
import pytest
from astropy.nddata import CCDData

from astro_dustml.datasets import make_mock_galaxy
from astro_dustml.maps import estimate_dust_maps


@pytest.fixture(scope='module')
def mock():
    return make_mock_galaxy(fov=2 * u.arcmin, semimajor=50 * u.arcsec)


def _error(mock, band, factor):
    images = dict(mock.images)
    image = images[band]
    images[band] = CCDData(image.data * factor, unit=image.unit, wcs=image.wcs,
                           meta=dict(image.meta))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(ValueError, match='Every pixel is masked') as info:
            estimate_dust_maps(images, galaxy=mock.galaxy, progress=False)
    return ' '.join(str(info.value).split())


@pytest.mark.parametrize('band, factor, direction', [('SDSS_r', 1e4, 'above'),
                                                     ('2MASS_J', 1e-4, 'below')])
def test_names_the_band_off_and_by_how_much(mock, band, factor, direction):
    message = _error(mock, band, factor)
    found = re.search(rf'{band} \(([0-9.]+) dex {direction}', message)
    assert found, message
    # beyond the training range by a good part of the 4 dex, never more
    assert 1 < float(found.group(1)) <= 4, message
    others = [b for b in mock.images if b not in (band, 'WISE_3.4')]
    assert not any(f'{b} (' in message for b in others), message
    assert 'units=' in message


def test_names_the_reference_band_when_every_colour_is_off(mock):
    message = _error(mock, 'WISE_3.4', 1e-3)
    assert re.search(r'the WISE_3\.4 values look too low by at least a factor', message), \
        message
