"""
The uncertainty model: xgboost boosters of log sigma with a Gaussian likelihood.

Fitted on out-of-fold residuals of the mean model (`_oof_residuals`): grouped
folds choose the number of rounds and the calibration (held-out chi^2 of one),
then one booster per target is fitted on every row.  A saved model with several
boosters per target (one per fold, as earlier versions made) still loads: their
log sigma is averaged.
"""

import numpy as np
import xgboost as xgb
from scipy.optimize import brentq
from sklearn.model_selection import GroupKFold

from ._forest import _booster_trees, _Trees
from ._groups import _shuffled_groups


def _sigma_trees(boosters):
    """All trees of a target's boosters as one compiled `_Trees`."""
    return _Trees.concatenate([_booster_trees(b) for b in boosters])


def _predict_log_sigma(trees, n_boosters, base, Xs):
    """The boosters' mean log sigma: ``base`` plus the mean over boosters of their leaf sums."""
    return base + trees.sum_leaves(Xs) / n_boosters


def _oof_residuals(model, X, y, w, groups, copy, full, seed):
    """Residuals of the mean models on galaxies they were not trained on."""
    pred = np.full(len(y), np.nan)
    folds = GroupKFold(n_splits=model.n_inner_splits)
    for i, (train, test) in enumerate(folds.split(X, y, _shuffled_groups(groups, seed))):
        means = model._fit_means(X[train], y[train], w[train], copy[train], seed + i + 1)
        pred[test] = model._predict_means(means, X[test], full[test])
    return y - pred


def _fit_sigma(model, Xs, residual, w, groups, seed, var_target, observed):
    """
    Gaussian-NLL boosting of log sigma on out-of-fold residuals.

    One booster per grouped fold, early-stopped on its held-out galaxies,
    sets the number of rounds (the folds' mean).  Boosters of that many
    rounds, one per fold, give held-out predictions: the pooled held-out
    chi^2 of the ``observed`` rows (not the band-dropout copies) of all
    folds sets the calibration scale (so every galaxy serves once as
    validation).  The booster kept is fitted on every row with the same
    rounds: one booster instead of the folds' average, which would cost as
    many trees as all folds together at prediction time.  With
    ``var_target`` (the variance of each target value) the likelihood is
    that of the total variance ``sigma**2 + var_target``.
    """
    r2 = residual ** 2
    e2 = np.asarray(var_target, float)
    # start from the typical residual, not the RMS: a few huge residuals (of
    # copies with bands dropped) would otherwise leave the good rows too wide;
    # for Gaussian residuals E[log r^2] = log sigma^2 - 1.27
    logr2 = np.log(np.maximum(r2, 1e-12 * np.max(r2)))
    base = 0.5 * (np.sum(w * logr2) / np.sum(w) + 1.2704)
    if np.any(e2 > 0):
        # the same for what the target errors leave unexplained
        excess = np.maximum(r2 - e2, 0.01 * r2)
        base = 0.5 * (np.sum(w * np.log(np.maximum(excess, 1e-12 * np.max(r2))))
                      / np.sum(w) + 1.2704)

    def dmatrix(rows):
        return xgb.DMatrix(Xs[rows], weight=w[rows], base_margin=np.full(len(rows), base),
                           missing=np.nan)

    def train(rows, params, *, rounds, cal=None):
        # loss r^2 / V / 2 + log(V) / 2 with V = exp(2s) + e^2; the expected
        # Hessian 2 q^2 (q = exp(2s) / V) replaces the observed one, which
        # vanishes for small residuals (q = 1 without target errors)
        dfit = dmatrix(rows)
        res2 = {id(dfit): (r2[rows], e2[rows])}

        def objective(log_sigma, dtrain):
            wt = dtrain.get_weight()
            rr, ee = res2[id(dtrain)]
            var = np.exp(2 * log_sigma) + ee
            q = np.exp(2 * log_sigma) / var
            return wt * q * (1.0 - rr / var), 2.0 * wt * q ** 2

        if cal is None:
            return xgb.train(params, dfit, num_boost_round=rounds, obj=objective)
        dcal = dmatrix(cal)
        res2[id(dcal)] = (r2[cal], e2[cal])

        def metric(log_sigma, dmat):
            wt = dmat.get_weight()
            rr, ee = res2[id(dmat)]
            var = np.exp(2 * log_sigma) + ee
            loss = 0.5 * rr / var + 0.5 * np.log(var)
            return 'nll', float(np.sum(wt * loss) / np.sum(wt))

        booster = xgb.train(params, dfit, num_boost_round=rounds, obj=objective,
                            custom_metric=metric, evals=[(dcal, 'cal')],
                            early_stopping_rounds=30, verbose_eval=False)
        best = getattr(booster, 'best_iteration', None)
        return booster if best is None else booster[:best + 1]

    folds = list(GroupKFold(n_splits=model.n_inner_splits).split(
        Xs, residual, _shuffled_groups(groups, seed + 7)))
    fold_rounds = [int(train(fit, model._xgb_params(seed + i), rounds=model.sigma_rounds,
                             cal=cal).num_boosted_rounds())
                   for i, (fit, cal) in enumerate(folds)]
    rounds = max(int(round(np.mean(fold_rounds))), 1)
    # the calibration is that of what is kept: boosters of that many rounds,
    # not early-stopped on (and so flattered by) their own held-out galaxies
    held_out = np.full(len(residual), np.nan)
    for i, (fit, cal) in enumerate(folds):
        held_out[cal] = train(fit, model._xgb_params(seed + i), rounds=rounds).predict(
            dmatrix(cal), output_margin=True)
    booster = train(np.arange(len(Xs)), model._xgb_params(seed + model.n_inner_splits),
                    rounds=rounds)
    sig2 = np.exp(2 * held_out)
    w, r2, sig2, e2 = w[observed], r2[observed], sig2[observed], e2[observed]
    chi2 = np.sum(w * r2 / (sig2 + e2)) / np.sum(w)
    scale = np.sqrt(chi2)
    if np.any(e2 > 0):
        # the scale of sigma alone that brings the total-variance chi^2 to one
        def excess(log_c):
            return np.sum(w * r2 / (np.exp(2 * log_c) * sig2 + e2)) / np.sum(w) - 1
        lo, hi = np.log(1e-3), np.log(1e3)
        if excess(lo) <= 0:
            scale = 1e-3
        elif excess(hi) >= 0:
            scale = 1e3
        else:
            scale = float(np.exp(brentq(excess, lo, hi, xtol=1e-6)))
    return [booster], {'base_log_sigma': float(base), 'scale': float(scale),
                       'chi2_before': float(chi2), 'n_rounds': [rounds],
                       'fold_rounds': fold_rounds}
