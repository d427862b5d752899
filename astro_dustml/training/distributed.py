"""
Resolved training on a Dask cluster, for pixel tables larger than memory.

`fit_resolved_dask` trains the same `~astro_dustml.model.DustModel` as
`~astro_dustml.training.fit_resolved`, from the Parquet table(s) of
`~astro_dustml.training.build_training_table`, without ever collecting the
table: Dask reads the needed columns lazily, the workers compute the model's
own features partition by partition (from a `~astropy.table.QTable` with the
units of the file's astropy header), and the client only receives
reductions -- counts per galaxy and scale, feature ranges, Gram matrices --
and the fitted trees.  The saved model has the same files and card as an
in-memory fit and `DustModel.load` and ``predict`` use it unchanged.

What differs from the in-memory fit, and why
    - The random forest of the mean is an xgboost random forest trained with
      `xgboost.dask` (``num_parallel_tree`` trees in one round, learning rate
      one, rows subsampled at 0.632 -- the distinct fraction of a bootstrap
      sample -- features per split ``max_features``, no leaf penalty, and
      ``min_child_weight`` = ``min_samples_leaf`` with weights of mean one),
      exported into the node arrays of the scikit-learn forests.
    - The ridge regression is solved from weighted Gram matrices reduced over
      the partitions, and its penalty is chosen by the same weighted
      leave-one-out error as `~sklearn.linear_model.RidgeCV`, computed from a
      second reduction: it equals the in-memory ridge on the same rows.
    - The uncertainty model is *one* xgboost booster per target (Gaussian
      negative log-likelihood of the out-of-fold residuals, as in memory),
      trained on all but one group of galaxies, early-stopped and calibrated
      on that group; the metric is summed over the workers.
    - ``error_weighting`` and ``target_errors`` are not supported.
"""

import json
from types import SimpleNamespace

import numpy as np

from ..model._forest import _booster_arrays
from ..model._groups import _target_values
from ..model.core import _CORE_FRACTION
from ..model.features import SNR_PREFIX
from ._dask_sums import (
    _ALPHAS,
    _add_stats,
    _cell_index,
    _cell_stats,
    _chi2_sums,
    _forest_meta,
    _forest_rows,
    _log_r2_sums,
    _loo_part,
    _residual_meta,
    _residual_rows,
    _ridge_arrays,
    _ridge_system,
    _weight_sums,
)
from ._dask_table import (
    _as_table,
    _check_columns,
    _check_summary,
    _features,
    _merge_summaries,
    _needed_columns,
    _parquet_files,
    _pieces,
    _read_piece,
    _summarise,
)
from .fitting import _default_model
from .tables import _header
from .truth import TARGETS

__all__ = ['fit_resolved_dask']


# the fraction of distinct rows in a bootstrap sample of a random forest
_SUBSAMPLE = 0.632


# early stopping of the uncertainty boosting, as in memory
_EARLY_STOPPING = 30


