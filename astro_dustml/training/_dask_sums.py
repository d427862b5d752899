"""
The reductions `~astro_dustml.training.fit_resolved_dask` sums over Dask partitions.

Weighted Gram matrices and leave-one-out sums of the ridge (the same penalty
choice as `~sklearn.linear_model.RidgeCV`), per-fold cells of the forest and
residual rows, and the weight, R^2 and chi^2 sums of the calibration. Each
function maps one partition (a pandas frame) to arrays the client adds up.

Uses numpy and pandas only.
"""

import numpy as np

# the penalties RidgeCV tries in the in-memory ridge (model._linear._fit_linear)
_ALPHAS = np.logspace(0, 4, 9)


# ------------------------------------------------------------------- ridge


def _ridge_stats(X, y, w, cell, n_cells, centre):
    """
    Sums over the rows of each cell for a weighted ridge on ``[fill(X), isnan(X)]``.

    ``A = [x - centre (0 where missing), missing]``; every fill value and every
    union of cells is assembled from these sums later (`_ridge_system`).
    """
    finite = np.isfinite(X)
    shifted = np.where(finite, X - centre, 0.0)
    A = np.column_stack([shifted, ~finite]).astype(float)
    stats = []
    for c in range(n_cells):
        sel = cell == c
        a, yy, ww = A[sel], y[sel], w[sel]
        xf, fin = X[sel], finite[sel]
        stats.append({
            'n': int(sel.sum()), 'S0': ww.sum(), 'Sa': ww @ a, 'Saa': (a * ww[:, None]).T @ a,
            'Sy': ww @ yy, 'Say': (a * ww[:, None]).T @ yy,
            'count': fin.sum(axis=0), 'sum': shifted[sel].sum(axis=0),
            'lo': np.where(fin, xf, np.inf).min(axis=0, initial=np.inf),
            'hi': np.where(fin, xf, -np.inf).max(axis=0, initial=-np.inf),
            'ymin': yy.min(initial=np.inf), 'ymax': yy.max(initial=-np.inf)})
    return stats


def _add_stats(a, b):
    out = {}
    for key in a:
        if key in ('lo', 'ymin'):
            out[key] = np.minimum(a[key], b[key])
        elif key in ('hi', 'ymax'):
            out[key] = np.maximum(a[key], b[key])
        else:
            out[key] = a[key] + b[key]
    return out


def _ridge_system(stats, centre):
    """
    The standardised, centred normal equations of one training set, as
    ``_fit_linear`` has them (weights of mean one, StandardScaler, RidgeCV).
    """
    p = len(centre)
    n, S0 = stats['n'], stats['S0']
    with np.errstate(invalid='ignore', divide='ignore'):
        lo = np.where(np.isfinite(stats['lo']), stats['lo'], np.nan)
        hi = np.where(np.isfinite(stats['hi']), stats['hi'], np.nan)
        fill = centre + stats['sum'] / stats['count']
    lo, hi, fill = (np.nan_to_num(a) for a in (lo, hi, fill))
    # Z - [centre, 0] = B A, with the missing entries of x at their fill value
    B = np.eye(2 * p)
    B[np.arange(p), p + np.arange(p)] = fill - centre
    s = n / S0  # weights of mean one
    mean_a = B @ stats['Sa'] / S0
    gram = s * (B @ stats['Saa'] @ B.T - S0 * np.outer(mean_a, mean_a))
    ybar = stats['Sy'] / S0
    cross = s * (B @ stats['Say'] - mean_a * stats['Sy'])
    # constant columns (a feature with one value, an indicator never or always
    # set): StandardScaler leaves them unscaled, so they stay exactly zero
    count = stats['count']
    constant = np.concatenate([(count == 0) | (lo == hi), (count == 0) | (count == n)])
    var = np.where(constant, 1.0, np.diag(gram) / n)
    scale = np.sqrt(var)
    gram = np.where(constant[:, None] | constant[None, :], 0.0, gram)
    cross = np.where(constant, 0.0, cross)
    gram = gram / np.outer(scale, scale)
    cross = cross / scale
    mean = mean_a + np.concatenate([centre, np.zeros(p)])
    eigval, eigvec = np.linalg.eigh(gram)
    return {'lo': lo, 'hi': hi, 'fill': fill, 'mean': mean, 'scale': scale,
            'constant': constant, 'eigval': eigval, 'eigvec': eigvec,
            'proj': eigvec.T @ cross, 'ybar': ybar, 'n': n, 's': s, 'S0': S0}


