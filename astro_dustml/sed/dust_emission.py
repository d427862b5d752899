"""
Far-infrared emission of dust: the modified black body and its band fluxes.

The one place for the far-infrared dust physics and its constants.  Optically
thin dust of mass ``Md`` at temperature ``T`` and distance ``D`` emits

    ``F_nu = Md kappa_nu B_nu(T) / D**2``,  ``kappa_nu = kappa_0 (nu / nu_0)**beta``,

with the THEMIS values that the DustPedia CIGALE catalogue rests on:
``beta = 1.79`` (the far-infrared slope of THEMIS big grains, the exponent
in the catalogue's ``Td = 18.3 K * Umin**(1/5.79)``, 5.79 = 4 + beta;
Nersesian et al. 2019) and ``kappa_0 = 0.64 m2 kg-1`` at 250 micron (THEMIS,
as used by DustPedia: Bianchi et al. 2019).  Its luminosity is analytic,
``L = 4 pi Md kappa_0 nu_0**-beta (2h/c**2) (kT/h)**(4+beta) Gamma(4+beta) zeta(4+beta)``.

Band fluxes are the monochromatic flux at the band's reference wavelength
(band registry) times a colour correction ``K(T)`` that integrates the
spectrum through the band's real transmission curve (`astro_dustml.sed.filters`,
``nu F_nu = const`` convention).  ``K(T)`` of the far-infrared bands is shipped
as package data (``data/fir_colour_corrections.json``, written by
``scripts/calibrate_fir.py`` from the pcigale filter curves); other ``beta``
or curves are integrated on the fly from ``filter_dir``.
"""

import json
from functools import lru_cache
from importlib.resources import files

import astropy.constants as const
import astropy.units as u
import numpy as np
from scipy.special import gamma, zeta

from ..bands import FIR_BANDS, get_band
from .filters import band_average, read_filter

__all__ = ['BETA', 'KAPPA_0', 'KAPPA_WAVELENGTH', 'TD_UMIN1', 'UMIN_POWER', 'kappa',
           'modified_black_body', 'dust_luminosity', 'colour_correction', 'band_flux',
           'mass_weighted_temperature']


BETA = 1.79


"""Emissivity index of THEMIS big grains (Nersesian et al. 2019)."""


KAPPA_0 = 0.64 * u.m ** 2 / u.kg


"""Mass absorption coefficient at `KAPPA_WAVELENGTH` (THEMIS; Bianchi et al. 2019)."""


KAPPA_WAVELENGTH = 250 * u.micron


"""Reference wavelength of `KAPPA_0`."""


TD_UMIN1 = 18.3 * u.K


"""THEMIS dust temperature at ``Umin = 1``: ``Td = TD_UMIN1 * Umin**(1 / UMIN_POWER)``."""


UMIN_POWER = 4 + BETA


"""``Umin ~ Ld / Md ~ Td**UMIN_POWER`` (THEMIS; Nersesian et al. 2019)."""


_H_K = (const.h / const.k_B).to_value(u.s * u.K)


_2H_C2 = (2 * const.h / const.c ** 2).to_value(u.J * u.s ** 3 / u.m ** 2)


_NU0 = KAPPA_WAVELENGTH.to_value(u.Hz, equivalencies=u.spectral())


_KAPPA0 = KAPPA_0.to_value(u.m ** 2 / u.kg)


_MSUN_KG = const.M_sun.to_value(u.kg)


_LSUN_W = const.L_sun.to_value(u.W)


_MPC_M = u.Mpc.to(u.m)


_JY = 1e-26  # W m-2 Hz-1


_TABLE_FILE = 'fir_colour_corrections.json'


# Grid on which colour corrections are tabulated and interpolated (log T)
_T_GRID = np.geomspace(3.0, 200.0, 400)


def _mbb_si(nu, temperature, beta):
    """kappa_nu B_nu(T) in W Hz-1 sr-1 per kg of dust (arrays broadcast)."""
    with np.errstate(over='ignore'):
        planck = _2H_C2 * nu ** 3 / np.expm1(_H_K * nu / temperature)
    return _KAPPA0 * (nu / _NU0) ** beta * planck


def _flux_per_mass(nu, temperature, beta):
    """F_nu in Jy of one solar mass of dust at 1 Mpc."""
    return _mbb_si(nu, temperature, beta) * _MSUN_KG / _MPC_M ** 2 / _JY


