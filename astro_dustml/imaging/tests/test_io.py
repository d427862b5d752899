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
from astro_dustml.tests.helpers import check_bad_input


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


# -- aligned=True, copies, directories (issue 23) ----------------------------------


def _moved(shift, **crval):
    w = WCS(naxis=2)
    w.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    w.wcs.crval = [150, 2]
    w.wcs.cdelt = [-1 / 3600, 1 / 3600]
    w.wcs.crpix = [5 + shift, 5]
    return w


def _pair(second_wcs):
    return {'W1': (np.ones((10, 10)), _moved(0)), 'W2': (np.ones((10, 10)), second_wcs)}


def _other_sky():
    w = _moved(0)
    w.wcs.crval = [20, -30]
    return w


def _rotated():
    w = _moved(0)
    w.wcs.pc = [[0, -1], [1, 0]]
    return w


def _galactic():
    w = _moved(0)
    w.wcs.ctype = ['GLON-TAN', 'GLAT-TAN']
    return w


UNITS = {'W1': 'Jy/pix', 'W2': 'Jy/pix'}

# (id, call taking tmp_path, expected class or None, words, or a check of the result)
CASES = [
    ('aligned=True, same shape on another sky',
     lambda t: make_collection(_pair(_other_sky()), aligned=True, units=UNITS), ValueError,
     ['aligned=True', 'WISE_4.6 is on another grid than WISE_3.4', 'their WCS do not',
      'align_images', 'aligned=False']),
    ('aligned=True, grid shifted by one pixel',
     lambda t: make_collection(_pair(_moved(1)), aligned=True, units=UNITS), ValueError,
     ['aligned=True', 'WISE_4.6', 'pixels off']),
    ('aligned=True, grid rotated',
     lambda t: make_collection(_pair(_rotated()), aligned=True, units=UNITS),
     ValueError, ['another grid']),
    ('aligned=True, galactic WCS of another place',
     lambda t: make_collection(_pair(_galactic()), aligned=True, units=UNITS), ValueError,
     ['another grid']),
    ('aligned=True, grids within 0.001 pixel: accepted',
     lambda t: make_collection(_pair(_moved(1e-3)), aligned=True, units=UNITS), None,
     lambda coll: list(coll.keys()) == ['WISE_3.4', 'WISE_4.6']),
    ('aligned=False, another sky: accepted',
     lambda t: make_collection(_pair(_other_sky()), units=UNITS), None,
     lambda coll: coll.aligned_axes is None),
    ("read_images('/'): a directory",
     lambda t: read_images('/'), IsADirectoryError,
     ['/ is a directory, not a FITS file', 'glob', "'/*.fits*'"]),
    ('a directory among the files',
     lambda t: read_images([t]), IsADirectoryError,
     lambda t: [f'{t} is a directory', 'glob', '*.fits*']),
    ('one file path as a string, not a list',
     lambda t: read_images(str(_w1_file(t)))['WISE_3.4'].shape, None,
     lambda shape: shape == (10, 10)),
]


def _w1_file(t):
    header = _moved(0).to_header()
    header.update({'TELESCOP': 'WISE', 'BAND': 1, 'BUNIT': 'Jy/pix'})
    fits.writeto(t / 'w1.fits', np.ones((10, 10)), header)
    return t / 'w1.fits'


@pytest.mark.parametrize('call, expected, words',
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_bad_input(tmp_path, call, expected, words):
    check_bad_input(tmp_path, call, expected, words)


def _ccd():
    header = _moved(0).to_header()
    header.update({'TELESCOP': 'WISE', 'BAND': 1, 'BUNIT': 'Jy/pix'})
    return CCDData(np.ones((10, 10)), unit='Jy/pix', wcs=_moved(0),
                   uncertainty=StdDevUncertainty(np.ones((10, 10))),
                   mask=np.zeros((10, 10), bool),
                   meta={'header': header, 'psf_fwhm': [6.1] * u.arcsec,
                         'notes': {'who': 'me'}})


@pytest.mark.parametrize('source', ['ccd', 'hdu', 'file'])
def test_read_images_shares_nothing_with_its_inputs(tmp_path, source):
    ccd = _ccd()
    given = {'ccd': ccd, 'hdu': fits.PrimaryHDU(ccd.data, ccd.meta['header']),
             'file': _w1_file(tmp_path)}[source]
    out = read_images([given])['WISE_3.4']
    # a change on one side never shows up on the other
    out.data[0, 0] = -1
    out.meta['header']['OBSERVER'] = 'pipeline'
    if source == 'ccd':
        out.uncertainty.array[0, 0] = -1
        out.mask[0, 0] = True
        out.meta['psf_fwhm'][0] = 99 * u.arcsec
        out.meta['notes']['who'] = 'pipeline'
        assert ccd.uncertainty.array[0, 0] == 1 and not ccd.mask[0, 0]
        assert ccd.meta['psf_fwhm'][0] == 6.1 * u.arcsec
        assert ccd.meta['notes'] == {'who': 'me'}
    if source != 'file':
        assert given.data[0, 0] == 1
        header = given.meta['header'] if source == 'ccd' else given.header
        assert 'OBSERVER' not in header
        header['OBSERVER'] = 'user'
        given.data[1, 1] = 5
        assert out.meta['header']['OBSERVER'] == 'pipeline' and out.data[1, 1] == 1
