import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.wcs import WCS

from astro_dustml.bands import get_band
from astro_dustml.exceptions import AstroDustMLWarning
from astro_dustml.imaging import make_collection, read_images
from astro_dustml.imaging.io import _parse_image


@pytest.fixture
def wcs():
    w = WCS(naxis=2)
    w.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    w.wcs.crval = [150, 2]
    w.wcs.cdelt = [-1 / 3600, 1 / 3600]
    w.wcs.crpix = [5, 5]
    return w


def test_parse_forms_agree(tmp_path, wcs):
    data = np.arange(100.).reshape(10, 10)
    header = wcs.to_header()
    header.update({'TELESCOP': 'WISE', 'BAND': 'W1', 'BUNIT': 'Jy/pix'})
    path = tmp_path / 'w1.fits'
    fits.writeto(path, data, header)
    from_path = _parse_image(path)
    from_hdu = _parse_image(fits.PrimaryHDU(data, header))
    from_tuple = _parse_image((data, wcs), band='WISE_3.4', unit='Jy/pix')
    for image in (from_path, from_hdu, from_tuple):
        assert image.meta['band'] == 'WISE_3.4'
        assert image.unit == u.Jy / u.pix
        np.testing.assert_array_equal(image.data, data)
        assert image.wcs.wcs.crval[0] == 150


def test_nddata_attributes_win_and_input_untouched(wcs):
    data = np.ones((5, 5))
    ccd = CCDData(data, unit='MJy/sr', wcs=wcs, uncertainty=StdDevUncertainty(data * 0.1),
                  meta={'band': 'Spitzer_3.6'})
    with pytest.warns(AstroDustMLWarning, match='unit carried by the image'):
        image = _parse_image(ccd, unit='Jy/pix')
    assert image.unit == u.MJy / u.sr
    image.data[0, 0] = 99
    image.uncertainty.array[0, 0] = 99
    assert ccd.data[0, 0] == 1 and ccd.uncertainty.array[0, 0] == 0.1


def test_no_wcs_is_an_error():
    with pytest.raises(ValueError, match='no celestial WCS'):
        _parse_image(np.ones((3, 3)), band='W1')


def test_unknown_unit_resolved_once(wcs):
    """Without any unit the parse falls back to the native unit, once, and says so."""
    with pytest.warns(AstroDustMLWarning, match='native survey unit'):
        image = _parse_image((np.ones((3, 3)), wcs), band='W1')
    assert image.unit == get_band('W1').native_unit
    assert image.meta['unit_source'].startswith('native')
    # A second parse keeps the resolved unit and warns no more
    again = _parse_image(image)
    assert again.unit == image.unit and again.meta['unit_source'] == image.meta['unit_source']


def test_collection_errors(wcs):
    with pytest.raises(ValueError, match='Two images are in band WISE_3.4'):
        make_collection([(np.ones((3, 3)), wcs)] * 2, bands=['W1', 'WISE_3.4'],
                        units={'W1': 'Jy/pix'})
    with pytest.raises(ValueError, match='Got 2 images but 1 band'):
        make_collection([(np.ones((3, 3)), wcs)] * 2, bands=['W1'], units={'W1': 'Jy/pix'})
    with pytest.raises(ValueError, match='align them first'):
        make_collection({'W1': (np.ones((3, 3)), wcs), 'W2': (np.ones((4, 4)), wcs)},
                        aligned=True, units={'W1': 'Jy/pix', 'W2': 'Jy/pix'})


def test_read_real_images(shared_data):
    paths = sorted((shared_data / 'images').glob('NGC5584_[GPS]*.fits.gz'))
    collection = read_images(paths)
    assert set(collection.keys()) == {'GALEX_NUV', 'PACS_100', 'SPIRE_250'}
    # The unit comes from DustPedia's SIGUNIT keyword
    assert all(im.unit == u.Jy / u.pix for im in collection.values())


def test_images_are_parsed_once(wcs, monkeypatch):
    """A parsed stack goes through the later steps without another parse."""
    from astro_dustml.imaging import io, prepare
    from astro_dustml.imaging.io import _parse_collection
    rng = np.random.default_rng(3)
    images = {band: CCDData(1 + rng.normal(0, 0.1, (40, 40)), unit='MJy/sr', wcs=wcs)
              for band in ('WISE_3.4', 'WISE_4.6')}
    stack = _parse_collection(images)
    assert _parse_collection(stack) is stack
    assert _parse_collection(stack, units={'WISE_3.4': 'MJy/sr'}) is not stack
    assert set(stack.subset(['WISE_4.6'])) == {'WISE_4.6'}
    assert stack.subset(['WISE_4.6'])['WISE_4.6'] is stack['WISE_4.6']

    calls = []

    def counting(*args, **kwargs):
        calls.append(args)
        return _parse_image(*args, **kwargs)
    monkeypatch.setattr(io, '_parse_image', counting)
    monkeypatch.setattr(prepare, '_parse_image', counting)
    from_stack = prepare.prepare_images(stack, ebv=0.0)
    assert calls == []
    from_dict = prepare.prepare_images(images, ebv=0.0)
    assert len(calls) == 2  # the user's images: one parse each
    for band in images:
        np.testing.assert_array_equal(from_stack[band].data, from_dict[band].data)
        assert from_stack[band].wcs is not stack[band].wcs
    np.testing.assert_array_equal(stack['WISE_3.4'].data, images['WISE_3.4'].data)
