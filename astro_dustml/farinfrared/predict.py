"""
Predicted far-infrared maps and their comparison with observed ones.

`predict_fir_maps` turns dust maps (``sMd``, ``Td``; e.g. from
`astro_dustml.maps.estimate_dust_maps`) and a stellar-mass map into the
surface brightness each MIPS, PACS or SPIRE band would see: the dust mass
``Md = 10**sMd M*`` and ``Td`` are taken from the CIGALE catalogue scale to
the modified black body by inverting the calibration of
`astro_dustml.farinfrared.fit_dust_sed` (that of its default band set), and the
body is integrated through the band (`astro_dustml.sed.band_flux`).
`compare_fir` brings a prediction to an observed map's PSF and grid with the
package's own PSF matching and reprojection and measures how well they agree.
"""

from dataclasses import dataclass, field

import astropy.units as u
import numpy as np
from astropy.nddata import CCDData, StdDevUncertainty
from matplotlib.figure import Figure
from ndcube import NDCollection
from scipy.stats import spearmanr

from ..bands import FIR_BANDS, get_band
from ..imaging.align import align_images
from ..imaging.io import _parse_image
from ..imaging.prepare import OUTPUT_UNIT, _to_output_factor
from ..imaging.psf_matching import match_psf
from ..sed.dust_emission import _band_flux_per_mass
from ..sed.tables import _celestial, _pixel_area
from .calibration import _T_REFERENCE, dust_calibration

__all__ = ['predict_fir_maps', 'compare_fir', 'FIRComparison', 'catalogue_to_mbb']


_LN10 = np.log(10)


_DT = 0.05  # K, step of the numerical derivative of log flux with temperature


def catalogue_to_mbb(log_mass, temperature):
    """
    Modified-black-body mass and temperature from catalogue-scale values.

    Inverts ``y_cat = y_fit + offset + slope (T_fit - 20 K)`` of the
    default band set of `astro_dustml.farinfrared.dust_calibration`.

    Parameters
    ----------
    log_mass : array
        log10 of the catalogue-scale dust mass (Msun).
    temperature : array
        Catalogue-scale dust temperature (K).

    Returns
    -------
    log_mass_fit, temperature_fit, scatter : array, array, dict
        The body's log10 mass and temperature, and the calibration's
        cross-validated residual scatter (``'Mdust'`` in dex, ``'Tdust'`` in
        K of the body's temperature).

    Examples
    --------
    >>> from astro_dustml.farinfrared import catalogue_to_mbb
    >>> lm, t, scatter = catalogue_to_mbb(7.0, 20.0)
    >>> 15 < float(t) < 25 and abs(float(lm) - 7) < 0.2
    True
    """
    calibration = dust_calibration()
    coef = calibration['band_sets'][calibration['default']]['coefficients']
    ct, cm = coef['Tdust'], coef['Mdust']
    t_fit = (np.asarray(temperature, float) - ct['offset'] + ct['slope'] * _T_REFERENCE) \
        / (1 + ct['slope'])
    log_m = np.asarray(log_mass, float) - cm['offset'] - cm['slope'] * (t_fit - _T_REFERENCE)
    # the full cross-validated residual of the calibration: a THEMIS SED is not
    # a single modified black body, whatever the quality of the data
    return log_m, t_fit, {'Mdust': cm['cv_rmse'], 'Tdust': ct['cv_rmse'] / (1 + ct['slope'])}


def _array(ndd, unit):
    data = np.array(ndd.data, dtype=float) * u.Unit(ndd.unit or u.one).to(unit)
    err = np.zeros_like(data)
    if ndd.uncertainty is not None:
        err = np.array(ndd.uncertainty.represent_as(StdDevUncertainty).array, dtype=float) \
            * u.Unit(ndd.unit or u.one).to(unit)
    mask = ~np.isfinite(data)
    if ndd.mask is not None:
        mask |= np.asarray(ndd.mask, dtype=bool)
    return data, err, mask


