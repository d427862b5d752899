"""Tests of astro_dustml.sed.dust_emission against astropy's black body and direct integrals."""

import astropy.constants as const
import astropy.units as u
import numpy as np
import pytest
from astropy.modeling.physical_models import BlackBody
from scipy.integrate import quad, trapezoid

from astro_dustml.bands import FIR_BANDS, get_band
from astro_dustml.sed import (
    BETA,
    KAPPA_0,
    KAPPA_WAVELENGTH,
    band_flux,
    colour_correction,
    dust_luminosity,
    kappa,
    modified_black_body,
    read_filter,
)


def _astropy_mbb(wavelength, mass, temperature, distance, beta=BETA):
    bb = BlackBody(temperature=temperature, scale=1 * u.Jy / u.sr)
    k = KAPPA_0 * (KAPPA_WAVELENGTH / wavelength).decompose() ** beta
    # B_nu in Jy/sr times the solid angle... per unit mass: F = M kappa B / D^2
    return (mass * k * bb(wavelength) * u.sr / distance ** 2).to(u.Jy)


@pytest.mark.parametrize('wavelength', [100, 250, 500] * u.micron)
def test_modified_black_body_matches_astropy(wavelength):
    got = modified_black_body(wavelength, 3e6 * u.Msun, 23 * u.K, 15 * u.Mpc)
    expected = _astropy_mbb(wavelength, 3e6 * u.Msun, 23 * u.K, 15 * u.Mpc)
    assert got.to_value(u.Jy) == pytest.approx(expected.to_value(u.Jy), rel=1e-6)


def test_kappa_reference():
    assert kappa(KAPPA_WAVELENGTH) == KAPPA_0
    assert kappa(2 * KAPPA_WAVELENGTH).value == pytest.approx(KAPPA_0.value * 2 ** -BETA)


@pytest.mark.parametrize('temperature', [12., 20., 35.])
def test_luminosity_matches_numerical_integral(temperature):
    bb = BlackBody(temperature=temperature * u.K, scale=1 * u.W / (u.m ** 2 * u.Hz * u.sr))
    nu0 = KAPPA_WAVELENGTH.to_value(u.Hz, equivalencies=u.spectral())

    def integrand(nu):
        return (KAPPA_0.value * (nu / nu0) ** BETA * bb(nu * u.Hz).value)
    # beyond h nu = 60 kT the body contributes below 1e-20 of the total
    upper = 60 * (const.k_B * temperature * u.K / const.h).to_value(u.Hz)
    integral, _ = quad(integrand, 1e9, upper, limit=400, points=[upper / 30, upper / 10])
    expected = (4 * np.pi * integral * u.W / u.kg * u.Msun).to_value(u.Lsun)
    assert dust_luminosity(1 * u.Msun, temperature * u.K).to_value(u.Lsun) == \
        pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize('band', ['PACS_100', 'PACS_160', 'SPIRE_250', 'SPIRE_500',
                                  'Spitzer_70'])
def test_band_flux_through_real_curves(band, shared_data):
    """The shipped colour correction equals a direct integral of astropy's body."""
    filt = read_filter(band, filter_dir=shared_data / 'filters')
    wav = filt.wavelength
    nu = wav.to_value(u.Hz, equivalencies=u.spectral())
    nu0 = get_band(band).wavelength.to_value(u.Hz, equivalencies=u.spectral())
    for temperature in (15., 25.):
        spectrum = _astropy_mbb(wav, 1e7 * u.Msun, temperature * u.K, 10 * u.Mpc).value
        # nu F_nu = const convention, energy detector, integrated on the curve's own grid
        quoted = trapezoid(spectrum * filt.transmission, nu) / trapezoid(
            nu0 / nu * filt.transmission, nu)
        got = band_flux(band, 1e7 * u.Msun, temperature * u.K, 10 * u.Mpc).to_value(u.Jy)
        assert got == pytest.approx(quoted, rel=2e-3)


def test_colour_correction_other_beta_needs_curves(shared_data):
    with pytest.raises(ValueError, match='filter_dir'):
        colour_correction('SPIRE_250', 20 * u.K, beta=2.0)
    k = colour_correction('SPIRE_250', 20 * u.K, beta=2.0, filter_dir=shared_data / 'filters')
    assert 0.9 < float(k) < 1.2


def test_shipped_table_covers_the_far_infrared_bands():
    for band in FIR_BANDS:
        assert np.isfinite(colour_correction(band, 20 * u.K))
