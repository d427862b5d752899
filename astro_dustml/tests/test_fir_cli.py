"""``astro-dustml estimate --fir``: predicted far-infrared maps written beside the dust maps."""

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import CCDData

from astro_dustml.cli import main
from astro_dustml.datasets import make_mock_galaxy
from astro_dustml.sed.tables import _pixel_area

BANDS = ['GALEX_NUV', 'SDSS_r', '2MASS_Ks', 'WISE_3.4', 'WISE_4.6', 'WISE_12', 'WISE_22']


@pytest.mark.slow
def test_estimate_writes_predicted_far_infrared_maps(tmp_path, capsys):
    mock = make_mock_galaxy(bands=BANDS, fov=2 * u.arcmin)
    paths = []
    for band, image in mock.images.items():
        path = tmp_path / f'mock_{band}.fits'
        CCDData(image.data, unit=image.unit, wcs=image.wcs,
                meta=image.meta['header']).write(path)
        paths.append(str(path))
    output = tmp_path / 'maps.fits'
    args = ['estimate', *paths, '--distance', '10Mpc', '--center', '150', '2',
            '--semimajor', '60arcsec', '--axis-ratio', '0.6', '--position-angle', '30deg',
            '-o', str(output), '--no-progress', '--fir', 'SPIRE_250', 'PACS_100']
    with warnings.catch_warnings():
        # the mock is small and partly out of the pretrained model's domain
        warnings.simplefilter('ignore')
        assert main(args) == 0
    assert 'maps_SPIRE_250.fits' in capsys.readouterr().out
    spire = CCDData.read(tmp_path / 'maps_SPIRE_250.fits')
    pacs = CCDData.read(tmp_path / 'maps_PACS_100.fits')
    assert spire.unit == u.MJy / u.sr and spire.header['BAND'] == 'SPIRE_250'
    assert spire.uncertainty is not None and spire.mask is not None
    good = ~spire.mask & ~pacs.mask
    assert good.sum() > 10
    # the galaxy's total 250 micron flux is of the order of the mock's own
    area = _pixel_area(spire.wcs).to_value(u.sr)
    predicted = np.nansum(np.where(good, spire.data, 0)) * area * 1e6
    sed = make_mock_galaxy(bands=['SPIRE_250'], fov=2 * u.arcmin).sed
    truth = u.Quantity(sed['flux'][list(sed['band']).index('SPIRE_250')]).to_value(u.Jy)
    assert 0.2 < predicted / truth < 5


def test_fir_needs_distance(tmp_path, capsys):
    assert main(['estimate', 'x.fits', '-o', str(tmp_path / 'm.fits'), '--fir',
                 'SPIRE_250']) == 2
    assert '--fir needs --distance' in capsys.readouterr().err
