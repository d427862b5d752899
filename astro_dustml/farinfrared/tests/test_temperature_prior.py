"""
Tests of fit_dust_sed(temperature_prior=): the combination with an independent
temperature, against two-measurement statistics, injected dust and held-out
DustPedia galaxies.
"""

import warnings
import zlib

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import QTable
from astropy.wcs import WCS

from astro_dustml.exceptions import AstroDustMLWarning
from astro_dustml.farinfrared import apply_dust_calibration, dust_calibration, fit_dust_sed
from astro_dustml.sed import band_flux

TWO = ['PACS_160', 'SPIRE_250']
FIVE = ['PACS_100', 'PACS_160', 'SPIRE_250', 'SPIRE_350', 'SPIRE_500']


def _table(bands, temperatures, masses, *, noise, seed=None, distance=10.0):
    """Modified-black-body fluxes of each (T, Md), with ``noise`` relative errors."""
    rng = None if seed is None else np.random.default_rng(seed)
    table = QTable({'distance': np.full(len(temperatures), distance) * u.Mpc})
    for b in bands:
        f = np.array([band_flux(b, m * u.Msun, t * u.K, distance * u.Mpc).value
                      for t, m in zip(temperatures, masses)])
        observed = f if rng is None else f * (1 + noise * rng.standard_normal(f.size))
        table[b], table[f'{b}_err'] = observed * u.Jy, noise * f * u.Jy
    return table


def _calibrated_truth(bands, temperatures, masses):
    """The catalogue-scale Td and Md the calibration assigns to the true raw values."""
    truth = apply_dust_calibration(masses * u.Msun, temperatures * u.K, masses * u.Lsun,
                                   bands=bands)
    return truth['Td'].value, truth['Md'].value


def test_combines_as_two_correlated_measurements():
    """The temperature is the best linear unbiased mean of two correlated estimates."""
    table = _table(TWO, [22.0], [1e7], noise=0.1)
    alone = fit_dust_sed(table)
    t, a = alone['Td_fit'][0].value, alone['Td_fit_err'][0].value
    rho = dust_calibration()['band_sets']['+'.join(TWO)]['coefficients']['Tdust'][
        'prior_correlation']
    prior, s = t + 3.0, 2.0
    out = fit_dust_sed(table, temperature_prior=(prior * u.K, s * u.K))
    # BLUE of x1 (var a^2) and x2 (var s^2) with covariance rho a s
    w = (s ** 2 - rho * a * s) / (a ** 2 + s ** 2 - 2 * rho * a * s)
    variance = (a ** 2 * s ** 2 * (1 - rho ** 2)) / (a ** 2 + s ** 2 - 2 * rho * a * s)
    assert out['Td_fit'][0].value == pytest.approx(w * t + (1 - w) * prior, rel=1e-9)
    assert out['Td_fit_err'][0].value == pytest.approx(np.sqrt(variance), rel=1e-9)
    assert out.meta['dust_fit']['temperature_prior'] is True
    # a vague prior leaves the fit as it was
    vague = fit_dust_sed(table, temperature_prior=(prior * u.K, 1e4 * u.K))
    for col in ('Td_fit', 'Md_fit', 'Ld_fit', 'Td_fit_err', 'Md_fit_err'):
        assert vague[col][0].value == pytest.approx(alone[col][0].value, rel=1e-4)


