"""
The pretrained-model registry: bundled models and models fetched on demand.

Two kinds of pretrained model are known by name:

- *bundled* models ship inside the package, in
  ``astro_dustml/data/models/<name>/``, and always work offline;
- *registered* models are listed in a registry file (JSON: name ->
  description and files with their SHA-256) and are downloaded on first use
  into the astropy download cache (``pkgname='astro_dustml'``) from the
  mirrors in ``astro_dustml.conf.model_urls``, then verified by hash.

The registry file is the one shipped with the package
(``astro_dustml/data/model_registry.json``) unless
``astro_dustml.conf.model_registry`` names another, or a ``registry=``
argument (a path or a dict of the same layout) is given.

A registered model's file ``<file>`` is fetched from
``<mirror><name>/<file>`` for each mirror in turn and cached under the URL on
the first mirror.  On a machine without network access, fetch the files
elsewhere and put them in the cache with
`astropy.utils.data.import_file_to_cache` under that URL (the error raised
when a model is missing gives the exact call).
"""

import difflib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from urllib.error import URLError

from astropy.table import Table
from astropy.utils import data as _data

from .. import conf
from ..exceptions import ModelIntegrityError, ModelNotAvailableError
from ._integrity import _check_plain_name, _sha256

__all__ = ['get_model', 'list_models', 'download_models']


_PKGNAME = 'astro_dustml'


_DATA = Path(__file__).parents[1] / 'data'


_BUNDLED_DIR = _DATA / 'models'


_REGISTRY_FILE = _DATA / 'model_registry.json'


_CARD = 'model.json'


# a plain file name: no folder part, no '..', nothing a path could resolve elsewhere


def _bundled_models():
    """Names -> folder of the models shipped in the package."""
    if not _BUNDLED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(_BUNDLED_DIR.iterdir())
            if (p / _CARD).is_file()}


def _load_registry(registry=None):
    """The registered (downloadable) models: dict name -> entry."""
    if isinstance(registry, dict):
        content = registry
        source = 'the registry= dict'
    else:
        path = Path(registry or conf.model_registry or _REGISTRY_FILE)
        source = str(path)
        try:
            with open(path) as f:
                content = json.load(f)
        except (OSError, ValueError) as exc:
            raise OSError(f'Cannot read the model registry {path}: {exc}. Fix '
                          'or unset astro_dustml.conf.model_registry.') from exc
    models = content.get('models', content) if isinstance(content, dict) else content
    if not isinstance(models, dict):
        where = 'is' if models is content else 'has a "models" entry that is'
        raise ValueError(
            f'The model registry {source} {where} a JSON {_json_kind(models)}, not an '
            'object: it must be {"models": {"<name>": {"description": "...", "files": '
            '{"model.json": "<sha256>", ...}}}}. Fix it, or unset '
            'astro_dustml.conf.model_registry.')
    for name, entry in models.items():
        files = entry.get('files') if isinstance(entry, dict) else None
        if not isinstance(files, dict) or _CARD not in files:
            raise ValueError(
                f'Registry entry {name!r} in {source} must have a "files" '
                f'mapping of file name to SHA-256 that includes {_CARD!r}.')
        # names become URL parts and files in a temporary folder: nothing may escape
        _check_plain_name(name, what=f'Model name in {source}')
        for filename in files:
            _check_plain_name(filename, what=f'File name of registry entry {name!r} in {source}')
    return models


def _json_kind(value):
    return {list: 'list', str: 'string', int: 'number', float: 'number', bool: 'boolean',
            type(None): 'null'}.get(type(value), type(value).__name__)


def _known(registry=None):
    return sorted(set(_bundled_models()) | set(_load_registry(registry)))


def _unknown(name, registry=None):
    known = _known(registry)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f' Did you mean {close[0]!r}?' if close else ''
    return ValueError(
        f'Unknown model {name!r}.{hint} Known models: {", ".join(known) or "none"} '
        '(see astro_dustml.model.registry.list_models()); or pass the path of a '
        'model folder saved with DustModel.save.')


