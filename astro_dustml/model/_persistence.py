"""
Saving and loading a `DustModel` as a folder of portable files (never pickle).

The folder holds the mean models' arrays in ``.npz``, each xgboost booster in
its own UBJSON format and a ``model.json`` card listing the SHA-256 of every
file, verified on loading.  The card protects its own numbers (calibration,
parameters, bands) too: ``card_sha256`` is the SHA-256 of the card serialised
as compact JSON with sorted keys, without that entry.  Every file name in the
card must be a plain name inside the folder, and any failure to read a file
that passed its hash becomes one `~astro_dustml.exceptions.ModelIntegrityError`
naming the file.
"""

import hashlib
import io
import json
import platform
import zipfile
from pathlib import Path

import astropy
import astropy.units as u
import numpy as np
import sklearn
import xgboost as xgb

from .. import __version__
from ..exceptions import ModelIntegrityError
from ._forest import _booster_trees, _forest_trees, _Trees
from ._integrity import _check_plain_name, _replacing_folder, _sha256

# 3: the card carries the hash of its own content
_FORMAT_VERSION = 3
_CARD = 'model.json'
_CARD_HASH = 'card_sha256'
# what a corrupt file that passed its hash can raise while being decoded
_DECODE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, EOFError,
                  OSError, zipfile.BadZipFile, xgb.core.XGBoostError)


