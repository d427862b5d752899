"""Tests of astro_dustml.sed: pixel tables, global rows, the DustPedia reader."""

import csv

import astropy.units as u
import numpy as np
import pytest

from astro_dustml import conf
from astro_dustml.bands import BANDS
from astro_dustml.sed import (
    FLAG_CATALOGUE,
    FLAG_LOW_SN,
    FLAG_MISSING,
    FLAG_NEGATIVE,
    decode_flags,
    read_dustpedia_photometry,
)
from astro_dustml.tests.helpers import tan_wcs

PHOTOMETRY = 'dustpedia/DustPedia_Aperture_Photometry_2.2.csv'


# ---------------------------------------------------------------- DustPedia


def _csv_row(path, name):
    with open(path, newline='') as handle:
        for row in csv.DictReader(handle):
            if row['name'] == name:
                return row
    raise KeyError(name)


def test_dustpedia_ngc5584_exact(shared_data):
    path = shared_data / PHOTOMETRY
    row = _csv_row(path, 'NGC5584')
    table = read_dustpedia_photometry(path, galaxies=['NGC5584'])
    assert len(table) == 1
    got = table[0]
    assert got['galaxy'] == 'NGC5584'
    assert got['ra'] == float(row['ra']) * u.deg
    assert got['dec'] == float(row['dec']) * u.deg
    a = float(row['semimaj_arcsec']) * u.arcsec
    b = a / float(row['axial_ratio'])
    assert u.allclose(got['pixel_area'], np.pi * a * b, rtol=1e-14)
    assert got['pixel_area'].unit == u.sr
    assert u.allclose(got['pixel_scale'] ** 2, np.pi * a * b, rtol=1e-14)
    assert np.isnan(got['distance']) and np.isnan(got['pixel_scale_pc'])
    n_checked = n_catalogue = n_missing = 0
    for band in BANDS:
        value, error, dpflag = row[band], row[f'{band}_err'], row[f'{band}_flag']
        flag = got[f'{band}_flag']
        assert got[f'{band}_dpflag'] == dpflag
        assert bool(flag & FLAG_CATALOGUE) == (dpflag != '')
        if value == '':
            assert np.isnan(got[band]) and flag & FLAG_MISSING
            n_missing += 1
        else:
            # exact: the same float parse of the same text
            assert got[band] == float(value) * u.Jy
            assert got[f'{band}_err'] == float(error) * u.Jy
            assert not flag & FLAG_MISSING
            assert bool(flag & FLAG_NEGATIVE) == (float(value) < 0)
            assert bool(flag & FLAG_LOW_SN) == (float(value) < float(error))
            n_checked += 1
        n_catalogue += dpflag != ''
    # NGC 5584: IRAC 3.6-8.0 carry 'n', Spitzer_70/160 and PACS_70 are empty
    assert n_checked == 24 and n_missing == 3 and n_catalogue == 4
    assert decode_flags(got['Spitzer_3.6_flag']) == ['CATALOGUE']


def test_dustpedia_whole_file(shared_data):
    path = shared_data / PHOTOMETRY
    with open(path, newline='') as handle:
        rows = list(csv.DictReader(handle))
    table = read_dustpedia_photometry(path.parent)
    assert list(table['galaxy']) == [r['name'] for r in rows]
    negative = sum(r['WISE_22'] != '' and float(r['WISE_22']) < 0 for r in rows)
    assert negative > 0  # the file has negative fluxes: they must be kept
    assert np.sum(table['WISE_22_flag'] & FLAG_NEGATIVE > 0) == negative
    assert np.sum(table['WISE_22'] < 0) == negative
    flagged = sum(r['WISE_22_flag'] != '' for r in rows)
    assert np.sum(table['WISE_22_flag'] & FLAG_CATALOGUE > 0) == flagged
    assert table['x'][0] == -1 and table['y'][0] == -1


def test_dustpedia_options(shared_data):
    path = shared_data / PHOTOMETRY
    table = read_dustpedia_photometry(path, bands=['W1', 'SPIRE_250'],
                                      galaxies=['NGC5584', 'NGC0007'],
                                      distance={'NGC5584': 22.5 * u.Mpc})
    assert table.meta['bands'] == ['WISE_3.4', 'SPIRE_250']
    assert 'SDSS_g' not in table.colnames
    assert list(table['galaxy']) == ['NGC5584', 'NGC0007']
    assert table['distance'][0] == 22.5 * u.Mpc and np.isnan(table['distance'][1])
    expected = (table['pixel_scale'][0].to_value(u.rad) * 22.5 * u.Mpc).to(u.pc)
    assert u.allclose(table['pixel_scale_pc'][0], expected)
    with pytest.raises(ValueError, match='not in'):
        read_dustpedia_photometry(path, galaxies=['NGC99999'])
    with conf.set_temp('dustpedia_dir', str(path.parent)):
        assert len(read_dustpedia_photometry(galaxies=['NGC5584'])) == 1