def _luminosity_per_mass(temperature, beta):
    """Lsun per Msun of dust: 4 pi int kappa_nu B_nu dnu."""
    x = 4 + beta
    integral = _KAPPA0 * _NU0 ** -beta * _2H_C2 * (temperature / _H_K) ** x \
        * gamma(x) * zeta(x)
    return 4 * np.pi * integral * _MSUN_KG / _LSUN_W


def kappa(wavelength, *, beta=BETA):
    """
    Dust mass absorption coefficient ``kappa_0 (nu / nu_0)**beta``.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_dustml.sed import kappa
    >>> kappa(500 * u.micron)  # doctest: +FLOAT_CMP
    <Quantity 0.18507011 m2 / kg>
    """
    nu = u.Quantity(wavelength).to_value(u.Hz, equivalencies=u.spectral())
    return KAPPA_0 * (nu / _NU0) ** beta


def modified_black_body(wavelength, mass, temperature, distance, *, beta=BETA):
    """
    Flux density of optically thin dust, ``Md kappa_nu B_nu(T) / D**2``.

    Parameters
    ----------
    wavelength : `~astropy.units.Quantity`
        Wavelength(s) or frequency(ies).
    mass, temperature, distance : `~astropy.units.Quantity`
        Dust mass, temperature and distance (broadcast together).
    beta : float, optional
        Emissivity index.

    Returns
    -------
    flux : `~astropy.units.Quantity`
        Flux density in Jy.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_dustml.sed import modified_black_body
    >>> flux = modified_black_body(250 * u.micron, 1e7 * u.Msun, 20 * u.K, 10 * u.Mpc)
    >>> flux  # doctest: +FLOAT_CMP
    <Quantity 20.26371429 Jy>
    """
    nu = u.Quantity(wavelength).to_value(u.Hz, equivalencies=u.spectral())
    per_mass = _flux_per_mass(nu, u.Quantity(temperature).to_value(u.K), beta)
    return (per_mass * u.Quantity(mass).to_value(u.Msun)
            / u.Quantity(distance).to_value(u.Mpc) ** 2) * u.Jy


def dust_luminosity(mass, temperature, *, beta=BETA):
    """
    Total luminosity of a modified black body of dust.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_dustml.sed import dust_luminosity
    >>> dust_luminosity(1 * u.Msun, 18.3 * u.K).to(u.Lsun)  # doctest: +FLOAT_CMP
    <Quantity 143.88966456 solLum>
    """
    per_mass = _luminosity_per_mass(u.Quantity(temperature).to_value(u.K), beta)
    return per_mass * u.Quantity(mass).to_value(u.Msun) * u.Lsun


def _compute_corrections(bands, beta, filter_dir, temperatures=_T_GRID):
    """K(T) per band from the transmission curves: array (n_bands, n_T)."""
    rows = []
    for name in bands:
        band = get_band(name)
        filt = read_filter(band.name, filter_dir=filter_dir)
        wav = filt.wavelength[filt.transmission > 0]
        nu = np.geomspace(*(wav[[-1, 0]].to_value(u.Hz, equivalencies=u.spectral())), 2000)
        nu0 = band.wavelength.to_value(u.Hz, equivalencies=u.spectral())
        spectra = _mbb_si(nu[None, :], temperatures[:, None], beta)
        quoted = band_average(filt, nu * u.Hz, spectra, reference=band.wavelength)
        rows.append(quoted / _mbb_si(nu0, temperatures, beta))
    return np.array(rows)


def write_colour_corrections(path, *, filter_dir, beta=BETA):
    """Write the shipped colour-correction table (used by ``scripts/calibrate_fir.py``)."""
    table = _compute_corrections(FIR_BANDS, beta, filter_dir)
    content = {'description': 'Colour corrections K(T) = quoted / monochromatic flux at the '
                              'band reference wavelength of a modified black body, '
                              'nu F_nu = const convention (astro_dustml.sed.dust_emission)',
               'beta': beta, 'temperature_K': _T_GRID.round(6).tolist(),
               'bands': {b: row.round(6).tolist() for b, row in zip(FIR_BANDS, table)}}
    with open(path, 'w') as handle:
        json.dump(content, handle, indent=1)


@lru_cache(maxsize=None)
def _shipped_table():
    text = files('astro_dustml').joinpath('data', _TABLE_FILE).read_text()
    content = json.loads(text)
    return content['beta'], np.array(content['temperature_K']), {
        b: np.array(v) for b, v in content['bands'].items()}