def _card_digest(card):
    """SHA-256 of the card's content (compact JSON, sorted keys, without its own hash)."""
    content = {k: v for k, v in card.items() if k != _CARD_HASH}
    text = json.dumps(content, sort_keys=True, separators=(',', ':'), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


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
    """
    Write a fitted model's files and card into the folder ``path``.

    The files are written to a temporary folder beside ``path`` and moved in
    only once all are written (`_replacing_folder`): an interrupted save
    leaves the old model as it was.  Over an old model (``overwrite=True``)
    the files of the model format are replaced, and the old files the new
    model lacks are removed only if its verified card wrote them
    (`_written_files`); any other file in the folder stays.
    """
    path = _check_save_path(path, overwrite=overwrite)
    with _replacing_folder(path, card=_CARD, owned=_written_files) as folder:
        files = {}
        for target in model.targets_:
            for kind, arrays in model.means_[target].items():
                name = f'mean_{target}.npz' if kind == 'full' else f'mean_{target}_{kind}.npz'
                np.savez_compressed(folder / name, **arrays)
                files[name] = _sha256(folder / name)
            for i, booster in enumerate(model.boosters_[target]):
                name = f'sigma_{target}_{i}.ubj'
                booster.save_model(str(folder / name))
                files[name] = _sha256(folder / name)
        np.savez_compressed(folder / 'domain.npz', feature_min=model.feature_min_,
                            feature_max=model.feature_max_)
        files['domain.npz'] = _sha256(folder / 'domain.npz')
        card = dict(model.card)
        card['format_version'] = _FORMAT_VERSION
        card['calibration'] = model.calibration_
        card['files'] = files
        # hash what a reader will see: tuples and numpy scalars as JSON has them
        card = json.loads(json.dumps(card, default=_json_default))
        card[_CARD_HASH] = _card_digest(card)
        (folder / _CARD).write_text(json.dumps(card, indent=2))
    model.card = card
    return path


def _check_save_path(path, *, overwrite):
    """``path`` as a Path, if a model may be saved there (before any work is done)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f'{path} is a file, not a model folder; save the model to '
                              'a folder path (it is created).')
    if (path / _CARD).exists():
        if not overwrite:
            raise FileExistsError(f'{path} already holds a model; pass overwrite=True '
                                  'to replace it.')
        if not _is_card(path / _CARD):
            raise FileExistsError(
                f'{path / _CARD} is not a model card of astro_dustml (not a JSON object '
                'with "format_version" and "files"): it and its folder are left alone, '
                'even with overwrite. Save the model to another folder.')
    return path


def _is_card(card_path):
    """Whether ``card_path`` holds a model card of this package (verified or not)."""
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(card, dict) and 'format_version' in card and 'files' in card


def _written_files(path):
    """
    The files of the folder ``path`` that a verified card of this package wrote.

    The card must pass its own content check, and each file it lists must be a
    plain name, a regular file (no link) and match its SHA-256.  An unverified
    card vouches for nothing: then no file is the package's to delete.
    """
    try:
        card = _read_card(path)
    except ModelIntegrityError:
        return set()
    files = card.get('files')
    if not isinstance(files, dict):
        return set()
    owned = set()
    for name, digest in files.items():
        try:
            _check_plain_name(name, what='File name')
        except ValueError:
            continue
        file = path / name
        if file.is_file() and not file.is_symlink() and _sha256(file) == digest:
            owned.add(name)
    return owned


def _read_card(path):
    """The verified card of the model folder ``path``."""
    card_path = path / _CARD
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelIntegrityError(f'cannot read the model card {card_path}: {exc}; '
                                  'the folder is not a saved DustModel.') from exc
    if not isinstance(card, dict):
        raise ModelIntegrityError(f'model card {card_path} is not a JSON object; '
                                  're-download or re-save the model.')
    version = card.get('format_version')
    if version != _FORMAT_VERSION:
        newer = isinstance(version, int) and version > _FORMAT_VERSION
        raise ModelIntegrityError(
            f'model card {card_path} has format version {version!r}, but this '
            f'astro_dustml reads version {_FORMAT_VERSION} (cards that carry a checksum '
            'of their own content); ' + ('update astro_dustml.' if newer else
                                         'train and save the model again with this version.'))
    if card.get(_CARD_HASH) != _card_digest(card):
        raise ModelIntegrityError(
            f'model card {card_path} fails its content check ({_CARD_HASH}): its numbers '
            '(calibration, parameters, bands or file hashes) were modified after saving; '
            're-download or re-save the model.')
    return card


def _read_files(path, card):
    """The bytes of every file the card lists, each a plain name verified by SHA-256."""
    files = card.get('files')
    if not isinstance(files, dict):
        raise ModelIntegrityError(f'model card {path / _CARD} has no "files" mapping; '
                                  'the card is incomplete.')
    folder = path.resolve()
    blobs = {}
    for name, digest in files.items():
        try:
            _check_plain_name(name, what=f'File name in the model card {path / _CARD}')
        except ValueError as exc:
            raise ModelIntegrityError(str(exc)) from None
        file = path / name
        if file.resolve().parent != folder:  # e.g. a symbolic link out of the folder
            raise ModelIntegrityError(f'model file {file} points outside the model folder '
                                      f'{path}; copy the file into the folder.')
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise ModelIntegrityError(f'model file {file} is missing: {exc}; '
                                      're-download or re-save the model.') from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise ModelIntegrityError(
                f'model file {file} fails its SHA-256 check (corrupt or '
                'modified); re-download or re-save the model.')
        blobs[name] = data
    return blobs


def _load(cls, path):
    """Read and verify the model folder ``path`` into a new ``cls`` instance."""
    path = Path(path)
    card = _read_card(path)
    blobs = _read_files(path, card)
    # what is being decoded, for the error message
    current = path / _CARD

    def blob(name):
        if name not in blobs:
            raise ModelIntegrityError(f'model card {path / _CARD} lists no file {name!r}; '
                                      'the card is incomplete: re-download or re-save it.')
        return blobs[name]

    try:
        params = dict(card['params'])
        params['bands'] = tuple(params['bands'])
        model = cls(**params)
        model.card = card
        model.bands_ = list(card['bands'])
        model.features_ = list(card['features'])
        model.core_bands_ = list(card['core_bands'])
        model.targets_ = {t: u.Unit(unit) for t, unit in card['targets'].items()}
        model.calibration_ = card['calibration']
        model.means_, model.boosters_, model.trees_ = {}, {}, {}
        for target in model.targets_:
            model.means_[target] = {}
            # node arrays for the compiled walk, built file by file so that an
            # inconsistent file is named
            trees = model.trees_[target] = {'means': {}}
            for kind in ('full', 'dropout'):
                name = f'mean_{target}.npz' if kind == 'full' else f'mean_{target}_{kind}.npz'
                if kind == 'full' or name in blobs:
                    current = path / name
                    with np.load(io.BytesIO(blob(name))) as npz:
                        model.means_[target][kind] = {k: npz[k] for k in npz.files}
                    trees['means'][kind] = _forest_trees(model.means_[target][kind])
            model.boosters_[target], parts = [], []
            current = path / _CARD
            for i in range(len(card['calibration'][target]['n_rounds'])):
                name = f'sigma_{target}_{i}.ubj'
                current = path / name
                booster = xgb.Booster(params={'nthread': model.n_jobs})
                booster.load_model(bytearray(blob(name)))
                parts.append(_booster_trees(booster))
                model.boosters_[target].append(booster)
            trees['sigma'] = _Trees.concatenate(parts)
        current = path / 'domain.npz'
        with np.load(io.BytesIO(blob('domain.npz'))) as npz:
            model.feature_min_ = npz['feature_min']
            model.feature_max_ = npz['feature_max']
    except ModelIntegrityError:
        raise
    except _DECODE_ERRORS as exc:
        raise ModelIntegrityError(
            f'model file {current} is malformed although it passed its hash '
            f'({type(exc).__name__}: {exc}); the model was saved incompletely or altered: '
            're-download or re-save it.') from exc
    return model
