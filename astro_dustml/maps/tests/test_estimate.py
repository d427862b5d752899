"""
End-to-end tests of estimate_dust_maps on mock galaxies with known truth.

A small model is trained on pixel tables of four mock galaxies whose targets
come from the mocks' true maps; the maps it estimates for a fifth galaxy
(new clumps and scatter fields) are compared with that galaxy's truth.
"""

import copy
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from ndcube import NDCollection

from astro_dustml import __version__
from astro_dustml.exceptions import AstroDustMLWarning, OutOfDomainWarning
from astro_dustml.imaging.prepare import _parse_galaxy
from astro_dustml.maps import MAP_FLAGS, estimate_dust_maps
from astro_dustml.tests import _mock_training as mt


def _estimate(images, galaxy, **kwargs):
    """estimate_dust_maps with the test model; returns (maps, out-of-domain warnings)."""
    kwargs.setdefault('model', mt.trained_model())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', OutOfDomainWarning)
        maps = estimate_dust_maps(images, galaxy=galaxy, distance=galaxy['distance'],
                                  pixel_scale=mt.PIXEL_SCALE, progress=False, **kwargs)
    ood = [w for w in caught if issubclass(w.category, OutOfDomainWarning)]
    others = [w for w in caught if w not in ood]
    assert not others, [str(w.message) for w in others]
    return maps, ood


@pytest.fixture(scope='module')
def result():
    mock = mt.mock(mt.TEST_SEED)
    inputs = copy.deepcopy([(b, im.data.copy(), im.meta.copy()) for b, im in mock.images.items()])
    maps, ood = _estimate(mock.images, mock.galaxy)
    return mock, maps, ood, inputs


def _truth(mock, maps):
    ref = maps['Td']
    return mock.truth_maps(ref.wcs, ref.shape, maps.meta['psf_fwhm'])


def test_recovers_truth_within_uncertainty(result):
    mock, maps, _, _ = result
    truth = _truth(mock, maps)
    for name in ('sLd', 'sMd', 'Td'):
        ndd = maps[name]
        good = ~ndd.mask
        assert good.sum() > 100
        true = truth[name].to_value(ndd.unit)[good]
        pred = ndd.data[good]
        sigma = ndd.uncertainty.array[good]
        assert np.all(sigma > 0)
        chi2 = np.mean(((pred - true) / sigma) ** 2)
        inside = np.mean(np.abs(pred - true) < sigma)
        rmse = np.sqrt(np.mean((pred - true) ** 2))
        print(f'{name}: chi2 {chi2:.2f}, within 1 sigma {inside:.2f}, rmse {rmse:.3f}, '
              f'truth std {np.std(true):.3f}, median sigma {np.median(sigma):.3f}')
        # The stated uncertainties describe the actual errors ...
        assert 0.4 < chi2 < 2.0, (name, chi2)
        assert 0.5 < inside < 0.9, (name, inside)
        # ... and the model has skill: errors below the spread of the truth
        assert rmse < 0.8 * np.std(true), (name, rmse, np.std(true))


