"""
Bad and unusual inputs, one row each: the exception (or warning) class and
the words that name the problem (issue 13).

Every row runs the public API (or the command line, in-process) on a small
mock galaxy imaged in 2MASS J and WISE 1-3 with one thing wrong, and checks
that the answer says what is wrong. Rows that must *not* fail (a hot pixel
is masked, a flat band is left out) also check the result against a clean
run: the independent truth there is that the flaw must not change the maps.
"""

import functools
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData, NDData, StdDevUncertainty

from astro_dustml import cli
from astro_dustml.bands import dn_unit
from astro_dustml.datasets import make_mock_galaxy
from astro_dustml.maps import estimate_dust_maps
from astro_dustml.exceptions import AstroDustMLWarning, MemoryLimitError, OutOfDomainWarning
from astro_dustml.imaging.io import NoCelestialWCSError, _parse_image
from astro_dustml.imaging import make_collection, read_images
from astro_dustml.imaging import galaxy_region, prepare_image

BANDS = ('2MASS_J', 'WISE_3.4', 'WISE_4.6', 'WISE_12')


@functools.lru_cache(maxsize=None)
def _mock():
    return make_mock_galaxy(bands=BANDS, seed=1, fov=2 * u.arcmin, semimajor=45 * u.arcsec)


def _galaxy(**changes):
    return dict(_mock().galaxy, **changes)


def _images(**changes):
    """The mock's images, with ``band=function(data copy)`` applied."""
    out = dict(_mock().images)
    for band, change in changes.items():
        image = out[band]
        out[band] = CCDData(change(image.data.copy()), unit=image.unit, wcs=image.wcs,
                            meta=image.meta)
    return out


def _estimate(images=None, **kwargs):
    kwargs.setdefault('galaxy', _galaxy())
    kwargs.setdefault('distance', _mock().galaxy['distance'])
    return estimate_dust_maps(_images() if images is None else images, progress=False,
                              **kwargs)


@functools.lru_cache(maxsize=None)
def _clean():
    return _estimate()


def _pixel(value, where=(13, 17)):
    def change(data):
        data[where] = value
        return data
    return change


def _same_maps_as(band_left_out=None):
    """A check: the maps equal those of a clean run (without ``band_left_out``)."""
    def check(maps):
        images = _images()
        if band_left_out:
            images.pop(band_left_out)
        reference = _clean() if band_left_out is None else _estimate(images)
        for name in ('sLd', 'sMd', 'Td'):
            np.testing.assert_allclose(maps[name].data, reference[name].data,
                                       rtol=1e-6, equal_nan=True)
        if band_left_out:
            assert band_left_out not in maps.meta['inputs']
            assert band_left_out in maps.meta['unused_bands']
    return check


def _no_distance():
    return {k: v for k, v in _galaxy().items() if k != 'distance'}


def _w1_header(**cards):
    header = _mock().images['WISE_3.4'].wcs.to_header()
    header.update({'TELESCOP': 'WISE', 'BAND': 1, **cards})
    return header


def _hdu(data=None, **cards):
    return fits.PrimaryHDU(np.ones((30, 30)) if data is None else data,
                           header=_w1_header(**cards))


def _file(tmp_path, name, hdu):
    path = tmp_path / name
    hdu.writeto(path)
    return path


def _unc_pair(tmp_path, unc_shape=(30, 30), with_int=True):
    names = ['x-w1-unc-3.fits', 'x-w1-int-3.fits'] if with_int else ['x-w1-unc-3.fits']
    paths = [_file(tmp_path, names[0], _hdu(np.ones(unc_shape), BUNIT='DN', MAGZP=20.5))]
    if with_int:
        paths.append(_file(tmp_path, names[1], _hdu(BUNIT='DN', MAGZP=20.5)))
    return read_images(paths)


def _tiny_images():
    wcs = _mock().images['WISE_3.4'].wcs
    rng = np.random.default_rng(0)
    return {b: CCDData(1 + rng.normal(0, 0.01, (5, 5)), unit='MJy/sr', wcs=wcs)
            for b in ('WISE_3.4', 'WISE_4.6', '2MASS_J')}


def _elsewhere():
    """The mock with WISE 4.6 µm moved 10 degrees away (another galaxy)."""
    images = _images()
    image = images['WISE_4.6']
    wcs = image.wcs.deepcopy()
    wcs.wcs.crval = wcs.wcs.crval + [10, 0]
    images['WISE_4.6'] = CCDData(image.data, unit=image.unit, wcs=wcs, meta=image.meta)
    return images


def _cube_hdu():
    return fits.PrimaryHDU(np.ones((3, 4, 4)), header=_w1_header())


C = SkyCoord(150.0, 2.0, unit='deg')


def _scaled_wcs(band, factor):
    """The mock's images with the CDELT of ``band`` (all bands for None) times ``factor``."""
    out = {}
    for name, image in _mock().images.items():
        wcs = image.wcs.deepcopy()
        if band is None or name == band:
            wcs.wcs.cdelt = wcs.wcs.cdelt * factor
        out[name] = CCDData(image.data, unit=image.unit, wcs=wcs, meta={'band': name})
    return out


def _bad_wcs(key, value):
    images = _images()
    image = images['WISE_4.6']
    wcs = image.wcs.deepcopy()
    setattr(wcs.wcs, key, value(getattr(wcs.wcs, key)))
    images['WISE_4.6'] = CCDData(image.data, unit=image.unit, wcs=wcs, meta={'band': 'WISE_4.6'})
    return images


