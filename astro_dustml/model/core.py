"""
The dust-property model: a mean and an uncertainty per target.

For each target (``sLd``, ``sMd``, ``Td``) a `DustModel` holds

- for the mean, a ridge regression on the colours (a missing colour is
  filled with its training mean and flagged by an indicator) and a
  scikit-learn random forest (Dobbels & Baes 2021, Sect. 2.3) fitted to its
  residuals: the targets are close to linear in the colours, which a forest
  of a few hundred galaxies can only approximate in steps;
- an xgboost model of ``log sigma`` fitted with a Gaussian negative
  log-likelihood objective on out-of-fold residuals of the mean model, then
  recalibrated on held-out galaxies so that the weighted mean chi^2 of the
  residuals of their observed band sets is one (Dobbels et al. 2020).

Bands are dropped at random in training: each galaxy enters with its
observed bands plus ``n_dropout`` copies that alternate between removing
whole instruments and removing single bands.  The copies teach the
uncertainty model how much worse the mean gets without those bands, and
train a second, *dropout* mean; the *full-band* mean is trained on the
observed rows alone, which the copies would cost accuracy.  A row that lacks
a core band (one that at least 97% of the training rows have) is predicted by
the dropout mean, any other row by the full-band mean.  So the model predicts
whenever WISE 3.4 micron and at least ``min_bands`` bands in total are
present, and its uncertainty grows when it has fewer bands to go on.

A fitted model is saved as a folder of portable files, never pickle: the
forests' tree arrays and the ridge coefficients in ``.npz``, each xgboost
model in its own UBJSON format and a ``model.json`` card (bands, features,
targets, training sample, metrics, library versions, the SHA-256 of every
file and of the card's own content), verified on loading.

Prediction walks the forests and the xgboost trees in compiled code (the same
node-array form for both, equal to the libraries' own predictions), in blocks
of rows spread over ``n_jobs`` threads, so that memory stays bounded.
"""

import numbers
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from astropy.table import QTable, Table
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestRegressor

from ..bands import INPUT_BANDS, REFERENCE_BAND, get_band
from ..exceptions import OutOfDomainWarning
from .features import _BAD_FLAGS, SNR_PREFIX, _canonical_bands, _feature_bands, _features_and_valid
from ._forest import _export_forest, _forest_predict, _forest_trees
from ._groups import _groups_array, _target_values, group_weights
from ._linear import _fit_linear, _linear_predict
from ._persistence import _FORMAT_VERSION, _load, _save, _versions
from ._photometric import _photometric_scatter
from ._sigma import _fit_sigma, _oof_residuals, _predict_log_sigma, _sigma_trees

__all__ = ['DustModel']

# bands present in at least this fraction of the training rows are core bands:
# a row without one goes to the dropout mean
_CORE_FRACTION = 0.97
# rows per prediction block: a few MB of temporaries per thread
_BLOCK = 8192


def _as_qtable(table, name):
    """A `~astropy.table.Table` with unit columns as a QTable (Quantity columns), no copy."""
    if isinstance(table, Table) and not isinstance(table, QTable):
        return QTable(table, copy=False)
    if not hasattr(table, 'colnames'):
        raise TypeError(f'{name} must be an astropy QTable or Table (one row per pixel or '
                        f'galaxy), not {type(table).__name__}; e.g. QTable.read(path).')
    return table


