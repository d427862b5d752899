"""
Test configuration of the package: the test header, and the fixtures every
subpackage's tests share (small synthetic data and the real data beside the
checkout).
"""

import functools
import http.server
import os
import threading
import warnings
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import pytest
from astropy.utils import data as astropy_data

from astro_dustml import __version__

matplotlib.use('Agg')

# CI and developers have ../shared/data beside the checkout (tox points at it
# through the environment, since it tests an installed copy); anywhere else the
# tests that need it skip.
SHARED_DATA = Path(os.environ.get(
    'ASTRO_DUSTML_SHARED_DATA',
    Path(__file__).resolve().parents[2] / 'shared' / 'data'))


@pytest.fixture(scope='session')
def shared_data():
    """Path of the real data folder, or skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f'real data folder {SHARED_DATA} not present')
    return SHARED_DATA


@pytest.fixture
def loopback_server(tmp_path):
    """
    An HTTP server on 127.0.0.1 serving ``tmp_path / 'www'``.

    Yields a namespace with ``url`` (ends in ``/``), ``root`` (the served
    folder) and ``requests`` (the paths asked for, in order).
    """
    root = tmp_path / 'www'
    root.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f'http://127.0.0.1:{httpd.server_address[1]}/', root=root,
                              requests=requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def _single_model_unless_marked(request):
    """
    Tests predict with the default model alone (band dropout), as they were
    written for it, unless marked ``band_sets``: band-set routing would train
    models on demand for their band subsets (minutes, and the DustPedia table).
    """
    if request.node.get_closest_marker('band_sets') is not None:
        yield
        return
    from astro_dustml import conf
    with conf.set_temp('band_sets', False):
        yield


@pytest.fixture
def download_cache(tmp_path, monkeypatch):
    """Redirect the astro_dustml download cache to a temporary folder."""
    # astropy's set_temp_cache only redirects the 'astropy' package's cache
    home = tmp_path / 'cache'
    (home / 'astro_dustml').mkdir(parents=True)
    monkeypatch.setenv('XDG_CACHE_HOME', str(home))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', astropy_data.CacheMissingWarning)
        location = Path(astropy_data._get_download_cache_loc('astro_dustml'))
    assert str(location).startswith(str(home))
    return home


try:
    from pytest_astropy_header.display import PYTEST_HEADER_MODULES, TESTED_VERSIONS
except ImportError:  # pragma: no cover
    PYTEST_HEADER_MODULES, TESTED_VERSIONS = {}, {}


def pytest_configure(config):
    config.option.astropy_header = True
    PYTEST_HEADER_MODULES.clear()
    PYTEST_HEADER_MODULES.update({
        'numpy': 'numpy', 'scipy': 'scipy', 'astropy': 'astropy',
        'photutils': 'photutils', 'reproject': 'reproject',
        'regions': 'regions', 'ndcube': 'ndcube', 'scikit-learn': 'sklearn',
        'xgboost': 'xgboost', 'matplotlib': 'matplotlib'})
    TESTED_VERSIONS['astro_dustml'] = __version__
