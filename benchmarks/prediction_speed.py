"""
Speed and peak memory of `DustModel.predict` against a paper-style pipeline.

For each size, a pixel table of that many rows is drawn from the real
DustPedia aperture photometry (galaxies resampled, every flux jittered by
0.05 dex, so that rows follow real SEDs and real tree paths) and the default
pretrained model predicts the three targets with their uncertainties.  Printed
per size: pixels/s (wall clock, all ``n_jobs`` threads of the model), the peak
memory that tracemalloc sees during ``predict`` and its ratio to the pixel
table.

The paper-style pipeline (Dobbels & Baes 2021) is, per target, one
scikit-learn random forest of fully grown trees trained on ``train_rows`` rows
of the same kind, plus one xgboost model (depth 6, 100 rounds, fitted to the
log absolute residuals) for the uncertainty; it predicts from the same
features.  Training 500 fully grown trees per target takes hours on two cores,
so ``paper_trees`` trees are trained and timed and the forest time is scaled
linearly to 500 trees (prediction time of a forest is linear in its number of
trees); it is timed on ``min(size, paper_rows)`` rows and scaled linearly to
the size.  Both are said in the output.

With ``--photometric-noise`` the default model's prediction with the
pixels' flux errors propagated (``predict(photometric_noise=True)``, what
the maps stage does for the global models) is timed too, per size.

Usage::

    python benchmarks/prediction_speed.py [--sizes 100000 1000000 10000000]
                                          [--photometric-noise]

and from another script (same folder)::

    from prediction_speed import run
    rows = run(sizes=(10**5, 10**6))
"""

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import xgboost as xgb
from astropy.table import QTable
from sklearn.ensemble import RandomForestRegressor

from astro_dustml.bands import INPUT_BANDS
from astro_dustml.sed import load_dustpedia_global
from astro_dustml.model.registry import get_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data' / 'dustpedia'
TARGETS = ('sLd', 'sMd', 'Td')
PAPER_TREES = 500


def _sample(n, *, data=DATA, seed=0, targets=False):
    """A pixel table of ``n`` rows resampled from the DustPedia galaxies."""
    if not Path(data).is_dir():
        raise FileNotFoundError(f'{data} is missing: the benchmark draws its rows from the '
                                'DustPedia photometry in ../shared/data/dustpedia; pass data=.')
    table = load_dustpedia_global(path=data, require_targets=targets)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(table), n)
    out = QTable()
    out['pixel_area'] = table['pixel_area'][pick]
    for band in INPUT_BANDS:
        jitter = 10 ** rng.normal(0, 0.05, n)
        out[band] = table[band][pick] * jitter
        out[f'{band}_err'] = table[f'{band}_err'][pick] * jitter
        out[f'{band}_flag'] = table[f'{band}_flag'][pick]
    if targets:
        for t in TARGETS:
            out[t] = table[t][pick]
    return out


def _nbytes(table):
    return sum(np.asarray(table[c]).nbytes for c in table.colnames)


def _measure(func):
    """
    Wall time, process CPU time (all threads) and tracemalloc peak (bytes
    above the start) of ``func()``.
    """
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    start, cpu = time.perf_counter(), time.process_time()
    result = func()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, elapsed, cpu, peak - base


class _PaperPipeline:
    """One fully grown random forest and one xgboost uncertainty model per target."""

    def __init__(self, model, *, trees, train_rows, data, n_jobs):
        self.model, self.trees = model, trees
        train = _sample(train_rows, data=data, seed=1, targets=True)
        X = self._features(train)
        self.forests, self.boosters = {}, {}
        for t in TARGETS:
            y = np.asarray(train[t].value, dtype=float)
            ok = np.isfinite(y)
            forest = RandomForestRegressor(n_estimators=trees, n_jobs=n_jobs, random_state=0)
            self.forests[t] = forest.fit(X[ok], y[ok])
            residual = np.abs(y[ok] - forest.predict(X[ok])) + 1e-6
            self.boosters[t] = xgb.train(
                {'max_depth': 6, 'eta': 0.1, 'nthread': n_jobs, 'tree_method': 'hist'},
                xgb.DMatrix(X[ok], label=np.log(residual), missing=np.nan),
                num_boost_round=100)
        self.depth = max(e.tree_.max_depth for f in self.forests.values()
                         for e in f.estimators_)

    def _features(self, table):
        X, _, _ = self.model._features(table)
        return X.astype(np.float32)

    def predict(self, table):
        """Forest and xgboost times of ``table`` (seconds), each its own."""
        start = time.perf_counter()
        X = self._features(table)
        features = time.perf_counter() - start
        forest = xgboost = 0.0
        for t in TARGETS:
            start = time.perf_counter()
            self.forests[t].predict(X)
            forest += time.perf_counter() - start
            start = time.perf_counter()
            self.boosters[t].predict(xgb.DMatrix(X, missing=np.nan))
            xgboost += time.perf_counter() - start
        return features, forest, xgboost