def test_outputs_carry_wcs_units_masks_meta(result):
    mock, maps, ood, _ = result
    assert isinstance(maps, NDCollection)
    assert list(maps.keys()) == ['sLd', 'sMd', 'Td']
    units = {'sLd': u.dex, 'sMd': u.dex, 'Td': u.K}
    first = maps['sLd']
    for name, ndd in maps.items():
        assert isinstance(ndd, CCDData)
        assert ndd.unit == units[name]
        assert isinstance(ndd.uncertainty, StdDevUncertainty)
        assert ndd.mask.dtype == bool and ndd.mask.shape == ndd.shape
        assert ndd.wcs.has_celestial
        assert ndd.wcs.to_header_string() == first.wcs.to_header_string()
        assert np.array_equal(ndd.mask, first.mask)
        # Masked where no valid estimate; finite where unmasked
        assert np.all(np.isfinite(ndd.data[~ndd.mask]))
    # The grid is centred on the galaxy at the requested pixel scale
    scale = first.wcs.proj_plane_pixel_scales()[0].to_value(u.arcsec)
    assert scale == pytest.approx(mt.PIXEL_SCALE.to_value(u.arcsec), rel=1e-6)
    x, y = first.wcs.world_to_pixel(mock.galaxy['center'])
    assert not first.mask[int(round(float(y))), int(round(float(x)))]
    # Pixels outside the D25 ellipse are masked and flagged OUTSIDE
    flags = maps.meta['flags']
    ny, nx = first.shape
    corners = [(0, 0), (0, nx - 1), (ny - 1, 0), (ny - 1, nx - 1)]
    for j, i in corners:
        assert first.mask[j, i] and flags[j, i] & MAP_FLAGS['OUTSIDE']
    assert np.array_equal(first.mask, flags != 0)
    # Out-of-domain pixels are masked, and the warning gives their fraction
    n_ood = int(np.count_nonzero(flags & MAP_FLAGS['OUT_OF_DOMAIN']))
    assert bool(ood) == (n_ood > 0)
    assert maps.meta['out_of_domain_fraction'] < 0.2
    if ood:
        assert f"{maps.meta['out_of_domain_fraction']:.1%}" in str(ood[0].message)
    meta = maps.meta
    assert meta['inputs'] == list(mt.BANDS)
    assert meta['model']['name'] == 'mock-test'
    assert meta['model']['bands'] == list(mt.BANDS)
    assert meta['psf_fwhm'].unit.physical_type == 'angle'
    assert meta['psf_fwhm'] >= 6.6 * u.arcsec  # the worst input PSF (WISE 12)
    assert meta['version'] == __version__
    assert meta['distance'] == mock.galaxy['distance']
    assert maps['Td'].meta['model']['name'] == 'mock-test'


def test_inputs_not_modified(result):
    mock, _, _, before = result
    for band, data, meta in before:
        image = mock.images[band]
        assert np.array_equal(image.data, data)
        assert image.mask is None and image.uncertainty is None
        assert set(image.meta) == set(meta)


def test_plot(result):
    from matplotlib.figure import Figure

    from astro_dustml.visualization import plot_dust_maps
    _, maps, _, _ = result
    fig = plot_dust_maps(maps)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 12
    assert fig.axes[0].wcs is not None


def test_list_input_and_missing_band():
    """A list of images works; a missing optional band still gives maps."""
    mock = mt.mock(mt.TEST_SEED)
    images = [im for band, im in mock.images.items() if band != 'GALEX_FUV']
    maps, _ = _estimate(images, mock.galaxy)
    assert 'GALEX_FUV' not in maps.meta['inputs']
    assert (~maps['Td'].mask).sum() > 100


def test_out_of_domain_pixels_flagged():
    # Much more young stars and dust than any training galaxy: colours outside
    # the training range
    mock = mt.mock(mt.TEST_SEED, young_fraction=0.3, dust_to_stars=5e-2)
    maps, ood = _estimate(mock.images, mock.galaxy)
    flags = maps.meta['flags']
    bad = (flags & MAP_FLAGS['OUT_OF_DOMAIN']) != 0
    assert ood and bad.any()
    assert np.all(maps['sLd'].mask[bad])
    assert 'outside the training domain' in str(ood[0].message)
    assert f"{maps.meta['out_of_domain_fraction']:.1%}" in str(ood[0].message)


