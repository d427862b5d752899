"""
Foreground Milky Way stars from Gaia.

`query_gaia_stars` queries the Gaia archive (astroquery) around a galaxy,
and `select_foreground_stars` keeps the stars whose astrometry (a
significant parallax or proper motion) places them in the Milky Way,
protecting the galaxy's nucleus (Dobbels & Baes 2021, Sect. 2.1). A local
Gaia table (FITS, ECSV) works the same way, for offline use. Their masks
are made in ``imaging.stars``.

Uses `astro_dustml.exceptions` and astroquery (optional).
"""

from collections.abc import Mapping

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import QTable, Table
from astropy.wcs import WCS
from regions import CircleSkyRegion, SkyRegion

__all__ = ['GAIA_COLUMNS', 'query_gaia_stars', 'select_foreground_stars']


#: Columns (Gaia ``gaia_source`` names) every star table needs; one of
#: ``parallax_error`` or ``parallax_over_error`` is also required.
GAIA_COLUMNS = ('ra', 'dec', 'parallax', 'pmra', 'pmdec', 'phot_g_mean_mag')


_UNITS = {'ra': u.deg, 'dec': u.deg, 'parallax': u.mas, 'parallax_error': u.mas,
          'pmra': u.mas / u.yr, 'pmdec': u.mas / u.yr, 'pmra_error': u.mas / u.yr,
          'pmdec_error': u.mas / u.yr, 'phot_g_mean_mag': u.mag}


_QUERY_COLUMNS = ('source_id', 'ra', 'dec', 'parallax', 'parallax_error',
                  'parallax_over_error', 'pmra', 'pmra_error', 'pmdec',
                  'pmdec_error', 'phot_g_mean_mag', 'astrometric_excess_noise_sig', 'ruwe')


def query_gaia_stars(center, radius, *, table='gaiadr3.gaia_source', max_mag=None,
                     row_limit=-1):
    """
    Query the Gaia archive for the sources in a cone (needs astroquery).

    This is the online path; any `~astropy.table.Table` with Gaia
    ``gaia_source`` column names (see `GAIA_COLUMNS`) can be used instead,
    e.g. one read from a saved query, by every other function here.

    Parameters
    ----------
    center : `~astropy.coordinates.SkyCoord`
        Centre of the cone.
    radius : `~astropy.units.Quantity`
        Radius of the cone (angle).
    table : str, optional
        Gaia archive table.
    max_mag : float, optional
        Keep only sources brighter than this G magnitude.
    row_limit : int, optional
        Maximum number of rows (-1 for all).

    Returns
    -------
    stars : `~astropy.table.Table`
        Astrometry and G magnitude of the sources, with units.

    Raises
    ------
    ImportError
        If astroquery is not installed.
    ConnectionError
        If the archive cannot be reached (e.g. no network): pass a local
        table instead.

    Examples
    --------
    >>> from astropy.coordinates import SkyCoord
    >>> import astropy.units as u
    >>> from astro_dustml.imaging import query_gaia_stars
    >>> stars = query_gaia_stars(SkyCoord.from_name('NGC 1566'),
    ...                          5 * u.arcmin)  # doctest: +REMOTE_DATA
    """
    try:
        from astroquery.gaia import Gaia
    except ImportError as exc:
        raise ImportError(
            'query_gaia_stars needs astroquery: `pip install astroquery` or '
            '`pip install "astro_dustml[all]"`; or pass any Table with Gaia '
            'gaia_source columns instead.') from exc
    center = SkyCoord(center).icrs
    radius = u.Quantity(radius, u.deg)
    where = (f"1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', "
             f"{center.ra.deg!r}, {center.dec.deg!r}, {radius.value!r}))")
    if max_mag is not None:
        where += f' AND phot_g_mean_mag < {float(max_mag)!r}'
    top = '' if row_limit is None or row_limit < 0 else f'TOP {int(row_limit)} '
    query = f"SELECT {top}{', '.join(_QUERY_COLUMNS)} FROM {table} WHERE {where}"
    try:
        job = Gaia.launch_job_async(query)
        result = Table(job.get_results())
    except OSError as exc:  # socket.gaierror, refused or timed-out connections, HTTP errors
        raise ConnectionError(
            f'Could not reach the Gaia archive ({type(exc).__name__}: {exc}); without '
            'network, pass a local Gaia table instead: stars=Table.read("gaia.ecsv") (any '
            'Table with the gaia_source columns ra, dec, parallax, parallax_error, pmra, '
            'pmdec, phot_g_mean_mag; see "Masking foreground stars" in the docs, offline) '
            'or --gaia FILE on the command line; or stars=None to mask no stars.') from exc
    result.rename_columns(result.colnames, [c.lower() for c in result.colnames])
    return result


