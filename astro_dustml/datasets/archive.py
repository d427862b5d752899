"""
Images of DustPedia galaxies from the DustPedia archive.

The archive serves one map per galaxy and band at
``http://dustpedia.astro.noa.gr/Data/GetImage?imageName=<GALAXY>_<BAND>.fits&instrument=<INSTRUMENT>``,
with the band names of the package's registry (``GALEX_FUV``, ``SDSS_g``,
``2MASS_Ks``, ``WISE_3.4``, ``Spitzer_3.6``, ``PACS_160``, ``SPIRE_250``, ...),
the instrument the part before the first underscore, and the Spitzer maps as
``.fits.gz``.  Files go through `astropy.utils.data.download_file` into the
astropy cache of ``astro_dustml``, so each is fetched once.

DustPedia maps are in Jy/pix, except the Spitzer maps (MJy/sr); several carry
no unit keyword, so `load_dustpedia_images` states these units.
"""

import warnings
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlencode

import astropy.units as u
from astropy.utils.data import download_file

from .. import conf
from ..bands import INPUT_BANDS, get_band
from ..exceptions import AstroDustMLWarning
from ..imaging.io import _parse_image, make_collection

__all__ = ['DUSTPEDIA_IMAGE_URL', 'dustpedia_image_url', 'download_dustpedia_images',
           'load_dustpedia_images']

DUSTPEDIA_IMAGE_URL = 'http://dustpedia.astro.noa.gr/Data/GetImage'
"""Image service of the DustPedia archive."""


def dustpedia_image_url(galaxy, band, *, base_url=None):
    """
    The archive URL of a DustPedia map.

    Parameters
    ----------
    galaxy : str
        DustPedia galaxy name, e.g. ``'NGC5584'``.
    band : str
        A band of the registry (any alias).
    base_url : str, optional
        The image service (default `DUSTPEDIA_IMAGE_URL`).

    Returns
    -------
    url : str

    Examples
    --------
    >>> from astro_dustml.datasets.archive import dustpedia_image_url
    >>> dustpedia_image_url('NGC5584', 'W1')
    'http://dustpedia.astro.noa.gr/Data/GetImage?imageName=NGC5584_WISE_3.4.fits&instrument=WISE'
    >>> dustpedia_image_url('NGC5584', 'IRAC1')
    'http://dustpedia.astro.noa.gr/Data/GetImage?imageName=NGC5584_Spitzer_3.6.fits.gz&instrument=Spitzer'
    """
    name = get_band(band).name
    instrument = name.split('_', 1)[0]
    suffix = '.fits.gz' if instrument == 'Spitzer' else '.fits'
    query = urlencode({'imageName': f'{galaxy}_{name}{suffix}', 'instrument': instrument},
                      safe='.')
    return f'{base_url or DUSTPEDIA_IMAGE_URL}?{query}'


def download_dustpedia_images(galaxy, bands=INPUT_BANDS, *, base_url=None, missing='warn',
                              download=None):
    """
    Fetch a galaxy's DustPedia maps into the astropy cache.

    Parameters
    ----------
    galaxy : str
        DustPedia galaxy name.
    bands : sequence of str, optional
        Bands to fetch (default: the 18 model inputs).
    base_url : str, optional
        The image service (default `DUSTPEDIA_IMAGE_URL`).
    missing : {'warn', 'ignore', 'raise'}, optional
        What to do about bands the archive does not have for the galaxy
        (HTTP 404): warn and leave them out, leave them out, or raise.
    download : bool, optional
        False: use only files already in the cache; default
        ``conf.allow_download``.

    Returns
    -------
    paths : dict
        ``{band: local path}`` of the maps found.

    Raises
    ------
    FileNotFoundError
        A band is missing with ``missing='raise'``, or not cached with
        downloads disabled.
    OSError
        The archive could not be reached.
    """
    if missing not in ('warn', 'ignore', 'raise'):
        raise ValueError(f"missing must be 'warn', 'ignore' or 'raise', not {missing!r}.")
    allow = conf.allow_download if download is None else download
    paths, absent = {}, []
    for band in bands:
        name = get_band(band).name
        url = dustpedia_image_url(galaxy, name, base_url=base_url)
        try:
            path = (download_file(url, cache=True, pkgname='astro_dustml', show_progress=False,
                                  timeout=conf.remote_timeout) if allow else _cached(url))
        except HTTPError as exc:
            exc.close()  # the error holds the open connection
            if exc.code != 404:
                raise OSError(f'the DustPedia archive answered {exc.code} for {url}; try '
                              'again later or check base_url.') from exc
            absent.append(name)
            continue
        paths[name] = Path(path)
    if absent:
        message = (f'The DustPedia archive has no {", ".join(absent)} map of {galaxy} (HTTP '
                   '404); the galaxy is used without these bands.')
        if missing == 'raise':
            raise FileNotFoundError(message.replace('; the galaxy is used without these bands',
                                                    ''))
        if missing == 'warn':
            warnings.warn(message, AstroDustMLWarning)
    return paths


def _cached(url):
    from astropy.utils.data import is_url_in_cache
    if not is_url_in_cache(url, pkgname='astro_dustml'):
        raise FileNotFoundError(f'{url} is not in the astro_dustml cache and downloads are '
                                'disabled; allow them (download=True or '
                                'conf.allow_download) or fetch the file first.')
    return download_file(url, cache=True, pkgname='astro_dustml', show_progress=False)


def load_dustpedia_images(galaxy, bands=INPUT_BANDS, **kwargs):
    """
    A galaxy's DustPedia maps as a collection, with the archive's units.

    Parameters
    ----------
    galaxy : str
        DustPedia galaxy name.
    bands : sequence of str, optional
        Bands to fetch (default: the 18 model inputs).
    **kwargs
        Passed to `download_dustpedia_images`.

    Returns
    -------
    images : `~ndcube.NDCollection`
        `~astropy.nddata.CCDData` per band found, in Jy/pix (MJy/sr for
        Spitzer), raw (sky not subtracted): the input of
        `~astro_dustml.imaging.prepare_images` or of
        `~astro_dustml.training.TrainingGalaxy`.
    """
    paths = download_dustpedia_images(galaxy, bands, **kwargs)
    images = {}
    for band, path in paths.items():
        unit = u.MJy / u.sr if band.startswith('Spitzer') else u.Jy / u.pix
        images[band] = _parse_image(path, band=band, unit=unit)
    return make_collection(images)
