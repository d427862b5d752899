"""Tests of DustModel: a known relation, uncertainties (flux errors too), persistence."""

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable
from sklearn.ensemble import RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from astro_dustml.exceptions import ModelIntegrityError, OutOfDomainWarning
from astro_dustml.model import (DustModel, _export_forest, _fit_linear, _forest_predict,
                                _linear_predict, group_weights)
from astro_dustml.sed import FLAG_MISSING

BANDS = ['WISE_3.4', 'WISE_4.6', 'Spitzer_4.5', 'WISE_12', '2MASS_Ks']
TD_SCATTER = 1.0
SLD_SCATTER = 0.1


def _mock(n, seed, n_pix=1):
    """Rows whose Td depends on the 4.6/3.4 colour and sLd on the 12/3.4 colour."""
    rng = np.random.default_rng(seed)
    rows = n * n_pix
    c46 = rng.uniform(-0.5, 0.0, rows)
    c12 = rng.uniform(-1.0, 0.5, rows)
    t = QTable()
    t['galaxy'] = np.repeat([f'G{seed}_{i}' for i in range(n)], n_pix)
    t['pixel_area'] = np.full(rows, 1e-8) * u.sr
    flux = {'WISE_3.4': np.ones(rows), 'WISE_4.6': 10 ** c46,
            # a noisier copy of the 4.6 micron colour: the fallback when W2 is missing
            'Spitzer_4.5': 10 ** (c46 + rng.normal(0, 0.05, rows)),
            'WISE_12': 10 ** c12, '2MASS_Ks': 10 ** rng.uniform(-0.2, 0.2, rows)}
    for band in BANDS:
        t[band] = 1e-2 * flux[band] * u.Jy
        t[f'{band}_err'] = 0.01 * t[band]
        t[f'{band}_flag'] = np.zeros(rows, dtype=np.int16)
    t['Td'] = (25 + 20 * (c46 + 0.25) + rng.normal(0, TD_SCATTER, rows)) * u.K
    t['Td_err'] = np.full(rows, TD_SCATTER) * u.K
    t['sLd'] = (-1 + c12 + rng.normal(0, SLD_SCATTER, rows)) * u.dex
    return t


def _model(**kw):
    kw = {'bands': BANDS, 'n_estimators': 40, 'min_samples_leaf': 5, 'max_features': 1.0,
          'sigma_rounds': 100, 'min_bands': 2, 'n_inner_splits': 5, 'random_state': 1, **kw}
    return DustModel(**kw)


@pytest.fixture(scope='module')
def fitted():
    train = _mock(1500, 0)
    return _model().fit(train, targets=['Td', 'sLd'], groups='galaxy'), train


def _predict(model, table):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', OutOfDomainWarning)
        return model.predict(table)


def test_recovers_known_relation(fitted):
    model, _ = fitted
    test = _mock(3000, 1)
    pred = _predict(model, test)
    assert pred.colnames == ['Td', 'Td_err', 'sLd', 'sLd_err', 'out_of_domain', 'n_bands']
    assert pred['Td'].unit == u.K and pred['sLd'].unit == u.dex
    for target, scatter in [('Td', TD_SCATTER), ('sLd', SLD_SCATTER)]:
        resid = (pred[target] - test[target]).value
        sigma = pred[f'{target}_err'].value
        rmse = np.sqrt(np.mean(resid ** 2))
        # the injected scatter is the floor; the forest adds a little
        assert scatter <= rmse < 1.2 * scatter, (target, rmse)
        chi2 = np.mean((resid / sigma) ** 2)
        assert abs(chi2 - 1) < 0.1, (target, chi2)
    assert np.all(pred['n_bands'] == len(BANDS))


def test_missing_band_gives_larger_uncertainty(fitted):
    model, _ = fitted
    test = _mock(2000, 2)
    full = _predict(model, test)
    dropped = test.copy()
    dropped['WISE_4.6_flag'][:] = FLAG_MISSING
    part = _predict(model, dropped)
    assert np.all(part['n_bands'] == len(BANDS) - 1)
    # Td leans on the 4.6 micron colour: without W2 both error and sigma grow
    rmse_full = np.sqrt(np.mean((full['Td'] - test['Td']).value ** 2))
    rmse_part = np.sqrt(np.mean((part['Td'] - test['Td']).value ** 2))
    assert rmse_part > rmse_full
    assert np.mean(part['Td_err'].value) > 1.02 * np.mean(full['Td_err'].value)
    chi2 = np.mean(((part['Td'] - test['Td']) / part['Td_err']).value ** 2)
    assert 0.7 < chi2 < 1.4


