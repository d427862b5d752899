"""Ridge regression as plain arrays: missing colours filled and flagged, range clipped."""

import warnings

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.preprocessing import StandardScaler

from ._forest import _compiled


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
    out = np.empty(len(X))
    _ridge_rows(np.asarray(X, dtype=np.float64), linear['linear_lo'], linear['linear_hi'],
                linear['linear_fill'], linear['linear_coef'],
                float(linear['linear_intercept'][0]), out)
    return out


@_compiled
def _ridge_rows(X, lo, hi, fill, coef, intercept, out):
    # one pass over each row, no temporaries; a row's sum never depends on
    # the other rows of its block
    n = X.shape[1]
    for i in range(X.shape[0]):
        total = 0.0
        for j in range(n):
            x = X[i, j]
            if x == x:  # clipped; a missing (NaN) colour takes its fill and indicator
                total += min(max(x, lo[j]), hi[j]) * coef[j]
            else:
                total += fill[j] * coef[j] + coef[n + j]
        out[i] = total + intercept
