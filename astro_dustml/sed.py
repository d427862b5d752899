"""
Spectral energy distributions as tables: one row per pixel or per galaxy.

Every sample the models see -- a pixel of an aligned image stack, the
integrated photometry of a galaxy, a row of the DustPedia aperture photometry
catalogue -- becomes a row of an `~astropy.table.QTable` with one schema:

- ``galaxy`` (str), ``x``, ``y`` (pixel indices; -1 for global rows),
  ``ra``, ``dec`` (deg);
- ``pixel_area`` (sr; the aperture solid angle for a global row),
  ``pixel_scale`` (arcsec; ``sqrt(pixel_area)`` for a global row),
  ``pixel_scale_pc`` (pc, NaN when the distance is unknown), ``distance``
  (Mpc, NaN when unknown);
- per band ``<band>`` and ``<band>_err`` (Jy) and ``<band>_flag``, an int16
  bitmask of `FLAG_MASKED`, `FLAG_MISSING`, `FLAG_NEGATIVE`, `FLAG_LOW_SN`
  and `FLAG_CATALOGUE`.

Nothing is dropped for being negative or faint: such values stay in the table
with their flags, and the consumer decides.
"""

import csv
import os
from collections.abc import Mapping
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import QTable

from .bands import BANDS, get_band

__all__ = ['FLAG_MASKED', 'FLAG_MISSING', 'FLAG_NEGATIVE', 'FLAG_LOW_SN',
           'FLAG_CATALOGUE', 'FLAG_NAMES', 'decode_flags',
           'read_dustpedia_photometry']

FLAG_MASKED = 1
"""The pixel is masked in that band (star, artefact, outside coverage)."""
FLAG_MISSING = 2
"""No value: band absent, value not finite, or empty catalogue entry."""
FLAG_NEGATIVE = 4
"""The flux is negative (kept, as a measurement consistent with noise)."""
FLAG_LOW_SN = 8
"""Signal-to-noise ratio below 1."""
FLAG_CATALOGUE = 16
"""The DustPedia catalogue flags the value (its flag string is not empty)."""

FLAG_NAMES = {FLAG_MASKED: 'MASKED', FLAG_MISSING: 'MISSING',
              FLAG_NEGATIVE: 'NEGATIVE', FLAG_LOW_SN: 'LOW_SN',
              FLAG_CATALOGUE: 'CATALOGUE'}
"""Name of every flag bit."""

_FLAG_DTYPE = np.int16
_DUSTPEDIA_PHOTOMETRY = 'DustPedia_Aperture_Photometry_2.2.csv'


def decode_flags(flag):
    """
    Names of the bits set in a flag value.

    Parameters
    ----------
    flag : int
        A ``<band>_flag`` value.

    Returns
    -------
    names : list of str

    Examples
    --------
    >>> from astro_dustml.sed import decode_flags, FLAG_NEGATIVE, FLAG_LOW_SN
    >>> decode_flags(FLAG_NEGATIVE | FLAG_LOW_SN)
    ['NEGATIVE', 'LOW_SN']
    """
    return [name for bit, name in FLAG_NAMES.items() if int(flag) & bit]


def _value_flags(value, error):
    """NEGATIVE, LOW_SN and MISSING bits from values and errors (arrays)."""
    flags = np.zeros(np.shape(value), dtype=_FLAG_DTYPE)
    finite = np.isfinite(value)
    flags[~finite] |= FLAG_MISSING
    with np.errstate(invalid='ignore'):
        flags[finite & (value < 0)] |= FLAG_NEGATIVE
        # S/N < 1; undefined (no flag) where the error is unknown
        flags[finite & np.isfinite(error) & (value < error)] |= FLAG_LOW_SN
    return flags


def _distance_columns(table, distance):
    """Fill ``distance`` (Mpc) and ``pixel_scale_pc`` from a distance."""
    n = len(table)
    if distance is None:
        dist = np.full(n, np.nan) * u.Mpc
    else:
        dist = u.Quantity(distance, u.Mpc)
        if dist.ndim == 0:
            dist = np.full(n, dist.value) * u.Mpc
        elif dist.shape != (n,):
            raise ValueError(f'distance has shape {dist.shape}; give a scalar '
                             f'or one value per row ({n}).')
    table['distance'] = dist
    scale = table['pixel_scale'].to_value(u.rad) * dist
    table['pixel_scale_pc'] = scale.to(u.pc)


def _dustpedia_path(path, filename):
    from . import conf

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
