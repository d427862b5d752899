"""
The compiled tree walk against the libraries' own predictions (independent
truth): scikit-learn forests and xgboost boosters, with NaN inputs and inputs
exactly on the split thresholds.
"""

import numpy as np
import pytest
import xgboost as xgb
from sklearn.ensemble import RandomForestRegressor

from astro_dustml.model._forest import (_booster_trees, _export_forest, _forest_predict,
                                        _forest_trees, _Trees)


def _data(n, seed, nan_fraction=0.15):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    y = X[:, 0] + np.sin(3 * X[:, 1]) + 0.5 * (X[:, 2] > 0) + rng.normal(0, 0.2, n)
    X[rng.random(X.shape) < nan_fraction] = np.nan
    return X, y


def _on_thresholds(thresholds, n, seed):
    """Rows whose values sit on, just below and just above float32 thresholds."""
    rng = np.random.default_rng(seed)
    t32 = np.asarray(thresholds, dtype=np.float32)
    near = np.concatenate([t32, np.nextafter(t32, np.float32(np.inf)),
                           np.nextafter(t32, np.float32(-np.inf))])
    return rng.choice(near, size=(n, 6)).astype(np.float32)


def test_forest_matches_sklearn_predict():
    X, y = _data(2000, 0)
    # fully grown trees: deeper than the bundled ones, of uneven depth
    forest = RandomForestRegressor(n_estimators=15, max_features=0.7, random_state=0).fit(X, y)
    inner = np.concatenate([e.tree_.threshold[e.tree_.children_left >= 0]
                            for e in forest.estimators_])
    assert np.isinf(inner).any()  # splits that only separate the missing values
    Xt = np.vstack([_data(3001, 1)[0], _on_thresholds(inner[np.isfinite(inner)], 2000, 2)])
    Xt[::7, 3] = np.nan
    expected = forest.predict(Xt)
    np.testing.assert_allclose(_forest_predict(_export_forest(forest), Xt), expected,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize('depth', [3, 6])
def test_booster_matches_xgboost_predict(depth):
    X, y = _data(3000, 3)
    X = np.round(X * 4) / 4  # few distinct values: rows land exactly on split values
    params = {'max_depth': depth, 'eta': 0.3, 'tree_method': 'hist', 'seed': 0,
              'base_score': 0.0, 'nthread': 1}
    booster = xgb.train(params, xgb.DMatrix(X, label=y, missing=np.nan), num_boost_round=40)
    Xt = np.vstack([np.round(_data(2001, 4)[0] * 4) / 4, _data(500, 5)[0]]).astype(np.float32)
    base = 0.7
    expected = booster.predict(xgb.DMatrix(Xt, base_margin=np.full(len(Xt), base),
                                           missing=np.nan), output_margin=True)
    got = base + _booster_trees(booster).sum_leaves(Xt)
    # xgboost sums in float32; the walk in float64
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_concatenated_boosters_sum_their_parts():
    X, y = _data(1500, 6)
    params = {'max_depth': 3, 'tree_method': 'hist', 'seed': 1, 'base_score': 0.0}
    boosters = [xgb.train({**params, 'seed': s}, xgb.DMatrix(X, label=y), num_boost_round=n)
                for s, n in ((1, 5), (2, 17), (3, 1))]
    d = xgb.DMatrix(X)
    expected = sum(b.predict(d, output_margin=True).astype(float) for b in boosters)
    got = _Trees.concatenate([_booster_trees(b) for b in boosters]).sum_leaves(X)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_inconsistent_node_arrays_refused():
    X, y = _data(300, 7)
    arrays = _export_forest(RandomForestRegressor(n_estimators=2, random_state=0).fit(X, y))
    bad = dict(arrays, left=arrays['left'].copy())
    bad['left'][0] = len(bad['left']) + 5  # a child out of bounds
    with pytest.raises(ValueError, match='inconsistent'):
        _forest_trees(bad)
    loop = dict(arrays, left=arrays['left'].copy())
    loop['left'][0] = 1
    loop['left'][1] = 1  # a node that is its own child
    with pytest.raises(ValueError, match='not trees|inconsistent'):
        _forest_trees(loop)
