"""
High-resolution dust maps constrained by a low-resolution truth (Dobbels & Baes 2021, Sect. 4.2).

A prediction at high resolution (e.g. at the 6.7 arcsec of WISE 12 micron,
from inputs up to that band) is sharp but carries the model's large-scale
errors; a truth at low resolution (e.g. from `astro_dustml.farinfrared.fit_dust_sed`
on SPIRE 250 maps, or from pcigale, at 18.4 arcsec) is right on large scales
but blurred.  `constrain_to_lowres` corrects the prediction until its
degradation to the truth's resolution and grid reproduces the truth, keeping
the predicted small-scale structure.

Quantities are degraded as nature adds them up within a beam:

- specific quantities (``sLd``, ``sMd``: log10 of ``Ld/M*``, ``Md/M*``) as
  the ratio of the degraded extensive maps, ``log10(deg(10**s M*) / deg(M*))``,
  with the stellar-mass map as weight;
- the temperature as the dust-mass weighted mean of ``T**5.79``, the power
  with which the THEMIS dust luminosity per unit mass grows with ``Td``
  (``Ld/Md ~ Umin ~ Td**5.79``, Nersesian et al. 2019), so that the degraded
  temperature is that of the degraded ``Ld/Md``.

``deg`` is a convolution with the Gaussian that takes the prediction's PSF to
the truth's, followed by area-weighted resampling onto the truth grid.  The
correction, the difference between truth and degraded prediction (in dex,
or in log T), is interpolated back to the fine grid and added; this is
iterated (a Van Cittert iteration) until the degraded map matches the truth.

Uncertainty: the large scales are the truth's, so its uncertainty
(interpolated to the fine grid) is kept, and of the prediction's error only
the part on scales finer than the truth's beam remains; for an error field
correlated over the prediction's PSF that is a fraction
``1 - (FWHM_pred / FWHM_truth)**2`` of its variance.
"""

import astropy.units as u
import numpy as np
from astropy.convolution import convolve_fft
from astropy.nddata import CCDData, NDData, StdDevUncertainty
from ndcube import NDCollection
from scipy.ndimage import distance_transform_edt
from scipy.sparse import csr_matrix

from ..imaging.psf import gaussian_psf
from ..imaging.psf_matching import _pixel_scale
from ..sed.dust_emission import UMIN_POWER
from ..sed.tables import _celestial

__all__ = ['constrain_to_lowres', 'degrade_maps']


_SPECIFIC = ('sLd', 'sMd')


_SUB = 4  # sub-pixels per fine pixel side for the area weights


_UNITS = {'sLd': u.dex, 'sMd': u.dex, 'Td': u.K}


def _fwhm(ndd, given, name):
    if given is not None:
        return u.Quantity(given, u.arcsec)
    meta = getattr(ndd, 'meta', None) or {}
    if meta.get('psf_fwhm') is None:
        raise ValueError(f'The {name} maps carry no meta["psf_fwhm"]; give {name}_fwhm= '
                         '(the resolution of those maps, e.g. 18.2 * u.arcsec).')
    return u.Quantity(meta['psf_fwhm'], u.arcsec)


def _maps(collection, name):
    if isinstance(collection, NDData):
        quantity = (collection.meta or {}).get('quantity')
        if quantity not in _UNITS:
            raise ValueError(f'A single {name} map needs meta["quantity"] in {list(_UNITS)}; '
                             'or pass a mapping {"sMd": map, ...}.')
        collection = {quantity: collection}
    maps = {k: v for k, v in collection.items() if k in _UNITS}
    if not maps:
        raise ValueError(f'The {name} holds none of {list(_UNITS)}; got {list(collection)}.')
    first = next(iter(maps))
    wcs0 = _celestial(maps[first], f'{name} {first}')
    for key, ndd in maps.items():
        wcs = _celestial(ndd, f'{name} {key}')
        if ndd.data.shape != maps[first].data.shape or not wcs.wcs.compare(wcs0.wcs,
                                                                           tolerance=1e-10):
            raise ValueError(f'The {name} maps are not on one grid ({key} differs from '
                             f'{first}); put them on one grid first.')
        try:
            u.Unit(ndd.unit or u.one).to(_UNITS[key])
        except u.UnitConversionError:
            raise u.UnitsError(f'The {name} {key} map is in {ndd.unit}; it must be in '
                               f'{_UNITS[key]}.') from None
    return maps, wcs0, maps[first].data.shape


