"""
The calibration of far-infrared dust fits to the DustPedia CIGALE scale.

A modified black body fitted to a few far-infrared bands gives a dust mass
and temperature on its own scale; `dust_calibration` holds, per set of
bands, the linear relations (fitted by ``scripts/calibrate_fir.py`` on a
training split of DustPedia, with their scatter and held-out report) that
bring them to the CIGALE catalogue's, and `apply_dust_calibration` applies
them. Each row or pixel takes the entry of the bands usable in it; a set
without an entry takes its nearest calibrated set, with a warning.

Uses `astro_dustml.bands` and `astro_dustml.exceptions`.
"""

import json
import warnings
from functools import lru_cache
from importlib.resources import files

import astropy.units as u
import numpy as np

from ..bands import FIR_BANDS, get_band
from ..exceptions import AstroDustMLWarning

__all__ = ['apply_dust_calibration', 'dust_calibration']

_LN10 = np.log(10)


_CALIBRATION_FILE = 'dust_fit_calibration.json'


_T_REFERENCE = 20.0  # K, pivot of the calibration's temperature term


@lru_cache(maxsize=None)
def dust_calibration():
    """
    The shipped calibration of `fit_dust_sed` to the CIGALE catalogue scale.

    Returns
    -------
    calibration : dict
        ``band_sets``: per set of fitted bands (names joined by ``'+'``), the
        ``coefficients`` per quantity (``'Mdust'``, ``'Ldust'``: log10;
        ``'Tdust'``: K): ``offset``, ``slope`` (per K of ``T_fit - 20 K``)
        and grouped-CV ``scatter`` (for ``'Tdust'`` also ``prior_correlation``,
        that of its errors with a UV-MIR model's, for ``temperature_prior``),
        with its ``cross_validation`` report and ``held_out`` report;
        ``default``: the set used for band sets without their own; the
        held-out reports of one-call fits and of fits with the prior; the
        provenance of the fit.

    Examples
    --------
    >>> from astro_dustml.farinfrared import dust_calibration
    >>> cal = dust_calibration()
    >>> sorted(cal['band_sets'][cal['default']]['coefficients'])
    ['Ldust', 'Mdust', 'Tdust']
    """
    path = files('astro_dustml').joinpath('data', _CALIBRATION_FILE)
    return json.loads(path.read_text())


def _band_key(bands):
    """Key of a band set in the calibration file: registry order, joined by '+'."""
    names = {get_band(b).name for b in bands}
    return '+'.join(b for b in FIR_BANDS if b in names)


# bands that stand in for one another when a set has no calibration of its own
# (MIPS 160 and PACS 160 sample the same side of the peak; few DustPedia
# galaxies have MIPS 160 with the catalogue well constrained)
_STAND_INS = {'Spitzer_160': 'PACS_160'}


def _lookup(bands):
    """
    ``(key, coefficients)`` of the calibration used for a set of fitted bands.

    The set's own entry if the calibration has one; else that of the set with
    MIPS 160 replaced by PACS 160; else the calibrated subset with the most
    bands (then the most galaxies); else the default set.
    """
    calibration = dust_calibration()
    sets = calibration['band_sets']
    key = _band_key(bands)
    if key in sets:
        return key, sets[key]['coefficients']
    names = {get_band(b).name for b in bands}
    for band, twin in _STAND_INS.items():
        if band in names:
            names = (names - {band}) | {twin}
    alt = _band_key(names)
    if alt not in sets:
        subsets = [k for k in sets if set(k.split('+')) <= names]
        alt = (max(subsets, key=lambda k: (k.count('+'), sets[k]['n_galaxies']))
               if subsets else calibration['default'])
    return alt, sets[alt]['coefficients']


def _warn_substitutes(pairs):
    """One warning for the band sets calibrated with the entry of another set."""
    pairs = sorted({(k, v) for k, v in pairs if k != v})
    if pairs:
        warnings.warn('No calibration was derived for the band set(s) '
                      f'{", ".join(k for k, _ in pairs)} (too few DustPedia galaxies have '
                      'them); using that of the nearest calibrated set: '
                      + '; '.join(f'{k} -> {v}' for k, v in pairs) + '.', AstroDustMLWarning)


def _coefficients(bands):
    """Calibration coefficients of a band set, else those of the nearest set (warns)."""
    used, coefficients = _lookup(bands)
    _warn_substitutes([(_band_key(bands), used)])
    return used, coefficients