def _standardised(system, X):
    finite = np.isfinite(X)
    Z = np.column_stack([np.where(finite, X, system['fill']), ~finite])
    Zs = (Z - system['mean']) / system['scale']
    Zs[:, system['constant']] = 0.0
    return Zs


def _ridge_loo(system, X, y, w):
    """Per penalty, the sum of the weighted squared leave-one-out errors of these rows."""
    wn = w * system['s']
    q = _standardised(system, X) @ system['eigvec']
    inv = 1.0 / (system['eigval'][:, None] + _ALPHAS[None, :])  # (k, n_alpha)
    fitted = system['ybar'] + q @ (system['proj'][:, None] * inv)
    leverage = wn[:, None] * (1.0 / system['n'] + (q ** 2) @ inv)
    return np.sum(wn[:, None] * ((y[:, None] - fitted) / (1.0 - leverage)) ** 2, axis=0)


def _ridge_arrays(system, alpha):
    """The arrays `_linear_predict` applies, for penalty ``alpha``."""
    beta = system['eigvec'] @ (system['proj'] / (system['eigval'] + alpha))
    coef = beta / system['scale']
    coef[system['constant']] = 0.0  # unscaled columns of zeros: no effect in RidgeCV either
    return {'linear_lo': system['lo'], 'linear_hi': system['hi'],
            'linear_fill': system['fill'], 'linear_coef': coef,
            'linear_intercept': np.atleast_1d(system['ybar'] - coef @ system['mean'])}


def _cell_index(fold, copy, n_splits):
    return fold + n_splits * int(copy)


def _target_rows(frame, target, folds):
    """Rows with a finite target and a positive weight, and their fold."""
    y = frame[f'y_{target}'].to_numpy()
    w = frame['weight'].to_numpy()
    ok = np.isfinite(y) & (w > 0)
    return ok, folds[frame['galaxy'].to_numpy()]


def _cell_stats(frame, target, folds, n_splits, linear_columns, centre):
    ok, fold = _target_rows(frame, target, folds)
    sub = frame[ok]
    cell = fold[ok] + n_splits * sub['copy'].to_numpy().astype(int)
    y = sub[f'y_{target}'].to_numpy()
    w = sub['weight'].to_numpy()
    if centre is None:
        X = np.zeros((len(sub), 0))
        centre = np.zeros(0)
    else:
        X = sub[[f'f{j}' for j in linear_columns]].to_numpy(dtype=float)
    return _ridge_stats(X, y, w, cell, 2 * n_splits, centre)


def _in_spec(fold, copy, spec):
    held, with_copies = spec
    sel = fold != held if held is not None else np.ones(len(fold), bool)
    return sel if with_copies else sel & ~copy


def _loo_part(frame, target, folds, linear_columns, systems):
    ok, fold = _target_rows(frame, target, folds)
    sub = frame[ok]
    fold, copy = fold[ok], sub['copy'].to_numpy()
    X = sub[[f'f{j}' for j in linear_columns]].to_numpy(dtype=float)
    y, w = sub[f'y_{target}'].to_numpy(), sub['weight'].to_numpy()
    out = {}
    for spec, system in systems.items():
        sel = _in_spec(fold, copy, spec)
        out[spec] = _ridge_loo(system, X[sel], y[sel], w[sel])
    return _SpecSums(out)


