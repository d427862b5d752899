"""
Throughput table: imaging, prediction, the whole chain, and the Dask runs.

Sections (each row: wall time, CPU time of this process, peak memory that
tracemalloc sees, which numpy reports to, as a multiple of the input stack):

1. `prepare_images`, then `align_images` (PSF matching + reprojection) of an
   18-band mock (`make_mock_galaxy`, every band on the same pixel grid of
   N x N pixels over 4 arcmin) for N = 512, 1024, 2048; one thread and two.
2. Prediction alone: ``benchmarks/prediction_speed.py`` (its ``run``) on
   pixel tables of 10^5, 10^6 and 10^7 rows with the default model (peak memory
   there as a multiple of the pixel table).
3. `estimate_dust_maps` end to end on the 1024 x 1024 18-band mock with the
   default model; one thread and two; then with ``stars=`` (Gaia masking of
   25 stars) on a mock with those stars.
4. Dask: `estimate_mosaic` of the same mock (from FITS files, 3 arcsec output
   pixels: an 80 x 80 grid) in tiles of 32 and 64 output pixels on a
   two-worker LocalCluster (worker processes) and without Dask,
   against the in-memory call (largest relative difference), and
   `estimate_many` of four small mock galaxies on the same cluster against
   one after the other. CPU time and peak memory there are this (driver)
   process's only: the work runs in the worker processes.  Training on
   Dask is timed by ``benchmarks/dask_training.py``.

Usage::

    python benchmarks/throughput.py [--sizes 512 1024 2048] [--skip-dask]
    python benchmarks/throughput.py --quick   # small sizes: checks that it runs

Features missing from the checkout (e.g. ``parallel=`` or the Dask modules
before they existed) are reported as such, so the same script measures the
code before and after a change.
"""

import argparse
import inspect
import os
import sys
import tempfile
import time
import tracemalloc
import warnings

import astropy.units as u
import numpy as np

from astro_dustml.datasets import make_mock_galaxy
from astro_dustml.imaging import align_images, prepare_images
from astro_dustml.maps import estimate_dust_maps
from astro_dustml.model.registry import get_model

FOV = 4 * u.arcmin
SCALE = 3 * u.arcsec  # output pixels of the mosaic runs: an 80 x 80 grid
N_STARS = 25  # foreground stars of the star-masking run
ROWS = []


def _measure(section, label, func, stack_bytes):
    tracemalloc.start()
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    ROWS.append((section, label, wall, cpu, peak / 2**20, peak / stack_bytes))
    print(f'  {label:<44s} {wall:7.2f} s wall {cpu:7.2f} s CPU  peak {peak / 2**20:7.0f} MiB'
          f' = {peak / stack_bytes:4.2f} x input', flush=True)
    return result


def _mock(npix, seed=1, n_stars=0):
    mock = make_mock_galaxy(fov=FOV, pixel_scale=FOV / npix, seed=seed, n_stars=n_stars)
    stack = sum(np.asarray(im.data).nbytes for im in mock.images.values())
    return mock, stack


def _region(mock):
    g = mock.galaxy
    return {k: g[k] for k in ('center', 'semimajor', 'axis_ratio', 'position_angle')}


def _has_parallel(func):
    return 'parallel' in inspect.signature(func).parameters


def imaging(sizes):
    print('(1) prepare_images + align_images (PSF matching + reprojection), 18 bands')
    for npix in sizes:
        mock, stack = _mock(npix)
        print(f' {npix}^2 x 18 bands, input stack {stack / 2**20:.0f} MiB')
        prepared = _measure('imaging', f'{npix}^2 prepare_images',
                            lambda: prepare_images(mock.images, galaxy=_region(mock)), stack)
        _measure('imaging', f'{npix}^2 align_images, 1 thread',
                 lambda: align_images(prepared), stack)
        if _has_parallel(align_images):
            _measure('imaging', f'{npix}^2 align_images, parallel=2',
                     lambda: align_images(prepared, parallel=2), stack)
        else:
            print('  align_images has no parallel= in this checkout')


def prediction(model, sizes, *, quick=False):
    print('(2) prediction alone (benchmarks/prediction_speed.py)')
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from prediction_speed import run as prediction_run
    # quick: a paper-style reference small enough to train in seconds
    small = dict(paper_trees=2, paper_rows=2000, train_rows=2000) if quick else {}
    for r in prediction_run(sizes=sizes, model=model, **small):
        ROWS.append(('prediction', f'{r["pixels"]} pixels DustModel.predict (x table)',
                     r['seconds'], r['cpu_seconds'], r['peak_bytes'] / 2**20,
                     r['peak_over_table']))


