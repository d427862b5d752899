"""
Band-set models: one `~astro_dustml.model.DustModel` per set of usable bands.

A pixel is predicted by the model trained on exactly the bands usable in that
pixel (DESIGN.md, "Models / Band sets").  Models for the common sets ship with
the package (``astro_dustml/data/models/<name>/``, trained by
``scripts/train_band_sets.py``); any other set is trained on demand from the
global DustPedia table (the galaxies that have every band of the set, all
other bands ignored) and cached in the astropy cache folder of
``astro_dustml`` under ``band_set_models/<name>-<digest>``, the digest being
the SHA-256 of the training rows and the model settings.  A cached model that
fails its SHA-256 check (`~astro_dustml.exceptions.ModelIntegrityError`) is
refused and trained again.

Names are ``dustpedia-bands-`` followed by one token per instrument, in
wavelength order: the instrument's short name and its band codes, e.g.
``dustpedia-bands-sdssugriz-wise1234`` for the five SDSS and the four WISE
bands (`band_set_name`, `parse_band_set_name`).

The training table comes from ``conf.band_set_training_loader`` (default
``astro_dustml.datasets:load_dustpedia_global``, reading
``conf.dustpedia_dir``), resolved at call time: the loaders are a later layer
of the package than the model, so the model stage only knows them by name.
"""

import hashlib
import importlib
import json
import time
import warnings
from pathlib import Path

import numpy as np

from .. import conf
from ..bands import INPUT_BANDS, REFERENCE_BAND, get_band
from ..exceptions import AstroDustMLWarning, ModelIntegrityError
from ._groups import _shuffled_groups, group_weights
from .features import _BAD_FLAGS, valid_bands

__all__ = ['BAND_SET_SETTINGS', 'SHIPPED_BAND_SETS', 'BandSetFallbackWarning',
           'band_set_name', 'parse_band_set_name', 'band_set_cache_dir',
           'band_set_training_table', 'cross_validate_band_set', 'train_band_set_model',
           'get_band_set_model', 'group_by_band_pattern', 'available_band_set_models',
           'predict_by_band_set']

_PREFIX = 'dustpedia-bands-'
# instrument token -> (band, code) in wavelength order; WISE 3.4 is 'wise1'
_CODES = {
    'galex': [('GALEX_FUV', 'f'), ('GALEX_NUV', 'n')],
    'sdss': [('SDSS_u', 'u'), ('SDSS_g', 'g'), ('SDSS_r', 'r'), ('SDSS_i', 'i'),
             ('SDSS_z', 'z')],
    '2mass': [('2MASS_J', 'j'), ('2MASS_H', 'h'), ('2MASS_Ks', 'k')],
    'wise': [('WISE_3.4', '1'), ('WISE_4.6', '2'), ('WISE_12', '3'), ('WISE_22', '4')],
    'irac': [('Spitzer_3.6', '1'), ('Spitzer_4.5', '2'), ('Spitzer_5.8', '3'),
             ('Spitzer_8.0', '4')],
}
_TARGETS = ('sLd', 'sMd', 'Td')
_MIN_GALAXIES = 50

BAND_SET_SETTINGS = dict(
    colours='neighbours', include_intensity=False, include_snr=True,
    n_estimators=30, max_depth=8, min_samples_leaf=3, max_features=0.5,
    band_dropout=0.0, n_dropout=0, min_bands=3, n_inner_splits=8, random_state=0)
"""
`~astro_dustml.model.DustModel` settings of every band-set model: the default
model's features, no band dropout, smaller forests (30 trees of depth 8;
grouped 4-fold CV on DustPedia showed no loss, ``benchmarks/band_sets.py``).
"""


class BandSetFallbackWarning(AstroDustMLWarning):
    """Pixels were predicted by the model of a subset of their bands."""


