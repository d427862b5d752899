"""
Stellar mass from WISE 3.4 and 4.6 micron photometry.

The mass-to-light ratio of Cluver et al. (2014, ApJ 782, 90, eq. 2),

    ``log10(M*/L_W1) = a (W1 - W2) + b``,  ``a = -2.54``, ``b = -0.17``,

with the W1 luminosity in solar units (``M_sun,W1 = 3.24`` Vega mag,
Jarrett et al. 2013) and the Vega colour ``W1 - W2`` clipped to the range the
relation was derived on (-0.2 to 0.6 mag).  Where W2 is missing or too noisy the
colour is the sample's typical value and the uncertainty grows by the spread
of colours.  ``relation='dustpedia'`` uses the same form with ``a``, ``b``
refitted to the DustPedia CIGALE catalogue ``Mstar`` by
``scripts/calibrate_fir.py`` (``data/stellar_mass_calibration.json``), which
also records both relations' grouped-CV bias and scatter.
"""

import json
from functools import lru_cache
from importlib.resources import files

import astropy.units as u
import numpy as np
from astropy.nddata import CCDData, StdDevUncertainty

from ..bands import _WISE_DN
from ..imaging.io import _usable
from ..sed.tables import _check_aligned, _error_array, _flux_factor, _members, _pixel_area

__all__ = ['STELLAR_MASS_RELATIONS', 'stellar_mass', 'stellar_mass_map']


_M_SUN_W1 = 3.24  # Vega absolute magnitude of the Sun in W1 (Jarrett et al. 2013)


_COLOUR_RANGE = (-0.2, 0.6)  # mag, validity of Cluver et al. (2014)


_W1_ZERO = _WISE_DN[1][1]  # Jy of a zero-magnitude (Vega) source


_W2_ZERO = _WISE_DN[2][1]


_MIN_SN_W2 = 3.0


_CALIBRATION_FILE = 'stellar_mass_calibration.json'


STELLAR_MASS_RELATIONS = {
    'cluver2014': {'slope': -2.54, 'intercept': -0.17,
                   'source': 'Cluver et al. 2014, ApJ 782, 90, eq. 2'},
}


"""Published relations by name: ``log10(M*/L_W1) = slope (W1-W2) + intercept``."""


@lru_cache(maxsize=None)
def _shipped():
    path = files('astro_dustml').joinpath('data', _CALIBRATION_FILE)
    return json.loads(path.read_text())


def _relation(name):
    """Coefficients, scatter and typical colour of a relation (code + shipped calibration)."""
    shipped = _shipped()['relations']
    if name not in shipped:
        raise ValueError(f'Unknown relation {name!r}; use one of {", ".join(shipped)}.')
    return {**STELLAR_MASS_RELATIONS.get(name, {}), **shipped[name]}


def _default_relation():
    return _shipped()['recommended']


def _colour(w1_jy, w2_jy):
    """Vega colour W1 - W2 from flux densities (Jy)."""
    with np.errstate(divide='ignore', invalid='ignore'):
        return -2.5 * np.log10((w1_jy / _W1_ZERO) / (w2_jy / _W2_ZERO))


def _log_w1_luminosity(w1_jy, distance_mpc):
    """log10 of the W1 luminosity in solar units (Jarrett et al. 2013)."""
    with np.errstate(divide='ignore', invalid='ignore'):
        abs_mag = -2.5 * np.log10(w1_jy / _W1_ZERO) - 5 * np.log10(distance_mpc * 1e5)
    return -0.4 * (abs_mag - _M_SUN_W1)


def _mass(w1_jy, w1_err, w2_jy, w2_err, distance_mpc, relation):
    """log10 M* (Msun) and its error from W1/W2 fluxes (Jy), arrays."""
    rel = _relation(relation)
    with np.errstate(divide='ignore', invalid='ignore'):
        good_w2 = np.isfinite(w2_jy) & (w2_jy > 0)
        if w2_err is not None:
            good_w2 &= ~(w2_jy < _MIN_SN_W2 * w2_err)
        colour = _colour(w1_jy, w2_jy)
        colour_err = (2.5 / np.log(10)) * np.hypot(
            0 if w1_err is None else w1_err / w1_jy, 0 if w2_err is None else w2_err / w2_jy)
        colour = np.where(good_w2, np.clip(colour, *_COLOUR_RANGE), rel['default_colour'])
        colour_err = np.where(good_w2, colour_err, rel['colour_scatter'])
        log_mass = (_log_w1_luminosity(w1_jy, distance_mpc) + rel['slope'] * colour
                    + rel['intercept'])
        w1_rel = 0 if w1_err is None else w1_err / w1_jy
        log_err = np.sqrt((w1_rel / np.log(10)) ** 2 + (rel['slope'] * colour_err) ** 2
                          + rel['scatter'] ** 2)
    ok = np.isfinite(w1_jy) & (w1_jy > 0)
    return np.where(ok, log_mass, np.nan), np.where(ok, log_err, np.nan)


