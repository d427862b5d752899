import dataclasses
import re

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from astro_dustml.bands import BANDS, FIR_BANDS, INPUT_BANDS, REFERENCE_BAND, band_table, get_band

# Table 1 of Dobbels & Baes (2021): pivot wavelengths in micron
PAPER_TABLE_1 = {
    'GALEX_FUV': 0.153, 'GALEX_NUV': 0.229, 'SDSS_u': 0.355, 'SDSS_g': 0.480,
    'SDSS_r': 0.624, 'SDSS_i': 0.766, 'SDSS_z': 0.908, '2MASS_J': 1.24,
    '2MASS_H': 1.65, '2MASS_Ks': 2.16, 'WISE_3.4': 3.37, 'WISE_4.6': 4.62,
    'WISE_12': 12.1, 'WISE_22': 22.2, 'Spitzer_3.6': 3.56, 'Spitzer_4.5': 4.50,
    'Spitzer_5.8': 5.75, 'Spitzer_8.0': 7.92}


def test_inputs_are_table_1_in_order():
    assert INPUT_BANDS == tuple(PAPER_TABLE_1)
    for name, pivot in PAPER_TABLE_1.items():
        assert get_band(name).wavelength == pivot * u.micron


def test_fir_bands_and_reference():
    assert FIR_BANDS == ('Spitzer_24', 'Spitzer_70', 'Spitzer_160', 'PACS_70',
                         'PACS_100', 'PACS_160', 'SPIRE_250', 'SPIRE_350',
                         'SPIRE_500')
    assert REFERENCE_BAND in INPUT_BANDS
    # Far-infrared bands sit at longer wavelengths than every input
    longest_input = max(get_band(b).wavelength for b in INPUT_BANDS)
    assert all(get_band(b).wavelength > longest_input for b in FIR_BANDS)


def test_names_match_dustpedia_columns(shared_data):
    header = (shared_data / 'dustpedia' / 'DustPedia_Aperture_Photometry_2.2.csv'
              ).read_text().splitlines()[0].split(',')
    bands = [c for c in header if f'{c}_err' in header]
    assert set(bands) == set(BANDS)


def test_cigale_filters_match_real_pcigale_ini(shared_data):
    text = (shared_data / 'dustpedia' / 'cigale_full' / 'pcigale.ini').read_text()
    line = re.search(r'^bands = (.*)$', text, re.M).group(1)
    filters = {f.strip() for f in line.split(',') if not f.strip().endswith('_err')}
    for band in BANDS.values():
        assert band.cigale_filter in filters, band.name


def test_values_are_sane():
    for band in BANDS.values():
        assert band.fwhm.unit.physical_type == 'angle'
        assert 0 < band.calibration_error < 0.2
        assert band.extinction >= 0
        assert band.pixel_scale < band.fwhm * 3
    # Extinction falls with wavelength across the optical/NIR (SF11)
    ext = [get_band(b).extinction for b in ('SDSS_u', 'SDSS_g', 'SDSS_r', 'SDSS_i',
                                            'SDSS_z', '2MASS_J', '2MASS_H', '2MASS_Ks')]
    assert ext == sorted(ext, reverse=True)


def test_native_units_follow_zero_points():
    # WISE W3: magnitude zero point 18.0 for 1 DN and 31.674 Jy for magnitude 0
    w3 = (1 * get_band('WISE_12').native_unit).to_value(u.Jy / u.pix)
    assert w3 == pytest.approx(31.674 * 10 ** (-0.4 * 18.0), rel=1e-10)
    # SDSS: a nanomaggy is 3.631 microjansky
    assert (1 * get_band('SDSS_r').native_unit).to_value(u.uJy / u.pix) == pytest.approx(3.631)
    # GALEX NUV: m_AB = -2.5 log10(cps) + 20.08
    nuv = (1 * get_band('GALEX_NUV').native_unit).to_value(u.Jy / u.pix)
    assert -2.5 * np.log10(nuv / 3631) == pytest.approx(20.08)
    assert get_band('Spitzer_8.0').native_unit == u.MJy / u.sr


@pytest.mark.parametrize('alias, name', [('W1', 'WISE_3.4'), ('wise_3.4', 'WISE_3.4'),
                                         ('IRAC4', 'Spitzer_8.0'), ('PSW_HIPE', 'SPIRE_250'),
                                         ('u_prime', 'SDSS_u'), ('NUV', 'GALEX_NUV')])
def test_aliases(alias, name):
    assert get_band(alias).name == name


def test_unknown_band_lists_close_matches():
    with pytest.raises(ValueError, match="Unknown band 'WISE3.4'.*'WISE_3.4'"):
        get_band('WISE3.4')
    with pytest.raises(ValueError, match='Known bands'):
        get_band('XYZZY')
    with pytest.raises(TypeError):
        get_band(3.4)


def test_band_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_band('WISE_3.4').fwhm = 1 * u.arcsec


def test_header_recognition_synthetic():
    cases = [({'TELESCOP': 'Spitzer', 'INSTRUME': 'IRAC', 'CHNLNUM': 1}, 'Spitzer_3.6'),
             # AllWISE Atlas cutouts number their band; 2MASS Atlas tiles say ORIGIN
             ({'TELESCOP': 'WISE', 'BAND': 1}, 'WISE_3.4'),
             ({'ORIGIN': '2MASS', 'FILTER': 'k'}, '2MASS_Ks'),
             ({'TELESCOP': 'Spitzer', 'INSTRUME': 'IRAC'}, None),
             ({'TELESCOP': 'WISE', 'BAND': 'W2'}, 'WISE_4.6'),
             ({'TELESCOP': 'Herschel', 'INSTRUME': 'SPIRE', 'DETECTOR': 'PLW'}, 'SPIRE_500'),
             ({'TELESCOP': 'SDSS', 'FILTER': 'r'}, 'SDSS_r'),
             ({'TELESCOP': 'Spitzer', 'INSTRUME': 'MIPS', 'WVLNGTH': '24um'}, 'Spitzer_24')]
    for cards, expected in cases:
        header = fits.Header(cards)
        if expected is None:
            with pytest.raises(ValueError, match='Pass the band name'):
                get_band(header)
        else:
            assert get_band(header).name == expected


@pytest.mark.parametrize('filename, expected', [
    ('NGC5584_GALEX_NUV.fits.gz', 'GALEX_NUV'),
    ('NGC5584_PACS_100.fits.gz', 'PACS_100'),
    ('NGC5584_SPIRE_250.fits.gz', 'SPIRE_250')])
def test_header_recognition_real_files(shared_data, filename, expected):
    header = fits.getheader(shared_data / 'images' / filename)
    assert get_band(header).name == expected


def test_real_wise_map_without_keywords_needs_a_name(shared_data):
    header = fits.getheader(shared_data / 'images' / 'NGC5584_WISE_12.fits.gz')
    with pytest.raises(ValueError, match='band="WISE_12"'):
        get_band(header)


def test_band_table():
    table = band_table()
    assert len(table) == len(BANDS) == 27
    assert table['is_input'].sum() == 18
    assert table.loc['SPIRE_250']['fwhm'] == get_band('SPIRE_250').fwhm