def _as_stars(table):
    """Validate a Gaia-like table into a new Table of plain float columns."""
    if (isinstance(table, (list, tuple)) and table
            and all(isinstance(r, Mapping) for r in table)):
        # rows as dicts (e.g. from JSON): columns with the units their values carry
        try:
            table = QTable(rows=list(table))
        except Exception as exc:
            raise TypeError(f'The star table, given as a list of {len(table)} dicts, cannot '
                            f'be made into a table ({exc}); every row needs the same keys, '
                            'with numbers or Quantities (ra, dec in deg, parallax in mas, '
                            'pmra, pmdec in mas/yr), or pass an astropy Table.') from exc
    if not isinstance(table, Table):
        try:
            table = Table(table)
        except Exception as exc:
            raise TypeError('Stars must be an astropy Table (or something Table() '
                            'accepts) with Gaia gaia_source column names, not '
                            f'{type(table).__name__}.') from exc
    missing = [c for c in GAIA_COLUMNS if c not in table.colnames]
    if 'parallax_error' not in table.colnames and 'parallax_over_error' not in table.colnames:
        missing.append('parallax_error (or parallax_over_error)')
    if missing:
        raise ValueError(
            f'The star table lacks the Gaia column(s) {", ".join(missing)}. '
            f'It needs {", ".join(GAIA_COLUMNS)} and parallax_error or '
            'parallax_over_error, named as in gaia_source; rename yours with '
            'Table.rename_column or get one with query_gaia_stars.')
    out = Table()
    if 'source_id' in table.colnames:
        out['source_id'] = np.asarray(table['source_id'])
    else:
        out['source_id'] = np.arange(len(table))
    for name in table.colnames:
        if name == 'source_id':
            continue
        column = table[name]
        if name in _UNITS or name in ('parallax_over_error', 'astrometric_excess_noise_sig',
                                      'ruwe'):
            _check_numbers(name, column)
            unit = getattr(column, 'unit', None)
            values = np.ma.filled(np.ma.asarray(getattr(column, 'value', column),
                                                dtype=float), np.nan)
            if name in _UNITS and unit is not None and unit != u.mag:
                try:
                    values = (values * u.Unit(unit)).to_value(_UNITS[name])
                except u.UnitsError as exc:
                    raise ValueError(f'Column {name} has unit {unit}; expected '
                                     f'{_UNITS[name]}.') from exc
            out[name] = values
        else:
            out[name] = column
    if 'parallax_over_error' not in out.colnames:
        with np.errstate(divide='ignore', invalid='ignore'):
            out['parallax_over_error'] = out['parallax'] / out['parallax_error']
    return out


def _check_numbers(name, column):
    """A Gaia column must hold numbers: text (e.g. sexagesimal RA) is refused."""
    kind = np.asarray(getattr(column, 'value', column)).dtype.kind
    if kind in 'iufb':
        return
    first = str(column[0]) if len(column) else ''
    unit = _UNITS.get(name)
    what = 'text' if kind in 'US' else 'mixed objects' if kind == 'O' else f'{kind!r} values'
    raise ValueError(
        f"Column {name} of the star table holds {what} (e.g. '{first}'), not numbers; "
        'the Gaia columns are numbers'
        + (f' in {unit} (or Quantities)' if unit is not None else '') + '. Convert it '
        'first, e.g. for sexagesimal coordinates SkyCoord(ra, dec, unit=(u.hourangle, '
        'u.deg)).ra.deg, or read the table with its units (Table.read of the saved Gaia '
        'query).')


def _nucleus_region(galaxy, nucleus_radius):
    if galaxy is None:
        return None
    if isinstance(galaxy, SkyRegion):
        return galaxy
    center = galaxy.get('center') if isinstance(galaxy, dict) else galaxy
    if not isinstance(center, SkyCoord):
        raise TypeError('galaxy= takes a SkyCoord (the centre), a dict with a '
                        "'center' SkyCoord, or a regions SkyRegion of the nucleus.")
    return CircleSkyRegion(center=center, radius=u.Quantity(nucleus_radius, u.arcsec))