def test_foreground_stars_masked():
    from astro_dustml.exceptions import StarMaskingWarning

    mock = mt.mock(mt.TEST_SEED, n_stars=6)
    with warnings.catch_warnings():
        # Faint stars in the coarse bands fall back to magnitude radii
        warnings.simplefilter('ignore', StarMaskingWarning)
        maps, _ = _estimate(mock.images, mock.galaxy, stars=mock.stars)
    flags = maps.meta['flags']
    assert np.any(flags & MAP_FLAGS['MASKED_INPUT'])
    # Every star with a significant parallax that falls on the galaxy is masked
    # and flagged; the others are not foreground stars for the default selection
    foreground = mock.stars['parallax_over_error'] >= 5
    region = _parse_galaxy(mock.galaxy)[1]
    on_galaxy = region.contains(SkyCoord(mock.stars['ra'], mock.stars['dec'], unit='deg'),
                                maps['Td'].wcs)
    assert (foreground & on_galaxy).any() and (~foreground & on_galaxy).any()
    x, y = maps['Td'].wcs.world_to_pixel_values(mock.stars['ra'], mock.stars['dec'])
    for i, j, star in zip(np.round(x).astype(int), np.round(y).astype(int),
                          foreground & on_galaxy):
        if star:
            assert maps['Td'].mask[j, i] and flags[j, i] & MAP_FLAGS['MASKED_INPUT']
        elif flags[j, i] & MAP_FLAGS['OUTSIDE'] == 0:
            assert not flags[j, i] & MAP_FLAGS['MASKED_INPUT']


# Bad input: one clear error each ------------------------------------------------


def test_error_no_wise_34():
    mock = mt.mock(mt.TEST_SEED)
    images = {b: im for b, im in mock.images.items() if b != 'WISE_3.4'}
    with pytest.raises(ValueError, match='No WISE 3.4 µm'):
        estimate_dust_maps(images, progress=False)


def test_error_real_ngc5584_lacks_wise_34(shared_data):
    bands = ['GALEX_NUV', 'WISE_12', 'PACS_100', 'SPIRE_250']
    paths = [str(shared_data / 'images' / f'NGC5584_{b}.fits.gz') for b in bands]
    with pytest.raises(ValueError, match=r'No WISE 3\.4 µm \(WISE_3\.4\)') as err:
        # The WISE 12 map has no unit keyword; its values are Jy/pix
        estimate_dust_maps(paths, bands=bands, units={'WISE_12': 'Jy/pix'}, progress=False)
    for band in ('GALEX_NUV', 'WISE_12', 'PACS_100', 'SPIRE_250'):
        assert band in str(err.value)


def test_error_no_wcs():
    mock = mt.mock(mt.TEST_SEED)
    images = dict(mock.images.items())
    images['WISE_4.6'] = NDData(images['WISE_4.6'].data, unit=images['WISE_4.6'].unit)
    with pytest.raises(ValueError, match='WISE_4.6.*no celestial WCS'):
        estimate_dust_maps(images, progress=False)


def test_error_unknown_band():
    mock = mt.mock(mt.TEST_SEED)
    images = dict(mock.images.items())
    image = images.pop('WISE_4.6')
    images['WISE_5'] = (image.data, image.wcs)
    with pytest.raises(ValueError, match="Unknown band 'WISE_5'"):
        estimate_dust_maps(images, progress=False)


def test_error_all_pixels_masked():
    mock = mt.mock(mt.TEST_SEED)
    images = {}
    for band, image in mock.images.items():
        images[band] = CCDData(image.data, unit=image.unit, wcs=image.wcs,
                               mask=np.ones(image.shape, bool), meta=image.meta)
    with pytest.raises(ValueError, match='Every pixel is masked'):
        estimate_dust_maps(images, model=mt.trained_model(), galaxy=mock.galaxy,
                           progress=False)


def test_error_unknown_model():
    mock = mt.mock(mt.TEST_SEED)
    with pytest.raises(ValueError, match="Unknown model 'no-such-model'.*Known models"):
        estimate_dust_maps(mock.images, model='no-such-model', progress=False)


def test_progress_bar_off(capsys):
    mock = mt.mock(mt.TEST_SEED)
    _estimate(mock.images, mock.galaxy)
    captured = capsys.readouterr()
    assert captured.out == '' and captured.err == ''