_W = ['WISE_3.4', 'WISE_4.6', 'WISE_12', 'WISE_22']
_W3 = _W[:3]
_S = ['SDSS_u', 'SDSS_g', 'SDSS_r', 'SDSS_i', 'SDSS_z']
_G = ['GALEX_FUV', 'GALEX_NUV']
_M = ['2MASS_J', '2MASS_H', '2MASS_Ks']
_I12 = ['Spitzer_3.6', 'Spitzer_4.5']
_I = _I12 + ['Spitzer_5.8', 'Spitzer_8.0']


def _ordered(bands):
    bands = set(bands)
    return tuple(b for b in INPUT_BANDS if b in bands)


def _canonical(bands):
    if isinstance(bands, str):
        bands = [b.strip() for b in bands.split(',') if b.strip()]
    names = []
    for b in bands:
        try:
            names.append(get_band(b).name)
        except (KeyError, ValueError) as exc:
            raise ValueError(f'band set: {b!r} is not a known band ({exc}); use names '
                             f'among {list(INPUT_BANDS)}.') from None
    unknown = [b for b in names if b not in INPUT_BANDS]
    if unknown:
        raise ValueError(f'band set: {unknown} are not model input bands; a band set is made '
                         f'of bands among {list(INPUT_BANDS)}.')
    if REFERENCE_BAND not in names:
        raise ValueError(f'band set {names} lacks the reference band {REFERENCE_BAND} (every '
                         'feature is a colour against it): add it.')
    return _ordered(names)


def band_set_name(bands):
    """
    Canonical name of a band set.

    Parameters
    ----------
    bands : sequence of str
        Band names or aliases (any order); must include ``'WISE_3.4'``.

    Returns
    -------
    name : str
        ``'dustpedia-bands-'`` plus one token per instrument.

    Examples
    --------
    >>> from astro_dustml.model.band_sets import band_set_name
    >>> band_set_name(['WISE_22', 'WISE_3.4', 'WISE_4.6', 'WISE_12', 'SDSS_g'])
    'dustpedia-bands-sdssg-wise1234'
    """
    bands = set(_canonical(bands))
    return _PREFIX + '-'.join(
        inst + ''.join(c for b, c in members if b in bands)
        for inst, members in _CODES.items() if any(b in bands for b, _ in members))


def parse_band_set_name(name):
    """
    The bands of a band-set name (inverse of `band_set_name`).

    Examples
    --------
    >>> from astro_dustml.model.band_sets import parse_band_set_name
    >>> parse_band_set_name('dustpedia-bands-2massjhk-wise1234')
    ('2MASS_J', '2MASS_H', '2MASS_Ks', 'WISE_3.4', 'WISE_4.6', 'WISE_12', 'WISE_22')
    """
    if not isinstance(name, str) or not name.startswith(_PREFIX):
        raise ValueError(f'{name!r} is not a band-set name (they start with {_PREFIX!r}, '
                         "e.g. 'dustpedia-bands-wise1234').")
    bands = []
    for token in name[len(_PREFIX):].split('-'):
        inst = next((i for i in _CODES if token.startswith(i)), None)
        codes = {c: b for b, c in _CODES.get(inst, [])}
        rest = token[len(inst):] if inst else token
        if inst is None or not rest or any(c not in codes for c in rest):
            raise ValueError(f'{token!r} in {name!r} is not an instrument token '
                             f'({", ".join(_CODES)} followed by band codes).')
        bands += [codes[c] for c in rest]
    return _canonical(bands)


SHIPPED_BAND_SETS = {band_set_name(b): _ordered(b) for b in (
    _W, _W3, _S + _W, _S[1:4] + _W3, _M + _W, _G + _S + _W, _S + _M + _W, _G + _M + _W,
    _G + _S + _M + _W, _G + _S + _M + _W + _I12, ['WISE_3.4'] + _I,
    _G + _S + _M + ['WISE_3.4'] + _I12)}
"""Name -> bands of the band sets whose model ships with the package (docs/ml.rst)."""


def band_set_cache_dir():
    """Folder of the cached on-demand band-set models (under the astropy cache)."""
    from astropy.config import get_cache_dir_path
    return Path(get_cache_dir_path('astro_dustml')) / 'band_set_models'


