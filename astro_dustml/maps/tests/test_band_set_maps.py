"""Each pixel from the model of its own bands: a galaxy whose left half lacks 2MASS."""

import functools
import hashlib
import warnings

import astropy.units as u
import numpy as np
import pytest

from astro_dustml.datasets import make_mock_galaxy
from astro_dustml.maps import MAP_FLAGS, estimate_dust_maps, read_dust_maps, write_dust_maps
from astro_dustml.model.band_set_routing import _shipped_folder

SDSS = ['SDSS_u', 'SDSS_g', 'SDSS_r', 'SDSS_i', 'SDSS_z']
TWOMASS = ['2MASS_J', '2MASS_H', '2MASS_Ks']
WISE = ['WISE_3.4', 'WISE_4.6', 'WISE_12', 'WISE_22']
WITH = 'dustpedia-bands-sdssugriz-2massjhk-wise1234'
WITHOUT = 'dustpedia-bands-sdssugriz-wise1234'

pytestmark = pytest.mark.band_sets


@functools.lru_cache(maxsize=None)
def _mock():
    return make_mock_galaxy(bands=SDSS + TWOMASS + WISE, seed=3, fov=3 * u.arcmin,
                            semimajor=60 * u.arcsec)


def _images():
    images = dict(_mock().images)
    for band in TWOMASS:  # keep the right half of the 2MASS images only
        nx = images[band].shape[1]
        images[band] = images[band][:, nx // 2:]
    return images


def _estimate(**kwargs):
    mock = _mock()
    with warnings.catch_warnings():
        # pixels out of the training domain are part of the job, not of this test
        warnings.filterwarnings('ignore', message='.*outside the training domain')
        # the SDSS + WISE model alone leaves the 2MASS images out, as it should
        warnings.filterwarnings('ignore', message='Ignoring 2MASS_J, 2MASS_H, 2MASS_Ks')
        return estimate_dust_maps(_images(), galaxy=mock.galaxy, distance=mock.galaxy['distance'],
                                  pixel_scale=6 * u.arcsec, progress=False, **kwargs)


@functools.lru_cache(maxsize=None)
def _routed():
    return _estimate()


def _sha256(name):
    return hashlib.sha256((_shipped_folder(name) / 'model.json').read_bytes()).hexdigest()


@pytest.mark.skipif(_shipped_folder(WITH) is None or _shipped_folder(WITHOUT) is None,
                    reason='shipped band-set models not built (scripts/train_band_sets.py)')
def test_each_half_comes_from_its_own_model(tmp_path):
    maps = _routed()
    flags = maps.meta['flags']
    galaxy = (flags & MAP_FLAGS['OUTSIDE']) == 0
    no_2mass = galaxy & ((flags & MAP_FLAGS['MISSING_INPUT']) != 0)
    has_2mass = galaxy & ~no_2mass
    ny, nx = flags.shape
    cols = np.arange(nx)[None, :].repeat(ny, axis=0)
    # the pixels without 2MASS are those of the left half
    assert cols[no_2mass].max() < cols[has_2mass].min() + 2
    assert no_2mass.sum() >= 20 and has_2mass.sum() >= 20, (no_2mass.sum(), has_2mass.sum())
    models = {m['name']: m for m in maps.meta['band_set_models']}
    assert set(models) == {WITH, WITHOUT}
    model_id = maps.meta['model_id']
    assert (model_id[no_2mass] == models[WITHOUT]['id']).all()
    assert (model_id[has_2mass] == models[WITH]['id']).all()
    assert (model_id[~galaxy] == -1).all()
    assert models[WITHOUT]['n_pixels'] == no_2mass.sum()
    assert models[WITH]['how'] == models[WITHOUT]['how'] == 'shipped'
    for name, m in models.items():
        assert m['sha256'] == _sha256(name)
    # each half is what its model predicts on its own, on the same images
    for name, where in ((WITHOUT, no_2mass), (WITH, has_2mass)):
        alone = _estimate(model=name, band_sets=False)
        for target in ('sLd', 'sMd', 'Td'):
            np.testing.assert_allclose(maps[target].data[where], alone[target].data[where],
                                       rtol=0, atol=1e-9, err_msg=f'{target} {name}')
            np.testing.assert_allclose(maps[target].uncertainty.array[where],
                                       alone[target].uncertainty.array[where], rtol=0,
                                       atol=1e-9)
    # the default model with band dropout gives other values on the left half
    single = _estimate(band_sets=False)
    assert np.nanmax(np.abs(single['sLd'].data[no_2mass] - maps['sLd'].data[no_2mass])) > 1e-3
    assert single.meta['band_set_models'][0]['how'] == 'default'
    assert (single.meta['model_id'][galaxy] == 0).all()

    # provenance in the file: MODELID plane and one name + SHA-256 per model
    path = tmp_path / 'maps.fits'
    write_dust_maps(maps, path)
    back = read_dust_maps(path)
    np.testing.assert_array_equal(back.meta['model_id'], model_id)
    from astropy.io import fits
    header = fits.getheader(path, 0)
    assert header['NMODELS'] == 2
    for name, m in models.items():
        i = m['id']
        assert header[f'MODN{i}'] == name
        assert header[f'MODSHA{i}'] == _sha256(name)
        assert header[f'MODPIX{i}'] == m['n_pixels']


@pytest.mark.slow
def test_on_demand_set_is_trained_once_then_read_from_the_cache(shared_data, download_cache,
                                                                monkeypatch):
    from astro_dustml import conf
    from astro_dustml.model import band_set_routing, band_sets
    # small forests: what is tested is the cache, not the accuracy
    small = dict(band_sets.BAND_SET_SETTINGS, n_estimators=5, max_depth=4, sigma_rounds=20,
                 n_inner_splits=2)
    for module in (band_sets, band_set_routing):
        monkeypatch.setattr(module, 'BAND_SET_SETTINGS', small)
    trained = []
    real = band_sets.train_band_set_model
    monkeypatch.setattr(band_set_routing, 'train_band_set_model',
                        lambda *a, **k: trained.append(a[0]) or real(*a, **k))
    bands = ['SDSS_g', 'SDSS_r', 'WISE_3.4', 'WISE_4.6', 'WISE_12']
    name = 'dustpedia-bands-sdssgr-wise123'
    mock = make_mock_galaxy(bands=bands, seed=3, fov=3 * u.arcmin, semimajor=60 * u.arcsec)
    runs = []
    with conf.set_temp('dustpedia_dir', str(shared_data / 'dustpedia')), \
            warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*outside the training domain')
        for _ in range(2):
            runs.append(estimate_dust_maps(mock.images, galaxy=mock.galaxy,
                                           distance=mock.galaxy['distance'],
                                           pixel_scale=6 * u.arcsec, progress=False))
    assert trained == [tuple(bands)]
    first, second = ({m['name']: m for m in r.meta['band_set_models']} for r in runs)
    assert first[name]['how'] == 'trained' and second[name]['how'] == 'cached'
    assert first[name]['sha256'] == second[name]['sha256'] is not None
    assert first[name]['n_pixels'] > 0.5 * np.isfinite(runs[0]['sLd'].data).sum()
    np.testing.assert_array_equal(runs[0]['sLd'].data, runs[1]['sLd'].data)
    cached = list(band_sets.band_set_cache_dir().glob(name + '-*'))
    assert len(cached) == 1


@pytest.mark.skipif(_shipped_folder(WITH) is None or _shipped_folder(WITHOUT) is None,
                    reason='shipped band-set models not built (scripts/train_band_sets.py)')
def test_mosaic_routes_each_pixel_as_in_memory(tmp_path):
    from astropy.io import fits

    from astro_dustml.maps import estimate_mosaic
    mock = _mock()
    paths = []
    for band, image in _images().items():
        header = image.meta['header'].copy()
        header.update(image.wcs.to_header())
        paths.append(str(tmp_path / f'{band}.fits'))
        fits.PrimaryHDU(image.data, header=header).writeto(paths[-1])
    maps = _routed()
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*outside the training domain')
        meta = estimate_mosaic(paths, tmp_path / 'maps.fits', galaxy=mock.galaxy,
                               distance=mock.galaxy['distance'], pixel_scale=6 * u.arcsec,
                               tile_shape=(11, 13), progress=False)
    tiled = read_dust_maps(tmp_path / 'maps.fits')
    names = {m['id']: m['name'] for m in maps.meta['band_set_models']}
    tiled_names = {m['id']: m['name'] for m in tiled.meta['band_set_models']}
    assert sorted(tiled_names.values()) == sorted(names.values()) == sorted([WITH, WITHOUT])
    assert meta['shape'] == maps['Td'].shape
    galaxy = maps.meta['model_id'] >= 0
    np.testing.assert_array_equal(tiled.meta['model_id'] >= 0, galaxy)
    assert ([tiled_names[i] for i in tiled.meta['model_id'][galaxy]]
            == [names[i] for i in maps.meta['model_id'][galaxy]])
    for target in ('sLd', 'sMd', 'Td'):
        good = ~maps[target].mask
        np.testing.assert_allclose(tiled[target].data[good], maps[target].data[good],
                                   rtol=1e-9, atol=0)
        np.testing.assert_allclose(tiled[target].uncertainty.array[good],
                                   maps[target].uncertainty.array[good], rtol=1e-9, atol=0)