def predict_fir_maps(maps, stellar_mass=None, bands=('PACS_100', 'PACS_160', 'SPIRE_250',
                                                     'SPIRE_350'), *, distance=None):
    """
    Far-infrared surface brightness maps predicted from dust maps.

    Parameters
    ----------
    maps : `~ndcube.NDCollection` or mapping
        ``'sMd'`` (dex) and ``'Td'`` (K) maps on one grid, with
        uncertainties (e.g. from `astro_dustml.maps.estimate_dust_maps`).
    stellar_mass : `~astropy.nddata.NDData`, optional
        Stellar mass per pixel on the same grid
        (`astro_dustml.farinfrared.stellar_mass_map`). Default:
        ``maps.meta['stellar_mass']``, the one `estimate_dust_maps
        <astro_dustml.maps.estimate_dust_maps>` puts on the maps' grid
        from its WISE images (when given a distance).
    bands : sequence of str, optional
        Far-infrared bands to predict.
    distance : `~astropy.units.Quantity`, optional
        Default ``stellar_mass.meta['distance']`` or ``maps.meta['distance']``.

    Returns
    -------
    predicted : `~ndcube.NDCollection`
        One `~astropy.nddata.CCDData` per band in MJy/sr with the maps' WCS,
        a `~astropy.nddata.StdDevUncertainty` propagated from ``sMd``,
        ``Td``, the stellar mass and the calibration scatter (errors treated
        as independent), the union of the masks, and ``meta['band']``,
        ``meta['psf_fwhm']`` (the maps').

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.nddata import CCDData, StdDevUncertainty
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.farinfrared import predict_fir_maps
    >>> wcs = WCS(naxis=2); wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> wcs.wcs.cdelt = [-6 / 3600, 6 / 3600]
    >>> def m(value, unit, err):
    ...     return CCDData(np.full((4, 4), value), unit=unit, wcs=wcs,
    ...                    uncertainty=StdDevUncertainty(np.full((4, 4), err)))
    >>> maps = {'sMd': m(-2.7, 'dex', 0.1), 'Td': m(22.0, 'K', 1.0)}
    >>> fir = predict_fir_maps(maps, m(1e8, 'Msun', 1e7), ['SPIRE_250'], distance=10 * u.Mpc)
    >>> fir['SPIRE_250'].unit
    Unit("MJy / sr")
    """
    members = dict(maps.items()) if hasattr(maps, 'items') else None
    if members is None or 'sMd' not in members or 'Td' not in members:
        raise ValueError('predict_fir_maps needs the sMd and Td maps (a mapping or the '
                         'NDCollection of estimate_dust_maps).')
    stellar_mass = _stellar_mass_of(maps, stellar_mass)
    wcs = _celestial(members['sMd'], 'sMd')
    shape = members['sMd'].data.shape
    for name, ndd in (('Td', members['Td']), ('stellar_mass', stellar_mass)):
        other = _celestial(ndd, name)
        if ndd.data.shape != shape or not other.wcs.compare(wcs.wcs, tolerance=1e-10):
            hint = (" Leave stellar_mass= out to use maps.meta['stellar_mass'], the "
                    'stellar-mass map estimate_dust_maps made on the grid of its maps.'
                    if name == 'stellar_mass' and (getattr(maps, 'meta', None) or {}).get(
                        'stellar_mass') is not None else '')
            raise ValueError(f'The {name} map ({ndd.data.shape}) is not on the grid of the '
                             f'sMd map ({shape}); reproject it onto that grid first '
                             f'(astro_dustml.imaging.align_images).{hint}')
    if not u.Unit(stellar_mass.unit or u.one).is_equivalent(u.Msun):
        raise u.UnitsError(f'stellar_mass is in {stellar_mass.unit}; give solar masses '
                           'per pixel.')
    bands = [get_band(b).name for b in ([bands] if isinstance(bands, str) else bands)]
    not_fir = [b for b in bands if b not in FIR_BANDS]
    if not_fir:
        raise ValueError(f'{not_fir} are not far-infrared bands; choose from '
                         f'{", ".join(FIR_BANDS)}.')
    if distance is None:
        distance = (stellar_mass.meta or {}).get('distance')
        if distance is None:
            distance = (getattr(maps, 'meta', None) or {}).get('distance')
        if distance is None:
            raise ValueError('Give distance= (the stellar-mass map carries none).')
    d_mpc = u.Quantity(distance).to_value(u.Mpc)
    smd, smd_err, smd_mask = _array(members['sMd'], u.dex)
    td, td_err, td_mask = _array(members['Td'], u.K)
    mstar, mstar_err, m_mask = _array(stellar_mass, u.Msun)
    with np.errstate(divide='ignore', invalid='ignore'):
        log_mstar_err = mstar_err / (mstar * _LN10)
        log_md = smd + np.log10(mstar)
    mask = smd_mask | td_mask | m_mask
    area_sr = _pixel_area(wcs).to_value(u.sr)
    meta_common = dict(getattr(maps, 'meta', None) or {})
    psf_fwhm = meta_common.get('psf_fwhm', (members['sMd'].meta or {}).get('psf_fwhm'))
    out = []
    for band in bands:
        jy, log_err = _band_prediction(band, log_md, np.hypot(smd_err, log_mstar_err), td,
                                       td_err, d_mpc)
        mask = mask | ~np.isfinite(jy)
        sb = jy / area_sr * 1e-6  # Jy/pixel -> MJy/sr
        err = sb * _LN10 * log_err
        sb, err = np.where(mask, np.nan, sb), np.where(mask, np.nan, err)
        out.append((band, CCDData(sb, unit=OUTPUT_UNIT, wcs=wcs.deepcopy(),
                                  uncertainty=StdDevUncertainty(err), mask=mask.copy(),
                                  meta={'band': band, 'psf_fwhm': psf_fwhm,
                                        'quantity': 'predicted surface brightness',
                                        'distance': u.Quantity(distance, u.Mpc)})))
    return NDCollection(out, aligned_axes='all',
                        meta={'bands': bands, 'psf_fwhm': psf_fwhm,
                              'distance': u.Quantity(distance, u.Mpc)})