def stellar_mass(w1, w2=None, *, distance, w1_err=None, w2_err=None, relation=None):
    """
    Stellar mass from WISE W1 (and W2) flux densities.

    Parameters
    ----------
    w1, w2 : `~astropy.units.Quantity`
        Flux densities at 3.4 and 4.6 micron (W2 optional: without it the
        typical colour of the relation is used).
    distance : `~astropy.units.Quantity`
        Distance(s).
    w1_err, w2_err : `~astropy.units.Quantity`, optional
        Flux uncertainties; W2 below 3 sigma counts as missing.
    relation : str, optional
        ``'cluver2014'`` or ``'dustpedia'``; default the one recommended by
        the shipped calibration.

    Returns
    -------
    mass, mass_err : `~astropy.units.Quantity`
        Stellar mass and its uncertainty (solMass; the relation's scatter included).

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astro_dustml.farinfrared import stellar_mass
    >>> m, err = stellar_mass(0.3 * u.Jy, 0.17 * u.Jy, distance=20 * u.Mpc,
    ...                       relation='cluver2014')
    >>> round(float(np.log10(m.value)), 2)
    10.66
    """
    w2 = np.nan if w2 is None else _jy(w2)
    log_mass, log_err = _mass(_jy(w1), _jy(w1_err), w2, _jy(w2_err),
                              u.Quantity(distance).to_value(u.Mpc),
                              relation or _default_relation())
    mass = 10 ** log_mass
    return mass * u.Msun, mass * np.log(10) * log_err * u.Msun


def _jy(value):
    if value is None:
        return None
    return np.asarray(u.Quantity(value).to_value(u.Jy), dtype=float)


def stellar_mass_map(images, *, distance, relation=None):
    """
    Map of stellar mass per pixel from WISE 3.4 (and 4.6) micron images.

    Parameters
    ----------
    images : `~ndcube.NDCollection` or mapping
        Aligned images with at least ``'WISE_3.4'`` and optionally
        ``'WISE_4.6'`` (surface brightness or flux per pixel, units known,
        e.g. from `astro_dustml.imaging.prepare_images`); other bands are
        ignored.  Uncertainties are used when present.
    distance : `~astropy.units.Quantity`
        Distance of the galaxy.
    relation : str, optional
        See `stellar_mass`.

    Returns
    -------
    mass : `~astropy.nddata.CCDData`
        Stellar mass per pixel (solMass) with a `~astropy.nddata.StdDevUncertainty`,
        masked where W1 is unusable or not positive; ``meta`` holds the
        relation, its source and the distance.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.nddata import CCDData
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.farinfrared import stellar_mass_map
    >>> wcs = WCS(naxis=2); wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> wcs.wcs.cdelt = [-1 / 3600, 1 / 3600]
    >>> w1 = CCDData(np.full((3, 3), 1e-3), unit='Jy/pix', wcs=wcs)
    >>> w2 = CCDData(np.full((3, 3), 0.57e-3), unit='Jy/pix', wcs=wcs)
    >>> m = stellar_mass_map({'WISE_3.4': w1, 'WISE_4.6': w2}, distance=10 * u.Mpc,
    ...                      relation='cluver2014')
    >>> m.unit, round(float(np.log10(m.data[1, 1])), 2)
    (Unit("solMass"), 7.56)
    """
    members = _members(images)
    if 'WISE_3.4' not in members:
        raise ValueError('stellar_mass_map needs the WISE_3.4 image (W1); got '
                         f'{list(members)}.')
    wanted = {b: members[b] for b in ('WISE_3.4', 'WISE_4.6') if b in members}
    wcs, shape = _check_aligned(wanted)
    area = _pixel_area(wcs)
    arrays = {}
    for band, image in wanted.items():
        factor = _flux_factor(image, band, area)
        value = np.where(_usable(image), np.asarray(image.data, dtype=float) * factor, np.nan)
        err = _error_array(image)
        arrays[band] = (value, None if err is None else np.asarray(err, dtype=float) * factor)
    w1, w1_err = arrays['WISE_3.4']
    w2, w2_err = arrays.get('WISE_4.6', (np.full(shape, np.nan), None))
    relation = relation or _default_relation()
    log_mass, log_err = _mass(w1, w1_err, w2, w2_err, u.Quantity(distance).to_value(u.Mpc),
                              relation)
    mass = 10 ** log_mass
    mask = ~np.isfinite(mass)
    return CCDData(np.where(mask, np.nan, mass), unit=u.Msun, wcs=wcs.deepcopy(),
                   uncertainty=StdDevUncertainty(mass * np.log(10) * log_err), mask=mask,
                   meta={'quantity': 'Mstar', 'relation': relation,
                         'source': _relation(relation)['source'],
                         'distance': u.Quantity(distance, u.Mpc)})
