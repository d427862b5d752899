"""
Tests of astro_dustml.farinfrared.stellar_mass against Cluver et al. (2014) and the
DustPedia catalogue.
"""

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.wcs import WCS

from astro_dustml.farinfrared import stellar_mass, stellar_mass_map


def _wcs(scale=1.375):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.cdelt = [-scale / 3600, scale / 3600]
    return wcs


def test_cluver_relation_by_hand():
    # W1 = 8 mag, W1 - W2 = 0.1 mag (Vega; zero points 309.540 and 171.787 Jy), 20 Mpc
    w1 = 309.540 * 10 ** (-0.4 * 8.0) * u.Jy
    w2 = 171.787 * 10 ** (-0.4 * 7.9) * u.Jy
    abs_mag = 8.0 - 5 * np.log10(20e6 / 10)
    expected = -0.4 * (abs_mag - 3.24) - 2.54 * 0.1 - 0.17
    mass, err = stellar_mass(w1, w2, distance=20 * u.Mpc, relation='cluver2014')
    assert np.log10(mass.to_value(u.Msun)) == pytest.approx(expected, abs=1e-6)
    assert err > 0


def test_colour_is_clipped_and_missing_w2_costs_precision():
    w1 = 0.1 * u.Jy
    red, _ = stellar_mass(w1, 0.5 * u.Jy, distance=10 * u.Mpc, relation='cluver2014')
    redder, _ = stellar_mass(w1, 5.0 * u.Jy, distance=10 * u.Mpc, relation='cluver2014')
    assert red == redder  # both beyond W1 - W2 = 0.6
    with_w2, err_w2 = stellar_mass(w1, 0.057 * u.Jy, distance=10 * u.Mpc,
                                   w1_err=1e-3 * u.Jy, w2_err=1e-3 * u.Jy)
    without, err_without = stellar_mass(w1, distance=10 * u.Mpc, w1_err=1e-3 * u.Jy)
    assert err_without / without > err_w2 / with_w2
    noisy, _ = stellar_mass(w1, 0.5 * u.Jy, distance=10 * u.Mpc, w2_err=1 * u.Jy)
    assert noisy == without  # W2 below 3 sigma counts as missing


def test_against_dustpedia_catalogue(shared_data):
    """Global W1/W2 masses follow the CIGALE Mstar (the shipped relation within 0.25 dex)."""
    from astro_dustml.datasets import load_dustpedia_global
    t = load_dustpedia_global(path=shared_data / 'dustpedia', download=False,
                              bands=['WISE_3.4', 'WISE_4.6'])
    ok = ((t['WISE_3.4_flag'] == 0) & (t['WISE_4.6_flag'] == 0) & np.isfinite(t['Mstar'])
          & np.isfinite(t['distance']) & (t['WISE_4.6'] > 3 * t['WISE_4.6_err']))
    t = t[ok]
    res = {}
    for relation in ('cluver2014', 'dustpedia'):
        mass, err = stellar_mass(t['WISE_3.4'], t['WISE_4.6'], distance=t['distance'],
                                 w1_err=t['WISE_3.4_err'], w2_err=t['WISE_4.6_err'],
                                 relation=relation)
        res[relation] = np.log10(mass.to_value(u.Msun) / t['Mstar'].value)
        assert abs(np.median(res[relation])) < 0.1
    rms = {k: np.sqrt(np.mean(v ** 2)) for k, v in res.items()}
    assert rms['dustpedia'] < 0.25
    assert rms['dustpedia'] <= rms['cluver2014']
    # the default is the better one
    default, _ = stellar_mass(t['WISE_3.4'], t['WISE_4.6'], distance=t['distance'])
    assert np.log10(default.to_value(u.Msun) / t['Mstar'].value) == pytest.approx(
        res['dustpedia'])


def test_map_matches_scalar_and_sums():
    rng = np.random.default_rng(0)
    w1 = rng.uniform(1e-4, 1e-3, (5, 6))
    w2 = 0.55 * w1
    images = {'WISE_3.4': CCDData(w1, unit='Jy/pix', wcs=_wcs(),
                                  uncertainty=StdDevUncertainty(0.01 * w1)),
              'WISE_4.6': CCDData(w2, unit='Jy/pix', wcs=_wcs(),
                                  uncertainty=StdDevUncertainty(0.01 * w2)),
              'SPIRE_250': CCDData(w1, unit='Jy/pix', wcs=_wcs())}
    mmap = stellar_mass_map(images, distance=15 * u.Mpc)
    scalar, _ = stellar_mass(w1[2, 3] * u.Jy, w2[2, 3] * u.Jy, distance=15 * u.Mpc,
                             w1_err=0.01 * w1[2, 3] * u.Jy, w2_err=0.01 * w2[2, 3] * u.Jy)
    assert mmap.data[2, 3] == pytest.approx(scalar.to_value(u.Msun))
    assert mmap.unit == u.Msun and not mmap.mask.any()
    # the same flux as a surface brightness gives the same masses
    area = (1.375 * u.arcsec) ** 2
    sb = {b: CCDData((images[b].data * u.Jy / area).to_value(u.MJy / u.sr), unit='MJy/sr',
                     wcs=_wcs()) for b in ('WISE_3.4', 'WISE_4.6')}
    again = stellar_mass_map(sb, distance=15 * u.Mpc)
    assert again.data == pytest.approx(mmap.data, rel=1e-6)


def test_map_errors():
    with pytest.raises(ValueError, match='WISE_3.4'):
        stellar_mass_map({'WISE_4.6': CCDData(np.ones((2, 2)), unit='Jy/pix', wcs=_wcs())},
                         distance=1 * u.Mpc)
    with pytest.raises(ValueError, match='Unknown relation'):
        stellar_mass(1 * u.Jy, distance=1 * u.Mpc, relation='nope')
