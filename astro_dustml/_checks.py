"""
Checks of the numbers users give at the API boundary (private).

One helper per kind of value, each taking the argument's name, so that a
negative distance, a NaN pixel scale or a semi-major axis in Mpc gives the same
clear error from `~astro_dustml.maps.estimate_dust_maps`,
`~astro_dustml.imaging.galaxy_region` and the command line (which passes its
option name, e.g. ``'--distance'``).
"""

import astropy.units as u
import numpy as np

__all__ = []

_EXAMPLES = {'length': '10 * u.Mpc or 400 * u.pc', 'angle': '18 * u.arcsec or 1 * u.arcmin'}


def _positive_quantity(value, name, kinds, *, default_unit=None, example=None):
    """
    ``value`` as a finite, strictly positive scalar Quantity of one of ``kinds``.

    Parameters
    ----------
    value : `~astropy.units.Quantity`, str or number
        A Quantity, a string astropy reads as one (``'10 Mpc'``), or a bare
        number when ``default_unit`` is given.
    name : str
        Name of the argument (or command-line option) for the message.
    kinds : str or tuple of str
        Accepted physical types, e.g. ``'length'`` or ``('angle', 'length')``.
    default_unit : `~astropy.units.UnitBase`, optional
        Unit of a bare number; without it a bare number is an error.
    example : str, optional
        Example value for the message; default from ``kinds``.

    Raises
    ------
    astropy.units.UnitTypeError
        Not a Quantity, or not of an accepted physical type.
    ValueError
        Not finite, not a scalar, or not strictly positive.
    """
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    wanted = ' or '.join(f'an {k}' if k[0] in 'aeiou' else f'a {k}' for k in kinds)
    example = example or ' or '.join(_EXAMPLES.get(k, k) for k in kinds)
    if isinstance(value, u.Quantity):
        quantity = value
    elif isinstance(value, str):
        try:
            quantity = u.Quantity(value)
        except (TypeError, ValueError):
            raise u.UnitTypeError(f'{name} must be {wanted} with a unit, e.g. {example}; '
                                  f'cannot read {value!r}.') from None
    elif default_unit is not None and np.isscalar(value) and not isinstance(value, bool):
        quantity = u.Quantity(value, default_unit)
    else:
        raise u.UnitTypeError(f'{name} must be {wanted} Quantity, e.g. {example}; got '
                              f'{value!r}.')
    if quantity.unit.physical_type not in kinds:
        raise u.UnitTypeError(f'{name} must be {wanted}, e.g. {example}; got {value} '
                              f'({quantity.unit.physical_type}).')
    if not quantity.isscalar:
        raise ValueError(f'{name} must be a single value, got shape {quantity.shape}.')
    if not np.isfinite(quantity.value) or quantity.value <= 0:
        raise ValueError(f'{name} must be a finite positive {kinds[0]}, e.g. {example}; '
                         f'got {quantity}.')
    return quantity


def _finite_angle(value, name):
    """``value`` as a finite scalar angle Quantity (any sign), e.g. a position angle."""
    if not isinstance(value, u.Quantity) or value.unit.physical_type != 'angle':
        raise u.UnitTypeError(f'{name} must be an angle Quantity, e.g. 30 * u.deg; got '
                              f'{value!r}.')
    if not value.isscalar or not np.isfinite(value.value):
        raise ValueError(f'{name} must be a finite angle, e.g. 30 * u.deg; got {value}.')
    return value


# Distances of galaxies whose images this package resolves: the Magellanic
# Clouds (50 kpc) are the nearest, and nothing is farther than the observable
# Universe (~14 Gpc comoving)
_DISTANCE_RANGE = (10 * u.kpc, 20 * u.Gpc)


def _galaxy_distance(value, name='distance'):
    """
    ``value`` as a galaxy distance in Mpc: a finite positive length (see
    `_positive_quantity`, bare numbers in Mpc) within `_DISTANCE_RANGE`.
    """
    distance = _positive_quantity(value, name, 'length', default_unit=u.Mpc,
                                  example='10 * u.Mpc').to(u.Mpc)
    low, high = _DISTANCE_RANGE
    if not low <= distance <= high:
        raise ValueError(f'{name} = {distance:.3g} is not the distance of a galaxy (the '
                         f'nearest, the Magellanic Clouds, are at 0.05 Mpc; {name} must lie '
                         f'between {low.to(u.Mpc):g} and {high.to(u.Mpc):g}). Check its '
                         'unit, e.g. 10 * u.Mpc.')
    return distance


_GIB = 2 ** 30


def _memory_limit():
    """``conf.memory_limit`` in bytes (read at call time)."""
    from . import conf
    try:
        limit = float(conf.memory_limit)
    except (TypeError, ValueError):
        limit = np.nan
    if not np.isfinite(limit) or limit <= 0:
        raise ValueError(f'astro_dustml.conf.memory_limit must be a positive number of GiB, '
                         f'got {conf.memory_limit!r}.')
    return limit * _GIB


def _check_planned(nbytes, what, advice):
    """
    Refuse a planned allocation of ``nbytes`` above ``conf.memory_limit``.

    ``what`` says what would be allocated (naming the band), ``advice`` how
    to fix it; the message adds the planned size and the limit.
    """
    from .exceptions import MemoryLimitError
    limit = _memory_limit()
    if nbytes > limit:
        raise MemoryLimitError(
            f'{what} would need {nbytes / _GIB:.3g} GiB, more than the limit '
            f'astro_dustml.conf.memory_limit = {limit / _GIB:.3g} GiB. {advice} (Raise the '
            'limit with astro_dustml.conf.memory_limit only if the machine has the memory.)')
