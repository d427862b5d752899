"""Tests of astro_dustml.cigale: pcigale input files and results."""

import csv

import astropy.units as u
import numpy as np
import pytest

from astro_dustml.cigale import dust_temperature, read_cigale_results
from astro_dustml.sed import FLAG_MISSING

CATALOGUE = 'dustpedia/dustpedia_cigale_results_final_version.csv'


def _text_table(path):
    """pcigale results.txt read independently: header line, split on spaces."""
    with open(path) as handle:
        names = handle.readline().split()
        return {line.split()[0]: dict(zip(names, line.split())) for line in handle}


def test_td_reproduces_dustpedia_catalogue(shared_data):
    with open(shared_data / CATALOGUE, newline='') as handle:
        rows = [r for r in csv.DictReader(handle) if r['Umin'] != 'nan']
    assert len(rows) > 500
    umin = np.array([float(r['Umin']) for r in rows])
    tdust = np.array([float(r['Tdust__K']) for r in rows])
    td = dust_temperature(umin)
    assert td.unit == u.K
    # both columns are printed rounded: allow half a unit of the last printed
    # digit of Tdust, plus that of Umin propagated through the power law

    def half_ulp(text):
        return 0.5 * 10.0 ** -len(text.partition('.')[2])
    tol = (np.array([half_ulp(r['Tdust__K']) for r in rows])
           + tdust / 5.79 * np.array([half_ulp(r['Umin']) for r in rows]) / umin)
    diff = np.abs(td.value - tdust)
    assert np.mean(diff <= tol) > 0.99
    # the few others are off by a little more than rounding (the catalogue's
    # Tdust is a Bayesian mean, not a function of the mean Umin), all < 0.01 K
    assert np.max(diff) < 0.01
    # whereas another exponent would not fit
    assert np.max(np.abs(18.3 * umin ** (1 / 5.5) - tdust)) > 1


@pytest.mark.parametrize('fit', ['cigale_uvmir', 'cigale_full'])
def test_read_real_results(shared_data, fit):
    path = shared_data / 'dustpedia' / fit / 'results.txt'
    raw = _text_table(path)
    results = read_cigale_results(path)
    assert list(results['id']) == list(raw)
    assert len(results) == 636
    row = raw['NGC3252']
    got = results[list(results['id']).index('NGC3252')]
    # bayes.<filter> (mJy) -> canonical band (Jy)
    for band, filt in [('WISE_3.4', 'WISE1'), ('GALEX_FUV', 'FUV'), ('SDSS_u', 'u_prime'),
                       ('Spitzer_8.0', 'IRAC4'), ('SPIRE_500', 'PLW_HIPE'),
                       ('PACS_100', 'PACS_green')]:
        assert u.isclose(got[band], float(row[f'bayes.{filt}']) * u.mJy, rtol=1e-14)
        assert u.isclose(got[f'{band}_err'], float(row[f'bayes.{filt}_err']) * u.mJy,
                         rtol=1e-14)
        assert got[band].unit == u.Jy
    # targets from the best-fit columns (pcigale units: W, kg, Msun)
    ldust = float(row['best.dust.luminosity']) * u.W
    mdust = float(row['best.dust.mass']) * u.kg
    mstar = float(row['best.stellar.m_star']) * u.Msun
    assert got['sLd'].unit == u.dex and got['Td'].unit == u.K
    assert np.isclose(got['sLd'].value, np.log10((ldust / mstar).to_value(u.Lsun / u.Msun)))
    assert np.isclose(got['sMd'].value, np.log10((mdust / mstar).to_value(u.one)))
    assert np.isclose(got['Td'].value, 18.3 * float(row['best.dust.umin']) ** (1 / 5.79))
    # other pcigale columns keep their names
    assert results['best.dust.qhac'][0] == float(raw[results['id'][0]]['best.dust.qhac'])


def test_full_fit_targets_match_dustpedia(shared_data):
    """Best fits of the FIREnet UV-submm run agree with the DustPedia catalogue."""
    results = read_cigale_results(shared_data / 'dustpedia' / 'cigale_full')
    with open(shared_data / CATALOGUE, newline='') as handle:
        cat = {r['id']: r for r in csv.DictReader(handle)}
    dsld, dtd = [], []
    for row in results:
        ref = cat.get(row['id'])
        if ref is None or ref['Ldust__Lsol'] == 'nan' or not np.isfinite(row['sLd']):
            continue
        dsld.append(row['sLd'].value
                    - np.log10(float(ref['Ldust__Lsol']) / float(ref['Mstar__Msol'])))
        dtd.append(row['Td'].value - float(ref['Tdust__K']))
    assert len(dsld) > 400
    assert abs(np.median(dsld)) < 0.1 and np.median(np.abs(dsld)) < 0.2
    assert abs(np.median(dtd)) < 1.5


def test_read_results_missing():
    with pytest.raises(FileNotFoundError, match='does not exist'):
        read_cigale_results('no/such/results.txt')
    with pytest.raises(ValueError, match='estimate'):
        read_cigale_results('x', estimate='mean')
    assert FLAG_MISSING == 2
