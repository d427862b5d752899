"""
The training subcommands of the command line: ``build-table`` and ``train``.

Their parsers' options and the functions they run (tables from a galaxy
list, fitting and cross-validation in memory or on a Dask cluster, the
metrics printed). ``astro_dustml.cli`` adds them to its parser.

Uses `astro_dustml.training`, `astro_dustml.model` and ``astro_dustml._cli_args``.
"""

from pathlib import Path

from ._cli_args import _quantity, _UsageError


def _train(args):
    from astropy.table import QTable

    from .bands import INPUT_BANDS
    from .model import DustModel
    from .model._persistence import _check_save_path
    _check_save_path(args.output, overwrite=args.overwrite)  # before the training
    if _is_parquet(args.table):
        return _train_pixels(args)
    table = QTable.read(args.table)
    missing = [c for c in [*args.targets, args.groups] if c not in table.colnames]
    if missing:
        raise ValueError(f'{args.table} has no column {", ".join(missing)} (columns: '
                         f'{", ".join(table.colnames[:12])}...).')
    bands = args.bands or [b for b in INPUT_BANDS if b in table.colnames]
    model = DustModel(bands=bands, n_estimators=args.n_estimators, random_state=args.seed)
    if args.cv_folds:
        _print_cv(table, args, model, weights=None)
    model.fit(table, targets=args.targets, groups=args.groups)
    model.card['name'] = args.name or Path(args.output).name
    model.card['description'] = args.description
    model.card['training']['sample'] = str(args.table)
    model.save(args.output, overwrite=args.overwrite)
    print(f'wrote {args.output} ({len(table)} rows, '
          f'{len(set(table[args.groups]))} groups, targets {", ".join(args.targets)})')
    return 0


# --- build-table and pixel training (resolved training, astro_dustml.training) ---

def _build_table_parser(sub):
    build = sub.add_parser(
        'build-table', help='build a multi-scale pixel table (Parquet) from a galaxy list',
        description='Read the images of every galaxy of a list (ECSV: name, files, '
                    'distance, ra, dec, semimajor, optional axis_ratio, position_angle, '
                    'ebv, bands, truth, gaia, sLd/sMd/Td), one galaxy at a time, and '
                    'write its pixel SEDs and true dust properties at each scale to one '
                    'Parquet file, with a summary (.summary.ecsv) of what was written, '
                    'skipped and why, or failed.')
    build.add_argument('galaxies', metavar='GALAXIES', help='galaxy list (ECSV)')
    build.add_argument('-o', '--output', required=True, metavar='PIXELS.parquet',
                       help='output Parquet file')
    build.add_argument('--scales', nargs='+', metavar='SCALE',
                       default=['36arcsec', '25arcsec', '18arcsec', '150pc', '400pc',
                                '1kpc', '3kpc'],
                       help='scales: labels of the paper (36arcsec 25arcsec 18arcsec 150pc '
                            '400pc 1kpc 3kpc, the default) or resolutions, e.g. 12arcsec')
    build.add_argument('--bands', nargs='+', metavar='BAND',
                       help='band columns (default: the 18 model inputs)')
    build.add_argument('--global', dest='include_global', action='store_true',
                       help='also write a global row per galaxy (needs its sLd/sMd/Td)')
    build.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    build.add_argument('--no-progress', action='store_true', help='no progress bar')


def _train_pixel_options(train):
    train.add_argument('--cv-folds', type=int, metavar='N',
                       help='grouped cross-validation folds run and printed before the '
                            'final fit (default: 4 for a Parquet pixel table, 0 otherwise)')
    train.add_argument('--scales', nargs='+', metavar='LABEL',
                       help='train on these scales of a Parquet table only (default: all)')
    train.add_argument('--max-pixels', type=int, metavar='N',
                       help='at most N random pixels per galaxy and scale (bounds memory; '
                            'the weights keep each galaxy at one per scale)')
    train.add_argument('--no-scale-feature', action='store_true',
                       help='do not use log10(pixel_scale_pc) as a feature (Parquet tables)')
    train.add_argument('--dask', metavar='SCHEDULER|local',
                       help='train on a Dask cluster without reading the Parquet table here '
                            '(needs the dask extra): a scheduler address, or "local" for a '
                            'local cluster; no cross-validation or --max-pixels')


def _is_parquet(path):
    return str(path).lower().endswith(('.parquet', '.pq'))


def _build_table(args):
    from .bands import INPUT_BANDS
    from .training.galaxies import SCALES, read_galaxy_list
    from .training.tables import build_training_table
    scales = [s if s in SCALES else _quantity(s, ('angle', 'length'), '--scales')
              for s in args.scales]
    galaxies = read_galaxy_list(args.galaxies)
    summary = build_training_table(galaxies, scales=scales, output=args.output,
                                   bands=args.bands or INPUT_BANDS,
                                   include_global=args.include_global,
                                   overwrite=args.overwrite, progress=not args.no_progress)
    status = list(summary['status'])
    ok = summary[summary['status'] == 'ok']
    print(f"wrote {summary.meta['n_rows']} rows of {len(set(ok['galaxy']))} galaxies "
          f"({len(ok)} galaxy-scales) to {args.output}; {status.count('skipped')} skipped, "
          f"{status.count('failed')} failed (see {Path(args.output).name.split('.')[0]}"
          '.summary.ecsv)')
    return 0 if summary.meta['n_rows'] else 1