def end_to_end(model, npix=1024):
    print(f'(3) estimate_dust_maps end to end, {npix}^2 x 18 bands, default model')
    mock, stack = _mock(npix)
    runs = [('1 thread', {})]
    if _has_parallel(estimate_dust_maps):
        runs.append(('parallel=2', {'parallel': 2}))
    else:
        print('  estimate_dust_maps has no parallel= in this checkout')
    maps = None
    for label, kwargs in runs:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            maps = _measure('end to end', f'{npix}^2 estimate_dust_maps, {label}',
                            lambda: estimate_dust_maps(mock.images, galaxy=mock.galaxy,
                                                       model=model, progress=False, **kwargs),
                            stack)
    # Gaia star masking: apertures fitted band after band in the same chain
    starry, starry_stack = _mock(npix, n_stars=N_STARS)
    kwargs = runs[-1][1]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        _measure('end to end', f'{npix}^2 estimate_dust_maps stars=, {runs[-1][0]}',
                 lambda: estimate_dust_maps(starry.images, galaxy=starry.galaxy,
                                            stars=starry.stars, model=model, progress=False,
                                            **kwargs), starry_stack)
    return mock, stack, maps


def dask_runs(model, mock, stack, maps, work, *, n_galaxies=4):
    print('(4) Dask, two-worker LocalCluster on 127.0.0.1')
    try:
        import distributed

        from astro_dustml.maps import estimate_many, estimate_mosaic, read_dust_maps
    except ImportError as exc:
        print(f'  skipped: {exc}')
        return
    from astropy.io import fits
    paths = []
    for band, image in mock.images.items():
        paths.append(os.path.join(work, f'{band}.fits'))
        fits.PrimaryHDU(image.data, header=image.meta['header']).writeto(paths[-1])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        reference = estimate_dust_maps(paths, galaxy=mock.galaxy, model=model,
                                       pixel_scale=SCALE, progress=False)
        # bounded memory without Dask: bands prepared one at a time, then tiles
        _measure('dask', 'estimate_mosaic, 32^2-pixel tiles, no Dask',
                 lambda: estimate_mosaic(paths, os.path.join(work, 'serial.fits'),
                                         tile_shape=(32, 32), galaxy=mock.galaxy,
                                         pixel_scale=SCALE, model=model, progress=False),
                 stack)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      protocol='tcp://', host='127.0.0.1',
                                      dashboard_address=None,
                                      worker_dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            for tile in (32, 64):
                out = os.path.join(work, f'mosaic{tile}.fits')
                _measure('dask', f'estimate_mosaic, {tile}^2-pixel tiles, 2 workers',
                         lambda: estimate_mosaic(paths, out, tile_shape=(tile, tile),
                                                 client=client, galaxy=mock.galaxy,
                                                 pixel_scale=SCALE, model=model,
                                                 progress=False), stack)
                tiled = read_dust_maps(out)
                worst = 0.0
                for name in ('sLd', 'sMd', 'Td'):
                    good = ~reference[name].mask
                    same_mask = np.array_equal(tiled[name].mask, reference[name].mask)
                    diff = np.abs(tiled[name].data[good] - reference[name].data[good])
                    worst = max(worst, float(np.max(diff / np.abs(reference[name].data[good]))))
                print(f'    tiled vs in-memory: masks equal {same_mask}, largest relative '
                      f'difference {worst:.1e} (output grid {tiled["Td"].shape})')
            galaxies = {}
            for seed in range(2, 2 + n_galaxies):
                small = make_mock_galaxy(fov=2 * u.arcmin, seed=seed)
                galaxies[f'mock{seed}'] = {'images': dict(small.images.items()),
                                           'galaxy': small.galaxy}
            for label, kw in (('2 workers', {'client': client}), ('in turn', {})):
                results = _measure('dask', f'estimate_many, {n_galaxies} galaxies, {label}',
                                   lambda: estimate_many(
                                       galaxies, output_dir=os.path.join(work, label),
                                       model=model, progress=False, **kw), stack)
                print(f'    statuses: {list(results["status"])}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', type=int, nargs='*', default=[512, 1024, 2048])
    parser.add_argument('--prediction-sizes', type=int, nargs='*', default=[10**5, 10**6, 10**7])
    parser.add_argument('--end-to-end-size', type=int, default=1024)
    parser.add_argument('--skip-dask', action='store_true')
    parser.add_argument('--quick', action='store_true',
                        help='small sizes everywhere (a 128^2 mock, 10^4 pixels, two '
                             'galaxies): checks that every section runs, in minutes')
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.prediction_sizes, args.end_to_end_size = [128], [10**4], 128
    print(f'{os.cpu_count()} cores; figures on a shared machine vary with its load')
    imaging(args.sizes)
    model = get_model()
    prediction(model, args.prediction_sizes, quick=args.quick)
    mock, stack, maps = end_to_end(model, args.end_to_end_size)
    if not args.skip_dask:
        with tempfile.TemporaryDirectory() as work:
            dask_runs(model, mock, stack, maps, work, n_galaxies=2 if args.quick else 4)
    print('\nsection      | run                                          |  wall s |   CPU s |'
          ' peak MiB | peak / input')
    for section, label, wall, cpu, peak, ratio in ROWS:
        print(f'{section:<12s} | {label:<44s} | {wall:7.2f} | {cpu:7.2f} | {peak:8.0f} |'
              f' {ratio:5.2f}')


if __name__ == '__main__':
    main()
