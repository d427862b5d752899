"""
Dust mass, temperature and luminosity from far-infrared maps or fluxes.

`fit_dust_sed` fits the modified black body of `astro_dustml.sed.dust_emission`
(band-integrated through the real transmission curves) to every pixel of
aligned MIPS, PACS and SPIRE maps at once, or to every row of a flux table.
For each temperature of a grid the model is linear in the dust mass, so the
best mass and the chi^2 follow in closed form for all pixels and temperatures
with two matrix products; the posterior over the grid (flat priors on ``T``
and ``Md``, the mass marginalised analytically) gives means and standard
deviations of ``Md``, ``Td`` and ``Ld``.

The DustPedia CIGALE/THEMIS catalogue (Nersesian et al. 2019), the truth the
models learn, is not a single modified black body: its ``Tdust`` is
``18.3 K Umin**(1/5.79)`` and its ``Ldust`` covers the whole infrared.  So by
default the fit is put on the catalogue's scale by a linear correction in the
fitted temperature,

    ``y_cat = y_fit + c0 + c1 (T_fit - 20 K)``  for ``log10 Md``, ``log10 Ld`` and ``Td``,

whose coefficients and cross-validated scatter were derived on the global
DustPedia photometry by ``scripts/calibrate_fir.py`` and ship as
``data/dust_fit_calibration.json`` (see the far-infrared page of the docs),
one entry per set of bands; every row or pixel is calibrated with the entry of
the bands usable in it.
"""

import warnings

import astropy.units as u
import numpy as np
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import QTable
from ndcube import NDCollection

from ..bands import FIR_BANDS, get_band
from ..exceptions import AstroDustMLWarning
from ..imaging.io import _usable
from ..sed.dust_emission import BETA, _band_flux_per_mass, _luminosity_per_mass
from ..sed.tables import (
    _check_aligned,
    _error_array,
    _flux_factor,
    _members,
    _pixel_area,
    _psf_fwhm,
)
from .calibration import _calibrate_rows, _lookup
from .temperature_prior import _apply_temperature_prior, _prior_arrays

__all__ = ['fit_dust_sed', 'specific_dust_maps']


_LN10 = np.log(10)


_CHUNK = 8192  # pixels per block: (block x temperatures) arrays of a few MB


_COARSE = 40  # points of the first, locating pass over the temperature range


_TABLE = 1024  # points of the kernel table the second pass interpolates