def test_sharp_prior_gives_the_fit_at_that_temperature():
    """
    A prior of 0.01 K at the catalogue value of a raw temperature gives the mass
    fitted with the temperature held there (the covariance carries it).
    """
    table = _table(FIVE, [21.0], [1e7], noise=0.1, seed=4)
    raw = fit_dust_sed(table, calibrated=False)
    t_raw = raw['Td_fit'][0].value + 1.0  # one sigma-ish away from the best fit
    held = fit_dust_sed(table, calibrated=False, temperature_range=(t_raw - 0.01,
                                                                    t_raw + 0.01) * u.K)
    expected = apply_dust_calibration(held['Md_fit'][0], held['Td_fit'][0], held['Ld_fit'][0],
                                      bands=FIVE)
    out = fit_dust_sed(table, temperature_prior=(expected['Td'], 0.01 * u.K))
    assert out['Td_fit'][0].value == pytest.approx(expected['Td'].value, abs=0.01)
    assert np.log10(out['Md_fit'][0].value / expected['Md'].value) == pytest.approx(0, abs=0.01)
    assert np.log10(out['Ld_fit'][0].value / expected['Ld'].value) == pytest.approx(0, abs=0.01)


def test_injected_dust_is_recovered_better_with_a_prior():
    """Noisy two-band fits of known dust: the prior lowers the Td and Md errors."""
    rng = np.random.default_rng(11)
    n = 300
    temperatures, masses = rng.uniform(15, 30, n), 10 ** rng.uniform(6.5, 7.5, n)
    table = _table(TWO, temperatures, masses, noise=0.15, seed=12)
    true_t, true_m = _calibrated_truth(TWO, temperatures, masses)
    prior = true_t + rng.normal(0, 2.0, n)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', AstroDustMLWarning)
        alone = fit_dust_sed(table, min_snr=0)
        both = fit_dust_sed(table, min_snr=0,
                            temperature_prior=(prior * u.K, np.full(n, 2.0) * u.K))

    def rms(x):
        return np.sqrt(np.mean(x ** 2))

    t_alone, t_both = (rms(f['Td_fit'].value - true_t) for f in (alone, both))
    m_alone, m_both = (rms(np.log10(f['Md_fit'].value / true_m)) for f in (alone, both))
    assert t_alone > 2.0  # the colour alone is noisy here
    assert t_both < min(t_alone, 2.0) * 0.9
    assert m_both < 0.9 * m_alone


def _wcs(crval=150.0):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [crval, 2]
    wcs.wcs.crpix = [2, 2]
    wcs.wcs.cdelt = [-6 / 3600, 6 / 3600]
    return wcs


def _maps(table, shape):
    return {b: CCDData(table[b].value.reshape(shape), unit='Jy/pix', wcs=_wcs(),
                       uncertainty=StdDevUncertainty(table[f'{b}_err'].value.reshape(shape)))
            for b in TWO}


def test_maps_take_a_prior_map_per_pixel():
    """A Td map (as estimate_dust_maps gives) is applied pixel by pixel as in a table."""
    shape = (2, 3)
    temperatures = np.linspace(16, 28, 6)
    table = _table(TWO, temperatures, np.full(6, 1e5), noise=0.1)
    value = temperatures + 2.0
    value[4] = np.nan  # no prior there: the fit is kept
    prior = CCDData(value.reshape(shape), unit='K', wcs=_wcs(),
                    uncertainty=StdDevUncertainty(np.full(shape, 1.5)))
    before = prior.data.copy()
    maps = fit_dust_sed(_maps(table, shape), distance=10 * u.Mpc, temperature_prior=prior)
    rows = fit_dust_sed(table, temperature_prior=(value * u.K, np.full(6, 1.5) * u.K))
    plain = fit_dust_sed(table)
    np.testing.assert_allclose(maps['Td'].data.ravel(), rows['Td_fit'].value, rtol=1e-9)
    np.testing.assert_allclose(maps['Td'].uncertainty.array.ravel(), rows['Td_fit_err'].value,
                               rtol=1e-9)
    assert maps['Td'].data.ravel()[4] == pytest.approx(plain['Td_fit'][4].value, rel=1e-12)
    assert maps['Td'].meta['temperature_prior'] is True
    np.testing.assert_array_equal(prior.data, before)


