"""
Grouped 4-fold cross-validation of the pretrained DustPedia models.

Prints, for ``dustpedia-global`` (observed fluxes) and
``dustpedia-global-cigale`` (pcigale UV-MIR fluxes), the RMSE, R², mean error
(predicted - true) and chi² of the uncertainties per target on (a) every
galaxy with finite targets and (b) the well-constrained subset
(Tdust_err < 3 K and Mdust_err / Mdust < 0.5), followed by a band-subset table
for the default model (its test galaxies predicted with bands removed), and
how well the targets themselves are reproduced by a second CIGALE fit of the
same UV-submm photometry (``cigale_full``, Dobbels et al. 2020): the scatter
between two fits is a floor no model of the catalogue values can be expected
to beat.
Two chi² columns: ``chi2`` = mean r² / sigma² (plain: the predicted sigma
against the catalogue values) and ``chi2_tot`` = mean r² / (sigma² + err²),
with err the catalogue's own target error (the right one when sigma is the
uncertainty on the true property, ``target_errors=True``).
The models use the settings of ``scripts/train_pretrained.py``; ``--set
PARAM=VALUE`` overrides one for experiments.

Usage::

    python benchmarks/accuracy_dustpedia.py [--data ../shared/data/dustpedia] [--quick]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from astro_dustml.model import DustModel
from astro_dustml.sed import FLAG_MISSING, read_cigale_results
from astro_dustml.training import cross_validate, regression_metrics

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'scripts'))
from train_pretrained import MODEL_SETTINGS, MODELS, TARGETS, load, well_constrained  # noqa: E402

GOALS = {'all': {'sLd': 0.22, 'sMd': 0.36, 'Td': 3.5},
         'well_constrained': {'sLd': 0.16, 'sMd': 0.30, 'Td': 3.0}}
_GALEX = ['GALEX_FUV', 'GALEX_NUV']
_SDSS = ['SDSS_u', 'SDSS_g', 'SDSS_r', 'SDSS_i', 'SDSS_z']
_2MASS = ['2MASS_J', '2MASS_H', '2MASS_Ks']
_IRAC = ['Spitzer_3.6', 'Spitzer_4.5', 'Spitzer_5.8', 'Spitzer_8.0']
# the bands each subset drops
SUBSETS = {
    'all bands': [],
    'no GALEX': _GALEX,
    'no SDSS': _SDSS,
    'no IRAC': _IRAC,
    'WISE+2MASS': _GALEX + _SDSS + _IRAC,
    'WISE only': _GALEX + _SDSS + _2MASS + _IRAC,
}


def _rows(pred, select, table):
    """
    Metrics per target.  ``chi2`` is the plain chi² of the predicted sigma
    against the catalogue values; ``chi2_tot`` uses the total variance
    ``sigma**2 + err**2`` with ``err`` the catalogue's target error.
    """
    out = {}
    for t in TARGETS:
        p, tr = pred[t].value[select], pred[f'{t}_true'].value[select]
        s = pred[f'{t}_err'].value[select]
        e = np.nan_to_num(np.asarray(table[f'{t}_err'].value, float)[select])
        out[t] = regression_metrics(p, tr, groups=pred['galaxy'][select], sigma=s,
                                    n_bootstrap=100)
        out[t]['chi2_tot'] = regression_metrics(
            p, tr, groups=pred['galaxy'][select], sigma=np.hypot(s, e), n_bootstrap=1)['chi2']
    return out


def _print_table(title, rows, goals=None):
    print(f'\n{title}')
    print(f'{"target":8s} {"RMSE":>16s} {"R2":>6s} {"ME":>8s} {"chi2":>6s} {"chi2_tot":>8s} '
          f'{"N":>5s} goal')
    for t, m in rows.items():
        goal = '' if goals is None else (
            f'<= {goals[t]}: ' + ('met' if m['rmse'] <= goals[t] else 'NOT met'))
        print(f'{t:8s} {m["rmse"]:8.3f} ± {m["rmse_err"]:.3f} {m["r2"]:6.2f} '
              f'{m["me"]:8.3f} {m["chi2"]:6.2f} {m["chi2_tot"]:8.2f} {m["n_galaxies"]:5d} {goal}')


def _reproducibility(table, data):
    """RMS difference between the catalogue targets and a second CIGALE fit."""
    fit = read_cigale_results(Path(data) / 'cigale_full' / 'results.txt')
    row = {str(name): i for i, name in enumerate(fit['id'])}
    ours = np.array([str(g) in row for g in table['galaxy']])
    theirs = np.array([row[str(g)] for g in table['galaxy'][ours]])
    good = well_constrained(table)[ours]
    print('\n=== target reproducibility: Nersesian et al. (2019) catalogue vs the '
          'cigale_full fit (RMS difference; mean difference) ===')
    for t in TARGETS:
        diff = table[t].value[ours] - fit[t].value[theirs]
        ok = np.isfinite(diff)
        print(f'{t:4s} all {np.sqrt(np.mean(diff[ok] ** 2)):6.3f} ({ok.sum()} galaxies; '
              f'mean {np.mean(diff[ok]):+.3f})   well-constrained '
              f'{np.sqrt(np.mean(diff[ok & good] ** 2)):6.3f} ({(ok & good).sum()})')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=str(ROOT.parent / 'shared' / 'data' / 'dustpedia'))
    parser.add_argument('--n-jobs', type=int, default=2)
    parser.add_argument('--quick', action='store_true', help='skip the band-subset table')
    parser.add_argument('--set', action='append', default=[], metavar='PARAM=VALUE',
                        help='override a DustModel setting (experiments), e.g. '
                             'colours=reference')
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, value = item.split('=', 1)
        try:
            overrides[key] = json.loads(value)
        except ValueError:
            overrides[key] = value
    for name in MODELS:
        start = time.time()
        table = load(name, args.data)
        settings = {**MODEL_SETTINGS, **MODELS[name]['settings'], **overrides}
        print(f'\n{name} settings: {settings}')
        model = DustModel(n_jobs=args.n_jobs, **settings)
        cv = cross_validate(table, TARGETS, groups='galaxy', model=model, n_bootstrap=100,
                            keep_models=True)
        good = well_constrained(table)
        print(f'\n=== {name}: grouped 4-fold CV, {time.time() - start:.0f} s ===')
        _print_table(f'(a) all galaxies with finite targets ({len(table)})',
                     _rows(cv.predictions, np.ones(len(table), bool), table), GOALS['all'])
        _print_table(f'(b) well-constrained: Tdust_err < 3 K, Mdust_err/Mdust < 0.5 '
                     f'({good.sum()})', _rows(cv.predictions, good, table),
                     GOALS['well_constrained'])
        if args.quick or name != 'dustpedia-global':
            continue
        _reproducibility(table, args.data)
        print(f'\n=== {name}: band subsets (test galaxies with bands removed; '
              'RMSE / chi2 on all galaxies) ===')
        print(f'{"bands":12s} ' + ' '.join(f'{t + " RMSE":>9s} {"chi2":>5s}' for t in TARGETS)
              + '  n_bands')
        for label, drop in SUBSETS.items():
            test = table.copy()
            for band in drop:
                test[f'{band}_flag'] = test[f'{band}_flag'] | FLAG_MISSING
            pred = cv.predictions.copy()
            for fold_model, (_, rows) in zip(cv.models, cv.folds):
                out = fold_model.predict(test[rows], warn=False)
                for t in TARGETS:
                    pred[t][rows] = out[t]
                    pred[f'{t}_err'][rows] = out[f'{t}_err']
            m = _rows(pred, np.ones(len(table), bool), table)
            cells = ' '.join(f'{m[t]["rmse"]:9.3f} {m[t]["chi2"]:5.2f}' for t in TARGETS)
            print(f'{label:12s} {cells}  {18 - len(drop)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
