"""Tests of the model features."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from astro_dustml.model.features import feature_names, make_features, valid_bands
from astro_dustml.sed import FLAG_CATALOGUE, FLAG_LOW_SN, FLAG_MASKED, FLAG_MISSING

BANDS = ['GALEX_NUV', 'WISE_3.4', 'WISE_4.6', 'WISE_12']


def _table():
    t = QTable()
    t['galaxy'] = ['a', 'b', 'c', 'd', 'e']
    t['pixel_area'] = [1e-8, 1e-8, 2e-8, 1e-8, 1e-8] * u.sr
    t['pixel_scale_pc'] = [100., 100., 200., np.nan, 100.] * u.pc
    t['GALEX_NUV'] = [1e-3, 1e-3, 1e-3, 0., 1e-3] * u.Jy
    t['WISE_3.4'] = [1e-2, 1e-2, 2e-2, 1e-2, 1e-2] * u.Jy
    t['WISE_4.6'] = [5e-3, 5e-3, 1e-2, 5e-3, -1e-3] * u.Jy
    t['WISE_12'] = [2e-2, 2e-2, 4e-2, 2e-2, 2e-2] * u.Jy
    for b in BANDS:
        t[f'{b}_err'] = 0.1 * np.abs(t[b]) + 1e-6 * u.Jy
        t[f'{b}_flag'] = np.zeros(5, dtype=np.int16)
    t['GALEX_NUV_flag'][1] = FLAG_MASKED
    t['WISE_12_flag'][1] = FLAG_MISSING
    t['WISE_12_flag'][2] = FLAG_LOW_SN | FLAG_CATALOGUE  # kept: not MASKED/MISSING
    t['WISE_3.4_flag'][4] = FLAG_MASKED
    return t


def test_feature_values_analytic():
    t = _table()
    X, names = make_features(t, bands=BANDS, include_scale=True)
    assert names == feature_names(bands=BANDS, include_scale=True)
    assert names == ['log_GALEX_NUV/WISE_3.4', 'log_WISE_4.6/WISE_3.4',
                     'log_WISE_12/WISE_3.4', 'log_WISE_3.4_intensity', 'log_pixel_scale_pc']
    # row 0: colours are log10 of the flux ratios
    np.testing.assert_allclose(X[0, :3], [-1, np.log10(0.5), np.log10(2)], rtol=1e-12)
    # 1e-2 Jy over 1e-8 sr is 1e6 Jy/sr = 1 MJy/sr
    np.testing.assert_allclose(X[0, 3], 0.0, atol=1e-12)
    np.testing.assert_allclose(X[0, 4], 2.0)
    # row 2: twice the flux over twice the area: same intensity and colours
    np.testing.assert_allclose(X[2, 1:4], X[0, 1:4], atol=1e-12)
    np.testing.assert_allclose(X[2, 0], np.log10(1e-3 / 2e-2))


def test_flagged_and_nonpositive_bands_are_nan():
    t = _table()
    X, _ = make_features(t, bands=BANDS)
    assert np.isnan(X[1, 0]) and np.isnan(X[1, 2])      # MASKED, MISSING
    assert np.isfinite(X[1, 1]) and np.isfinite(X[1, 3])
    assert np.all(np.isfinite(X[2]))                    # LOW_SN/CATALOGUE kept
    assert np.isnan(X[3, 0])                            # zero flux
    assert np.isnan(X[4, 1])                            # negative flux
    assert np.all(np.isnan(X[4]))                       # reference band flagged
    assert not np.any(X == 0) or np.all(np.isfinite(X[X == 0]))


def test_bad_flags_and_min_snr_options():
    t = _table()
    X, _ = make_features(t, bands=BANDS, bad_flags=FLAG_MASKED | FLAG_MISSING | FLAG_CATALOGUE)
    assert np.isnan(X[2, 2])
    t['WISE_4.6_err'][0] = 1 * u.Jy  # S/N = 0.005
    X, _ = make_features(t, bands=BANDS, min_snr=3)
    assert np.isnan(X[0, 1]) and np.isfinite(X[0, 0])
    valid = valid_bands(t, bands=BANDS, min_snr=3)
    assert valid.shape == (5, 4) and not valid[0, 2] and valid[0, 1]


def test_absent_band_gives_nan_column():
    t = _table()
    X, names = make_features(t, bands=BANDS + ['WISE_22'])
    assert names[3] == 'log_WISE_22/WISE_3.4'
    assert np.all(np.isnan(X[:, 3]))


def test_input_not_modified():
    t = _table()
    before = t.copy()
    make_features(t, bands=BANDS, include_scale=True, min_snr=3)
    for name in t.colnames:
        assert np.array_equal(np.asarray(t[name]), np.asarray(before[name]), equal_nan=True) \
            if t[name].dtype.kind == 'f' else np.all(t[name] == before[name])


def test_errors_name_the_problem():
    t = _table()
    with pytest.raises(ValueError, match='WISE_3.4'):
        make_features(t, bands=['WISE_4.6', 'WISE_12'])
    t.remove_column('WISE_3.4')
    with pytest.raises(ValueError, match='no WISE_3.4 column'):
        make_features(t, bands=BANDS)
    t = _table()
    t.remove_column('pixel_area')
    with pytest.raises(ValueError, match='pixel_area'):
        make_features(t, bands=BANDS)
    t = _table()
    t.remove_column('pixel_scale_pc')
    with pytest.raises(ValueError, match='pixel_scale_pc'):
        make_features(t, bands=BANDS, include_scale=True)


def test_neighbour_colours():
    t = _table()
    X, names = make_features(t, bands=BANDS, colours='neighbours')
    assert names == feature_names(bands=BANDS, colours='neighbours')
    # the spec'd features come first, unchanged
    X0, names0 = make_features(t, bands=BANDS)
    assert names[:len(names0)] == names0
    np.testing.assert_array_equal(X[:, :len(names0)], X0)
    # WISE_3.4 pairs are already reference colours; NUV has no neighbour here
    assert names[len(names0):] == ['log_WISE_4.6/WISE_12']
    # row 0: 5 mJy / 20 mJy; row 1: WISE_12 missing; row 3: 4.6/12 still defined;
    # row 4: WISE_3.4 masked, so every feature is NaN
    np.testing.assert_allclose(X[[0, 2, 3], -1], np.log10(0.25), rtol=1e-12)
    assert np.isnan(X[1, -1]) and np.isnan(X[4, -1])
    with pytest.raises(ValueError, match='colours'):
        make_features(t, bands=BANDS, colours='all')


def test_without_intensity_needs_no_area():
    # A colour-only feature set: no intensity, so no solid angle is needed
    table = QTable({'WISE_3.4': [2.0] * u.Jy, 'WISE_12': [4.0] * u.Jy})
    X, names = make_features(table, bands=['WISE_3.4', 'WISE_12'], include_intensity=False)
    assert names == ['log_WISE_12/WISE_3.4']
    np.testing.assert_allclose(X, [[np.log10(2.0)]])
    with pytest.raises(ValueError, match='pixel_area'):
        make_features(table, bands=['WISE_3.4', 'WISE_12'])
