"""
Small mock training sets with known truth, shared by the estimate and CLI tests.

Pixel tables of a few mock galaxies (different seeds: different clumps and
scatter fields) made with the public chain, with the targets taken from
`MockGalaxy.truth_maps` on the aligned grid at the aligned resolution. The
mocks use the analytic recipe, whose colours determine the dust up to its
scatter fields, so that four galaxies suffice to learn it: the test is of
the chain's recovery of a learnable relation. (The DustPedia recipes carry
the scatter of real galaxies, which four mock galaxies cannot teach.)
Cached per process: the tests share them.
"""

import functools

import astropy.units as u
import numpy as np

from astro_dustml.datasets import make_mock_galaxy

# Enough bands to carry the dust signal (UV and MIR heating tracers), few
# enough to keep the tests fast; WISE 22 is left out so that the worst PSF is
# WISE 12 (6.6 arcsec).
BANDS = ('GALEX_FUV', 'GALEX_NUV', 'SDSS_g', 'SDSS_r', '2MASS_Ks', 'WISE_3.4',
         'WISE_4.6', 'WISE_12', 'Spitzer_3.6', 'Spitzer_8.0')
FOV = 2 * u.arcmin
SEMIMAJOR = 45 * u.arcsec
PIXEL_SCALE = 3 * u.arcsec
TRAIN_SEEDS = (11, 12, 13, 14)
TEST_SEED = 21
BLOCK = 6  # pixels: groups of the uncertainty model's inner folds


@functools.lru_cache(maxsize=None)
def mock(seed, **kwargs):
    return make_mock_galaxy(bands=BANDS, seed=seed, fov=FOV, semimajor=SEMIMAJOR,
                            dust_recipe='analytic', **kwargs)


def pixel_table(seed):
    """Pixel table of one mock galaxy with its true sLd, sMd, Td."""
    from astro_dustml.imaging import align_images
    from astro_dustml.imaging import prepare_images
    from astro_dustml.sed import make_pixel_table

    galaxy = mock(seed).galaxy
    prepared = prepare_images(mock(seed).images, galaxy=galaxy)
    aligned = align_images(prepared, pixel_scale=PIXEL_SCALE)
    # The galaxy mapping selects the pixels inside its D25 ellipse
    table = make_pixel_table(aligned, galaxy=dict(galaxy, name=f'mock{seed}'))
    truth = mock(seed).truth_maps(aligned.meta['wcs'], aligned.meta['shape'],
                                  aligned.meta['psf_fwhm'])
    y, x = np.asarray(table['y']), np.asarray(table['x'])
    for name, values in truth.items():
        table[name] = values[y, x]
    # Spatial blocks as groups: neighbouring pixels are correlated
    table['block'] = [f'{seed}-{j // BLOCK}-{i // BLOCK}' for j, i in zip(y, x)]
    return table


@functools.lru_cache(maxsize=None)
def training_table():
    from astropy.table import vstack
    return vstack([pixel_table(seed) for seed in TRAIN_SEEDS], metadata_conflicts='silent')


@functools.lru_cache(maxsize=None)
def trained_model():
    from astro_dustml.model import DustModel
    model = DustModel(bands=BANDS, n_estimators=40, n_dropout=0, sigma_rounds=150,
                      random_state=0)
    model.fit(training_table(), targets=('sLd', 'sMd', 'Td'), groups='block')
    model.card['name'] = 'mock-test'
    return model


def compare_with_truth(maps, truth, name):
    """Estimated values, true values and sigmas of a map's unmasked pixels."""
    ndd = maps[name]
    good = ~ndd.mask
    return (ndd.data[good], truth[name].to_value(ndd.unit)[good],
            ndd.uncertainty.array[good])