def _train_pixels(args):
    import numpy as np

    from .bands import INPUT_BANDS
    from .model import DustModel
    from .training.fitting import fit_resolved, pixel_weights
    from .training.tables import read_training_table
    if args.dask:
        return _train_pixels_dask(args)
    if args.bands:
        bands = args.bands
    else:  # the model inputs the table has
        import pyarrow.parquet as pq
        names = set(pq.read_schema(args.table).names)
        bands = [b for b in INPUT_BANDS if b in names]
    columns = ['pixel_area', 'pixel_scale_pc', *bands, *[f'{b}_flag' for b in bands],
               *args.targets]
    table = read_training_table(args.table, columns=columns, scales=args.scales)
    if len(table) == 0:
        raise ValueError(f'{args.table} has no rows' + (f' at scales {args.scales}'
                                                        if args.scales else '') + '.')
    if args.groups != 'galaxy':
        raise _UsageError('a Parquet pixel table is grouped by its galaxy column; '
                          'leave --groups at galaxy.')
    if args.max_pixels:
        table = table[_subsample(table, args.max_pixels, args.seed)]
    model = DustModel(bands=list(bands), n_estimators=args.n_estimators,
                      random_state=args.seed, include_scale=not args.no_scale_feature)
    folds = 4 if args.cv_folds is None else args.cv_folds
    cv = None
    if folds:
        cv = _print_cv(table, args, model, weights=pixel_weights(table), folds=folds)
    model = fit_resolved(table, args.targets, model=model)
    model.card['name'] = args.name or Path(args.output).name
    model.card['description'] = args.description
    model.card['training']['sample'] = str(args.table)
    if cv is not None:
        model.card['cv_metrics'] = {
            'overall': _metric_rows(cv.metrics), 'per_scale': _metric_rows(cv.per_scale)}
    model.save(args.output, overwrite=args.overwrite)
    print(f'wrote {args.output} ({len(table)} rows, {len(np.unique(table["galaxy"]))} '
          f'galaxies, {len(np.unique(table["scale"]))} scales, targets '
          f'{", ".join(args.targets)})')
    return 0


# --- dask training (astro_dustml.training.distributed) ---
def _train_pixels_dask(args):
    import contextlib

    import pyarrow.parquet as pq

    from .bands import INPUT_BANDS
    from .model import DustModel
    from .training.distributed import _import_dask, _parquet_files, fit_resolved_dask
    if args.max_pixels or args.cv_folds:
        raise _UsageError('--dask trains on every row, without cross-validation: leave out '
                          '--max-pixels and --cv-folds.')
    if args.groups != 'galaxy':
        raise _UsageError('a Parquet pixel table is grouped by its galaxy column; '
                          'leave --groups at galaxy.')
    _, distributed, _ = _import_dask()
    # TABLE may be a glob pattern or a folder of Parquet files here
    names = set(pq.read_schema(_parquet_files(args.table)[0]).names)
    bands = args.bands or [b for b in INPUT_BANDS if b in names]
    model = DustModel(bands=list(bands), n_estimators=args.n_estimators,
                      random_state=args.seed, include_scale=not args.no_scale_feature)
    with contextlib.ExitStack() as stack:
        if args.dask == 'local':
            cluster = stack.enter_context(distributed.LocalCluster(
                host='127.0.0.1', dashboard_address=None, worker_dashboard_address=None))
            client = stack.enter_context(distributed.Client(cluster))
        else:
            client = stack.enter_context(distributed.Client(args.dask))
        model = fit_resolved_dask(args.table, args.targets, client=client, model=model,
                                  scales=args.scales)
    model.card['name'] = args.name or Path(args.output).name
    model.card['description'] = args.description
    model.card['training']['sample'] = str(args.table)
    model.save(args.output, overwrite=args.overwrite)
    training = model.card['training']
    print(f'wrote {args.output} ({training["n_rows"]} rows, {training["n_galaxies"]} '
          f'galaxies, {len(training["scales"])} scales, targets {", ".join(args.targets)}; '
          f'trained on Dask, {training["dask"]["n_partitions"]} partitions)')
    return 0


def _subsample(table, n, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    keys = np.char.add(np.char.add(np.asarray(table['galaxy'], str), '|'),
                       np.asarray(table['scale'], str))
    _, inverse = np.unique(keys, return_inverse=True)
    order = np.lexsort((rng.random(len(table)), inverse))
    rank = np.empty(len(table), int)
    starts = np.r_[0, np.flatnonzero(np.diff(inverse[order])) + 1]
    counts = np.diff(np.r_[starts, len(table)])
    rank[order] = np.arange(len(table)) - np.repeat(starts, counts)
    return np.sort(np.flatnonzero(rank < n))


def _metric_rows(metrics):
    return [{k: (v.item() if hasattr(v, 'item') else v) for k, v in zip(metrics.colnames, row)}
            for row in metrics]


def _print_cv(table, args, model, *, weights, folds=None):
    folds = folds or args.cv_folds
    if 'scale' in table.colnames:
        from .training.fitting import cross_validate_resolved
        cv = cross_validate_resolved(table, args.targets, model=model, n_splits=folds,
                                     random_state=args.seed)
        print(f'grouped {folds}-fold cross-validation (folds by galaxy across scales):')
        _print_metrics(cv.metrics)
        print('per scale:')
        _print_metrics(cv.per_scale)
        return cv
    from .training.validation import cross_validate
    cv = cross_validate(table, args.targets, groups=args.groups, n_splits=folds, model=model,
                        random_state=args.seed)
    print(f'grouped {folds}-fold cross-validation (folds by {args.groups}):')
    _print_metrics(cv.metrics)
    return cv


def _print_metrics(metrics):
    shown = metrics[[c for c in ('scale', 'target', 'unit', 'n_galaxies', 'n_rows', 'rmse',
                                 'rmse_err', 'r2', 'me', 'chi2', 'rmse_between',
                                 'rmse_within') if c in metrics.colnames]]
    for c in shown.colnames:
        if shown[c].dtype.kind == 'f':
            shown[c].info.format = '.3f'
    shown.pprint_all()