class _SpecSums(dict):
    """Per-spec arrays that add up under ``sum``."""

    def __add__(self, other):
        if other == 0:
            return self
        return _SpecSums({k: v + other[k] for k, v in self.items()})

    __radd__ = __add__


def _forest_meta(columns):
    import pandas as pd
    return pd.DataFrame({**{c: np.zeros(0) for c in columns}, 'label': np.zeros(0),
                         'weight': np.zeros(0)})


def _forest_rows(frame, target, folds, spec, mean, norm, columns):
    """The rows of one training set: features, ridge residual, weight of mean one."""
    from ..model._linear import _linear_predict
    ok, fold = _target_rows(frame, target, folds)
    sel = ok.copy()
    sel[ok] = _in_spec(fold[ok], frame['copy'].to_numpy()[ok], spec)
    sub = frame[sel]
    y = sub[f'y_{target}'].to_numpy()
    if 'linear_columns' in mean:
        X = sub[columns].to_numpy(dtype=float)
        y = y - _linear_predict(mean, X[:, mean['linear_columns']])
    out = sub[columns].copy()
    out['label'] = y
    out['weight'] = sub['weight'].to_numpy() * norm
    return out


def _residual_meta(columns):
    import pandas as pd
    cols = {c: np.zeros(0, np.float32) for c in columns}
    cols.update({'r2': np.zeros(0), 'weight': np.zeros(0), 'observed': np.zeros(0, bool),
                 'sfold': np.zeros(0, np.int64)})
    return pd.DataFrame(cols)


def _residual_rows(frame, target, folds, sigma_folds, model, oof_means, columns):
    """Out-of-fold squared residuals and the uncertainty model's inputs."""
    import pandas as pd
    ok, fold = _target_rows(frame, target, folds)
    sub = frame[ok]
    fold = fold[ok]
    X = sub[columns].to_numpy(dtype=float)
    full = sub['full'].to_numpy()
    pred = np.full(len(sub), np.nan)
    for f, means in enumerate(oof_means):
        sel = fold == f
        if sel.any():
            pred[sel] = model._predict_means(means, X[sel], full[sel])
    r2 = (sub[f'y_{target}'].to_numpy() - pred) ** 2
    Xs = model._sigma_inputs(X, sub['n_bands'].to_numpy())
    out = pd.DataFrame(Xs, columns=[*columns, 'n_bands'], index=sub.index)
    out['r2'] = r2
    out['weight'] = sub['weight'].to_numpy()
    out['observed'] = ~sub['copy'].to_numpy()
    out['sfold'] = sigma_folds[sub['galaxy'].to_numpy()]
    return out


def _weight_sums(frame):
    w, r2 = frame['weight'].to_numpy(), frame['r2'].to_numpy()
    return np.array([w.sum(), len(w), r2.max(initial=0.0)])


def _log_r2_sums(frame, r2_max):
    w, r2 = frame['weight'].to_numpy(), frame['r2'].to_numpy()
    # the in-memory start: the weighted mean log r^2 (Gaussian: log sigma^2 - 1.27)
    logr2 = np.log(np.maximum(r2, 1e-12 * r2_max))
    return np.array([np.sum(w * logr2), w.sum()])


def _chi2_sums(frame, booster, base, columns):
    """Weighted chi^2 sums of the observed rows of the calibration galaxies."""
    import xgboost as xgb
    sel = (frame['sfold'].to_numpy() == 0) & frame['observed'].to_numpy()
    sub = frame[sel]
    Xs = xgb.DMatrix(sub[columns].to_numpy(dtype=np.float32), missing=np.nan,
                     base_margin=np.full(len(sub), base))
    log_sigma = booster.predict(Xs, output_margin=True).astype(float)
    w = sub['weight'].to_numpy()
    return np.array([np.sum(w * sub['r2'].to_numpy() / np.exp(2 * log_sigma)), w.sum()])