def test_out_of_domain_and_minimum_bands(fitted):
    model, _ = fitted
    test = _mock(3, 3)
    test['WISE_12'][0] = 1e3 * u.Jy                    # colour far beyond training
    for band in BANDS[1:]:
        test[f'{band}_flag'][1] = FLAG_MISSING         # WISE 3.4 alone: too few bands
    test['WISE_3.4_flag'][2] = FLAG_MISSING            # no reference band
    with pytest.warns(OutOfDomainWarning, match='3 of 3 rows'):
        pred = model.predict(test)
    assert list(pred['out_of_domain']) == [True, True, True]
    # an SED far off the training manifold stays within the training targets
    _, train = fitted
    assert train['Td'].min() <= pred['Td'][0] <= train['Td'].max()
    assert np.isnan(pred['Td'][1]) and np.isnan(pred['Td_err'][2])
    assert list(pred['n_bands']) == [5, 1, 4]


def test_fit_does_not_modify_input():
    t = _mock(60, 4)
    before = t.copy()
    _model(n_estimators=5, sigma_rounds=5).fit(t, targets=['Td'], groups='galaxy')
    assert t.colnames == before.colnames
    for name in t.colnames:
        assert np.all(np.asarray(t[name]) == np.asarray(before[name]))


def test_forest_arrays_match_sklearn():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    X[rng.random(X.shape) < 0.2] = np.nan
    y = np.nan_to_num(X[:, 0]) + rng.normal(0, 0.1, 300)
    forest = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, y)
    Xt = rng.normal(size=(500, 4))
    Xt[rng.random(Xt.shape) < 0.3] = np.nan
    np.testing.assert_allclose(_forest_predict(_export_forest(forest), Xt),
                               forest.predict(Xt), rtol=0, atol=1e-12)


def test_ridge_arrays_match_sklearn_and_recover_a_plane():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3))
    y = 2 + 3 * X[:, 0] - X[:, 1]
    X[rng.random(X.shape) < 0.2] = np.nan
    linear = _fit_linear(X, y, np.ones(len(y)))
    # the same model as an sklearn pipeline: mean imputation with indicators
    pipe = make_pipeline(SimpleImputer(add_indicator=True), StandardScaler(),
                         RidgeCV(alphas=np.logspace(0, 4, 9))).fit(X, y)
    Xt = rng.normal(size=(300, 3))
    Xt[rng.random(Xt.shape) < 0.2] = np.nan
    # ... on inputs clipped to the training range
    inside = np.clip(Xt, np.nanmin(X, axis=0), np.nanmax(X, axis=0))
    np.testing.assert_allclose(_linear_predict(linear, Xt), pipe.predict(inside), atol=1e-10)
    # from complete rows it recovers the plane, up to the ridge's small shrinkage
    complete = np.isfinite(X).all(axis=1)
    plane = _fit_linear(X[complete], y[complete], np.ones(complete.sum()))
    good = np.all(np.isfinite(Xt) & (Xt == np.clip(Xt, plane['linear_lo'], plane['linear_hi'])),
                  axis=1)
    truth = 2 + 3 * Xt[good, 0] - Xt[good, 1]
    assert good.sum() > 100
    assert np.max(np.abs(_linear_predict(plane, Xt[good]) - truth)) < 0.05


def test_save_load_bit_identical(fitted, tmp_path):
    model, _ = fitted
    test = _mock(500, 5)
    test['WISE_12_flag'][::3] = FLAG_MISSING
    before = _predict(model, test)
    model.card['name'] = 'test-model'
    path = model.save(tmp_path / 'm')
    loaded = DustModel.load(path)
    after = _predict(loaded, test)
    for name in before.colnames:
        a, b = np.asarray(before[name]), np.asarray(after[name])
        assert a.dtype == b.dtype
        assert np.array_equal(a, b, equal_nan=True), name
    card = loaded.card
    assert card['name'] == 'test-model'
    assert card['bands'] == BANDS and card['targets'] == {'Td': 'K', 'sLd': 'dex'}
    assert card['features'][-1] == 'log_WISE_3.4_intensity'
    assert {'numpy', 'scikit-learn', 'xgboost', 'astropy'} <= set(card['versions'])
    assert set(card['files']) == {p.name for p in path.iterdir()} - {'model.json'}
    assert {'mean_Td.npz', 'mean_Td_dropout.npz'} <= set(card['files'])
    assert all(len(h) == 64 for h in card['files'].values())
    with pytest.raises(FileExistsError, match='overwrite=True'):
        model.save(path)


