"""Figures of dust maps: the three properties and their uncertainties on sky axes."""

import numpy as np
from astropy.visualization import PercentileInterval

__all__ = ['plot_dust_maps']

_LABELS = {'sLd': r'$\log_{10}\,L_\mathrm{dust}/M_\star$',
           'sMd': r'$\log_{10}\,M_\mathrm{dust}/M_\star$',
           'Td': r'$T_\mathrm{dust}$'}
_CMAPS = {'sLd': 'magma', 'sMd': 'viridis', 'Td': 'inferno'}


def _masked(array, mask):
    out = np.array(array, dtype=float)
    if mask is not None:
        out[np.asarray(mask, dtype=bool)] = np.nan
    return out


def _limits(array, percentile):
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return None, None
    return PercentileInterval(percentile).get_limits(finite)


def plot_dust_maps(maps, *, fig=None, names=('sLd', 'sMd', 'Td'), percentile=99.,
                   cmaps=None, uncertainty_cmap='cividis', show_masked=False):
    """
    Plot dust maps and their uncertainties on WCS axes.

    The top row shows the maps, the bottom row their 1-sigma uncertainties,
    each with a colour bar labelled with its unit. Masked pixels are left
    blank unless ``show_masked``.

    Parameters
    ----------
    maps : `~ndcube.NDCollection` or mapping
        Output of `~astro_dustml.estimate.estimate_dust_maps` (or
        `~astro_dustml.estimate.read_dust_maps`): `~astropy.nddata.NDData`
        with WCS, unit and, optionally, a `~astropy.nddata.StdDevUncertainty`
        and a mask.
    fig : `~matplotlib.figure.Figure`, optional
        Figure to draw in (cleared first); a new one by default.
    names : sequence of str, optional
        Which maps to show, in order.
    percentile : float, optional
        Colour scale range (`~astropy.visualization.PercentileInterval`).
    cmaps : dict, optional
        Colour map per name for the top row.
    uncertainty_cmap : str, optional
        Colour map of the bottom row.
    show_masked : bool, optional
        Also show the values of masked pixels.

    Returns
    -------
    fig : `~matplotlib.figure.Figure`

    Examples
    --------
    >>> import numpy as np
    >>> import astropy.units as u
    >>> from astropy.nddata import NDData, StdDevUncertainty
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.visualization import plot_dust_maps
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> wcs.wcs.cdelt = [-1e-3, 1e-3]
    >>> maps = {name: NDData(np.full((8, 8), value), unit=unit, wcs=wcs,
    ...                      uncertainty=StdDevUncertainty(np.full((8, 8), 0.1)))
    ...         for name, value, unit in [('sLd', 0.5, u.dex), ('sMd', -2.5, u.dex),
    ...                                   ('Td', 22., u.K)]}
    >>> fig = plot_dust_maps(maps)
    >>> len(fig.axes)  # three maps, three uncertainties, six colour bars
    12
    """
    import matplotlib.pyplot as plt

    cmaps = dict(_CMAPS, **(cmaps or {}))
    names = [n for n in names if n in maps]
    if not names:
        raise ValueError('None of the maps to plot is in the collection; it holds '
                         f'{list(maps.keys())}.')
    if fig is None:
        fig = plt.figure(figsize=(4.2 * len(names), 7.2), layout='constrained')
    else:
        fig.clear()
    for i, name in enumerate(names):
        ndd = maps[name]
        mask = None if show_masked else ndd.mask
        unit = ndd.unit.to_string() if ndd.unit is not None else ''
        rows = [(ndd.data, _LABELS.get(name, name), cmaps.get(name, 'viridis'))]
        if ndd.uncertainty is not None:
            rows.append((ndd.uncertainty.array, r'$\sigma$ ' + _LABELS.get(name, name),
                         uncertainty_cmap))
        for row, (array, label, cmap) in enumerate(rows):
            ax = fig.add_subplot(2, len(names), row * len(names) + i + 1,
                                 projection=ndd.wcs)
            image = _masked(array, mask)
            vmin, vmax = _limits(image, percentile)
            im = ax.imshow(image, origin='lower', cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_title(label)
            ax.coords[0].set_axislabel('RA')
            ax.coords[1].set_axislabel('Dec')
            if i > 0:
                ax.coords[1].set_axislabel(' ')
            colorbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            colorbar.set_label(unit)
    return fig