def _calibrate(result, coef):
    """Catalogue-scale values and uncertainties from raw fit arrays (dict of arrays)."""
    t, t_err = result['Td'], result['Td_err']
    dt = t - _T_REFERENCE
    out = dict(result)
    for name, key in (('Mdust', 'Md'), ('Ldust', 'Ld')):
        c = coef[name]
        with np.errstate(divide='ignore', invalid='ignore'):
            log_value = np.log10(result[key])
            log_err = result[f'{key}_err'] / (result[key] * _LN10)
        log_cal = log_value + c['offset'] + c['slope'] * dt
        scale = c.get('error_scale', 1.0)
        log_cal_err = np.sqrt(scale ** 2 * (log_err ** 2 + (c['slope'] * t_err) ** 2)
                              + c['scatter'] ** 2)
        out[key] = 10 ** log_cal
        out[f'{key}_err'] = out[key] * _LN10 * log_cal_err
    c = coef['Tdust']
    t_gain = c.get('error_scale', 1.0) * (1 + c['slope'])
    out['Td'] = t + c['offset'] + c['slope'] * dt
    out['Td_err'] = np.sqrt((t_gain * t_err) ** 2 + c['scatter'] ** 2)
    out['Td_prior_correlation'] = np.full(np.shape(t), c.get('prior_correlation', 0.0))
    # covariances of the calibrated log10 Md, log10 Ld with Td (the scatter
    # terms taken as independent)
    for name, key in (('Mdust', 'Md'), ('Ldust', 'Ld')):
        if f'{key}_Td_cov' in result:
            c = coef[name]
            out[f'{key}_Td_cov'] = c.get('error_scale', 1.0) * t_gain * (
                result[f'{key}_Td_cov'] + c['slope'] * t_err ** 2)
    return out


def apply_dust_calibration(mass, temperature, luminosity, *, bands, mass_err=None,
                           temperature_err=None, luminosity_err=None):
    """
    Put raw modified-black-body values on the CIGALE catalogue scale.

    Parameters
    ----------
    mass, temperature, luminosity : `~astropy.units.Quantity`
        Raw fit values (``fit_dust_sed(..., calibrated=False)``).
    bands : sequence of str
        The bands that were fitted (each band set has its own calibration).
    mass_err, temperature_err, luminosity_err : `~astropy.units.Quantity`, optional
        Their uncertainties (default zero); the calibration scatter is added.

    Returns
    -------
    calibrated : dict
        ``Md``, ``Td``, ``Ld`` and their ``_err`` as Quantities.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_dustml.farinfrared import apply_dust_calibration
    >>> out = apply_dust_calibration(1e7 * u.Msun, 20 * u.K, 1e9 * u.Lsun,
    ...                              bands=['PACS_100', 'SPIRE_250'])
    >>> out['Td'].unit, out['Md'].unit
    (Unit("K"), Unit("solMass"))
    """
    def value(q, unit):
        return np.asarray(0.0 if q is None else u.Quantity(q).to_value(unit), dtype=float)

    raw = {'Md': value(mass, u.Msun), 'Md_err': value(mass_err, u.Msun),
           'Td': value(temperature, u.K), 'Td_err': value(temperature_err, u.K),
           'Ld': value(luminosity, u.Lsun), 'Ld_err': value(luminosity_err, u.Lsun)}
    out = _calibrate(raw, _coefficients(bands)[1])
    units = {'Md': u.Msun, 'Td': u.K, 'Ld': u.Lsun}
    return {k: out[k] * units[k.split('_')[0]] for k in ('Md', 'Md_err', 'Td', 'Td_err',
                                                         'Ld', 'Ld_err')}


def _calibrate_rows(raw, usable, bands):
    """
    Calibrate each row (pixel) with the entry of the bands usable in it.

    ``usable``: (n, n_bands) boolean.  Returns the calibrated arrays and, per
    row, the index into the list of calibration keys used (-1: fewer than
    two bands).
    """
    out = {k: np.array(v, dtype=float, copy=True) for k, v in raw.items()}
    codes = usable.astype(np.int64) @ (1 << np.arange(usable.shape[1], dtype=np.int64))
    index = np.full(usable.shape[0], -1)
    keys, pairs = [], []
    for code in np.unique(codes[usable.sum(axis=1) >= 2]):
        rows = codes == code
        present = [b for i, b in enumerate(bands) if (code >> i) & 1]
        used, coefficients = _lookup(present)
        pairs.append((_band_key(present), used))
        part = _calibrate({k: v[rows] for k, v in raw.items()}, coefficients)
        for k, v in part.items():
            out.setdefault(k, np.full(usable.shape[0], np.nan))[rows] = v
        if used not in keys:
            keys.append(used)
        index[rows] = keys.index(used)
    _warn_substitutes(pairs)
    return out, index, keys
