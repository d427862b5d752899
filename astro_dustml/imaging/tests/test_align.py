"""Tests of the common PSF and pixel grid."""

import csv

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.nddata import CCDData, StdDevUncertainty

from astro_dustml.imaging import align_images, galaxy_region, prepare_images
from astro_dustml.tests.helpers import point_source, tan_wcs


def _wcs(scale, n, crval=(150, 2)):
    return tan_wcs((n, n), scale, crval)


def _point_source(band, scale, n, fwhm, total=100.0, crval=(150, 2)):
    return point_source(band, scale, n, fwhm, total, crval)


def _flux(image, scale):
    """Total flux in MJy/sr * arcsec^2."""
    return np.nansum(image.data) * scale ** 2


def test_flux_conserved_through_match_and_reprojection():
    wise = _point_source('WISE_12', 1.375, 241, 6.6)
    spire = _point_source('SPIRE_250', 6.0, 61, 18.2)
    before = wise.data.copy()
    aligned = align_images({'WISE_12': wise, 'SPIRE_250': spire})
    assert np.array_equal(wise.data, before)
    assert wise.meta['psf_fwhm'] == 6.6 * u.arcsec
    scale = aligned.meta['pixel_scale'].to_value(u.arcsec)
    assert scale == pytest.approx(18.2)
    assert aligned.meta['psf_fwhm'] == 18.2 * u.arcsec
    for band, image, native in [('WISE_12', wise, 1.375), ('SPIRE_250', spire, 6.0)]:
        assert _flux(aligned[band], scale) == pytest.approx(_flux(image, native), rel=0.01)
        assert aligned[band].meta['psf_fwhm'] == 18.2 * u.arcsec


def test_common_grid_and_collection_meta():
    wise = _point_source('WISE_3.4', 1.375, 201, 5.79)
    nuv = _point_source('GALEX_NUV', 3.2, 91, 5.05)
    aligned = align_images({'WISE_3.4': wise, 'GALEX_NUV': nuv}, pixel_scale=4 * u.arcsec)
    assert aligned.aligned_axes is not None
    assert aligned.meta['shape'] == aligned['WISE_3.4'].shape == aligned['GALEX_NUV'].shape
    assert aligned['WISE_3.4'].wcs.wcs.compare(aligned['GALEX_NUV'].wcs.wcs)
    assert aligned.meta['wcs'].wcs.compare(aligned['WISE_3.4'].wcs.wcs)
    for member in aligned.values():
        assert member.unit == u.MJy / u.sr
        assert isinstance(member.uncertainty, StdDevUncertainty)
        assert member.mask.dtype == bool
        assert np.all(member.uncertainty.array[~member.mask] > 0)
    # the point source lands on the same sky position in both bands
    peaks = [np.unravel_index(np.nanargmax(m.data), m.shape) for m in aligned.values()]
    assert peaks[0] == peaks[1]


def test_union_footprint_gaps_masked():
    a = _point_source('WISE_3.4', 2.0, 60, 5.79)
    b = _point_source('WISE_4.6', 2.0, 60, 6.37, crval=(150.02, 2))   # offset 72"
    aligned = align_images({'WISE_3.4': a, 'WISE_4.6': b}, footprint='union',
                           pixel_scale=4 * u.arcsec)
    ma, mb = aligned['WISE_3.4'].mask, aligned['WISE_4.6'].mask
    assert ma.any() and mb.any() and (~ma & ~mb).any()
    assert np.all(np.isnan(aligned['WISE_3.4'].data[ma & np.isnan(aligned['WISE_3.4'].data)]))
    small = align_images({'WISE_3.4': a, 'WISE_4.6': b}, pixel_scale=4 * u.arcsec)
    assert small.meta['shape'][1] < aligned.meta['shape'][1]


def test_physical_pixel_scale():
    wise = _point_source('WISE_3.4', 1.375, 201, 5.79)
    aligned = align_images({'WISE_3.4': wise}, pixel_scale=500 * u.pc, distance=10 * u.Mpc)
    expected = (500 * u.pc / (10 * u.Mpc)).to(u.arcsec, u.dimensionless_angles())
    assert u.isclose(aligned.meta['pixel_scale'], expected, rtol=1e-3)
    with pytest.raises(ValueError, match='distance'):
        align_images({'WISE_3.4': wise}, pixel_scale=500 * u.pc)
    res = align_images({'WISE_3.4': wise}, resolution=1 * u.kpc, distance=20 * u.Mpc)
    assert u.isclose(res.meta['psf_fwhm'], (1 * u.kpc / (20 * u.Mpc)).to(
        u.arcsec, u.dimensionless_angles()))


