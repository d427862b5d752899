"""Tests of astro_dustml.sed: pixel tables, global rows, the DustPedia reader."""

import csv

import astropy.units as u
import numpy as np
import pytest

from astro_dustml import conf
from astro_dustml.bands import BANDS
from astro_dustml.sed import (FLAG_CATALOGUE, FLAG_LOW_SN, FLAG_MISSING,
                              FLAG_NEGATIVE, decode_flags,
                              read_dustpedia_photometry)

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
