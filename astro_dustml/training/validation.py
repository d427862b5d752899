"""
Grouped cross-validation of dust models and its figures.

Folds are grouped by galaxy, so that no galaxy has rows in both the training
and the test side of a fold, and every row is weighted ``1 / N_rows(galaxy)``
so that each galaxy counts once however many pixels it has (Dobbels & Baes
2021, Sect. 3).  The metrics carry bootstrap uncertainties in which whole
galaxies are resampled.
"""

from dataclasses import dataclass, field

import numpy as np
from astropy.table import QTable
from matplotlib.figure import Figure
from scipy.stats import gaussian_kde
from sklearn.base import clone
from sklearn.model_selection import GroupKFold

from ..model import DustModel, _groups_array, _shuffled_groups, _target_values, group_weights

__all__ = ['CrossValidationResult', 'cross_validate', 'regression_metrics',
           'plot_true_vs_predicted', 'plot_uncertainty_validation']


@dataclass
class CrossValidationResult:
    """
    Out-of-fold predictions and metrics of `cross_validate`.

    Attributes
    ----------
    predictions : `~astropy.table.QTable`
        One row per input row: ``galaxy``, ``fold``, ``weight`` and, per
        target, ``<target>_true``, ``<target>`` and ``<target>_err``
        (predicted mean and 1-sigma uncertainty), with units.
    metrics : `~astropy.table.QTable`
        One row per target; columns ``rmse``, ``r2``, ``me`` (mean error,
        predicted minus true), ``chi2`` (weighted mean squared normalised
        residual), each with a ``_err`` bootstrap uncertainty, plus
        ``rmse_between`` (RMSE of the galaxy-averaged values),
        ``rmse_within`` (RMSE within galaxies), ``n_rows`` and ``n_galaxies``.
    folds : list of tuple
        ``(train, test)`` row indices of each fold.
    models : list of `~astro_dustml.model.DustModel`
        The fitted model of each fold, with ``keep_models=True`` (else empty).
    """

    predictions: QTable
    metrics: QTable
    folds: list = field(default_factory=list)
    models: list = field(default_factory=list)

    def metric(self, target, name):
        """The value of metric ``name`` for ``target`` as a float."""
        row = np.flatnonzero(self.metrics['target'] == target)
        if row.size == 0:
            raise KeyError(f'no metrics for target {target!r}; '
                           f'targets are {list(self.metrics["target"])}.')
        return float(self.metrics[name][row[0]])


def _weighted_stats(pred, true, sigma, w):
    diff = pred - true
    sw = np.sum(w)
    mse = np.sum(w * diff ** 2) / sw
    mean_true = np.sum(w * true) / sw
    var = np.sum(w * (true - mean_true) ** 2) / sw
    out = {'rmse': np.sqrt(mse), 'me': np.sum(w * diff) / sw,
           'r2': 1 - mse / var if var > 0 else np.nan}
    out['chi2'] = (np.sum(w * (diff / sigma) ** 2) / sw if sigma is not None else np.nan)
    return out


