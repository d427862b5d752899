"""
An independent dust-temperature estimate folded into a far-infrared fit.

Two far-infrared bands fix a temperature only as well as their colour is
measured, and the colour of a faint galaxy or pixel is noisy. The models of
`astro_dustml.model` estimate the same temperature (on the same catalogue
scale) from the UV to mid-infrared, independently of the far-infrared
photometry. `fit_dust_sed` (``temperature_prior=``) combines the two as two
Gaussian measurements of the calibrated temperature, whose errors are
correlated (both were learned from the same catalogue, and share its own
deviations; the correlation is measured per band set on the training split
by ``scripts/calibrate_fir.py``): the temperature takes the best linear
combination, and log10 Md and log10 Ld, which a fit ties to its temperature,
move by their covariance with it (the linear-Gaussian update, as in a Kalman
filter). Where the far-infrared colour is precise the fit barely moves;
where it is not, the prior carries the temperature.

Uses `astro_dustml.imaging` and `astro_dustml.sed` (image checks).
"""

import astropy.units as u
import numpy as np

from ..imaging.io import _usable
from ..sed.tables import _error_array

__all__ = []


_LN10 = np.log(10)


def _prior_arrays(prior, shape):
    """
    ``(value, err)`` in K, flattened, from an NDData or a ``(value, err)`` pair.

    ``shape``: that of the fitted maps, or ``(n_rows,)`` for a table.
    """
    if hasattr(prior, 'data') and hasattr(prior, 'uncertainty'):
        err = _error_array(prior)
        if err is None:
            raise ValueError('temperature_prior has no uncertainty; give it a '
                             'StdDevUncertainty (the Td map of estimate_dust_maps has one).')
        unit = u.Unit(prior.unit or '')
        value = np.where(_usable(prior), np.asarray(prior.data, dtype=float), np.nan) * unit
        err = np.asarray(err, dtype=float) * unit
    elif isinstance(prior, (tuple, list)) and len(prior) == 2:
        value, err = (u.Quantity(p) for p in prior)
    else:
        raise TypeError('temperature_prior must be an NDData with an uncertainty (e.g. '
                        "maps['Td'] of estimate_dust_maps) or a (Td, Td_err) pair of "
                        f'Quantities; got {type(prior).__name__}.')
    try:
        value, err = value.to_value(u.K), err.to_value(u.K)
    except u.UnitsError:
        raise u.UnitsError(f'temperature_prior is in {value.unit!r}, not a temperature; '
                           'give it in K.') from None
    try:
        value, err = (np.broadcast_to(a, shape).ravel() for a in (value, err))
    except ValueError:
        raise ValueError(f'temperature_prior has shape {np.shape(value)}, the fit '
                         f'{shape}; give one value per pixel (row), on the same grid.') from None
    return value, err


def _apply_temperature_prior(result, value, err):
    """
    Combine calibrated fit arrays with an independent estimate ``value +- err`` of Td.

    ``result``: dict of calibrated arrays with ``Md_Td_cov``, ``Ld_Td_cov``
    (log10 x K) and ``Td_prior_correlation``, the correlation ``rho`` of the
    fit's and the prior's errors against the catalogue (both learned it, so
    they share its own deviations). With ``a``, ``s`` the two errors, the
    innovation ``value - Td`` has variance ``S = a^2 + s^2 - 2 rho a s`` and
    each quantity ``x`` moves by ``cov(x, Td) f / S`` times it,
    ``f = max(1 - rho s / a, 0)``, its variance dropping by
    ``(cov(x, Td) f)^2 / S`` (the best linear update; ``rho = 0`` gives the
    inverse-variance mean). Rows whose prior is not finite, or whose fit
    failed, are kept. Returns a new dict.
    """
    out = {k: np.array(v, dtype=float, copy=True) for k, v in result.items()}
    out['Td'], out['Td_err'], f, total, shift = _combine(
        result['Td'], result['Td_err'], value, err, result.get('Td_prior_correlation', 0.0))
    gain_t = result['Td_err'] ** 2 * f / total
    with np.errstate(invalid='ignore', divide='ignore'):
        for key in ('Md', 'Ld'):
            # cov(x, Td) f: the part of x's error the innovation sees
            cov_f = np.where(np.isfinite(total), result[f'{key}_Td_cov'], 0.0) * f
            log_err = result[f'{key}_err'] / (result[key] * _LN10)
            out[key] = result[key] * 10 ** (cov_f / total * shift)
            log_err = np.sqrt(np.clip(log_err ** 2 - cov_f ** 2 / total, 0, None))
            out[f'{key}_err'] = out[key] * _LN10 * log_err
            out[f'{key}_Td_cov'] = result[f'{key}_Td_cov'] - cov_f * gain_t
    return out


def _combine(t, t_err, value, err, rho):
    """
    ``(Td, Td_err, f, S, value - Td)`` of the fit ``t +- t_err`` combined with the prior.

    ``f = max(1 - rho err / t_err, 0)`` and ``S`` the innovation variance
    (infinite, and the fit kept, where either estimate is unusable).
    """
    with np.errstate(invalid='ignore', divide='ignore'):
        ok = (np.isfinite(value) & np.isfinite(err) & (err > 0) & np.isfinite(t) & (t_err > 0))
        f = np.where(ok, np.clip(1 - rho * err / t_err, 0, None), 0.0)
        total = np.where(ok, t_err ** 2 + err ** 2 - 2 * rho * t_err * err, np.inf)
        shift = np.where(ok, value - t, 0.0)
        gain_t = t_err ** 2 * f / total
        return t + gain_t * shift, np.sqrt(t_err ** 2 - t_err ** 2 * f * gain_t), f, total, shift
