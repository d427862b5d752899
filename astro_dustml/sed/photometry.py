"""
DustPedia aperture photometry as a table of global SED rows.

`read_dustpedia_photometry` reads the DustPedia photometry (v2.2) into the
schema of ``sed.tables`` (one row per galaxy, Jy, with flags), with
distances from the HyperLEDA table; the files come from
``astro_dustml.conf.dustpedia_dir`` or are downloaded from the archive.

Uses `astro_dustml.bands`, `astro_dustml.sed.flags` and ``sed.tables``.
"""

import csv
import os
from collections.abc import Mapping
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import QTable

from .. import conf
from ..bands import BANDS, get_band
from .flags import FLAG_CATALOGUE, _value_flags
from .tables import _distance_columns

__all__ = ['read_dustpedia_photometry']


_DUSTPEDIA_PHOTOMETRY = 'DustPedia_Aperture_Photometry_2.2.csv'


def _dustpedia_path(path, filename):
    if path is None:
        if not conf.dustpedia_dir:
            raise ValueError(
                f'No path to {filename} given and astro_dustml.conf.dustpedia_dir '
                'is not set. Pass path=..., or set conf.dustpedia_dir to the folder '
                'holding the DustPedia archive tables (astro_dustml.datasets can '
                'download them).')
        path = conf.dustpedia_dir
    path = Path(os.path.expanduser(path))
    if path.is_dir():
        path = path / filename
    if not path.is_file():
        raise FileNotFoundError(f'{path} does not exist; pass the path of the DustPedia '
                                f'{filename} file or the folder holding it.')
    return path


def read_dustpedia_photometry(path=None, *, bands=None, galaxies=None, distance=None):
    """
    Read the DustPedia aperture photometry table (v2.2) into the SED schema.

    Parameters
    ----------
    path : str or path-like, optional
        The ``DustPedia_Aperture_Photometry_2.2.csv`` file, or the folder
        holding it. By default the folder ``astro_dustml.conf.dustpedia_dir``.
    bands : sequence of str, optional
        Bands to keep (any name the band registry knows); default all the
        bands of the file.
    galaxies : sequence of str, optional
        Galaxy names to keep, in the catalogue's spelling (``'NGC5584'``);
        default all. Unknown names raise.
    distance : `~astropy.units.Quantity` or mapping, optional
        Distance(s): a scalar, one per row, or a mapping from galaxy name to
        distance (names it lacks get NaN). Fills ``distance`` and
        ``pixel_scale_pc``; NaN when not given.

    Returns
    -------
    table : `~astropy.table.QTable`
        One global row per galaxy. ``pixel_area`` is the aperture's solid
        angle, ``pi a b`` with ``b = a / axial_ratio`` (the catalogue's
        ``axial_ratio`` is major over minor axis); ``pixel_scale`` is its
        square root. Per band ``<band>``, ``<band>_err`` (Jy; NaN where the
        catalogue is empty), ``<band>_flag`` (`FLAG_CATALOGUE` where the
        catalogue's flag string is not empty, `FLAG_MISSING` where the value
        is empty, `FLAG_NEGATIVE`, `FLAG_LOW_SN`) and ``<band>_dpflag``, the
        catalogue's own flag string. The aperture is kept as
        ``aperture_semimajor``, ``aperture_axial_ratio`` and ``aperture_pa``;
        the catalogue's ``global_flag`` as ``global_flag``.

    Raises
    ------
    ValueError
        If no path is given and ``conf.dustpedia_dir`` is not set, or a
        requested band or galaxy is not in the file.

    Examples
    --------
    >>> from astro_dustml import conf
    >>> from astro_dustml.sed import read_dustpedia_photometry
    >>> with conf.set_temp('dustpedia_dir', ''):
    ...     read_dustpedia_photometry()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: No path to DustPedia_Aperture_Photometry_2.2.csv given ...
    """
    path = _dustpedia_path(path, _DUSTPEDIA_PHOTOMETRY)
    with open(path, newline='') as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    col = {name: i for i, name in enumerate(header)}
    missing = [c for c in ('name', 'ra', 'dec', 'semimaj_arcsec', 'axial_ratio')
               if c not in col]
    if missing:
        raise ValueError(f'{path} lacks the columns {missing}; is it the DustPedia '
                         'aperture photometry table?')
    file_bands = [name for name in header if name in BANDS]
    if bands is None:
        bands = file_bands
    else:
        bands = [get_band(b).name for b in bands]
        absent = [b for b in bands if b not in file_bands]
        if absent:
            raise ValueError(f'Bands {absent} are not in {path.name}; it has '
                             f'{file_bands}.')
    if galaxies is not None:
        index = {row[col['name']]: row for row in rows}
        unknown = [g for g in galaxies if g not in index]
        if unknown:
            raise ValueError(f'Galaxies {unknown} are not in {path.name} (names are '
                             "written like 'NGC5584').")
        rows = [index[g] for g in galaxies]

    def column(name):
        return np.array([np.nan if row[col[name]] == '' else float(row[col[name]])
                         for row in rows])

    table = QTable()
    table['galaxy'] = [row[col['name']] for row in rows]
    n = len(rows)
    table['x'] = np.full(n, -1, dtype=int)
    table['y'] = np.full(n, -1, dtype=int)
    table['ra'] = column('ra') * u.deg
    table['dec'] = column('dec') * u.deg
    semimajor = column('semimaj_arcsec') * u.arcsec
    ratio = column('axial_ratio')
    area = (np.pi * semimajor * semimajor / ratio).to(u.sr)
    table['pixel_area'] = area
    table['pixel_scale'] = np.sqrt(area).to(u.arcsec)
    if isinstance(distance, Mapping):
        distance = u.Quantity([u.Quantity(distance.get(g, np.nan), u.Mpc)
                               for g in table['galaxy']])
    _distance_columns(table, distance)
    table['aperture_semimajor'] = semimajor
    table['aperture_axial_ratio'] = ratio
    table['aperture_pa'] = column('pos_angle') * u.deg
    if 'global_flag' in col:
        table['global_flag'] = [row[col['global_flag']] for row in rows]
    for band in bands:
        value = column(band)
        error = column(f'{band}_err') if f'{band}_err' in col else np.full(n, np.nan)
        dpflag = ([row[col[f'{band}_flag']] for row in rows] if f'{band}_flag' in col
                  else [''] * n)
        flags = _value_flags(value, error)
        flags[np.array([f != '' for f in dpflag], dtype=bool)] |= FLAG_CATALOGUE
        table[band] = value * u.Jy
        table[f'{band}_err'] = error * u.Jy
        table[f'{band}_flag'] = flags
        table[f'{band}_dpflag'] = np.array(dpflag, dtype=str)
    table.meta.update({'source': str(path), 'bands': list(bands), 'wcs': None,
                       'shape': None, 'psf_fwhm': None})
    return table
