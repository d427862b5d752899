"""
Training on a pixel table on Dask versus in memory: time and peak memory of the client.

Writes a Parquet pixel table of ``--rows`` rows (default 10^6) synthesised by
resampling the pixels of six analytic mock galaxies into ``--galaxies``
galaxies (each a mock's pixels with its own small flux jitter, at two scale
labels), in row groups of 50 000 rows, then fits the same model twice, each
in a fresh process:

- ``dask``: `~astro_dustml.training.fit_resolved_dask` on a
  `distributed.LocalCluster` of 2 worker processes (1 thread each) on
  loopback; the peak memory is that of the client process alone (the
  workers hold the persisted feature table);
- ``memory``: `~astro_dustml.training.read_training_table` then
  `~astro_dustml.training.fit_resolved`.

Both models are scored on a held-out mock galaxy (RMSE and chi^2).  Peak
memory is ``ru_maxrss`` of the process.

Usage::

    python benchmarks/dask_training.py [--rows 1000000] [--n-estimators 20] [--only dask]
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGETS = ('sLd',)


def _model(args):
    from astro_dustml.model import DustModel
    from astro_dustml.tests._mock_training import BANDS
    return DustModel(bands=BANDS, n_estimators=args.n_estimators, max_depth=12,
                     n_dropout=0, n_inner_splits=2, include_scale=False, random_state=0)


def write_table(path, rows, n_galaxies, seed=0):
    """``rows`` pixels of ``n_galaxies`` resampled mock galaxies, in one Parquet file."""
    import astropy.units as u
    import pyarrow.parquet as pq
    from astropy.table import vstack

    from astro_dustml.tests._mock_training import BANDS, pixel_table
    rng = np.random.default_rng(seed)
    base = vstack([pixel_table(s) for s in (11, 12, 13, 14, 15, 16)])
    del base['block']
    source = np.asarray(base['galaxy'])
    mocks = np.unique(source)
    per = rows // n_galaxies
    writer = None
    for g in range(n_galaxies):
        pool = np.flatnonzero(source == mocks[g % len(mocks)])
        t = base[rng.choice(pool, per)]
        t['galaxy'] = f'g{g:05d}'
        t['scale'] = np.where(rng.random(per) < 0.5, '3arcsec', '6arcsec')
        for band in BANDS:  # a galaxy's own colours: 0.02 dex per band, 0.01 per pixel
            jitter = 10 ** (rng.normal(0, 0.02) + rng.normal(0, 0.01, per))
            t[band] = t[band] * jitter
        if writer is None:
            t[:0].write(path, overwrite=True)
            schema = pq.read_schema(path)
            writer = pq.ParquetWriter(path, schema)
        import pyarrow as pa
        cols = {}
        for name in schema.names:
            col = t[name]
            cols[name] = np.asarray(col.value if isinstance(col, u.Quantity) else col)
        writer.write_table(pa.Table.from_pydict(cols, schema=schema), row_group_size=50_000)
    writer.close()


def run_fit(kind, path, args):
    """Fit in this process; print JSON with seconds, peak MB and held-out scores."""
    from astro_dustml.tests._mock_training import pixel_table
    start = time.perf_counter()
    if kind == 'dask':
        import distributed

        from astro_dustml.training import fit_resolved_dask
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host='127.0.0.1', dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            model = fit_resolved_dask(path, TARGETS, client=client, model=_model(args))
    else:
        from astro_dustml.training import fit_resolved, read_training_table
        model = fit_resolved(read_training_table(path), TARGETS, model=_model(args))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    test = pixel_table(21)
    pred = model.predict(test, warn=False)
    scores = {}
    for t in TARGETS:
        err = pred[t].value - test[t].value
        scores[t] = {'rmse': float(np.sqrt(np.mean(err ** 2))),
                     'chi2': float(np.mean((err / pred[f'{t}_err'].value) ** 2))}
    print(json.dumps({'kind': kind, 'seconds': seconds, 'peak_mb': peak, 'scores': scores}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rows', type=int, default=1_000_000)
    parser.add_argument('--galaxies', type=int, default=200)
    parser.add_argument('--n-estimators', type=int, default=20)
    parser.add_argument('--only', choices=['dask', 'memory'], help='run one of the two fits')
    parser.add_argument('--fit', choices=['dask', 'memory'], help=argparse.SUPPRESS)
    parser.add_argument('--table', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit:
        return run_fit(args.fit, args.table, args)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / 'pixels.parquet')
        start = time.perf_counter()
        write_table(path, args.rows, args.galaxies)
        size = Path(path).stat().st_size / 2 ** 20
        print(f'table: {args.rows} rows, {args.galaxies} galaxies, {size:.0f} MB Parquet '
              f'(written in {time.perf_counter() - start:.0f} s); model: '
              f'{args.n_estimators} trees, targets {", ".join(TARGETS)}')
        for kind in [args.only] if args.only else ['dask', 'memory']:
            out = subprocess.run(
                [sys.executable, __file__, '--fit', kind, '--table', path,
                 '--n-estimators', str(args.n_estimators)],
                capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            scores = ', '.join(f'{t} RMSE {s["rmse"]:.3f} chi2 {s["chi2"]:.2f}'
                               for t, s in r['scores'].items())
            print(f'{kind:>6}: {r["seconds"]:7.1f} s, client peak {r["peak_mb"]:7.0f} MB; '
                  f'held-out {scores}')


if __name__ == '__main__':
    main()
