"""
Tests of truth source 3 (astro_dustml.training.fir_truth) against mocks rendered from
known maps.
"""

import astropy.units as u
import numpy as np
import pytest
from astropy.convolution import Gaussian2DKernel, convolve_fft
from astropy.coordinates import SkyCoord
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.wcs import WCS

from astro_dustml.bands import get_band
from astro_dustml.exceptions import AstroDustMLWarning
from astro_dustml.farinfrared import dust_calibration
from astro_dustml.farinfrared.tests.test_dust_fit import _observed_flux
from astro_dustml.sed import read_filter
from astro_dustml.training import (
    FarInfraredTruth,
    TrainingGalaxy,
    TruthUnavailable,
    build_training_table,
    read_training_table,
)

FIR = ('PACS_100', 'PACS_160', 'SPIRE_250')
DISTANCE = 10.0  # Mpc
PIX = 3.0  # arcsec, rendering grid
N = 136
SIGMA_GAL = 40.0  # arcsec, Gaussian stellar-mass profile
CENTER = SkyCoord(150 * u.deg, 2 * u.deg)
# Cluver et al. (2014) written out here, independently of astro_dustml.farinfrared.stellar_mass
W1_ZERO, W2_ZERO, M_SUN_W1, SLOPE, INTERCEPT = 309.54, 171.787, 3.24, -2.54, -0.17
COLOUR = 0.2  # W1 - W2 (Vega mag)


def true_smd(dlon, dlat):
    """log10(Md / M*) of the mock: a gradient to the north (offsets in arcsec)."""
    return -2.5 + 0.3 * dlat / 60


def true_td(dlon, dlat):
    """Dust temperature of the mock (K): a gradient to the east."""
    return 22.0 + 3.0 * dlon / 60


def _wcs(scale, n):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [CENTER.ra.deg, CENTER.dec.deg]
    wcs.wcs.crpix = [(n + 1) / 2] * 2
    wcs.wcs.cdelt = [-scale / 3600, scale / 3600]
    return wcs


def _offsets(coords):
    dlon, dlat = CENTER.spherical_offsets_to(coords)
    return dlon.to_value(u.arcsec), dlat.to_value(u.arcsec)


def _observe(flux, band, rng, noise, rebin=1):
    """Convolve with the band's Gaussian PSF, rebin, add noise: a Jy/pix image."""
    sigma = get_band(band).fwhm.to_value(u.arcsec) / PIX / np.sqrt(8 * np.log(2))
    image = convolve_fft(flux, Gaussian2DKernel(sigma), normalize_kernel=True)
    n = N // rebin
    image = image.reshape(n, rebin, n, rebin).sum(axis=(1, 3))
    err = np.full(image.shape, noise * image.max())
    return CCDData(image + rng.normal(0, 1, image.shape) * err, unit='Jy/pix',
                   wcs=_wcs(PIX * rebin, n), uncertainty=StdDevUncertainty(err),
                   meta={'band': band})


@pytest.fixture(scope='module')
def mock_images(shared_data):
    """W1, W2 and far-infrared maps of a galaxy whose Md, Td and M* maps are known."""
    wcs = _wcs(PIX, N)
    yy, xx = np.mgrid[:N, :N]
    dlon, dlat = _offsets(wcs.pixel_to_world(xx, yy))
    mstar = np.exp(-0.5 * (dlon ** 2 + dlat ** 2) / SIGMA_GAL ** 2)
    mstar *= 1e10 / mstar.sum()
    md = mstar * 10 ** true_smd(dlon, dlat)
    td = true_td(dlon, dlat)
    # W1 of that stellar mass through the relation (absolute magnitude, distance modulus)
    log_l = np.log10(mstar) - (SLOPE * COLOUR + INTERCEPT)
    w1_mag = M_SUN_W1 - 2.5 * log_l + 5 * np.log10(DISTANCE * 1e5)
    w1 = W1_ZERO * 10 ** (-0.4 * w1_mag)
    w2 = W2_ZERO * 10 ** (-0.4 * (w1_mag - COLOUR))
    rng = np.random.default_rng(11)
    images = {'WISE_3.4': _observe(w1, 'WISE_3.4', rng, 1e-3),
              'WISE_4.6': _observe(w2, 'WISE_4.6', rng, 1e-3)}
    grid = np.linspace(12, 35, 47)
    for band in FIR:
        filters = {band: read_filter(band, filter_dir=shared_data / 'filters')}
        per_mass = np.array([_observed_flux(filters, band, 1.0, t, DISTANCE) for t in grid])
        flux = md * np.exp(np.interp(td, grid, np.log(per_mass)))
        images[band] = _observe(flux, band, rng, 0.01, rebin=2 if band == 'SPIRE_250' else 1)
    return images


def _galaxy(images):
    return TrainingGalaxy(name='mockfir', images=images, distance=DISTANCE * u.Mpc,
                          center=CENTER, semimajor=120 * u.arcsec)


