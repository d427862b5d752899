"""
Which model predicts which pixel: band-set models found, trained and routed.

`get_band_set_model` returns the model of a band set from the package
(shipped), the astropy cache, or trains it now (``model.band_sets``) and
caches it; `group_by_band_pattern` groups the rows of a pixel table by the
bands usable in them, and `predict_by_band_set` predicts each group with
its model (the default one for rows with every band), recording which model
predicted which row.

Uses ``model.band_sets``, ``model.core`` and ``model.registry``.
"""

import warnings
from pathlib import Path

import numpy as np

from .. import conf
from ..bands import INPUT_BANDS, REFERENCE_BAND, get_band
from ..exceptions import ModelIntegrityError
from .band_sets import (
    BAND_SET_SETTINGS,
    SHIPPED_BAND_SETS,
    BandSetFallbackWarning,
    _canonical,
    _load_training_table,
    _ordered,
    _training_digest,
    band_set_cache_dir,
    band_set_name,
    band_set_training_table,
    parse_band_set_name,
    train_band_set_model,
)
from .features import _BAD_FLAGS, valid_bands

__all__ = ['get_band_set_model', 'group_by_band_pattern', 'available_band_set_models',
           'predict_by_band_set']


def _shipped_folder(name):
    folder = Path(__file__).parents[1] / 'data' / 'models' / name
    return folder if (folder / 'model.json').is_file() else None


def _cached_folders(cache_dir=None):
    root = Path(cache_dir or band_set_cache_dir())
    if not root.is_dir():
        return {}
    return {p.name.rsplit('-', 1)[0]: p for p in sorted(root.iterdir())
            if (p / 'model.json').is_file()}


def available_band_set_models(*, cache_dir=None):
    """
    The band-set models usable without training: shipped, then cached.

    Returns
    -------
    models : dict
        Band tuple -> ``(name, folder)``.
    """
    out = {}
    for name, folder in _cached_folders(cache_dir).items():
        try:
            out[parse_band_set_name(name)] = (name, folder)
        except ValueError:
            continue
    for name, bands in SHIPPED_BAND_SETS.items():
        if _shipped_folder(name) is not None:
            out[bands] = (name, _shipped_folder(name))
    return out


def get_band_set_model(bands, *, training_table=None, path=None, cache_dir=None,
                       settings=None, shipped=True, cv=True, n_jobs=1):
    """
    The model for exactly this band set: shipped, cached, or trained now and cached.

    Parameters
    ----------
    bands : sequence of str
    training_table : `~astropy.table.QTable`, optional
        Full global training table; read only to find or train a model that
        does not ship (default: ``conf.band_set_training_loader`` on ``path``).
    path : path-like, optional
        DustPedia folder for the loader (default ``conf.dustpedia_dir``).
    cache_dir : path-like, optional
        Default `band_set_cache_dir`.
    settings : dict, optional
        Default `BAND_SET_SETTINGS`.
    shipped : bool, optional
        Use a model shipped with the package when there is one.
    cv : bool, optional
        Cross-validate a model trained now (4 more fits) for its card.
    n_jobs : int, optional

    Returns
    -------
    model : `~astro_dustml.model.DustModel`

    Warns
    -----
    BandSetFallbackWarning
        A cached model was refused (failed its SHA-256 check or was trained
        on other data) and is trained again.
    """
    from .core import DustModel
    bands = _canonical(bands)
    name = band_set_name(bands)
    settings = dict(BAND_SET_SETTINGS if settings is None else settings)
    if shipped and settings == BAND_SET_SETTINGS and _shipped_folder(name) is not None:
        return DustModel.load(_shipped_folder(name))
    table = _load_training_table(path) if training_table is None else training_table
    rows = band_set_training_table(bands, table=table)
    digest = _training_digest(rows, bands, settings)
    folder = Path(cache_dir or band_set_cache_dir()) / f'{name}-{digest[:16]}'
    if (folder / 'model.json').is_file():
        try:
            model = DustModel.load(folder)
            if model.card.get('band_set', {}).get('training_sha256') != digest:
                raise ModelIntegrityError(f'{folder} was trained on other data')
            if not cv or model.card.get('cv_metrics'):
                return model
            # cached without its CV (trained during an estimate): train it with it
        except ModelIntegrityError as exc:
            warnings.warn(f'cached band-set model {folder} is refused ({exc}); training it '
                          'again.', BandSetFallbackWarning)
    model = train_band_set_model(bands, table=table, settings=settings, cv=cv, n_jobs=n_jobs)
    folder.parent.mkdir(parents=True, exist_ok=True)
    model.save(folder, overwrite=True)  # written aside and swapped in
    return model