def _values(ndd, key):
    data = np.array(ndd.data, dtype=float) * u.Unit(ndd.unit or u.one).to(_UNITS[key])
    if ndd.mask is not None:
        data[np.asarray(ndd.mask, dtype=bool)] = np.nan
    err = None
    if ndd.uncertainty is not None:
        err = np.asarray(ndd.uncertainty.represent_as(StdDevUncertainty).array, dtype=float)
    return data, err


class _Degrader:
    """
    Linear map from the fine grid to the coarse one: PSF convolution, then area resampling.

    Both resampling steps are sparse matrices built once from the two WCS:
    each fine pixel, cut into ``_SUB x _SUB`` sub-pixels, gives its area to
    the coarse pixels the sub-pixels fall in (area-weighted averaging, as
    `reproject.reproject_exact` does), and each fine pixel centre takes the
    bilinear interpolation of the coarse map (as `reproject.reproject_interp`
    with ``order='bilinear'``).  The iteration then costs two FFTs and two
    sparse products per quantity.
    """

    def __init__(self, wcs_hi, shape_hi, fwhm_hi, wcs_lo, shape_lo, fwhm_lo):
        self.shape_hi, self.shape_lo = tuple(shape_hi), tuple(shape_lo)
        width = np.sqrt(fwhm_lo ** 2 - fwhm_hi ** 2)
        scale = _pixel_scale(wcs_hi)
        self.kernel = None
        if width > 0.05 * scale:
            self.kernel = gaussian_psf(width, pixel_scale=scale).data
        n_hi, n_lo = int(np.prod(shape_hi)), int(np.prod(shape_lo))
        ny, nx = shape_hi
        # area resampling: sub-pixel centres of the fine grid on the coarse grid
        offsets = (np.arange(_SUB) + 0.5) / _SUB - 0.5
        fy, fx = np.mgrid[:ny, :nx]
        full_shape = (ny, nx, _SUB, _SUB)
        sx = np.broadcast_to(fx[..., None, None] + offsets[None, None, None, :],
                             full_shape).ravel()
        sy = np.broadcast_to(fy[..., None, None] + offsets[None, None, :, None],
                             full_shape).ravel()
        cx, cy = wcs_lo.world_to_pixel_values(*wcs_hi.pixel_to_world_values(sx, sy))
        ix, iy = np.round(cx).astype(int), np.round(cy).astype(int)
        inside = (ix >= 0) & (ix < shape_lo[1]) & (iy >= 0) & (iy < shape_lo[0])
        fine = np.repeat(np.arange(n_hi), _SUB * _SUB)
        self.area = csr_matrix((np.full(inside.sum(), 1.0 / _SUB ** 2),
                                (iy[inside] * shape_lo[1] + ix[inside], fine[inside])),
                               shape=(n_lo, n_hi))
        cover = np.asarray(self.area.sum(axis=1)).ravel()
        full = np.median(cover[cover > 0]) if (cover > 0).any() else 0
        if full == 0:
            raise ValueError('The truth does not overlap the prediction anywhere; check the '
                             'WCS of both.')
        # coarse pixels only partly covered by the prediction cannot be compared
        self.complete = (cover >= 0.98 * full).reshape(shape_lo)
        # bilinear interpolation of the coarse grid at the fine pixel centres
        world = wcs_hi.pixel_to_world_values(fx.ravel(), fy.ravel())
        cx, cy = wcs_lo.world_to_pixel_values(*world)
        cx = np.clip(cx, 0, shape_lo[1] - 1)
        cy = np.clip(cy, 0, shape_lo[0] - 1)
        x0 = np.minimum(np.floor(cx).astype(int), shape_lo[1] - 2).clip(0)
        y0 = np.minimum(np.floor(cy).astype(int), shape_lo[0] - 2).clip(0)
        tx, ty = cx - x0, cy - y0
        rows, cols, weights = [], [], []
        for dy, dx, wgt in ((0, 0, (1 - tx) * (1 - ty)), (0, 1, tx * (1 - ty)),
                            (1, 0, (1 - tx) * ty), (1, 1, tx * ty)):
            rows.append(np.arange(n_hi))
            cols.append(np.minimum(y0 + dy, shape_lo[0] - 1) * shape_lo[1]
                        + np.minimum(x0 + dx, shape_lo[1] - 1))
            weights.append(wgt)
        self.interp = csr_matrix((np.concatenate(weights),
                                  (np.concatenate(rows), np.concatenate(cols))),
                                 shape=(n_hi, n_lo))

    def __call__(self, extensive):
        data = np.nan_to_num(extensive, nan=0.0)
        if self.kernel is not None:
            data = convolve_fft(data, self.kernel, normalize_kernel=True, boundary='fill',
                                fill_value=0.0, allow_huge=True)
        out = (self.area @ data.ravel()).reshape(self.shape_lo)
        return np.where(self.complete, out, np.nan)

    def upsample(self, coarse):
        """Bilinear interpolation of a coarse map to the fine grid; NaN filled by the nearest."""
        filled = np.array(coarse, dtype=float)
        bad = ~np.isfinite(filled)
        if bad.all():
            raise ValueError('The truth has no finite value where it overlaps the '
                             'prediction; check its mask and WCS.')
        if bad.any():
            index = distance_transform_edt(bad, return_distances=False, return_indices=True)
            filled = filled[tuple(index)]
        return (self.interp @ filled.ravel()).reshape(self.shape_hi)