def regression_metrics(pred, true, *, groups, sigma=None, weights=None, n_bootstrap=200,
                       random_state=0):
    """
    Weighted RMSE, R², mean error and chi² with bootstrap-over-galaxies errors.

    Parameters
    ----------
    pred, true : array-like
        Predicted and true values (plain numbers in one unit).
    groups : array-like
        Galaxy of each row.
    sigma : array-like, optional
        Predicted 1-sigma uncertainties; gives ``chi2``.
    weights : array-like, optional
        Row weights; default ``1 / N_rows(galaxy)``.
    n_bootstrap : int, optional
        Bootstrap resamplings of the galaxies for the ``_err`` values.
    random_state : int, optional
        Seed of the bootstrap.

    Returns
    -------
    metrics : dict
        ``rmse``, ``r2``, ``me``, ``chi2`` and their ``_err``;
        ``rmse_between`` (galaxy-averaged values), ``rmse_within`` (deviations
        from the galaxy averages), ``n_rows``, ``n_galaxies``.  With weights
        summing to the same value per galaxy,
        ``rmse**2 == rmse_between**2 + rmse_within**2``.

    Examples
    --------
    >>> import numpy as np
    >>> from astro_dustml.training import regression_metrics
    >>> m = regression_metrics([1., 2., 3., 5.], [1., 2., 3., 4.], groups=[0, 1, 2, 3])
    >>> float(m['rmse']), float(m['me'])
    (0.5, 0.25)
    """
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    groups = np.asarray(groups)
    w = group_weights(groups) if weights is None else np.asarray(weights, float)
    sigma = None if sigma is None else np.asarray(sigma, float)
    ok = np.isfinite(pred) & np.isfinite(true) & (w > 0)
    if sigma is not None:
        ok &= np.isfinite(sigma) & (sigma > 0)
    pred, true, w, groups = pred[ok], true[ok], w[ok], groups[ok]
    sigma = None if sigma is None else sigma[ok]
    if not ok.any():
        raise ValueError('no row has finite predicted and true values (and a positive weight '
                         'and sigma); nothing to score: check the inputs for NaN.')
    out = _weighted_stats(pred, true, sigma, w)
    uniq, inverse = np.unique(groups, return_inverse=True)
    inverse = inverse.ravel()
    # galaxy averages: between-galaxy scatter; deviations from them: within
    wg = np.bincount(inverse, w)
    pg = np.bincount(inverse, w * pred) / wg
    tg = np.bincount(inverse, w * true) / wg
    out['rmse_between'] = np.sqrt(np.sum(wg * (pg - tg) ** 2) / np.sum(wg))
    within = (pred - pg[inverse]) - (true - tg[inverse])
    out['rmse_within'] = np.sqrt(np.sum(w * within ** 2) / np.sum(w))
    rng = np.random.default_rng(random_state)
    rows_of = np.split(np.argsort(inverse, kind='stable'), np.cumsum(np.bincount(inverse))[:-1])
    boot = {k: [] for k in ('rmse', 'r2', 'me', 'chi2')}
    for _ in range(n_bootstrap):
        pick = np.concatenate([rows_of[i] for i in rng.integers(0, len(uniq), len(uniq))])
        s = _weighted_stats(pred[pick], true[pick], None if sigma is None else sigma[pick],
                            w[pick])
        for k in boot:
            boot[k].append(s[k])
    for k in boot:
        out[f'{k}_err'] = float(np.std(boot[k])) if n_bootstrap > 1 else np.nan
    out = {k: float(v) for k, v in out.items()}
    out['n_rows'] = int(ok.sum())
    out['n_galaxies'] = int(len(uniq))
    return out