def test_bad_members():
    wise = _point_source('WISE_3.4', 1.375, 101, 5.79)
    spire = _point_source('SPIRE_250', 6.0, 61, 18.2)
    with pytest.raises(ValueError, match='sharper'):
        align_images({'WISE_3.4': wise, 'SPIRE_250': spire}, target='WISE_3.4')
    far = _point_source('SPIRE_250', 6.0, 61, 18.2, crval=(200, 30))
    with pytest.raises(ValueError, match='do not overlap'):
        align_images({'WISE_3.4': wise, 'SPIRE_250': far})
    raw = CCDData(wise.data, unit='Jy/pix', wcs=wise.wcs, meta={'band': 'WISE_4.6'})
    with pytest.raises(ValueError, match='prepare_images'):
        align_images({'WISE_3.4': wise, 'WISE_4.6': raw})


def test_ngc5584_aligned_photometry(shared_data):
    """Prepared and aligned to SPIRE 250 resolution, the maps keep the catalogue fluxes."""
    with open(shared_data / 'dustpedia' / 'DustPedia_Aperture_Photometry_2.2.csv') as f:
        row = next(r for r in csv.DictReader(f) if r['name'] == 'NGC5584')
    region = galaxy_region(SkyCoord(float(row['ra']), float(row['dec']), unit='deg'),
                           semimajor=float(row['semimaj_arcsec']) * u.arcsec,
                           axis_ratio=float(row['axial_ratio']),
                           position_angle=float(row['pos_angle']) * u.deg,
                           convention='dustpedia')
    bands = ['WISE_12', 'SPIRE_250']
    images = {b: str(shared_data / 'images' / f'NGC5584_{b}.fits.gz') for b in bands}
    prepared = prepare_images(images, galaxy=region, units={'WISE_12': 'Jy/pix'})
    aligned = align_images(prepared)
    assert aligned.meta['psf_fwhm'] == 18.2 * u.arcsec
    pixel_sr = (aligned.meta['pixel_scale'] ** 2).to_value(u.sr)
    inside = region.to_pixel(aligned.meta['wcs']).to_mask(mode='center').to_image(
        aligned.meta['shape']).astype(bool)
    for band in bands:
        flux = np.nansum(aligned[band].data[inside]) * pixel_sr * 1e6
        assert flux == pytest.approx(float(row[band]), rel=0.05)


def _three_bands():
    wise = _point_source('WISE_3.4', 1.375, 151, 5.79)
    nuv = _point_source('GALEX_NUV', 1.5, 141, 5.05)
    spire = _point_source('WISE_12', 1.375, 151, 6.6)
    wise.mask = np.zeros(wise.shape, bool)
    wise.mask[60:64, 70:80] = True     # a masked star
    nuv.data[3, 3] = np.nan
    return {'WISE_3.4': wise, 'GALEX_NUV': nuv, 'WISE_12': spire}


def test_parallel_equals_serial():
    images = _three_bands()
    before = {b: (im.data.copy(), dict(im.meta)) for b, im in images.items()}
    serial = align_images(images, pixel_scale=3 * u.arcsec)
    threaded = align_images(images, pixel_scale=3 * u.arcsec, parallel=2)
    for band in images:
        a, b = serial[band], threaded[band]
        assert np.array_equal(a.data, b.data, equal_nan=True)
        assert np.array_equal(a.uncertainty.array, b.uncertainty.array, equal_nan=True)
        assert np.array_equal(a.mask, b.mask)
        # inputs untouched (data and meta)
        assert np.array_equal(images[band].data, before[band][0], equal_nan=True)
        assert images[band].meta == before[band][1]


def test_one_stacked_reprojection_equals_three():
    """Data, sigma and good-pixel map reprojected together == one call each."""
    from reproject import reproject_adaptive

    from astro_dustml.imaging.align import _reproject
    image = _three_bands()['WISE_3.4']
    out_wcs, shape = _wcs(4.0, 45), (45, 45)
    member = _reproject(image, out_wcs, shape, 'hann', 0.5)
    kwargs = dict(shape_out=shape, kernel='hann', conserve_flux=False,
                  boundary_mode='constant', boundary_fill_value=0.0)
    bad = image.mask | ~np.isfinite(image.data)
    good, footprint = reproject_adaptive((1.0 - bad, image.wcs), out_wcs, **kwargs)
    num, _ = reproject_adaptive((np.where(bad, 0, image.data), image.wcs), out_wcs, **kwargs)
    err, _ = reproject_adaptive((np.where(bad, 0, image.uncertainty.array), image.wcs),
                                out_wcs, **kwargs)
    weight = np.where(footprint > 0, good, 0.0)
    inside = weight > 0
    assert np.array_equal(member.data[inside], num[inside] / weight[inside])
    assert np.array_equal(member.uncertainty.array[inside], err[inside] / weight[inside])
    assert np.array_equal(member.mask, ~(weight > 0.5) | ~np.isfinite(member.data))
