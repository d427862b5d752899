"""
Tests of astro_dustml.farinfrared.dust_fit: recovery of injected dust, the catalogue
scale, NGC 5584.
"""

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.modeling.physical_models import BlackBody
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import QTable
from astropy.wcs import WCS
from scipy.integrate import trapezoid

from astro_dustml.bands import get_band
from astro_dustml.exceptions import AstroDustMLWarning
from astro_dustml.farinfrared import (
    apply_dust_calibration,
    dust_calibration,
    fit_dust_sed,
    specific_dust_maps,
)
from astro_dustml.sed import BETA, KAPPA_0, KAPPA_WAVELENGTH, read_filter

BANDS = ['PACS_100', 'PACS_160', 'SPIRE_250', 'SPIRE_350', 'SPIRE_500']


def _wcs(scale=6.0, n=20):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [150, 2]
    wcs.wcs.crpix = [(n + 1) / 2] * 2
    wcs.wcs.cdelt = [-scale / 3600, scale / 3600]
    return wcs


def _observed_flux(filters, band, mass, temperature, distance):
    """Band flux (Jy) of a modified black body, integrated independently of the package."""
    filt = filters[band]
    nu = filt.wavelength.to_value(u.Hz, equivalencies=u.spectral())
    nu0 = get_band(band).wavelength.to_value(u.Hz, equivalencies=u.spectral())
    bb = BlackBody(temperature=temperature * u.K, scale=1 * u.Jy / u.sr)
    kappa = KAPPA_0 * (KAPPA_WAVELENGTH / filt.wavelength).decompose() ** BETA
    spectrum = (mass * u.Msun * kappa * bb(filt.wavelength) * u.sr
                / (distance * u.Mpc) ** 2).to_value(u.Jy)
    return trapezoid(spectrum * filt.transmission, nu) / trapezoid(
        nu0 / nu * filt.transmission, nu)


@pytest.fixture(scope='module')
def mock_fir(shared_data):
    """Far-infrared maps rendered from known Md (rows) and Td (columns), with noise."""
    filters = {b: read_filter(b, filter_dir=shared_data / 'filters') for b in BANDS}
    n, distance = 20, 10.0
    masses = np.geomspace(2e4, 2e5, n)
    temps = np.linspace(14, 32, n)
    rng = np.random.default_rng(3)
    images = {}
    for band in BANDS:
        per_t = np.array([_observed_flux(filters, band, 1.0, t, distance) for t in temps])
        clean = masses[:, None] * per_t[None, :]
        sigma = 0.08 * clean
        images[band] = CCDData(clean + rng.normal(0, 1, clean.shape) * sigma, unit='Jy/pix',
                               wcs=_wcs(n=n), uncertainty=StdDevUncertainty(sigma))
    truth_m = np.repeat(masses[:, None], n, axis=1)
    truth_t = np.repeat(temps[None, :], n, axis=0)
    return images, truth_m, truth_t, distance


def test_recovers_injected_mass_and_temperature(mock_fir):
    images, truth_m, truth_t, distance = mock_fir
    fit = fit_dust_sed(images, distance=distance * u.Mpc, calibrated=False)
    md, td = fit['Md'], fit['Td']
    assert not md.mask.any()
    z_m = (np.log10(md.data) - np.log10(truth_m)) / (md.uncertainty.array
                                                     / (md.data * np.log(10)))
    z_t = (td.data - truth_t) / td.uncertainty.array
    # the stated uncertainties describe the errors: z of unit spread, no bias
    assert 0.75 < np.std(z_m) < 1.3 and abs(np.mean(z_m)) < 0.25
    assert 0.75 < np.std(z_t) < 1.3 and abs(np.mean(z_t)) < 0.25
    # chi^2 per degree of freedom near one (5 bands, 2 parameters)
    assert np.mean(fit['chi2'].data) / (len(BANDS) - 2) == pytest.approx(1.0, abs=0.2)
    # the luminosity follows: L/M of the fitted body grows as T^(4+beta)
    ld = fit['Ld'].data
    assert np.corrcoef(np.log10(ld / md.data).ravel(), np.log10(td.data).ravel())[0, 1] > 0.99


def test_two_bands_and_the_table_form_agree(mock_fir):
    images, truth_m, truth_t, distance = mock_fir
    two = {b: images[b] for b in ('PACS_100', 'SPIRE_250')}
    maps = fit_dust_sed(two, distance=distance * u.Mpc, calibrated=False)
    table = QTable({'distance': np.full(5, distance) * u.Mpc})
    for b in two:
        table[b] = two[b].data[3, :5] * u.Jy
        table[f'{b}_err'] = two[b].uncertainty.array[3, :5] * u.Jy
    rows = fit_dust_sed(table, calibrated=False)
    assert rows['Md_fit'].value == pytest.approx(maps['Md'].data[3, :5], rel=1e-6)
    z = (maps['Td'].data - truth_t) / maps['Td'].uncertainty.array
    assert np.std(z[~maps['Td'].mask]) < 1.5