def cross_validate(table, targets=('sLd', 'sMd', 'Td'), *, groups, n_splits=4, model=None,
                   sample_weight=None, test_table=None, n_bootstrap=200, random_state=0,
                   keep_models=False):
    """
    Grouped K-fold cross-validation of a `~astro_dustml.model.DustModel`.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        Training table (SED columns and targets).
    targets : sequence of str, optional
        Target columns.
    groups : str or array-like
        Galaxy of each row (column name or labels); folds never split one.
    n_splits : int, optional
        Number of folds.
    model : `~astro_dustml.model.DustModel`, optional
        Unfitted model to clone in each fold; default ``DustModel()``.
    sample_weight : array-like, optional
        Training weights; default ``1 / N_rows(galaxy)``.  The metrics always
        use ``1 / N_rows(galaxy)``.
    test_table : `~astropy.table.QTable`, optional
        Table predicted in each fold instead of ``table`` (same rows, e.g.
        with some bands removed) to validate band subsets.
    n_bootstrap : int, optional
        Bootstrap resamplings of galaxies for the metric uncertainties.
    random_state : int, optional
        Seed of the fold assignment and bootstrap.
    keep_models : bool, optional
        Keep the fitted model of each fold in the result.

    Returns
    -------
    result : `CrossValidationResult`

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.table import QTable
    >>> from astro_dustml.model import DustModel
    >>> from astro_dustml.training import cross_validate
    >>> rng = np.random.default_rng(1)
    >>> n = 200
    >>> colour = rng.uniform(-1, 1, n)
    >>> t = QTable({'galaxy': [f'g{i}' for i in range(n)],
    ...             'WISE_3.4': np.ones(n) * u.Jy, 'WISE_4.6': 10 ** colour * u.Jy,
    ...             'WISE_12': np.ones(n) * u.Jy, 'pixel_area': np.full(n, 1e-6) * u.sr,
    ...             'Td': (25 + 5 * colour + rng.normal(0, 0.5, n)) * u.K})
    >>> model = DustModel(bands=['WISE_3.4', 'WISE_4.6', 'WISE_12'], n_estimators=20,
    ...                   n_dropout=0, sigma_rounds=30)
    >>> cv = cross_validate(t, ['Td'], groups='galaxy', model=model, n_bootstrap=20)
    >>> cv.metric('Td', 'rmse') < 1.0
    True
    """
    targets = [targets] if isinstance(targets, str) else list(targets)
    groups = _groups_array(table, groups)
    model = DustModel() if model is None else model
    test_table = table if test_table is None else test_table
    if len(test_table) != len(table):
        raise ValueError('test_table must have the same rows as table; pass a copy of table '
                         'with bands removed or flagged, not a subset.')
    weights = group_weights(groups)
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise ValueError(f'{n_groups} galaxies cannot make {n_splits} grouped folds; '
                         'lower n_splits or add galaxies.')
    pred = {t: np.full(len(table), np.nan) for t in targets}
    err = {t: np.full(len(table), np.nan) for t in targets}
    fold_of = np.full(len(table), -1)
    folds, models = [], []
    splitter = GroupKFold(n_splits=n_splits)
    for i, (train, test) in enumerate(splitter.split(np.zeros(len(table)), groups=_shuffled_groups(
            groups, random_state))):
        fold_model = clone(model)
        sw = None if sample_weight is None else np.asarray(sample_weight)[train]
        fold_model.fit(table[train], targets, groups=groups[train], sample_weight=sw)
        out = fold_model.predict(test_table[test], warn=False)
        for t in targets:
            pred[t][test] = np.asarray(out[t].value)
            err[t][test] = np.asarray(out[f'{t}_err'].value)
        fold_of[test] = i
        folds.append((train, test))
        if keep_models:
            models.append(fold_model)
    predictions = QTable({'galaxy': groups, 'fold': fold_of, 'weight': weights})
    rows = []
    for t in targets:
        true, unit = _target_values(table, t)
        predictions[f'{t}_true'] = true * unit
        predictions[t] = pred[t] * unit
        predictions[f'{t}_err'] = err[t] * unit
        m = regression_metrics(pred[t], true, groups=groups, sigma=err[t], weights=weights,
                               n_bootstrap=n_bootstrap, random_state=random_state)
        m['target'] = t
        m['unit'] = unit.to_string()
        rows.append(m)
    names = ['target', 'unit', 'n_galaxies', 'n_rows', 'rmse', 'rmse_err', 'r2', 'r2_err',
             'me', 'me_err', 'chi2', 'chi2_err', 'rmse_between', 'rmse_within']
    metrics = QTable(rows=[[r[k] for k in names] for r in rows], names=names)
    return CrossValidationResult(predictions=predictions, metrics=metrics, folds=folds,
                                 models=models)


def _weighted_quantiles(values, weights, quantiles):
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cdf = (np.cumsum(w) - 0.5 * w) / np.sum(w)
    return np.interp(quantiles, cdf, v)