def fit_resolved_dask(source, targets=TARGETS, *, client=None, model=None, scales=None,
                      partition_rows=500_000, persist=True):
    """
    Fit a model on a multi-scale pixel table on a Dask cluster, never collecting the table.

    The same model as `~astro_dustml.training.fit_resolved` (rows weighted
    ``1 / N_rows(galaxy, scale)``, folds grouped by galaxy across scales, the
    model's own features and band-dropout copies), with the random forests
    and the uncertainty boosters trained by `xgboost.dask` and the ridge
    regression solved from reductions over the partitions (see the module
    description for what differs).  Needs the optional ``dask`` extra.

    Parameters
    ----------
    source : str, path-like or sequence of them
        Parquet file(s) of `~astro_dustml.training.build_training_table`: a
        path, a folder of ``*.parquet`` files, a glob pattern or a list.
        Only the columns the model needs are read, partition by partition.
    targets : sequence of str, optional
        Target columns.
    client : `distributed.Client`, optional
        Client of the cluster; default the current client.
    model : `~astro_dustml.model.DustModel`, optional
        Unfitted model; default ``DustModel(include_scale=True)`` on the
        input bands present in the table.  Its ``n_inner_splits`` sets the
        grouped folds of the out-of-fold residuals.
    scales : sequence of str, optional
        Train on these scales only (filtered while reading).
    partition_rows : int, optional
        Rows per partition (whole Parquet row groups, so roughly): the
        memory of one task is a few times this many rows.
    persist : bool, optional
        Keep the feature table (with its band-dropout copies) in the
        workers' memory between the passes; ``False`` recomputes it from the
        Parquet files for every pass (slower, for clusters that cannot hold
        it).

    Returns
    -------
    model : `~astro_dustml.model.DustModel`
        Fitted; ``save()`` writes the same files as an in-memory fit.  Its
        card records the scales and, under ``card['training']['dask']``, how
        it was trained.

    Examples
    --------
    A table of eight galaxies written to Parquet, fitted on a two-worker cluster:

    >>> import pathlib, tempfile
    >>> import numpy as np, astropy.units as u
    >>> from astropy.table import QTable
    >>> from distributed import Client, LocalCluster
    >>> from astro_dustml.model import DustModel
    >>> from astro_dustml.training import fit_resolved_dask
    >>> rng = np.random.default_rng(0)
    >>> n = 400
    >>> colour = rng.uniform(-1, 1, n)
    >>> table = QTable({'galaxy': [f'g{i % 8}' for i in range(n)], 'scale': ['18arcsec'] * n,
    ...                 'WISE_3.4': np.ones(n) * u.Jy, 'WISE_4.6': 10 ** colour * u.Jy,
    ...                 'WISE_12': 10 ** rng.uniform(-1, 1, n) * u.Jy,
    ...                 'pixel_area': np.full(n, 1e-9) * u.sr,
    ...                 'Td': (25 + 5 * colour + rng.normal(0, 0.5, n)) * u.K})
    >>> path = pathlib.Path(tempfile.mkdtemp()) / 'pixels.parquet'
    >>> table.write(path)
    >>> model = DustModel(bands=['WISE_3.4', 'WISE_4.6', 'WISE_12'], n_estimators=10,
    ...                   n_dropout=0, sigma_rounds=20)
    >>> with LocalCluster(n_workers=2, processes=False, protocol='tcp://', host='127.0.0.1',
    ...                   dashboard_address=None) as cluster, Client(cluster) as client:
    ...     model = fit_resolved_dask(path, 'Td', client=client, model=model)
    >>> model.card['training']['dask']['engine']
    'xgboost.dask'
    >>> model.predict(table[:1], warn=False)['Td'].unit
    Unit("K")
    """
    dd, distributed, dxgb = _import_dask()
    client = _get_client(distributed, client)
    targets = [targets] if isinstance(targets, str) else list(targets)
    paths = _parquet_files(source)
    schema, header = _header(paths[0])
    names = list(schema.names)
    _check_columns(names, targets, paths[0])
    if model is None:
        model = _default_model(SimpleNamespace(colnames=names))
    if model.error_weighting is not None or model.target_errors:
        raise ValueError('fit_resolved_dask does not support error_weighting or '
                         'target_errors; leave them at their defaults or use fit_resolved.')
    units = {c['name']: c.get('unit') for c in header['datatype']}
    columns = _needed_columns(model, names, targets)
    delayed = _delayed()
    # lazily read pieces of row groups, never the table
    parts = [delayed(_read_piece)(piece, columns, scales)
             for piece in _pieces(paths, partition_rows)]

    # pass 1: counts, feature ranges, band coverage, target ranges (small per partition)
    summaries = client.compute([delayed(_summarise)(p, model, units, targets) for p in parts],
                               sync=True)
    summary = _merge_summaries(summaries, targets)
    _check_summary(model, summary, targets)
    bands = model._band_names()
    galaxies = sorted(summary['galaxies'])
    code = {g: i for i, g in enumerate(galaxies)}
    weight_of = {key: 1.0 / n for key, n in summary['counts'].items()}
    model.features_ = summary['features']
    model.bands_ = bands
    model.feature_min_ = summary['feature_min']
    model.feature_max_ = summary['feature_max']
    fraction = summary['valid'] / summary['n_usable']
    model.core_bands_ = [b for b, f in zip(bands, fraction) if f >= _CORE_FRACTION]

    # pass 2: the feature table with band-dropout copies, on the workers
    n_features = len(model.features_)
    meta = _prepared_meta(n_features, targets)
    prepared = dd.from_delayed(
        [delayed(_prepare)(p, i, model, units, targets, code, weight_of)
         for i, p in enumerate(parts)], meta=meta, verify_meta=False)
    if persist:
        prepared = client.persist(prepared)
    fitter = _Fitter(client, dxgb, dd, delayed, model, prepared, n_features)

    model.targets_, model.means_, model.boosters_, model.calibration_ = {}, {}, {}, {}
    counts = {}
    for k, target in enumerate(targets):
        seed = model.random_state + 1000 * k
        info = summary['targets'][target]
        folds = _group_folds(info['galaxy_rows'], code, model.n_inner_splits, seed)
        sigma_folds = _group_folds(info['galaxy_rows'], code, model.n_inner_splits, seed + 7)
        model.targets_[target] = summary['units'][target]
        counts[target] = {'n_rows': int(info['n_rows']),
                          'n_galaxies': int(len(info['galaxy_rows']))}
        means, oof = fitter.fit_means(target, folds, seed)
        model.boosters_[target], model.calibration_[target] = fitter.fit_sigma(
            target, folds, sigma_folds, oof, seed)
        model.means_[target] = means
    if hasattr(model, 'trees_'):
        del model.trees_  # compiled again from the new arrays at the first predict
    model.card = model._make_card(np.asarray(sorted(summary['usable_galaxies'])), counts)
    training = model.card['training']
    training['n_rows'] = int(summary['n_usable'])
    training['scales'] = sorted(summary['scales'])
    training['dask'] = {
        'engine': 'xgboost.dask', 'n_partitions': len(parts),
        'n_workers': len(client.nthreads()),
        'mean_forest': (f'xgboost random forest: {model.n_estimators} trees in one round, '
                        f'subsample {_SUBSAMPLE}, colsample_bynode {model.max_features}, '
                        f'min_child_weight {model.min_samples_leaf}'),
        'ridge': 'Gram matrices reduced over partitions, alpha by weighted leave-one-out',
        'sigma': (f'one booster per target, early-stopped and calibrated on 1/'
                  f'{model.n_inner_splits} of the galaxies')}
    return model