def test_calibrated_fit_reaches_catalogue_scale(shared_data):
    """On the DustPedia photometry the calibrated fit matches the CIGALE catalogue."""
    from astro_dustml.datasets import load_dustpedia_global
    table = load_dustpedia_global(path=shared_data / 'dustpedia', download=False,
                                  bands=BANDS)
    usable = np.ones(len(table), bool)
    for b in BANDS:
        usable &= (table[f'{b}_flag'] == 0) & (table[b].value > 3 * table[f'{b}_err'].value)
    good = usable & (table['Td_err'].value < 3) & (
        table['Mdust_err'].value / table['Mdust'].value < 0.5) & np.isfinite(
        table['distance'].value)
    fit = fit_dust_sed(table[good], bands=BANDS)
    res_m = np.log10(fit['Md_fit'].value) - np.log10(fit['Mdust'].value)
    res_l = np.log10(fit['Ld_fit'].value) - np.log10(fit['Ldust'].value)
    res_t = fit['Td_fit'].value - fit['Td'].value
    assert good.sum() > 100
    assert np.sqrt(np.mean(res_m ** 2)) < 0.1
    assert np.sqrt(np.mean(res_l ** 2)) < 0.1
    assert np.sqrt(np.mean(res_t ** 2)) < 1.5
    # the stated uncertainties (fit error and calibration scatter) describe the
    # residuals: chi^2 of order one (below one where the photometric errors, which
    # the catalogue's fit shares, dominate)
    for res, err in ((res_m, fit['Md_fit_err'] / fit['Md_fit'] / np.log(10)),
                     (res_l, fit['Ld_fit_err'] / fit['Ld_fit'] / np.log(10)),
                     (res_t, fit['Td_fit_err'])):
        assert 0.5 < np.mean((res / err.value) ** 2) < 1.5


@pytest.mark.slow
def test_ngc5584_pixel_masses_sum_to_catalogue(shared_data):
    from astro_dustml.datasets import load_dustpedia_global
    from astro_dustml.imaging import align_images, galaxy_region, prepare_images, read_images
    from astro_dustml.sed.tables import _region_weights
    row = load_dustpedia_global(path=shared_data / 'dustpedia', download=False,
                                bands=['PACS_100'])
    row = row[list(row['galaxy']).index('NGC5584')]
    region = galaxy_region(SkyCoord(row['ra'], row['dec']), semimajor=row['aperture_semimajor'],
                           axis_ratio=1 / row['aperture_axial_ratio'],
                           position_angle=row['aperture_pa'])
    images = read_images([shared_data / 'images' / f'NGC5584_{b}.fits.gz'
                          for b in ('PACS_100', 'SPIRE_250')])
    aligned = align_images(prepare_images(images, galaxy=region), target='SPIRE_250')
    fit = fit_dust_sed(aligned, distance=row['distance'])
    md = fit['Md']
    weights = _region_weights(region, md.wcs, md.shape, 'exact') * ~md.mask
    total = np.nansum(weights * md.data)
    # statistical errors add in quadrature, the calibration scatter is common to all pixels
    scatter = fit.meta['calibration']['coefficients']['Mdust']['scatter']
    log_err = md.uncertainty.array / (md.data * np.log(10))
    stat = np.sqrt(np.nansum((weights * md.data * np.log(10)
                              * np.sqrt(np.clip(log_err ** 2 - scatter ** 2, 0, None))) ** 2))
    sigma = np.sqrt(stat ** 2 + (total * np.log(10) * scatter) ** 2
                    + row['Mdust_err'].value ** 2)
    assert abs(total - row['Mdust'].value) < sigma
    assert abs(np.log10(total / row['Mdust'].value)) < 0.15


def test_apply_calibration_matches_fit(mock_fir):
    images, *_, distance = mock_fir
    raw = fit_dust_sed(images, distance=distance * u.Mpc, calibrated=False)
    cal = fit_dust_sed(images, distance=distance * u.Mpc)
    applied = apply_dust_calibration(raw['Md'].data * u.Msun, raw['Td'].data * u.K,
                                     raw['Ld'].data * u.Lsun, bands=BANDS)
    assert applied['Md'].value == pytest.approx(cal['Md'].data, rel=1e-9)
    assert applied['Td'].value == pytest.approx(cal['Td'].data, rel=1e-9)
    assert cal.meta['calibration']['band_set'] == '+'.join(BANDS)
    assert dust_calibration()['default'] == '+'.join(BANDS)