def select_foreground_stars(table, *, galaxy=None, min_parallax_snr=5.0,
                            min_pm_snr=5.0, max_excess_noise_sig=2.0,
                            min_proper_motion=None, max_mag=None,
                            nucleus_radius=10 * u.arcsec, force=False):
    """
    Keep the Gaia sources whose astrometry puts them in the Milky Way.

    A source is a foreground star when its parallax is significant
    (``parallax / parallax_error >= min_parallax_snr``) or, when
    ``pmra_error`` and ``pmdec_error`` are given, its proper motion is
    (``|pm| / error >= min_pm_snr``) and it is not extended (Gaia's
    ``astrometric_excess_noise_sig <= max_excess_noise_sig`` when that column
    is there: HII regions and galaxy nuclei get spurious proper motions but a
    large excess noise). On the NGC 1566 Gaia DR3 field, about half of the
    sources with a 3 to 5 sigma parallax inside the galaxy are such knots,
    hence the default 5 sigma. Without proper-motion errors a total proper motion
    of at least ``min_proper_motion`` may be used instead. Sources inside the
    galaxy nucleus are never kept unless ``force`` is set, since Gaia often
    catalogues a nucleus with spurious astrometry.

    Parameters
    ----------
    table : `~astropy.table.Table` or list of dict
        Gaia sources with ``gaia_source`` column names (`GAIA_COLUMNS` and
        ``parallax_error`` or ``parallax_over_error``), e.g. from
        `query_gaia_stars`, or its rows as dicts. Columns with units are
        converted; columns without are read in the ``gaia_source`` units
        (deg, mas, mas/yr, mag). Columns of text (e.g. sexagesimal RA) are
        an error.
    galaxy : `~astropy.coordinates.SkyCoord`, dict or `regions.SkyRegion`, optional
        The galaxy centre (or a dict with ``'center'``, as
        `~astro_dustml.datasets.MockGalaxy.galaxy`), whose surroundings
        within ``nucleus_radius`` are protected; or the nucleus region itself.
    min_parallax_snr : float, optional
        Parallax significance of a foreground star.
    min_pm_snr : float or None, optional
        Proper-motion significance of a foreground star (None: not used).
    max_excess_noise_sig : float or None, optional
        Largest ``astrometric_excess_noise_sig`` for a proper-motion
        selection (None: not used).
    min_proper_motion : `~astropy.units.Quantity`, optional
        Total proper motion selecting a star when no errors are given.
    max_mag : float, optional
        Keep only stars brighter than this G magnitude.
    nucleus_radius : `~astropy.units.Quantity`, optional
        Radius of the protected nucleus around a ``galaxy`` centre.
    force : bool, optional
        Keep foreground stars inside the nucleus too.

    Returns
    -------
    stars : `~astropy.table.Table`
        A new table of the selected stars (the input is not modified).

    Examples
    --------
    >>> from astropy.table import QTable, Table
    >>> from astro_dustml.imaging import select_foreground_stars
    >>> gaia = Table({'source_id': [1, 2, 3], 'ra': [10., 10.01, 10.02],
    ...               'dec': [0., 0., 0.], 'parallax': [2.0, 0.1, -0.2],
    ...               'parallax_error': [0.1, 0.2, 0.3], 'pmra': [5., 0., 0.],
    ...               'pmdec': [-3., 0., 0.], 'phot_g_mean_mag': [15., 19., 20.]})
    >>> select_foreground_stars(gaia)['source_id'].tolist()
    [1]
    """
    stars = _as_stars(table)
    keep = stars['parallax_over_error'] >= min_parallax_snr
    if min_pm_snr is not None and {'pmra_error', 'pmdec_error'} <= set(stars.colnames):
        with np.errstate(divide='ignore', invalid='ignore'):
            pm_snr = np.hypot(stars['pmra'] / stars['pmra_error'],
                              stars['pmdec'] / stars['pmdec_error'])
        moving = pm_snr >= min_pm_snr
        if max_excess_noise_sig is not None and 'astrometric_excess_noise_sig' in stars.colnames:
            moving &= stars['astrometric_excess_noise_sig'] <= max_excess_noise_sig
        keep |= moving
    if min_proper_motion is not None:
        pm = np.hypot(stars['pmra'], stars['pmdec'])
        keep |= pm >= u.Quantity(min_proper_motion, u.mas / u.yr).value
    if max_mag is not None:
        keep &= stars['phot_g_mean_mag'] < max_mag
    nucleus = _nucleus_region(galaxy, nucleus_radius)
    if nucleus is not None and not force and len(stars):
        coords = SkyCoord(stars['ra'], stars['dec'], unit='deg')
        if isinstance(nucleus, CircleSkyRegion):
            inside = coords.separation(nucleus.center) <= nucleus.radius
        else:
            inside = _contains_sky(nucleus, coords)
        keep &= ~inside
    return stars[np.asarray(keep, dtype=bool)]


def _contains_sky(region, coords):
    """Sky containment through a local tangent-plane WCS around the coordinates."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [coords.icrs.ra.deg.mean() if coords.size else 0,
                     coords.icrs.dec.deg.mean() if coords.size else 0]
    wcs.wcs.cdelt = [-1 / 3600, 1 / 3600]
    return np.asarray(region.contains(coords, wcs), dtype=bool)