# ------------------------------------------------------------------- plumbing


def _import_dask():
    try:
        import dask.dataframe as dd
        import distributed
        from xgboost import dask as dxgb
    except ImportError as exc:
        raise ImportError(f'fit_resolved_dask needs dask and distributed ({exc}); install '
                          "the optional extra: pip install 'astro_dustml[dask]'.") from exc
    return dd, distributed, dxgb


def _delayed():
    from dask import delayed
    return delayed


def _get_client(distributed, client):
    if client is not None:
        return client
    try:
        return distributed.get_client()
    except ValueError:
        raise ValueError('fit_resolved_dask needs a Dask cluster: pass client= (a '
                         'distributed.Client, e.g. Client(LocalCluster())) or start one '
                         'first.') from None


def _group_folds(galaxy_rows, code, n_splits, seed):
    """
    Fold of every galaxy code (-1: no rows): galaxies in a seeded random
    order, the largest first into the lightest fold (as `~sklearn.model_selection.GroupKFold`).
    """
    names = sorted(galaxy_rows)
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[i] for i in order]
    sizes = np.array([galaxy_rows[g] for g in shuffled])
    fold_rows = np.zeros(n_splits)
    folds = np.full(len(code), -1, dtype=np.int64)
    for i in np.argsort(-sizes, kind='stable'):
        lightest = int(np.argmin(fold_rows))
        fold_rows[lightest] += sizes[i]
        folds[code[shuffled[i]]] = lightest
    return folds


# ------------------------------------------------------------------- pass 2


def _feature_columns(n_features):
    return [f'f{j}' for j in range(n_features)]


def _prepared_meta(n_features, targets):
    import pandas as pd
    cols = {name: np.zeros(0) for name in _feature_columns(n_features)}
    cols.update({'n_bands': np.zeros(0, np.int16), 'full': np.zeros(0, bool),
                 'copy': np.zeros(0, bool), 'galaxy': np.zeros(0, np.int64),
                 'weight': np.zeros(0)})
    cols.update({f'y_{t}': np.zeros(0) for t in targets})
    return pd.DataFrame(cols)


def _prepare(data, index, model, units, targets, code, weight_of):
    """Features of the usable rows and their band-dropout copies (seeded per partition)."""
    import pandas as pd
    table = _as_table(data, units)
    X, _, valid, usable = _features(model, table)
    galaxy = np.asarray(table['galaxy'])
    scale = np.asarray(table['scale'])
    # one look-up per galaxy and scale of the partition, not per row
    pairs, inverse = np.unique(np.char.add(np.char.add(galaxy, '\x1f'), scale),
                               return_inverse=True)
    keys = [tuple(p.split('\x1f')) for p in pairs]
    weight = np.array([weight_of[k] for k in keys], dtype=float)[inverse.ravel()]
    groups = np.array([code[g] for g, _ in keys], dtype=np.int64)[inverse.ravel()]
    rng = np.random.default_rng([model.random_state, index])
    Xa, va, wa, ga, src, copy = model._augment(X[usable], valid[usable], weight[usable],
                                               groups[usable], rng)
    cols = dict(zip(_feature_columns(X.shape[1]), Xa.T))
    cols.update({'n_bands': va.sum(axis=1).astype(np.int16),
                 'full': model._full_band_rows(va), 'copy': copy, 'galaxy': ga,
                 'weight': wa})
    for target in targets:
        cols[f'y_{target}'] = _target_values(table, target)[0][usable][src]
    return pd.DataFrame(cols)


