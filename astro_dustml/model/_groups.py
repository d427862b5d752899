"""Grouping helpers: per-galaxy weights, group labels, seeded group shuffles, targets."""

import astropy.units as u
import numpy as np

__all__ = ['group_weights', 'TARGET_UNITS']

TARGET_UNITS = {'sLd': u.dex, 'sMd': u.dex, 'Td': u.K}
"""Units of the standard targets (others keep the unit of their column)."""


def group_weights(groups):
    """
    Weights ``1 / N_rows(group)``, so that every group (galaxy) counts once.

    Parameters
    ----------
    groups : array-like
        Group label of each row.

    Returns
    -------
    weights : `~numpy.ndarray`
        One weight per row; the weights of each group sum to one.

    Examples
    --------
    >>> from astro_dustml.model import group_weights
    >>> group_weights(['a', 'a', 'b', 'a'])
    array([0.33333333, 0.33333333, 1.        , 0.33333333])
    """
    _, inverse, counts = np.unique(np.asarray(groups), return_inverse=True,
                                   return_counts=True)
    return 1.0 / counts[inverse.ravel()]


def _groups_array(table, groups):
    if isinstance(groups, str):
        if groups not in table.colnames:
            raise ValueError(f'groups={groups!r} is not a column of the table; give a '
                             "column name (e.g. 'galaxy') or one label per row.")
        groups = table[groups]
    groups = np.asarray(groups)
    if groups.shape != (len(table),):
        raise ValueError(f'groups must give one label per row ({len(table)}); '
                         f'got shape {groups.shape}.')
    return groups


def _target_values(table, target):
    if target not in table.colnames:
        raise ValueError(f'target {target!r} is not a column of the training table; '
                         f'add it or choose targets among {table.colnames}.')
    col = table[target]
    unit = getattr(col, 'unit', None)
    expected = TARGET_UNITS.get(target)
    if expected is not None and unit is not None and unit != u.dimensionless_unscaled:
        # a Column with a unit (plain Table) as well as a Quantity (QTable)
        try:
            return np.asarray(u.Quantity(col).to_value(expected), dtype=float), expected
        except u.UnitConversionError:
            raise u.UnitsError(f'target {target!r} is in {unit}; give it in {expected} '
                               '(or a unit convertible to it).') from None
    if unit is None or unit == u.dimensionless_unscaled:
        unit = expected if expected is not None else u.dimensionless_unscaled
        return np.asarray(col, dtype=float), unit
    return np.asarray(col.value, dtype=float), unit


def _shuffled_groups(groups, seed):
    """Group labels replaced by a seeded random permutation, so folds do not follow names."""
    uniq, inverse = np.unique(groups, return_inverse=True)
    perm = np.random.default_rng(seed).permutation(len(uniq))
    return perm[inverse.ravel()]
