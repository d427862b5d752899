"""Tests of astro_dustml.farinfrared.predict: predicted far-infrared maps and their comparison."""

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import CCDData, StdDevUncertainty

from astro_dustml.datasets import make_mock_galaxy
from astro_dustml.farinfrared import compare_fir, predict_fir_maps
from astro_dustml.sed.tables import _pixel_area

BANDS = ['PACS_100', 'PACS_160', 'SPIRE_250', 'SPIRE_350']


@pytest.fixture(scope='module')
def mock():
    return make_mock_galaxy(bands=BANDS, noise=False, sky=False, fov=3 * u.arcmin)


def _truth_inputs(mock, band):
    """The mock's true sMd, Td and M* on a band's grid and resolution (no uncertainty)."""
    image = mock.images[band]
    wcs, shape, fwhm = image.wcs, image.shape, image.meta['psf_fwhm']
    truth = mock.truth_maps(wcs, shape, fwhm)
    mstar = mock._model.extensive(wcs, shape, fwhm)[0]
    maps = {k: CCDData(truth[k].value, unit=truth[k].unit, wcs=wcs,
                       uncertainty=StdDevUncertainty(np.zeros(shape)),
                       meta={'psf_fwhm': fwhm}) for k in ('sMd', 'Td')}
    return maps, CCDData(mstar, unit=u.Msun, wcs=wcs), image


@pytest.mark.slow
@pytest.mark.parametrize('band', BANDS)
def test_reproduces_mock_far_infrared_truth(mock, band):
    """The mock renders its far infrared from Ld and Td; the prediction uses Md and Td."""
    maps, mstar, image = _truth_inputs(mock, band)
    predicted = predict_fir_maps(maps, mstar, [band], distance=mock.galaxy['distance'])[band]
    observed = (image.data * image.unit).to_value(u.Jy / u.pix) \
        / _pixel_area(image.wcs).to_value(u.sr) / 1e6
    galaxy = mstar.data > 1e-3 * mstar.data.max()
    z = (predicted.data - observed) / predicted.uncertainty.array
    assert np.median(np.abs(z[galaxy])) < 1.0
    assert abs(np.median(np.log10(predicted.data[galaxy] / observed[galaxy]))) < 0.1
    assert predicted.unit == u.MJy / u.sr and predicted.meta['band'] == band


def test_uncertainty_propagation():
    from astropy.wcs import WCS
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.cdelt = [-6 / 3600, 6 / 3600]

    def m(value, unit, err):
        return CCDData(np.full((3, 3), value), unit=unit, wcs=wcs,
                       uncertainty=StdDevUncertainty(np.full((3, 3), err)))
    base = predict_fir_maps({'sMd': m(-3, 'dex', 0.0), 'Td': m(20, 'K', 0.0)},
                            m(1e8, 'Msun', 0.0), ['SPIRE_250'], distance=10 * u.Mpc)
    noisy = predict_fir_maps({'sMd': m(-3, 'dex', 0.3), 'Td': m(20, 'K', 0.0)},
                             m(1e8, 'Msun', 0.0), ['SPIRE_250'], distance=10 * u.Mpc)
    rel0 = base['SPIRE_250'].uncertainty.array / base['SPIRE_250'].data
    rel = noisy['SPIRE_250'].uncertainty.array / noisy['SPIRE_250'].data
    # an error of 0.3 dex in sMd adds 0.3 dex in quadrature to the flux error
    assert (rel / np.log(10)) ** 2 - (rel0 / np.log(10)) ** 2 == pytest.approx(0.09, rel=1e-6)
    # ten times more dust, ten times the flux
    more = predict_fir_maps({'sMd': m(-2, 'dex', 0.0), 'Td': m(20, 'K', 0.0)},
                            m(1e8, 'Msun', 0.0), ['SPIRE_250'], distance=10 * u.Mpc)
    assert more['SPIRE_250'].data == pytest.approx(10 * base['SPIRE_250'].data)
    with pytest.raises(ValueError, match='sMd and Td'):
        predict_fir_maps({'sMd': m(-2, 'dex', 0.0)}, m(1e8, 'Msun', 0), ['SPIRE_250'])
    with pytest.raises(ValueError, match='far-infrared'):
        predict_fir_maps({'sMd': m(-2, 'dex', 0.0), 'Td': m(20, 'K', 0.0)},
                         m(1e8, 'Msun', 0), ['WISE_3.4'], distance=1 * u.Mpc)
    with pytest.raises(ValueError, match='distance'):
        predict_fir_maps({'sMd': m(-2, 'dex', 0.0), 'Td': m(20, 'K', 0.0)},
                         m(1e8, 'Msun', 0), ['SPIRE_250'])


@pytest.mark.slow
def test_compare_recovers_an_injected_ratio(mock):
    """A prediction 1.3 times the truth on a finer grid is compared on the observed one."""
    band = 'SPIRE_250'
    observed = mock.images[band]
    # the same mock (same seed) imaged in SPIRE 250 on 2 arcsec pixels
    fine = make_mock_galaxy(bands=[band], noise=False, sky=False, fov=3 * u.arcmin,
                            pixel_scale=2 * u.arcsec).images[band]
    sb = (fine.data * fine.unit).to_value(u.Jy / u.pix) \
        / _pixel_area(fine.wcs).to_value(u.sr) / 1e6
    predicted = CCDData(1.3 * sb, unit='MJy/sr', wcs=fine.wcs,
                        meta={'band': band, 'psf_fwhm': observed.meta['psf_fwhm']})
    out = compare_fir(predicted, observed)
    assert out.summary['median_ratio'] == pytest.approx(1.3, rel=0.03)
    assert out.summary['spearman'] > 0.95
    assert out.summary['log_residual_rms'] == pytest.approx(np.log10(1.3), abs=0.03)
    assert out.log_residual.unit == u.dex
    figure = out.plot()
    assert len(figure.axes) >= 4
    with pytest.raises(ValueError, match='same band'):
        compare_fir(predicted, mock.images['PACS_100'])
    with pytest.raises(TypeError, match='meta'):
        compare_fir(CCDData(sb, unit='MJy/sr', wcs=fine.wcs), observed)
