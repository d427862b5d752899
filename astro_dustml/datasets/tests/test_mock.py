import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.modeling import fitting, models
from astropy.table import Table

from astro_dustml.bands import get_band
from astro_dustml.datasets import make_mock_galaxy, make_mock_survey

CENTER = SkyCoord(150.0, 2.0, unit='deg')


QUIET_BANDS = ['SDSS_r', 'WISE_3.4', 'WISE_12', 'Spitzer_8.0', 'SPIRE_250']


@pytest.fixture(scope='module')
def quiet_mock():
    return make_mock_galaxy(bands=QUIET_BANDS, noise=False, sky=False, fov=3 * u.arcmin,
                            semimajor=45 * u.arcsec, dust_recipe='analytic')


@pytest.fixture(scope='module')
def dustpedia_mock():
    return make_mock_galaxy(bands=QUIET_BANDS, noise=False, sky=False, fov=3 * u.arcmin,
                            semimajor=45 * u.arcsec)


def _templates():
    # The bundled template table, read independently of the mock code
    from importlib import resources
    with resources.as_file(resources.files('astro_dustml') / 'data'
                           / 'mock_templates.ecsv') as path:
        return Table.read(path, format='ascii.ecsv')


def _image_total(image):
    if image.unit == u.Jy / u.pix:
        return image.data.sum() * u.Jy
    return image.data.sum() * image.unit * image.wcs.proj_plane_pixel_scales()[0] ** 2


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


def test_analytic_total_flux_matches_documented_seds(quiet_mock):
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
        total = _image_total(quiet_mock.images[row['band']])
        assert total.to_value(u.Jy) == pytest.approx(row['flux'].to_value(u.Jy), rel=0.01)


def test_one_template_galaxy_is_that_template():
    # A mock made of one template: every band's total is stellar mass x the
    # template's flux per solar mass at 10 Mpc, diluted to 20 Mpc, and the
    # true maps are the template's catalogue values everywhere
    bands = ['GALEX_NUV', 'SDSS_g', '2MASS_Ks', 'WISE_3.4', 'Spitzer_8.0', 'WISE_22']
    mock = make_mock_galaxy(bands=bands, noise=False, sky=False, fov=3 * u.arcmin,
                            semimajor=40 * u.arcsec, n_templates=1, stellar_mass=3e9,
                            distance=20 * u.Mpc, seed=5)
    row = _templates()[list(_templates()['template']).index(mock.properties['templates'][0])]
    assert abs(row['log_mstar'] - np.log10(3e9)) < 1.0
    for band in bands:
        expected = 3e9 * 10 ** row[band] / 4
        assert _image_total(mock.images[band]).to_value(u.Jy) == pytest.approx(expected, rel=0.01)
    image = mock.images['WISE_3.4']
    truth = mock.truth_maps(image.wcs, image.shape, 10 * u.arcsec)
    inner = np.isfinite(truth['Td'])
    assert inner.sum() > 1000
    np.testing.assert_allclose(truth['sLd'][inner].value, row['sLd'], atol=1e-6)
    np.testing.assert_allclose(truth['sMd'][inner].value, row['sMd'], atol=1e-6)
    np.testing.assert_allclose(truth['Td'][inner].value, row['Td'], atol=1e-6)
    assert mock.global_truth['Td'].to_value(u.K) == pytest.approx(row['Td'])


def test_truth_of_a_mixture_is_the_sum_of_its_parts():
    # Extensive quantities add: at any resolution sLd lies between the
    # templates' extremes, and the field's global value equals the ratio of
    # the summed luminosity and mass (independent sum over the templates)
    mock = make_mock_galaxy(bands=['WISE_3.4'], noise=False, sky=False, fov=3 * u.arcmin,
                            semimajor=40 * u.arcsec, seed=2)
    lib = _templates()
    rows = lib[[list(lib['template']).index(t) for t in mock.properties['templates']]]
    image = mock.images['WISE_3.4']
    for fwhm in (0 * u.arcsec, 20 * u.arcsec):
        truth = mock.truth_maps(image.wcs, image.shape, fwhm)
        for name in ('sLd', 'sMd', 'Td'):
            values = truth[name].value[np.isfinite(truth[name].value)]
            assert values.min() >= rows[name].min() - 1e-6
            assert values.max() <= rows[name].max() + 1e-6
    # More than one template shows: the map is not constant
    assert np.std(truth['sLd'].value[np.isfinite(truth['sLd'].value)]) > 0.02


@pytest.mark.parametrize('recipe, name, centre_higher', [
    ('temperature', 'Td', True), ('dust_mass', 'sMd', False)])