def test_several_boosters_per_target_and_overwrite(fitted, tmp_path):
    # A model saved with one uncertainty booster per fold (as earlier versions
    # made) averages their log sigma: three copies of one booster give its sigma
    import copy

    model, _ = fitted
    test = _mock(300, 6)
    old = copy.copy(model)
    old.boosters_ = {t: boosters * 3 for t, boosters in model.boosters_.items()}
    old.calibration_ = {t: dict(cal, n_rounds=cal['n_rounds'] * 3)
                        for t, cal in model.calibration_.items()}
    old.__dict__.pop('trees_', None)  # compiled again from the boosters
    path = old.save(tmp_path / 'm')
    assert (path / 'sigma_Td_2.ubj').exists()
    (path / 'notes.txt').write_text('mine')
    np.testing.assert_allclose(_predict(DustModel.load(path), test)['Td_err'],
                               _predict(model, test)['Td_err'], rtol=1e-12)
    # saved over with one booster per target: the old boosters go, other files stay
    model.save(path, overwrite=True)
    assert not (path / 'sigma_Td_2.ubj').exists() and (path / 'notes.txt').exists()
    assert set(DustModel.load(path).card['files']) == {
        p.name for p in path.iterdir()} - {'model.json', 'notes.txt'}


def test_tampered_or_missing_file_fails(fitted, tmp_path):
    model, _ = fitted
    path = model.save(tmp_path / 'm')
    target = path / 'mean_Td.npz'
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match='SHA-256'):
        DustModel.load(path)
    target.unlink()
    with pytest.raises(ModelIntegrityError, match='missing'):
        DustModel.load(path)
    with pytest.raises(ModelIntegrityError, match='model card'):
        DustModel.load(tmp_path / 'nothing')


def test_group_weights_equalise_galaxies():
    groups = np.array(['big'] * 10000 + ['small'] * 10)
    w = group_weights(groups)
    assert np.isclose(w[groups == 'big'].sum(), w[groups == 'small'].sum())


def test_unfitted_and_bad_inputs():
    with pytest.raises(RuntimeError, match='not fitted'):
        DustModel().predict(_mock(3, 0))
    with pytest.raises(ValueError, match='not a column'):
        _model().fit(_mock(20, 0), targets=['Td'], groups='nope')
    with pytest.raises(ValueError, match='target'):
        _model().fit(_mock(20, 0), targets=['sMd'], groups='galaxy')


def test_constant_target_refused():
    """A constant target leaves no residual to learn sigma from: refused, not NaN errors."""
    train = _mock(40, 0)
    train['Td'] = np.full(len(train), 20.0) * u.K
    with pytest.raises(ValueError, match="target 'Td' is constant .*20"):
        _model(n_estimators=5).fit(train, targets=['sLd', 'Td'], groups='galaxy')


def test_features_follow_band_dropout():
    """A dropped band removes every feature that uses it: colours and signal-to-noise."""
    train = _mock(60, 3)
    model = _model(colours='neighbours', include_snr=True, n_dropout=3, band_dropout=0.5)
    X, names, valid = model._features(train)
    assert 'log_WISE_4.6/WISE_12' in names and names[-1] == 'log_snr_2MASS_Ks'
    # the mock's errors are 1% of the flux: S/N 100, capped at 10
    np.testing.assert_allclose(X[:, names.index('log_snr_WISE_12')], 1.0)
    rng = np.random.default_rng(0)
    Xa, va, *_ = model._augment(X, valid, np.ones(len(X)), np.asarray(train['galaxy']), rng)
    for j, name in enumerate(names):
        used = [b for b in name.removeprefix('log_snr_').removeprefix('log_').split('/')
                if b in BANDS and b != 'WISE_3.4']
        assert used or name in ('log_WISE_3.4_intensity', 'log_snr_WISE_3.4')
        for b in used:
            gone = ~va[:, BANDS.index(b)]
            assert np.all(np.isnan(Xa[gone, j])), (name, b)
    model.fit(train, targets=['Td'], groups='galaxy')
    assert model.card['features'] == names


def test_target_errors_give_uncertainty_of_true_value():
    """With noisy targets of known error, sigma describes the error on the noise-free truth."""
    rng = np.random.default_rng(5)
    train, test = _mock(1500, 0), _mock(600, 1)
    for t in (train, test):
        c46 = np.log10((t['WISE_4.6'] / t['WISE_3.4']).value)
        t['Td_true'] = (25 + 20 * (c46 + 0.25)) * u.K
        err = np.where(rng.random(len(t)) < 0.5, 0.3, 3.0)
        t['Td'] = t['Td_true'] + rng.normal(0, err) * u.K
        t['Td_err'] = err * u.K
    model = _model(target_errors=True, n_dropout=0).fit(train, targets=['Td'], groups='galaxy')
    pred = _predict(model, test)
    sigma = pred['Td_err'].value
    # against the noise-free truth: the forest's own error, well below most target errors
    chi2_true = np.mean(((pred['Td'] - test['Td_true']).value / sigma) ** 2)
    # against the noisy targets: the total variance
    chi2_tot = np.mean(((pred['Td'] - test['Td']).value ** 2
                        / (sigma ** 2 + test['Td_err'].value ** 2)))
    assert 0.6 < chi2_true < 1.6
    assert 0.85 < chi2_tot < 1.15
    assert np.median(sigma) < 1.0


