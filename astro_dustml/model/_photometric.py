"""
The photometric part of a prediction's uncertainty.

A model's sigma is learned from the residuals of global DustPedia fluxes,
whose signal-to-noise ratios are high; a pixel's fluxes are often not.
`_photometric_scatter` redraws the fluxes of a block of rows within their
``<band>_err`` columns and returns the scatter of the mean prediction over
the draws, which `DustModel.predict` adds in quadrature to the model's sigma.

The draws are log-normal with the flux's mean and variance, so a drawn flux
stays positive and every row keeps its pattern of usable bands (and with it
its mean model). Draw ``k`` of row ``i`` depends only on the seed, ``k`` and
``i``: the result does not depend on the block size or the threads.
"""

import astropy.units as u
import numpy as np

from .features import _column_value

_CHUNK = 4096  # rows per seeded stretch of normal draws


def _normals(seed, draw, start, stop, n_bands):
    """Standard normal draws of rows ``start:stop``, keyed by (seed, draw, stretch)."""
    first, last = start // _CHUNK, (stop - 1) // _CHUNK
    z = np.concatenate([np.random.default_rng([seed, draw, c]).standard_normal((_CHUNK, n_bands))
                        for c in range(first, last + 1)])
    offset = start - first * _CHUNK
    return z[offset:offset + stop - start]


def _log_sigmas(table, bands):
    """Per row and band, the sigma of ln(flux) of a log-normal with the flux's mean and error."""
    cols = []
    for band in bands:
        if f'{band}_err' not in table.colnames or band not in table.colnames:
            cols.append(np.zeros(len(table)))
            continue
        with np.errstate(divide='ignore', invalid='ignore'):
            ratio = (_column_value(table, f'{band}_err', u.Jy)
                     / _column_value(table, band, u.Jy))
        cols.append(np.sqrt(np.log1p(np.where(np.isfinite(ratio) & (ratio > 0), ratio, 0) ** 2)))
    return np.column_stack(cols)


def _photometric_scatter(predict_means, block, rows, bands, *, n_draws, seed):
    """
    Standard deviation of the mean predictions over ``n_draws`` redraws of the fluxes.

    Parameters
    ----------
    predict_means : callable
        Table -> dict of target -> mean prediction (the rows' own mean models).
    block : `~astropy.table.QTable`
        The rows to redraw.
    rows : `~numpy.ndarray` of int
        Their indices in the whole table (they key the draws).
    bands : list of str
        The model's bands.

    Returns
    -------
    scatter : dict
        Target -> standard deviation per row.
    """
    s = _log_sigmas(block, bands)
    noisy = block.copy(copy_data=False)
    first = int(rows.min())
    draws = {}
    for k in range(n_draws):
        z = _normals(seed, k, first, int(rows.max()) + 1, len(bands))[rows - first]
        factor = np.exp(s * z - 0.5 * s ** 2)  # log-normal of mean 1
        for j, band in enumerate(bands):
            if band in block.colnames:
                noisy[band] = block[band] * factor[:, j]
        for target, value in predict_means(noisy).items():
            draws.setdefault(target, []).append(value)
    return {target: np.std(values, axis=0) for target, values in draws.items()}