def _stellar_mass_of(maps, stellar_mass):
    """The stellar-mass map given, or the one of ``maps.meta`` (estimate_dust_maps)."""
    if isinstance(stellar_mass, str) or (
            isinstance(stellar_mass, (list, tuple)) and stellar_mass
            and all(isinstance(b, str) for b in stellar_mass)):
        raise TypeError(f'stellar_mass={stellar_mass!r} looks like band names; give the bands '
                        "as bands= (predict_fir_maps(maps, bands=['SPIRE_250'])).")
    if stellar_mass is not None:
        return stellar_mass
    stellar_mass = (getattr(maps, 'meta', None) or {}).get('stellar_mass')
    if stellar_mass is None:
        raise ValueError(
            'No stellar-mass map: give stellar_mass= (a map on the grid of the dust maps, '
            "e.g. stellar_mass_map(images)), or use maps of estimate_dust_maps run with a "
            "distance=, which carry one in maps.meta['stellar_mass'].")
    return stellar_mass


def _band_prediction(band, log_md, log_md_err, td, td_err, d_mpc):
    """
    Flux (Jy) a band sees of catalogue-scale dust, and its error in dex.

    ``log_md``, ``td``: catalogue-scale log10 dust mass (Msun) and temperature
    (K) as arrays; their errors are propagated with the calibration's residual
    scatter, the errors being treated as independent.
    """
    log_m_fit, t_fit, scatter = catalogue_to_mbb(log_md, td)
    t_err = np.hypot(np.asarray(td_err) / (1 + _slope()), scatter['Tdust'])
    ok = np.isfinite(log_m_fit) & np.isfinite(t_fit)
    t_safe = np.where(ok, t_fit, _T_REFERENCE)
    per_mass = _band_flux_per_mass(band, t_safe)
    dlog = (np.log10(_band_flux_per_mass(band, t_safe + _DT))
            - np.log10(_band_flux_per_mass(band, t_safe - _DT))) / (2 * _DT)
    with np.errstate(over='ignore', invalid='ignore'):
        jy = np.where(ok, 10 ** log_m_fit * per_mass / np.asarray(d_mpc) ** 2, np.nan)
    log_err = np.sqrt(np.asarray(log_md_err) ** 2 + scatter['Mdust'] ** 2
                      + (dlog * t_err) ** 2)
    return jy, log_err


def _slope():
    calibration = dust_calibration()
    return calibration['band_sets'][calibration['default']]['coefficients']['Tdust']['slope']