def _urls(name, filename):
    """Cache key (URL on the first mirror) and the list of mirror URLs."""
    mirrors = conf.model_urls
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    if not mirrors:
        raise ModelNotAvailableError(
            f'Model {name!r} is registered for download, but no model mirror is '
            'configured (astro_dustml.conf.model_urls is empty by default: the bundled '
            'models need none, and there is no public mirror). Add the base URL of a '
            "mirror that serves <url><name>/<file>: conf.model_urls = ['https://host/"
            "models/'] (or conf.set_temp('model_urls', [...]) for a block), or a line "
            '"model_urls = https://host/models/" in ~/.astropy/config/astro_dustml.cfg; '
            'or pass the path of a model folder as model=.')
    sources = [m.rstrip('/') + f'/{name}/{filename}' for m in mirrors]
    return sources[0], sources


def _in_cache(url):
    with warnings.catch_warnings():
        # The cache folder may not exist yet: that just means "not cached"
        warnings.simplefilter('ignore', _data.CacheMissingWarning)
        return _data.is_url_in_cache(url, pkgname=_PKGNAME)


def _fetch(name, filename, sha256):
    """Path in the astropy cache of one verified model file."""
    url, sources = _urls(name, filename)
    if not _in_cache(url) and not conf.allow_download:
        raise ModelNotAvailableError(
            f'Model {name!r} is not in the download cache and downloads are '
            'disabled (astro_dustml.conf.allow_download = False). Enable them, '
            f'or run astro_dustml.model.registry.download_models([{name!r}]) (or '
            f'`astro-dustml models download {name}`) on a machine with network '
            f'access, or fetch {url} yourself and import it with '
            f'astropy.utils.data.import_file_to_cache({url!r}, <file>, '
            f'pkgname={_PKGNAME!r}).')
    try:
        path = _data.download_file(url, cache=True, sources=sources,
                                   pkgname=_PKGNAME, show_progress=False,
                                   timeout=conf.remote_timeout)
    except (URLError, OSError, TimeoutError) as exc:
        raise ModelNotAvailableError(
            f'Could not download {filename!r} of model {name!r} from '
            f'{", ".join(sources)} ({exc}). Check the network or '
            'astro_dustml.conf.model_urls, or fetch the file yourself and '
            f'import it with astropy.utils.data.import_file_to_cache({url!r}, '
            f'<file>, pkgname={_PKGNAME!r}).') from exc
    actual = _sha256(path)
    if actual != sha256.lower():
        # Never keep a bad file: the next attempt downloads afresh
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', _data.CacheMissingWarning)
            _data.clear_download_cache(url, pkgname=_PKGNAME)
        raise ModelIntegrityError(
            f'{filename!r} of model {name!r} from {url} has SHA-256 {actual} '
            f'but the registry expects {sha256}; the file was removed from '
            'the cache. The mirror serves a different or corrupt file: try '
            'another mirror (astro_dustml.conf.model_urls) or update the '
            'package.')
    return path


def _load(folder):
    from . import DustModel
    return DustModel.load(folder)


def get_model(name=None, *, registry=None):
    """
    Load a pretrained model by name.

    Parameters
    ----------
    name : str or path-like, optional
        A bundled or registered model name (see `list_models`), or the path
        of a model folder written by ``DustModel.save``. Default:
        ``astro_dustml.conf.default_model``.
    registry : str, path-like or dict, optional
        Registry of downloadable models to use instead of
        ``astro_dustml.conf.model_registry`` / the shipped one.

    Returns
    -------
    model : `~astro_dustml.model.DustModel`

    Raises
    ------
    ValueError
        The name is unknown (the message lists the known ones).
    ~astro_dustml.exceptions.ModelNotAvailableError
        A registered model is not cached and cannot be downloaded.
    ~astro_dustml.exceptions.ModelIntegrityError
        A downloaded file fails its SHA-256 check.

    Examples
    --------
    >>> from astro_dustml.model.registry import get_model, list_models
    >>> 'name' in list_models().colnames
    True
    >>> get_model('no-such-model')  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ValueError: Unknown model 'no-such-model'. Known models: ...
    """
    if name is None:
        name = conf.default_model
    if isinstance(name, os.PathLike) or (
            isinstance(name, str) and os.path.isdir(name)
            and name not in _known(registry)):
        return _load(name)
    bundled = _bundled_models()
    if name in bundled:
        return _load(bundled[name])
    models = _load_registry(registry)
    if name not in models:
        raise _unknown(name, registry)
    paths = {f: _fetch(name, f, h) for f, h in models[name]['files'].items()}
    # The cache stores files under hashed names; DustModel.load wants a folder
    with tempfile.TemporaryDirectory(prefix='astro_dustml_model_') as tmp:
        for filename, path in paths.items():
            shutil.copyfile(path, os.path.join(tmp, filename))
        return _load(tmp)


