import sys
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.modeling import models
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import Table
from ndcube import NDCollection
from regions import CircleSkyRegion, Regions
from scipy.spatial import cKDTree
from scipy.stats import spearmanr

from astro_dustml.datasets import make_mock_galaxy
from astro_dustml.exceptions import StarMaskingWarning
from astro_dustml.imaging import (
    fit_star_apertures,
    mask_foreground_stars,
    mask_stars,
    query_gaia_stars,
    select_foreground_stars,
)
from astro_dustml.tests.helpers import tan_wcs

CENTER = SkyCoord(150.0, 2.0, unit='deg')
NGC1566 = SkyCoord(65.0017, -54.9380, unit='deg')
FWHM = 1.3  # arcsec, SDSS in the registry
SCALE = 0.45  # arcsec per pixel
SIGMA = FWHM / SCALE / np.sqrt(8 * np.log(2))  # pixels
RMS = 1e-7  # Jy/pix
# Documented limit of the verification: stars brighter than G = 20 are masked
MAG_LIMIT = 20.0


def _wcs(shape, center=CENTER, scale=SCALE):
    return tan_wcs(shape, scale, center)


def _gaia(positions, mags, wcs, parallax_snr=10.0):
    ra, dec = wcs.pixel_to_world_values(*np.transpose(positions))
    n = len(mags)
    return Table({'source_id': np.arange(1, n + 1), 'ra': ra, 'dec': dec,
                  'parallax': np.full(n, 1.0), 'parallax_error': 1 / np.full(n, parallax_snr),
                  'pmra': np.zeros(n), 'pmdec': np.zeros(n),
                  'phot_g_mean_mag': np.asarray(mags, float)})