def test_blocked_and_threaded_against_single(fitted):
    """Blocks and threads change nothing; sigma is that of the xgboost boosters themselves."""
    import xgboost as xgb
    model, _ = fitted
    test = _mock(701, 9)
    test['WISE_12_flag'][::4] = FLAG_MISSING
    test['WISE_3.4_flag'][::50] = FLAG_MISSING  # unusable rows inside blocks
    one = _predict(model, test)
    model.set_params(n_jobs=2)
    try:
        blocked = model.predict(test, warn=False, block_size=37)
    finally:
        model.set_params(n_jobs=1)
    for name in one.colnames:
        assert np.array_equal(np.asarray(one[name]), np.asarray(blocked[name]),
                              equal_nan=True), name
    # independent truth for the uncertainty: xgboost's own prediction
    X, _, valid = model._features(test)
    ok = ~one['out_of_domain'] | np.isfinite(one['Td'])
    Xs = model._sigma_inputs(X[ok], valid[ok].sum(axis=1))
    cal = model.calibration_['Td']
    dm = xgb.DMatrix(Xs, base_margin=np.full(len(Xs), cal['base_log_sigma']), missing=np.nan)
    log_sigma = np.mean([b.predict(dm, output_margin=True) for b in model.boosters_['Td']],
                        axis=0)
    np.testing.assert_allclose(one['Td_err'].value[ok], cal['scale'] * np.exp(log_sigma),
                               rtol=1e-6)
    with pytest.raises(ValueError, match='block_size must be a positive integer'):
        model.predict(test, block_size=0)


def test_prediction_memory_is_bounded(fitted):
    """Peak memory of predict stays below three times the pixel table."""
    import tracemalloc
    model, _ = fitted
    test = _mock(40000, 11)
    table_bytes = sum(np.asarray(test[c]).nbytes for c in test.colnames)
    _predict(model, test[:10])
    tracemalloc.start()
    try:
        _predict(model, test)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * table_bytes, (peak / table_bytes)


# --- the photometric part of the uncertainty: flux errors through the model ---


def _noisy_rows(relative_error):
    t = _mock(300, 7)
    c12 = np.log10(t['WISE_12'] / t['WISE_3.4'])
    c46 = np.log10(t['WISE_4.6'] / t['WISE_3.4'])
    # inside the colour range, away from the edges where the forest flattens
    t = t[(c12 > -0.7) & (c12 < 0.2) & (c46 > -0.4) & (c46 < -0.1)]
    for band in BANDS:
        t[f'{band}_err'] = relative_error * t[band]
    return t


def test_flux_errors_add_the_analytic_scatter(fitted):
    # sLd = -1 + log10(W12 / W1) and Td = 25 K + 20 K log10(W2 / W1) + const:
    # log-normal flux errors of sigma_ln on both bands give sqrt(2) sigma_ln / ln 10
    # dex of scatter in the colour, times the slope
    model, _ = fitted
    t = _noisy_rows(0.1)
    before = t.copy()
    colour = np.sqrt(2 * np.log1p(0.1 ** 2)) / np.log(10)
    base = model.predict(t, warn=False)
    with_noise = model.predict(t, warn=False, photometric_noise=True)
    for target, slope in (('sLd', 1.0), ('Td', 20.0)):
        np.testing.assert_array_equal(with_noise[target], base[target])
        added = np.sqrt(with_noise[f'{target}_err'].value ** 2 - base[f'{target}_err'].value ** 2)
        assert np.median(added) == pytest.approx(slope * colour, rel=0.1), target
    blocked = model.predict(t, warn=False, photometric_noise=True, block_size=7)
    np.testing.assert_array_equal(blocked['Td_err'], with_noise['Td_err'])
    for name in t.colnames:
        np.testing.assert_array_equal(t[name], before[name])


def test_precise_fluxes_add_nothing(fitted):
    model, _ = fitted
    t = _noisy_rows(1e-4)
    base = model.predict(t, warn=False)
    with_noise = model.predict(t, warn=False, photometric_noise=True)
    np.testing.assert_allclose(with_noise['sLd_err'].value, base['sLd_err'].value, rtol=1e-3)