@dataclass
class FIRComparison:
    """
    A predicted far-infrared map against an observed one, on the observed grid.

    Attributes
    ----------
    predicted, observed : `~astropy.nddata.CCDData`
        Both in MJy/sr at a common PSF on the observed grid.
    ratio, log_residual : `~astropy.nddata.CCDData`
        ``predicted / observed`` and ``log10`` of it (dex), masked where
        either map is masked or the observed one is below ``min_snr``.
    summary : dict
        ``median_ratio``, ``log_residual_rms`` (dex), ``log_residual_median``,
        ``spearman`` (rank correlation over the compared pixels) and
        ``n_pixels``.
    """

    predicted: CCDData
    observed: CCDData
    ratio: CCDData
    log_residual: CCDData
    summary: dict = field(default_factory=dict)

    def plot(self, *, figure=None):
        """
        Observed, predicted and log-residual maps with a pixel scatter plot.

        Returns
        -------
        figure : `~matplotlib.figure.Figure`
        """
        fig = figure or Figure(figsize=(15, 3.6))
        fig.set_layout_engine('constrained')
        axes = fig.subplots(1, 4)
        good = ~self.log_residual.mask
        vals = np.concatenate([self.observed.data[good], self.predicted.data[good]])
        vmin, vmax = (np.nanpercentile(vals, [2, 99.5]) if vals.size else (None, None))
        for ax, image, title in ((axes[0], self.observed, 'observed'),
                                 (axes[1], self.predicted, 'predicted')):
            im = ax.imshow(np.where(good, image.data, np.nan), origin='lower', vmin=vmin,
                           vmax=vmax, cmap='inferno')
            ax.set_title(f'{title} {self.observed.meta.get("band", "")}', fontsize=10)
            fig.colorbar(im, ax=ax, label='MJy/sr', shrink=0.9)
        im = axes[2].imshow(np.where(good, self.log_residual.data, np.nan), origin='lower',
                            cmap='coolwarm', vmin=-0.5, vmax=0.5)
        axes[2].set_title('log10 predicted / observed', fontsize=10)
        fig.colorbar(im, ax=axes[2], label='dex', shrink=0.9)
        axes[3].loglog(self.observed.data[good], self.predicted.data[good], '.', ms=2)
        if vals.size:
            axes[3].plot([vmin, vmax], [vmin, vmax], 'k--', lw=1)
        axes[3].set_xlabel('observed (MJy/sr)')
        axes[3].set_ylabel('predicted (MJy/sr)')
        s = self.summary
        axes[3].set_title(f'ratio {s["median_ratio"]:.2f}, rms {s["log_residual_rms"]:.2f} dex, '
                          f'rho {s["spearman"]:.2f}', fontsize=9)
        for ax in axes[:3]:
            ax.set_xticks([])
            ax.set_yticks([])
        return fig


