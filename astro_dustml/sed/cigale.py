"""
The bridge to pcigale (CIGALE, Boquien et al. 2019): input files out, results in.

The paper fits every pixel SED with CIGALE and a THEMIS dust model twice: on
the UV to mid-infrared bands alone, whose Bayesian fluxes become the model
inputs, and on the UV to submillimetre bands, whose dust properties become the
ground truth. `write_cigale_input` writes the pcigale data file and
a ``pcigale.ini`` for either fit, `read_cigale_results` reads pcigale's
``results.txt`` or ``results.fits`` back into the SED table schema of
`astro_dustml.sed`, with the targets ``sLd``, ``sMd`` and ``Td`` derived, and
`run_cigale` runs pcigale when it is installed.

pcigale is not on PyPI; install it from its own distribution,
https://cigale.lam.fr (``pip install`` of the downloaded release or of a clone
of https://gitlab.lam.fr/cigale/cigale).
"""

import re
import shutil
import subprocess
from collections import Counter, namedtuple
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import ascii
from astropy.table import QTable, Table

from ..bands import BANDS, INPUT_BANDS, get_band
from .dust_emission import TD_UMIN1, UMIN_POWER
from .flags import FLAG_MASKED, FLAG_MISSING, _value_flags

__all__ = ['write_cigale_input', 'write_cigale_ini', 'read_cigale_results', 'run_cigale',
           'dust_temperature', 'CigaleFiles']


# Td = 18.3 K * Umin**(1/5.79): THEMIS dust heated by the interstellar
# radiation field, as used for the DustPedia CIGALE catalogue (Nersesian+2019)
_TD_POWER = 1 / UMIN_POWER


# Units of pcigale's output columns (SI, masses of stars in Msun); results.fits
# carries them in its header, results.txt does not
_RESULT_UNITS = {'dust.luminosity': u.W, 'dust.mass': u.kg,
                 'stellar.m_star': u.Msun, 'dust.umin': u.one}


_FILTER_TO_BAND = {b.cigale_filter: b.name for b in BANDS.values()}


def dust_temperature(umin):
    """
    THEMIS dust temperature from the minimum radiation field ``Umin``.

    ``Td = 18.3 K * Umin**(1/5.79)``, the relation behind the ``Tdust__K``
    column of the DustPedia CIGALE catalogue (Nersesian et al. 2019).

    Parameters
    ----------
    umin : float or array
        Minimum intensity of the radiation field heating the dust, in units
        of the solar neighbourhood field.

    Returns
    -------
    Td : `~astropy.units.Quantity`
        Temperature in K.

    Examples
    --------
    >>> from astro_dustml.sed import dust_temperature
    >>> dust_temperature(1.0)
    <Quantity 18.3 K>
    """
    umin = u.Quantity(umin, u.one).value
    with np.errstate(invalid='ignore', divide='ignore'):
        return TD_UMIN1 * np.power(umin, _TD_POWER)


def _cigale_ids(table):
    """pcigale ids of the rows of an SED table: its ``id`` column, else galaxy[_x_y]."""
    if 'id' in table.colnames:
        ids = [str(i) for i in table['id']]
    else:
        if 'galaxy' not in table.colnames:
            raise ValueError('The table has neither an "id" nor a "galaxy" column; '
                             'add an "id" column of unique object names.')
        galaxy = [str(g) for g in table['galaxy']]
        if 'x' in table.colnames and 'y' in table.colnames:
            ids = [g if x < 0 else f'{g}_{x}_{y}'
                   for g, x, y in zip(galaxy, table['x'], table['y'])]
        else:
            ids = galaxy
    # pcigale splits its data file on white space
    ids = [re.sub(r'\s+', '_', i.strip()) for i in ids]
    if any(i == '' for i in ids):
        raise ValueError('Empty object ids: every row needs a galaxy name or id.')
    dup = [i for i, count in Counter(ids).items() if count > 1]
    if dup:
        raise ValueError(f'Object ids are not unique, e.g. {dup[:3]}; pcigale needs one '
                         'id per row. Give distinct galaxy names or add an "id" column.')
    return ids


