"""
Tests of the model registry, including real downloads from a loopback server.

The astropy download cache is redirected to a temporary folder (through
``XDG_CACHE_HOME``, which astropy reads at call time for every package name)
and the registry is pointed at a local HTTP server with ``conf.set_temp``.
"""

import hashlib
import json
import os
import shutil
import socket
from pathlib import Path

import pytest
from astropy.utils import data as astropy_data

from astro_dustml import conf
from astro_dustml.exceptions import ModelIntegrityError, ModelNotAvailableError
from astro_dustml.model.registry import (_bundled_models, _registry_entry, download_models,
                                         get_model, list_models)


@pytest.fixture
def server(loopback_server):
    """``(base URL of the models folder, that folder)`` on the loopback server."""
    return loopback_server.url + 'models/', loopback_server.root / 'models'


@pytest.fixture
def requests(loopback_server):
    """The paths asked of the loopback server."""
    return loopback_server.requests


@pytest.fixture
def cache(download_cache):
    return download_cache


def _dead_url():
    """A loopback URL on which nothing listens."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return f'http://127.0.0.1:{port}/models/'


def _publish(root, name, files):
    """Put files on the server; return their registry entry."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    entry = {}
    for filename, content in files.items():
        (folder / filename).write_bytes(content)
        entry[filename] = hashlib.sha256(content).hexdigest()
    return {'models': {name: {'description': 'test model', 'files': entry}}}


def _row(table, name):
    return table[list(table['name']).index(name)]


_FILES = {'model.json': b'{"name": "remote"}', 'trees.npz': b'\x00\x01binary'}


def test_download_hash_match(server, cache, requests):
    url, root = server
    registry = _publish(root, 'remote', _FILES)
    with conf.set_temp('model_urls', [url]):
        assert not _row(list_models(registry=registry), 'remote')['cached']
        assert download_models(['remote'], registry=registry) == ['remote']
        n_requests = len(requests)
        assert n_requests == 2
        row = _row(list_models(registry=registry), 'remote')
        assert row['cached'] and not row['bundled']
        assert row['description'] == 'test model'
        # The cached copy is byte-identical to what was served
        path = astropy_data.download_file(url + 'remote/trees.npz', cache=True,
                                          pkgname='astro_dustml')
        assert Path(path).read_bytes() == _FILES['trees.npz']
        # Cached: a second fetch does not touch the network, even when
        # downloads are disallowed
        with conf.set_temp('allow_download', False):
            download_models('remote', registry=registry)
        assert len(requests) == n_requests


def test_download_hash_mismatch(server, cache):
    url, root = server
    registry = _publish(root, 'remote', _FILES)
    # The mirror now serves a tampered file
    (root / 'remote' / 'trees.npz').write_bytes(b'tampered')
    with conf.set_temp('model_urls', [url]):
        with pytest.raises(ModelIntegrityError, match='SHA-256'):
            download_models(['remote'], registry=registry)
        # The bad file was not kept in the cache
        assert not astropy_data.is_url_in_cache(url + 'remote/trees.npz',
                                                pkgname='astro_dustml')
        assert not _row(list_models(registry=registry), 'remote')['cached']


def test_server_down(cache):
    url = _dead_url()
    registry = {'models': {'remote': {'files': {'model.json': '0' * 64}}}}
    with conf.set_temp('model_urls', [url]), conf.set_temp('remote_timeout', 2):
        with pytest.raises(ModelNotAvailableError, match='import_file_to_cache'):
            get_model('remote', registry=registry)


def test_mirror_fallback(server, cache):
    """A dead first mirror is skipped; the file comes from the second."""
    url, root = server
    registry = _publish(root, 'remote', _FILES)
    with conf.set_temp('model_urls', [_dead_url(), url]), \
            conf.set_temp('remote_timeout', 2):
        assert download_models(registry=registry) == ['remote']


def test_downloads_disallowed(server, cache, requests):
    url, root = server
    registry = _publish(root, 'remote', _FILES)
    with conf.set_temp('model_urls', [url]), conf.set_temp('allow_download', False):
        with pytest.raises(ModelNotAvailableError) as err:
            get_model('remote', registry=registry)
    message = str(err.value)
    assert 'allow_download' in message and 'import_file_to_cache' in message
    assert 'astro-dustml models download remote' in message
    assert "download_models(['remote'])" in message and '{name' not in message
    assert requests == []