# ------------------------------------------------------------------- forests


def _forest_params(model, seed):
    return {'num_parallel_tree': int(model.n_estimators), 'eta': 1.0,
            'subsample': _SUBSAMPLE, 'colsample_bynode': float(model.max_features),
            'max_depth': int(model.max_depth), 'min_child_weight': float(model.min_samples_leaf),
            'lambda': 0.0, 'tree_method': 'hist', 'objective': 'reg:squarederror',
            'base_score': 0.0, 'seed': int(seed) % 2 ** 31, 'verbosity': 0}


def _export_xgb_forest(booster):
    """
    An xgboost random forest (one round of parallel trees) as the node arrays
    of `~astro_dustml.model._forest._export_forest`, leaf values scaled so
    that their mean over the trees is the booster's prediction.
    """
    if booster.num_boosted_rounds() != 1:
        raise ValueError('a random forest is one boosting round of parallel trees')
    arrays = _booster_arrays(booster)
    base = json.loads(booster.save_config())['learner']['learner_model_param']['base_score']
    # xgboost sums the trees (each scaled by 1/n); the arrays average them
    leaf = arrays['left'] < 0
    arrays['value'] = np.where(leaf, len(arrays['roots']) * arrays['value']
                               + float(base.strip('[]')), 0.0)
    arrays['feature'] = arrays['feature'].astype(np.int16)  # as _export_forest
    return arrays


# ------------------------------------------------------------------- the fits


def _quiet():
    """xgboost without its per-worker messages (the workers inherit this setting)."""
    import xgboost as xgb
    return xgb.config_context(verbosity=0)