def _read_results_table(path):
    path = Path(path)
    if path.is_dir():
        for name in ('results.fits', 'results.txt'):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise FileNotFoundError(f'Neither results.fits nor results.txt in {path}.')
    if not path.is_file():
        raise FileNotFoundError(f'{path} does not exist; pass a pcigale results.txt or '
                                'results.fits file (or the out/ folder).')
    if path.suffix.lower() in ('.fits', '.fit', '.fz') or path.name.endswith('.fits.gz'):
        raw = Table.read(path)
    else:
        raw = ascii.read(path, format='basic', guess=False,
                         converters={'id': [ascii.convert_numpy(str)]})
    if 'id' not in raw.colnames:
        raise ValueError(f'{path} has no "id" column: not a pcigale results file.')
    raw['id'] = [str(i).strip() for i in raw['id']]
    return raw, path


def _column(raw, name, default_unit):
    col = raw[name]
    unit = col.unit if getattr(col, 'unit', None) is not None else default_unit
    data = np.ma.filled(np.asarray(np.ma.asarray(col), dtype=float), np.nan)
    return u.Quantity(data, unit)


def _find(raw, prop, estimate):
    """Value and error columns of a physical property, preferring ``estimate``."""
    order = [estimate] + [e for e in ('bayes', 'best') if e != estimate]
    for est in order:
        name = f'{est}.{prop}'
        if name in raw.colnames:
            unit = _RESULT_UNITS.get(prop, u.one)
            value = _column(raw, name, unit)
            err = (_column(raw, name + '_err', unit) if name + '_err' in raw.colnames
                   else np.full(len(raw), np.nan) * value.unit)
            return value, err
    return None, None


def _log_ratio(num, num_err, den, den_err, unit):
    with np.errstate(invalid='ignore', divide='ignore'):
        ratio = (num / den).to_value(unit)
        value = np.log10(ratio)
        rel = np.hypot((num_err / num).to_value(u.one), (den_err / den).to_value(u.one))
        value[~(ratio > 0)] = np.nan
    return value * u.dex, rel / np.log(10) * u.dex


def _targets(raw, estimate):
    """sLd, sMd, Td (and errors) from whatever pcigale columns exist."""
    out = {}
    ldust, ldust_err = _find(raw, 'dust.luminosity', estimate)
    mdust, mdust_err = _find(raw, 'dust.mass', estimate)
    mstar, mstar_err = _find(raw, 'stellar.m_star', estimate)
    umin, umin_err = _find(raw, 'dust.umin', estimate)
    if ldust is not None and mstar is not None:
        out['sLd'], out['sLd_err'] = _log_ratio(ldust, ldust_err, mstar, mstar_err,
                                                u.Lsun / u.Msun)
    if mdust is not None and mstar is not None:
        out['sMd'], out['sMd_err'] = _log_ratio(mdust, mdust_err, mstar, mstar_err, u.one)
    if umin is not None:
        td = dust_temperature(umin)
        with np.errstate(invalid='ignore', divide='ignore'):
            out['Td'] = td
            out['Td_err'] = td * _TD_POWER * (umin_err / umin).to_value(u.one)
    return out