def test_dust_recipes_run_inside_out(recipe, name, centre_higher):
    # The documented orderings: warm centres for 'temperature', dust-poor
    # centres for 'dust_mass'
    mock = make_mock_galaxy(bands=['WISE_3.4'], noise=False, sky=False, fov=4 * u.arcmin,
                            semimajor=80 * u.arcsec, axis_ratio=1.0, dust_recipe=recipe,
                            pattern='smooth', seed=1)
    image = mock.images['WISE_3.4']
    truth = mock.truth_maps(image.wcs, image.shape, 6 * u.arcsec)[name].value
    yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
    x0, y0 = image.wcs.world_to_pixel(CENTER)
    r = np.hypot(xx - x0, yy - y0) * 1.375 / 20  # in disc scale lengths (20 arcsec)
    centre = np.median(truth[r < 1])
    outskirts = np.median(truth[(r > 2.5) & (r < 4)])
    assert (centre > outskirts) == centre_higher, (centre, outskirts)


def test_templates_follow_dustpedia(shared_data):
    # The template library against the real catalogue: distributions of the
    # targets and the relation between a colour and the dust
    from astro_dustml.datasets import load_dustpedia_global
    real = load_dustpedia_global(path=shared_data / 'dustpedia', require_targets=True,
                                 download=False)
    lib = _templates()
    for name, tol in (('sLd', 0.15), ('sMd', 0.15), ('Td', 1.0)):
        assert np.median(lib[name]) == pytest.approx(np.median(real[name].value), abs=tol)
        assert np.std(lib[name]) == pytest.approx(np.std(real[name].value), rel=0.3)
    # log(NUV / W1) against sLd: young stars heat the dust
    nuv, w1 = real['GALEX_NUV'].value, real['WISE_3.4'].value
    ok = (nuv > 0) & (w1 > 0)
    r_real = np.corrcoef(np.log10(nuv[ok] / w1[ok]), real['sLd'].value[ok])[0, 1]
    r_lib = np.corrcoef(lib['GALEX_NUV'] - lib['WISE_3.4'], lib['sLd'])[0, 1]
    assert r_real > 0.5
    assert r_lib == pytest.approx(r_real, abs=0.1)


def test_options_are_checked():
    with pytest.raises(ValueError, match="dust_recipe must be one of"):
        make_mock_galaxy(bands=['WISE_3.4'], dust_recipe='cosmic')
    with pytest.raises(ValueError, match="pattern must be one of"):
        make_mock_galaxy(bands=['WISE_3.4'], pattern='rings')
    with pytest.raises(ValueError, match="dust_recipe='analytic'"):
        make_mock_galaxy(bands=['WISE_3.4'], young_fraction=0.3)
    with pytest.raises(ValueError, match='sets distance'):
        next(make_mock_survey(2, distance=5 * u.Mpc))


def test_survey_is_lazy_and_diverse():
    import types
    survey = make_mock_survey(12, bands=['WISE_3.4'], noise=False, sky=False)
    assert isinstance(survey, types.GeneratorType)
    seen = []
    for mock in survey:
        g, p = mock.galaxy, mock.properties
        seen.append((g['name'], g['distance'].to_value(u.Mpc), p['pattern'], p['dust_recipe'],
                     g['semimajor'].to_value(u.arcsec), g['axis_ratio'],
                     float(p['global']['sMd'].value)))
        # The images hold the galaxy: the D25 ellipse fits in the field
        assert mock.images['WISE_3.4'].shape[0] * 1.375 >= 2 * g['semimajor'].to_value(u.arcsec)
    names, dist, patterns, recipes, size, q, smd = zip(*seen)
    assert len(set(names)) == 12
    assert sorted(set(dist)) == [10, 20, 40] and all(dist.count(d) == 4 for d in (10, 20, 40))
    assert len(set(zip(patterns, recipes))) == 12
    assert len(set(np.round(size, 1))) == 12 and len(set(q)) > 8
    assert np.ptp(smd) > 0.2


@pytest.mark.parametrize('which', ['quiet_mock', 'dustpedia_mock'])
def test_wcs_centre(which, request):
    quiet_mock = request.getfixturevalue(which)
    for image in quiet_mock.images.values():
        x, y = image.wcs.world_to_pixel(CENTER)
        ny, nx = image.shape
        assert float(x) == pytest.approx((nx - 1) / 2, abs=1e-6)
        assert float(y) == pytest.approx((ny - 1) / 2, abs=1e-6)
        if image.meta['band'] in ('SDSS_r', 'WISE_3.4'):
            # In starlight the bulge makes the brightest pixel the centre
            iy, ix = np.unravel_index(np.argmax(image.data), image.shape)
            assert abs(ix - x) <= 1 and abs(iy - y) <= 1


@pytest.mark.parametrize('which', ['quiet_mock', 'dustpedia_mock'])
def test_truth_ranges_and_resolution(which, request):
    quiet_mock = request.getfixturevalue(which)
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