def test_errors(mock_fir):
    images, *_, distance = mock_fir
    with pytest.raises(ValueError, match='at least two bands'):
        fit_dust_sed({'SPIRE_250': images['SPIRE_250']}, distance=10 * u.Mpc)
    with pytest.raises(ValueError, match='distance='):
        fit_dust_sed(images)
    no_err = dict(images)
    no_err['PACS_100'] = CCDData(images['PACS_100'].data, unit='Jy/pix', wcs=_wcs())
    with pytest.raises(ValueError, match='no uncertainty'):
        fit_dust_sed(no_err, distance=10 * u.Mpc)
    shifted = dict(images)
    shifted['PACS_100'] = CCDData(images['PACS_100'].data, unit='Jy/pix', wcs=_wcs(scale=3),
                                  uncertainty=images['PACS_100'].uncertainty)
    with pytest.raises(ValueError, match='not aligned'):
        fit_dust_sed(shifted, distance=10 * u.Mpc)
    with pytest.raises(ValueError, match='far-infrared'):
        fit_dust_sed(images, distance=10 * u.Mpc, bands=['WISE_3.4', 'SPIRE_250'])
    warm = dict(images)
    warm['PACS_70'] = images['PACS_100']
    with pytest.warns(AstroDustMLWarning, match='not fitted'):
        fit_dust_sed(warm, distance=10 * u.Mpc, bands=['PACS_70', 'PACS_100', 'SPIRE_250'])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(ValueError, match='increasing'):
            fit_dust_sed(images, distance=10 * u.Mpc, temperature_range=(30, 10) * u.K)


def test_specific_maps_from_fit(mock_fir):
    images, truth_m, truth_t, distance = mock_fir
    fit = fit_dust_sed(images, distance=distance * u.Mpc, calibrated=False)
    mstar = CCDData(np.full(truth_m.shape, 1e9), unit=u.Msun, wcs=images['PACS_100'].wcs,
                    uncertainty=StdDevUncertainty(np.full(truth_m.shape, 1e8)))
    maps = specific_dust_maps(fit, mstar)
    z = (maps['sMd'].data - np.log10(truth_m / 1e9)) / maps['sMd'].uncertainty.array
    assert np.std(z) < 1.0  # the 10% stellar-mass error is in the uncertainty
    assert maps['sMd'].unit == u.dex and maps['Td'].unit == u.K
    with pytest.raises(ValueError, match='not aligned'):
        specific_dust_maps(fit, CCDData(np.ones((3, 3)), unit=u.Msun, wcs=_wcs(n=3)))


def _mbb_table(bands, temperatures, mass=1e7, distance=10.0, noise=0.05):
    """Rows of exact modified-black-body band fluxes (the package's model), 5% errors."""
    from astro_dustml.sed import band_flux
    table = QTable({'distance': np.full(len(temperatures), distance) * u.Mpc})
    for b in bands:
        f = np.array([band_flux(b, mass * u.Msun, t * u.K, distance * u.Mpc).value
                      for t in temperatures])
        table[b], table[f'{b}_err'] = f * u.Jy, noise * f * u.Jy
    return table


def test_each_row_is_calibrated_for_the_bands_it_has():
    """A row missing PACS gets the SPIRE-only calibration, as if fitted alone."""
    spire = ['SPIRE_250', 'SPIRE_350', 'SPIRE_500']
    table = _mbb_table(BANDS, [18.0, 24.0])
    for b in ('PACS_100', 'PACS_160'):
        table[b][1] = np.nan * u.Jy
    both = fit_dust_sed(table, bands=BANDS)
    alone = fit_dust_sed(table[1:], bands=spire)
    assert list(both['calibration_fit']) == ['+'.join(BANDS), '+'.join(spire)]
    for col in ('Md_fit', 'Td_fit', 'Ld_fit', 'Td_fit_err', 'Md_fit_err'):
        assert both[col][1].value == pytest.approx(alone[col][0].value, rel=1e-9)
    # and the calibration is exactly that of apply_dust_calibration for those bands
    raw = fit_dust_sed(table, bands=BANDS, calibrated=False)
    applied = apply_dust_calibration(raw['Md_fit'][1], raw['Td_fit'][1], raw['Ld_fit'][1],
                                     bands=spire)
    assert both['Td_fit'][1].value == pytest.approx(applied['Td'].value, rel=1e-9)


