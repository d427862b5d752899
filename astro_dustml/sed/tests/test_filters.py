"""Tests of astro_dustml.sed.filters: pcigale filter files and band averages."""

import astropy.units as u
import numpy as np
import pytest

from astro_dustml.sed import Filter, band_average, read_filter


def _box(kind='energy'):
    return Filter('box', kind, [90, 95, 105, 110] * u.micron, np.array([0., 1., 1., 0.]))


def test_flat_nu_fnu_quotes_its_reference_value():
    wav = np.linspace(80, 120, 2000) * u.micron
    nu = wav.to(u.Hz, equivalencies=u.spectral())
    ref_nu = (100 * u.micron).to(u.Hz, equivalencies=u.spectral())
    spectrum = 3.0 * (ref_nu / nu).value  # nu F_nu constant, 3 Jy at 100 micron
    for kind in ('energy', 'photon'):
        assert band_average(_box(kind), wav, spectrum, reference=100 * u.micron) == \
            pytest.approx(3.0, rel=1e-4)


def test_band_average_of_power_law_matches_analytic():
    # F_nu ~ nu^2 through a top hat in frequency: analytic ratio of integrals
    nu1, nu2 = 2.5e12, 3.5e12
    filt = Filter('hat', 'energy', (np.array([nu2 * 1.0001, nu2, nu1, nu1 / 1.0001]) * u.Hz)
                  .to(u.micron, equivalencies=u.spectral()), np.array([0., 1., 1., 0.]))
    nu = np.linspace(2e12, 4e12, 20001)
    nu0 = 3e12
    got = band_average(filt, nu * u.Hz, (nu / nu0) ** 2, reference=nu0 * u.Hz)
    expected = ((nu2 ** 3 - nu1 ** 3) / 3 / nu0 ** 2) / (nu0 * np.log(nu2 / nu1))
    assert got == pytest.approx(expected, rel=1e-3)


def test_read_real_filter(shared_data):
    filt = read_filter('SPIRE_250', filter_dir=shared_data / 'filters')
    assert filt.name == 'PSW' and filt.kind == 'energy'
    peak = filt.wavelength[np.argmax(filt.transmission)].to_value(u.micron)
    assert 200 < peak < 300


def test_read_filter_errors(tmp_path):
    bad = tmp_path / 'bad.dat'
    bad.write_text('# bad\n# bolometer\n# x\n1 1\n2 1\n')
    with pytest.raises(ValueError, match='energy" or "# photon'):
        read_filter(bad)
    with pytest.raises(ValueError, match='filter_dir'):
        read_filter('SPIRE_250')
    with pytest.raises(FileNotFoundError, match='PACS_100'):
        read_filter('PACS_100', filter_dir=tmp_path)