def read_cigale_results(path, table=None, *, estimate='bayes', replace_fluxes=True):
    """
    Read pcigale results into the SED table schema.

    Parameters
    ----------
    path : str or path-like
        pcigale's ``results.txt`` or ``results.fits``, or the ``out/``
        folder holding one.
    table : `~astropy.table.QTable`, optional
        The SED table the pcigale input was written from (with
        `write_cigale_input`); the results are joined back to it by id.
    estimate : {'bayes', 'best'}, optional
        Which pcigale estimate to prefer for the physical properties when
        both exist: the Bayesian (likelihood-weighted) mean or the best fit.
        Fluxes are always the Bayesian ones.
    replace_fluxes : bool, optional
        With ``table``: replace the table's band fluxes with pcigale's
        Bayesian fluxes, keeping the observed ones as ``<band>_obs``,
        ``<band>_obs_err`` and ``<band>_obs_flag``. If False, only the targets
        and the fit's reduced chi-square are joined.

    Returns
    -------
    results : `~astropy.table.QTable`
        Without ``table``: one row per pcigale object, with ``id``, per band
        ``<band>``, ``<band>_err`` (Jy; from ``bayes.<filter>`` mapped through
        the band registry's ``cigale_filter``) and ``<band>_flag``, the
        targets, and every other pcigale column under its own name. With
        ``table``: a new table with the rows of ``table`` in order; rows
        pcigale did not return get NaN and `~astro_dustml.sed.FLAG_MISSING`.
        Targets, when the needed columns exist: ``sLd`` = log10(Ldust/Mstar)
        and ``sMd`` = log10(Mdust/Mstar) in `~astropy.units.dex` (Lsun/Msun
        and Msun/Msun), ``Td`` = `dust_temperature` of ``Umin`` in K, each
        with ``_err`` from the pcigale errors (NaN for best-fit values).

    Examples
    --------
    >>> from astro_dustml.sed import read_cigale_results
    >>> read_cigale_results('no/such/results.txt')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: no/such/results.txt does not exist; ...
    """
    if estimate not in ('bayes', 'best'):
        raise ValueError(f"estimate must be 'bayes' or 'best', not {estimate!r}.")
    raw, path = _read_results_table(path)
    results = QTable()
    results['id'] = np.array(raw['id'], dtype=str)
    used = {'id'}
    bands = []
    for name in raw.colnames:
        match = re.fullmatch(r'bayes\.(.+)', name)
        if match is None or match.group(1) not in _FILTER_TO_BAND:
            continue
        band = _FILTER_TO_BAND[match.group(1)]
        value = _column(raw, name, u.mJy).to(u.Jy)
        err_name = name + '_err'
        error = (_column(raw, err_name, u.mJy).to(u.Jy) if err_name in raw.colnames
                 else np.full(len(raw), np.nan) * u.Jy)
        results[band] = value
        results[f'{band}_err'] = error
        results[f'{band}_flag'] = _value_flags(value.value, error.value)
        used.update({name, err_name})
        bands.append(band)
    # registry order, as everywhere else
    bands = [b for b in BANDS if b in bands]
    targets = _targets(raw, estimate)
    for key, value in targets.items():
        results[key] = value
    if 'best.reduced_chi_square' in raw.colnames:
        results['red_chi2'] = _column(raw, 'best.reduced_chi_square', u.one).value
    results.meta.update({'source': str(path), 'bands': bands})
    if table is None:
        for name in raw.colnames:
            if name not in used:
                results[name] = raw[name]
        return results
    return _join(table, results, bands, list(targets), replace_fluxes)


def _join(table, results, bands, targets, replace_fluxes):
    ids = _cigale_ids(table)
    where = {i: k for k, i in enumerate(results['id'])}
    index = np.array([where.get(i, -1) for i in ids], dtype=int)
    found = index >= 0
    take = np.where(found, index, 0)
    out = table.copy()

    def joined(col):
        values = results[col][take]
        if isinstance(values, u.Quantity):
            values = values.copy()
            values[~found] = np.nan
        elif values.dtype.kind == 'f':
            values = np.where(found, values, np.nan)
        return values

    for col in targets + (['red_chi2'] if 'red_chi2' in results.colnames else []):
        out[col] = joined(col)
    if replace_fluxes:
        for band in bands:
            if band in out.colnames:
                for suffix in ('', '_err', '_flag'):
                    if band + suffix in out.colnames:
                        out[f'{band}_obs{suffix}'] = out[band + suffix]
            out[band] = joined(band)
            out[f'{band}_err'] = joined(f'{band}_err')
            flags = results[f'{band}_flag'][take].copy()
            flags[~found] = FLAG_MISSING
            out[f'{band}_flag'] = flags
    out.meta['cigale_results'] = results.meta['source']
    return out


# ------------------------------------------------------------------ writing

CigaleFiles = namedtuple('CigaleFiles', ['data_file', 'ini'])


CigaleFiles.__doc__ = 'Paths written by `write_cigale_input`: the data file and pcigale.ini.'


