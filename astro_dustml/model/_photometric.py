"""
The photometric part of a prediction's uncertainty.

A model's sigma is learned from the residuals of global DustPedia fluxes,
whose signal-to-noise ratios are high; a pixel's fluxes are often not.
`_photometric_scatter` propagates each band's flux error through the mean
prediction: central differences at one sigma of each band's log flux (the
forests' steps make a difference at the error's own scale the meaningful
slope, and the central one halves their roughness against a one-sided one,
which overestimates an analytic slope by 11%), summed in quadrature over the
bands; `DustModel.predict` adds the result in quadrature to the model's
sigma.

The steps are multiplicative, so a stepped flux stays positive and every row
keeps its pattern of usable bands (and with it its mean model); nothing is
random, so the result depends only on the row, not on blocks, tiles or
subsets.
"""

import astropy.units as u
import numpy as np

from .features import _column_value

# a flux error under 1% moves a colour by under 0.005 dex: with 18 such bands
# the sum in quadrature is 0.02 dex, 0.1% of a typical 0.15 dex sigma, so
# those bands are not stepped (most pixels of a galaxy's bright parts)
_NEGLIGIBLE = 0.01


def _log_sigma(table, band):
    """Per row, the sigma of ln(flux) of a log-normal with the flux's mean and error."""
    if band not in table.colnames or f'{band}_err' not in table.colnames:
        return np.zeros(len(table))
    with np.errstate(divide='ignore', invalid='ignore'):
        ratio = _column_value(table, f'{band}_err', u.Jy) / _column_value(table, band, u.Jy)
    ratio = np.where(np.isfinite(ratio) & (ratio > 0), ratio, 0)
    return np.sqrt(np.log1p(ratio ** 2))


def _photometric_scatter(predict_means, block, bands):
    """
    The scatter of each target's mean prediction that the flux errors cause.

    Parameters
    ----------
    predict_means : callable
        ``(table, rows)`` -> dict of target -> mean prediction of those rows
        of ``block`` (with their own mean models).
    block : `~astropy.table.QTable`
        The rows, with ``<band>`` and ``<band>_err`` columns.
    bands : list of str
        The model's bands.

    Returns
    -------
    scatter : dict
        Target -> standard deviation per row.
    """
    variance = {}
    for band in bands:
        s = _log_sigma(block, band)
        rows = np.flatnonzero(s >= _NEGLIGIBLE)
        if not len(rows):
            continue
        stepped = block[rows]
        ends = []
        for sign in (1, -1):
            stepped[band] = block[band][rows] * np.exp(sign * s[rows])
            ends.append(predict_means(stepped, rows))
        for target, up in ends[0].items():
            variance.setdefault(target, np.zeros(len(block)))
            variance[target][rows] += ((up - ends[1][target]) / 2) ** 2
    return {target: np.sqrt(v) for target, v in variance.items()}
