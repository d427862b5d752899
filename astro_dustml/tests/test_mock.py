import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.modeling import fitting, models
from astropy.table import Table

from astro_dustml.bands import get_band
from astro_dustml.datasets import make_mock_galaxy

CENTER = SkyCoord(150.0, 2.0, unit='deg')


@pytest.fixture(scope='module')
def quiet_mock():
    return make_mock_galaxy(bands=['SDSS_r', 'WISE_3.4', 'WISE_12', 'Spitzer_8.0', 'SPIRE_250'],
                            noise=False, sky=False, fov=3 * u.arcmin,
                            semimajor=45 * u.arcsec)


@pytest.mark.parametrize('band', ['SDSS_r', 'WISE_3.4', 'Spitzer_8.0', 'GALEX_NUV'])
def test_point_source_fwhm(band):
    # A lone star far from the galaxy, no noise: its fitted FWHM is the band's
    star = Table({'ra': [CENTER.ra.deg + 1.0 / 60 / np.cos(CENTER.dec.radian)],
                  'dec': [CENTER.dec.deg + 1.0 / 60], 'phot_g_mean_mag': [14.0]})
    mock = make_mock_galaxy(bands=[band], stars=star, noise=False, sky=False,
                            fov=3 * u.arcmin, semimajor=20 * u.arcsec)
    image = mock.images[band]
    scale = get_band(band).pixel_scale
    x, y = image.wcs.world_to_pixel_values(star['ra'][0], star['dec'][0])
    half = int(np.ceil(3 * get_band(band).fwhm / scale))
    ix, iy = int(round(float(x))), int(round(float(y)))
    cut = image.data[iy - half:iy + half + 1, ix - half:ix + half + 1]
    yy, xx = np.mgrid[:cut.shape[0], :cut.shape[1]]
    init = models.Gaussian2D(cut.max(), half, half, 1, 1) + models.Const2D(np.median(cut))
    fit = fitting.LevMarLSQFitter()(init, xx, yy, cut)
    sigma = np.sqrt(fit[0].x_stddev * fit[0].y_stddev) * scale
    # Pixel integration adds 1/12 pixel^2 of variance to the true PSF
    true_sigma = np.sqrt((get_band(band).fwhm / 2.3548) ** 2 + scale ** 2 / 12)
    assert sigma.to_value(u.arcsec) == pytest.approx(true_sigma.to_value(u.arcsec), rel=0.05)


def test_total_flux_matches_documented_seds(quiet_mock):
    # Independent expectation of the 3.4 micron flux from the documented
    # templates: 0.25 Jy (old) and 0.75 Jy (young) per 1e10 Msun at 10 Mpc,
    # plus the dust emission nu L_nu = 0.004 Ldust, with
    # Ldust = 10 Lsun/Msun * Myoung + 0.1 Lsun/Msun * Mold.
    m_old, m_young = 0.98e10, 0.02e10
    ldust = (10 * m_young + 0.1 * m_old) * u.Lsun
    nu = (3.37 * u.micron).to(u.Hz, u.spectral())
    dust = (0.004 * ldust / (4 * np.pi * (10 * u.Mpc) ** 2) / nu).to_value(u.Jy)
    expected = 0.25 * m_old / 1e10 + 0.75 * m_young / 1e10 + dust
    image = quiet_mock.images['WISE_3.4']
    assert image.unit == u.Jy / u.pix
    assert image.data.sum() == pytest.approx(expected, rel=0.01)
    # Every band's image sums to its SED entry within 1%
    for row in quiet_mock.sed:
        image = quiet_mock.images[row['band']]
        if image.unit == u.Jy / u.pix:
            total = image.data.sum() * u.Jy
        else:
            total = image.data.sum() * image.unit * image.wcs.proj_plane_pixel_scales()[0] ** 2
        assert total.to_value(u.Jy) == pytest.approx(row['flux'].to_value(u.Jy), rel=0.01)


def test_wcs_centre(quiet_mock):
    for image in quiet_mock.images.values():
        x, y = image.wcs.world_to_pixel(CENTER)
        ny, nx = image.shape
        assert float(x) == pytest.approx((nx - 1) / 2, abs=1e-6)
        assert float(y) == pytest.approx((ny - 1) / 2, abs=1e-6)
        if image.meta['band'] in ('SDSS_r', 'WISE_3.4'):
            # In starlight the bulge makes the brightest pixel the centre
            iy, ix = np.unravel_index(np.argmax(image.data), image.shape)
            assert abs(ix - x) <= 1 and abs(iy - y) <= 1


def test_truth_ranges_and_resolution(quiet_mock):
    image = quiet_mock.images['WISE_3.4']
    truth = quiet_mock.truth_maps(image.wcs, image.shape, 6 * u.arcsec)
    inner = np.hypot(*np.mgrid[-(image.shape[0] // 2):image.shape[0] - image.shape[0] // 2,
                               -(image.shape[1] // 2):image.shape[1] - image.shape[1] // 2]) < 20
    assert truth['sLd'].unit == u.dex and truth['Td'].unit == u.K
    assert np.all(np.isfinite(truth['Td'][inner]))
    # Typical DustPedia ranges: sLd ~ -2..0.5, sMd ~ -4.5..-1.5, Td 12..35 K
    assert -2 < np.median(truth['sLd'][inner].value) < 0.5
    assert -4.5 < np.median(truth['sMd'][inner].value) < -1.5
    assert 12 < np.median(truth['Td'][inner].value) < 35
    # Smoothing reduces the spread of the truth
    coarse = quiet_mock.truth_maps(image.wcs, image.shape, 30 * u.arcsec)
    assert np.std(coarse['sLd'][inner]) < np.std(truth['sLd'][inner])


def test_deterministic_and_seeded():
    a = make_mock_galaxy(bands=['WISE_3.4'], seed=3, fov=1 * u.arcmin, semimajor=20 * u.arcsec,
                         n_stars=4)
    b = make_mock_galaxy(bands=['WISE_3.4'], seed=3, fov=1 * u.arcmin, semimajor=20 * u.arcsec,
                         n_stars=4)
    c = make_mock_galaxy(bands=['WISE_3.4'], seed=4, fov=1 * u.arcmin, semimajor=20 * u.arcsec,
                         n_stars=4)
    np.testing.assert_array_equal(a.images['WISE_3.4'].data, b.images['WISE_3.4'].data)
    assert not np.array_equal(a.images['WISE_3.4'].data, c.images['WISE_3.4'].data)
    assert set(a.stars.colnames) >= {'ra', 'dec', 'parallax', 'parallax_error', 'pmra', 'pmdec',
                                     'phot_g_mean_mag'}


def test_noise_level_is_as_reported():
    mock = make_mock_galaxy(bands=['WISE_3.4'], fov=3 * u.arcmin, semimajor=30 * u.arcsec)
    image = mock.images['WISE_3.4']
    corner = image.data[:20, :20]
    # Sky pedestal + gentle gradient: the local scatter is the noise
    assert np.std(np.diff(corner, axis=1)) / np.sqrt(2) == pytest.approx(
        mock.sky_rms['WISE_3.4'].value, rel=0.1)
    assert mock.images['WISE_3.4'].meta['header']['TELESCOP'] == 'WISE'
