"""
Band-set models versus the default model with the other bands blanked (issue #20).

For every shipped band set (`astro_dustml.model.band_sets.SHIPPED_BAND_SETS`),
on the DustPedia galaxies that have the whole set, grouped 4-fold CV with the
project's folds (those of `astro_dustml.training.cross_validate`), of

- ``dedicated``: the band-set model (`BAND_SET_SETTINGS`, as shipped), trained
  on the training galaxies of the fold that have the set;
- ``default``: the default full-band model (``dustpedia-global`` settings of
  ``scripts/train_pretrained.py``) trained on all training galaxies of the
  fold, its test galaxies predicted with every band outside the set blanked
  (flag ``FLAG_MISSING``: band dropout).

Printed, side by side: RMSE, bias (mean of predicted - true) and chi² per
target.  With ``--rst`` the same table is written as reStructuredText, which
``docs/ml.rst`` and ``docs/getting_started.rst`` include (the docs' band-set
table is this output, not a copy).  ``--dedicated-from-cards`` reads the
dedicated numbers from the shipped models' cards (written by
``scripts/train_band_sets.py`` with the same function and folds) instead of
training them again; ``--skip-default`` leaves the default columns empty.

Usage::

    python benchmarks/band_sets.py [--data ../shared/data/dustpedia] [--sets NAME,...]
                                   [--rst docs/band_sets_table.txt]
                                   [--dedicated-from-cards] [--skip-default]
                                   [--default-folds DIR]
"""

import argparse
import sys
import time
from pathlib import Path

from astro_dustml.bands import INPUT_BANDS
from astro_dustml.model import DustModel
from astro_dustml.model.band_set_routing import _shipped_folder
from astro_dustml.model.band_sets import SHIPPED_BAND_SETS, cross_validate_band_set
from astro_dustml.sed import FLAG_MISSING
from astro_dustml.training import cross_validate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'scripts'))
from train_pretrained import MODEL_SETTINGS, MODELS, TARGETS, load  # noqa: E402

DEFAULT = {**MODEL_SETTINGS, **MODELS['dustpedia-global']['settings']}
UNITS = {'sLd': 'dex', 'sMd': 'dex', 'Td': 'K'}


def _blanked(table, bands):
    out = table.copy()
    for band in INPUT_BANDS:
        if band not in bands and f'{band}_flag' in out.colnames:
            out[f'{band}_flag'] = out[f'{band}_flag'] | FLAG_MISSING
    return out


def _from_card(name):
    card = DustModel.load(_shipped_folder(name)).card
    cv = card['cv_metrics']
    return {'n_galaxies': cv['n_galaxies'], **cv['all']}


def _cell(r, t):
    if r is None:
        return '—'
    m = r[t]
    fmt = '{:.2f}' if t == 'Td' else '{:.3f}'
    return f'{fmt.format(m["rmse"])} / {m["me"]:+.3f} ({m["chi2"]:.2f})'


def _rst(rows):
    head = ['band set', 'N', 'model'] + [f'{t} [{UNITS[t]}]' for t in TARGETS]
    skipped = all(r is None for _, _, v, r in rows if v == 'default')
    rows = [row for row in rows if row[3] is not None]
    body = []
    for name, n, variant, r in rows:
        body.append([f'``{name[len("dustpedia-bands-"):]}``', str(n), variant]
                    + [_cell(r, t) for t in TARGETS])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    rule = '  '.join('=' * w for w in widths)
    line = lambda cells: '  '.join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = ['.. This file is written by benchmarks/band_sets.py --rst; do not edit.', '',
           rule, line(head), rule] + [line(b) for b in body] + [rule, '']
    if skipped:
        out += ['The ``default`` rows (the default model with the other bands blanked) were '
                'not run for this table (``--skip-default``).', '']
    return '\n'.join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=str(ROOT.parent / 'shared' / 'data' / 'dustpedia'))
    parser.add_argument('--n-jobs', type=int, default=2)
    parser.add_argument('--sets', default=','.join(SHIPPED_BAND_SETS))
    parser.add_argument('--rst', help='also write the table as reStructuredText here')
    parser.add_argument('--dedicated-from-cards', action='store_true')
    parser.add_argument('--skip-default', action='store_true')
    parser.add_argument('--default-folds', metavar='DIR',
                        help="folder of the default model's fold models: read if present "
                             '(fold0 ... fold3), else trained and saved there')
    args = parser.parse_args(argv)
    table = load('dustpedia-global', args.data)
    folds = None
    saved = Path(args.default_folds) if args.default_folds else None
    if args.skip_default:
        pass
    elif saved is not None and (saved / 'fold3' / 'model.json').is_file():
        folds = [DustModel.load(saved / f'fold{i}') for i in range(4)]
    else:
        start = time.time()
        cv = cross_validate(table, TARGETS, groups='galaxy', keep_models=True, n_bootstrap=1,
                            model=DustModel(n_jobs=args.n_jobs, **DEFAULT))
        print(f'default model CV: {time.time() - start:.0f} s', flush=True)
        folds = cv.models
        if saved is not None:
            for i, model in enumerate(folds):
                model.save(saved / f'fold{i}', overwrite=True)
    head = ' '.join(f'{t + " RMSE/bias/chi2":>24s}' for t in TARGETS)
    print(f'\n{"band set":46s} {"N":>4s} {"model":9s} {head}')
    rows = []
    for name in args.sets.split(','):
        bands = SHIPPED_BAND_SETS[name]
        if args.dedicated_from_cards:
            dedicated = _from_card(name)
        else:
            dedicated = cross_validate_band_set(table, bands, n_jobs=args.n_jobs)
        default = None if folds is None else cross_validate_band_set(
            table, bands, predict=lambda i, t: folds[i].predict(_blanked(t, bands),
                                                                warn=False))
        for variant, r in (('dedicated', dedicated), ('default', default)):
            rows.append((name, dedicated['n_galaxies'], variant, r))
            cells = ' '.join(f'{_cell(r, t):>24s}' for t in TARGETS)
            print(f'{name:46s} {dedicated["n_galaxies"]:4d} {variant:9s} {cells}', flush=True)
    if args.rst:
        Path(args.rst).write_text(_rst(rows))
        print(f'wrote {args.rst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