def test_dustpedia_no_path():
    with conf.set_temp('dustpedia_dir', ''):
        with pytest.raises(ValueError, match='conf.dustpedia_dir'):
            read_dustpedia_photometry()
    with pytest.raises(FileNotFoundError, match='does not exist'):
        read_dustpedia_photometry('/nonexistent/photometry.csv')


# ------------------------------------------------------------- pixel tables

SHAPE = (30, 40)
ARCSEC_SR = (np.pi / 180 / 3600) ** 2  # one square arcsecond in sr


def _wcs(scale=2.0, shape=SHAPE):
    return tan_wcs(shape, scale)


@pytest.fixture
def stack():
    """Aligned synthetic stack in MJy/sr with errors, masks, NaNs and negatives."""
    from astropy.nddata import CCDData, StdDevUncertainty
    from ndcube import NDCollection

    rng = np.random.default_rng(1)
    wcs = _wcs()
    images = []
    for k, band in enumerate(['GALEX_FUV', 'SDSS_r', 'WISE_3.4']):
        data = rng.normal(1.0 + k, 1.0, SHAPE)
        error = np.full(SHAPE, 0.5)
        mask = np.zeros(SHAPE, dtype=bool)
        mask[5, 5 + k] = True  # a different pixel per band
        mask[0, 0] = True  # masked everywhere: not a sample
        data[7, 7] = np.nan if band == 'SDSS_r' else data[7, 7]
        data[2, 3] = -0.3
        images.append((band, CCDData(data, unit='MJy/sr', wcs=wcs, mask=mask,
                                     uncertainty=StdDevUncertainty(error),
                                     meta={'band': band, 'psf_fwhm': 6 * u.arcsec})))
    return NDCollection(images, aligned_axes='all',
                        meta={'psf_fwhm': 6 * u.arcsec, 'pixel_scale': 2 * u.arcsec})


def test_pixel_table_schema_and_values(stack):
    from astro_dustml.sed import FLAG_MASKED, make_pixel_table

    before = {b: stack[b].data.copy() for b in stack}
    table = make_pixel_table(stack, galaxy='TOY', distance=10 * u.Mpc)
    assert len(table) == SHAPE[0] * SHAPE[1] - 1  # only [0, 0] is masked everywhere
    assert table.meta['bands'] == ['GALEX_FUV', 'SDSS_r', 'WISE_3.4']
    assert table.meta['shape'] == SHAPE and table.meta['psf_fwhm'] == 6 * u.arcsec
    assert set(table['galaxy']) == {'TOY'}
    area = 4 * ARCSEC_SR  # 2" pixels at the tangent point
    assert u.allclose(table['pixel_area'], area * u.sr, rtol=1e-12)
    assert u.allclose(table['pixel_scale'], 2 * u.arcsec)
    assert u.allclose(table['pixel_scale_pc'], 2 / 206264.806 * 1e7 * u.pc, rtol=1e-6)
    # an arbitrary pixel: MJy/sr * sr -> Jy
    row = table[(table['x'] == 12) & (table['y'] == 9)][0]
    for band in table.meta['bands']:
        assert u.isclose(row[band], stack[band].data[9, 12] * 1e6 * area * u.Jy, rtol=1e-12)
        assert u.isclose(row[f'{band}_err'], 0.5e6 * area * u.Jy, rtol=1e-12)
    sky = _wcs().pixel_to_world(12, 9)
    assert u.isclose(row['ra'], sky.ra) and u.isclose(row['dec'], sky.dec)

    def flag(x, y, band):
        return table[(table['x'] == x) & (table['y'] == y)][0][f'{band}_flag']

    assert flag(6, 5, 'SDSS_r') & FLAG_MASKED and not flag(6, 5, 'WISE_3.4') & FLAG_MASKED
    masked = table[(table['x'] == 6) & (table['y'] == 5)][0]
    assert np.isclose(masked['SDSS_r'].value, stack['SDSS_r'].data[5, 6] * 1e6 * area)  # kept
    assert flag(7, 7, 'SDSS_r') & FLAG_MISSING and not flag(7, 7, 'GALEX_FUV') & FLAG_MISSING
    for band in table.meta['bands']:
        assert flag(3, 2, band) & FLAG_NEGATIVE and flag(3, 2, band) & FLAG_LOW_SN
        # S/N < 1 everywhere flux < error, independently of the code
        low = stack[band].data[table['y'], table['x']] < 0.5
        assert np.array_equal((table[f'{band}_flag'] & FLAG_LOW_SN) > 0, low)
    for band in before:  # inputs untouched
        assert np.array_equal(stack[band].data, before[band], equal_nan=True)