def _centre_mask(shape, half=8):
    mask = np.zeros(shape, bool)
    cy, cx = shape[0] // 2, shape[1] // 2
    mask[cy - half:cy + half, cx - half:cx + half] = True
    return mask


def _w1_ccd(**kwargs):
    ref = _mock().images['WISE_3.4']
    return CCDData(np.ones((9, 9)), unit='Jy/pix', wcs=ref.wcs, meta={'band': 'W1'}, **kwargs)


def _scaled_all(factor):
    return {b: CCDData(im.data * factor, unit=im.unit, wcs=im.wcs, meta={'band': b})
            for b, im in _mock().images.items()}


# (id, call taking tmp_path, expected class, words that must all be in the message,
#  warnings to ignore on the way or a check of the result)
CASES = [
    # -- units and headers --------------------------------------------------------
    ('no unit: native unit with a warning',
     lambda t: _parse_image((np.ones((9, 9)), _mock().images['WISE_3.4'].wcs), band='W1'),
     AstroDustMLWarning, ['WISE_3.4', 'carries no unit', 'native survey unit'], None),
    ('(array, wcs) inputs reach the maps with units=',
     lambda t: _estimate({b: (im.data, im.wcs) for b, im in _mock().images.items()},
                         units={b: im.unit for b, im in _mock().images.items()}),
     None, [], _same_maps_as()),
    ("unreadable BUNIT 'florps'",
     lambda t: prepare_image(_hdu(BUNIT='florps')), ValueError,
     ["BUNIT = 'florps'", 'not a unit', 'units='], None),
    ('units= gives an unreadable unit',
     lambda t: make_collection({'W1': (np.ones((9, 9)), _mock().images['WISE_3.4'].wcs)},
                               units={'W1': 'florps'}),
     ValueError, ['WISE_3.4', "'florps'", 'not a unit'], None),
    ('units= names a band that is not there',
     lambda t: _estimate(units={'SPIRE_250': 'Jy/pix'}), ValueError,
     ['units=', 'SPIRE_250', 'not in the collection'], None),
    ('units= names an unknown band',
     lambda t: _estimate(units={'W9': 'Jy/pix'}), ValueError, ['Unknown band', 'W9'], None),
    ('unit that is no flux (K)',
     lambda t: prepare_image(_mock().images['WISE_3.4'], unit='K'), u.UnitConversionError,
     ['WISE_3.4', 'neither a surface brightness', 'unit='], None),
    ('dimensionless image',
     lambda t: prepare_image(CCDData(np.ones((30, 30)), unit='', wcs=_mock().images['WISE_3.4'].wcs,
                                     meta={'band': 'W1'})),
     u.UnitConversionError, ['dimensionless', 'unit='], None),
    ("BUNIT 'DN' on 2MASS without MAGZP",
     lambda t: _parse_image(fits.PrimaryHDU(np.ones((9, 9)), _w1_header(
         TELESCOP='', BAND='', ORIGIN='2MASS', FILTER='j', BUNIT='DN'))),
     ValueError, ['2MASS_J', 'data numbers', 'MAGZP'], None),
    ("BUNIT 'DN' on WISE without MAGZP: registry zero point",
     lambda t: _parse_image(_hdu(BUNIT='DN')), AstroDustMLWarning,
     ['WISE_3.4', 'no zero point (MAGZP)', 'nominal zero point'], None),
    ('MAGZP not a number',
     lambda t: _parse_image(_hdu(BUNIT='DN', MAGZP='abc')), ValueError,
     ['MAGZP', 'not a magnitude zero point'], None),
    ('MAGZP negative',
     lambda t: _parse_image(_hdu(BUNIT='DN', MAGZP=-3.0)), ValueError,
     ['MAGZP', 'not a magnitude zero point'], None),
    ('DN converted with the header MAGZP, not a fixed one',
     lambda t: _parse_image(_hdu(BUNIT='DN', MAGZP=19.0)).unit, None, [],
     lambda unit: (1 * unit * u.pix).to_value(u.Jy) == pytest.approx(
         (1 * dn_unit('W1', 20.5) * u.pix).to_value(u.Jy) * 10 ** 0.6)),
    ('not a FITS file',
     lambda t: (t / 'notes.fits').write_text('hello') and read_images([t / 'notes.fits']),
     OSError, ['notes.fits', 'not a readable FITS file'], None),
    ('missing file', lambda t: read_images([t / 'nope.fits']), FileNotFoundError,
     ['No such file', 'nope.fits'], None),
    ('FITS file without an image',
     lambda t: _parse_image(fits.HDUList([fits.PrimaryHDU()])), ValueError,
     ['no image HDU'], None),
    ('3-D cube', lambda t: _parse_image(_cube_hdu()), ValueError, ['2D image', '(3, 4, 4)'],
     None),
    ('no celestial WCS',
     lambda t: read_images([_file(t, 'nowcs.fits', fits.PrimaryHDU(
         np.ones((9, 9)), fits.Header({'TELESCOP': 'WISE', 'BAND': 1})))]),
     NoCelestialWCSError, ['nowcs.fits', 'no celestial WCS'], None),
    ('unknown band name',
     lambda t: _estimate({'WISE_3.4': _mock().images['WISE_3.4'],
                          'WISE_5': (_mock().images['WISE_4.6'].data,
                                     _mock().images['WISE_4.6'].wcs)}),
     ValueError, ["Unknown band 'WISE_5'"], None),
    ('header without a telescope',
     lambda t: _parse_image(fits.PrimaryHDU(np.ones((9, 9)),
                                            _mock().images['WISE_3.4'].wcs.to_header())),
     ValueError, ['Cannot recognise the band', 'band='], None),
    ('-unc- map without its -int- map', lambda t: _unc_pair(t, with_int=False), ValueError,
     ['x-w1-unc-3.fits', 'x-w1-int-3.fits', 'not among the inputs'], None),
    ('-unc- map of another shape', lambda t: _unc_pair(t, unc_shape=(20, 20)), ValueError,
     ['x-w1-unc-3.fits', 'not a matching pair'], None),
    ('-unc- map becomes the uncertainty',
     lambda t: _unc_pair(t)['WISE_3.4'], None, [],
     lambda image: np.allclose(image.uncertainty.array, 1.0)),
    ('two images in one band',
     lambda t: _estimate([_mock().images['WISE_3.4']] * 2), ValueError,
     ['Two images are in band WISE_3.4'], None),
    ('not an image at all', lambda t: _parse_image(42), TypeError,
     ['Cannot read an image from int'], None),
    ('bands= for a mapping', lambda t: _estimate(bands=['W1']), ValueError,
     ['bands= is only for a list'], None),
    # -- pixels -----------------------------------------------------------------
    ('hot pixel 1e20 masked before convolution',
     lambda t: _estimate(_images(**{'WISE_4.6': _pixel(1e20)})), AstroDustMLWarning,
     ['1 pixel(s)', 'WISE_4.6', 'absurd'], None),
    ('hot pixel 1e20: maps as without it',
     lambda t: _estimate(_images(**{'WISE_4.6': _pixel(1e20)})), None, [],
     (AstroDustMLWarning, _same_maps_as())),
    ('pixel 1e30 in 2MASS J: maps as without it',
     lambda t: _estimate(_images(**{'2MASS_J': _pixel(1e30)})), None, [],
     (AstroDustMLWarning, _same_maps_as())),
    ('pixel 1e300 never reaches xgboost',
     lambda t: _estimate(_images(**{'WISE_12': _pixel(1e300)})), AstroDustMLWarning,
     ['WISE_12', 'absurd', '1e+300'], None),
    ('negative hot pixel -1e25',
     lambda t: _estimate(_images(**{'WISE_12': _pixel(-1e25)})), AstroDustMLWarning,
     ['WISE_12', 'absurd'], None),
    ('infinite pixel: masked like NaN',
     lambda t: _estimate(_images(**{'WISE_3.4': _pixel(np.inf)})), None, [],
     lambda maps: (~maps['Td'].mask).sum() > 50),
    ('non-finite uncertainty pixel',
     lambda t: prepare_image(CCDData(
         _mock().images['WISE_3.4'].data, unit='Jy/pix', wcs=_mock().images['WISE_3.4'].wcs,
         uncertainty=StdDevUncertainty(_pixel(np.nan)(np.ones((88, 88)))),
         meta={'band': 'W1'})),
     AstroDustMLWarning, ['WISE_3.4', '1 with a non-finite or absurd uncertainty'], None),
    ('all-zero band left out, named',
     lambda t: _estimate(_images(**{'WISE_4.6': lambda d: d * 0})), AstroDustMLWarning,
     ['Left out WISE_4.6', 'all zero', 'unused_bands'], None),
    ('all-zero band: recorded as unused',
     lambda t: _estimate(_images(**{'WISE_4.6': lambda d: d * 0})), None, [],
     (AstroDustMLWarning, _same_maps_as('WISE_4.6'))),
    ('constant band left out, named',
     lambda t: _estimate(_images(**{'WISE_12': lambda d: d * 0 + 3.0})), AstroDustMLWarning,
     ['Left out WISE_12', 'constant', '3'], None),
    ('sign-flipped band left out, named',
     lambda t: _estimate(_images(**{'WISE_4.6': lambda d: -d})), AstroDustMLWarning,
     ['Left out WISE_4.6', 'sign-flipped'], None),
    ('sign-flipped band: maps as without it',
     lambda t: _estimate(_images(**{'WISE_4.6': lambda d: -d})), None, [],
     (AstroDustMLWarning, _same_maps_as('WISE_4.6'))),
    ('sign-flipped reference band',
     lambda t: _estimate(_images(**{'WISE_3.4': lambda d: -d})), ValueError,
     ['WISE_3.4', 'sign-flipped', 'reference band'], None),
    ('all-NaN band',
     lambda t: _estimate(_images(**{'WISE_4.6': lambda d: d * np.nan})), ValueError,
     ['Every pixel is masked', 'WISE_4.6'], None),
    ('constant reference band',
     lambda t: _estimate(_images(**{'WISE_3.4': lambda d: d * 0 + 1})), ValueError,
     ['WISE_3.4', 'constant', 'reference band'], None),
    # -- numbers at the boundary ---------------------------------------------------
    ('negative distance', lambda t: _estimate(distance=-10 * u.Mpc), ValueError,
     ['distance', 'finite positive length', '-10'], None),
    ('NaN distance', lambda t: _estimate(distance=np.nan * u.Mpc), ValueError,
     ['distance', 'finite positive'], None),
    ('zero distance', lambda t: _estimate(distance=0 * u.Mpc), ValueError,
     ['distance', 'finite positive'], None),
    ('infinite distance', lambda t: _estimate(distance=np.inf * u.Mpc), ValueError,
     ['distance', 'finite positive'], None),
    ('distance in arcsec', lambda t: _estimate(distance=10 * u.arcsec), u.UnitTypeError,
     ['distance must be a length', 'arcsec'], None),
    ('distance as an unreadable string', lambda t: _estimate(distance='ten Mpc'),
     u.UnitTypeError, ['distance', 'cannot read'], None),
    ('negative pixel scale', lambda t: _estimate(pixel_scale=-5 * u.arcsec), ValueError,
     ['pixel_scale', 'finite positive', '-5'], None),
    ('zero pixel scale', lambda t: _estimate(pixel_scale=0 * u.arcsec), ValueError,
     ['pixel_scale', 'finite positive'], None),
    ('NaN pixel scale', lambda t: _estimate(pixel_scale=np.nan * u.arcsec), ValueError,
     ['pixel_scale', 'finite positive'], None),
    ('pixel scale without a unit', lambda t: _estimate(pixel_scale=5), u.UnitTypeError,
     ['pixel_scale', 'Quantity'], None),
    ('pixel scale in kelvin', lambda t: _estimate(pixel_scale=5 * u.K), u.UnitTypeError,
     ['pixel_scale', 'an angle or a length'], None),
    ('pixel scale in pc without distance',
     lambda t: _estimate(pixel_scale=400 * u.pc, distance=None, galaxy=_no_distance()),
     ValueError,
     ['pixel_scale', 'physical length', 'distance'], None),
    ('negative resolution', lambda t: _estimate(resolution=-3 * u.arcsec), ValueError,
     ['resolution', 'finite positive'], None),
    ('resolution in kpc without distance',
     lambda t: _estimate(resolution=1 * u.kpc, distance=None, galaxy=_no_distance()),
     ValueError,
     ['resolution', 'physical length', 'distance'], None),
    ('negative semi-major axis',
     lambda t: _estimate(galaxy=_galaxy(semimajor=-45 * u.arcsec)), ValueError,
     ['semimajor', 'finite positive angle'], None),
    ('NaN semi-major axis',
     lambda t: _estimate(galaxy=_galaxy(semimajor=np.nan * u.arcsec)), ValueError,
     ['semimajor', 'finite positive angle'], None),
    ('zero semi-major axis', lambda t: galaxy_region(C, semimajor=0 * u.arcsec), ValueError,
     ['semimajor', 'finite positive angle'], None),
    ('semi-major axis in Mpc', lambda t: galaxy_region(C, semimajor=1 * u.Mpc),
     u.UnitTypeError, ['semimajor must be an angle'], None),
    ('negative D25', lambda t: galaxy_region(C, d25=-2 * u.arcmin), ValueError,
     ['d25', 'finite positive angle'], None),
    ('zero axis ratio', lambda t: galaxy_region(C, semimajor=1 * u.arcmin, axis_ratio=0),
     ValueError, ['axis_ratio', 'finite positive'], None),
    ('NaN axis ratio',
     lambda t: galaxy_region(C, semimajor=1 * u.arcmin, axis_ratio=np.nan), ValueError,
     ['axis_ratio', 'finite positive'], None),
    ('axis ratio text',
     lambda t: galaxy_region(C, semimajor=1 * u.arcmin, axis_ratio='round'), ValueError,
     ['axis_ratio', "'round'"], None),
    ('NaN position angle (was an SVD error)',
     lambda t: _estimate(galaxy=_galaxy(position_angle=np.nan * u.deg)), ValueError,
     ['position_angle', 'finite angle'], None),
    ('position angle without a unit',
     lambda t: galaxy_region(C, semimajor=1 * u.arcmin, position_angle=30), u.UnitTypeError,
     ['position_angle', 'angle Quantity'], None),
    ('negative E(B-V)', lambda t: _estimate(ebv=-0.1), ValueError,
     ['E(B-V)', 'non-negative'], None),
    ('NaN E(B-V)', lambda t: _estimate(ebv=np.nan), ValueError,
     ['E(B-V)', 'finite'], None),
    ('negative PSF FWHM',
     lambda t: prepare_image(_mock().images['WISE_3.4'], psf_fwhm=-6 * u.arcsec), ValueError,
     ['psf_fwhm', 'finite positive'], None),
    # -- where the galaxy is, and what is left to predict ---------------------------
    ('galaxy centre off the images',
     lambda t: _estimate(galaxy=_galaxy(center=SkyCoord(150.2, 2.0, unit='deg'))), ValueError,
     ['galaxy is not on the', 'image', 'centre'], None),
    ('galaxy centre on the other side of the sky',
     lambda t: _estimate(galaxy=_galaxy(center=SkyCoord(330.0, -2.0, unit='deg'))), ValueError,
     ['galaxy is not on the', 'image'], None),
    ('tiny ellipse: advice is a larger one',
     lambda t: _estimate(galaxy=_galaxy(semimajor=0.5 * u.arcsec)), ValueError,
     ['tiny', 'larger semimajor', 'sky_annulus=(1.25, None)'], None),
    ('ellipse larger than the image',
     lambda t: _estimate(galaxy=_galaxy(semimajor=10 * u.arcmin)), ValueError,
     ['too small for the galaxy', 'larger cutout'], None),
    ('5x5 images, 200" pixels: not "do not overlap"',
     lambda t: _estimate(_tiny_images(), galaxy=None, distance=None,
                         pixel_scale=200 * u.arcsec), ValueError,
     ['too large for the images', 'smaller pixel_scale'], None),
    ('images of two places do not overlap',
     lambda t: _estimate(_elsewhere()), ValueError,
     ['WISE_4.6', 'does not overlap', 'WISE_3.4'], None),
    ('absurd E(B-V) masks every pixel: named',
     lambda t: _estimate(ebv=20), ValueError,
     ['Every pixel is masked after prediction', 'E(B-V) = 20 mag is absurd'],
     (OutOfDomainWarning,)),
    ('too few bands for the model: named',
     lambda t: _estimate({b: _mock().images[b] for b in ('WISE_3.4', 'WISE_12')}),
     ValueError, ['at least 3 usable bands', 'core bands', '2MASS_J'], (OutOfDomainWarning,)),
    # -- issue 22: memory planned before allocating ---------------------------------
    ('one band with enormous pixels: refused before allocating',
     lambda t: _estimate(_scaled_wcs('WISE_12', 3000)), MemoryLimitError,
     ['common grid', 'WISE_12 makes it this large', 'GiB', 'conf.memory_limit', 'CDELT'],
     None),
    ('every band with tiny pixels: the PSF-matching kernel refused',
     lambda t: _estimate(_scaled_wcs(None, 1 / 3000), galaxy=None), MemoryLimitError,
     ['PSF matching', 'kernel', 'GiB', 'conf.memory_limit', 'CDELT'], None),
    ('pixel_scale far below the input pixels: refused, not a reproject error',
     lambda t: _estimate(pixel_scale=0.01 * u.arcsec), MemoryLimitError,
     ['common grid', '0.01 arcsec', 'larger pixel_scale', 'GiB'], None),
    ('a broadcast view of a huge array is not materialised',
     lambda t: _parse_image((np.broadcast_to(1.0, (60000, 60000)),
                             _mock().images['WISE_3.4'].wcs), band='W1', unit='MJy/sr'),
     MemoryLimitError, ['WISE_3.4', '60000 x 60000', 'GiB', 'conf.memory_limit'], None),
    # -- issue 22: masks and uncertainties honoured -----------------------------------
    ('numpy.ma mask on an (array, wcs) input is kept',
     lambda t: _parse_image((np.ma.masked_array(np.ones((9, 9)), _centre_mask((9, 9), 2)),
                             _mock().images['WISE_3.4'].wcs), band='W1', unit='MJy/sr').mask,
     None, [], lambda mask: mask.sum() == 16 and mask[4, 4]),
    ('mask of another shape',
     lambda t: _parse_image(NDData(np.ones((9, 9)), unit='Jy/pix', mask=np.zeros((3, 3), bool),
                                   wcs=_mock().images['WISE_3.4'].wcs, meta={'band': 'W1'})),
     ValueError, ['mask of the WISE_3.4', '(3, 3)', '(9, 9)'], None),
    ('uncertainty in mJy/pix on Jy/pix data is converted',
     lambda t: _parse_image(_w1_ccd(uncertainty=StdDevUncertainty(np.full((9, 9), 1000.0),
                                                                  unit='mJy/pix'))),
     None, [], lambda image: np.allclose(image.uncertainty.array, 1.0)),
    ('negative uncertainties',
     lambda t: _parse_image(_w1_ccd(uncertainty=StdDevUncertainty(-np.ones((9, 9))))),
     ValueError, ['uncertainty of the WISE_3.4', '81 negative', 'never negative'], None),
    # -- issue 22: meaningless or contradictory input ---------------------------------
    ('bands= contradicts the FITS BAND keyword',
     lambda t: read_images([_file(t, 'w1.fits', _hdu(BUNIT='MJy/sr'))], bands=['W3']),
     AstroDustMLWarning, ['WISE_12', 'contradicts the FITS header', "BAND = 1", 'WISE_3.4'],
     None),
    ('complex data', lambda t: _estimate(_images(**{'WISE_4.6': lambda d: d * (1 + 1j)})),
     TypeError, ['WISE_4.6', 'complex', 'data.real'], None),
    ('boolean data', lambda t: _estimate(_images(**{'WISE_4.6': lambda d: d > 0})),
     TypeError, ['WISE_4.6', 'boolean', 'mask'], None),
    ('mistyped galaxy key', lambda t: _estimate(galaxy=_galaxy(axis_raito=0.5)), ValueError,
     ["'axis_raito'", "did you mean 'axis_ratio'"], None),
    ('distance 1e-10 pc', lambda t: _estimate(distance=1e-10 * u.pc), ValueError,
     ['distance', 'not the distance of a galaxy', 'Magellanic'], None),
    ('distance 1e5 Gpc', lambda t: _estimate(distance=1e5 * u.Gpc), ValueError,
     ['distance', 'not the distance of a galaxy'], None),
    ('all bands scaled by 1e6: intensities out of the training domain',
     lambda t: _estimate(_scaled_all(1e6)), OutOfDomainWarning,
     ['WISE_3.4', 'surface brightness', 'far outside', 'units'], None),
    ('all bands scaled by 1e-6: intensities out of the training domain',
     lambda t: _estimate(_scaled_all(1e-6)), OutOfDomainWarning,
     ['WISE_3.4', 'surface brightness', 'far outside', 'units'], None),
    # -- issue 22: errors that say what is wrong ---------------------------------------
    ('NaN CRVAL', lambda t: _estimate(_bad_wcs('crval', lambda v: [np.nan, v[1]])),
     ValueError, ['WISE_4.6', 'non-finite CRVAL'], None),
    ('NaN CDELT', lambda t: _estimate(_bad_wcs('cdelt', lambda v: [np.nan, v[1]])),
     ValueError, ['WISE_4.6', 'non-finite CDELT'], None),
    ('zero CDELT', lambda t: _estimate(_bad_wcs('cdelt', lambda v: [0.0, v[1]])),
     ValueError, ['WISE_4.6', 'singular pixel matrix'], None),
    ('1 x N strip image (was an SVD error)',
     lambda t: prepare_image(CCDData(np.ones((1, 50)), unit='MJy/sr',
                                     wcs=_mock().images['WISE_3.4'].wcs, meta={'band': 'W1'})),
     ValueError, ['WISE_3.4', '1 x 50', 'strip'], None),
    ("galaxy centre '150 2' (no units)",
     lambda t: _estimate(galaxy=_galaxy(center='150 2')), ValueError,
     ['galaxy centre', "'150 2'", "'150d 2d'", 'degrees'], None),
    ("galaxy centre '150d 2d' is read",
     lambda t: _estimate(galaxy=_galaxy(center='150d 2d')), None, [], _same_maps_as()),
    ('galaxy centre (150, 2) in degrees is read',
     lambda t: _estimate(galaxy=_galaxy(center=(150, 2))), None, [], _same_maps_as()),
    ('galaxy centre as two angle Quantities is read',
     lambda t: _estimate(galaxy=_galaxy(center=(150 * u.deg, 2 * u.deg))), None, [],
     _same_maps_as()),
    ('ebv= an array', lambda t: _estimate(ebv=np.array([0.1, 0.2])), ValueError,
     ['E(B-V)', 'single number', 'shape (2,)', 'not supported'], None),
]