def run(sizes=(10**5, 10**6, 10**7), *, data=DATA, paper_trees=10, paper_rows=10**5,
        train_rows=10**5, model=None, verbose=True):
    """
    Time `DustModel.predict` on the default model next to the paper-style pipeline.

    Parameters
    ----------
    sizes : sequence of int
        Numbers of pixels (rows) to predict.
    data : path-like
        DustPedia data folder the rows are drawn from.
    paper_trees : int
        Trees per target actually trained for the paper-style forest; its
        time is scaled linearly to 500 trees.
    paper_rows : int
        Rows the paper-style pipeline is timed on (scaled linearly to each size).
    train_rows : int
        Training rows of the paper-style forests (fully grown trees).
    model : DustModel, optional
        Model to time (default: the default pretrained model).
    verbose : bool
        Print the table.

    Returns
    -------
    rows : list of dict
        Per size: ``pixels``, ``seconds``, ``pixels_per_s``, ``peak_bytes``,
        ``cpu_seconds``, ``pixels_per_cpu_s`` (process CPU time over all
        threads: the figure that a loaded machine distorts least),
        ``table_bytes``, ``peak_over_table``, ``paper_pixels_per_s``,
        ``paper_peak_bytes``, ``speedup``.
    """
    model = get_model() if model is None else model
    model.predict(_sample(1000, data=data), warn=False)  # compile the tree walk first
    paper = _PaperPipeline(model, trees=paper_trees, train_rows=train_rows, data=data,
                           n_jobs=model._threads())
    scale = PAPER_TREES / paper_trees
    mib = 2 ** 20
    if verbose:
        print(f'DustModel.predict, default model, 3 targets with uncertainties, '
              f'{model._threads()} threads; paper-style: {paper_trees} fully grown trees '
              f'(depth up to {paper.depth}) per target trained on {train_rows} rows, '
              f'forest time scaled x{scale:g} to {PAPER_TREES} trees, timed on '
              f'<= {paper_rows} rows and scaled to each size, + one xgboost model per target')
        print(f'{"pixels":>10s} {"pixels/s":>10s} {"pix/cpu-s":>10s} {"peak MiB":>9s} '
              f'{"x table":>8s} {"paper pix/s":>12s} {"paper MiB":>10s} {"speed-up":>9s}',
              flush=True)
    rows = []
    for n in sizes:
        table = _sample(int(n), data=data, seed=2)
        table_bytes = _nbytes(table)
        _, seconds, cpu, peak = _measure(lambda: model.predict(table, warn=False))
        m = min(int(n), paper_rows)
        (feat, forest, boost), _, _, paper_peak = _measure(lambda: paper.predict(table[:m]))
        paper_seconds = (feat + forest * scale + boost) * n / m
        r = {'pixels': int(n), 'seconds': seconds, 'pixels_per_s': n / seconds,
             'cpu_seconds': cpu, 'pixels_per_cpu_s': n / cpu,
             'peak_bytes': peak, 'table_bytes': table_bytes,
             'peak_over_table': peak / table_bytes,
             'paper_pixels_per_s': n / paper_seconds, 'paper_peak_bytes': paper_peak,
             'speedup': paper_seconds / seconds}
        rows.append(r)
        table = None  # free it before the next size is drawn
        if verbose:
            print(f'{r["pixels"]:>10d} {r["pixels_per_s"]:>10.0f} {r["pixels_per_cpu_s"]:>10.0f} '
                  f'{r["peak_bytes"] / mib:>9.0f} {r["peak_over_table"]:>8.2f} '
                  f'{r["paper_pixels_per_s"]:>12.0f} {r["paper_peak_bytes"] / mib:>10.0f} '
                  f'{r["speedup"]:>9.1f}', flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[10**5, 10**6, 10**7])
    parser.add_argument('--data', default=str(DATA))
    parser.add_argument('--paper-trees', type=int, default=10)
    parser.add_argument('--photometric-noise', action='store_true',
                        help='also time predict(photometric_noise=True)')
    args = parser.parse_args(argv)
    run(sizes=args.sizes, data=args.data, paper_trees=args.paper_trees)
    if args.photometric_noise:
        photometric_noise(args.sizes, data=args.data)
    return 0


def photometric_noise(sizes, *, data=DATA):
    """Time the default model's prediction with and without the photometric term."""
    model = get_model()
    print(f'{"pixels":>10s} {"plain cpu-s":>12s} {"+noise cpu-s":>13s} {"ratio":>6s} '
          f'{"+noise pix/cpu-s":>17s}')
    for n in sizes:
        table = _sample(int(n), data=data, seed=2)
        _, _, plain, _ = _measure(lambda: model.predict(table, warn=False))
        _, _, noisy, _ = _measure(lambda: model.predict(table, warn=False,
                                                        photometric_noise=True))
        print(f'{n:>10d} {plain:>12.2f} {noisy:>13.2f} {noisy / plain:>6.1f} '
              f'{n / noisy:>17.0f}', flush=True)


if __name__ == '__main__':
    sys.exit(main())