# The paper's (DustPedia / FIREnet) grid, modules named as in pcigale 2022+:
# sfhdelayedbq is the delayed SFH with a final burst/quench (the FIREnet
# files' sfhdelayedtrunc), dustatt_modified_starburst the Calzetti-Leitherer
# law with a power-law modification (their dustatt_calzleit).
_MODULES = ('sfhdelayedbq', 'bc03', 'nebular', 'dustatt_modified_starburst', 'themis',
            'redshifting')


_PARAMETERS = {
    'sfhdelayedbq': {
        'tau_main': '500, 750, 1100, 1700, 2600, 3900, 5800, 8800, 13000, 20000',
        'age_main': '2000, 4500, 7000, 9500, 12000',
        'age_bq': '200', 'r_sfr': '0.01, 0.0316, 0.1, 0.316, 1.0, 3.16, 10.0',
        'sfr_A': '1.0', 'normalise': 'True'},
    'bc03': {'imf': '0', 'metallicity': '0.02', 'separation_age': '10'},
    'nebular': {'logU': '-2.0', 'f_esc': '0.0', 'f_dust': '0.0', 'lines_width': '300.0',
                'emission': 'True'},
    'dustatt_modified_starburst': {
        'E_BV_lines': ('0, 0.005, 0.0075, 0.011, 0.017, 0.026, 0.038, 0.058, 0.087, '
                       '0.13, 0.20, 0.29, 0.44, 0.66, 1.0'),
        'E_BV_factor': '0.25, 0.50, 0.75', 'uv_bump_wavelength': '217.5',
        'uv_bump_width': '35.0', 'uv_bump_amplitude': '0.0',
        'powerlaw_slope': '-0.5, -0.25, 0.0', 'filters': 'B_B90 & V_B90 & FUV'},
    'themis': {
        'qhac': '0.02, 0.06, 0.10, 0.14, 0.17, 0.20, 0.24, 0.28, 0.32, 0.36, 0.40',
        'umin': '0.1, 0.15, 0.3, 0.5, 0.8, 1.2, 2.0, 3.5, 6, 10, 17, 30, 50, 80',
        'alpha': '2.0',
        'gamma': '0, 0.001, 0.002, 0.004, 0.008, 0.016, 0.031, 0.063, 0.13, 0.25, 0.5'},
    'redshifting': {'redshift': ''},
}


# the properties the targets need, estimated by the Bayesian analysis
_VARIABLES = ('stellar.m_star', 'dust.luminosity', 'dust.mass', 'dust.umin', 'sfh.sfr')


def _bands_for(table, bands, kind):
    if kind not in ('uvmir', 'full'):
        raise ValueError(f"kind must be 'uvmir' (UV to mid-infrared fit) or 'full' "
                         f"(UV to submm), not {kind!r}.")
    if bands is None:
        pool = INPUT_BANDS if kind == 'uvmir' else tuple(BANDS)
        bands = [b for b in pool if b in table.colnames]
        if not bands:
            raise ValueError('The table has no band columns to fit.')
        return bands
    bands = [get_band(b).name for b in bands]
    absent = [b for b in bands if b not in table.colnames]
    if absent:
        raise ValueError(f'Bands {absent} are not columns of the table.')
    return bands