def _load_training_table(path=None):
    """The global training table from ``conf.band_set_training_loader``."""
    spec = conf.band_set_training_loader
    module, _, func = spec.partition(':')
    try:
        loader = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f'conf.band_set_training_loader = {spec!r} is not an importable '
                         f"'module:function' ({exc}); reset it to "
                         "'astro_dustml.datasets:load_dustpedia_global'.") from None
    return loader(path=path, require_targets=True)


def band_set_training_table(bands, *, table=None, path=None, bad_flags=_BAD_FLAGS):
    """
    The rows of the global training table that have every band of a set.

    Parameters
    ----------
    bands : sequence of str
    table : `~astropy.table.QTable`, optional
        Global training table; default: ``conf.band_set_training_loader``
        (`~astro_dustml.datasets.load_dustpedia_global`) on ``path``.
    path : path-like, optional
        DustPedia folder for the loader (default ``conf.dustpedia_dir``).

    Returns
    -------
    table : `~astropy.table.QTable`
        The complete rows (other bands are left in but never read).
    """
    bands = _canonical(bands)
    if table is None:
        table = _load_training_table(path)
    complete = valid_bands(table, bands=bands, bad_flags=bad_flags).all(axis=1)
    return table[complete]


def _training_digest(table, bands, settings):
    """SHA-256 of what a band-set model is trained from: its rows, targets and settings."""
    h = hashlib.sha256()
    cols = ['galaxy', 'pixel_area'] + [c for b in bands for c in (b, f'{b}_err', f'{b}_flag')]
    cols += [c for t in _TARGETS for c in (t, f'{t}_err')]
    for c in cols:
        if c in table.colnames:
            h.update(c.encode())
            h.update(np.ascontiguousarray(np.asarray(getattr(table[c], 'value', table[c])))
                     .tobytes())
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()


def _fold_splits(groups, n_splits=4, random_state=0):
    """The project's grouped folds (those of `astro_dustml.training.cross_validate`)."""
    from sklearn.model_selection import GroupKFold
    return list(GroupKFold(n_splits=n_splits).split(
        np.zeros(len(groups)), groups=_shuffled_groups(groups, random_state)))


def _scores(pred, true, sigma, groups):
    """Galaxy-weighted RMSE, mean error and chi², as ``training.regression_metrics``."""
    ok = np.isfinite(pred) & np.isfinite(true) & np.isfinite(sigma) & (sigma > 0)
    w = group_weights(groups[ok])
    d = pred[ok] - true[ok]
    return {'rmse': float(np.sqrt(np.sum(w * d ** 2) / np.sum(w))),
            'me': float(np.sum(w * d) / np.sum(w)),
            'chi2': float(np.sum(w * (d / sigma[ok]) ** 2) / np.sum(w)),
            'n_rows': int(ok.sum())}


def cross_validate_band_set(table, bands, *, settings=None, predict=None, n_splits=4,
                            random_state=0, n_jobs=1):
    """
    Grouped CV of a band-set model on the rows that have the whole set.

    The folds are those of the full ``table`` (the project's CV folds); each
    fold's model is trained on its training galaxies that have every band of
    ``bands`` and tested on its test galaxies that do.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        Full global training table.
    bands : sequence of str
    settings : dict, optional
        `~astro_dustml.model.DustModel` settings (default `BAND_SET_SETTINGS`).
    predict : callable, optional
        ``predict(fold, test_table) -> QTable`` instead of training a model
        (e.g. another model per fold with the other bands blanked).

    Returns
    -------
    result : dict
        Per target ``rmse``, ``me`` (predicted - true), ``chi2``;
        ``n_galaxies``; ``fit_seconds`` (mean per fold).
    """
    from .core import DustModel
    bands = _canonical(bands)
    settings = dict(BAND_SET_SETTINGS if settings is None else settings)
    groups = np.asarray(table['galaxy'])
    complete = valid_bands(table, bands=bands).all(axis=1)
    pred = {t: np.full(len(table), np.nan) for t in _TARGETS}
    err = {t: np.full(len(table), np.nan) for t in _TARGETS}
    seconds = []
    for i, (train, test) in enumerate(_fold_splits(groups, n_splits, random_state)):
        train, test = train[complete[train]], test[complete[test]]
        if predict is None:
            start = time.perf_counter()
            model = DustModel(bands=bands, n_jobs=n_jobs, **settings)
            model.fit(table[train], _TARGETS, groups=groups[train])
            seconds.append(time.perf_counter() - start)
            out = model.predict(table[test], warn=False)
        else:
            out = predict(i, table[test])
        for t in _TARGETS:
            pred[t][test] = out[t].value
            err[t][test] = out[f'{t}_err'].value
    result = {'bands': list(bands), 'n_galaxies': int(complete.sum()), 'n_splits': n_splits,
              'fit_seconds': float(np.mean(seconds)) if seconds else None}
    for t in _TARGETS:
        true = np.asarray(getattr(table[t], 'value', table[t]), float)
        result[t] = _scores(pred[t][complete], true[complete], err[t][complete],
                            groups[complete])
    return result