def _degrade_all(values, mstar, degrader):
    """Degrade sLd/sMd/Td (fine-grid arrays) with the right weights."""
    out = {}
    m_deg = degrader(mstar)
    for key in _SPECIFIC:
        if key in values:
            with np.errstate(divide='ignore', invalid='ignore'):
                out[key] = np.log10(degrader(10 ** values[key] * mstar) / m_deg)
    if 'Td' in values:
        if 'sMd' not in values:
            raise ValueError('Degrading Td needs the dust mass as weight: include the sMd '
                             'map in the prediction.')
        mdust = 10 ** values['sMd'] * mstar
        with np.errstate(divide='ignore', invalid='ignore'):
            ratio = degrader(mdust * values['Td'] ** UMIN_POWER) / degrader(mdust)
            out['Td'] = ratio ** (1 / UMIN_POWER)
    return out


def degrade_maps(maps, *, stellar_mass=None, wcs, shape, fwhm, maps_fwhm=None):
    """
    Degrade sLd/sMd/Td maps to a coarser resolution and grid, aggregating correctly.

    Parameters
    ----------
    maps : `~ndcube.NDCollection` or mapping
        ``'sLd'``, ``'sMd'`` (dex) and/or ``'Td'`` (K) on one grid.
    stellar_mass : `~astropy.nddata.NDData`, optional
        Stellar mass per pixel on that grid (e.g. `astro_dustml.farinfrared.stellar_mass_map`);
        default ``maps.meta['stellar_mass']`` (`astro_dustml.maps.estimate_dust_maps`
        puts it there).
    wcs, shape : `~astropy.wcs.WCS`, tuple
        The coarse grid.
    fwhm : `~astropy.units.Quantity`
        The coarse resolution.
    maps_fwhm : `~astropy.units.Quantity`, optional
        Resolution of ``maps``; default their ``meta['psf_fwhm']``.

    Returns
    -------
    degraded : dict
        Arrays on the coarse grid (dex or K, as Quantities).

    Examples
    --------
    A uniform map stays uniform:

    >>> import numpy as np, astropy.units as u
    >>> from astropy.nddata import NDData
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.farinfrared import degrade_maps
    >>> def grid(scale, n):
    ...     w = WCS(naxis=2); w.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    ...     w.wcs.cdelt = [-scale / 3600, scale / 3600]; w.wcs.crpix = [(n + 1) / 2] * 2
    ...     return w
    >>> fine = {'sMd': NDData(np.full((60, 60), -3.0), unit='dex', wcs=grid(2, 60))}
    >>> mstar = NDData(np.ones((60, 60)), unit='Msun', wcs=grid(2, 60))
    >>> out = degrade_maps(fine, stellar_mass=mstar, wcs=grid(6, 10), shape=(10, 10),
    ...                    fwhm=18 * u.arcsec, maps_fwhm=6 * u.arcsec)
    >>> float(np.nanmean(out['sMd'].value))  # doctest: +FLOAT_CMP
    -3.0
    """
    stellar_mass = _given_or_meta(stellar_mass, maps, 'maps')
    maps, wcs_hi, shape_hi = _maps(maps, 'maps')
    fwhm_hi = _fwhm(next(iter(maps.values())), maps_fwhm, 'maps')
    mstar = _stellar_mass(stellar_mass, wcs_hi, shape_hi)
    degrader = _Degrader(wcs_hi, shape_hi, fwhm_hi, wcs.celestial, tuple(shape),
                         u.Quantity(fwhm, u.arcsec))
    values = {k: _values(v, k)[0] for k, v in maps.items()}
    return {k: v * _UNITS[k] for k, v in _degrade_all(values, mstar, degrader).items()}