def write_cigale_ini(path, *, data_file, bands, kind='uvmir', cores=1, parameters=None):
    """
    Write a ``pcigale.ini`` for a THEMIS fit, as in Dobbels & Baes (2021).

    The modules and parameter grid are those of the DustPedia/FIREnet fits
    (a delayed, truncated star-formation history, BC03 with a Salpeter IMF,
    nebular emission, a modified Calzetti attenuation law and THEMIS dust),
    with the module names of pcigale 2022 and later.

    Parameters
    ----------
    path : str or path-like
        File to write.
    data_file : str
        The pcigale data file, as pcigale will find it (relative to the
        folder pcigale runs in).
    bands : sequence of str
        Bands to fit (registry names); written as pcigale filters and their
        ``_err``.
    kind : {'uvmir', 'full'}, optional
        For the record in the file's header; the band list decides the fit.
    cores : int, optional
        Number of processes pcigale may use.
    parameters : dict, optional
        Overrides, ``{module: {parameter: value string}}``, e.g.
        ``{'themis': {'alpha': '2.0, 2.5'}}``.

    Returns
    -------
    path : `~pathlib.Path`

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from astro_dustml.sed import write_cigale_ini
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> ini = write_cigale_ini(folder / 'pcigale.ini', data_file='pixels.txt',
    ...                        bands=['GALEX_FUV', 'WISE_3.4'])
    >>> print(ini.read_text().splitlines()[4])
    data_file = pixels.txt
    """
    filters = [get_band(b).cigale_filter for b in bands]
    params = {m: dict(p) for m, p in _PARAMETERS.items()}
    for module, values in (parameters or {}).items():
        if module not in params:
            raise ValueError(f'Unknown module {module!r}; the template has {list(params)}.')
        params[module].update({k: str(v) for k, v in values.items()})
    band_list = ', '.join(f'{f}, {f}_err' for f in filters)
    lines = [
        f'# pcigale configuration written by astro_dustml ({kind} fit, THEMIS dust).',
        '# Check it with `pcigale check`; `pcigale genconf` completes missing',
        '# parameters of your pcigale version with their defaults.',
        '',
        f'data_file = {data_file}',
        'parameters_file = ',
        f'sed_modules = {", ".join(_MODULES)}',
        'analysis_method = pdf_analysis',
        f'cores = {int(cores)}',
        f'bands = {band_list}',
        'properties = ',
        '',
        '[sed_modules_params]',
    ]
    for module in _MODULES:
        lines.append(f'  [[{module}]]')
        lines.extend(f'    {key} = {value}' for key, value in params[module].items())
    lines += [
        '',
        '[analysis_params]',
        f'  variables = {", ".join(_VARIABLES)}',
        f'  bands = {", ".join(filters)}',
        '  save_best_sed = False',
        '  save_chi2 = none',
        '  lim_flag = none',
        '  mock_flag = False',
        '  redshift_decimals = 2',
        '  blocks = 1',
        '',
    ]
    path = Path(path)
    path.write_text('\n'.join(lines))
    return path


