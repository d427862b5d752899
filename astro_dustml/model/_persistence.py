"""
Saving and loading a `DustModel` as a folder of portable files (never pickle).

The folder holds the mean models' arrays in ``.npz``, each xgboost booster in
its own UBJSON format and a ``model.json`` card listing the SHA-256 of every
file, verified on loading.
"""

import hashlib
import io
import json
import platform
from pathlib import Path

import astropy
import astropy.units as u
import numpy as np
import sklearn
import xgboost as xgb

from .. import __version__
from ..exceptions import ModelIntegrityError

_FORMAT_VERSION = 2
_CARD = 'model.json'


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _versions():
    return {'astro_dustml': __version__, 'python': platform.python_version(),
            'numpy': np.__version__, 'scikit-learn': sklearn.__version__,
            'xgboost': xgb.__version__, 'astropy': astropy.__version__}


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f'{type(obj)} is not JSON serialisable')


def _save(model, path, *, overwrite=False):
    """Write a fitted model's files and card into the folder ``path``."""
    path = Path(path)
    if (path / _CARD).exists() and not overwrite:
        raise FileExistsError(f'{path} already holds a model; pass overwrite=True '
                              'to replace it.')
    path.mkdir(parents=True, exist_ok=True)
    files = {}
    for target in model.targets_:
        for kind, arrays in model.means_[target].items():
            name = f'mean_{target}.npz' if kind == 'full' else f'mean_{target}_{kind}.npz'
            np.savez_compressed(path / name, **arrays)
            files[name] = _sha256(path / name)
        for i, booster in enumerate(model.boosters_[target]):
            name = f'sigma_{target}_{i}.ubj'
            booster.save_model(str(path / name))
            files[name] = _sha256(path / name)
    np.savez_compressed(path / 'domain.npz', feature_min=model.feature_min_,
                        feature_max=model.feature_max_)
    files['domain.npz'] = _sha256(path / 'domain.npz')
    card = dict(model.card)
    card['calibration'] = model.calibration_
    card['files'] = files
    (path / _CARD).write_text(json.dumps(card, indent=2, default=_json_default))
    model.card = card
    return path


def _load(cls, path):
    """Read and verify the model folder ``path`` into a new ``cls`` instance."""
    path = Path(path)
    try:
        card = json.loads((path / _CARD).read_text())
    except (OSError, ValueError) as exc:
        raise ModelIntegrityError(f'cannot read the model card {path / _CARD}: {exc}; '
                                  'the folder is not a saved DustModel.') from exc
    if card.get('format_version') != _FORMAT_VERSION:
        raise ModelIntegrityError(
            f'model format version {card.get("format_version")} is not supported '
            f'(this astro_dustml reads {_FORMAT_VERSION}); update astro_dustml.')
    blobs = {}
    for name, digest in card.get('files', {}).items():
        try:
            data = (path / name).read_bytes()
        except OSError as exc:
            raise ModelIntegrityError(f'model file {path / name} is missing: {exc}; '
                                      're-download or re-save the model.') from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise ModelIntegrityError(
                f'model file {path / name} fails its SHA-256 check (corrupt or '
                'modified); re-download or re-save the model.')
        blobs[name] = data
    params = dict(card['params'])
    params['bands'] = tuple(params['bands'])
    model = cls(**params)
    model.card = card
    model.bands_ = list(card['bands'])
    model.features_ = list(card['features'])
    model.core_bands_ = list(card['core_bands'])
    model.targets_ = {t: u.Unit(unit) for t, unit in card['targets'].items()}
    model.calibration_ = card['calibration']
    try:
        model.means_, model.boosters_ = {}, {}
        for target in model.targets_:
            model.means_[target] = {}
            for kind in ('full', 'dropout'):
                name = f'mean_{target}.npz' if kind == 'full' else f'mean_{target}_{kind}.npz'
                if kind == 'full' or name in blobs:
                    with np.load(io.BytesIO(blobs[name])) as npz:
                        model.means_[target][kind] = {k: npz[k] for k in npz.files}
            model.boosters_[target] = []
            for i in range(len(card['calibration'][target]['n_rounds'])):
                booster = xgb.Booster(params={'nthread': model.n_jobs})
                booster.load_model(bytearray(blobs[f'sigma_{target}_{i}.ubj']))
                model.boosters_[target].append(booster)
        with np.load(io.BytesIO(blobs['domain.npz'])) as npz:
            model.feature_min_ = npz['feature_min']
            model.feature_max_ = npz['feature_max']
    except KeyError as exc:
        raise ModelIntegrityError(f'model card of {path} lists no file {exc}; '
                                  'the card is incomplete.') from exc
    return model