def _given_or_meta(stellar_mass, collection, name):
    """``stellar_mass``, or the collection's ``meta['stellar_mass']`` (estimate_dust_maps)."""
    if stellar_mass is None:
        stellar_mass = (getattr(collection, 'meta', None) or {}).get('stellar_mass')
        if stellar_mass is None:
            raise ValueError(
                f'Give stellar_mass= (a stellar-mass map on the grid of the {name}): the '
                f"{name} carry none in meta['stellar_mass'] (estimate_dust_maps puts one "
                'there when given a distance=).')
    return stellar_mass


def _stellar_mass(stellar_mass, wcs, shape):
    if not isinstance(stellar_mass, NDData):
        raise TypeError('stellar_mass must be an NDData/CCDData map of stellar mass per pixel '
                        '(e.g. from astro_dustml.farinfrared.stellar_mass_map).')
    swcs = _celestial(stellar_mass, 'stellar_mass')
    if stellar_mass.data.shape != tuple(shape) or not swcs.wcs.compare(wcs.wcs,
                                                                       tolerance=1e-10):
        raise ValueError('The stellar-mass map must be on the grid of the prediction; '
                         'reproject it first.')
    unit = u.Unit(stellar_mass.unit or u.one)
    if not unit.is_equivalent(u.Msun):
        raise u.UnitsError(f'stellar_mass is in {unit}; give stellar mass per pixel '
                           '(solMass).')
    data = np.array(stellar_mass.data, dtype=float) * unit.to(u.Msun)
    if stellar_mass.mask is not None:
        data[np.asarray(stellar_mass.mask, dtype=bool)] = np.nan
    return data