def _image(shape, sources, *, band='SDSS_i', clumps=(), galaxy=True, seed=0,
           fwhm=FWHM, scale=SCALE):
    """Gaussian galaxy + Gaussian stars (peak per pixel) + clumps + white noise."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    sigma = fwhm / scale / np.sqrt(8 * np.log(2))
    data = np.zeros(shape)
    if galaxy:
        data += models.Gaussian2D(50 * RMS, shape[1] / 2, shape[0] / 2, 25, 15, 0.5)(xx, yy)
    for x, y, amp in sources:
        data += models.Gaussian2D(amp, x, y, sigma, sigma)(xx, yy)
    for x, y, amp in clumps:
        data += models.Gaussian2D(amp, x, y, 2 * sigma, 2 * sigma)(xx, yy)
    data += np.random.default_rng(seed).normal(0, RMS, shape)
    return CCDData(data, unit='Jy/pix', wcs=_wcs(shape, scale=scale),
                   uncertainty=StdDevUncertainty(np.full(shape, RMS)),
                   meta={'band': band, 'psf_fwhm': fwhm * u.arcsec})


def _radius_of(regions, label):
    return next(r.radius.to_value(u.arcsec) for r in regions if r.meta['label'] == label)


# --- star tables -------------------------------------------------------------

def test_missing_columns_named():
    t = Table({'ra': [1.], 'dec': [2.], 'parallax': [1.], 'pmra': [0.]})
    with pytest.raises(ValueError, match=r'pmdec.*phot_g_mean_mag.*parallax_error'):
        select_foreground_stars(t)
    with pytest.raises(ValueError, match='lacks the Gaia column'):
        fit_star_apertures({'SDSS_i': _image((20, 20), [])}, t)


def test_parallax_over_error_alone_and_units():
    # parallax in arcsec with a unit: converted, not misread as mas
    t = Table({'ra': [1., 1.] * u.deg, 'dec': [2., 2.] * u.deg,
               'parallax': [2e-3, 1e-5] * u.arcsec, 'parallax_over_error': [8., 4.],
               'pmra': [0., 0.], 'pmdec': [0., 0.], 'phot_g_mean_mag': [15., 15.]})
    out = select_foreground_stars(t)
    assert len(out) == 1
    assert out['parallax'][0] == pytest.approx(2.0)


def test_selection_thresholds_nucleus_and_inputs_unchanged():
    t = Table({'source_id': [1, 2, 3, 4, 5],
               'ra': [9.99, 10.01, 10.02, 10.03, 10.0005], 'dec': [0.] * 5,
               'parallax': [1.0, 0.05, 0.05, 0.05, 1.0],
               'parallax_error': [0.1, 0.1, 0.1, 0.1, 0.1],
               'pmra': [0., 3., 3., 0.1, 0.], 'pmra_error': [0.1] * 5,
               'pmdec': [0., 0., 0., 0.1, 0.], 'pmdec_error': [0.1] * 5,
               'astrometric_excess_noise_sig': [0., 0., 30., 0., 0.],
               'phot_g_mean_mag': [15., 16., 17., 18., 14.]})
    before = t.copy()
    # 1 parallax, 2 proper motion, 3 proper motion but extended, 4 static, 5 on the nucleus
    ids = list(select_foreground_stars(t)['source_id'])
    assert ids == [1, 2, 5]
    galaxy = SkyCoord(10.0005, 0., unit='deg')
    assert list(select_foreground_stars(t, galaxy=galaxy)['source_id']) == [1, 2]
    assert list(select_foreground_stars(t, galaxy={'center': galaxy},
                                        force=True)['source_id']) == [1, 2, 5]
    assert list(select_foreground_stars(t, min_pm_snr=None)['source_id']) == [1, 5]
    assert list(select_foreground_stars(t, max_excess_noise_sig=None)['source_id']) == [1, 2, 3, 5]
    assert list(select_foreground_stars(t, max_mag=15.5)['source_id']) == [1, 5]
    assert all((t[c] == before[c]).all() for c in t.colnames)


def test_real_gaia_nucleus_protected(shared_data):
    with warnings.catch_warnings():  # the file has a non-FITS unit string
        warnings.simplefilter('ignore', u.UnitsWarning)
        gaia = Table.read(shared_data / 'gaia' / 'Gaia_DR3_NGC1566.fits')
    sep = SkyCoord(gaia['ra'], gaia['dec']).separation(NGC1566)
    nucleus_id = gaia['source_id'][np.argmin(sep)]
    # The Gaia entry on the nucleus has a spurious 10-sigma proper motion
    loose = dict(max_excess_noise_sig=None)
    assert nucleus_id in select_foreground_stars(gaia, **loose)['source_id']
    assert nucleus_id not in select_foreground_stars(gaia, galaxy=NGC1566, **loose)['source_id']
    assert nucleus_id in select_foreground_stars(gaia, galaxy=NGC1566, force=True,
                                                 **loose)['source_id']
    # ... and a large excess noise, so the default rejects it even unprotected
    assert nucleus_id not in select_foreground_stars(gaia)['source_id']
    selected = select_foreground_stars(gaia, galaxy=NGC1566)
    # Sources with no parallax (two-parameter solutions) are never stars
    assert np.isfinite(selected['parallax']).all()
    assert 0.3 * len(gaia) < len(selected) < 0.9 * len(gaia)


# --- fitting -----------------------------------------------------------------

def test_fitted_radius_matches_analytic():
    shape = (120, 120)
    amps = [30 * RMS, 300 * RMS, 3000 * RMS]
    positions = [(20.3, 25.6), (90.1, 30.4), (40.7, 95.2)]
    image = _image(shape, [(x, y, a) for (x, y), a in zip(positions, amps)], galaxy=False)
    stars = _gaia(positions, [19., 17., 15.], image.wcs)
    apertures = fit_star_apertures({'SDSS_i': image}, stars, nsigma=1.0)['SDSS_i']
    assert [r.meta['comment'] for r in apertures] == ['fit'] * 3
    for label, amp in zip(['1', '2', '3'], amps):
        # Where A exp(-r^2 / 2 sigma^2) = 1 rms
        expected = SIGMA * SCALE * np.sqrt(2 * np.log(amp / RMS))
        assert _radius_of(apertures, label) == pytest.approx(expected, rel=0.05)
    # Fitted centres are the injected ones
    for region, (x, y) in zip(apertures, positions):
        xf, yf = image.wcs.world_to_pixel(region.center)
        assert np.hypot(xf - x, yf - y) < 0.1


def test_radius_bounds_and_undetected():
    shape = (80, 80)
    image = _image(shape, [(20, 20, 1.5 * RMS), (60, 60, 1e6 * RMS)], galaxy=False)
    stars = _gaia([(20, 20), (60, 60)], [21., 8.], image.wcs)
    apertures = fit_star_apertures({'SDSS_i': image}, stars, max_radius=2 * u.arcsec,
                                   min_radius=1.5)['SDSS_i']
    assert apertures[0].meta['comment'] == 'undetected'
    assert apertures[0].radius.to_value(u.arcsec) == pytest.approx(1.5 * FWHM)
    # Unbounded it would be 0.55" * sqrt(2 ln 1e6) = 2.9"
    assert apertures[1].radius.to_value(u.arcsec) == pytest.approx(2.0)


def test_neighbouring_band_constraint_and_order():
    # Start in SDSS_i; the star is detected in 2MASS_J only faintly, next to a
    # brighter source without Gaia entry 3 FWHM away: the fit stays on the star
    shape_i, shape_j = (100, 100), (46, 46)
    star_i = (50.0, 50.0)
    image_i = _image(shape_i, [(*star_i, 500 * RMS)], galaxy=False)
    wcs_j = _wcs(shape_j, scale=1.0)
    sky = image_i.wcs.pixel_to_world(*star_i)
    xj, yj = wcs_j.world_to_pixel(sky)
    image_j = _image(shape_j, [(float(xj), float(yj), 6 * RMS),
                               (float(xj) + 6.0, float(yj), 60 * RMS)],
                     band='2MASS_J', galaxy=False, fwhm=2.0, scale=1.0, seed=1)
    stars = _gaia([star_i], [16.], image_i.wcs)
    apertures = fit_star_apertures({'2MASS_J': image_j, 'SDSS_i': image_i}, stars)
    assert list(apertures) == ['2MASS_J', 'SDSS_i']
    assert apertures['2MASS_J'][0].meta['comment'] == 'fit'
    assert apertures['2MASS_J'][0].center.separation(sky) < 0.5 * u.arcsec


def test_failed_fit_falls_back_to_magnitude_radius():
    shape = (60, 60)
    image = _image(shape, [(30, 30, 100 * RMS)], galaxy=False)
    image.data[5:56, 5:56] = np.nan  # nothing left to fit
    stars = _gaia([(30, 30)], [17.], image.wcs)
    with pytest.warns(StarMaskingWarning, match='1 star fit'):
        apertures = fit_star_apertures({'SDSS_i': image}, stars)['SDSS_i']
    assert apertures[0].meta['comment'] == 'fallback'
    # Magnitude radius: a G = 17 point source (3631 Jy AB zero point) down to 1 rms
    peak = 3631 * 10 ** (-0.4 * 17) / (2 * np.pi * (SIGMA ** 2 + 1 / 12))
    expected = np.hypot(SIGMA, np.sqrt(1 / 12)) * SCALE * np.sqrt(2 * np.log(peak / RMS))
    assert apertures[0].radius.to_value(u.arcsec) == pytest.approx(expected, rel=0.05)


def test_no_overlap_warns_and_returns_empty():
    image = _image((40, 40), [], galaxy=False)
    far = Table({'ra': [200.], 'dec': [-30.], 'parallax': [1.], 'parallax_error': [0.1],
                 'pmra': [0.], 'pmdec': [0.], 'phot_g_mean_mag': [12.]})
    with pytest.warns(StarMaskingWarning, match='None of the 1 stars lies on the SDSS_i'):
        apertures = fit_star_apertures({'SDSS_i': image}, far)
    assert isinstance(apertures['SDSS_i'], Regions) and len(apertures['SDSS_i']) == 0
    masked = mask_stars(image, apertures['SDSS_i'])
    assert not masked.mask.any()


def test_clumps_without_gaia_not_masked():
    shape = (150, 150)
    stars_xy = [(30, 40), (120, 110), (80, 70)]
    clumps = [(60, 80, 40 * RMS), (95, 60, 40 * RMS), (75, 90, 80 * RMS)]
    image = _image(shape, [(x, y, 400 * RMS) for x, y in stars_xy], clumps=clumps)
    stars = _gaia(stars_xy, [16., 16., 16.], image.wcs)
    masked, apertures = mask_foreground_stars({'SDSS_i': image}, stars)
    mask = masked['SDSS_i'].mask
    for x, y, _ in clumps:
        assert not mask[y - 3:y + 4, x - 3:x + 4].any()
    for x, y in stars_xy:
        assert mask[y, x]


# --- masking -----------------------------------------------------------------

def test_mask_stars_copy_and_manual_edits():
    image = _image((60, 60), [], galaxy=False)
    image.mask = np.zeros((60, 60), bool)
    image.mask[0, 0] = True
    before = image.data.copy()
    c = image.wcs.pixel_to_world(30, 30)
    regions = Regions([CircleSkyRegion(c, 2 * u.arcsec)])
    masked = mask_stars(image, regions)
    assert np.array_equal(image.data, before) and image.mask.sum() == 1
    n_small = masked.meta['star_mask'].sum()
    assert masked.mask[0, 0] and masked.mask[30, 30]
    assert np.isnan(masked.data[30, 30]) and np.isfinite(masked.data[10, 10])
    # Area of a 2" circle in 0.45" pixels
    assert n_small == pytest.approx(np.pi * (2 / SCALE) ** 2, rel=0.15)
    # Resize, add and remove with plain regions operations
    regions[0].radius = 4 * u.arcsec
    regions.append(CircleSkyRegion(image.wcs.pixel_to_world(10, 10), 1 * u.arcsec))
    masked = mask_stars(image, regions, fill_value=None)
    assert masked.meta['star_mask'].sum() > 3 * n_small and masked.mask[10, 10]
    assert np.isfinite(masked.data).all()
    regions.pop(1)
    assert not mask_stars(image, regions).mask[10, 10]
    # A dict per band is looked up with the image's band
    assert mask_stars(image, {'SDSS_i': regions}).mask[30, 30]
    with pytest.raises(KeyError, match='No apertures for band'):
        mask_stars(image, {'WISE_3.4': regions})


def test_mask_foreground_stars_options():
    image = _image((50, 50), [(25, 25, 300 * RMS)], galaxy=False)
    stars = _gaia([(25, 25)], [16.], image.wcs)
    with pytest.raises(TypeError, match='Unknown option'):
        mask_foreground_stars({'SDSS_i': image}, stars, radius=3)
    masked, apertures = mask_foreground_stars(
        NDCollection([('SDSS_i', image)]), stars, nsigma=3.0, min_parallax_snr=50.0)
    assert len(apertures['SDSS_i']) == 0  # parallax S/N 10 < 50: not a star
    assert isinstance(masked, NDCollection) and not masked['SDSS_i'].mask.any()
    assert image.mask is None


def test_query_needs_astroquery(monkeypatch):
    monkeypatch.setitem(sys.modules, 'astroquery.gaia', None)
    with pytest.raises(ImportError, match=r'pip install astroquery'):
        query_gaia_stars(CENTER, 1 * u.arcmin)


@pytest.mark.remote_data
def test_query_gaia_stars_remote():
    stars = query_gaia_stars(NGC1566, 2 * u.arcmin, max_mag=19)
    assert len(stars) > 5
    assert (stars['phot_g_mean_mag'] < 19).all()
    assert SkyCoord(stars['ra'], stars['dec']).separation(NGC1566).max() < 2 * u.arcmin
    select_foreground_stars(stars, galaxy=NGC1566)


# --- verification on a mock galaxy with the real NGC 1566 Gaia stars ---------

BANDS = ['SDSS_g', 'SDSS_i', '2MASS_Ks', 'WISE_3.4']
FOV = 4 * u.arcmin
SEMIMAJOR = 1.5 * u.arcmin


def _f(column):
    return np.ma.filled(np.ma.asarray(column, dtype=float), np.nan)


@pytest.fixture(scope='module')
def ngc1566_mock(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', u.UnitsWarning)
        gaia = Table.read(shared_data / 'gaia' / 'Gaia_DR3_NGC1566.fits')
    # Move every source by its offset from NGC 1566 to the same offset from the mock centre
    offsets = NGC1566.spherical_offsets_to(SkyCoord(gaia['ra'], gaia['dec']))
    moved = CENTER.spherical_offsets_by(*offsets)
    gaia['ra'], gaia['dec'] = moved.ra.deg, moved.dec.deg
    inside = (np.abs(offsets[0]) < FOV / 2) & (np.abs(offsets[1]) < FOV / 2)
    gaia = gaia[inside]
    # Independent, stricter truth than the selection defaults: unambiguous
    # Milky Way stars, and unambiguous non-stars (galaxy knots, background)
    pm_snr = np.hypot(_f(gaia['pmra']) / _f(gaia['pmra_error']),
                      _f(gaia['pmdec']) / _f(gaia['pmdec_error']))
    poe = _f(gaia['parallax_over_error'])
    excess = _f(gaia['astrometric_excess_noise_sig'])
    star = (poe > 5) | ((pm_snr > 10) & (excess < 1))
    nonstar = ~(np.abs(poe) > 2) & ~(pm_snr > 3)
    kw = dict(bands=BANDS, fov=FOV, semimajor=SEMIMAJOR)
    mock = make_mock_galaxy(stars=gaia, **kw)
    # Same seed, same noise: the difference is exactly the light of the true stars
    no_stars = make_mock_galaxy(stars=gaia[~star], **kw)
    # Crowded knots may make a few fits fall back (that is reported, not an error)
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', 'star fit', StarMaskingWarning)
        masked, apertures = mask_foreground_stars(mock.images, gaia, galaxy=mock.galaxy)
    return dict(mock=mock, no_stars=no_stars, gaia=gaia, star=star, nonstar=nonstar,
                masked=masked, apertures=apertures)


def _d25(image, galaxy):
    """Pixels inside the D25 ellipse of the mock."""
    yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
    sky = image.wcs.pixel_to_world(xx, yy)
    dx, dy = galaxy['center'].spherical_offsets_to(sky)
    pa = galaxy['position_angle'].to_value(u.rad)
    major = dy.to_value(u.arcsec) * np.cos(pa) + dx.to_value(u.arcsec) * np.sin(pa)
    minor = (dx.to_value(u.arcsec) * np.cos(pa) - dy.to_value(u.arcsec) * np.sin(pa))
    minor = minor / galaxy['axis_ratio']
    return np.hypot(major, minor) <= galaxy['semimajor'].to_value(u.arcsec)


def test_mock_stars_masked(ngc1566_mock):
    d = ngc1566_mock
    gaia, star = d['gaia'], d['star']
    bright = star & (_f(gaia['phot_g_mean_mag']) < MAG_LIMIT)
    assert bright.sum() >= 10
    masked_everywhere = np.ones(star.sum(), bool)
    for band in BANDS:
        image = d['mock'].images[band]
        light = image.data - d['no_stars'].images[band].data
        rms = d['mock'].sky_rms[band].to_value(image.unit)
        mask = d['masked'][band].meta['star_mask']
        x, y = image.wcs.world_to_pixel_values(gaia['ra'][star], gaia['dec'][star])
        yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
        # Each pixel belongs to its nearest true star; a star is masked when
        # none of its light left outside the mask is detectable (above 3 rms)
        _, owner = cKDTree(np.c_[x, y]).query(np.c_[xx.ravel(), yy.ravel()])
        leak = (light.ravel() > 3 * rms) & ~mask.ravel()
        masked_everywhere &= ~np.isin(np.arange(star.sum()), owner[leak])
    fraction = masked_everywhere[bright[star]].mean()
    assert fraction >= 0.95


def test_mock_galaxy_pixels_not_masked_by_nonstars(ngc1566_mock):
    d = ngc1566_mock
    star_ids = {str(i) for i in d['gaia']['source_id'][d['star']]}
    for band in BANDS:
        image = d['mock'].images[band]
        inside = _d25(image, d['mock'].galaxy)
        others = Regions([r for r in d['apertures'][band] if r.meta['label'] not in star_ids])
        by_others = mask_stars(image, others).meta['star_mask']
        assert (by_others & inside).sum() / inside.sum() < 0.02
        # Compact galaxy sources with a Gaia entry but no stellar astrometry
        # (HII regions, the nucleus) are left alone
        nonstar = d['gaia'][d['nonstar']]
        x, y = image.wcs.world_to_pixel_values(nonstar['ra'], nonstar['dec'])
        ix, iy = np.round(x).astype(int), np.round(y).astype(int)
        on = (ix >= 0) & (iy >= 0) & (ix < image.shape[1]) & (iy < image.shape[0])
        hit = by_others[iy[on], ix[on]]
        assert hit.mean() < 0.05


def test_mock_radii_grow_with_brightness(ngc1566_mock):
    d = ngc1566_mock
    gmag = dict(zip((str(i) for i in d['gaia']['source_id']), _f(d['gaia']['phot_g_mean_mag'])))
    # 2MASS Ks has more stars at the smallest radius (ties) and one star held
    # on the galaxy's bulge whose fit absorbs some bulge light
    for band, rho in [('SDSS_i', 0.8), ('2MASS_Ks', 0.6)]:
        fitted = [r for r in d['apertures'][band] if r.meta['comment'] == 'fit']
        g = np.array([gmag[r.meta['label']] for r in fitted])
        radius = np.array([r.radius.to_value(u.arcsec) for r in fitted])
        assert len(fitted) >= 10
        assert spearmanr(-g, radius).statistic > rho
        edges = np.quantile(g, [0, 1 / 3, 2 / 3, 1])
        medians = [np.median(radius[(g >= lo) & (g <= hi)]) for lo, hi in zip(edges, edges[1:])]
        assert medians[0] > medians[1] > medians[2]


def test_mock_inputs_unchanged(ngc1566_mock):
    d = ngc1566_mock
    for band in BANDS:
        assert d['mock'].images[band].mask is None
        assert np.isfinite(d['mock'].images[band].data).all()
        assert d['masked'][band].mask.any()


# --- star tables and queries that were accepted silently or failed bare (issue 23) ---


def _foreground_stars(*args, **kwargs):
    from astro_dustml.imaging.chain import _foreground_stars
    return _foreground_stars(*args, **kwargs)


def _offline_gaia(monkeypatch, error):
    import types

    def launch_job_async(query):
        raise error

    fake = types.ModuleType('astroquery.gaia')
    fake.Gaia = types.SimpleNamespace(launch_job_async=launch_job_async)
    monkeypatch.setitem(sys.modules, 'astroquery.gaia', fake)


def _rows(**changes):
    row = {'ra': 150.0, 'dec': 2.0, 'parallax': 2.0, 'parallax_error': 0.1, 'pmra': 0.0,
           'pmdec': 0.0, 'phot_g_mean_mag': 15.0}
    return [dict(row, **changes), dict(row, **changes)]


def _no_dns():
    import socket
    return socket.gaierror(-3, 'Temporary failure in name resolution')


# (id, call taking monkeypatch, expected class or None, words, or a check of the result)
STAR_CASES = [
    ('Gaia query without network (gaierror)',
     lambda mp: (_offline_gaia(mp, _no_dns()), query_gaia_stars(CENTER, 1 * u.arcmin)),
     ConnectionError, ['Could not reach the Gaia archive', 'gaierror', 'stars=Table.read',
                       'offline', '--gaia FILE']),
    ('Gaia query, connection refused',
     lambda mp: (_offline_gaia(mp, ConnectionRefusedError(111, 'Connection refused')),
                 query_gaia_stars(CENTER, 1 * u.arcmin)),
     ConnectionError, ['Could not reach the Gaia archive', 'ConnectionRefusedError']),
    ("stars='gaia' in the chain without network",
     lambda mp: (_offline_gaia(mp, _no_dns()), _foreground_stars(
         _image((30, 30), []), 'gaia', region=None)),
     ConnectionError, ['Could not reach the Gaia archive', 'stars=']),
    ('ra as text (sexagesimal)',
     lambda mp: select_foreground_stars(_rows(ra='10h00m00s')), ValueError,
     ['Column ra of the star table holds text', "'10h00m00s'", 'not numbers', 'deg',
      'SkyCoord']),
    ('ra as text that looks like a number',
     lambda mp: select_foreground_stars(Table({**{k: [v] for k, v in _rows()[0].items()},
                                               'ra': ['150.0']})),
     ValueError, ['Column ra', 'holds text', "'150.0'"]),
    ('parallax mixed Quantity and number in the rows',
     lambda mp: select_foreground_stars([_rows()[0], _rows(parallax=2 * u.mas)[0]]),
     (TypeError, ValueError), ['star table', 'parallax']),
    ('rows as dicts with units: converted',
     lambda mp: select_foreground_stars(_rows(parallax=2e-3 * u.arcsec,
                                              ra=150 * u.deg)),
     None, lambda out: len(out) == 2 and out['parallax'][0] == pytest.approx(2.0)),
    ('rows as dicts without units: gaia_source units',
     lambda mp: select_foreground_stars(_rows()), None,
     lambda out: len(out) == 2 and out['ra'][0] == 150.0),
]


@pytest.mark.parametrize('call, expected, words',
                         [pytest.param(*case[1:], id=case[0]) for case in STAR_CASES])
def test_bad_star_input(monkeypatch, call, expected, words):
    if expected is None:
        assert words(call(monkeypatch))
        return
    with pytest.raises(expected) as info:
        call(monkeypatch)
    for word in words:
        assert word in str(info.value), str(info.value)