def test_bad_priors_say_what_to_do():
    shape = (2, 3)
    table = _table(TWO, np.linspace(16, 28, 6), np.full(6, 1e5), noise=0.1)
    images = _maps(table, shape)
    err = StdDevUncertainty(np.ones(shape))
    elsewhere = CCDData(np.full(shape, 20.0), unit='K', wcs=_wcs(crval=151), uncertainty=err)
    with pytest.raises(ValueError, match='reproject'):
        fit_dust_sed(images, distance=10 * u.Mpc, temperature_prior=elsewhere)
    with pytest.raises(u.UnitsError, match='not a temperature'):
        fit_dust_sed(table, temperature_prior=(20 * u.Jy, 1 * u.Jy))
    with pytest.raises(ValueError, match='calibrated=True'):
        fit_dust_sed(table, calibrated=False, temperature_prior=(20 * u.K, 1 * u.K))
    with pytest.raises(ValueError, match='uncertainty'):
        fit_dust_sed(images, distance=10 * u.Mpc,
                     temperature_prior=CCDData(np.full(shape, 20.0), unit='K', wcs=_wcs()))
    with pytest.raises(ValueError, match='one value per'):
        fit_dust_sed(table, temperature_prior=(np.full(4, 20.0) * u.K, np.ones(4) * u.K))
    with pytest.raises(TypeError, match='NDData'):
        fit_dust_sed(table, temperature_prior=20 * u.K)


@pytest.fixture(scope='module')
def held_out_with_model(shared_data):
    """The held-out DustPedia galaxies, and a UV-MIR Td model trained on the others."""
    from astro_dustml.bands import INPUT_BANDS
    from astro_dustml.datasets import load_dustpedia_global
    from astro_dustml.model import DustModel
    table = load_dustpedia_global(path=shared_data / 'dustpedia', download=False,
                                  bands=[*INPUT_BANDS, 'PACS_100', 'PACS_160', 'SPIRE_250'])
    modulus = dust_calibration()['provenance']['held_out']['modulus']
    held = np.array([zlib.crc32(str(g).encode()) % modulus == 0 for g in table['galaxy']])
    model = DustModel(n_estimators=30, max_depth=14, min_samples_leaf=3, max_features=0.5,
                      colours='neighbours', include_intensity=False, include_snr=True,
                      n_jobs=2, random_state=0)
    model.fit(table[~held & np.isfinite(table['Td'].value)], ['Td'], groups='galaxy')
    return table[held], model


@pytest.mark.parametrize('bands', [['PACS_100', 'PACS_160'], ['PACS_160', 'SPIRE_250']])
def test_held_out_galaxies_with_a_uv_mir_prior(held_out_with_model, bands):
    """
    Held-out DustPedia galaxies fitted with two bands and the Td of a model
    trained on the other galaxies' UV-MIR fluxes: within 2 K of the catalogue
    (issue 21), and closer than the far-infrared alone.
    """
    table, model = held_out_with_model
    with np.errstate(invalid='ignore', divide='ignore'):
        good = (table['Td_err'].value < 3) & (
            table['Mdust_err'].value / table['Mdust'].value < 0.5) & np.isfinite(
            table['distance'].value)
        for b in bands:
            good &= (table[f'{b}_flag'] == 0) & (table[b].value > 3 * table[f'{b}_err'].value)
    table = table[good]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', AstroDustMLWarning)  # one row out of domain
        prior = model.predict(table)
        alone = fit_dust_sed(table, bands=bands)
        both = fit_dust_sed(table, bands=bands, temperature_prior=(prior['Td'], prior['Td_err']))
    truth = table['Td'].value
    rms_alone = np.sqrt(np.mean((alone['Td_fit'].value - truth) ** 2))
    rms_both = np.sqrt(np.mean((both['Td_fit'].value - truth) ** 2))
    z = (both['Td_fit'].value - truth) / both['Td_fit_err'].value
    assert len(table) >= 30
    assert rms_both <= 2.0
    assert rms_both < rms_alone
    assert 0.5 < np.mean(z ** 2) < 1.5
