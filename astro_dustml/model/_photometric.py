"""
The photometric part of a prediction's uncertainty.

A model's sigma is learned from the residuals of global DustPedia fluxes,
whose signal-to-noise ratios are high; a pixel's fluxes are often not.
`_photometric_scatter` propagates each band's flux error through the mean
prediction (central differences at one sigma of the log flux, summed in
quadrature over the bands), and `DustModel.predict` adds the result in
quadrature to the model's sigma.

The steps are multiplicative, so a stepped flux stays positive and every row
keeps its pattern of usable bands (and with it its mean model); nothing is
random, so the result depends only on the row, not on blocks, tiles or
subsets.
"""

import astropy.units as u
import numpy as np

from .features import _column_value


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
        Table -> dict of target -> mean prediction (the rows' own mean models).
    block : `~astropy.table.QTable`
        The rows, with ``<band>`` and ``<band>_err`` columns.
    bands : list of str
        The model's bands.

    Returns
    -------
    scatter : dict
        Target -> standard deviation per row.
    """
    stepped = block.copy(copy_data=False)
    variance = {}
    for band in bands:
        s = _log_sigma(block, band)
        if not s.any():
            continue
        ends = []
        for sign in (1, -1):
            stepped[band] = block[band] * np.exp(sign * s)
            ends.append(predict_means(stepped))
        stepped[band] = block[band]
        for target in ends[0]:
            slope = (ends[0][target] - ends[1][target]) / 2
            variance[target] = variance.get(target, 0) + slope ** 2
    return {target: np.sqrt(v) for target, v in variance.items()}
