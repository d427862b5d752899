"""Tests of grouped cross-validation, metrics and validation figures."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable
from matplotlib.figure import Figure

from astro_dustml.model import DustModel
from astro_dustml.training import (
    CrossValidationResult,
    cross_validate,
    plot_true_vs_predicted,
    plot_uncertainty_validation,
    regression_metrics,
)

BANDS = ['WISE_3.4', 'WISE_4.6', 'WISE_12']


def _pixel_table(n_gal=24, seed=0):
    """Galaxies with different pixel counts; Td follows the 4.6/3.4 colour."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 30, n_gal)
    gal = np.repeat([f'G{i}' for i in range(n_gal)], sizes)
    n = len(gal)
    colour = rng.uniform(-0.5, 0, n)
    t = QTable()
    t['galaxy'] = gal
    t['pixel_area'] = np.full(n, 1e-8) * u.sr
    t['WISE_3.4'] = np.full(n, 1e-2) * u.Jy
    t['WISE_4.6'] = 1e-2 * 10 ** colour * u.Jy
    t['WISE_12'] = 1e-2 * 10 ** rng.uniform(-1, 0, n) * u.Jy
    t['Td'] = (25 + 20 * colour + rng.normal(0, 1, n)) * u.K
    return t


def test_grouped_folds_never_share_a_galaxy():
    t = _pixel_table()
    model = DustModel(bands=BANDS, n_estimators=10, n_dropout=0, sigma_rounds=10, min_bands=2)
    cv = cross_validate(t, ['Td'], groups='galaxy', model=model, n_bootstrap=10)
    assert isinstance(cv, CrossValidationResult) and len(cv.folds) == 4
    galaxies = np.asarray(t['galaxy'])
    seen = []
    for train, test in cv.folds:
        assert not set(galaxies[train]) & set(galaxies[test])
        seen.extend(set(galaxies[test]))
    assert sorted(seen) == sorted(set(galaxies))     # each galaxy tested exactly once
    assert np.all(cv.predictions['fold'] >= 0)
    assert np.all(np.isfinite(cv.predictions['Td']))
    assert cv.predictions['Td'].unit == u.K
    assert cv.metric('Td', 'rmse') < 3
    # every galaxy carries the same total weight
    w = np.bincount(np.unique(galaxies, return_inverse=True)[1].ravel(),
                    cv.predictions['weight'])
    np.testing.assert_allclose(w, 1.0)


def test_weights_make_galaxies_count_once():
    # a perfectly predicted galaxy with 10^4 pixels, one off by 1 with 10 pixels
    groups = np.array(['big'] * 10000 + ['small'] * 10)
    true = np.zeros(len(groups))
    pred = np.where(groups == 'small', 1.0, 0.0)
    m = regression_metrics(pred, true, groups=groups, n_bootstrap=0)
    np.testing.assert_allclose(m['rmse'], np.sqrt(0.5))
    np.testing.assert_allclose(m['me'], 0.5)
    assert m['n_galaxies'] == 2 and m['n_rows'] == 10010


def test_metrics_analytic_and_between_within_split():
    rng = np.random.default_rng(3)
    n_gal, n_pix = 400, 5
    groups = np.repeat(np.arange(n_gal), n_pix)
    true = rng.normal(0, 2, n_gal * n_pix)
    offset = rng.normal(0, 0.3, n_gal)[groups]        # between-galaxy error
    noise = rng.normal(0, 0.4, n_gal * n_pix)          # within-galaxy error
    pred = true + offset + noise
    sigma = np.full(len(true), 0.5)
    m = regression_metrics(pred, true, groups=groups, sigma=sigma, n_bootstrap=100)
    np.testing.assert_allclose(m['rmse'] ** 2, m['rmse_between'] ** 2 + m['rmse_within'] ** 2)
    assert abs(m['rmse'] - 0.5) < 0.03
    assert abs(m['chi2'] - 1) < 0.1
    assert abs(m['r2'] - (1 - 0.25 / 4)) < 0.02
    # bootstrap over 400 galaxies: the error of the RMSE is about 0.5 / sqrt(2 * 400)
    assert 0.005 < m['rmse_err'] < 0.04
    assert abs(m['me']) < 3 * m['me_err']


def test_figures():
    rng = np.random.default_rng(0)
    true = rng.normal(25, 3, 500)
    sigma = rng.uniform(0.5, 2, 500)
    tab = QTable({'Td_true': true * u.K, 'Td': (true + rng.normal(0, sigma)) * u.K,
                  'Td_err': sigma * u.K, 'weight': np.ones(500)})
    fig = plot_true_vs_predicted(tab, 'Td', max_points=200)
    assert isinstance(fig, Figure) and len(fig.axes) >= 1
    assert 'Td' in fig.axes[0].get_xlabel()
    fig = plot_uncertainty_validation(tab)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    # the binned RMS error follows the predicted sigma
    x, y = fig.axes[0].lines[0].get_data()
    np.testing.assert_allclose(y, x, rtol=0.35)
    with pytest.raises(ValueError, match='sMd_true'):
        plot_true_vs_predicted(tab, 'sMd')


def test_too_few_galaxies():
    t = _pixel_table(n_gal=3)
    with pytest.raises(ValueError, match='grouped folds'):
        cross_validate(t, ['Td'], groups='galaxy')