def test_sign_flipped_worst_psf_band_replans():
    # WISE 12 has the worst PSF: left out (sign-flipped), it no longer sets
    # the target, so the maps must be those of the same images without it
    mock = mt.mock(mt.TEST_SEED)
    flipped = dict(mock.images)
    image = flipped['WISE_12']
    flipped['WISE_12'] = CCDData(-image.data, unit=image.unit, wcs=image.wcs,
                                 meta=dict(image.meta))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        maps = estimate_dust_maps(flipped, model=mt.trained_model(), galaxy=mock.galaxy,
                                  distance=mock.galaxy['distance'],
                                  pixel_scale=mt.PIXEL_SCALE, progress=False)
    assert any(issubclass(w.category, AstroDustMLWarning) and 'WISE_12' in str(w.message)
               and 'sign-flipped' in str(w.message) for w in caught)
    without = {b: im for b, im in mock.images.items() if b != 'WISE_12'}
    expected, _ = _estimate(without, mock.galaxy)
    assert 'WISE_12' in maps.meta['unused_bands']
    assert maps.meta['psf_fwhm'] == expected.meta['psf_fwhm'] < 6.6 * u.arcsec
    for name in ('sLd', 'sMd', 'Td'):
        np.testing.assert_array_equal(maps[name].data, expected[name].data)
        np.testing.assert_array_equal(maps[name].uncertainty.array,
                                      expected[name].uncertainty.array)
    np.testing.assert_array_equal(maps.meta['flags'], expected.meta['flags'])


def test_foreground_stars_band_by_band_equals_all_bands(monkeypatch):
    # The apertures are fitted band after band while each band is prepared,
    # masked and aligned; the maps must equal those of the chain that
    # prepares and masks every band at once
    from astro_dustml.exceptions import StarMaskingWarning
    from astro_dustml.maps import estimate as estimate_module

    mock = mt.mock(mt.TEST_SEED, n_stars=6)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', StarMaskingWarning)
        by_band, _ = _estimate(mock.images, mock.galaxy, stars=mock.stars)
        monkeypatch.setattr(estimate_module, '_prepare_align_by_band', lambda *a, **k: None)
        all_bands, _ = _estimate(mock.images, mock.galaxy, stars=mock.stars)
    assert np.any(by_band.meta['flags'] & MAP_FLAGS['MASKED_INPUT'])
    assert by_band.meta['inputs'] == all_bands.meta['inputs']
    np.testing.assert_array_equal(by_band.meta['flags'], all_bands.meta['flags'])
    for name in ('sLd', 'sMd', 'Td'):
        np.testing.assert_array_equal(by_band[name].data, all_bands[name].data)
        np.testing.assert_array_equal(by_band[name].uncertainty.array,
                                      all_bands[name].uncertainty.array)


@pytest.mark.parametrize('parallel, n_stars', [(False, 0), (2, 0), (False, 8)])
def test_peak_memory_below_three_input_stacks(parallel, n_stars):
    # Issue 15: one band at a time through preparation, star masking, PSF
    # matching and reprojection keeps the peak below 3x the 18-band input
    # stack (it was ~4.7x with every band prepared at once); threads overlap
    # only a reprojection with the next band's preparation
    import tracemalloc

    from astro_dustml.bands import INPUT_BANDS
    from astro_dustml.datasets import make_mock_galaxy
    from astro_dustml.exceptions import StarMaskingWarning
    from astro_dustml.model.registry import get_model

    fov = 4 * u.arcmin
    mock = make_mock_galaxy(fov=fov, pixel_scale=fov / 256, seed=1, n_stars=n_stars)
    assert len(mock.images) == len(INPUT_BANDS) == 18
    stack = sum(np.asarray(im.data).nbytes for im in mock.images.values())
    galaxy = {k: mock.galaxy[k] for k in ('center', 'semimajor', 'axis_ratio',
                                          'position_angle', 'distance')}
    model = get_model(None)  # loaded outside the measurement
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', OutOfDomainWarning)
            warnings.simplefilter('ignore', StarMaskingWarning)
            maps = estimate_dust_maps(mock.images, model=model, galaxy=galaxy,
                                      distance=galaxy['distance'], progress=False,
                                      stars=mock.stars if n_stars else None,
                                      parallel=parallel)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (~maps['Td'].mask).sum() > 10
    assert peak < 3 * stack, f'peak {peak / stack:.2f} x the input stack'