class DustModel(BaseEstimator):
    """
    Predict dust properties, with uncertainties, from UV to mid-infrared SEDs.

    Parameters
    ----------
    bands : sequence of str, optional
        Input bands (must include ``'WISE_3.4'``).
    include_intensity : bool, optional
        Use the log WISE 3.4 micron intensity as a feature.
    include_scale : bool, optional
        Use ``log10(pixel_scale_pc)`` as a feature.
    colours : {'reference', 'neighbours'}, optional
        Feature set (see `~astro_dustml.model.features.make_features`):
        ``'neighbours'`` adds the colours between neighbouring bands.
    include_snr : bool, optional
        Use the log signal-to-noise ratio of every band as features (needs
        ``<band>_err`` columns; they are not used by the ridge regression).
    linear_base : bool, optional
        Fit a ridge regression on the features first and the forest to its
        residuals; ``False`` gives a plain random forest.
    n_estimators, max_depth, min_samples_leaf, max_features : optional
        Random forest settings (`~sklearn.ensemble.RandomForestRegressor`);
        they also set the size of a saved model.
    band_dropout : float, optional
        Probability that an instrument (GALEX, SDSS, 2MASS, the WISE bands
        other than 3.4 micron, IRAC) is removed in the even-numbered training
        copies, and that a single band is removed in the odd-numbered ones.
    n_dropout : int, optional
        Number of band-dropout copies of each training row (0 disables).
    min_bands : int, optional
        Minimum number of usable bands, WISE 3.4 micron included, for a
        prediction; rows with fewer get NaN and ``out_of_domain``.
    sigma_rounds, sigma_depth, sigma_learning_rate : optional
        Maximum boosting rounds (early-stopped on held-out galaxies), tree
        depth and learning rate of the xgboost uncertainty model.
    n_inner_splits : int, optional
        Grouped folds of the out-of-fold residuals the uncertainty model is
        fitted on; each fold's booster is early-stopped on its held-out
        galaxies, and the pooled held-out chi^2 sets the calibration scale.
    min_snr : float, optional
        Bands below this signal-to-noise ratio count as missing.
    bad_flags : int, optional
        `astro_dustml.sed` flag bits that make a band missing; default
        ``FLAG_MASKED | FLAG_MISSING``.
    error_weighting : float, optional
        Down-weight training rows with uncertain targets: weights times
        ``1 / (1 + (err / (error_weighting * median(err)))**2)`` from the
        ``<target>_err`` column (the uncertainty model still sees every
        residual at full weight); None (default) disables it.
    target_errors : bool, optional
        Fit the uncertainty model to the total variance
        ``sigma**2 + err**2`` of each out-of-fold residual, with ``err`` the
        training target's ``<target>_err`` column (0 where absent), so that
        ``sigma`` is the uncertainty on the *true* property rather than on a
        noisy catalogue value.  Predictions keep the same columns.
    random_state : int, optional
        Seed of everything random (dropout, forests, boosting, splits).
    n_jobs : int, optional
        Threads for training and prediction.

    Attributes
    ----------
    card : dict
        The model card (written as ``model.json`` by `save`): bands, features,
        targets, training sample, calibration, metrics, versions.  Add entries
        (e.g. ``card['cv_metrics']``) before saving.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.table import QTable
    >>> from astro_dustml.model import DustModel
    >>> rng = np.random.default_rng(0)
    >>> n = 300
    >>> colour = rng.uniform(-1, 1, n)
    >>> t = QTable({'galaxy': [f'g{i}' for i in range(n)],
    ...             'WISE_3.4': np.ones(n) * u.Jy,
    ...             'WISE_4.6': 10 ** colour * u.Jy,
    ...             'WISE_12': 10 ** rng.uniform(-1, 1, n) * u.Jy,
    ...             'pixel_area': np.full(n, 1e-6) * u.sr,
    ...             'Td': (25 + 5 * colour + rng.normal(0, 0.5, n)) * u.K})
    >>> model = DustModel(bands=['WISE_3.4', 'WISE_4.6', 'WISE_12'],
    ...                   n_estimators=20, n_dropout=0, sigma_rounds=50)
    >>> model = model.fit(t, targets=['Td'], groups='galaxy')
    >>> pred = model.predict(t[:2])
    >>> pred.colnames
    ['Td', 'Td_err', 'out_of_domain', 'n_bands']
    >>> pred['Td'].unit
    Unit("K")
    """

    def __init__(self, *, bands=INPUT_BANDS, include_intensity=True, include_scale=False,
                 colours='reference', include_snr=False, linear_base=True,
                 n_estimators=100,
                 max_depth=14, min_samples_leaf=3, max_features=0.5, band_dropout=0.3,
                 n_dropout=2, min_bands=3, sigma_rounds=300, sigma_depth=3,
                 sigma_learning_rate=0.1, n_inner_splits=4,
                 min_snr=None, bad_flags=None, error_weighting=None, target_errors=False,
                 random_state=0, n_jobs=1):
        self.bands = bands
        self.include_intensity = include_intensity
        self.include_scale = include_scale
        self.colours = colours
        self.include_snr = include_snr
        self.linear_base = linear_base
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.band_dropout = band_dropout
        self.n_dropout = n_dropout
        self.min_bands = min_bands
        self.sigma_rounds = sigma_rounds
        self.sigma_depth = sigma_depth
        self.sigma_learning_rate = sigma_learning_rate
        self.n_inner_splits = n_inner_splits
        self.min_snr = min_snr
        self.bad_flags = bad_flags
        self.error_weighting = error_weighting
        self.target_errors = target_errors
        self.random_state = random_state
        self.n_jobs = n_jobs

    # --- helpers ------------------------------------------------------------------

    def _band_names(self):
        return _canonical_bands(self.bands)

    def _features(self, table):
        return _features_and_valid(
            table, bands=self._band_names(), include_intensity=self.include_intensity,
            include_scale=self.include_scale, colours=self.colours,
            include_snr=self.include_snr, min_snr=self.min_snr,
            bad_flags=_BAD_FLAGS if self.bad_flags is None else self.bad_flags)

    def _usable(self, X, valid, bands):
        """Rows with the reference band and enough bands to predict from."""
        usable = valid[:, bands.index(REFERENCE_BAND)] & (valid.sum(axis=1) >= self.min_bands)
        if self.include_intensity:  # the intensity, right after the colours, needs an area
            usable &= np.isfinite(X[:, len(bands) - 1])
        return usable

    def _sigma_inputs(self, X, n_bands):
        return np.column_stack([X, n_bands]).astype(np.float32)

    def _augment(self, X, valid, weight, groups, rng):
        """Original rows plus ``n_dropout`` copies with random instruments or bands removed."""
        bands = self._band_names()
        uses = _feature_bands(bands=bands, include_intensity=self.include_intensity,
                              include_scale=self.include_scale, colours=self.colours,
                              include_snr=self.include_snr)
        columns_of = {b: [i for i, used in enumerate(uses) if b in used] for b in bands}
        instruments = {}
        for b in bands:
            if b != REFERENCE_BAND:
                instruments.setdefault(get_band(b).instrument, []).append(b)
        Xs, vs, ws, gs, src = [X], [valid], [weight], [groups], [np.arange(len(X))]
        # copies alternate between dropping whole instruments (coverage) and
        # single bands (a faint band with a non-positive flux, a masked band)
        units = [[b] for b in bands if b != REFERENCE_BAND]
        for i in range(self.n_dropout):
            Xc, vc = X.copy(), valid.copy()
            for members in (instruments.values() if i % 2 == 0 else units):
                drop = rng.random(len(X)) < self.band_dropout
                for b in members:
                    Xc[np.ix_(drop, columns_of[b])] = np.nan
                    vc[drop, bands.index(b)] = False
            # never drop below the minimum band set: keep such rows whole
            short = vc.sum(axis=1) < self.min_bands
            Xc[short], vc[short] = X[short], valid[short]
            Xs.append(Xc)
            vs.append(vc)
            ws.append(weight)
            gs.append(groups)
            src.append(np.arange(len(X)))
        scale = 1.0 / (1 + self.n_dropout)
        copy = np.arange(len(X) * (1 + self.n_dropout)) >= len(X)
        return (np.concatenate(Xs), np.concatenate(vs), np.concatenate(ws) * scale,
                np.concatenate(gs), np.concatenate(src), copy)

    def _forest(self, seed):
        return RandomForestRegressor(
            n_estimators=self.n_estimators, max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf, max_features=self.max_features,
            random_state=seed, n_jobs=self.n_jobs)

    def _fit_mean(self, X, y, w, seed):
        """
        The mean model as arrays: forest tree arrays, plus ridge arrays if
        ``linear_base``, and the range of the training targets.
        """
        mean = {'target_range': np.array([y.min(), y.max()])}
        if self.linear_base:
            columns = np.array([not f.startswith(SNR_PREFIX) for f in self.features_])
            mean.update(_fit_linear(X[:, columns], y, w))
            mean['linear_columns'] = np.flatnonzero(columns)
            y = y - _linear_predict(mean, X[:, columns])
        forest = self._forest(seed).fit(X.astype(np.float32), y, sample_weight=w)
        return {**_export_forest(forest), **mean}

    @staticmethod
    def _predict_mean(mean, X, trees=None):
        out = _forest_predict(mean if trees is None else trees, X)
        if 'linear_columns' in mean:
            # an SED off the training manifold can push the ridge far out
            out = np.clip(out + _linear_predict(mean, X[:, mean['linear_columns']]),
                          *mean['target_range'])
        return out

    def _fit_means(self, X, y, w, copy, seed):
        """
        The full-band mean, trained on the observed rows only (band-dropout
        copies cost it accuracy), and with band dropout the dropout mean,
        trained on every row, for rows that lack a core band.
        """
        means = {'full': self._fit_mean(X[~copy], y[~copy], w[~copy], seed)}
        if copy.any():
            means['dropout'] = self._fit_mean(X, y, w, seed + 500)
        return means

    def _predict_means(self, means, X, full, trees=None):
        """The full-band mean where ``full``, else the dropout mean; ``trees``: compiled."""
        trees = trees or {}
        if 'dropout' not in means:
            return self._predict_mean(means['full'], X, trees.get('full'))
        out = np.empty(len(X))
        out[full] = self._predict_mean(means['full'], X[full], trees.get('full'))
        out[~full] = self._predict_mean(means['dropout'], X[~full], trees.get('dropout'))
        return out

    def _all_means(self, X, full):
        """Target -> compiled mean prediction of every row."""
        return {target: self._predict_means(self.means_[target], X, full,
                                            self.trees_[target]['means'])
                for target in self.targets_}

    def _full_band_rows(self, valid):
        """Rows with every core band: the full-band mean predicts them."""
        return valid[:, [self.bands_.index(b) for b in self.core_bands_]].all(axis=1)

    def _xgb_params(self, seed):
        return {'max_depth': self.sigma_depth, 'eta': self.sigma_learning_rate,
                'subsample': 0.8, 'colsample_bynode': 0.8, 'min_child_weight': 10.0,
                'lambda': 1.0, 'tree_method': 'hist', 'nthread': self.n_jobs,
                'seed': int(seed), 'base_score': 0.0, 'disable_default_eval_metric': 1}

    # --- fitting ------------------------------------------------------------------

    def fit(self, table, targets=('sLd', 'sMd', 'Td'), *, groups, sample_weight=None):
        """
        Fit mean and uncertainty models for each target.

        Parameters
        ----------
        table : `~astropy.table.QTable` or `~astropy.table.Table`
            Training SED table (see `astro_dustml.sed`) with target columns;
            a `~astropy.table.Table` with units (e.g. of ``Table.read`` of a
            Parquet pixel table) is read as a `~astropy.table.QTable`.
            Rows with a non-finite target are skipped for that target.
        targets : sequence of str, optional
            Target columns.
        groups : str or array-like
            Galaxy of each row (column name or labels): folds never split a
            galaxy, and by default each galaxy gets total weight one.
        sample_weight : array-like, optional
            Row weights; default ``1 / N_rows(galaxy)``.

        Returns
        -------
        self : `DustModel`
        """
        bands = self._band_names()
        table = _as_qtable(table, 'table')
        targets = [targets] if isinstance(targets, str) else list(targets)
        groups = _groups_array(table, groups)
        weight = (group_weights(groups) if sample_weight is None
                  else np.asarray(sample_weight, dtype=float))
        if weight.shape != (len(table),) or not np.all(weight >= 0):
            raise ValueError('sample_weight must be one non-negative value per row; fix it or '
                             'leave it None for 1 / N_rows(galaxy).')
        X, names, valid = self._features(table)
        usable = self._usable(X, valid, bands)
        if usable.sum() < 2 * self.n_inner_splits:
            raise ValueError(
                f'only {usable.sum()} training rows have {REFERENCE_BAND} and at least '
                f'{self.min_bands} bands; a model needs at least {2 * self.n_inner_splits}: '
                'add rows or lower min_bands.')
        rng = np.random.default_rng(self.random_state)
        Xa, va, wa, ga, src, copy = self._augment(X[usable], valid[usable], weight[usable],
                                                  groups[usable], rng)
        nb = va.sum(axis=1)
        self.features_ = names
        self.bands_ = bands
        self.core_bands_ = [b for b, f in zip(bands, valid[usable].mean(axis=0))
                            if f >= _CORE_FRACTION]
        full = self._full_band_rows(va)
        self.targets_ = {}
        self.means_ = {}
        self.boosters_ = {}
        self.calibration_ = {}
        counts = {}
        for k, target in enumerate(targets):
            y_all, unit = _target_values(table, target)
            y = y_all[usable][src]
            ok = np.isfinite(y) & (wa > 0)
            if len(np.unique(ga[ok])) < max(self.n_inner_splits, 2):
                raise ValueError(
                    f'too few galaxies with a finite {target} to fit it (at least '
                    f'{max(self.n_inner_splits, 2)} needed); add galaxies with that target, '
                    'lower n_inner_splits or leave the target out.')
            if np.ptp(y[ok]) == 0:
                # no residuals: the uncertainty model would learn log(0) and give NaN
                raise ValueError(
                    f'target {target!r} is constant ({y[ok][0]:g} on all {int(ok.sum())} '
                    'usable training rows): there is nothing to learn and no residual to '
                    f'calibrate {target}_err on; check the {target!r} column or leave the '
                    'target out.')
            self.targets_[target] = unit
            seed = self.random_state + 1000 * k
            Xt, yt, wt, gt, nbt = Xa[ok], y[ok], wa[ok], ga[ok], nb[ok]
            copy_t, full_t = copy[ok], full[ok]
            wt = wt / wt.mean()
            wmean = wt
            var_target = np.zeros(len(yt))
            if ((self.error_weighting is not None or self.target_errors)
                    and f'{target}_err' in table.colnames):
                yerr = _target_values(table, f'{target}_err')[0][usable][src][ok]
                if self.target_errors:
                    var_target = np.where(np.isfinite(yerr), yerr, 0.0) ** 2
                yerr = np.where(np.isfinite(yerr), yerr, np.nanmax(yerr))
            if self.error_weighting is not None and f'{target}_err' in table.colnames:
                wmean = wt / (1 + (yerr / (self.error_weighting * np.median(yerr))) ** 2)
                wmean = wmean / wmean.mean()
            counts[target] = {'n_rows': int(np.isfinite(y_all[usable]).sum()),
                              'n_galaxies': int(len(np.unique(groups[usable][
                                  np.isfinite(y_all[usable])])))}
            residual = self._oof_residuals(Xt, yt, wmean, gt, copy_t, full_t, seed)
            self.boosters_[target], self.calibration_[target] = self._fit_sigma(
                self._sigma_inputs(Xt, nbt), residual, wt, gt, seed, var_target, ~copy_t)
            self.means_[target] = self._fit_means(Xt, yt, wmean, copy_t, seed)
        finite = X[usable]
        with np.errstate(invalid='ignore'):
            self.feature_min_ = np.nanmin(np.where(np.isfinite(finite), finite, np.nan), axis=0)
            self.feature_max_ = np.nanmax(np.where(np.isfinite(finite), finite, np.nan), axis=0)
        self.card = self._make_card(groups[usable], counts)
        return self

    def _oof_residuals(self, *args):
        return _oof_residuals(self, *args)

    def _fit_sigma(self, *args):
        return _fit_sigma(self, *args)

    def _make_card(self, groups, counts):
        params = self.get_params()
        params['bands'] = list(self.bands_)
        return {
            'format_version': _FORMAT_VERSION,
            'name': '', 'description': '',
            'bands': list(self.bands_),
            'reference_band': REFERENCE_BAND,
            'min_bands': int(self.min_bands),
            'core_bands': list(self.core_bands_),
            'features': list(self.features_),
            'targets': {t: unit.to_string() for t, unit in self.targets_.items()},
            'params': params,
            'training': {'n_rows': int(len(groups)),
                         'n_galaxies': int(len(np.unique(groups))),
                         'per_target': counts, 'sample': ''},
            'calibration': self.calibration_,
            'cv_metrics': {},
            'versions': _versions(),
        }

    # --- prediction -----------------------------------------------------------------

    def _check_fitted(self):
        if not hasattr(self, 'means_'):
            raise RuntimeError('this DustModel is not fitted yet: call fit() or '
                               'DustModel.load() first.')

    def _compile(self):
        """Node arrays for the compiled tree walk: every mean forest and the sigma boosters."""
        self.trees_ = {target: {'means': {kind: _forest_trees(mean)
                                          for kind, mean in self.means_[target].items()},
                                'sigma': _sigma_trees(self.boosters_[target])}
                       for target in self.targets_}

    def _threads(self):
        n_jobs = self.n_jobs if self.n_jobs is not None else 1
        return (os.cpu_count() or 1) if n_jobs < 0 else max(int(n_jobs), 1)

    def predict(self, table, *, warn=True, block_size=None, photometric_noise=False):
        """
        Predict the targets and their uncertainties for every row of a SED table.

        Rows are processed in blocks of ``block_size`` rows, spread over
        ``n_jobs`` threads, with compiled tree inference: memory beyond the
        table and the result is a few blocks, whatever the number of rows.

        Parameters
        ----------
        table : `~astropy.table.QTable` or `~astropy.table.Table`
            Pixel or global SED table (see `astro_dustml.sed`) with at least
            the WISE 3.4 micron column and ``pixel_area``.
        warn : bool, optional
            Issue an `~astro_dustml.exceptions.OutOfDomainWarning` when rows
            are out of the training domain.
        block_size : int, optional
            Rows per block (default 8192); the result does not depend on it.
        photometric_noise : bool, optional
            Add to ``<target>_err``, in quadrature, the scatter that the
            flux errors (``<band>_err``) cause in the prediction: central
            differences at one sigma of each band, summed in quadrature over
            the bands. The model's own sigma was learned from its training
            rows; for a model trained on global photometry (high
            signal-to-noise ratios), pixels of low signal-to-noise ratio
            need this term. It costs two predictions of the means per band,
            for the rows where that band's error is at least 1%.

        Returns
        -------
        predictions : `~astropy.table.QTable`
            One row per input row: each target and ``<target>_err`` (1 sigma)
            with its unit (``sLd``, ``sMd`` in dex, ``Td`` in K); NaN where
            WISE 3.4 micron is unusable or fewer than ``min_bands`` bands are
            present.  ``out_of_domain`` (bool) flags those rows and rows with
            a feature outside the training range; ``n_bands`` counts the usable
            bands.
        """
        self._check_fitted()
        table = _as_qtable(table, 'table')
        if block_size is None:
            block_size = _BLOCK
        if (isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral)
                or block_size < 1):
            raise ValueError(f'block_size must be a positive integer (rows per block), '
                             f'got {block_size!r}.')
        if not hasattr(self, 'trees_'):
            self._compile()
        n = len(table)
        result = {name: np.full(n, np.nan) for target in self.targets_
                  for name in (target, f'{target}_err')}
        out_of_domain = np.ones(n, dtype=bool)
        n_bands = np.zeros(n, dtype=np.int16)

        def run(start):
            stop = min(start + block_size, n)
            X, _, valid = self._features(table[start:stop])
            nb = valid.sum(axis=1)
            ok = self._usable(X, valid, self.bands_)
            with np.errstate(invalid='ignore'):
                outside = np.any(np.isfinite(X) & ((X < self.feature_min_)
                                                   | (X > self.feature_max_)), axis=1)
            out_of_domain[start:stop] = ~ok | outside
            n_bands[start:stop] = nb
            if not ok.any():
                return
            rows = start + np.flatnonzero(ok)
            Xok = X[ok]
            Xs = self._sigma_inputs(Xok, nb[ok])
            full = self._full_band_rows(valid[ok])
            noise = {}
            if photometric_noise:
                noise = _photometric_scatter(
                    lambda t, i: self._all_means(self._features(t)[0], full[i]),
                    table[rows], self.bands_)
            for target, mean in self._all_means(Xok, full).items():
                result[target][rows] = mean
                cal = self.calibration_[target]
                log_sigma = _predict_log_sigma(self.trees_[target]['sigma'],
                                               len(self.boosters_[target]),
                                               cal['base_log_sigma'], Xs)
                sigma = cal['scale'] * np.exp(log_sigma)
                if target in noise:
                    sigma = np.hypot(sigma, noise[target])
                result[f'{target}_err'][rows] = sigma

        starts = range(0, n, block_size)
        threads = min(self._threads(), len(starts))
        if threads > 1:
            # the tree walk and most numpy work release the GIL
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(run, starts))
        else:
            for start in starts:
                run(start)
        out = QTable()
        for target, unit in self.targets_.items():
            out[target] = result.pop(target) * unit
            out[f'{target}_err'] = result.pop(f'{target}_err') * unit
        out['out_of_domain'] = out_of_domain
        out['n_bands'] = n_bands
        n_bad = int(out_of_domain.sum())
        if warn and n_bad:
            warnings.warn(
                f'{n_bad} of {len(out)} rows are outside the training domain (too few bands '
                f'or features beyond the training range); their predictions are '
                f'extrapolations or NaN (see the out_of_domain column).', OutOfDomainWarning)
        return out

    # --- persistence ----------------------------------------------------------------

    def save(self, path, *, overwrite=False):
        """
        Save the model as a folder of portable files with a ``model.json`` card.

        Parameters
        ----------
        path : str or `~pathlib.Path`
            Folder to write (created).
        overwrite : bool, optional
            Replace the model of an existing folder. Only the model's own
            files are replaced or removed: an old file the new model lacks
            goes only if the old, verified card lists it with a matching
            SHA-256; every other file in the folder stays, and a
            ``model.json`` that is not a card of this package is refused.

        Returns
        -------
        path : `~pathlib.Path`

        Notes
        -----
        The files are written to a temporary folder beside ``path`` and moved
        in when all are written, so an interrupted save leaves the old model
        as it was.
        """
        self._check_fitted()
        return _save(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path):
        """
        Load a model saved with `save`, verifying the SHA-256 of every file.

        Parameters
        ----------
        path : str or `~pathlib.Path`
            Model folder.

        Returns
        -------
        model : `DustModel`

        Raises
        ------
        astro_dustml.exceptions.ModelIntegrityError
            If the card or a file is missing, or a file fails its hash.
        """
        return _load(cls, path)
