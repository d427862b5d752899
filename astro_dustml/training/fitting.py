"""
Resolved fitting, cross-validation and metrics on multi-scale pixel tables.

Weights and groups
    `pixel_weights` gives every row ``1 / N_rows(galaxy, scale)``: each galaxy
    counts once *at each scale*.  `fit_resolved` and `cross_validate_resolved`
    group by galaxy across scales, so a galaxy never sits in the training and
    the test side of a fold at different scales.

Uses `astro_dustml.model` and ``training.validation``.
"""

import numpy as np
from astropy.table import QTable

from ..bands import INPUT_BANDS
from ..model import DustModel, group_weights
from .truth import TARGETS

__all__ = ['pixel_weights', 'fit_resolved', 'cross_validate_resolved', 'evaluate_resolved',
           'scale_metrics']


# ---------------------------------------------------------------- training


def pixel_weights(table, *, galaxy='galaxy', scale='scale'):
    """
    Row weights ``1 / N_rows(galaxy, scale)``: every galaxy counts once at each scale.

    Parameters
    ----------
    table : `~astropy.table.Table`
        With galaxy and scale columns.
    galaxy, scale : str, optional
        Their names.

    Returns
    -------
    weights : `~numpy.ndarray`

    Examples
    --------
    >>> from astropy.table import Table
    >>> from astro_dustml.training import pixel_weights
    >>> t = Table({'galaxy': ['a', 'a', 'a', 'b'], 'scale': ['18', '18', '36', '18']})
    >>> pixel_weights(t)
    array([0.5, 0.5, 1. , 1. ])
    """
    _, g = np.unique(np.asarray(table[galaxy]), return_inverse=True)
    _, s = np.unique(np.asarray(table[scale]), return_inverse=True)
    return group_weights(g.ravel().astype(np.int64) * (s.max(initial=0) + 1) + s.ravel())


def _check_groups(table):
    for col in ('galaxy', 'scale'):
        if col not in table.colnames:
            raise ValueError(f'The table has no {col!r} column: use a table of '
                             'build_training_table (read_training_table).')


def fit_resolved(table, targets=TARGETS, *, model=None):
    """
    Fit a model on a multi-scale pixel table, grouped by galaxy, weighted per scale.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        A table of `read_training_table` (global rows may be among them).
    targets : sequence of str, optional
        Target columns.
    model : `~astro_dustml.model.DustModel`, optional
        Unfitted model; default ``DustModel(include_scale=True)`` on the
        input bands present in the table.

    Returns
    -------
    model : `~astro_dustml.model.DustModel`
        Fitted; its card records the scales.
    """
    _check_groups(table)
    model = _default_model(table) if model is None else model
    model.fit(table, targets, groups=np.asarray(table['galaxy']),
              sample_weight=pixel_weights(table))
    model.card['training']['scales'] = sorted(set(np.asarray(table['scale']).tolist()))
    return model


def _default_model(table):
    bands = [b for b in INPUT_BANDS if b in table.colnames]
    return DustModel(bands=bands, include_scale=True)


def cross_validate_resolved(table, targets=TARGETS, *, model=None, n_splits=4,
                            n_bootstrap=100, random_state=0, keep_models=False):
    """
    Grouped cross-validation on a multi-scale pixel table: overall and per scale.

    Folds are grouped by galaxy across scales (a galaxy is never in the
    training and the test side of a fold, at any scale); training rows are
    weighted ``1 / N_rows(galaxy, scale)``.  The overall metrics weight every
    galaxy once and its scales equally; the per-scale metrics weight every
    galaxy once at that scale.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        A table of `read_training_table`.
    targets : sequence of str, optional
        Target columns.
    model : `~astro_dustml.model.DustModel`, optional
        Unfitted model (default as `fit_resolved`).
    n_splits : int, optional
        Number of folds.
    n_bootstrap : int, optional
        Bootstrap resamplings of the galaxies for the metric uncertainties.
    random_state : int, optional
        Seed of the folds and bootstrap.
    keep_models : bool, optional
        Keep each fold's fitted model (``result.models``), e.g. for
        `astro_dustml.training.scale_lie_experiment` on its held-out galaxies.

    Returns
    -------
    result : `~astro_dustml.training.CrossValidationResult`
        ``predictions`` gains a ``scale`` column and ``pixel_scale_pc``;
        ``metrics`` are the overall ones (``scale`` = ``'all'``);
        ``per_scale`` (an extra attribute) is a `~astropy.table.QTable` of
        the metrics of each scale and target.
    """
    from .validation import cross_validate
    _check_groups(table)
    targets = [targets] if isinstance(targets, str) else list(targets)
    model = _default_model(table) if model is None else model
    result = cross_validate(table, targets, groups=np.asarray(table['galaxy']),
                            n_splits=n_splits, model=model,
                            sample_weight=pixel_weights(table), n_bootstrap=n_bootstrap,
                            random_state=random_state, keep_models=keep_models)
    predictions = result.predictions
    predictions['scale'] = np.asarray(table['scale'])
    if 'pixel_scale_pc' in table.colnames:
        predictions['pixel_scale_pc'] = table['pixel_scale_pc']
    result.metrics = scale_metrics(predictions, targets, n_bootstrap=n_bootstrap,
                                   random_state=random_state, per_scale=False)
    result.per_scale = scale_metrics(predictions, targets, n_bootstrap=n_bootstrap,
                                     random_state=random_state)
    return result


