"""
Resolved training on a mock survey: a pixel-trained model against the global default.

A survey of different mock galaxies (`astro_dustml.datasets.make_mock_survey`:
star-formation patterns, dust recipes, sizes, inclinations, masses; three
distances) goes through `astro_dustml.training.build_training_table` at
several scales, with the truth from the mocks' own maps (exact, at each
scale's resolution). A `~astro_dustml.model.DustModel` with the log pixel
scale as a feature (``include_scale=True``) is trained on the pixels of the
training galaxies (`~astro_dustml.training.fit_resolved`: weights
1/N_pixels per galaxy and scale, grouped by galaxy). On the held-out galaxies
(every galaxy ``i`` with ``(i // 3) % 3 == 2``: all distances and patterns)
it is compared with the bundled global model (trained on DustPedia aperture
photometry): weighted pixel RMSE and chi², per scale and overall
(`~astro_dustml.training.evaluate_resolved`). As a few held-out galaxies give
noisy chi², a grouped 4-fold cross-validation over all galaxies
(`~astro_dustml.training.cross_validate_resolved`, every galaxy held out
once) is compared with the global model on all of them too. The pixel model
uses eight inner folds for its uncertainty model, as the shipped models do.
Time and peak memory (peak RSS of the process, which only grows, after each
phase) are printed.

Usage::

    python benchmarks/resolved_mock.py [--n-galaxies 36] [--scales 18arcsec 25arcsec 1kpc 3kpc]
        [--output DIR] [--table DIR/mock_survey.parquet (reuse a built table)]
"""

import argparse
import resource
import tempfile
import time
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np

from astro_dustml.bands import INPUT_BANDS
from astro_dustml.datasets import make_mock_survey
from astro_dustml.model import DustModel
from astro_dustml.model.registry import get_model
from astro_dustml.training import (
    build_training_table,
    cross_validate_resolved,
    evaluate_resolved,
    fit_resolved,
    read_training_table,
)

TARGETS = ('sLd', 'sMd', 'Td')