def test_pixels_without_a_band_use_their_own_calibration(mock_fir):
    images, *_, distance = mock_fir
    holed = dict(images)
    for b in ('PACS_100', 'PACS_160'):
        data = images[b].data.copy()
        data[0, 0] = np.nan
        holed[b] = CCDData(data, unit=images[b].unit, wcs=images[b].wcs,
                           uncertainty=images[b].uncertainty)
    cal = fit_dust_sed(holed, distance=distance * u.Mpc)
    raw = fit_dust_sed(holed, distance=distance * u.Mpc, calibrated=False)
    meta = cal.meta['calibration']
    keys = [meta['pixel_band_sets'][i] for i in meta['pixel_band_set_index'].ravel()]
    assert keys[0] == 'SPIRE_250+SPIRE_350+SPIRE_500' and set(keys[1:]) == {'+'.join(BANDS)}
    applied = apply_dust_calibration(raw['Md'].data[0, 0] * u.Msun,
                                     raw['Td'].data[0, 0] * u.K, raw['Ld'].data[0, 0] * u.Lsun,
                                     bands=['SPIRE_250', 'SPIRE_350', 'SPIRE_500'])
    assert cal['Td'].data[0, 0] == pytest.approx(applied['Td'].value, rel=1e-9)


def test_uncalibrated_set_uses_the_nearest_one():
    """MIPS 160 stands in for PACS 160 when its set has no calibration of its own."""
    bands = ['Spitzer_160', 'SPIRE_250', 'SPIRE_350', 'SPIRE_500']
    assert '+'.join(bands) not in dust_calibration()['band_sets']
    with pytest.warns(AstroDustMLWarning, match='nearest calibrated set'):
        out = fit_dust_sed(_mbb_table(bands, [20.0]), bands=bands)
    assert out['calibration_fit'][0] == 'PACS_160+SPIRE_250+SPIRE_350+SPIRE_500'


def test_calibration_round_trips_the_model():
    """Raw fit of exact model fluxes returns the injected body; calibrated = raw + correction."""
    temps = [15.0, 20.0, 28.0]
    table = _mbb_table(BANDS, temps, noise=0.02)
    raw = fit_dust_sed(table, calibrated=False)
    assert raw['Td_fit'].value == pytest.approx(temps, abs=0.3)
    assert np.log10(raw['Md_fit'].value) == pytest.approx(7.0, abs=0.03)
    coef = dust_calibration()['band_sets']['+'.join(BANDS)]['coefficients']['Tdust']
    cal = fit_dust_sed(table)
    expected = raw['Td_fit'].value + coef['offset'] + coef['slope'] * (raw['Td_fit'].value - 20)
    assert cal['Td_fit'].value == pytest.approx(expected, rel=1e-9)


def test_held_out_galaxies_reach_catalogue(shared_data):
    """
    Galaxies the calibration never saw (its held-out split), each fitted with every
    far-infrared band it has, against the CIGALE catalogue (issue #21).
    """
    import zlib

    from astro_dustml.datasets import load_dustpedia_global
    rule = dust_calibration()['provenance']['held_out']
    fir = ['Spitzer_160', *BANDS]
    table = load_dustpedia_global(path=shared_data / 'dustpedia', download=False, bands=fir)
    held = np.array([zlib.crc32(str(g).encode()) % rule['modulus'] == 0
                     for g in table['galaxy']])
    with np.errstate(invalid='ignore', divide='ignore'):
        good = held & (table['Td_err'].value < 3) & (
            table['Mdust_err'].value / table['Mdust'].value < 0.5) & np.isfinite(
            table['distance'].value) & (table['Mdust'].value > 0)
    table = table[good]
    for b in fir:  # the catalogue's flagged or undetected fluxes are not fitted
        bad = (table[f'{b}_flag'] != 0) | ~(table[b].value > 3 * table[f'{b}_err'].value)
        table[b][bad] = np.nan * u.Jy
        table[f'{b}_err'][bad] = np.nan * u.Jy
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', AstroDustMLWarning)  # MIPS 160 sets: nearest one
        fit = fit_dust_sed(table, bands=fir)
    ok = np.isfinite(fit['Td_fit'].value)
    has_pacs = np.isfinite(table['PACS_100'].value) | np.isfinite(table['PACS_160'].value)
    res_t = (fit['Td_fit'].value - table['Td'].value)[ok]
    res_m = np.log10(fit['Md_fit'].value / table['Mdust'].value)[ok]
    assert ok.sum() > 40 and has_pacs[ok].sum() > 25
    # the issue: Td within 2 K wherever PACS 100 or 160 is there, Md not worse than 0.142 dex
    assert np.sqrt(np.mean(res_t[has_pacs[ok]] ** 2)) < 2.0
    assert np.sqrt(np.mean(res_m ** 2)) < 0.142
    # the stated uncertainties describe the residuals
    z_t = res_t / fit['Td_fit_err'].value[ok]
    z_m = res_m / (fit['Md_fit_err'] / fit['Md_fit']).value[ok] * np.log(10)
    assert 0.5 < np.mean(z_t ** 2) < 2 and 0.5 < np.mean(z_m ** 2) < 2