def test_import_file_to_cache_makes_model_available(server, cache, tmp_path, requests):
    """The offline recipe given in the error message works."""
    url, root = server
    registry = _publish(root, 'remote', _FILES)
    for filename, content in _FILES.items():
        local = tmp_path / filename
        local.write_bytes(content)
        astropy_data.import_file_to_cache(url + f'remote/{filename}', str(local),
                                          pkgname='astro_dustml')
    with conf.set_temp('model_urls', [url]), conf.set_temp('allow_download', False):
        assert download_models('remote', registry=registry) == ['remote']
    assert requests == []


def test_registry_file_from_config(tmp_path):
    path = tmp_path / 'registry.json'
    path.write_text(json.dumps({'models': {'from-file': {
        'description': 'via conf', 'files': {'model.json': '0' * 64}}}}))
    with conf.set_temp('model_registry', str(path)):
        table = list_models()
    assert 'from-file' in list(table['name'])


def test_bad_registry_entry():
    with pytest.raises(ValueError, match='model.json'):
        list_models(registry={'models': {'x': {'files': {'a.npz': '0'}}}})


@pytest.mark.parametrize('files, name', [
    ({'model.json': '0' * 64, '../pwned.txt': '0' * 64}, 'x'),
    ({'model.json': '0' * 64, '/tmp/pwned.txt': '0' * 64}, 'x'),
    ({'model.json': '0' * 64, 'sub/pwned.txt': '0' * 64}, 'x'),
    ({'model.json': '0' * 64}, '../x'),
])
def test_registry_names_outside_folder_rejected(server, cache, requests, files, name):
    """A registry entry cannot make get_model write outside its temporary folder."""
    url, root = server
    registry = {'models': {name: {'files': files}}}
    with conf.set_temp('model_urls', [url]):
        with pytest.raises(ValueError, match='not a plain file name'):
            get_model(name, registry=registry)
        with pytest.raises(ValueError, match='not a plain file name'):
            list_models(registry=registry)
    assert requests == []


def test_unknown_model_lists_known():
    registry = {'models': {'dustpedia-resolved': {'files': {'model.json': '0' * 64}}}}
    with pytest.raises(ValueError, match='Known models:.*dustpedia-resolved') as err:
        get_model('dustpedia-resolvd', registry=registry)
    assert "Did you mean 'dustpedia-resolved'" in str(err.value)


def test_shipped_registry_is_valid():
    table = list_models()
    assert set(table.colnames) == {'name', 'description', 'bundled', 'cached', 'bands'}
    assert table.meta['default'] == conf.default_model
    # Every bundled model is listed as bundled and available offline
    for name in _bundled_models():
        row = table[list(table['name']).index(name)]
        assert row['bundled'] and row['cached']


def _bundled_or_skip():
    bundled = _bundled_models()
    if not bundled:
        pytest.skip('no bundled model in astro_dustml/data/models yet')
    return bundled.get(conf.default_model, next(iter(bundled.values())))


def test_default_model_is_bundled():
    _bundled_or_skip()
    assert conf.default_model in _bundled_models()
    model = get_model()
    assert model.card


def test_get_model_downloads_and_loads(server, cache, requests):
    """A real model folder served over HTTP loads after a verified download."""
    folder = _bundled_or_skip()
    url, root = server
    shutil.copytree(folder, root / 'remote')
    entry = _registry_entry(root / 'remote', description='served copy')
    registry = {'models': {'remote': entry}}
    with conf.set_temp('model_urls', [url]):
        model = get_model('remote', registry=registry)
    assert model.card == get_model(folder.name).card
    assert len(requests) == len(entry['files'])


def test_get_model_from_path():
    folder = _bundled_or_skip()
    assert get_model(str(folder)).card == get_model(folder.name).card
    assert os.path.isdir(folder)


# (id, registry file text, words of the ValueError) -- issue 23
BAD_REGISTRY_FILES = [
    ('a JSON list', '[{"name": "x"}]',
     ['registry.json is a JSON list, not an object', '{"models": {"<name>"',
      'model_registry']),
    ('a JSON string', '"models"', ['registry.json is a JSON string, not an object']),
    ('"models" is a list', '{"models": ["x"]}',
     ['registry.json has a "models" entry that is a JSON list, not an object']),
]


@pytest.mark.parametrize('text, words',
                         [pytest.param(*case[1:], id=case[0]) for case in BAD_REGISTRY_FILES])
def test_bad_registry_file(tmp_path, text, words):
    path = tmp_path / 'registry.json'
    path.write_text(text)
    for call in (lambda: list_models(registry=path), lambda: get_model('x', registry=path)):
        with pytest.raises(ValueError) as info:
            call()
        for word in words:
            assert word in str(info.value), str(info.value)
        assert str(path) in str(info.value)