def _check_result(result, check):
    if check is None:
        return
    ok = check(result)
    assert ok is None or bool(ok)


@pytest.mark.parametrize('call, expected, words, extra',
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_bad_input(tmp_path, call, expected, words, extra):
    ignore = extra if isinstance(extra, tuple) and all(
        isinstance(e, type) for e in extra) else ()
    check = extra if callable(extra) else None
    if isinstance(extra, tuple) and not ignore:
        ignore, check = extra[:-1], extra[-1]
    with warnings.catch_warnings():
        for category in ignore:
            warnings.simplefilter('ignore', category)
        if expected is None:
            _check_result(call(tmp_path), check)
        elif issubclass(expected, Warning):
            with pytest.warns(expected) as record:
                call(tmp_path)
            messages = [str(w.message) for w in record if issubclass(w.category, expected)]
            assert any(all(word in m for word in words) for m in messages), messages
        else:
            with pytest.raises(expected) as info:
                call(tmp_path)
            for word in words:
                assert word in str(info.value), str(info.value)


# -- the command line, in-process ------------------------------------------------


@functools.lru_cache(maxsize=None)
def _mock_files(folder):
    paths = []
    for band, image in _mock().images.items():
        path = f'{folder}/{band}.fits'
        fits.PrimaryHDU(image.data, header=image.meta['header']).writeto(path, overwrite=True)
        paths.append(path)
    return tuple(paths)


def _galaxy_options():
    c = _mock().galaxy['center']
    return ['--center', f'{c.ra.deg}', f'{c.dec.deg}', '--semimajor', '45arcsec']


CLI_CASES = [
    ('not a FITS file', lambda t, f: [t / 'notes.fits', '-o', t / 'm.fits'], 1,
     ['notes.fits', 'not a readable FITS file']),
    ('missing file', lambda t, f: [t / 'nope.fits', '-o', t / 'm.fits'], 1,
     ['No such file', 'nope.fits']),
    ('no celestial WCS', lambda t, f: [t / 'nowcs.fits', '-o', t / 'm.fits'], 1,
     ['nowcs.fits', 'no celestial WCS in its header']),
    ('band not in the header', lambda t, f: [t / 'noband.fits', '-o', t / 'm.fits'], 1,
     ['noband.fits', 'Cannot recognise the band', '--band']),
    ('--semimajor without a unit',
     lambda t, f: [*f, '--center', '150', '2', '--semimajor', '30', '-o', t / 'm.fits'], 2,
     ['--semimajor', 'not an angle', '18arcsec']),
    ('--position-angle without a unit',
     lambda t, f: [*f, *_galaxy_options(), '--position-angle', '30', '-o', t / 'm.fits'], 2,
     ['--position-angle', 'not an angle', '30deg']),
    ('--distance=-10Mpc', lambda t, f: [*f, '--distance=-10Mpc', '-o', t / 'm.fits'], 2,
     ['--distance', 'finite positive length']),
    ('--distance without a unit', lambda t, f: [*f, '--distance', '10', '-o', t / 'm.fits'], 2,
     ['--distance', 'not a length', '9.0Mpc']),
    ('--distance nan', lambda t, f: [*f, '--distance', 'nanMpc', '-o', t / 'm.fits'], 2,
     ['--distance', 'finite positive']),
    ('--pixel-scale in pc without --distance',
     lambda t, f: [*f, '--pixel-scale', '400pc', '-o', t / 'm.fits'], 2,
     ['--pixel-scale', 'give --distance']),
    ('--pixel-scale negative', lambda t, f: [*f, '--pixel-scale=-4arcsec', '-o', t / 'm.fits'],
     2, ['--pixel-scale', 'finite positive']),
    ('output folder missing',
     lambda t, f: [*f, *_galaxy_options(), '-o', t / 'nodir' / 'm.fits'], 2,
     ['nodir', 'does not exist']),
    ('--center unreadable', lambda t, f: [*f, '--center', 'east', 'north', '--semimajor',
                                          '45arcsec', '-o', t / 'm.fits'], 2,
     ['--center', 'sexagesimal']),
    ('--units without =', lambda t, f: [*f, '--units', 'W1', '-o', t / 'm.fits'], 2,
     ['--units', 'BAND=UNIT']),
    ('--axis-ratio 0', lambda t, f: [*f, *_galaxy_options(), '--axis-ratio', '0', '-o',
                                     t / 'm.fits'], 2, ['--axis-ratio', 'positive']),
    ('southern sexagesimal --center is a value, not an option',
     lambda t, f: [*f, '--center', '10h00m00s', '-2d00m00s', '--semimajor', '45arcsec',
                   '-o', t / 'm.fits'], 1, ['galaxy is not on the', '-02d00m00']),
    ('sexagesimal --center works',
     lambda t, f: [*f, '--center', '10h00m00s', '+2d00m00s', '--semimajor', '45arcsec',
                   '--distance', '10Mpc', '--no-progress', '-o', t / 'm.fits'], 0, ['wrote']),
]


@pytest.mark.parametrize('argv, status, words',
                         [pytest.param(*case[1:], id=case[0]) for case in CLI_CASES])
def test_bad_command_line(tmp_path, capsys, argv, status, words):
    (tmp_path / 'notes.fits').write_text('hello')
    fits.PrimaryHDU(np.ones((9, 9)), fits.Header({'TELESCOP': 'WISE', 'BAND': 1})).writeto(
        tmp_path / 'nowcs.fits')
    fits.PrimaryHDU(np.ones((9, 9)), _mock().images['WISE_3.4'].wcs.to_header()).writeto(
        tmp_path / 'noband.fits')
    files = list(_mock_files(str(tmp_path)))
    code = cli.main(['estimate', *map(str, argv(tmp_path, files))])
    out = capsys.readouterr()
    text = out.err if status else out.out
    assert code == status, out.err
    for word in words:
        assert word in text, text
    if status:
        assert 'Traceback' not in out.err


def test_table_is_large_enough():
    assert len(CASES) + len(CLI_CASES) >= 60


def test_partial_coverage_is_per_pixel():
    """A band that covers half the galaxy: missing (and flagged) there, nothing cropped."""
    from astro_dustml.maps import MAP_FLAGS

    images = _images()
    half = images['2MASS_J'][:, :60]  # the eastern half of the 120-pixel J image
    images['2MASS_J'] = half
    maps = _estimate(images)
    clean = _clean()
    assert maps['Td'].shape == clean['Td'].shape  # the grid is not cut to the J footprint
    flags = maps.meta['flags']
    galaxy = (flags & MAP_FLAGS['OUTSIDE']) == 0
    assert galaxy.sum() == ((clean.meta['flags'] & MAP_FLAGS['OUTSIDE']) == 0).sum()
    no_j = galaxy & ((flags & MAP_FLAGS['MISSING_INPUT']) != 0)
    # J is missing over a large part of the galaxy, yet those pixels are predicted
    # from WISE 3.4, 4.6 and 12 (three bands: enough for the model)
    assert 0.2 < no_j.sum() / galaxy.sum() < 0.8
    predicted = no_j & ~maps['Td'].mask
    assert predicted.sum() > 0.5 * no_j.sum()
    assert np.all(np.isfinite(maps['Td'].uncertainty.array[predicted]))
    # Where J is present the maps are those of the full run
    both = galaxy & ~no_j & ~maps['Td'].mask & ~clean['Td'].mask
    assert both.sum() > 10
    np.testing.assert_allclose(maps['Td'].data[both], clean['Td'].data[both], atol=0.5)
    assert maps.meta['inputs'] == list(BANDS)


# -- issue 22: masks honoured, mirrored images, inputs unchanged, memory planned -----


@pytest.mark.parametrize('form', ['CCDData mask', 'numpy.ma mask'])
def test_user_mask_is_honoured(form):
    """Garbage under a user mask on WISE 3.4 µm changes nothing but sets MASKED_INPUT."""
    from astro_dustml.maps import MAP_FLAGS

    image = _mock().images['WISE_3.4']
    mask = _centre_mask(image.shape, half=10)
    garbage = np.where(mask, 1e3 * np.nanmax(image.data), image.data)
    nan = np.where(mask, np.nan, image.data)
    if form == 'CCDData mask':
        masked = CCDData(garbage, unit=image.unit, wcs=image.wcs, mask=mask,
                         meta={'band': 'WISE_3.4'})
    else:
        masked = (np.ma.masked_array(garbage, mask), image.wcs)
    images = dict(_images(), **{'WISE_3.4': masked})
    reference = dict(_images(), **{'WISE_3.4': CCDData(nan, unit=image.unit, wcs=image.wcs,
                                                       meta={'band': 'WISE_3.4'})})
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', OutOfDomainWarning)
        maps = _estimate(images, units={'WISE_3.4': image.unit})
        expected = _estimate(reference)
    flags = maps.meta['flags']
    assert ((flags & MAP_FLAGS['MASKED_INPUT']) != 0).sum() >= 4
    np.testing.assert_array_equal(flags, expected.meta['flags'])
    np.testing.assert_allclose(maps['Td'].data, expected['Td'].data, equal_nan=True)


def _mirrored(image):
    """``image`` with its x axis flipped in data and WCS alike (the same sky)."""
    wcs = image.wcs.deepcopy()
    wcs.wcs.cdelt[0] *= -1
    wcs.wcs.crpix[0] = image.shape[1] + 1 - wcs.wcs.crpix[0]
    return CCDData(image.data[:, ::-1].copy(), unit=image.unit, wcs=wcs,
                   meta={'band': image.meta['band']})


def test_mirrored_images_give_the_same_maps():
    """Was median Td 21.82 vs 21.66 K on the full mock
    (reproject_adaptive is not mirror-symmetric)."""
    mirrored = _estimate({b: _mirrored(im) for b, im in _mock().images.items()})
    clean = _clean()
    np.testing.assert_array_equal(mirrored.meta['flags'], clean.meta['flags'])
    for name in ('sLd', 'sMd', 'Td'):
        np.testing.assert_allclose(mirrored[name].data, clean[name].data, rtol=1e-9,
                                   equal_nan=True)


def _snapshot(images):
    return {b: (np.array(im.data, copy=True), im.wcs.to_header_string(),
                None if im.mask is None else im.mask.copy())
            for b, im in images.items()}


@pytest.mark.parametrize('row', ['NaN CRVAL', 'complex data', 'mistyped galaxy key',
                                 'all bands scaled by 1e6: intensities out of the training '
                                 'domain', 'one band with enormous pixels: refused before '
                                 'allocating'])
def test_inputs_unchanged(row, tmp_path):
    """The images given to a failing (or warning) call are not modified."""
    builders = {
        'NaN CRVAL': lambda: _bad_wcs('crval', lambda v: [np.nan, v[1]]),
        'complex data': lambda: _images(**{'WISE_4.6': lambda d: d * (1 + 1j)}),
        'mistyped galaxy key': _images,
        'all bands scaled by 1e6: intensities out of the training domain':
            lambda: _scaled_all(1e6),
        'one band with enormous pixels: refused before allocating':
            lambda: _scaled_wcs('WISE_12', 3000)}
    images = builders[row]()
    galaxy = _galaxy(axis_raito=0.5) if row == 'mistyped galaxy key' else _galaxy()
    before = _snapshot(images)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', AstroDustMLWarning)
        try:
            _estimate(images, galaxy=galaxy)
        except (ValueError, TypeError):
            pass
    after = _snapshot(images)
    for band in before:
        np.testing.assert_array_equal(after[band][0], before[band][0])
        assert after[band][1] == before[band][1]


@pytest.mark.parametrize('call', [
    lambda: _estimate(_scaled_wcs('WISE_12', 3000)),
    lambda: _estimate(_scaled_wcs(None, 1 / 3000), galaxy=None),
    lambda: _estimate(pixel_scale=0.01 * u.arcsec),
    lambda: _parse_image((np.broadcast_to(1.0, (60000, 60000)),
                          _mock().images['WISE_3.4'].wcs), band='W1', unit='MJy/sr'),
], ids=['enormous pixels', 'tiny pixels', 'tiny pixel_scale', 'broadcast view'])
def test_refused_before_allocating(call):
    """The planned-size checks refuse before anything near the limit is allocated."""
    import tracemalloc
    from astro_dustml import conf

    _mock(), _images()  # the mock itself is not part of the call
    limit_gib = 0.5
    with conf.set_temp('memory_limit', limit_gib):
        tracemalloc.start()
        try:
            with pytest.raises(MemoryLimitError, match='GiB'):
                call()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 0.1 * limit_gib * 2 ** 30, peak


def test_memory_limit_is_read_at_call_time():
    """A call that fits under the default limit is refused under a small one."""
    from astro_dustml import conf

    with conf.set_temp('memory_limit', 1e-4):
        with pytest.raises(MemoryLimitError, match='conf.memory_limit'):
            _estimate()


def test_command_line_refuses_a_huge_grid(tmp_path, capsys):
    """The CLI says what is wrong (no traceback) instead of a MemoryError."""
    files = []
    for band, image in _scaled_wcs('WISE_12', 3000).items():
        header = _mock().images[band].meta['header'].copy()
        header.update(image.wcs.to_header())
        path = tmp_path / f'{band}.fits'
        fits.PrimaryHDU(image.data, header=header).writeto(path)
        files.append(str(path))
    code = cli.main(['estimate', *files, *_galaxy_options(), '--distance', '10Mpc',
                     '--no-progress', '-o', str(tmp_path / 'm.fits')])
    err = capsys.readouterr().err
    assert code != 0
    for word in ('WISE_12', 'GiB', 'memory_limit'):
        assert word in err, err
    assert 'Traceback' not in err