def compare_fir(predicted, observed, *, min_snr=3.0, region=None):
    """
    Compare a predicted far-infrared map with an observed one.

    The sharper of the two is convolved to the other's PSF
    (`astro_dustml.imaging.match_psf`) and the prediction is reprojected onto
    the observed grid (`astro_dustml.imaging.align_images`).

    Parameters
    ----------
    predicted : `~astropy.nddata.CCDData`
        A map of `predict_fir_maps` (MJy/sr, ``meta['band']`` and
        ``meta['psf_fwhm']``).
    observed : `~astropy.nddata.CCDData` or any input of `astro_dustml.imaging.read_images`
        The observed map of the same band, in a surface brightness or a
        flux density per pixel, ideally sky-subtracted with an uncertainty
        (`astro_dustml.imaging.prepare_image`); its PSF is
        ``meta['psf_fwhm']`` or the band's.
    min_snr : float, optional
        Observed pixels below this signal-to-noise ratio are not compared
        (none are dropped when the map has no uncertainty).
    region : array of bool, optional
        Pixels of the observed grid to compare (e.g. the galaxy aperture).

    Returns
    -------
    comparison : `~astro_dustml.farinfrared.FIRComparison`
        With ``plot()`` for the figure.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.nddata import CCDData
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.farinfrared import compare_fir
    >>> wcs = WCS(naxis=2); wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> wcs.wcs.cdelt = [-6 / 3600, 6 / 3600]; wcs.wcs.crpix = [16, 16]
    >>> y, x = np.mgrid[:31, :31]
    >>> sky = 10 * np.exp(-((x - 15) ** 2 + (y - 15) ** 2) / 50.)
    >>> meta = {'band': 'SPIRE_250', 'psf_fwhm': 18.2 * u.arcsec}
    >>> pred = CCDData(1.2 * sky, unit='MJy/sr', wcs=wcs, meta=meta)
    >>> obs = CCDData(sky, unit='MJy/sr', wcs=wcs, meta=meta)
    >>> c = compare_fir(pred, obs)
    >>> round(c.summary['median_ratio'], 2), round(c.summary['spearman'], 2)
    (1.2, 1.0)
    """
    if not isinstance(predicted, CCDData) or 'band' not in (predicted.meta or {}):
        raise TypeError('predicted must be a CCDData map of predict_fir_maps (with '
                        'meta["band"]).')
    band = get_band(predicted.meta['band']).name
    try:  # the observed map's own band (header or meta) first, to catch a mismatch
        obs = _parse_image(observed)
    except ValueError:
        obs = _parse_image(observed, band=band)
    if obs.meta['band'] != band:
        raise ValueError(f'The observed map is in {obs.meta["band"]}, the prediction in '
                         f'{band}; compare maps of the same band.')
    if not obs.meta.get('unit_known', True):
        raise u.UnitsError(f'The observed {band} map has no unit; give it one (BUNIT, or a '
                           'CCDData unit).')
    factor = _to_output_factor(obs.unit, _pixel_area(obs.wcs.celestial), get_band(band))
    obs = CCDData(obs.data * factor, unit=OUTPUT_UNIT, wcs=obs.wcs, mask=obs.mask,
                  uncertainty=None if obs.uncertainty is None
                  else StdDevUncertainty(obs.uncertainty.array * factor),
                  meta=dict(obs.meta))
    fwhm_obs = u.Quantity(obs.meta.get('psf_fwhm', get_band(band).fwhm), u.arcsec)
    fwhm_pred = predicted.meta.get('psf_fwhm')
    fwhm_pred = fwhm_obs if fwhm_pred is None else u.Quantity(fwhm_pred, u.arcsec)
    target = max(fwhm_obs, fwhm_pred)
    if fwhm_obs < target:
        obs = match_psf(obs, target)
    pred = CCDData(predicted.data, unit=predicted.unit, wcs=predicted.wcs,
                   uncertainty=predicted.uncertainty, mask=predicted.mask,
                   meta=dict(predicted.meta, psf_fwhm=fwhm_pred))
    aligned = align_images({band: pred}, target=target, output_wcs=obs.wcs.celestial,
                           shape_out=obs.data.shape)
    pred = aligned[band]
    good = np.isfinite(pred.data) & np.isfinite(obs.data) & (pred.data > 0) & (obs.data > 0)
    for image in (pred, obs):
        if image.mask is not None:
            good &= ~np.asarray(image.mask, dtype=bool)
    if obs.uncertainty is not None:
        good &= obs.data >= min_snr * np.asarray(obs.uncertainty.array)
    if region is not None:
        good &= np.asarray(region, dtype=bool)
    if good.sum() < 3:
        raise ValueError(f'Fewer than 3 pixels can be compared ({good.sum()}): the maps do '
                         'not overlap, or the observed map is not detected at min_snr.')
    with np.errstate(divide='ignore', invalid='ignore'):
        ratio = pred.data / obs.data
    log_res = np.log10(ratio)
    summary = {'median_ratio': float(np.median(ratio[good])),
               'log_residual_median': float(np.median(log_res[good])),
               'log_residual_rms': float(np.sqrt(np.mean(log_res[good] ** 2))),
               'spearman': float(spearmanr(pred.data[good], obs.data[good]).statistic),
               'n_pixels': int(good.sum()), 'psf_fwhm': target}
    meta = {'band': band, 'psf_fwhm': target}
    return FIRComparison(
        predicted=pred, observed=obs,
        ratio=CCDData(ratio, unit=u.one, wcs=obs.wcs, mask=~good, meta=dict(meta)),
        log_residual=CCDData(log_res, unit=u.dex, wcs=obs.wcs, mask=~good, meta=dict(meta)),
        summary=summary)