def test_pixel_table_round_trip_exact(stack, tmp_path):
    from astro_dustml.sed import make_pixel_table, table_to_maps

    table = make_pixel_table(stack, galaxy='TOY')
    rng = np.random.default_rng(2)
    table['sLd'] = rng.normal(size=len(table)) * u.dex
    table['sLd_err'] = rng.uniform(size=len(table)) * u.dex
    # through a file too: the meta must survive serialisation
    table.write(tmp_path / 'pixels.ecsv')
    from astropy.table import QTable
    for tab in (table, QTable.read(tmp_path / 'pixels.ecsv')):
        maps = table_to_maps(tab, ['sLd', 'WISE_3.4'])
        sld = maps['sLd']
        assert sld.unit == u.dex and sld.data.shape == SHAPE
        assert np.array_equal(sld.data[tab['y'], tab['x']], np.asarray(tab['sLd'].value))
        assert np.array_equal(sld.uncertainty.array[tab['y'], tab['x']],
                              np.asarray(tab['sLd_err'].value))
        assert np.isnan(sld.data[0, 0]) and sld.mask[0, 0]
        assert sld.wcs.to_header() == _wcs().to_header()
        assert np.array_equal(maps['WISE_3.4'].data[tab['y'], tab['x']],
                              np.asarray(tab['WISE_3.4'].value))
    # back to the surface brightness of the input
    maps = table_to_maps(table, table.meta['bands'], surface_brightness=True)
    for band in table.meta['bands']:
        image = stack[band]
        good = ~image.mask & np.isfinite(image.data)
        assert maps[band].unit == u.MJy / u.sr
        np.testing.assert_allclose(maps[band].data[good], image.data[good], rtol=1e-14)
        np.testing.assert_allclose(maps[band].uncertainty.array[good], 0.5, rtol=1e-14)
        assert np.array_equal(maps[band].mask, ~good)


def test_pixel_table_region(stack):
    from astropy.coordinates import SkyCoord

    from astro_dustml.imaging import galaxy_region
    from astro_dustml.sed import make_pixel_table

    center = SkyCoord(150.0, 2.0, unit='deg')
    galaxy = {'name': 'TOY', 'center': center, 'semimajor': 30 * u.arcsec,
              'axis_ratio': 0.5, 'position_angle': 30 * u.deg, 'distance': 5 * u.Mpc}
    table = make_pixel_table(stack, galaxy=galaxy)
    assert u.allclose(table['distance'], 5 * u.Mpc)
    inside = {(x, y) for x, y in zip(table['x'], table['y'])}
    wcs = _wcs()
    # independent geometry: points along the major and minor axes
    for pa, radius in [(30, 30), (210, 30), (120, 15), (300, 15)]:
        for frac, expect in [(0.8, True), (1.25, False)]:
            point = center.directional_offset_by(pa * u.deg, frac * radius * u.arcsec)
            x, y = (int(np.round(v)) for v in wcs.world_to_pixel(point))
            assert ((x, y) in inside) == expect, (pa, frac)
    # about pi a b of sky
    assert abs(len(table) * 4 - np.pi * 30 * 15) < 0.1 * np.pi * 30 * 15
    # a boolean mask as region, and an explicit region object
    mask = np.zeros(SHAPE, dtype=bool)
    mask[10:12, 20:23] = True
    assert len(make_pixel_table(stack, region=mask)) == 6
    region = galaxy_region(center, semimajor=30 * u.arcsec, axis_ratio=0.5,
                           position_angle=30 * u.deg)
    assert len(make_pixel_table(stack, region=region)) == len(table)


def test_pixel_table_missing_band(stack):
    from astro_dustml.sed import make_pixel_table

    table = make_pixel_table(stack, bands=['SDSS_r', 'W1', 'WISE_22'])
    assert table.meta['bands'] == ['SDSS_r', 'WISE_3.4', 'WISE_22']
    assert 'GALEX_FUV' not in table.colnames
    assert np.all(table['WISE_22_flag'] == FLAG_MISSING)
    assert np.all(np.isnan(table['WISE_22']))


