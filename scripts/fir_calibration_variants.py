"""
Which form of the far-infrared temperature calibration, decided on the training split.

Issue 21 asks for held-out Td RMS <= 2 K wherever PACS 100 or 160 is fitted.
This script compares, for every band set with PACS 100 or 160 and enough
training galaxies, candidate forms of ``T_cat = f(T_fit, sigma_fit)`` by
grouped 4-fold cross-validation on the training split only (the folds of
``scripts/calibrate_fir.py``), so that the choice never sees the held-out
galaxies:

- ``linear``: ``T_fit + c0 + c1 (T_fit - 20 K)``, the shipped form;
- ``shrunk``: the same on the posterior mean under a Gaussian population prior
  on ``T_fit`` (mean and width by empirical Bayes on the fold's training
  galaxies), i.e. error-weighted shrinkage of noisy fits;
- ``sigma term``: ``linear`` plus a term in the fit's own ``sigma_fit``;
- ``quadratic``: ``linear`` plus ``c2 (T_fit - 20 K)^2``;
- ``weighted``: ``linear`` fitted with weights ``1 / (sigma_fit^2 + 1 K^2)``.

The held-out RMS of each form is printed too, for information only (it is not
used to choose).  Usage::

    python scripts/fir_calibration_variants.py [--data ../shared/data]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'scripts'))
import calibrate_fir as cf  # noqa: E402
from astro_dustml.datasets import load_dustpedia_global  # noqa: E402


def population_prior(t, err):
    """``(mean, width)`` of ``t ~ N(mean, width^2 + err^2)`` by maximum likelihood."""
    def nll(p):
        var = np.exp(2 * p[1]) + err ** 2
        return 0.5 * np.sum((t - p[0]) ** 2 / var + np.log(var))
    mean, log_width = minimize(nll, [np.mean(t), np.log(np.std(t))], method='Nelder-Mead').x
    return mean, np.exp(log_width)


def _design(t, err, form, train):
    """Regressors of ``T_cat - T`` and the temperature ``T`` they correct."""
    if form == 'shrunk':
        mean, width = population_prior(t[train], err[train])
        t = mean + width ** 2 / (width ** 2 + err ** 2) * (t - mean)
    columns = [np.ones_like(t), t - cf._T_REFERENCE]
    if form == 'sigma term':
        columns.append(err)
    if form == 'quadratic':
        columns.append((t - cf._T_REFERENCE) ** 2)
    return np.stack(columns, axis=1), t


def predict(t, err, target, train, form):
    """Calibrated temperatures for every row, coefficients fitted on ``train`` rows."""
    design, t = _design(t, err, form, train)
    weight = 1 / (err ** 2 + 1.0) if form == 'weighted' else np.ones_like(t)
    root = np.sqrt(weight[train])[:, None]
    coef, *_ = np.linalg.lstsq(design[train] * root, (target - t)[train] * root[:, 0],
                               rcond=None)
    return t + design @ coef


FORMS = ('linear', 'shrunk', 'sigma term', 'quadratic', 'weighted')


def compare(table, bands, train):
    """Training-split grouped-CV and held-out Td RMSE (K) of each form, or None."""
    raw = cf._raw_fit(table, bands)
    good = cf._usable(table, raw)
    idx, test = np.flatnonzero(good & train), np.flatnonzero(good & ~train)
    if idx.size < cf.MIN_GALAXIES:
        return None
    target = table['Td'].value
    out = {}
    for form in FORMS:
        oof = np.full(len(table), np.nan)
        for tr_, te_ in cf.folds(np.asarray(table['galaxy'])[idx]):
            rows = np.zeros(len(table), bool)
            rows[idx[tr_]] = True
            oof[idx[te_]] = predict(raw['Td'], raw['Td_err'], target, rows, form)[idx[te_]]
        rows = np.zeros(len(table), bool)
        rows[idx] = True
        full = predict(raw['Td'], raw['Td_err'], target, rows, form)
        out[form] = (float(np.sqrt(np.mean((oof - target)[idx] ** 2))),
                     float(np.sqrt(np.mean((full - target)[test] ** 2))))
    return {'n_train': int(idx.size), 'n_test': int(test.size), 'rmse': out}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=str(ROOT.parent / 'shared' / 'data'))
    args = parser.parse_args(argv)
    table = load_dustpedia_global(path=Path(args.data) / 'dustpedia', download=False,
                                  bands=cf.FIT_BANDS)
    table = cf.clean_fir(table)
    train = ~cf.held_out(table['galaxy'])
    print('Td RMSE (K): training-split grouped 4-fold CV / held-out (held-out not used '
          'to choose); best = lowest CV')
    print(f'{"band set":48s} {"n":>7s} ' + ' '.join(f'{f:>13s}' for f in FORMS) + '  best')
    from itertools import combinations
    for k in range(2, len(cf.FIT_BANDS) + 1):
        for bands in combinations(cf.FIT_BANDS, k):
            if not {'PACS_100', 'PACS_160'} & set(bands):
                continue
            result = compare(table, list(bands), train)
            if result is None:
                continue
            rmse = result['rmse']
            best = min(rmse, key=lambda f: rmse[f][0])
            print(f'{"+".join(bands):48s} {result["n_train"]:3d}/{result["n_test"]:<3d} '
                  + ' '.join(f'{rmse[f][0]:5.2f} / {rmse[f][1]:4.2f}' for f in FORMS)
                  + f'  {best}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
