"""Tests of the tiled (mosaic) estimation: stitched tiles == the in-memory call."""

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from astro_dustml.exceptions import OutOfDomainWarning
from astro_dustml.maps import MAP_FLAGS, estimate_dust_maps, estimate_mosaic, read_dust_maps
from astro_dustml.maps.mosaic import _tiles
from astro_dustml.tests import _mock_training as mt
from astro_dustml.tests._dask_helpers import local_client


@pytest.fixture(scope='module')
def mosaic(tmp_path_factory):
    """A mock galaxy as FITS files (as a mosaic is on disk), its model and in-memory maps."""
    folder = tmp_path_factory.mktemp('mosaic')
    mock = mt.mock(21)
    paths = []
    for band, image in mock.images.items():
        paths.append(str(folder / f'{band}.fits'))
        fits.PrimaryHDU(image.data, header=image.meta['header']).writeto(paths[-1])
    model = mt.trained_model()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        maps = estimate_dust_maps(paths, galaxy=mock.galaxy, model=model,
                                  pixel_scale=mt.PIXEL_SCALE, progress=False)
    return paths, mock.galaxy, model, maps


def _assert_same(path, maps):
    tiled = read_dust_maps(path)
    assert np.array_equal(tiled.meta['flags'], maps.meta['flags'])
    for name in ('sLd', 'sMd', 'Td'):
        a, b = tiled[name], maps[name]
        assert a.unit == b.unit and a.wcs.wcs.compare(b.wcs.wcs, tolerance=1e-12)
        assert np.array_equal(a.mask, b.mask)
        assert np.array_equal(np.isnan(a.data), np.isnan(b.data))
        good = ~b.mask
        assert good.sum() > 100
        # equal up to the round-off of FFTs of another size
        np.testing.assert_allclose(a.data[good], b.data[good], rtol=1e-9, atol=0)
        np.testing.assert_allclose(a.uncertainty.array[good], b.uncertainty.array[good],
                                   rtol=1e-9, atol=0)
    assert tiled.meta['inputs'] == maps.meta['inputs']
    assert tiled.meta['psf_fwhm'] == maps.meta['psf_fwhm']


def test_tiles_cover_the_grid_once():
    cover = np.zeros((41, 37), int)
    for y0, y1, x0, x1 in _tiles((41, 37), (16, 10)):
        cover[y0:y1, x0:x1] += 1
    assert np.all(cover == 1)


def test_tiled_equals_in_memory(mosaic, tmp_path):
    paths, galaxy, model, maps = mosaic
    ny, nx = maps['Td'].shape
    # tiles of 13 x 11 output pixels: seams cross the galaxy in both directions
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        meta = estimate_mosaic(paths, tmp_path / 'maps.fits', tile_shape=(13, 11),
                               galaxy=galaxy, model=model, pixel_scale=mt.PIXEL_SCALE,
                               progress=False)
    assert meta['shape'] == (ny, nx) and meta['tiles'] > 4
    _assert_same(tmp_path / 'maps.fits', maps)
    with pytest.raises(OSError, match='overwrite'):
        estimate_mosaic(paths, tmp_path / 'maps.fits', galaxy=galaxy, model=model)


@pytest.mark.parametrize('kwargs, words', [
    (dict(distance=-3 * u.Mpc), ['distance']),
    (dict(pixel_scale=0 * u.arcsec), ['pixel_scale']),
    (dict(units={'SPIRE_250': 'MJy/sr'}), ['units=', 'SPIRE_250']),
    (dict(bands=['WISE_3.4']), ['band names']),
])
def test_checked_before_any_work(mosaic, tmp_path, kwargs, words):
    """estimate_dust_maps' boundary checks: the same error, and no output file."""
    paths, galaxy, model, _ = mosaic
    with pytest.raises(ValueError) as in_memory:
        estimate_dust_maps(paths, galaxy=galaxy, model=model, progress=False, **kwargs)
    with pytest.raises(ValueError) as tiled:
        estimate_mosaic(paths, tmp_path / 'maps.fits', galaxy=galaxy, model=model,
                        progress=False, **kwargs)
    for word in words:
        assert word in str(tiled.value) and word in str(in_memory.value)
    assert not (tmp_path / 'maps.fits').exists()