def _columns(result, target):
    tab = result.predictions if isinstance(result, CrossValidationResult) else result
    if f'{target}_true' not in tab.colnames:
        raise ValueError(f'no {target}_true column: give a CrossValidationResult or its '
                         f'predictions table for a target it contains.')
    true = np.asarray(tab[f'{target}_true'].value, float)
    pred = np.asarray(tab[target].value, float)
    err = np.asarray(tab[f'{target}_err'].value, float)
    w = np.asarray(tab['weight'], float) if 'weight' in tab.colnames else np.ones(len(tab))
    unit = getattr(tab[target], 'unit', None)
    ok = np.isfinite(true) & np.isfinite(pred) & np.isfinite(err) & (err > 0)
    return true[ok], pred[ok], err[ok], w[ok], unit


def _new_axes(axes, nrows, ncols, panel_size):
    """The figure and ``(nrows, ncols)`` array of the given axes, or of a new figure."""
    if axes is not None:
        axes = np.asarray(axes).reshape(nrows, ncols)
        return axes.flat[0].figure, axes
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout='constrained')
    return fig, np.array(fig.subplots(nrows, ncols, squeeze=False))


def plot_true_vs_predicted(result, target, *, ax=None, n_bins=10, max_points=4000,
                           random_state=0):
    """
    Predicted versus true values coloured by their weighted density (paper Fig. 1).

    Points are coloured with a weighted Gaussian KDE; lines show the 16th,
    50th and 84th weighted percentiles of the prediction in bins of the true
    value, next to the one-to-one line.

    Parameters
    ----------
    result : `CrossValidationResult` or `~astropy.table.QTable`
        Cross-validation result (or its ``predictions`` table).
    target : str
        Target to plot.
    ax : `~matplotlib.axes.Axes`, optional
        Axes to draw in; a new figure otherwise.
    n_bins : int, optional
        Bins of the true value for the percentile lines.
    max_points : int, optional
        Rows drawn at most (a weighted random subset beyond).
    random_state : int, optional
        Seed of that subset.

    Returns
    -------
    fig : `~matplotlib.figure.Figure`

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.table import QTable
    >>> from astro_dustml.training import plot_true_vs_predicted
    >>> rng = np.random.default_rng(0)
    >>> true = rng.normal(25, 3, 300)
    >>> tab = QTable({'Td_true': true * u.K, 'Td': (true + rng.normal(0, 1, 300)) * u.K,
    ...               'Td_err': np.ones(300) * u.K, 'weight': np.ones(300)})
    >>> fig = plot_true_vs_predicted(tab, 'Td')
    """
    true, pred, _, w, unit = _columns(result, target)
    fig, axes = _new_axes(ax, 1, 1, (5, 4.5))
    ax = axes[0, 0]
    rng = np.random.default_rng(random_state)
    if len(true) > max_points:
        pick = rng.choice(len(true), max_points, replace=False, p=w / w.sum())
        xs, ys = true[pick], pred[pick]
    else:
        xs, ys = true, pred
    density = gaussian_kde(np.vstack([true, pred]), weights=w)(np.vstack([xs, ys]))
    order = np.argsort(density)
    ax.scatter(xs[order], ys[order], c=density[order], s=6, cmap='viridis', rasterized=True)
    lo, hi = np.percentile(np.concatenate([true, pred]), [0.5, 99.5])
    ax.plot([lo, hi], [lo, hi], color='k', lw=1, ls=':', label='1:1')
    edges = np.linspace(np.min(true), np.max(true), n_bins + 1)
    centres, lines = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        inside = (true >= a) & (true <= b)
        if inside.sum() >= 5:
            centres.append(0.5 * (a + b))
            lines.append(_weighted_quantiles(pred[inside], w[inside], [0.16, 0.5, 0.84]))
    if lines:
        lines = np.array(lines)
        ax.plot(centres, lines[:, 1], color='C3', lw=2, label='median')
        ax.plot(centres, lines[:, 0], color='C3', lw=1, ls='--', label='16-84%')
        ax.plot(centres, lines[:, 2], color='C3', lw=1, ls='--')
    label = f' [{unit}]' if unit is not None else ''
    ax.set_xlabel(f'true {target}{label}')
    ax.set_ylabel(f'predicted {target}{label}')
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.legend(loc='upper left', fontsize='small')
    return fig


