"""Tests of the DustPedia global training table, against the archive CSV files."""

import csv
import math
import shutil

import astropy.units as u
import numpy as np
import pytest
from astropy.utils import data as astropy_data

from astro_dustml import conf
from astro_dustml.datasets import load_dustpedia_global
from astro_dustml.sed.dustpedia import _ARCHIVE_PATHS, DUSTPEDIA_FILES


def _csv_row(path, key, name):
    with open(path, newline='') as f:
        for row in csv.DictReader(f):
            if row[key] == name:
                return row
    raise KeyError(name)


def test_targets_match_the_catalogue(shared_data):
    folder = shared_data / 'dustpedia'
    table = load_dustpedia_global(path=folder)
    assert len(table) == 796
    row = table[list(table['galaxy']).index('NGC0007')]
    cat = _csv_row(folder / 'dustpedia_cigale_results_final_version.csv', 'id', 'NGC0007')
    mstar, ldust = float(cat['Mstar__Msol']), float(cat['Ldust__Lsol'])
    mdust = float(cat['Mdust__Msol'])
    assert row['sLd'].unit == u.dex and row['Td'].unit == u.K
    assert math.isclose(row['sLd'].value, math.log10(ldust / mstar), rel_tol=1e-12)
    assert math.isclose(row['sMd'].value, math.log10(mdust / mstar), rel_tol=1e-12)
    assert math.isclose(row['Td'].value, float(cat['Tdust__K']))
    assert math.isclose(row['Td_err'].value, float(cat['Tdust_err']))
    expected = math.hypot(float(cat['Mdust_err']) / mdust,
                          float(cat['Mstar_err']) / mstar) / math.log(10)
    assert math.isclose(row['sMd_err'].value, expected, rel_tol=1e-12)
    leda = _csv_row(folder / 'DustPedia_HyperLEDA_Herschel.csv', 'objname', 'NGC0007')
    assert math.isclose(row['distance'].to_value(u.Mpc), float(leda['dist_best']))
    phot = _csv_row(folder / 'DustPedia_Aperture_Photometry_2.2.csv', 'name', 'NGC0007')
    assert math.isclose(row['WISE_3.4'].to_value(u.Jy), float(phot['WISE_3.4']))
    # galaxies the catalogue could not fit have NaN targets, and can be dropped
    assert np.isnan(table['sLd'][list(table['galaxy']).index('ESO116-012')])
    fit = load_dustpedia_global(path=folder, require_targets=True)
    assert 0 < len(fit) < len(table) and np.all(np.isfinite(fit['Td']))


def test_cigale_fluxes(shared_data):
    folder = shared_data / 'dustpedia'
    table = load_dustpedia_global(path=folder, cigale_fluxes=True)
    row = table[list(table['galaxy']).index('NGC5358')]
    with open(folder / 'cigale_uvmir' / 'results.txt') as f:
        header = f.readline().split()
        for line in f:
            values = line.split()
            if values[0] == 'NGC5358':
                break
    bayes_w1 = float(values[header.index('bayes.WISE1')])   # mJy
    assert math.isclose(row['WISE_3.4'].to_value(u.mJy), bayes_w1, rel_tol=1e-9)
    phot = _csv_row(folder / 'DustPedia_Aperture_Photometry_2.2.csv', 'name', 'NGC5358')
    assert math.isclose(row['WISE_3.4_obs'].to_value(u.Jy), float(phot['WISE_3.4']))
    # targets stay those of the full-SED catalogue, not of the UV-MIR fit
    cat = _csv_row(folder / 'dustpedia_cigale_results_final_version.csv', 'id', 'NGC5358')
    assert math.isclose(row['Td'].value, float(cat['Tdust__K']))
    assert np.all(np.isfinite(table['WISE_3.4']))


def test_missing_files_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match='downloads are disabled'):
        load_dustpedia_global(path=tmp_path, download=False)
    with conf.set_temp('allow_download', False), conf.set_temp('dustpedia_dir', ''):
        with pytest.raises(FileNotFoundError, match='conf.dustpedia_dir'):
            load_dustpedia_global()


@pytest.fixture
def archive(shared_data, loopback_server, download_cache):
    """A loopback HTTP copy of the DustPedia archive layout and a private astropy cache."""
    for kind, rel in _ARCHIVE_PATHS.items():
        (loopback_server.root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_data / 'dustpedia' / DUSTPEDIA_FILES[kind], loopback_server.root / rel)
    return loopback_server.url


def test_download_through_astropy_cache(archive, shared_data):
    with conf.set_temp('dustpedia_url', archive), conf.set_temp('dustpedia_dir', ''):
        remote = load_dustpedia_global(download=True, require_targets=True)
    local = load_dustpedia_global(path=shared_data / 'dustpedia', require_targets=True)
    assert list(remote['galaxy']) == list(local['galaxy'])
    np.testing.assert_array_equal(remote['sLd'].value, local['sLd'].value)
    for kind, rel in _ARCHIVE_PATHS.items():
        assert astropy_data.is_url_in_cache(archive + rel, pkgname='astro_dustml')
