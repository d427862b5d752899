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
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import ascii
from astropy.table import QTable, Table

from .bands import BANDS
from .sed import FLAG_MISSING, _value_flags

__all__ = ['read_cigale_results', 'dust_temperature']

# Td = 18.3 K * Umin**(1/5.79): THEMIS dust heated by the interstellar
# radiation field, as used for the DustPedia CIGALE catalogue (Nersesian+2019)
_TD_UMIN1 = 18.3 * u.K
_TD_POWER = 1 / 5.79

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
    >>> from astro_dustml.cigale import dust_temperature
    >>> dust_temperature(1.0)
    <Quantity 18.3 K>
    """
    umin = u.Quantity(umin, u.one).value
    with np.errstate(invalid='ignore', divide='ignore'):
        return _TD_UMIN1 * np.power(umin, _TD_POWER)


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
    if len(set(ids)) != len(ids):
        seen, dup = set(), []
        for i in ids:
            if i in seen:
                dup.append(i)
            seen.add(i)
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
    >>> from astro_dustml.cigale import read_cigale_results
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