def group_by_band_pattern(table=None, *, valid=None, bands=INPUT_BANDS, min_snr=None,
                          bad_flags=_BAD_FLAGS):
    """
    Rows grouped by their pattern of usable bands.

    Parameters
    ----------
    table : `~astropy.table.QTable`, optional
        Pixel table (used when ``valid`` is not given).
    valid : `~numpy.ndarray` of bool, shape (n_rows, len(bands)), optional
        Usable-band mask (`~astro_dustml.model.features.valid_bands`).
    bands : sequence of str, optional
        The columns of ``valid``.

    Returns
    -------
    groups : dict
        Band tuple (canonical order) -> row indices, most rows first.
        Rows without WISE 3.4 micron are under the empty tuple.

    Examples
    --------
    >>> import numpy as np
    >>> from astro_dustml.model.band_set_routing import group_by_band_pattern
    >>> v = np.array([[True, True], [True, False], [True, True]])
    >>> g = group_by_band_pattern(valid=v, bands=['WISE_3.4', 'WISE_4.6'])
    >>> {k: r.tolist() for k, r in g.items()}
    {('WISE_3.4', 'WISE_4.6'): [0, 2], ('WISE_3.4',): [1]}
    """
    bands = [get_band(b).name for b in bands]
    if valid is None:
        valid = valid_bands(table, bands=bands, min_snr=min_snr, bad_flags=bad_flags)
    valid = np.asarray(valid, bool)
    if REFERENCE_BAND in bands:
        valid = valid & valid[:, [bands.index(REFERENCE_BAND)]]
    else:
        valid = np.zeros_like(valid)
    if not len(valid):
        return {}
    patterns, inverse = np.unique(valid, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    out = {}
    for k in np.argsort(-np.bincount(inverse), kind='stable'):
        key = _ordered([b for b, v in zip(bands, patterns[k]) if v])
        out[key] = np.flatnonzero(inverse == k)
    return out


def _min_pixels(min_fraction, min_pixels, n_rows):
    """Rows a pattern needs for a model of its own."""
    frac = conf.band_set_min_fraction if min_fraction is None else min_fraction
    count = conf.band_set_min_pixels if min_pixels is None else min_pixels
    frac, count = float(frac), float(count)
    if not 0 <= frac <= 1:
        raise ValueError(f'band_set_min_fraction must be a fraction in [0, 1], got {frac}.')
    if not np.isfinite(count) or count < 0:
        raise ValueError(f'band_set_min_pixels must be a number of pixels >= 0, got {count}.')
    return max(frac * n_rows, count)


def _best_subset(pattern, available):
    """The available band set with most bands inside ``pattern`` (WISE 3.4 among them)."""
    inside = [b for b in available if set(b) <= set(pattern) and REFERENCE_BAND in b]
    return max(inside, key=lambda b: (len(b), b), default=None)


def _exact_model(pattern, *, on_demand, training_table, path, cache_dir, n_jobs, available):
    """``(model, how)`` for exactly ``pattern``, or ``(None, why)`` if there is none now."""
    from .core import DustModel
    if pattern in available:
        name, folder = available[pattern]
        try:
            return DustModel.load(folder), ('shipped' if _shipped_folder(name) else 'cached')
        except ModelIntegrityError:
            if not on_demand:
                raise
    if not on_demand:
        return None, 'on-demand training is off (conf.band_set_on_demand)'
    try:
        table = _load_training_table(path) if training_table is None else training_table
    except (OSError, ValueError) as exc:
        return None, f'no training table to train it on ({exc})'
    model = get_band_set_model(pattern, training_table=table, cache_dir=cache_dir,
                               n_jobs=n_jobs, cv=conf.band_set_on_demand_cv)
    return model, 'trained'


def predict_by_band_set(default_model, table, *, default_name=None, min_fraction=None,
                        min_pixels=None, on_demand=None, training_table=None, path=None,
                        cache_dir=None, n_jobs=1, photometric_noise=False):
    """
    Predict every row with the model of exactly its usable bands.

    Rows are grouped by their pattern of usable bands (`group_by_band_pattern`).
    Rows with every input band of ``default_model``, and rows with fewer
    than three usable bands or without WISE 3.4 (out of every model's
    domain), go to it.  A pattern that
    holds at least ``min_fraction`` of the rows and ``min_pixels`` rows gets
    the model of exactly its bands: shipped, cached, or trained now
    (`get_band_set_model`) when ``on_demand``.
    Smaller patterns, and those whose model cannot be had now, take the
    shipped or cached model of the largest subset of their bands that holds
    WISE 3.4 (with a `BandSetFallbackWarning` when a big pattern has to),
    unless it ignores more of their bands than the default model lacks (a
    pixel without GALEX FUV keeps the default model rather than one of
    twelve bands); then, and when there is no subset model, the default
    model (band dropout) predicts them.

    Parameters
    ----------
    default_model : `~astro_dustml.model.DustModel`
        The full-band model.
    table : `~astropy.table.QTable`
        Pixel table.
    default_name : str, optional
        Name of the default model for the provenance.
    min_fraction, min_pixels : float, optional
        Default ``conf.band_set_min_fraction`` (0.05) and
        ``conf.band_set_min_pixels`` (20).
    on_demand : bool, optional
        Default ``conf.band_set_on_demand``.
    training_table, path, cache_dir, n_jobs
        For the models trained on demand (`get_band_set_model`).
    photometric_noise : bool, optional
        Passed to each model's `~astro_dustml.model.DustModel.predict`.

    Returns
    -------
    prediction : `~astropy.table.QTable`
        As ``DustModel.predict``: each target, ``<target>_err``,
        ``out_of_domain``.
    model_id : `~numpy.ndarray` of int16
        Index into ``models`` of the model that predicted each row.
    models : list of dict
        Per model: ``id``, ``name``, ``bands``, ``card``, ``how``
        (``'default'``, ``'shipped'``, ``'cached'``, ``'trained'``, or
        ``'subset'`` for a model of fewer bands than the pixels have),
        ``patterns`` (the band patterns it predicted) and ``n_pixels``.
    """
    from astropy.table import QTable
    on_demand = conf.band_set_on_demand if on_demand is None else bool(on_demand)
    bad = getattr(default_model, 'bad_flags', None)
    groups = group_by_band_pattern(table, bands=INPUT_BANDS,
                                   min_snr=getattr(default_model, 'min_snr', None),
                                   bad_flags=_BAD_FLAGS if bad is None else bad)
    threshold = _min_pixels(min_fraction, min_pixels, len(table))
    full = _ordered(getattr(default_model, 'bands_', None) or default_model.bands)
    available = available_band_set_models(cache_dir=cache_dir)
    chosen = {}  # pattern -> (key, model, how)
    loaded = {full: default_model}
    fallback = []
    for pattern, rows in groups.items():
        if (set(full) <= set(pattern) or REFERENCE_BAND not in pattern
                or len(pattern) < BAND_SET_SETTINGS['min_bands']):
            # all bands; or too few for any model: the default model flags them
            chosen[pattern] = (full, 'default')
            continue
        if len(rows) >= threshold:
            if pattern in loaded:  # loaded before as a subset model
                name = available[pattern][0]
                chosen[pattern] = (pattern, 'shipped' if _shipped_folder(name) else 'cached')
                continue
            model, how = _exact_model(pattern, on_demand=on_demand,
                                      training_table=training_table, path=path,
                                      cache_dir=cache_dir, n_jobs=n_jobs, available=available)
            if model is not None:
                loaded[pattern] = model
                chosen[pattern] = (pattern, how)
                continue
            fallback.append((pattern, len(rows), how))
        sub = _best_subset(pattern, available)
        if sub is None or len(pattern) - len(sub) > len(set(full) - set(pattern)):
            # the subset model would ignore more of the pixels' bands than the
            # default model misses
            chosen[pattern] = (full, 'default')
            continue
        if sub not in loaded:
            from .core import DustModel
            loaded[sub] = DustModel.load(available[sub][1])
        chosen[pattern] = (sub, 'subset')
    for pattern, n, why in fallback:
        sub = chosen[pattern][0]
        warnings.warn(
            f'{n} pixels have exactly {", ".join(pattern)}, whose band-set model could not be '
            f'had ({why}); they are predicted by {_name(sub, full, default_name)} instead. '
            f'Pre-build it with: astro-dustml models build --bands {",".join(pattern)}',
            BandSetFallbackWarning)
    # one id per model, in the order of the pixels they predict
    keys = []
    for pattern in groups:
        if chosen[pattern][0] not in keys:
            keys.append(chosen[pattern][0])
    n = len(table)
    model_id = np.full(n, -1, np.int16)
    cols = {}
    ood = np.zeros(n, bool)
    models = []
    for i, key in enumerate(keys):
        model = loaded[key]
        patterns = [p for p in groups if chosen[p][0] == key]
        rows = np.sort(np.concatenate([groups[p] for p in patterns]))
        out = model.predict(table[rows], warn=False, photometric_noise=photometric_noise)
        for c in out.colnames:
            if c not in cols:
                v = out[c]
                unit = getattr(v, 'unit', None)
                cols[c] = (np.full(n, np.nan) if v.dtype.kind == 'f' else np.zeros(n, v.dtype),
                           unit)
            cols[c][0][rows] = getattr(out[c], 'value', np.asarray(out[c]))
        if 'out_of_domain' in out.colnames:
            ood[rows] = np.asarray(out['out_of_domain'], bool)
        model_id[rows] = i
        hows = sorted({chosen[p][1] for p in patterns})
        models.append({'id': i, 'name': _name(key, full, default_name), 'bands': list(key),
                       'card': dict(getattr(model, 'card', None) or {}),
                       'how': hows[0] if len(hows) == 1 else '+'.join(hows),
                       'patterns': [list(p) for p in patterns], 'n_pixels': int(len(rows))})
    res = QTable()
    for c, (values, unit) in cols.items():
        if c == 'out_of_domain':
            continue
        res[c] = values * unit if unit is not None else values
    res['out_of_domain'] = ood
    return res, model_id, models


def _name(key, full, default_name):
    if key == full:
        return default_name or 'default'
    return band_set_name(key)
