"""
Far-infrared maps from Python in one step: estimate_dust_maps puts the
stellar-mass map on its maps' grid (``maps.meta['stellar_mass']``), and
`predict_fir_maps`, `constrain_to_lowres` and `global_from_pixels` take it
from there (issue #21).
"""

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import CCDData
from astropy.wcs import WCS

from astro_dustml.datasets import make_mock_galaxy
from astro_dustml.farinfrared import (
    compare_fir,
    constrain_to_lowres,
    degrade_maps,
    predict_fir_maps,
    stellar_mass_map,
)
from astro_dustml.maps import estimate_dust_maps, read_dust_maps, write_dust_maps
from astro_dustml.training import global_from_pixels

FOV = 2 * u.arcmin


@pytest.fixture(scope='module')
def mock():
    return make_mock_galaxy(fov=FOV, semimajor=50 * u.arcsec)


def _estimate(mock, **kwargs):
    with warnings.catch_warnings():
        # the small mock is partly out of the default model's domain
        warnings.simplefilter('ignore')
        return estimate_dust_maps(mock.images, galaxy=mock.galaxy, progress=False, **kwargs)


@pytest.fixture(scope='module')
def maps(mock):
    return _estimate(mock, distance=mock.galaxy['distance'])


def test_stellar_mass_map_on_the_maps_grid(maps, mock):
    mstar = maps.meta['stellar_mass']
    ref = maps['sMd']
    assert isinstance(mstar, CCDData) and mstar.unit == u.Msun
    assert mstar.data.shape == ref.data.shape
    assert mstar.wcs.wcs.compare(ref.wcs.wcs, tolerance=1e-10)
    assert mstar.meta['psf_fwhm'] == maps.meta['psf_fwhm']
    assert list(maps.keys()) == ['sLd', 'sMd', 'Td']  # still the three dust maps
    assert 'stellar_mass' not in ref.meta
    good = ~ref.mask
    assert np.all(np.isfinite(mstar.data[good]) & (mstar.data[good] > 0))
    # the galaxy's stellar mass summed over the maps is of the order of the
    # mock's own (W1/W2 relation scatter: 0.2 dex; pixels out of domain left out)
    total = np.nansum(mstar.data[~mstar.mask])
    assert 0.3 < total / mock.properties['stellar_mass'].to_value(u.Msun) < 3


def test_predict_fir_maps_from_estimate_in_one_step(maps, mock):
    fir = predict_fir_maps(maps, bands=['SPIRE_250'])
    spire = fir['SPIRE_250']
    assert spire.unit == u.MJy / u.sr and (~spire.mask).sum() > 30
    observed = make_mock_galaxy(bands=['SPIRE_250'], fov=FOV, semimajor=50 * u.arcsec,
                                noise=False, sky=False).images['SPIRE_250']
    summary = compare_fir(spire, observed).summary
    print(summary)
    # 128 pixels of the small mock with the default model: median ratio 0.91,
    # log-residual RMS 0.27 dex, Spearman 0.54 (on a real galaxy against its
    # observed SPIRE 250 map: 0.91, 0.16 dex, 0.95 over 5,161 pixels)
    assert summary['n_pixels'] > 100
    assert 0.7 < summary['median_ratio'] < 1.4
    assert summary['log_residual_rms'] < 0.35
    assert summary['spearman'] > 0.4


def test_user_images_stellar_mass_says_how(maps, mock):
    """The call of the issue: a stellar-mass map of the user's own images."""
    own = stellar_mass_map(mock.images, distance=mock.galaxy['distance'])
    with pytest.raises(ValueError, match=r"not on the grid.*Leave stellar_mass= out"):
        predict_fir_maps(maps, own, ['SPIRE_250'])
    with pytest.raises(TypeError, match='bands='):
        predict_fir_maps(maps, ['SPIRE_250'])


def test_constrain_and_global_use_it(maps):
    mstar = maps.meta['stellar_mass']
    # a coarse "truth": the prediction degraded, 0.1 dex up
    coarse = WCS(naxis=2)
    coarse.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    coarse.wcs.crval = maps['sMd'].wcs.wcs.crval
    scale = 3 * maps.meta['pixel_scale'].to_value(u.deg)
    coarse.wcs.cdelt = [-scale, scale]
    coarse.wcs.crpix = [6.5, 6.5]
    sub = {'sMd': maps['sMd']}
    low = degrade_maps(sub, wcs=coarse, shape=(12, 12), fwhm=36 * u.arcsec,
                       maps_fwhm=maps.meta['psf_fwhm'], stellar_mass=mstar)
    assert np.isfinite(low['sMd'].value).sum() > 4
    truth = {'sMd': CCDData(low['sMd'].value + 0.1, unit=u.dex, wcs=coarse)}
    kwargs = dict(truth_fwhm=36 * u.arcsec)
    implicit = constrain_to_lowres(maps, truth, **kwargs)
    explicit = constrain_to_lowres(maps, truth, stellar_mass=mstar, **kwargs)
    assert np.array_equal(implicit['sMd'].data, explicit['sMd'].data, equal_nan=True)

    row = global_from_pixels(maps)
    assert len(row) == 1
    good = ~maps['sMd'].mask & ~maps['sLd'].mask & ~maps['Td'].mask & ~mstar.mask
    expected = np.sum(10 ** maps['sMd'].data[good] * mstar.data[good])
    assert row['Mdust'][0].to_value(u.Msun) == pytest.approx(expected, rel=1e-12)
    assert row['Mstar'][0].to_value(u.Msun) == pytest.approx(mstar.data[good].sum(),
                                                             rel=1e-12)


def test_round_trip_and_without_distance(maps, mock, tmp_path):
    path = tmp_path / 'maps.fits'
    write_dust_maps(maps, path)
    back = read_dust_maps(path).meta['stellar_mass']
    mstar = maps.meta['stellar_mass']
    assert np.array_equal(back.data, mstar.data, equal_nan=True)
    assert np.array_equal(back.mask, mstar.mask)
    assert back.unit == u.Msun
    galaxy = {k: v for k, v in mock.galaxy.items() if k != 'distance'}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        nodist = estimate_dust_maps(mock.images, galaxy=galaxy, progress=False)
    assert nodist.meta['stellar_mass'] is None
    with pytest.raises(ValueError, match='distance='):
        predict_fir_maps(nodist, bands=['SPIRE_250'], distance=10 * u.Mpc)
