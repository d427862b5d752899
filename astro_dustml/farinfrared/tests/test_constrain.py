"""
Tests of astro_dustml.farinfrared.constrain on a mock galaxy whose truth is known at
every resolution.
"""

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import NDData, StdDevUncertainty
from scipy.ndimage import gaussian_filter

from astro_dustml.datasets import make_mock_galaxy
from astro_dustml.datasets.mock import _tan_wcs
from astro_dustml.farinfrared import constrain_to_lowres, degrade_maps

FWHM_HI, FWHM_LO = 6.6 * u.arcsec, 18.2 * u.arcsec


@pytest.fixture(scope='module')
def case():
    mock = make_mock_galaxy(bands=['WISE_3.4'], noise=False, sky=False, fov=3 * u.arcmin)
    centre = mock.galaxy['center']
    n_hi, n_lo = 90, 30
    wcs_hi, wcs_lo = _tan_wcs(centre, 2 * u.arcsec, (n_hi,) * 2), \
        _tan_wcs(centre, 6 * u.arcsec, (n_lo,) * 2)
    # the mock's own truth at both resolutions (extensive maps integrated over
    # pixels and smoothed, then divided): independent of the code under test
    truth_hi = mock.truth_maps(wcs_hi, (n_hi,) * 2, FWHM_HI)
    truth_lo = mock.truth_maps(wcs_lo, (n_lo,) * 2, FWHM_LO)
    mstar = mock._model.extensive(wcs_hi, (n_hi,) * 2, FWHM_HI)[0]
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:n_hi, :n_hi]
    prediction = {}
    for key, q in truth_hi.items():
        # a large-scale model error plus small-scale noise
        large = 0.15 * np.sin(xx / 20.) + 0.1 * np.cos(yy / 25.) + 0.08
        small = 0.15 * gaussian_filter(rng.normal(0, 1, q.shape), 1.4)
        value = q.value * (1 + 0.5 * (large + small)) if key == 'Td' else \
            q.value + large + small
        prediction[key] = NDData(value, unit=q.unit, wcs=wcs_hi,
                                 uncertainty=StdDevUncertainty(
                                     np.full(q.shape, 2.0 if key == 'Td' else 0.2)))
    truth = {k: NDData(q.value, unit=q.unit, wcs=wcs_lo, uncertainty=StdDevUncertainty(
        np.full(q.shape, 0.5 if k == 'Td' else 0.05))) for k, q in truth_lo.items()}
    return dict(prediction=prediction, truth=truth, truth_hi=truth_hi, truth_lo=truth_lo,
                mstar=NDData(mstar, unit=u.Msun, wcs=wcs_hi), wcs_lo=wcs_lo,
                shape_lo=(n_lo, n_lo))


@pytest.mark.slow
def test_degrading_the_true_maps_gives_the_low_resolution_truth(case):
    """The aggregation rules (M*-weighted ratios, Md-weighted T^5.79) are the right ones."""
    hi = {k: NDData(q.value, unit=q.unit, wcs=case['mstar'].wcs)
          for k, q in case['truth_hi'].items()}
    out = degrade_maps(hi, stellar_mass=case['mstar'], wcs=case['wcs_lo'],
                       shape=case['shape_lo'], fwhm=FWHM_LO, maps_fwhm=FWHM_HI)
    inner = (slice(4, -4), slice(4, -4))  # away from the edge of the fine grid
    for key in ('sLd', 'sMd'):
        diff = out[key].value[inner] - case['truth_lo'][key].value[inner]
        assert np.sqrt(np.nanmean(diff ** 2)) < 0.005
    diff = out['Td'].value[inner] - case['truth_lo']['Td'].value[inner]
    assert np.sqrt(np.nanmean(diff ** 2)) < 0.05


@pytest.mark.slow
def test_constrained_maps_match_truth_and_beat_prediction(case):
    out = constrain_to_lowres(case['prediction'], case['truth'], stellar_mass=case['mstar'],
                              prediction_fwhm=FWHM_HI, truth_fwhm=FWHM_LO)
    degraded = degrade_maps(out, stellar_mass=case['mstar'], wcs=case['wcs_lo'],
                            shape=case['shape_lo'], fwhm=FWHM_LO, maps_fwhm=FWHM_HI)
    for key, limit in (('sLd', 0.02), ('sMd', 0.02), ('Td', 0.3)):
        low = np.sqrt(np.nanmean((degraded[key].value - case['truth_lo'][key].value) ** 2))
        assert low < limit
        truth = case['truth_hi'][key].value
        before = np.sqrt(np.nanmean((case['prediction'][key].data - truth) ** 2))
        after = np.sqrt(np.nanmean((out[key].data - truth) ** 2))
        assert after < 0.5 * before
        # the stated uncertainty covers the remaining error
        assert np.sqrt(np.nanmean(((out[key].data - truth)
                                   / out[key].uncertainty.array) ** 2)) < 1.0
    assert out.meta['residual_rms']['sMd'] < 0.02
    assert out['sMd'].unit == u.dex and out['Td'].unit == u.K
    # the input is not modified
    assert not np.shares_memory(out['sMd'].data, case['prediction']['sMd'].data)


def test_refuses_bad_input(case):
    pred, truth, mstar = case['prediction'], case['truth'], case['mstar']
    with pytest.raises(ValueError, match='sharper'):
        constrain_to_lowres(pred, truth, stellar_mass=mstar, prediction_fwhm=FWHM_LO,
                            truth_fwhm=FWHM_HI)
    bad_unit = dict(truth)
    bad_unit['sMd'] = NDData(truth['sMd'].data, unit=u.K, wcs=truth['sMd'].wcs)
    with pytest.raises(u.UnitsError, match='sMd'):
        constrain_to_lowres(pred, bad_unit, stellar_mass=mstar, prediction_fwhm=FWHM_HI,
                            truth_fwhm=FWHM_LO)
    galactic = case['wcs_lo'].deepcopy()
    galactic.wcs.ctype = ['GLON-TAN', 'GLAT-TAN']
    other = {k: NDData(v.data, unit=v.unit, wcs=galactic) for k, v in truth.items()}
    with pytest.raises(ValueError, match='frames'):
        constrain_to_lowres(pred, other, stellar_mass=mstar, prediction_fwhm=FWHM_HI,
                            truth_fwhm=FWHM_LO)
    with pytest.raises(ValueError, match='psf_fwhm'):
        constrain_to_lowres(pred, truth, stellar_mass=mstar)
    with pytest.raises(ValueError, match='sMd'):
        constrain_to_lowres({'Td': pred['Td']}, truth, stellar_mass=mstar,
                            prediction_fwhm=FWHM_HI, truth_fwhm=FWHM_LO)
    with pytest.raises(ValueError, match='grid of the prediction'):
        constrain_to_lowres(pred, truth, stellar_mass=NDData(mstar.data[:-1], unit=u.Msun,
                                                             wcs=mstar.wcs),
                            prediction_fwhm=FWHM_HI, truth_fwhm=FWHM_LO)
