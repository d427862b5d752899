"""
Where the dust properties of a training pixel come from: the truth sources.

Truth sources
    A truth source is called as ``truth(galaxy, wcs=, shape=, fwhm=, scale=)``
    for each galaxy and scale, and returns a mapping with ``sLd``, ``sMd``
    (dex) and ``Td`` (K) as `~astropy.nddata.NDData` maps (with WCS, and
    optionally a `~astropy.nddata.StdDevUncertainty`) or as Quantity arrays
    on the requested grid.  Maps on another grid are averaged onto it
    (`reproject.reproject_adaptive`).  Built in: `MapTruth` (given maps, e.g.
    a user's own fit or ``MockGalaxy.truth``), and any object with a
    ``truth_maps(wcs, shape, fwhm)`` method (a
    `~astro_dustml.datasets.MockGalaxy`: exact truth at every scale), and
    `~astro_dustml.training.FarInfraredTruth` (the package's own fit of the
    galaxy's far-infrared maps at ``scale.far_infrared(distance)``, divided
    by a stellar-mass map).  A source raises `TruthUnavailable` to skip a
    galaxy at a scale with a reason.  For pcigale per pixel, build the table
    without truth, fit its rows (`astro_dustml.sed.cigale`) and join the results.

Uses `astro_dustml.bands` and `astro_dustml.imaging` (reprojection of maps
given on another grid).
"""

import os

import astropy.units as u
import numpy as np
from astropy.nddata import NDData

from ..imaging.align import _reproject

__all__ = ['MapTruth', 'TruthUnavailable', 'TARGETS']


TARGETS = ('sLd', 'sMd', 'Td')
"""The standard targets: specific dust luminosity and mass (dex), temperature (K)."""


_TARGET_UNITS = {'sLd': u.dex, 'sMd': u.dex, 'Td': u.K}


# ------------------------------------------------------------------ truth


class TruthUnavailable(ValueError):
    """
    A truth source cannot give truth for a galaxy at a scale.

    `build_training_table` records that galaxy and scale as ``'skipped'``
    with the message as the reason (other errors count as failures).
    """


class MapTruth:
    """
    Truth source 2: given maps of ``sLd``, ``sMd`` and ``Td``.

    Parameters
    ----------
    maps : mapping, `~ndcube.NDCollection` or path-like
        ``sLd``, ``sMd`` (dex) and ``Td`` (K) as `~astropy.nddata.NDData`
        with WCS (a ``StdDevUncertainty`` gives the ``_err`` columns); or a
        mapping ``{scale label: maps}`` with maps for each scale; or a FITS
        file of `~astro_dustml.maps.write_dust_maps` (read when needed).

    Notes
    -----
    Maps on another grid than the pixel table are averaged over each output
    pixel (`reproject.reproject_adaptive`), which degrades finer truth to the
    pixel size only approximately (the average of a log quantity); give maps
    per scale, or a source computing them at each resolution, for exact
    truth.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.nddata import NDData
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.training import MapTruth
    >>> wcs = WCS(naxis=2); wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> maps = {k: NDData(np.full((4, 4), v), unit=unit, wcs=wcs)
    ...         for k, v, unit in [('sLd', 1.0, u.dex), ('sMd', -3.0, u.dex), ('Td', 22.0, u.K)]}
    >>> truth = MapTruth(maps)
    >>> out = truth(None, wcs=wcs, shape=(4, 4), fwhm=None, scale=None)
    >>> float(out['Td'].data[0, 0])
    22.0
    """

    def __init__(self, maps):
        self.maps = maps

    def _all_maps(self):
        if isinstance(self.maps, (str, os.PathLike)):
            from ..maps.io import read_dust_maps
            return read_dust_maps(self.maps)
        return self.maps

    def __call__(self, galaxy, *, wcs, shape, fwhm, scale):
        maps = self._all_maps()
        label = getattr(scale, 'label', None)
        if label is not None and label in maps and not isinstance(maps[label], NDData):
            maps = maps[label]
        missing = [t for t in TARGETS if t not in maps]
        if missing:
            raise ValueError(f'The truth maps have no {", ".join(missing)} (they have '
                             f'{", ".join(map(str, maps))}); give sLd, sMd and Td maps.')
        return {t: maps[t] for t in TARGETS}


def _truth_source(truth):
    if truth is None or callable(truth) and not hasattr(truth, 'truth_maps'):
        return truth
    if hasattr(truth, 'truth_maps'):
        def mock_truth(galaxy, *, wcs, shape, fwhm, scale):
            return truth.truth_maps(wcs, shape, fwhm)
        return mock_truth
    return MapTruth(truth)


def _on_grid(value, name, wcs, shape):
    """``(values, errors)`` arrays of a truth map on the pixel grid."""
    if isinstance(value, NDData):
        unit = value.unit or _TARGET_UNITS.get(name)
        same = (value.wcs is not None and tuple(np.shape(value.data)) == tuple(shape)
                and value.wcs.celestial.wcs.compare(wcs.celestial.wcs, tolerance=1e-9))
        if not same:
            if value.wcs is None:
                raise ValueError(f'The truth map {name} has no WCS and is not on the pixel '
                                 'grid; give it a celestial WCS.')
            value = _reproject(value, wcs, shape, 'hann', 0.5)
        data = np.array(value.data, dtype=float)
        if value.mask is not None:
            data[np.asarray(value.mask, bool)] = np.nan
        err = (np.full(shape, np.nan) if value.uncertainty is None
               else np.array(value.uncertainty.array, dtype=float))
        target_unit = _TARGET_UNITS.get(name, unit)
        if unit is not None and target_unit is not None and unit != target_unit:
            data = (data * unit).to_value(target_unit)
            err = (err * unit).to_value(target_unit)
        return data, err
    q = u.Quantity(value)
    if q.shape != tuple(shape):
        raise ValueError(f'The truth array {name} has shape {q.shape}, not the pixel grid '
                         f'{tuple(shape)}; return NDData with a WCS instead.')
    unit = _TARGET_UNITS.get(name)
    return (q.to_value(unit) if unit is not None and q.unit != u.one else q.value,
            np.full(shape, np.nan))
