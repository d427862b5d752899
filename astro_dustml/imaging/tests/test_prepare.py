"""Tests of image preparation against analytic truth and the DustPedia catalogue."""

import csv

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.nddata import CCDData
from ndcube import NDCollection

from astro_dustml.bands import get_band
from astro_dustml.exceptions import AstroDustMLWarning
from astro_dustml.imaging import galaxy_region, prepare_image, prepare_images
from astro_dustml.tests.helpers import tan_wcs

CENTER = SkyCoord(150, 2, unit='deg')


def _wcs(scale=2.0, n=120):
    return tan_wcs((n, n), scale)


def _galaxy_image(unit='Jy/pix', n=120, scale=2.0, total=1.0, rms=1e-4, seed=0):
    """Gaussian galaxy of known total flux on a tilted sky plane plus white noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n]
    c = (n - 1) / 2
    sigma = 5.0
    galaxy = total * np.exp(-0.5 * ((x - c) ** 2 + (y - c) ** 2) / sigma ** 2) / (
        2 * np.pi * sigma ** 2)
    sky = 0.01 + 2e-5 * (x - c) - 1e-5 * (y - c)
    data = galaxy + sky + rng.normal(0, rms, (n, n))
    return CCDData(data, unit=unit, wcs=_wcs(scale, n), meta={'band': 'WISE_3.4'})


def test_sky_plane_units_and_flux():
    image = _galaxy_image(rms=2e-5)
    region = galaxy_region(CENTER, semimajor=40 * u.arcsec)
    before = image.data.copy()
    out = prepare_image(image, ebv=0, galaxy=region)
    assert np.array_equal(image.data, before)          # input not modified
    assert out.unit == u.MJy / u.sr
    pixel_sr = ((2 * u.arcsec) ** 2).to_value(u.sr)
    inside = region.to_pixel(out.wcs).to_mask(mode='center').to_image(out.shape).astype(bool)
    flux = (out.data[inside].sum() * u.MJy / u.sr * pixel_sr * u.sr).to_value(u.Jy)
    assert flux == pytest.approx(1.0, rel=0.01)        # the injected 1 Jy
    # background RMS: the injected white noise, in MJy/sr
    assert out.meta['background_rms'].to_value(u.MJy / u.sr) == pytest.approx(
        2e-5 * 1e-6 / pixel_sr, rel=0.1)
    assert out.meta['band'] == 'WISE_3.4'
    assert out.meta['psf_fwhm'] == get_band('WISE_3.4').fwhm
    assert out.meta['galaxy_region'] is region


def test_sky_without_aperture_uses_source_masking():
    out = prepare_image(_galaxy_image(), sky='plane')
    pixel_sr = ((2 * u.arcsec) ** 2).to_value(u.sr)
    assert out.data[40:80, 40:80].sum() * pixel_sr * 1e6 == pytest.approx(1.0, rel=0.02)


def test_extinction_and_uncertainty():
    band = get_band('GALEX_NUV')
    y, x = np.mgrid[0:120, 0:120]
    galaxy = np.exp(-0.5 * ((x - 59.5) ** 2 + (y - 59.5) ** 2) / 25)   # no sky, no noise
    image = CCDData(galaxy, unit='MJy/sr', wcs=_wcs(), meta={'band': band.name})
    region = galaxy_region(CENTER, semimajor=40 * u.arcsec)
    out = prepare_image(image, sky=None, ebv=0.1, ebv_err=0.01, galaxy=region)
    factor = 10 ** (0.4 * band.extinction * 0.1)
    np.testing.assert_allclose(out.data, image.data * factor)
    frac = np.sqrt(band.calibration_error ** 2 + (0.4 * np.log(10) * band.extinction * 0.01) ** 2)
    # noise-free image: the background RMS is ~0, so sigma = fractional terms
    peak = np.unravel_index(np.argmax(out.data), out.shape)
    assert out.uncertainty.array[peak] == pytest.approx(frac * out.data[peak], rel=1e-3)
    assert out.meta['extinction_factor'] == pytest.approx(factor)


def test_unit_resolution_order():
    image = _galaxy_image()
    image = CCDData(image.data, unit=u.dimensionless_unscaled, wcs=image.wcs,
                    meta={'band': 'WISE_3.4'})
    # a dimensionless map is not a valid surface brightness or flux
    with pytest.raises(u.UnitConversionError, match='unit='):
        prepare_image(image)
    # no unit at all: the band's native unit, with a warning
    with pytest.warns(AstroDustMLWarning, match='native'):
        native = prepare_image((image.data, image.wcs), 'WISE_3.4')
    assert native.meta['input_unit'] == get_band('WISE_3.4').native_unit
    # an explicit unit wins over the image's own
    explicit = prepare_image(_galaxy_image(unit='MJy/sr'), unit='Jy/pix')
    assert explicit.meta['input_unit'] == u.Jy / u.pix


def test_nan_pixels_masked():
    image = _galaxy_image()
    image.data[:5, :] = np.nan
    out = prepare_image(image)
    assert out.mask[:5].all() and not out.mask[5:].any()


def test_bad_input():
    data = np.ones((10, 10))
    with pytest.raises(ValueError, match='WCS'):
        prepare_image(CCDData(data, unit='MJy/sr'), 'WISE_3.4')
    with pytest.raises(ValueError, match='Unknown band'):
        prepare_image((data, _wcs()), 'WISE_99', unit='MJy/sr')
    with pytest.raises(ValueError, match='sky'):
        prepare_image((data, _wcs()), 'WISE_3.4', unit='MJy/sr', sky='poly5')


def test_prepare_images_collection():
    coll = NDCollection([('WISE_3.4', _galaxy_image()), ('WISE_4.6', _galaxy_image())])
    coll['WISE_4.6'].meta['band'] = 'WISE_4.6'
    out = prepare_images(coll, galaxy={'center': CENTER, 'semimajor': 40 * u.arcsec},
                         units={'W2': 'Jy/pix'})
    assert set(out.keys()) == {'WISE_3.4', 'WISE_4.6'}
    assert all(m.unit == u.MJy / u.sr for m in out.values())
    with pytest.raises(ValueError, match='not in the collection'):
        prepare_images(coll, units={'SPIRE_250': 'Jy/pix'})


def test_galaxy_region_conventions():
    a = galaxy_region(CENTER, d25=2 * u.arcmin, axis_ratio=0.5, position_angle=30 * u.deg)
    b = galaxy_region(CENTER, semimajor=1 * u.arcmin, axis_ratio=2.0,
                      position_angle=-60 * u.deg, convention='dustpedia')
    assert u.isclose(a.width, 2 * u.arcmin) and u.isclose(a.height, 1 * u.arcmin)
    assert u.isclose(a.angle, b.angle) and u.isclose(a.height, b.height)
    # PA 0 (east of north): major axis along the declination axis
    pix = galaxy_region(CENTER, semimajor=20 * u.arcsec, axis_ratio=0.2).to_pixel(_wcs())
    mask = pix.to_mask(mode='center').to_image((120, 120)).astype(bool)
    ys, xs = np.nonzero(mask)
    assert np.ptp(ys) > 3 * np.ptp(xs)
    with pytest.raises(ValueError, match='exactly one'):
        galaxy_region(CENTER)


# --- real data: NGC 5584 against the DustPedia catalogue ---------------------

def _catalogue(shared_data, name='NGC5584'):
    path = shared_data / 'dustpedia' / 'DustPedia_Aperture_Photometry_2.2.csv'
    with open(path) as f:
        return next(row for row in csv.DictReader(f) if row['name'] == name)


@pytest.mark.parametrize('band, unit, ebv, tolerance', [
    # the WISE map has no unit keyword; its values are Jy/pix (as DN, the
    # registry's native unit, the total would be 5e5 times too small)
    ('WISE_12', u.Jy / u.pix, None, 0.05),
    ('PACS_100', None, None, 0.05),
    ('SPIRE_250', None, None, 0.05),
    ('GALEX_NUV', None, 0.035, 0.10),
])
def test_ngc5584_against_dustpedia(shared_data, band, unit, ebv, tolerance):
    row = _catalogue(shared_data)
    region = galaxy_region(SkyCoord(float(row['ra']), float(row['dec']), unit='deg'),
                           semimajor=float(row['semimaj_arcsec']) * u.arcsec,
                           axis_ratio=float(row['axial_ratio']),
                           position_angle=float(row['pos_angle']) * u.deg,
                           convention='dustpedia')
    path = shared_data / 'images' / f'NGC5584_{band}.fits.gz'
    image = prepare_image(path, band, unit=unit, ebv=ebv, galaxy=region)
    inside = region.to_pixel(image.wcs).to_mask(mode='center').to_image(image.shape)
    pixel_sr = (np.abs(np.linalg.det(image.wcs.pixel_scale_matrix)) * u.deg ** 2).to_value(u.sr)
    flux = np.nansum(image.data[inside.astype(bool)]) * pixel_sr * 1e6
    assert flux == pytest.approx(float(row[band]), rel=tolerance)
    assert not image.mask[inside.astype(bool)].any()