def train_band_set_model(bands, *, table=None, path=None, settings=None, cv=True, n_jobs=1):
    """
    Train the dedicated model of one band set on the galaxies that have it.

    Parameters
    ----------
    bands : sequence of str
    table : `~astropy.table.QTable`, optional
        Full global training table (default: ``conf.band_set_training_loader``
        on ``path``).
    path : path-like, optional
        DustPedia folder for the loader.
    settings : dict, optional
        Model settings (default `BAND_SET_SETTINGS`).
    cv : bool, optional
        Run the grouped 4-fold CV too and put it in the card.
    n_jobs : int, optional
        Threads of the forests and boosters.

    Returns
    -------
    model : `~astro_dustml.model.DustModel`
        Fitted, with ``card['name']``, ``card['band_set']`` (bands,
        ``training_sha256``) and ``card['cv_metrics']``.
    """
    from .core import DustModel
    bands = _canonical(bands)
    settings = dict(BAND_SET_SETTINGS if settings is None else settings)
    if table is None:
        table = _load_training_table(path)
    rows = band_set_training_table(bands, table=table)
    if len(rows) < _MIN_GALAXIES:
        raise ValueError(f'only {len(rows)} training galaxies have all of {list(bands)}; a '
                         f'band-set model needs at least {_MIN_GALAXIES}: use a smaller band '
                         'set.')
    metrics = cross_validate_band_set(table, bands, settings=settings,
                                      n_jobs=n_jobs) if cv else {}
    start = time.perf_counter()
    model = DustModel(bands=bands, n_jobs=n_jobs, **settings)
    model.fit(rows, _TARGETS, groups='galaxy')
    name = band_set_name(bands)
    model.card['name'] = name
    model.card['description'] = (f'Band-set model for exactly {", ".join(bands)}: trained on '
                                 f'the {len(rows)} DustPedia galaxies that have them.')
    model.card['band_set'] = {'name': name, 'bands': list(bands),
                              'training_sha256': _training_digest(rows, bands, settings),
                              'fit_seconds': time.perf_counter() - start}
    sources = table.meta.get('source', {})
    model.card['training']['sample'] = ('DustPedia galaxies with finite CIGALE targets and '
                                        'every band of the set; files: '
                                        + ', '.join(Path(p).name for p in sources.values()))
    if metrics:
        model.card['cv_metrics'] = {'n_splits': metrics['n_splits'],
                                    'all': {t: metrics[t] for t in _TARGETS},
                                    'n_galaxies': metrics['n_galaxies']}
    else:
        model.card['band_set']['cv'] = ('not run: astro-dustml models build --bands '
                                        + ','.join(bands) + ' runs it')
    return model


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
    >>> from astro_dustml.model.band_sets import group_by_band_pattern
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
                        cache_dir=None, n_jobs=1):
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
    WISE 3.4 (with a `BandSetFallbackWarning` when a big pattern has to), and
    the default model (band dropout) if there is none.

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
        if sub is None:
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
        out = model.predict(table[rows], warn=False)
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