def test_recovers_mock_truth(mock_images, tmp_path):
    output = tmp_path / 'pixels.parquet'
    truth = FarInfraredTruth(calibrated=False, relation='cluver2014')
    summary = build_training_table([_galaxy(mock_images)], output=output, progress=False,
                                   scales=['18arcsec', '1kpc', 8 * u.arcsec], truth=truth,
                                   bands=['WISE_3.4', 'WISE_4.6'])
    rows = {r['scale']: r for r in summary}
    assert rows['18arcsec']['status'] == rows['1kpc']['status'] == 'ok'
    # 8 arcsec: only PACS 100 reaches it, a fit needs two bands
    assert rows['8arcsec']['status'] == 'skipped'
    assert rows['8arcsec']['reason'].startswith('no far-infrared truth at 8arcsec')
    table = read_training_table(output)
    # the far-infrared maps are truth, not input columns
    assert not any(b in table.colnames for b in FIR)
    for scale in ('18arcsec', '1kpc'):
        t = table[table['scale'] == scale]
        dlon, dlat = _offsets(SkyCoord(t['ra'], t['dec']))
        good = np.isfinite(t['Td'].value)
        assert good.sum() >= 15
        for name, expected, tol in (('Td', true_td(dlon, dlat), 0.5),
                                    ('sMd', true_smd(dlon, dlat), 0.05)):
            value, err = t[name].value[good], t[f'{name}_err'].value[good]
            res = value - expected[good]
            # within the stated uncertainties (the noise is correlated over a beam), unbiased
            assert np.mean(np.abs(res) < 3 * err) > 0.95 and np.all(np.abs(res) < 5 * err)
            assert abs(np.mean(res)) < tol, (scale, name)
        # the gradients are where they belong: the maps are aligned, not flipped.  At a
        # resolution sigma_b a linear gradient on a Gaussian galaxy (sigma_g) is seen
        # flattened by sigma_g^2 / (sigma_g^2 + sigma_b^2) (the mass-weighted mean of a
        # beam); sigma_b: the PSF and the box of the pixel
        fwhm = rows[scale]['fwhm']
        beam2 = (fwhm / np.sqrt(8 * np.log(2))) ** 2 + fwhm ** 2 / 12
        flat = SIGMA_GAL ** 2 / (SIGMA_GAL ** 2 + beam2)
        # (inside 2 sigma_g, where W2 and the far-infrared maps are well detected)
        inner = good & (np.hypot(dlon, dlat) < 2 * SIGMA_GAL)
        slope_t = np.polyfit(dlon[inner], t['Td'].value[inner], 1)[0] * 60
        slope_s = np.polyfit(dlat[inner], t['sMd'].value[inner], 1)[0] * 60
        assert slope_t == pytest.approx(3.0 * flat, rel=0.1), scale
        assert slope_s == pytest.approx(0.3 * flat, rel=0.1), scale


def test_skips_and_errors(mock_images):
    truth = FarInfraredTruth(relation='cluver2014')
    # the paper's scales: SPIRE 250 (18.2 arcsec) counts at 18 arcsec, PACS 70 is too warm
    assert truth.bands_for(FIR + ('PACS_70',), '18arcsec') == list(FIR)
    assert truth.bands_for(FIR, '1kpc', distance=DISTANCE * u.Mpc) == list(FIR)
    assert truth.bands_for(FIR, 12 * u.arcsec) == ['PACS_100', 'PACS_160']
    uvmir = {b: mock_images[b] for b in ('WISE_3.4', 'WISE_4.6')}
    wcs = _wcs(18, 10)
    with pytest.raises(TruthUnavailable, match='no far-infrared image'):
        truth(_galaxy(uvmir), wcs=wcs, shape=(10, 10), fwhm=18 * u.arcsec, scale=None)
    with pytest.raises(ValueError, match='WISE 3.4'):
        truth(_galaxy({b: mock_images[b] for b in FIR}), wcs=wcs, shape=(10, 10),
              fwhm=18 * u.arcsec, scale=None)
    with pytest.raises(ValueError, match='min_wavelength'):
        FarInfraredTruth(min_wavelength=3)
    with pytest.raises(ValueError, match='min_snr'):
        FarInfraredTruth(min_snr=-1)
    # the inputs are not modified
    before = mock_images['PACS_100'].data.copy()
    galaxy = _galaxy(mock_images)
    cal = truth(galaxy, wcs=wcs, shape=(10, 10), fwhm=18 * u.arcsec, scale=None)
    np.testing.assert_array_equal(mock_images['PACS_100'].data, before)
    # calibrated (the default): the raw fit put on the catalogue scale of these bands
    raw = FarInfraredTruth(calibrated=False, relation='cluver2014')(
        galaxy, wcs=wcs, shape=(10, 10), fwhm=18 * u.arcsec, scale=None)
    ok = np.isfinite(raw['Td'].data) & np.isfinite(cal['Td'].data)
    assert ok.sum() > 10
    coef = dust_calibration()['band_sets']['+'.join(FIR)]['coefficients']
    dt = raw['Td'].data[ok] - 20
    np.testing.assert_allclose(
        cal['Td'].data[ok], raw['Td'].data[ok] + coef['Tdust']['offset']
        + coef['Tdust']['slope'] * dt, rtol=1e-9)
    np.testing.assert_allclose(
        cal['sMd'].data[ok], raw['sMd'].data[ok] + coef['Mdust']['offset']
        + coef['Mdust']['slope'] * dt, rtol=1e-9)


def test_galaxy_without_far_infrared_is_skipped(mock_images, tmp_path):
    uvmir = {b: mock_images[b] for b in ('WISE_3.4', 'WISE_4.6')}
    with pytest.warns(AstroDustMLWarning, match='No rows were written'):
        summary = build_training_table([_galaxy(uvmir)], scales=['18arcsec'],
                                       truth=FarInfraredTruth(), output=tmp_path / 'p.parquet',
                                       bands=list(uvmir), progress=False)
    assert summary['status'].tolist() == ['skipped']
    assert 'has no far-infrared image' in summary['reason'][0]
