"""
The shipped calibration's held-out report against issue 21's targets.

Issue 21: held-out Td RMSE <= 2 K for every reported band set with PACS 100
or 160.  With the far-infrared alone, sets that still miss it are marked
``xfail(strict=True)``, so that a calibration which meets it makes the mark
fail and must be removed; with the UV-MIR temperature prior every set meets it.
"""

import warnings
import zlib

import astropy.units as u
import numpy as np
import pytest

from astro_dustml.exceptions import AstroDustMLWarning
from astro_dustml.farinfrared import dust_calibration, fit_dust_sed

TD_TARGET = 2.0  # K, from the issue

# far-infrared alone still above the target (held-out RMSE 2.10 and 2.06 K;
# the training-split grouped CV of scripts/fir_calibration_variants.py finds
# no calibration form that does better by more than 0.1 K with these two bands)
_MISSED = {'PACS_100+PACS_160', 'PACS_160+SPIRE_250'}


def _pacs_keys():
    sets = dust_calibration()['band_sets']
    return sorted(k for k, e in sets.items() if e['held_out']
                  and {'PACS_100', 'PACS_160'} & set(k.split('+')))


def _pacs_sets():
    return [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason='issue 21 open'))
            if k in _MISSED else k for k in _pacs_keys()]


@pytest.mark.parametrize('key', _pacs_sets())
def test_held_out_td_within_target(key):
    held = dust_calibration()['band_sets'][key]['held_out']
    assert held['n'] >= 30
    assert held['Tdust']['rmse'] <= TD_TARGET


@pytest.mark.parametrize('key', _pacs_keys())
def test_held_out_td_within_target_with_the_prior(key):
    held = dust_calibration()['held_out_with_prior']['per_band_set'][key]
    assert held['n'] == dust_calibration()['band_sets'][key]['held_out']['n']
    assert held['Tdust']['rmse'] <= TD_TARGET


def test_every_pacs_set_is_reported():
    """The report covers each calibrated PACS set (none left out to pass)."""
    sets = dust_calibration()['band_sets']
    pacs = [k for k in sets if {'PACS_100', 'PACS_160'} & set(k.split('+'))]
    assert len(pacs) == len(_pacs_keys()) >= 20
    targets = dust_calibration()['held_out_targets']
    assert set(targets['per_band_set']) == set(pacs)
    assert set(targets['with_prior']['per_band_set']) == set(pacs)


@pytest.mark.parametrize('bands', [['PACS_160', 'SPIRE_250'], ['PACS_100', 'PACS_160']])
def test_refit_held_out_galaxies_against_catalogue(shared_data, bands):
    """
    Held-out galaxies refitted with two bands reach the catalogue Td within the
    stated sigma, and reproduce the shipped report.
    """
    from astro_dustml.datasets import load_dustpedia_global
    table = load_dustpedia_global(path=shared_data / 'dustpedia', download=False,
                                  bands=bands)
    modulus = dust_calibration()['provenance']['held_out']['modulus']
    held = np.array([zlib.crc32(str(g).encode()) % modulus == 0 for g in table['galaxy']])
    with np.errstate(invalid='ignore', divide='ignore'):
        good = held & (table['Td_err'].value < 3) & (
            table['Mdust_err'].value / table['Mdust'].value < 0.5) & np.isfinite(
            table['distance'].value) & (table['Mdust'].value > 0)
        for b in bands:
            good &= (table[f'{b}_flag'] == 0) & (table[b].value > 3 * table[f'{b}_err'].value)
    table = table[good]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', AstroDustMLWarning)
        fit = fit_dust_sed(table, bands=bands)
    res = fit['Td_fit'].value - table['Td'].value
    z = res / fit['Td_fit_err'].value
    assert len(table) >= 30
    # the stated sigma describes the catalogue value (chi^2 of order one)
    assert 0.5 < np.mean(z ** 2) < 1.5
    assert abs(np.mean(res)) < 3 * np.std(res) / np.sqrt(len(res))
    held_out = dust_calibration()['band_sets']['+'.join(bands)]['held_out']
    assert len(table) == held_out['n']
    assert np.sqrt(np.mean(res ** 2)) == pytest.approx(held_out['Tdust']['rmse'], rel=1e-6)
    assert u.Quantity(fit['Td_fit']).unit == u.K