def write_cigale_input(table, path, *, bands=None, kind='uvmir', redshift=0.0,
                       exclude=FLAG_MASKED | FLAG_MISSING, invalid=-9999.0, ini=True,
                       cores=1):
    """
    Write an SED table as a pcigale data file (and a ``pcigale.ini``).

    Parameters
    ----------
    table : `~astropy.table.QTable`
        An SED table (`~astro_dustml.sed.make_pixel_table`,
        `~astro_dustml.sed.make_global_row`,
        `~astro_dustml.sed.read_dustpedia_photometry`).
    path : str or path-like
        The data file to write (whitespace-separated text, as pcigale reads).
    bands : sequence of str, optional
        Bands to write. Default: the 18 UV to mid-infrared inputs for
        ``kind='uvmir'``, every registry band for ``kind='full'``, of those
        in the table.
    kind : {'uvmir', 'full'}, optional
        A UV to mid-infrared fit (whose Bayesian fluxes become model inputs)
        or a UV to submm fit (whose dust properties become the targets).
    redshift : float, optional
        Written when the table has no ``redshift`` column. With 0, pcigale
        places the object at 10 pc unless a distance is given; the specific
        targets ``sLd`` and ``sMd`` and ``Td`` do not depend on it.
    exclude : int, optional
        Flag bits that make a value invalid for pcigale.
    invalid : float, optional
        What to write for invalid values: pcigale takes NaN or anything below
        -9990 as "no measurement". A value whose error is missing or not
        positive is written as invalid too. Negative fluxes are measurements
        and are written as they are.
    ini : bool, optional
        Also write ``pcigale.ini`` beside the data file (`write_cigale_ini`).
    cores : int, optional
        ``cores`` of the ini file.

    Returns
    -------
    files : `CigaleFiles`
        ``data_file`` and ``ini`` (None when not written) paths.

    Raises
    ------
    ValueError
        If ids are not unique, distances are given for only some rows, or a
        band is not in the table.

    Notes
    -----
    Columns: ``id`` (the table's ``id``, else ``galaxy`` or
    ``galaxy_x_y`` for pixels; white space replaced by ``_``), ``redshift``,
    ``distance`` (Mpc, when every row has one), then per band its pcigale
    filter name and ``<filter>_err``, in mJy.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> from astro_dustml.sed import write_cigale_input
    >>> table = QTable({'galaxy': ['A', 'B'], 'WISE_3.4': [1.0, 2.0] * u.Jy,
    ...                 'WISE_3.4_err': [0.1, 0.2] * u.Jy})
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> files = write_cigale_input(table, folder / 'data.txt', ini=False)
    >>> print(files.data_file.read_text())
    id redshift WISE1 WISE1_err
    A 0.0 1000.0 100.0
    B 0.0 2000.0 200.0
    <BLANKLINE>
    """
    bands = _bands_for(table, bands, kind)
    ids = _cigale_ids(table)
    n = len(table)
    out = Table()
    out['id'] = ids
    if 'redshift' in table.colnames:
        out['redshift'] = np.asarray(u.Quantity(table['redshift'], u.one).value, dtype=float)
    else:
        out['redshift'] = np.full(n, float(redshift))
    if 'distance' in table.colnames:
        dist = u.Quantity(table['distance'], u.Mpc).value
        finite = np.isfinite(dist)
        if finite.all():
            out['distance'] = dist
        elif finite.any():
            raise ValueError(f'{np.sum(~finite)} of {n} rows have no distance; pcigale needs '
                             'one for every object or none (then it uses the redshift).')
    for band in bands:
        filt = get_band(band).cigale_filter
        value = u.Quantity(table[band]).to_value(u.mJy)
        if f'{band}_err' in table.colnames:
            error = u.Quantity(table[f'{band}_err']).to_value(u.mJy)
        else:
            error = np.full(n, np.nan)
        bad = ~np.isfinite(value) | ~np.isfinite(error) | ~(error > 0)
        if f'{band}_flag' in table.colnames and exclude:
            bad |= (np.asarray(table[f'{band}_flag']) & exclude) > 0
        out[filt] = np.where(bad, invalid, value)
        out[f'{filt}_err'] = np.where(bad, invalid, error)
    path = Path(path)
    # repr-precision floats, so that the file reads back to the same numbers
    formats = {name: repr for name in out.colnames[1:]}
    out.write(path, format='ascii.basic', delimiter=' ', formats=formats, overwrite=True)
    ini_path = None
    if ini:
        ini_path = write_cigale_ini(path.parent / 'pcigale.ini', data_file=path.name,
                                    bands=bands, kind=kind, cores=cores)
    return CigaleFiles(path, ini_path)


def run_cigale(folder, *, config='pcigale.ini'):
    """
    Run pcigale in a folder prepared by `write_cigale_input`.

    pcigale is not a dependency of astro_dustml and is not on PyPI: download
    it from https://cigale.lam.fr (or clone
    https://gitlab.lam.fr/cigale/cigale) and ``pip install .`` it, then run
    ``pcigale-filters`` / ``python setup.py build`` as its README says.

    Parameters
    ----------
    folder : str or path-like
        Folder holding the data file and ``pcigale.ini``.
    config : str, optional
        Name of the configuration file.

    Returns
    -------
    results : `~pathlib.Path`
        The ``out`` folder; read it with `read_cigale_results`.

    Raises
    ------
    ImportError
        If pcigale is not installed.
    """
    try:  # an optional dependency, not on PyPI
        import pcigale  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            'run_cigale needs pcigale, which is not on PyPI: download it from '
            'https://cigale.lam.fr (or git clone https://gitlab.lam.fr/cigale/cigale), '
            'then `pip install .` in its folder and build its database as its README '
            'explains. write_cigale_input works without it.') from exc
    folder = Path(folder)
    if not (folder / config).is_file():
        raise FileNotFoundError(f'No {config} in {folder}; write it with write_cigale_input.')
    executable = shutil.which('pcigale')
    if executable is None:
        raise ImportError('pcigale is importable but its `pcigale` command is not on the '
                          'PATH; reinstall pcigale with pip.')
    # pcigale reads and writes relative to its working directory
    subprocess.run([executable, '-c', config, 'run'], cwd=folder, check=True)
    return folder / 'out'