def download_models(names=None, *, registry=None):
    """
    Fetch registered models into the astropy cache, e.g. before going offline.

    Parameters
    ----------
    names : str or sequence of str, optional
        Models to fetch; default: every registered model. Bundled models
        need no download and are skipped. A band-set name that is neither
        bundled nor registered (``'dustpedia-bands-...'``,
        `~astro_dustml.model.band_sets.band_set_name`) is trained from the
        DustPedia table and cached
        (`~astro_dustml.model.band_sets.get_band_set_model`), like
        ``astro-dustml models build --bands ...``.
    registry : str, path-like or dict, optional
        Registry to use instead of the configured one.

    Returns
    -------
    fetched : list of str
        Names of the models now in the cache.
    """
    models = _load_registry(registry)
    bundled = _bundled_models()
    if names is None:
        names = [n for n in models if n not in bundled]
    elif isinstance(names, str):
        names = [names]
    fetched = []
    for name in names:
        if name in bundled:
            continue
        if name not in models and name.startswith('dustpedia-bands-'):
            from .band_sets import parse_band_set_name
            from .band_set_routing import get_band_set_model
            get_band_set_model(parse_band_set_name(name))
            fetched.append(name)
            continue
        if name not in models:
            raise _unknown(name, registry)
        for filename, sha256 in models[name]['files'].items():
            _fetch(name, filename, sha256)
        fetched.append(name)
    return fetched


def _card_description(folder):
    try:
        with open(Path(folder) / _CARD) as f:
            card = json.load(f)
    except (OSError, ValueError):
        return ''
    if not isinstance(card, dict):
        return ''
    return str(card.get('description', card.get('name', '')))


def list_models(*, registry=None):
    """
    The models known by name.

    Parameters
    ----------
    registry : str, path-like or dict, optional
        Registry to use instead of the configured one.

    Returns
    -------
    table : `~astropy.table.Table`
        Columns ``name``, ``description``, ``bundled`` (ships with the
        package), ``cached`` (available offline: bundled, or every file
        in the download cache) and ``bands`` (the band set of a band-set
        model, `astro_dustml.model.band_sets`; empty for the full-band
        models); band-set models trained on demand are listed as cached.
        The default model is marked in ``table.meta['default']``.

    Examples
    --------
    >>> from astro_dustml.model.registry import list_models
    >>> table = list_models(registry={'models': {}})
    >>> table.colnames
    ['name', 'description', 'bundled', 'cached', 'bands']
    """
    from .band_sets import parse_band_set_name
    from .band_set_routing import _cached_folders
    bundled = _bundled_models()
    models = _load_registry(registry)
    rows = []

    def bands(name):
        try:
            return ','.join(parse_band_set_name(name))
        except ValueError:
            return ''

    for name in sorted(set(bundled) | set(models)):
        if name in bundled:
            description = (models.get(name, {}).get('description')
                           or _card_description(bundled[name]))
            rows.append((name, description, True, True, bands(name)))
            continue
        entry = models[name]
        try:
            cached = all(_in_cache(_urls(name, f)[0]) for f in entry['files'])
        except ModelNotAvailableError:
            cached = False
        rows.append((name, entry.get('description', ''), False, cached, bands(name)))
    for name, folder in _cached_folders().items():
        if name not in bundled and name not in models and bands(name):
            rows.append((name, _card_description(folder) + f' (trained on demand: {folder})',
                         False, True, bands(name)))
    table = Table(rows=rows or None,
                  names=['name', 'description', 'bundled', 'cached', 'bands'],
                  dtype=[str, str, bool, bool, str])
    table.meta['default'] = conf.default_model
    return table


def _registry_entry(folder, *, description=''):
    """
    A registry entry for a saved model folder (for maintainers publishing one).

    Upload the folder's files to ``<mirror><name>/`` and add the returned
    dict under the model's name in ``astro_dustml/data/model_registry.json``.
    """
    folder = Path(folder)
    files = {p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}
    if _CARD not in files:
        raise ValueError(f'{folder} holds no {_CARD}; is it a saved model?')
    return {'description': description or _card_description(folder), 'files': files}
