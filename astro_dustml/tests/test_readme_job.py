"""
The README's main job, run as a new user runs it, checked against the mock's truth.

``astro-dustml example mock_galaxy && astro-dustml estimate mock_galaxy/*.fits
--distance 10Mpc --center 150 2 --semimajor 60arcsec --axis-ratio 0.6
--position-angle 30deg -o maps.fits`` with the bundled default model: its
maps must agree with the true maps of the mock it wrote, degraded to the
output grid and resolution the same way the images are, within the stated
uncertainties, the pixels' photometric noise included (chi² in [0.5, 2]:
sigma right to a factor of sqrt(2); median offset within one median sigma).
The job runs as a user runs it, with band-set routing on: pixels with all 18
bands get the default model, the few edge pixels that lack a band the model
of their bands, of a subset, or the default one.
"""

import warnings

import numpy as np
import pytest

from astro_dustml import conf
from astro_dustml.cli import main
from astro_dustml.datasets import make_mock_galaxy
from astro_dustml.maps import read_dust_maps
from astro_dustml.tests._mock_training import compare_with_truth

pytestmark = pytest.mark.band_sets
ARGS = ['--distance', '10Mpc', '--center', '150', '2', '--semimajor', '60arcsec',
        '--axis-ratio', '0.6', '--position-angle', '30deg', '--no-progress']


@pytest.fixture(scope='module')
def readme_job(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('readme')
    outdir = tmp / 'mock_galaxy'
    assert main(['example', str(outdir)]) == 0
    images = sorted(str(p) for p in outdir.glob('*.fits'))
    assert len(images) == 18
    with warnings.catch_warnings(record=True):
        # the CLI reports library warnings (e.g. pixels out of the training
        # domain) once each; they are part of the job, not a failure here
        status = main(['estimate', *images, *ARGS, '-o', str(tmp / 'maps.fits')])
        assert status == 0
        # the same job with the default model alone, as before band sets
        with conf.set_temp('band_sets', False):
            assert main(['estimate', *images, *ARGS, '-o', str(tmp / 'single.fits')]) == 0
    maps = read_dust_maps(tmp / 'maps.fits')
    maps.meta['single'] = read_dust_maps(tmp / 'single.fits')
    # The example writes the default mock (seed 0, 4 arcmin): made again here
    mock = make_mock_galaxy()
    ref = maps['Td']
    truth = mock.truth_maps(ref.wcs, ref.shape, maps.meta['psf_fwhm'])
    return maps, truth


@pytest.mark.slow
@pytest.mark.parametrize('name', ['sLd', 'sMd', 'Td'])
def test_default_model_on_readme_job_is_honest(readme_job, name):
    maps, truth = readme_job
    pred, true, sigma = compare_with_truth(maps, truth, name)
    assert len(pred) > 30
    chi2 = np.mean(((pred - true) / sigma) ** 2)
    offset = np.median(pred - true)
    print(f'{name}: {len(pred)} pixels, chi2 {chi2:.2f}, median offset {offset:+.3f}, '
          f'median sigma {np.median(sigma):.3f}, rmse {np.sqrt(np.mean((pred - true) ** 2)):.3f}')
    assert 0.5 <= chi2 <= 2, chi2
    assert abs(offset) <= np.median(sigma), (offset, np.median(sigma))


@pytest.mark.slow
def test_full_band_pixels_are_those_of_the_default_model(readme_job):
    maps, _ = readme_job
    single = maps.meta['single']
    models = {m['id']: m for m in maps.meta['band_set_models']}
    default = [i for i, m in models.items() if m['how'] == 'default']
    assert [models[i]['name'] for i in default] == ['dustpedia-global']
    full = maps.meta['model_id'] == default[0]
    assert full.sum() > 30
    for name in ('sLd', 'sMd', 'Td'):
        np.testing.assert_allclose(maps[name].data[full], single[name].data[full],
                                   rtol=0, atol=1e-6)
        np.testing.assert_allclose(maps[name].uncertainty.array[full],
                                   single[name].uncertainty.array[full], rtol=0, atol=1e-6)
    # every galaxy pixel has a model, and the file says which
    galaxy = np.isfinite(single['sLd'].data) | np.isfinite(maps['sLd'].data)
    assert (maps.meta['model_id'][galaxy] >= 0).all()