def plot_uncertainty_validation(result, targets=None, *, n_bins=8, axes=None):
    """
    How well the predicted uncertainties match the errors (paper Fig. 4).

    Top row: root-mean-square error in bins of predicted uncertainty against
    the one-to-one line.  Bottom row: weighted histogram of the normalised
    residuals ``(predicted - true) / sigma`` against a standard normal.

    Parameters
    ----------
    result : `CrossValidationResult` or `~astropy.table.QTable`
        Cross-validation result (or its ``predictions`` table).
    targets : sequence of str, optional
        Targets to show; default all in the result.
    n_bins : int, optional
        Bins of predicted uncertainty (weighted quantiles).
    axes : array of `~matplotlib.axes.Axes`, optional
        ``(2, n_targets)`` axes; a new figure otherwise.

    Returns
    -------
    fig : `~matplotlib.figure.Figure`

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.table import QTable
    >>> from astro_dustml.training import plot_uncertainty_validation
    >>> rng = np.random.default_rng(0)
    >>> sig = rng.uniform(0.5, 2, 300)
    >>> tab = QTable({'Td_true': np.zeros(300) * u.K, 'Td': rng.normal(0, sig) * u.K,
    ...               'Td_err': sig * u.K, 'weight': np.ones(300)})
    >>> fig = plot_uncertainty_validation(tab)
    """
    tab = result.predictions if isinstance(result, CrossValidationResult) else result
    if targets is None:
        targets = [c[:-5] for c in tab.colnames if c.endswith('_true')]
    targets = [targets] if isinstance(targets, str) else list(targets)
    fig, axes = _new_axes(axes, 2, len(targets), (4, 3.5))
    z = np.linspace(-4, 4, 200)
    for j, target in enumerate(targets):
        true, pred, err, w, unit = _columns(result, target)
        resid = pred - true
        edges = _weighted_quantiles(err, w, np.linspace(0, 1, n_bins + 1))
        x, y = [], []
        for a, b in zip(edges[:-1], edges[1:]):
            inside = (err >= a) & (err <= b)
            if inside.any():
                x.append(np.sum(w[inside] * err[inside]) / np.sum(w[inside]))
                y.append(np.sqrt(np.sum(w[inside] * resid[inside] ** 2) / np.sum(w[inside])))
        ax = axes[0, j]
        ax.plot(x, y, 'o-', color='C0', label='RMS error')
        top = max(np.max(x), np.max(y)) * 1.1
        ax.plot([0, top], [0, top], 'k:', label='1:1')
        label = f' [{unit}]' if unit is not None else ''
        ax.set_xlabel(f'predicted {target} uncertainty{label}')
        ax.set_ylabel(f'RMS {target} error{label}')
        ax.legend(loc='upper left', fontsize='small')
        ax = axes[1, j]
        chi2 = np.sum(w * (resid / err) ** 2) / np.sum(w)
        ax.hist(resid / err, bins=np.linspace(-4, 4, 33), weights=w / np.sum(w) / 0.25,
                histtype='step', color='C0', label=f'chi$^2$ = {chi2:.2f}')
        ax.plot(z, np.exp(-0.5 * z ** 2) / np.sqrt(2 * np.pi), 'k:', label='N(0, 1)')
        ax.set_xlabel(f'{target} (predicted - true) / sigma')
        ax.set_ylabel('density')
        ax.legend(loc='upper left', fontsize='small')
    return fig
