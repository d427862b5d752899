"""
The real-archive walkthrough (docs/real_archive_files.rst) on the real files.

The page is skipped by the plain docs doctest run (it needs ../shared/data);
here it runs whenever the data are present, plus checks against independent
truth: the photometric zero-point relation of DN products, and the AllWISE
uncertainty maps carried through.
"""

import doctest
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from astro_dustml.bands import dn_unit, get_band
from astro_dustml.imaging import read_images

DOC = Path(__file__).resolve().parents[2] / 'docs' / 'real_archive_files.rst'


@pytest.mark.slow
def test_walkthrough_runs_on_real_files(shared_data, monkeypatch):
    if not DOC.is_file():
        pytest.skip(f'{DOC} not present (installed package without docs)')
    monkeypatch.setenv('ASTRO_DUSTML_SHARED_DATA', str(shared_data))
    result = doctest.testfile(str(DOC), module_relative=False, report=True,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 20
    assert result.failed == 0


@pytest.mark.parametrize('band, magnitude', [('WISE_3.4', 10.0), ('2MASS_J', 12.5)])
def test_dn_unit_follows_the_zero_point_relation(band, magnitude):
    # A Vega-magnitude m source gives 10**(-0.4 (m - MAGZP)) DN and has the
    # flux density F0 10**(-0.4 m): the two must agree for any zero point
    f0 = get_band(band).vega_zero_flux
    for zero_point in (19.5, 21.0034):
        counts = 10 ** (-0.4 * (magnitude - zero_point))
        flux = (counts * dn_unit(band, zero_point) * u.pix).to(u.Jy)
        assert flux.value == pytest.approx((f0 * 10 ** (-0.4 * magnitude)).to_value(u.Jy))


def test_allwise_uncertainty_map_is_paired(shared_data):
    folder = shared_data / 'images' / 'ngc309'
    intensity = sorted(folder.glob('*-w1-int-*.fits.gz'))
    unc = sorted(folder.glob('*-w1-unc-*.fits.gz'))
    images = read_images([*unc, *intensity])  # any order
    assert list(images.keys()) == ['WISE_3.4']
    image = images['WISE_3.4']
    raw = fits.getdata(unc[0])
    np.testing.assert_allclose(image.uncertainty.array, np.abs(raw), equal_nan=True)
    assert image.meta['uncertainty_file'] == str(unc[0])