@lru_cache(maxsize=32)
def _table(band, beta, filter_dir):
    if filter_dir is None:
        shipped_beta, grid, rows = _shipped_table()
        if beta != shipped_beta:
            raise ValueError(f'The shipped colour corrections are for beta={shipped_beta}; '
                             f'for beta={beta} give filter_dir= (the folder of pcigale '
                             'filter files) to integrate the transmission curves.')
        if band not in rows:
            raise ValueError(f'No shipped colour correction for {band}; those are for '
                             f'{", ".join(rows)}. Give filter_dir= to compute it.')
        return grid, rows[band]
    return _T_GRID, _compute_corrections([band], beta, str(filter_dir))[0]


def _colour_correction(band, temperature, beta=BETA, filter_dir=None):
    grid, row = _table(get_band(band).name, beta, filter_dir)
    t = np.clip(temperature, grid[0], grid[-1])
    return np.interp(np.log(t), np.log(grid), row)


def colour_correction(band, temperature, *, beta=BETA, filter_dir=None):
    """
    Ratio of the flux a band quotes for a modified black body to its monochromatic value.

    Parameters
    ----------
    band : str
        A far-infrared band of the registry.
    temperature : `~astropy.units.Quantity`
        Dust temperature(s).
    beta : float, optional
        Emissivity index.
    filter_dir : path-like, optional
        Folder of pcigale filter files to integrate instead of the shipped
        table (needed for another ``beta``).

    Returns
    -------
    K : `~numpy.ndarray`

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_dustml.sed import colour_correction
    >>> float(colour_correction('SPIRE_250', 20 * u.K)) > 1.0
    True
    """
    return _colour_correction(band, u.Quantity(temperature).to_value(u.K), beta, filter_dir)


def _band_flux_per_mass(band, temperature, beta=BETA, filter_dir=None):
    """Band flux (Jy) of one Msun of dust at 1 Mpc at each temperature (K, array)."""
    band = get_band(band)
    nu0 = band.wavelength.to_value(u.Hz, equivalencies=u.spectral())
    return (_flux_per_mass(nu0, temperature, beta)
            * _colour_correction(band.name, temperature, beta, filter_dir))


def band_flux(band, mass, temperature, distance, *, beta=BETA, filter_dir=None):
    """
    Flux density a far-infrared band quotes for a modified black body.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_dustml.sed import band_flux, modified_black_body
    >>> f = band_flux('SPIRE_350', 1e7 * u.Msun, 20 * u.K, 10 * u.Mpc)
    >>> mono = modified_black_body(350 * u.micron, 1e7 * u.Msun, 20 * u.K, 10 * u.Mpc)
    >>> 0.9 < float(f / mono) < 1.1
    True
    """
    per_mass = _band_flux_per_mass(band, u.Quantity(temperature).to_value(u.K), beta,
                                   filter_dir)
    return (per_mass * u.Quantity(mass).to_value(u.Msun)
            / u.Quantity(distance).to_value(u.Mpc) ** 2) * u.Jy


def mass_weighted_temperature(mass, temperature, *, axis=None):
    """
    Temperature of a mixture of dust components, as THEMIS adds them up.

    ``Umin ~ Td**5.79`` and ``Ld ~ Md Umin``, so the mixture's temperature is
    the one of its dust-mass weighted mean ``Umin``:
    ``Td = (sum(Md_i Td_i**5.79) / sum(Md_i))**(1 / 5.79)``.  The
    constrained maps, the mock galaxies and global values summed from pixels
    all aggregate temperatures this way.

    Parameters
    ----------
    mass : array or `~astropy.units.Quantity`
        Dust masses (any unit; only ratios matter).
    temperature : array or `~astropy.units.Quantity`
        Temperatures (K when a plain array).
    axis : int, optional
        Axis to aggregate over; default all.

    Returns
    -------
    Td : `~astropy.units.Quantity`
        The mixture's temperature in K (NaN where the mass is zero).

    Examples
    --------
    >>> from astro_dustml.sed import mass_weighted_temperature
    >>> t = mass_weighted_temperature([1., 3.], [30., 20.])
    >>> round(float(t.value), 2)  # warmer than the mass-weighted mean of Td, 22.5 K
    24.66
    """
    mass = u.Quantity(mass).value
    t = u.Quantity(temperature, u.K).value
    with np.errstate(invalid='ignore', divide='ignore'):
        mean = np.sum(mass * t ** UMIN_POWER, axis=axis) / np.sum(mass, axis=axis)
        return mean ** (1 / UMIN_POWER) * u.K