def constrain_to_lowres(prediction, truth, *, stellar_mass=None, prediction_fwhm=None,
                        truth_fwhm=None, max_iter=50, tolerance=1e-4):
    """
    Correct high-resolution dust maps so that, degraded, they reproduce a low-resolution truth.

    Parameters
    ----------
    prediction : `~ndcube.NDCollection` or mapping
        High-resolution ``'sLd'``, ``'sMd'`` (dex) and/or ``'Td'`` (K) maps
        on one grid (e.g. from `astro_dustml.maps.estimate_dust_maps`);
        ``Td`` needs ``sMd`` (its weight).
    truth : `~ndcube.NDCollection` or mapping
        The same quantities at low resolution on their own grid (e.g. from
        `astro_dustml.farinfrared.fit_dust_sed` with a stellar-mass map, or
        pcigale).  Quantities absent from the truth are returned unchanged.
    stellar_mass : `~astropy.nddata.NDData`, optional
        Stellar mass per pixel on the prediction's grid (the weight); default
        ``prediction.meta['stellar_mass']``, the map
        `astro_dustml.maps.estimate_dust_maps` puts on its maps' grid.
    prediction_fwhm, truth_fwhm : `~astropy.units.Quantity`, optional
        Resolutions; default each collection's ``meta['psf_fwhm']`` (or its
        first map's).
    max_iter : int, optional
        Maximum number of correction steps.
    tolerance : float, optional
        Stop when the RMS change of the correction (dex, or dex of ``Td``)
        falls below this.

    Returns
    -------
    constrained : `~ndcube.NDCollection`
        `~astropy.nddata.CCDData` maps on the prediction's grid with the
        propagated uncertainty; ``meta['iterations']`` and
        ``meta['residual_rms']`` (RMS of truth minus degraded result, per
        quantity, in dex or K).

    Raises
    ------
    ValueError
        If the truth is sharper than the prediction, the grids do not
        overlap, or a grid is inconsistent.
    astropy.units.UnitsError
        If a map has the wrong unit.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.nddata import NDData
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.farinfrared import constrain_to_lowres
    >>> def grid(scale, n):
    ...     w = WCS(naxis=2); w.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    ...     w.wcs.cdelt = [-scale / 3600, scale / 3600]; w.wcs.crpix = [(n + 1) / 2] * 2
    ...     return w
    >>> pred = {'sMd': NDData(np.full((60, 60), -3.0), unit='dex', wcs=grid(2, 60))}
    >>> truth = {'sMd': NDData(np.full((12, 12), -2.8), unit='dex', wcs=grid(10, 12))}
    >>> mstar = NDData(np.ones((60, 60)), unit='Msun', wcs=grid(2, 60))
    >>> out = constrain_to_lowres(pred, truth, stellar_mass=mstar,
    ...                           prediction_fwhm=6 * u.arcsec, truth_fwhm=18 * u.arcsec)
    >>> round(float(np.median(out['sMd'].data)), 3)
    -2.8
    """
    stellar_mass = _given_or_meta(stellar_mass, prediction, 'prediction')
    pred_maps, wcs_hi, shape_hi = _maps(prediction, 'prediction')
    truth_maps, wcs_lo, shape_lo = _maps(truth, 'truth')
    fwhm_hi = _fwhm(prediction if getattr(prediction, 'meta', None) else
                    next(iter(pred_maps.values())), prediction_fwhm, 'prediction')
    fwhm_lo = _fwhm(truth if getattr(truth, 'meta', None) else
                    next(iter(truth_maps.values())), truth_fwhm, 'truth')
    if fwhm_lo < fwhm_hi:
        raise ValueError(f'The truth ({fwhm_lo}) is sharper than the prediction ({fwhm_hi}); '
                         'constrain_to_lowres needs a truth at lower resolution. Swap them, '
                         'or degrade the truth first.')
    if wcs_hi.wcs.radesys != wcs_lo.wcs.radesys or \
            wcs_hi.world_axis_physical_types != wcs_lo.world_axis_physical_types:
        raise ValueError('The prediction and truth WCS use different celestial frames '
                         f'({wcs_hi.world_axis_physical_types}, {wcs_hi.wcs.radesys!r} vs '
                         f'{wcs_lo.world_axis_physical_types}, {wcs_lo.wcs.radesys!r}); '
                         'reproject one to the other\'s frame first.')
    if 'Td' in truth_maps and 'sMd' not in pred_maps:
        raise ValueError('Constraining Td needs the sMd prediction (the dust mass weights '
                         'the temperature).')
    mstar = _stellar_mass(stellar_mass, wcs_hi, shape_hi)
    degrader = _Degrader(wcs_hi, shape_hi, fwhm_hi, wcs_lo, shape_lo, fwhm_lo)
    values = {k: _values(v, k)[0] for k, v in pred_maps.items()}
    truth_values = {k: _values(v, k) for k, v in truth_maps.items() if k in pred_maps}

    # corrections act on dex for the specific quantities and on log10 T
    def logged(key, array):
        return np.log10(array) if key == 'Td' else array

    current = dict(values)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        degraded = _degrade_all(current, mstar, degrader)
        change = 0.0
        for key, (target, _) in truth_values.items():
            delta = degrader.upsample(logged(key, target) - logged(key, degraded[key]))
            if key == 'Td':
                current[key] = current[key] * 10 ** delta
            else:
                current[key] = current[key] + delta
            change = max(change, float(np.sqrt(np.nanmean(delta ** 2))))
        if change < tolerance:
            break
    degraded = _degrade_all(current, mstar, degrader)
    residual = {k: float(np.sqrt(np.nanmean((truth_values[k][0] - degraded[k]) ** 2)))
                for k in truth_values}
    keep = 1 - (fwhm_hi / fwhm_lo).decompose().value ** 2
    meta = {'iterations': iterations, 'residual_rms': residual, 'psf_fwhm': fwhm_hi,
            'truth_fwhm': fwhm_lo}
    members = []
    for key, ndd in pred_maps.items():
        pred_err = _values(ndd, key)[1]
        err = pred_err
        if key in truth_values:
            truth_err = truth_values[key][1]
            truth_part = 0.0 if truth_err is None else degrader.upsample(truth_err)
            if key == 'Td' and truth_err is not None:
                # the truth's relative error carries over to the corrected temperature
                truth_part = current[key] * degrader.upsample(truth_err / truth_values[key][0])
            pred_part = 0.0 if pred_err is None else keep * pred_err ** 2
            err = np.sqrt(truth_part ** 2 + pred_part)
        mask = ~np.isfinite(current[key])
        if ndd.mask is not None:
            mask |= np.asarray(ndd.mask, dtype=bool)
        members.append((key, CCDData(current[key], unit=_UNITS[key], wcs=wcs_hi.deepcopy(),
                                     uncertainty=None if err is None else StdDevUncertainty(
                                         np.broadcast_to(err, shape_hi).copy()),
                                     mask=mask,
                                     meta=dict(ndd.meta or {}, quantity=key,
                                               constrained=key in truth_values))))
    return NDCollection(members, aligned_axes='all', meta=meta)