def evaluate_resolved(model, table, targets=TARGETS, *, n_bootstrap=100, random_state=0):
    """
    Score a fitted model on held-out pixel rows: overall and per scale.

    Any model with ``predict`` works -- one trained on pixels (`fit_resolved`)
    or on global photometry -- so both can be compared on the same rows.

    Parameters
    ----------
    model : `~astro_dustml.model.DustModel`
        A fitted model (that did not see these galaxies).
    table : `~astropy.table.QTable`
        Pixel rows with the true targets (`read_training_table`).
    targets : sequence of str, optional
        Targets to score (the model must predict them).
    n_bootstrap, random_state : optional
        Bootstrap over galaxies for the metric uncertainties.

    Returns
    -------
    result : `~astro_dustml.training.CrossValidationResult`
        ``predictions`` (``galaxy``, ``scale``, ``weight`` and per target
        ``<target>_true``, ``<target>``, ``<target>_err``), ``metrics``
        (overall, as in `cross_validate_resolved`) and ``per_scale``.
    """
    from ..model import _target_values
    from .validation import CrossValidationResult
    _check_groups(table)
    targets = [targets] if isinstance(targets, str) else list(targets)
    out = model.predict(table, warn=False)
    predictions = QTable({'galaxy': np.asarray(table['galaxy']),
                          'scale': np.asarray(table['scale']),
                          'weight': pixel_weights(table)})
    if 'pixel_scale_pc' in table.colnames:
        predictions['pixel_scale_pc'] = table['pixel_scale_pc']
    for t in targets:
        true, unit = _target_values(table, t)
        predictions[f'{t}_true'] = true * unit
        predictions[t] = out[t].to(unit)
        predictions[f'{t}_err'] = out[f'{t}_err'].to(unit)
    result = CrossValidationResult(
        predictions=predictions,
        metrics=scale_metrics(predictions, targets, per_scale=False,
                              n_bootstrap=n_bootstrap, random_state=random_state))
    result.per_scale = scale_metrics(predictions, targets, n_bootstrap=n_bootstrap,
                                     random_state=random_state)
    return result


_METRIC_NAMES = ['scale', 'target', 'unit', 'n_galaxies', 'n_rows', 'rmse', 'rmse_err', 'r2',
                 'me', 'chi2', 'chi2_err', 'rmse_between', 'rmse_within']


def scale_metrics(predictions, targets=TARGETS, *, per_scale=True, galaxies=None,
                  n_bootstrap=100, random_state=0):
    """
    Metrics of out-of-fold (or held-out) predictions, overall or per scale.

    Parameters
    ----------
    predictions : `~astropy.table.QTable`
        ``galaxy``, ``scale`` and per target ``<target>_true``, ``<target>``
        and ``<target>_err`` (as `cross_validate_resolved` gives).
    targets : sequence of str, optional
        Targets to score.
    per_scale : bool, optional
        One row per scale and target (each galaxy weighted once at each
        scale), or one row per target over all scales (``scale='all'``; each
        galaxy weighted once, its scales equally).
    galaxies : sequence of str, optional
        Score only these galaxies (e.g. those that reach every scale).
    n_bootstrap, random_state : optional
        Bootstrap over galaxies.

    Returns
    -------
    metrics : `~astropy.table.QTable`
    """
    from .validation import regression_metrics
    targets = [targets] if isinstance(targets, str) else list(targets)
    keep = np.ones(len(predictions), bool)
    if galaxies is not None:
        keep = np.isin(np.asarray(predictions['galaxy']), list(galaxies))
    groups = np.asarray(predictions['galaxy'])
    scales = np.asarray(predictions['scale'])
    weights = pixel_weights(predictions)
    if not per_scale:
        # each galaxy once, its scales equally
        _, g = np.unique(groups, return_inverse=True)
        n_scales = np.array([len(set(scales[g == i])) for i in range(g.max() + 1)])
        weights = weights / n_scales[g]
    rows = []
    for label in (sorted(set(scales[keep])) if per_scale else ['all']):
        sel = keep & ((scales == label) if per_scale else True)
        for t in targets:
            unit = getattr(predictions[t], 'unit', None)
            true = np.asarray(getattr(predictions[f'{t}_true'], 'value',
                                      predictions[f'{t}_true']), float)[sel]
            pred = np.asarray(getattr(predictions[t], 'value', predictions[t]), float)[sel]
            sigma = np.asarray(getattr(predictions[f'{t}_err'], 'value',
                                       predictions[f'{t}_err']), float)[sel]
            m = regression_metrics(pred, true, groups=groups[sel], sigma=sigma,
                                   weights=weights[sel], n_bootstrap=n_bootstrap,
                                   random_state=random_state)
            m.update(scale=label, target=t, unit='' if unit is None else unit.to_string())
            rows.append([m[k] for k in _METRIC_NAMES])
    return QTable(rows=rows, names=_METRIC_NAMES) if rows else QTable(names=_METRIC_NAMES)