def test_pixel_table_bad_input(stack):
    from astropy.nddata import CCDData

    from astro_dustml.sed import make_pixel_table

    good = stack['WISE_3.4']
    other_shape = CCDData(np.ones((10, 10)), unit='MJy/sr', wcs=_wcs(shape=(10, 10)))
    with pytest.raises(ValueError, match='not aligned.*align_images'):
        make_pixel_table({'WISE_3.4': good, 'SDSS_r': other_shape})
    shifted = CCDData(np.ones(SHAPE), unit='MJy/sr', wcs=_wcs(scale=3.0))
    with pytest.raises(ValueError, match='not aligned'):
        make_pixel_table({'WISE_3.4': good, 'SDSS_r': shifted})
    from astropy.nddata import NDData
    no_unit = NDData(np.ones(SHAPE), wcs=_wcs())
    with pytest.raises(u.UnitsError, match='no unit'):
        make_pixel_table({'WISE_3.4': good, 'SDSS_r': no_unit})
    wrong_unit = CCDData(np.ones(SHAPE), unit='K', wcs=_wcs())
    with pytest.raises(u.UnitsError, match='neither a surface brightness'):
        make_pixel_table({'SDSS_r': wrong_unit})
    with pytest.raises(ValueError, match='Unknown band'):
        make_pixel_table({'NOT_A_BAND': good})
    with pytest.raises(TypeError, match='NDCollection'):
        make_pixel_table(42)


def test_table_to_maps_errors(stack):
    from astropy.table import vstack

    from astro_dustml.sed import make_global_row, make_pixel_table, table_to_maps

    table = make_pixel_table(stack, galaxy='A')
    with pytest.raises(KeyError, match='sMd'):
        table_to_maps(table, 'sMd')
    # another galaxy on another grid: each keeps its own
    other = {b: stack[b][2:22, 5:35] for b in stack}
    two = vstack([table, make_pixel_table(other, galaxy='B')], metadata_conflicts='silent')
    with pytest.raises(ValueError, match='galaxy='):
        table_to_maps(two, 'WISE_3.4')
    b_map = table_to_maps(two, 'WISE_3.4', galaxy='B', surface_brightness=True)['WISE_3.4']
    assert b_map.data.shape == (20, 30)
    assert b_map.wcs.to_header() == other['WISE_3.4'].wcs.to_header()
    good = ~other['WISE_3.4'].mask
    np.testing.assert_allclose(b_map.data[good], other['WISE_3.4'].data[good], rtol=1e-14)
    assert table_to_maps(two, 'WISE_3.4', galaxy='A')['WISE_3.4'].data.shape == SHAPE
    row = make_global_row(stack, np.ones(SHAPE, dtype=bool), galaxy='A')
    with pytest.raises(ValueError, match='global rows'):
        table_to_maps(row, 'WISE_3.4')


# ------------------------------------------------------------ global rows


@pytest.fixture(scope='module')
def mock():
    from astro_dustml.datasets import make_mock_galaxy

    return make_mock_galaxy(bands=['GALEX_NUV', 'WISE_3.4', 'Spitzer_3.6'], fov=3 * u.arcmin,
                            pixel_scale=2 * u.arcsec, semimajor=40 * u.arcsec, seed=3)


def test_global_row_equals_summed_pixels(mock):
    from astro_dustml.sed import make_global_row, make_pixel_table

    table = make_pixel_table(mock.images, galaxy=mock.galaxy)
    assert set(table['galaxy']) == {'MOCK'}
    row = make_global_row(mock.images, mock.galaxy, galaxy=mock.galaxy)
    assert len(row) == 1 and row['x'][0] == -1
    assert u.isclose(row['distance'][0], mock.galaxy['distance'])
    # aperture solid angle: pi a b of the D25 ellipse
    assert u.isclose(row['pixel_area'][0], np.pi * 40 * 24 * ARCSEC_SR * u.sr, rtol=1e-3)
    for band in mock.images:
        summed = table[band].sum()
        assert u.isclose(summed, row[band][0], rtol=0.01), band
        assert row[f'{band}_flag'][0] == 0


def test_global_row_unaligned_matches_truth():
    """Native pixel scales, noise-free, no sky: the whole-field flux is the mock SED."""
    from astropy.coordinates import SkyCoord
    from regions import CircleSkyRegion

    from astro_dustml.datasets import make_mock_galaxy
    from astro_dustml.sed import make_global_row

    mock = make_mock_galaxy(bands=['GALEX_NUV', 'WISE_12', 'Spitzer_3.6'], fov=3 * u.arcmin,
                            semimajor=30 * u.arcsec, noise=False, sky=False, seed=4)
    before = {b: mock.images[b].data.copy() for b in mock.images}
    region = CircleSkyRegion(SkyCoord(mock.galaxy['center']), 85 * u.arcsec)
    row = make_global_row(mock.images, region, galaxy='MOCK')
    for band in mock.images:
        truth = mock.sed[mock.sed['band'] == band]['flux'][0]
        assert u.isclose(row[band][0], u.Quantity(truth, u.Jy), rtol=0.03), band
        assert np.isnan(row[f'{band}_err'][0])  # no uncertainty given
        assert np.array_equal(mock.images[band].data, before[band])
