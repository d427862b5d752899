"""Ridge regression as plain arrays: missing colours filled and flagged, range clipped."""

import warnings

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.preprocessing import StandardScaler


def _fit_linear(X, y, w):
    """
    Ridge regression on ``X`` with NaN filled by the column mean plus one
    missing-value indicator per column, as arrays `_linear_predict` applies.
    """
    w = w / w.mean()  # RidgeCV's alphas are relative to the total weight
    finite = np.isfinite(X)
    with np.errstate(invalid='ignore'), warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)  # all-NaN columns
        lo, hi, fill = np.nanmin(X, axis=0), np.nanmax(X, axis=0), np.nanmean(X, axis=0)
    lo, hi, fill = (np.nan_to_num(a) for a in (lo, hi, fill))
    Z = np.column_stack([np.where(finite, X, fill), ~finite])
    scaler = StandardScaler().fit(Z, sample_weight=w)
    ridge = RidgeCV(alphas=np.logspace(0, 4, 9)).fit(scaler.transform(Z), y, sample_weight=w)
    coef = ridge.coef_ / scaler.scale_
    return {'linear_lo': lo, 'linear_hi': hi, 'linear_fill': fill, 'linear_coef': coef,
            'linear_intercept': np.atleast_1d(ridge.intercept_ - coef @ scaler.mean_)}


def _linear_predict(linear, X):
    """Ridge prediction; features are clipped to the training range so it never extrapolates."""
    X = np.clip(X, linear['linear_lo'], linear['linear_hi'])
    finite = np.isfinite(X)
    coef = linear['linear_coef']
    n = X.shape[1]
    # the fill and the indicator columns without stacking a copy twice as wide; a
    # row-wise sum, not BLAS, so that a row's result does not depend on its block
    terms = np.where(finite, X, linear['linear_fill']) * coef[:n]
    terms += np.where(finite, 0.0, coef[n:])
    return terms.sum(axis=1) + linear['linear_intercept'][0]
