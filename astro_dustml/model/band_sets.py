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

The training table comes from the SED stage's
`~astro_dustml.sed.load_dustpedia_global` (reading ``conf.dustpedia_dir``),
or from the loader named by ``conf.band_set_training_loader``.
"""

import hashlib
import importlib
import json
import time
from pathlib import Path

import numpy as np

from .. import conf
from ..bands import INPUT_BANDS, REFERENCE_BAND, get_band
from ..exceptions import AstroDustMLWarning
from ..sed.dustpedia import load_dustpedia_global
from ._groups import _shuffled_groups, group_weights
from .features import _BAD_FLAGS, valid_bands

__all__ = ['BAND_SET_SETTINGS', 'SHIPPED_BAND_SETS', 'BandSetFallbackWarning', 'band_set_name',
           'parse_band_set_name', 'band_set_cache_dir', 'band_set_training_table',
           'cross_validate_band_set', 'train_band_set_model']

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
    """The global training table from ``conf.band_set_training_loader`` (or DustPedia's)."""
    spec = conf.band_set_training_loader
    if not spec:
        return load_dustpedia_global(path=path, require_targets=True)
    module, _, func = spec.partition(':')
    try:
        loader = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f'conf.band_set_training_loader = {spec!r} is not an importable '
                         f"'module:function' ({exc}); set it to '' for "
                         'astro_dustml.sed.load_dustpedia_global.') from None
    return loader(path=path, require_targets=True)


def band_set_training_table(bands, *, table=None, path=None, bad_flags=_BAD_FLAGS):
    """
    The rows of the global training table that have every band of a set.

    Parameters
    ----------
    bands : sequence of str
    table : `~astropy.table.QTable`, optional
        Global training table; default: ``conf.band_set_training_loader``
        (`~astro_dustml.sed.load_dustpedia_global`) on ``path``.
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