@pytest.mark.slow
def test_tiled_on_local_cluster(mosaic, tmp_path):
    paths, galaxy, model, maps = mosaic
    with local_client() as client, warnings.catch_warnings():
        warnings.simplefilter('ignore')
        estimate_mosaic(paths, tmp_path / 'maps.fits', tile_shape=(16, 16), client=client,
                        work_dir=tmp_path / 'work', galaxy=galaxy, model=model,
                        pixel_scale=mt.PIXEL_SCALE, progress=False)
    _assert_same(tmp_path / 'maps.fits', maps)


def test_parallel_estimate_equals_serial(mosaic):
    """Threads in alignment (estimate_dust_maps parallel=) do not change a bit."""
    paths, galaxy, model, maps = mosaic
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        threaded = estimate_dust_maps(paths, galaxy=galaxy, model=model, parallel=2,
                                      pixel_scale=mt.PIXEL_SCALE, progress=False)
    assert np.array_equal(threaded.meta['flags'], maps.meta['flags'])
    for name in ('sLd', 'sMd', 'Td'):
        assert np.array_equal(threaded[name].data, maps[name].data, equal_nan=True)
        assert np.array_equal(threaded[name].uncertainty.array, maps[name].uncertainty.array,
                              equal_nan=True)


@pytest.mark.slow
def test_tiled_equals_in_memory_partial_coverage(tmp_path):
    """Coverage flags, a left-out band and units= go through the tiles as in memory."""
    mock = mt.mock(21)
    paths, units = [], {}
    for band, image in mock.images.items():
        header = image.meta['header'].copy()
        data = image.data
        if band == 'GALEX_FUV':  # covers the left part of the galaxy only
            data = data[:, :16]
            header.update(image[:, :16].wcs.to_header())
        elif band == 'SDSS_g':  # no information: left out
            data = np.zeros_like(data)
        elif band == '2MASS_Ks':  # no unit in the file: given by units=
            del header['BUNIT']
            units[band] = image.unit
        paths.append(str(tmp_path / f'{band}.fits'))
        fits.PrimaryHDU(data, header=header).writeto(paths[-1])
    kwargs = dict(galaxy=mock.galaxy, model=mt.trained_model(), pixel_scale=mt.PIXEL_SCALE,
                  units=units, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        maps = estimate_dust_maps(paths, **kwargs)
        meta = estimate_mosaic(paths, tmp_path / 'maps.fits', tile_shape=(9, 12), **kwargs)
    # the cases are really there
    assert (maps.meta['flags'] & MAP_FLAGS['MISSING_INPUT']).any()
    assert list(maps.meta['unused_bands']) == ['SDSS_g']
    assert meta['unused_bands'] == maps.meta['unused_bands']
    assert meta['shape'] == maps['Td'].shape
    _assert_same(tmp_path / 'maps.fits', maps)


def test_tiled_with_stars_equals_in_memory(tmp_path):
    # Gaia star masking: the scratch bands are masked with the apertures that
    # estimate_dust_maps fits, so the star masks and flags stitch exactly
    from astro_dustml.exceptions import StarMaskingWarning

    mock = mt.mock(21, n_stars=6)
    paths = []
    for band, image in mock.images.items():
        paths.append(str(tmp_path / f'{band}.fits'))
        fits.PrimaryHDU(image.data, header=image.meta['header']).writeto(paths[-1])
    model = mt.trained_model()
    kwargs = dict(galaxy=mock.galaxy, model=model, pixel_scale=mt.PIXEL_SCALE,
                  stars=mock.stars, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', StarMaskingWarning)
        warnings.simplefilter('ignore', OutOfDomainWarning)
        maps = estimate_dust_maps(paths, **kwargs)
        estimate_mosaic(paths, tmp_path / 'maps.fits', tile_shape=(13, 11), **kwargs)
    assert np.any(maps.meta['flags'] & MAP_FLAGS['MASKED_INPUT'])
    _assert_same(tmp_path / 'maps.fits', maps)
