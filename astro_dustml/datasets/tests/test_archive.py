"""The DustPedia image downloader, against a loopback server with the real NGC 5584 maps."""

import functools
import gzip
import http.server
import threading
from urllib.parse import parse_qs, urlsplit

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from astro_dustml import conf
from astro_dustml.datasets.archive import (download_dustpedia_images, dustpedia_image_url,
                                           load_dustpedia_images)
from astro_dustml.exceptions import AstroDustMLWarning

SHARED = ('GALEX_NUV', 'WISE_12', 'PACS_100', 'SPIRE_250')


class _GetImage(http.server.BaseHTTPRequestHandler):
    """The archive's GetImage service over the shared folder: plain FITS, Spitzer gzipped."""

    def __init__(self, *args, folder, requests, **kwargs):
        self.folder, self.requests = folder, requests
        super().__init__(*args, **kwargs)

    def log_message(self, *args):
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        self.requests.append((parts.path, query))
        name = query.get('imageName', [''])[0]
        source = self.folder / (name if name.endswith('.gz') else f'{name}.gz')
        if parts.path != '/Data/GetImage' or not source.is_file():
            self.send_error(404)
            return
        body = source.read_bytes()
        if not name.endswith('.gz'):
            body = gzip.decompress(body)
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def archive(shared_data, download_cache):
    requests = []
    handler = functools.partial(_GetImage, folder=shared_data / 'images', requests=requests)
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        with conf.set_temp('allow_download', True):
            yield f'http://127.0.0.1:{httpd.server_address[1]}/Data/GetImage', requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_url_pattern():
    # the pattern of the archive, written out by hand
    assert dustpedia_image_url('NGC5584', 'SPIRE_250') == (
        'http://dustpedia.astro.noa.gr/Data/GetImage?imageName=NGC5584_SPIRE_250.fits'
        '&instrument=SPIRE')
    assert dustpedia_image_url('NGC5584', 'Spitzer_24').endswith(
        'imageName=NGC5584_Spitzer_24.fits.gz&instrument=Spitzer')


def test_download_and_cache(archive, shared_data):
    base, requests = archive
    paths = download_dustpedia_images('NGC5584', SHARED, base_url=base)
    assert list(paths) == list(SHARED)
    asked = {q['imageName'][0]: q['instrument'][0] for _, q in requests}
    assert asked == {'NGC5584_GALEX_NUV.fits': 'GALEX', 'NGC5584_WISE_12.fits': 'WISE',
                     'NGC5584_PACS_100.fits': 'PACS', 'NGC5584_SPIRE_250.fits': 'SPIRE'}
    for band, path in paths.items():
        original = fits.getdata(shared_data / 'images' / f'NGC5584_{band}.fits.gz')
        np.testing.assert_array_equal(fits.getdata(path), original)
    # the second time everything comes from the cache
    n = len(requests)
    again = download_dustpedia_images('NGC5584', SHARED, base_url=base, download=False)
    assert again == paths and len(requests) == n


def test_load_with_units(archive, shared_data):
    base, _ = archive
    images = load_dustpedia_images('NGC5584', ['WISE_12', 'GALEX_NUV'], base_url=base)
    # WISE 12 has no unit keyword: the archive's Jy/pix is stated
    assert images['WISE_12'].unit == u.Jy / u.pix
    assert images['GALEX_NUV'].meta['band'] == 'GALEX_NUV'
    header = fits.getheader(shared_data / 'images' / 'NGC5584_WISE_12.fits.gz')
    assert images['WISE_12'].wcs.pixel_shape == (header['NAXIS1'], header['NAXIS2'])


def test_missing_bands(archive):
    base, _ = archive
    with pytest.warns(AstroDustMLWarning, match='no SDSS_g map of NGC5584'):
        paths = download_dustpedia_images('NGC5584', ['SDSS_g', 'WISE_12'], base_url=base)
    assert list(paths) == ['WISE_12']
    with pytest.raises(FileNotFoundError, match='SDSS_g'):
        download_dustpedia_images('NGC5584', ['SDSS_g'], base_url=base, missing='raise')
    with pytest.raises(FileNotFoundError, match='downloads are disabled'):
        download_dustpedia_images('NGC5584', ['SPIRE_250'], base_url=base, download=False)
