"""Tests of estimate_many: one task per galaxy, failures reported and not fatal."""

import os
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from astro_dustml.maps import estimate_dust_maps, estimate_many, read_dust_maps
from astro_dustml.tests import _mock_training as mt
from astro_dustml.tests._dask_helpers import local_client


def _fits_files(mock, folder, skip=()):
    """The mock's images as FITS files, as a survey has them (workers read them)."""
    folder.mkdir()
    paths = []
    for band, image in mock.images.items():
        if band not in skip:
            paths.append(str(folder / f'{band}.fits'))
            fits.PrimaryHDU(image.data, header=image.meta['header']).writeto(paths[-1])
    return paths


@pytest.fixture(scope='module')
def survey(tmp_path_factory):
    """Two good mock galaxies and one without WISE 3.4 µm (in the middle)."""
    root = tmp_path_factory.mktemp('survey')
    return {
        'mock21': {'images': _fits_files(mt.mock(21), root / '21'),
                   'galaxy': mt.mock(21).galaxy},
        'no-w1': {'images': _fits_files(mt.mock(23), root / '23', skip=('WISE_3.4',)),
                  'galaxy': mt.mock(23).galaxy},
        'mock22': {'images': _fits_files(mt.mock(22), root / '22'),
                   'galaxy': mt.mock(22).galaxy},
    }


@pytest.fixture(scope='module')
def model():
    return mt.trained_model()


def _check(results, survey, out, model):
    assert list(results['name']) == list(survey)         # input order
    assert list(results['status']) == ['ok', 'failed', 'ok'], list(results['error'])
    assert 'WISE 3.4' in results['error'][1] and results['path'][1] == ''
    # the results table on disk is the returned one
    on_disk = Table.read(os.path.join(out, 'estimate_many.ecsv'))
    assert list(on_disk['status']) == list(results['status'])
    for i in (0, 2):
        spec = survey[results['name'][i]]
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            direct = estimate_dust_maps(spec['images'], galaxy=spec['galaxy'], model=model,
                                        pixel_scale=mt.PIXEL_SCALE, progress=False)
        written = read_dust_maps(results['path'][i])
        assert results['n_pixels'][i] == (~direct['Td'].mask).sum() > 0
        for name in ('sLd', 'sMd', 'Td'):
            assert np.array_equal(written[name].data, direct[name].data, equal_nan=True)
            assert np.array_equal(written[name].mask, direct[name].mask)


def test_serial_failure_not_fatal(survey, model, tmp_path):
    results = estimate_many(survey, output_dir=tmp_path, model=model,
                            pixel_scale=mt.PIXEL_SCALE, progress=False)
    _check(results, survey, tmp_path, model)
    # an existing file is not replaced without overwrite=True
    again = estimate_many({'mock21': survey['mock21']}, output_dir=tmp_path, model=model,
                          pixel_scale=mt.PIXEL_SCALE, progress=False)
    assert again['status'][0] == 'failed' and 'overwrite' in again['error'][0]


@pytest.mark.slow
def test_on_local_cluster(survey, model, tmp_path):
    with local_client() as client:
        results = estimate_many(survey, output_dir=tmp_path, client=client, model=model,
                                pixel_scale=mt.PIXEL_SCALE, progress=False)
    _check(results, survey, tmp_path, model)


def test_bad_specs(tmp_path):
    with pytest.raises(TypeError, match='images'):
        estimate_many({'a': {'galaxy': None}}, output_dir=tmp_path)
    with pytest.raises(TypeError, match='name'):
        estimate_many([{'images': {}}], output_dir=tmp_path)
    with pytest.raises(ValueError, match='unique'):
        estimate_many([{'name': 'a', 'images': {}}, {'name': 'a', 'images': {}}],
                      output_dir=tmp_path)