class _Fitter:
    """The passes over the prepared (persisted) feature table, for one model."""

    def __init__(self, client, dxgb, dd, delayed, model, prepared, n_features):
        self.client, self.dxgb, self.dd, self.delayed = client, dxgb, dd, delayed
        self.model, self.prepared, self.n_features = model, prepared, n_features
        self.columns = _feature_columns(n_features)
        features = model.features_
        self.linear_columns = np.flatnonzero([not f.startswith(SNR_PREFIX) for f in features])

    def _map(self, func, *args, frame=None):
        """``func(partition, *args)`` on every partition; the results, on the client."""
        frame = self.prepared if frame is None else frame
        tasks = [self.delayed(func)(p, *args) for p in frame.to_delayed()]
        return self.client.compute(tasks, sync=True)

    def _specs(self, n_splits, dropout):
        """Training sets: (held-out fold or None, with copies)."""
        kinds = [False, True] if dropout else [False]
        return [(f, c) for f in [*range(n_splits), None] for c in kinds]

    def fit_means(self, target, folds, seed):
        """Mean models of every out-of-fold training set and of all rows; OOF means."""
        model = self.model
        n_splits = model.n_inner_splits
        dropout = model.n_dropout > 0
        specs = self._specs(n_splits, dropout)
        centre = None
        linear = {}
        if model.linear_base:
            # sums about the middle of each feature's range: no cancellation in the Gram
            centre = np.nan_to_num(0.5 * (model.feature_min_[self.linear_columns]
                                          + model.feature_max_[self.linear_columns]))
        # sums per cell (fold x copy or not); any training set is a union of cells
        per_partition = self._map(_cell_stats, target, folds, n_splits, self.linear_columns,
                                  centre)
        cells = per_partition[0]
        for part in per_partition[1:]:
            cells = [_add_stats(a, b) for a, b in zip(cells, part)]
        systems = {}
        for spec in specs:
            held, with_copies = spec
            chosen = [_cell_index(f, c, n_splits) for f in range(n_splits) if f != held
                      for c in ([False, True] if with_copies else [False])]
            stats = cells[chosen[0]]
            for i in chosen[1:]:
                stats = _add_stats(stats, cells[i])
            systems[spec] = stats
        if model.linear_base:
            ridge = {spec: _ridge_system(stats, centre) for spec, stats in systems.items()}
            loo = sum(self._map(_loo_part, target, folds, self.linear_columns, ridge))
            for spec, system in ridge.items():
                linear[spec] = _ridge_arrays(system, _ALPHAS[int(np.argmin(loo[spec]))])
                linear[spec]['linear_columns'] = self.linear_columns
        means = {}
        for spec in specs:
            held, with_copies = spec
            stats = systems[spec]
            mean = {'target_range': np.array([stats['ymin'], stats['ymax']])}
            if model.linear_base:
                mean.update(linear[spec])
            forest = self._fit_forest(target, folds, spec, mean, stats,
                                      seed + (500 if with_copies else 0)
                                      + (0 if held is None else held + 1))
            means[spec] = {**forest, **mean}
        by_fold = [{'full': means[f, False], **({'dropout': means[f, True]} if dropout else {})}
                   for f in range(n_splits)]
        final = {'full': means[None, False], **({'dropout': means[None, True]}
                                                if dropout else {})}
        return final, by_fold

    def _fit_forest(self, target, folds, spec, mean, stats, seed):
        """The xgboost random forest on the residuals of the ridge, over one training set."""
        dxgb = self.dxgb
        rows = self.prepared.map_partitions(
            _forest_rows, target, folds, spec, mean, stats['n'] / stats['S0'], self.columns,
            meta=_forest_meta(self.columns))
        dtrain = dxgb.DaskDMatrix(self.client, rows[self.columns], label=rows['label'],
                                  weight=rows['weight'])
        with _quiet():
            out = dxgb.train(self.client, _forest_params(self.model, seed), dtrain,
                             num_boost_round=1, verbose_eval=False)
        return _export_xgb_forest(out['booster'])

    def fit_sigma(self, target, folds, sigma_folds, oof_means, seed):
        """One Gaussian-NLL booster of log sigma on out-of-fold residuals, calibrated."""
        from xgboost import collective
        model, dxgb = self.model, self.dxgb
        columns = [*self.columns, 'n_bands']
        # the forests can be large: sent to every worker once, not in each task
        [shared] = self.client.scatter([oof_means], broadcast=True)
        residuals = self.dd.from_delayed(
            [self.delayed(_residual_rows)(p, target, folds, sigma_folds, model, shared,
                                          self.columns)
             for p in self.prepared.to_delayed()],
            meta=_residual_meta(columns), verify_meta=False)
        residuals = self.client.persist(residuals)
        total = np.sum(self._map(_weight_sums, frame=residuals), axis=0)  # w, n, max r2
        norm = total[1] / total[0]  # the in-memory weights have mean one over the rows
        sums = np.sum(self._map(_log_r2_sums, total[2], frame=residuals), axis=0)
        base = 0.5 * (sums[0] / sums[1] + 1.2704)

        def matrix(selection):
            rows = residuals[selection]
            return dxgb.DaskDMatrix(
                self.client, rows[columns], label=rows['r2'], weight=rows['weight'] * norm,
                base_margin=rows['weight'] * 0.0 + base)

        dfit = matrix(residuals['sfold'] != 0)
        dcal = matrix(residuals['sfold'] == 0)

        def objective(log_sigma, dtrain):
            wt, rr = dtrain.get_weight(), dtrain.get_label()
            # as model._sigma._fit_sigma (q = 1 without target errors)
            return wt * (1.0 - rr * np.exp(-2 * log_sigma)), 2.0 * wt

        def metric(log_sigma, dmat):
            wt, rr = dmat.get_weight(), dmat.get_label()
            loss = 0.5 * rr * np.exp(-2 * log_sigma) + log_sigma
            # every worker must see the same value, or they stop at different rounds
            tot = collective.allreduce(np.array([np.sum(wt * loss), np.sum(wt)]),
                                       collective.Op.SUM)
            return 'nll', float(tot[0] / max(tot[1], 1e-300))

        params = model._xgb_params(seed)
        params.pop('nthread', None)
        params['verbosity'] = 0
        with _quiet():
            out = dxgb.train(self.client, params, dfit, num_boost_round=model.sigma_rounds,
                             obj=objective, custom_metric=metric, evals=[(dcal, 'cal')],
                             early_stopping_rounds=_EARLY_STOPPING, verbose_eval=False)
        booster = out['booster']
        best = getattr(booster, 'best_iteration', None)
        if best is not None:
            booster = booster[:best + 1]
        booster.feature_names = None
        booster.feature_types = None
        s = np.sum(self._map(_chi2_sums, booster, base, columns, frame=residuals), axis=0)
        chi2 = s[0] / s[1]
        return [booster], {'base_log_sigma': float(base), 'scale': float(np.sqrt(chi2)),
                           'chi2_before': float(chi2),
                           'n_rounds': [int(booster.num_boosted_rounds())]}