def _moments(a, b, sff, temperatures, log_prior, log_lum=None, covariances=False):
    """
    Posterior moments from ``a = sum w F K`` and ``b = sum w K^2`` on temperature grids.

    ``a``, ``b``: (n, n_T); ``temperatures``, ``log_prior`` and ``log_lum``
    (log10 of the luminosity per unit mass; None for the temperature alone)
    broadcast against them.  The
    best mass at each temperature is ``a / b`` with variance ``1 / b`` and
    ``chi^2 = sum w F^2 - a^2 / b``; marginalising the mass (flat prior)
    weights each temperature by ``exp(-chi^2 / 2) / sqrt(b)``.  Temperatures
    whose best mass is not positive (``a <= 0``) get no weight.
    """
    valid = a > 0
    ln_a, ln_b = np.log(np.where(valid, a, 1.0)), np.log(b)
    chi2 = sff[:, None] - np.where(valid, np.exp(2 * ln_a - ln_b), 0)
    chi2 = np.where(valid, chi2, np.inf)
    best = np.argmin(chi2, axis=1)[:, None]
    chi2_min = np.take_along_axis(chi2, best, axis=1)
    log_post = np.where(valid, -0.5 * (chi2 - chi2_min) - 0.5 * ln_b + log_prior, -np.inf)
    p = np.exp(log_post - np.max(log_post, axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    out = {'Td': np.sum(p * temperatures, axis=1)}
    out['Td_var'] = np.sum(p * temperatures ** 2, axis=1) - out['Td'] ** 2
    if log_lum is None:  # the locating pass needs the temperature only
        return out
    # moments of log10 Md (robust where T is poorly constrained: the mass grows
    # steeply towards low T); var(log10 Md | T) = b / a^2 / ln(10)^2
    log_m = np.where(valid, (ln_a - ln_b) / _LN10, 0)
    cond_var = np.where(valid, np.exp(ln_b - 2 * ln_a), 0) / _LN10 ** 2
    out['Md'] = np.sum(p * log_m, axis=1)
    out['Md_var'] = np.sum(p * (log_m ** 2 + cond_var), axis=1) - out['Md'] ** 2
    log_l = log_m + log_lum  # log10 Ld = log10 Md + log10 l(T)
    out['Ld'] = np.sum(p * log_l, axis=1)
    out['Ld_var'] = np.sum(p * (log_l ** 2 + cond_var), axis=1) - out['Ld'] ** 2
    if covariances:  # with T (log10 units times K), for a temperature prior
        for key, log_v in (('Md', log_m), ('Ld', log_l)):
            out[f'{key}_Td_cov'] = (np.sum(p * log_v * temperatures, axis=1)
                                    - out[key] * out['Td'])
    out['chi2'] = chi2_min[:, 0]
    # mass signal-to-noise a / sqrt(b) at the best temperature
    out['snr'] = np.take_along_axis(np.exp(ln_a - 0.5 * ln_b), best, axis=1)[:, 0]
    return out


def _fit_arrays(flux, sigma, kernel_table, temperatures, n_refine, beta, covariances=False):
    """
    Grid posterior of the modified black body for many SEDs at once.

    ``flux``, ``sigma``: (n, n_bands) in Jy Mpc^2 (weight 0 where sigma is not
    finite); ``kernel_table``: (n_bands, n_table) model flux of one Msun at
    1 Mpc on the fine log grid ``temperatures`` (the prior range).  A first
    pass on a coarse grid (every ``len(temperatures) // _COARSE``-th point)
    locates each posterior; a second pass evaluates it on ``n_refine``
    temperatures spanning +-5 sigma around it (within the prior range),
    with the kernels interpolated in log-log, so that narrow posteriors are
    resolved and the work stays proportional to ``_COARSE + n_refine``.
    ``covariances``: also return ``Md_Td_cov`` and ``Ld_Td_cov`` (for a
    temperature prior).
    """
    n = flux.shape[0]
    keys = ['Md', 'Md_err', 'Td', 'Td_err', 'Ld', 'Ld_err', 'chi2', 'snr']
    cov_keys = ['Md_Td_cov', 'Ld_Td_cov'] if covariances else []
    out = {k: np.full(n, np.nan) for k in keys + cov_keys}
    with np.errstate(divide='ignore', invalid='ignore'):
        w_all = np.where(np.isfinite(sigma) & (sigma > 0) & np.isfinite(flux),
                         1 / sigma ** 2, 0.0)
    f_all = np.where(w_all > 0, flux, 0.0)
    detected = np.flatnonzero(np.count_nonzero(w_all, axis=1) >= 2)
    step = max(1, len(temperatures) // _COARSE)
    coarse = temperatures[::step]
    k_coarse = kernel_table[:, ::step]
    log_t_table = np.log(temperatures)
    log_k_table = np.log(kernel_table)
    t_lo, t_hi = temperatures[0], temperatures[-1]
    # flat prior in T: a log grid carries dT ~ T per point, a linear one a constant
    unit = np.linspace(-1, 1, n_refine)
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        for start in range(0, detected.size, _CHUNK):
            rows = detected[start:start + _CHUNK]
            w, f = w_all[rows], f_all[rows]
            wf = w * f
            sff = np.sum(wf * f, axis=1)
            a = wf @ k_coarse
            keep = np.any(a > 0, axis=1)
            rows, w, wf, sff, a = rows[keep], w[keep], wf[keep], sff[keep], a[keep]
            first = _moments(a, w @ k_coarse ** 2, sff, coarse, np.log(coarse))
            half = np.clip(5 * np.sqrt(np.clip(first['Td_var'], 0, None)),
                           1.5 * (coarse[1] - coarse[0]) * first['Td'] / coarse[0], None)
            lo = np.clip(first['Td'] - half, t_lo, None)
            hi = np.clip(first['Td'] + half, None, t_hi)
            grid = lo[:, None] + (hi - lo)[:, None] * (unit + 1) / 2   # (n, n_refine)
            log_grid = np.log(grid)
            kernels = np.exp(np.stack([np.interp(log_grid, log_t_table, row)
                                       for row in log_k_table], axis=-1))  # (n, t, b)
            a = np.einsum('nb,ntb->nt', wf, kernels)
            b = np.einsum('nb,ntb->nt', w, kernels ** 2)
            res = _moments(a, b, sff, grid, 0.0, np.log10(_luminosity_per_mass(grid, beta)),
                           covariances=covariances)
            for key in ('Md', 'Ld'):
                value = 10 ** res[key]
                out[key][rows] = value
                out[f'{key}_err'][rows] = value * _LN10 * np.sqrt(
                    np.clip(res[f'{key}_var'], 0, None))
            out['Td'][rows] = res['Td']
            for key in cov_keys:
                out[key][rows] = res[key]
            out['Td_err'][rows] = np.sqrt(np.clip(res['Td_var'], 0, None))
            out['chi2'][rows], out['snr'][rows] = res['chi2'], res['snr']
    return out


def _select_bands(bands, min_wavelength):
    bands = [get_band(b).name for b in bands]
    not_fir = [b for b in bands if b not in FIR_BANDS]
    if not_fir:
        raise ValueError(f'fit_dust_sed fits far-infrared bands only; {not_fir} are not '
                         f'among {", ".join(FIR_BANDS)}.')
    short = [b for b in bands if get_band(b).wavelength < min_wavelength]
    if short:
        warnings.warn(f'{short} lie shortward of min_wavelength={min_wavelength} and carry '
                      'warm dust a single cold modified black body does not describe: they '
                      'are not fitted. Lower min_wavelength to fit them, or leave them out.',
                      AstroDustMLWarning)
    used = [b for b in bands if b not in short]
    if len(used) < 2:
        raise ValueError(f'A dust fit needs at least two bands at >= {min_wavelength}; got '
                         f'{used or "none"}. Add PACS/SPIRE/MIPS 160 maps or fluxes.')
    return used


def _temperature_grid(temperature_range, n):
    lo, hi = u.Quantity(temperature_range).to_value(u.K)
    if not 0 < lo < hi:
        raise ValueError('temperature_range must be two increasing positive temperatures, '
                         f'got {temperature_range}.')
    return np.geomspace(lo, hi, n)


def _finish(result, n_used, min_snr):
    failed = (n_used < 2) | ~(result['Md'] > 0)
    for key in result:
        result[key] = np.where(failed, np.nan, result[key])
    return result, failed | ~(result['snr'] >= min_snr)


def fit_dust_sed(data, *, distance=None, bands=None, calibrated=True,
                 min_wavelength=100 * u.micron, temperature_range=(10, 60) * u.K,
                 n_temperatures=32, min_snr=3.0, calibration_errors=False, beta=BETA,
                 filter_dir=None, temperature_prior=None):
    """
    Fit dust mass, temperature and luminosity to far-infrared maps or fluxes.

    Parameters
    ----------
    data : `~ndcube.NDCollection`, mapping of band to image, or `~astropy.table.QTable`
        Aligned maps (same grid; surface brightness or flux per pixel, each
        with a `~astropy.nddata.StdDevUncertainty`), or a table with a flux
        column ``<band>`` and ``<band>_err`` per band (Jy) and a
        ``distance`` column (e.g. `astro_dustml.sed.read_dustpedia_photometry`).
    distance : `~astropy.units.Quantity`, optional
        Distance of the galaxy; required for maps, overrides the table's.
    bands : sequence of str, optional
        Bands to fit (default every far-infrared band present).  At least two
        at ``>= min_wavelength`` are needed.
    calibrated : bool, optional
        Return values on the CIGALE catalogue scale
        (`~astro_dustml.farinfrared.dust_calibration`), each row or pixel with
        the entry of the bands usable in it (that of the nearest calibrated
        set, with a warning, where its set has none), the uncertainties
        those of the value as an estimate of the catalogue's; `False` for
        the raw modified black body.
    min_wavelength : `~astropy.units.Quantity`, optional
        Shorter bands (warm dust, stochastic heating) are left out, with a
        warning.  The shipped calibration is for the default.
    temperature_range : `~astropy.units.Quantity`, optional
        Range of the (flat) temperature prior; the default 10 to 60 K brackets
        the catalogue's temperatures (12 to 39 K) and keeps two-band fits,
        whose colour admits cold solutions of huge mass, in check.
    n_temperatures : int, optional
        Points of each pixel's refined temperature grid (spanning +-5 sigma
        of its posterior, found by a first pass on 40 temperatures).
    min_snr : float, optional
        Pixels (rows) whose dust mass is detected at less than this
        signal-to-noise ratio (at the best temperature) are masked (flagged
        in ``mask_fit`` for tables); their values are kept, dominated by the
        temperature prior.
    calibration_errors : bool, optional
        Add each band's calibration uncertainty (band registry) to its
        errors; leave False when they include it already (as those of
        `astro_dustml.imaging.prepare_images` and of the DustPedia photometry do).
    beta : float, optional
        Emissivity index; the shipped colour corrections and calibration are
        for the default.
    filter_dir : path-like, optional
        Folder of pcigale filter curves, to integrate them instead of using
        the shipped colour corrections.
    temperature_prior : `~astropy.nddata.NDData` or tuple of `~astropy.units.Quantity`, optional
        An independent estimate of the (catalogue-scale) temperature with its
        uncertainty, per pixel on the maps' grid or per row (or one for all):
        e.g. ``maps['Td']`` of `~astro_dustml.maps.estimate_dust_maps`, or
        ``(pred['Td'], pred['Td_err'])`` of `~astro_dustml.model.DustModel.predict`
        on the same galaxies' UV to mid-infrared fluxes. Each calibrated fit
        is combined with it as a second Gaussian measurement of ``Td`` (its
        error correlated with the fit's by the calibration's
        ``prior_correlation``), and ``Md`` and ``Ld`` follow through their
        covariance with ``Td`` (see
        ``astro_dustml.farinfrared.temperature_prior``). Where the prior is NaN
        or masked the fit is kept. Needs ``calibrated=True``.

    Returns
    -------
    result : `~ndcube.NDCollection` or `~astropy.table.QTable`
        For maps: ``'Md'`` (solMass per pixel), ``'Td'`` (K), ``'Ld'`` (solLum
        per pixel) as `~astropy.nddata.CCDData` with uncertainties, the
        masks of pixels with fewer than two usable bands or a mass detected
        below ``min_snr``, and ``'chi2'`` (minimum chi^2; ``meta['n_bands']``
        the bands used per pixel, ``meta['snr']`` the mass signal-to-noise).
        For a table: a copy with ``Md_fit``, ``Td_fit``, ``Ld_fit``, their
        ``_err``, ``chi2_fit``, ``snr_fit``, ``n_bands_fit`` and ``mask_fit`` added
        (and ``calibration_fit``, the band set whose calibration each row
        used, when calibrated; for maps ``meta['calibration']`` holds the
        full set's entry and ``pixel_band_sets``, ``pixel_band_set_index``).

    Raises
    ------
    ValueError
        Fewer than two bands, unaligned maps, no distance, a temperature prior
        of another shape or without ``calibrated=True``.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.table import QTable
    >>> from astro_dustml.sed import band_flux
    >>> from astro_dustml.farinfrared import fit_dust_sed
    >>> bands = ['PACS_100', 'PACS_160', 'SPIRE_250', 'SPIRE_350', 'SPIRE_500']
    >>> t = QTable({'distance': [10.] * u.Mpc})
    >>> for b in bands:
    ...     f = band_flux(b, 1e7 * u.Msun, 22 * u.K, 10 * u.Mpc)
    ...     t[b], t[f'{b}_err'] = [f.value] * u.Jy, [0.03 * f.value] * u.Jy
    >>> out = fit_dust_sed(t, calibrated=False)
    >>> round(float(out['Td_fit'][0].value), 1), round(float(np.log10(out['Md_fit'][0].value)), 2)
    (22.0, 7.0)
    """
    temperatures = _temperature_grid(temperature_range, _TABLE)
    min_wavelength = u.Quantity(min_wavelength, u.micron)
    if temperature_prior is not None and not calibrated:
        raise ValueError('temperature_prior is a temperature on the catalogue scale; it '
                         'needs calibrated=True.')
    if isinstance(data, QTable):
        return _fit_table(data, distance, bands, calibrated, min_wavelength, temperatures,
                          calibration_errors, beta, filter_dir, min_snr, n_temperatures,
                          temperature_prior)
    images = _members(data)
    if distance is None:
        raise ValueError('fit_dust_sed needs distance= (e.g. 22.5 * u.Mpc) for maps.')
    distance_mpc = u.Quantity(distance).to_value(u.Mpc)
    bands = _select_bands([b for b in FIR_BANDS if b in images] if bands is None else bands,
                          min_wavelength)
    missing = [b for b in bands if b not in images]
    if missing:
        raise ValueError(f'No image of {missing} in the collection; it has {list(images)}.')
    images = {b: images[b] for b in bands}
    wcs, shape = _check_aligned(images)
    area = _pixel_area(wcs)
    flux, sigma = [], []
    for band, image in images.items():
        factor = _flux_factor(image, band, area)
        err = _error_array(image)
        if err is None:
            raise ValueError(f'The {band} map has no uncertainty; give it a '
                             'StdDevUncertainty (e.g. the error map of the archive).')
        value = np.where(_usable(image), np.asarray(image.data, dtype=float) * factor, np.nan)
        err = np.asarray(err, dtype=float) * factor
        if calibration_errors:
            err = np.hypot(err, get_band(band).calibration_error * value)
        flux.append(value.ravel())
        sigma.append(np.where(np.isfinite(value), err, np.nan).ravel())
    flux = np.stack(flux, axis=1) * distance_mpc ** 2
    sigma = np.stack(sigma, axis=1) * distance_mpc ** 2
    prior = None
    if temperature_prior is not None:
        if getattr(temperature_prior, 'wcs', None) is not None:
            try:
                _check_aligned({bands[0]: images[bands[0]], 'prior': temperature_prior})
            except ValueError:
                raise ValueError('temperature_prior is not on the grid of the far-infrared '
                                 'maps; reproject it onto theirs first (e.g. with '
                                 'reproject.reproject_interp).') from None
        prior = _prior_arrays(temperature_prior, shape)
    result, bad, n_used, index, keys = _run(flux, sigma, bands, temperatures, calibrated,
                                            beta, filter_dir, min_snr, n_temperatures, prior)
    calibration = None
    if calibrated:
        # the entry of the full set, and the one each pixel used (pixels
        # without some band are calibrated for the bands they have)
        calibration = dict(zip(('band_set', 'coefficients'), _lookup(bands)))
        calibration.update(pixel_band_sets=keys, pixel_band_set_index=index.reshape(shape))
    meta = {'bands': bands, 'distance': u.Quantity(distance, u.Mpc), 'calibrated': calibrated,
            'beta': beta, 'psf_fwhm': _psf_fwhm(data, images), 'calibration': calibration,
            'temperature_prior': prior is not None}
    units = {'Md': u.Msun, 'Td': u.K, 'Ld': u.Lsun}
    maps = []
    mask = bad.reshape(shape)
    for key, unit in units.items():
        maps.append((key, CCDData(result[key].reshape(shape), unit=unit, wcs=wcs.deepcopy(),
                                  uncertainty=StdDevUncertainty(
                                      result[f'{key}_err'].reshape(shape)),
                                  mask=mask.copy(), meta=dict(meta, quantity=key))))
    maps.append(('chi2', CCDData(result['chi2'].reshape(shape), unit=u.one, wcs=wcs.deepcopy(),
                                 mask=mask.copy(),
                                 meta=dict(meta, quantity='chi2',
                                           n_bands=n_used.reshape(shape),
                                           snr=result['snr'].reshape(shape)))))
    return NDCollection(maps, aligned_axes='all', meta=meta)


def _run(flux, sigma, bands, temperatures, calibrated, beta, filter_dir, min_snr, n_refine,
         prior=None):
    if calibrated and beta != BETA:
        raise ValueError(f'The calibration is for beta={BETA}; pass calibrated=False for '
                         f'beta={beta}.')
    kernels = np.array([_band_flux_per_mass(b, temperatures, beta, filter_dir) for b in bands])
    raw = _fit_arrays(flux, sigma, kernels, temperatures, n_refine, beta,
                      covariances=prior is not None)
    usable = np.isfinite(flux) & np.isfinite(sigma) & (sigma > 0)
    n_used = np.sum(usable, axis=1)
    index, keys = np.full(flux.shape[0], -1), []
    if calibrated:
        raw, index, keys = _calibrate_rows(raw, usable, bands)
    if prior is not None:
        raw = _apply_temperature_prior(raw, *prior)
    result, bad = _finish(raw, n_used, min_snr)
    return result, bad, n_used, index, keys


def _fit_table(table, distance, bands, calibrated, min_wavelength, temperatures,
               calibration_errors, beta, filter_dir, min_snr, n_refine, temperature_prior):
    if bands is None:
        bands = [b for b in FIR_BANDS if b in table.colnames]
    bands = _select_bands(bands, min_wavelength)
    for b in bands:
        if b not in table.colnames or f'{b}_err' not in table.colnames:
            raise ValueError(f'The table lacks the columns {b} and {b}_err (Jy).')
    if distance is None:
        if 'distance' not in table.colnames:
            raise ValueError('Give distance= or a distance column in the table.')
        distance = table['distance']
    d2 = np.broadcast_to(u.Quantity(distance).to_value(u.Mpc), (len(table),)) ** 2
    flux = np.stack([u.Quantity(table[b]).to_value(u.Jy) for b in bands], axis=1)
    sigma = np.stack([u.Quantity(table[f'{b}_err']).to_value(u.Jy) for b in bands], axis=1)
    if calibration_errors:
        cal = np.array([get_band(b).calibration_error for b in bands])
        sigma = np.hypot(sigma, cal * flux)
    prior = (None if temperature_prior is None
             else _prior_arrays(temperature_prior, (len(table),)))
    result, bad, n_used, index, keys = _run(flux * d2[:, None], sigma * d2[:, None], bands,
                                            temperatures, calibrated, beta, filter_dir,
                                            min_snr, n_refine, prior)
    out = table.copy()
    units = {'Md': u.Msun, 'Td': u.K, 'Ld': u.Lsun}
    for key, unit in units.items():
        out[f'{key}_fit'] = result[key] * unit
        out[f'{key}_fit_err'] = result[f'{key}_err'] * unit
    out['chi2_fit'] = result['chi2']
    out['snr_fit'] = result['snr']
    out['n_bands_fit'] = n_used
    out['mask_fit'] = bad
    if calibrated:
        out['calibration_fit'] = np.array([keys[i] if i >= 0 else '' for i in index], dtype=str)
    out.meta['dust_fit'] = {'bands': bands, 'calibrated': calibrated, 'beta': beta,
                            'temperature_prior': prior is not None}
    return out


def specific_dust_maps(fit, stellar_mass):
    """
    Pixel truth ``sLd``, ``sMd``, ``Td`` from a far-infrared fit and a stellar-mass map.

    ``sLd = log10(Ld / M*)`` and ``sMd = log10(Md / M*)`` (dex) with the
    relative errors of both added in quadrature, and ``Td`` as fitted: the
    targets of the models, from images alone (e.g. the truth for
    `astro_dustml.farinfrared.constrain_to_lowres`, or training targets).

    Parameters
    ----------
    fit : `~ndcube.NDCollection`
        Output of `fit_dust_sed` on maps (calibrated, for the catalogue scale).
    stellar_mass : `~astropy.nddata.NDData`
        Stellar mass per pixel on the fit's grid
        (`astro_dustml.farinfrared.stellar_mass_map`).

    Returns
    -------
    maps : `~ndcube.NDCollection`
        ``'sLd'``, ``'sMd'`` (dex) and ``'Td'`` (K) `~astropy.nddata.CCDData`
        with uncertainties and the union of the masks.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.nddata import CCDData, StdDevUncertainty
    >>> from astropy.wcs import WCS
    >>> from ndcube import NDCollection
    >>> from astro_dustml.farinfrared import specific_dust_maps
    >>> wcs = WCS(naxis=2); wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> def m(v, unit):
    ...     return CCDData(np.full((2, 2), v), unit=unit, wcs=wcs,
    ...                    uncertainty=StdDevUncertainty(np.full((2, 2), 0.1 * v)))
    >>> fit = NDCollection([('Md', m(1e5, 'Msun')), ('Td', m(20., 'K')), ('Ld', m(1e7, 'Lsun'))])
    >>> out = specific_dust_maps(fit, m(1e8, 'Msun'))
    >>> float(out['sMd'].data[0, 0]), float(out['sLd'].data[0, 0])
    (-3.0, -1.0)
    """
    missing = [k for k in ('Md', 'Ld', 'Td') if k not in fit]
    if missing:
        raise ValueError(f'The fit lacks {missing}; pass the output of fit_dust_sed on maps.')
    wcs, shape = _check_aligned({'Md': fit['Md'], 'stellar_mass': stellar_mass})
    mstar = np.asarray(stellar_mass.data, dtype=float) * u.Unit(stellar_mass.unit).to(u.Msun)
    mstar_rel = np.zeros(shape)
    if stellar_mass.uncertainty is not None:
        mstar_rel = np.asarray(stellar_mass.uncertainty.represent_as(
            StdDevUncertainty).array) * u.Unit(stellar_mass.unit).to(u.Msun) / mstar
    mask = np.asarray(fit['Md'].mask if fit['Md'].mask is not None else np.zeros(shape), bool)
    if stellar_mass.mask is not None:
        mask = mask | np.asarray(stellar_mass.mask, dtype=bool)
    members = []
    with np.errstate(divide='ignore', invalid='ignore'):
        mask = mask | ~(mstar > 0)
        for name, key, unit in (('sLd', 'Ld', u.Lsun), ('sMd', 'Md', u.Msun)):
            value = np.asarray(fit[key].data, dtype=float) * u.Unit(fit[key].unit).to(unit)
            rel = _error_array(fit[key]) / np.asarray(fit[key].data, dtype=float)
            members.append((name, CCDData(
                np.where(mask, np.nan, np.log10(value / mstar)), unit=u.dex, wcs=wcs.deepcopy(),
                uncertainty=StdDevUncertainty(np.hypot(rel, mstar_rel) / _LN10),
                mask=mask.copy(), meta=dict(fit[key].meta or {}, quantity=name))))
    td = fit['Td']
    members.append(('Td', CCDData(np.where(mask, np.nan, td.data), unit=td.unit,
                                  wcs=wcs.deepcopy(), uncertainty=td.uncertainty,
                                  mask=mask.copy(), meta=dict(td.meta or {}, quantity='Td'))))
    return NDCollection(members, aligned_axes='all', meta=dict(getattr(fit, 'meta', {}) or {}))