def _peak_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def _held_out(name):
    i = int(name.removeprefix('MOCK'))
    return (i // 3) % 3 == 2


def _metric(result, scale, target, key):
    table = result.per_scale if scale != 'all' else result.metrics
    row = [r for r in table if r['scale'] == scale and r['target'] == target]
    return float(row[0][key]) if row else np.nan


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--n-galaxies', type=int, default=36)
    parser.add_argument('--scales', nargs='+', default=['18arcsec', '25arcsec', '1kpc', '3kpc'])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--output', default=None, help='folder for the Parquet table')
    parser.add_argument('--table', default=None, help='a table built before (skips the build)')
    args = parser.parse_args(argv)
    if args.table:
        output = Path(args.table)
        t_build = rss_build = np.nan
        print(f'== reusing {output}')
    else:
        folder = Path(args.output or tempfile.mkdtemp())
        folder.mkdir(parents=True, exist_ok=True)
        output = folder / 'mock_survey.parquet'
        t_build, rss_build = _build(args, output)
    _compare(args, output, t_build, rss_build)


def _build(args, output):
    t0 = time.perf_counter()
    survey = make_mock_survey(args.n_galaxies, distances=(10, 20, 40) * u.Mpc, seed=args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # out-of-domain or low-S/N notes per galaxy
        summary = build_training_table(survey, scales=args.scales, output=output,
                                       overwrite=True, progress=False)
    t_build = time.perf_counter() - t0
    rss_build = _peak_rss_gib()
    print(f'== build_training_table: {args.n_galaxies} mock galaxies x {len(args.scales)} '
          f'scales in {t_build:.0f} s, peak RSS {rss_build:.2f} GiB, '
          f'{summary.meta["n_rows"]} rows -> {output}')
    print(f'{"scale":>9} {"ok":>3} {"skipped":>7} {"failed":>6} {"rows":>6}  skip reasons')
    for scale in args.scales:
        sel = summary[summary['scale'] == scale]
        reasons = sorted({str(r).split(':')[0] for r in sel['reason'][sel['status'] == 'skipped']})
        print(f'{scale:>9} {np.sum(sel["status"] == "ok"):>3} '
              f'{np.sum(sel["status"] == "skipped"):>7} {np.sum(sel["status"] == "failed"):>6} '
              f'{int(sel["n_rows"].sum()):>6}  {", ".join(reasons)}')
    failed = summary[summary['status'] == 'failed']
    for row in failed:
        print(f'  failed: {row["galaxy"]} {row["scale"]}: {row["reason"]}')
    return t_build, rss_build


def _model(table):
    bands = [b for b in INPUT_BANDS if b in table.colnames]
    return DustModel(bands=bands, include_scale=True, n_inner_splits=8)


def _compare(args, output, t_build, rss_build):
    table = read_training_table(output)
    finite = np.all([np.isfinite(np.asarray(getattr(table[t], 'value', table[t]), float))
                     for t in TARGETS], axis=0)
    table = table[finite]
    test = np.array([_held_out(str(g)) for g in table['galaxy']])
    train, held = table[~test], table[test]
    print(f'training: {len(set(train["galaxy"]))} galaxies, {len(train)} pixels; '
          f'held out: {len(set(held["galaxy"]))} galaxies, {len(held)} pixels')

    t0 = time.perf_counter()
    pixel_model = fit_resolved(train, TARGETS, model=_model(train))
    t_train = time.perf_counter() - t0
    rss_train = _peak_rss_gib()
    print(f'== fit_resolved (DustModel(include_scale=True)): {t_train:.0f} s, '
          f'peak RSS {rss_train:.2f} GiB (process peak so far)')

    global_model = get_model()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        resolved = evaluate_resolved(pixel_model, held, TARGETS)
        glob = evaluate_resolved(global_model, held, TARGETS)

    _report('held-out galaxies', args.scales, glob, resolved)

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        cv = cross_validate_resolved(table, TARGETS, model=_model(table))
        glob_all = evaluate_resolved(global_model, table, TARGETS)
    t_cv = time.perf_counter() - t0
    _report(f'grouped 4-fold cross-validation, all {len(set(table["galaxy"]))} galaxies '
            '(pixel model out of fold)', args.scales, glob_all, cv)
    print(f'\ntime: build {t_build:.0f} s, train {t_train:.0f} s, cross-validation {t_cv:.0f} s; '
          f'peak RSS after build {rss_build:.2f} GiB, after training {rss_train:.2f} GiB, '
          f'at the end {_peak_rss_gib():.2f} GiB')


def _report(title, scales, glob, resolved):
    print(f'\n== {title}, per scale: weighted pixel RMSE (chi2)')
    header = ''.join(f'{t + " global":>16}{t + " pixel":>16}' for t in TARGETS)
    print(f'{"scale":>9} {"n_gal":>5}{header}')
    for scale in [*scales, 'all']:
        n_gal = _metric(resolved, scale, 'sLd', 'n_galaxies')
        if not np.isfinite(n_gal) or not n_gal:
            continue
        cells = ''
        for t in TARGETS:
            for result in (glob, resolved):
                cells += (f'{_metric(result, scale, t, "rmse"):>9.3f} '
                          f'({_metric(result, scale, t, "chi2"):4.2f})')
        print(f'{scale:>9} {int(n_gal):>5}{cells}')
    print(f'-- global-trained (bundled default) vs resolved-trained, {title}')
    for t in TARGETS:
        g_rmse, p_rmse = (_metric(r, 'all', t, 'rmse') for r in (glob, resolved))
        g_err, p_err = (_metric(r, 'all', t, 'rmse_err') for r in (glob, resolved))
        g_chi, p_chi = (_metric(r, 'all', t, 'chi2') for r in (glob, resolved))
        verdict = 'pixel better' if p_rmse < g_rmse else 'global better'
        calibrated = 'in [0.8, 1.25]' if 0.8 <= p_chi <= 1.25 else 'OUTSIDE [0.8, 1.25]'
        print(f'{t:>4}: RMSE global {g_rmse:.3f} ± {g_err:.3f}, pixel {p_rmse:.3f} ± {p_err:.3f} '
              f'({verdict}); chi2 global {g_chi:.2f}, pixel {p_chi:.2f} ({calibrated})')


if __name__ == '__main__':
    main()
