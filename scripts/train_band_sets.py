"""
Train the shipped band-set models (`astro_dustml.model.band_sets.SHIPPED_BAND_SETS`).

Each is a `~astro_dustml.model.DustModel` on exactly one set of bands, with
`astro_dustml.model.band_sets.BAND_SET_SETTINGS`, trained on the DustPedia
galaxies that have every band of the set, its grouped 4-fold CV (the
project's folds) in the card, saved as ``astro_dustml/data/models/<name>/``.


Usage::

    python scripts/train_band_sets.py [--data ../shared/data/dustpedia] [--output DIR]
                                      [--sets NAME,...] [--no-cv]
"""

import argparse
import sys
import time
from pathlib import Path

from astro_dustml.datasets import load_dustpedia_global
from astro_dustml.model.band_sets import SHIPPED_BAND_SETS, train_band_set_model

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=str(ROOT.parent / 'shared' / 'data' / 'dustpedia'))
    parser.add_argument('--output', default=str(ROOT / 'astro_dustml' / 'data' / 'models'))
    parser.add_argument('--sets', default=','.join(SHIPPED_BAND_SETS))
    parser.add_argument('--no-cv', action='store_true', help='skip the CV metrics')
    parser.add_argument('--n-jobs', type=int, default=2)
    args = parser.parse_args(argv)
    table = load_dustpedia_global(path=args.data, require_targets=True)
    for name in args.sets.split(','):
        start = time.time()
        model = train_band_set_model(SHIPPED_BAND_SETS[name], table=table, cv=not args.no_cv,
                                     n_jobs=args.n_jobs)
        path = model.save(Path(args.output) / name, overwrite=True)
        size = sum(p.stat().st_size for p in path.iterdir())
        cv = model.card.get('cv_metrics', {}).get('all', {})
        scores = ', '.join(f'{t} {m["rmse"]:.3f}/{m["me"]:+.3f}/{m["chi2"]:.2f}'
                           for t, m in cv.items())
        print(f'{name}: {model.card["training"]["n_galaxies"]} galaxies, {size / 1e6:.2f} MB, '
              f'{time.time() - start:.0f} s  {scores}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
