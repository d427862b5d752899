"""
Figures of dust maps: the three properties and their uncertainties on sky axes.

`plot_dust_maps` draws a figure fit for a paper: the galaxy ellipse, pixels
outside the galaxy and pixels out of the model's training domain shown
differently (with a legend), cropped to the galaxy, robust colour limits and
an optional context image. `save_dust_maps_figure` saves it with the model's
SHA-256 and the package version in the file's metadata.
"""

import numpy as np
from astropy.nddata import NDData
from astropy.visualization import AsinhStretch, PercentileInterval, make_lupton_rgb

from . import __version__
from .maps.io import model_sha256
from .imaging.prepare import _parse_galaxy

__all__ = ['plot_dust_maps', 'save_dust_maps_figure', 'figure_metadata']

_LABELS = {'sLd': r'$\log_{10}\,L_\mathrm{dust}/M_\star$',
           'sMd': r'$\log_{10}\,M_\mathrm{dust}/M_\star$',
           'Td': r'$T_\mathrm{dust}$'}
_CMAPS = {'sLd': 'magma', 'sMd': 'viridis', 'Td': 'inferno'}

# Classes of masked pixels, drawn as flat colours over the maps: (label, colour)
_OUTSIDE, _OUT_OF_DOMAIN, _MASKED = 1, 2, 3
_CLASSES = {_OUTSIDE: ('outside the galaxy', '#ececec'),
            _OUT_OF_DOMAIN: ('out of the training domain', '#7f7f7f'),
            _MASKED: ('masked input or no prediction', '#2b2b2b')}
_ELLIPSE = {'edgecolor': '#00a0ff', 'facecolor': 'none', 'linewidth': 1.2}


def _limits(array, percentile):
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return None, None
    return PercentileInterval(percentile).get_limits(finite)


def _sigma_limits(array, percentile):
    """From zero: a nearly uniform sigma then looks uniform, not like structure."""
    _, vmax = _limits(array, percentile)
    return (None, None) if vmax is None else (0., vmax)


def _mask_classes(maps, names):
    """Per-pixel class of masked pixels (0 = valid) from the flags or the masks."""
    from .maps.flags import MAP_FLAGS
    first = maps[names[0]]
    masked = np.zeros(first.data.shape, dtype=bool)
    for name in names:
        if maps[name].mask is not None:
            masked |= np.asarray(maps[name].mask, dtype=bool)
    classes = np.where(masked, _MASKED, 0)
    flags = (getattr(maps, 'meta', None) or {}).get('flags')
    if flags is not None:
        flags = np.asarray(flags)
        classes[(flags & MAP_FLAGS['OUT_OF_DOMAIN']) != 0] = _OUT_OF_DOMAIN
        classes[(flags & MAP_FLAGS['OUTSIDE']) != 0] = _OUTSIDE
        classes[flags == 0] = 0
    return classes


def _meta(maps, names):
    meta = getattr(maps, 'meta', None) or {}
    return meta if meta else dict(getattr(maps[names[0]], 'meta', None) or {})


def _region(galaxy):
    """The galaxy's `regions.EllipseSkyRegion`, or None."""
    if galaxy is None or isinstance(galaxy, str):
        return None
    try:
        return _parse_galaxy(galaxy)[1]
    except (TypeError, ValueError):
        # e.g. only a region's type name survived in the metadata
        return None


def _galaxy_name(galaxy):
    if isinstance(galaxy, str):
        return galaxy
    if isinstance(galaxy, dict):
        return galaxy.get('name')
    return None


def _crop_box(region, wcs, classes, shape, margin):
    """(xmin, xmax, ymin, ymax) in pixels: the galaxy with a margin, inside the image."""
    ny, nx = shape
    if region is not None:
        box = region.to_pixel(wcs).bounding_box
        x0, x1, y0, y1 = box.ixmin, box.ixmax, box.iymin, box.iymax
    else:
        y, x = np.nonzero(classes != _OUTSIDE)
        if y.size == 0:
            return -0.5, nx - 0.5, -0.5, ny - 0.5
        x0, x1, y0, y1 = x.min(), x.max() + 1, y.min(), y.max() + 1
    pad = margin * max(x1 - x0, y1 - y0)
    return (max(x0 - pad, 0) - 0.5, min(x1 + pad, nx) - 0.5,
            max(y0 - pad, 0) - 0.5, min(y1 + pad, ny) - 0.5)


def _context_image(context):
    """(image, wcs, label): a grey image, or an RGB image from three on one grid."""
    def one(image):
        if isinstance(image, NDData):
            return np.asarray(image.data, float), image.wcs, (image.meta or {}).get('band')
        if isinstance(image, tuple) and len(image) == 2:
            return np.asarray(image[0], float), image[1], None
        raise TypeError('context= must be an NDData/CCDData with a WCS, an (array, wcs) '
                        f'tuple, or a list of three of them (R, G, B), not '
                        f'{type(image).__name__}.')

    if isinstance(context, (list, tuple)) and len(context) == 3:
        planes = [one(image) for image in context]
        if len({p[0].shape for p in planes}) != 1:
            raise ValueError('The three context images (R, G, B) must share one pixel '
                             'grid; align them first (astro_dustml.imaging.align_images).')
        scaled = []
        for array, _, _ in planes:
            lo, hi = _limits(array, 99.5)
            scaled.append(np.nan_to_num((array - lo) / (hi - lo)))
        rgb = make_lupton_rgb(*scaled, stretch=0.5, Q=8)
        label = ' / '.join(str(p[2] or '?') for p in planes)
        return rgb, planes[0][1], label
    array, wcs, band = one(context)
    if wcs is None:
        raise ValueError('The context image has no WCS: give one to place it on the sky.')
    interval = PercentileInterval(99.5)
    finite = np.isfinite(array)
    lo, hi = interval.get_limits(array[finite]) if finite.any() else (0., 1.)
    stretched = AsinhStretch(0.05)(np.clip((array - lo) / (hi - lo), 0, 1))
    return stretched, wcs, band or 'context'


def _sky_box(box, wcs_from, wcs_to):
    """A pixel box of one grid as a pixel box of another (via its corners on the sky)."""
    x0, x1, y0, y1 = box
    corners = wcs_from.pixel_to_world([x0, x1, x0, x1], [y0, y0, y1, y1])
    x, y = wcs_to.world_to_pixel(corners)
    return np.min(x), np.max(x), np.min(y), np.max(y)


def _decorate(ax, region, wcs, first, narrow):
    ra, dec = ax.coords[0], ax.coords[1]
    ra.set_axislabel('RA')
    # Few, short labels: sexagesimal labels of small fields overlap otherwise
    ra.set_ticks(number=2 if narrow else 3)
    dec.set_ticks(number=4)
    dec.set_axislabel('Dec' if first else '')
    if region is not None:
        ax.add_patch(region.to_pixel(wcs).as_artist(label='galaxy ellipse', **_ELLIPSE))


# Inches: the width of one panel, and what its labels and colour bar add around it
_PANEL, _PAD_X, _PAD_Y, _TITLE, _LEGEND = 2.6, 1.75, 1.05, 0.45, 0.45


def _cut(array, wcs, box):
    """``array`` (2-D, or 2-D by colour) and its WCS cut to the pixel ``box``."""
    ny, nx = np.shape(array)[:2]
    x0, x1 = (int(np.clip(np.round(v + 0.5), 0, nx)) for v in box[:2])
    y0, y1 = (int(np.clip(np.round(v + 0.5), 0, ny)) for v in box[2:])
    if x1 - x0 < 1 or y1 - y0 < 1:  # the crop lies off this image
        return array, wcs
    # Cut, not zoomed with limits: WCSAxes would lay out the labels of the whole array
    return array[y0:y1, x0:x1], wcs[y0:y1, x0:x1]


def _panel_aspect(box):
    """Height / width of the cropped panels, bounded so labels always fit."""
    return float(np.clip((box[3] - box[2]) / (box[1] - box[0]), 0.4, 2.5))


def _figure_size(n_cols, box, context):
    """Figure size (inches) that holds every panel of the crop ``box`` with its labels."""
    height = _PANEL * _panel_aspect(box)
    return (n_cols * (_PANEL + _PAD_X) + (0.4 if context else 0),
            2 * (height + _PAD_Y) + _TITLE + _LEGEND)


def _geometry(maps, names, galaxy, crop, margin):
    """Which maps, their metadata, the galaxy region, the grid, the mask classes and the crop."""
    names = [n for n in names if n in maps]
    if not names:
        raise ValueError('None of the maps to plot is in the collection; it holds '
                         f'{list(maps.keys())}.')
    meta = _meta(maps, names)
    galaxy = meta.get('galaxy') if galaxy is None else galaxy
    region = _region(galaxy)
    first = maps[names[0]]
    wcs, shape = first.wcs, np.shape(first.data)
    classes = _mask_classes(maps, names)
    box = (_crop_box(region, wcs, classes, shape, margin) if crop
           else (-0.5, shape[1] - 0.5, -0.5, shape[0] - 0.5))
    return names, meta, galaxy, region, wcs, classes, box


def plot_dust_maps(maps, *, fig=None, names=('sLd', 'sMd', 'Td'), galaxy=None,
                   context=None, crop=True, margin=0.1, percentile=98., title=None,
                   cmaps=None, uncertainty_cmap='cividis', show_masked=False,
                   show_models=None):
    """
    Plot dust maps and their uncertainties on WCS axes, ready for a paper.

    The top row shows the maps, the bottom row their 1-sigma uncertainties,
    each with a colour bar labelled with its unit. Pixels outside the galaxy,
    pixels out of the model's training domain and other masked pixels
    (``maps.meta['flags']``) are drawn in three flat greys, named in a
    legend with the galaxy ellipse. The title names the galaxy, the model
    and the resolution.

    Parameters
    ----------
    maps : `~ndcube.NDCollection` or mapping
        Output of `~astro_dustml.maps.estimate_dust_maps` (or
        `~astro_dustml.maps.read_dust_maps`): `~astropy.nddata.NDData`
        on one grid with WCS, unit and, optionally, a
        `~astropy.nddata.StdDevUncertainty` and a mask.
    fig : `~matplotlib.figure.Figure`, optional
        Figure to draw in (cleared first); a new one by default.
    names : sequence of str, optional
        Which maps to show, in order.
    galaxy : dict or `regions.EllipseSkyRegion`, optional
        The galaxy ellipse to draw and crop to, in any form
        `~astro_dustml.maps.estimate_dust_maps` accepts; default: the
        one in ``maps.meta['galaxy']``.
    context : `~astropy.nddata.NDData`, ``(array, wcs)`` or list of three, optional
        An image for context in an extra left column (e.g. the WISE 3.4 µm
        image, asinh stretch), or three images on one grid for an RGB view
        (`~astropy.visualization.make_lupton_rgb`).
    crop : bool, optional
        Show only the galaxy (its ellipse, or its unmasked pixels) with a
        ``margin``.
    margin : float, optional
        Margin around the galaxy as a fraction of its size.
    percentile : float, optional
        Colour range of the maps (`~astropy.visualization.PercentileInterval`
        of the valid pixels); the uncertainties run from zero to the upper
        limit, so that small variations of a nearly uniform sigma do not
        fill the colour scale.
    title : str, optional
        Figure title; default: galaxy (its name in the meta, else the
        ``OBJECT`` of the context image's header), model and resolution.
    cmaps : dict, optional
        Colour map per name for the top row.
    uncertainty_cmap : str, optional
        Colour map of the bottom row.
    show_masked : bool, optional
        Also show the values of masked pixels (no grey overlay).
    show_models : bool, optional
        Add a right column with the model that predicted each pixel
        (``maps.meta['model_id']`` and ``maps.meta['band_set_models']``,
        band-set routing), its legend below; default: when more than one
        model predicted pixels.

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
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    cmaps = dict(_CMAPS, **(cmaps or {}))
    names, meta, galaxy, region, wcs, classes, box = _geometry(maps, names, galaxy, crop,
                                                               margin)
    model_id, models = _model_planes(meta, show_models)
    n_cols = len(names) + (context is not None) + (model_id is not None)
    size = _figure_size(n_cols, box, context is not None)
    if fig is None:
        fig = plt.figure(figsize=size, layout='constrained')
    else:
        fig.clear()
        # the layout needs its room: a crop's panels and labels, whatever the figure was
        fig.set_size_inches(size)
        fig.set_layout_engine('constrained')
    narrow = _panel_aspect(box) > 1.3
    classes, panel_wcs = _cut(classes, wcs, box)
    shown = sorted(set(np.unique(classes)) - {0}) if not show_masked else []
    overlay = np.where(classes > 0, classes, np.nan).astype(float)
    overlay_cmap = ListedColormap([_CLASSES[c][1] for c in sorted(_CLASSES)])
    grid = fig.add_gridspec(2, n_cols)

    offset = 0
    if context is not None:
        # over both rows: no empty cell beside the uncertainties
        image, context_wcs, label = _context_image(context)
        image, context_wcs = _cut(image, context_wcs, _sky_box(box, wcs, context_wcs))
        ax = fig.add_subplot(grid[:, 0], projection=context_wcs)
        ax.imshow(image, origin='lower', cmap=None if image.ndim == 3 else 'gray')
        ax.set_title(str(label))
        _decorate(ax, region, context_wcs, True, narrow)
        offset = 1
    for i, name in enumerate(names):
        ndd = maps[name]
        unit = ndd.unit.to_string() if ndd.unit is not None else ''
        rows = [(ndd.data, _LABELS.get(name, name), cmaps.get(name, 'viridis'), _limits)]
        if ndd.uncertainty is not None:
            rows.append((ndd.uncertainty.array, r'$\sigma$ ' + _LABELS.get(name, name),
                         uncertainty_cmap, _sigma_limits))
        for row, (array, label, cmap, limits) in enumerate(rows):
            ax = fig.add_subplot(grid[row, offset + i], projection=panel_wcs)
            image = np.array(_cut(array, wcs, box)[0], dtype=float)
            if not show_masked:
                image[classes > 0] = np.nan
            vmin, vmax = limits(image, percentile)
            im = ax.imshow(image, origin='lower', cmap=cmap, vmin=vmin, vmax=vmax)
            if shown:
                ax.imshow(overlay, origin='lower', cmap=overlay_cmap, vmin=0.5,
                          vmax=len(_CLASSES) + 0.5, interpolation='nearest')
            ax.set_title(label)
            _decorate(ax, region, panel_wcs, i == 0, narrow)
            colorbar = fig.colorbar(im, ax=ax, shrink=0.9)
            colorbar.set_label(unit)

    if model_id is not None:
        _plot_model_ids(fig, n_cols, model_id, models, wcs, region, box, narrow)

    n_galaxy = max(int(np.count_nonzero(classes != _OUTSIDE)), 1)
    handles = [Patch(facecolor=_CLASSES[c][1], edgecolor='0.5',
                     label=_CLASSES[c][0] if c == _OUTSIDE else
                     f'{_CLASSES[c][0]} ({np.count_nonzero(classes == c) / n_galaxy:.0%})')
               for c in shown]
    if region is not None:
        handles.insert(0, Patch(label='galaxy ellipse', **_ELLIPSE))
    if handles:
        fig.legend(handles=handles, ncols=len(handles), frameon=False,
                   loc='outside lower center')
    if title is None:
        title = _default_title(meta, galaxy, context)
    if title:
        fig.suptitle(title)
    return fig


def _model_planes(meta, show_models):
    """``(model_id, models)`` to draw, or ``(None, None)``."""
    model_id, models = meta.get('model_id'), meta.get('band_set_models') or []
    if show_models is None:
        show_models = model_id is not None and len(models) > 1
    if not show_models:
        return None, None
    if model_id is None:
        raise ValueError("show_models=True needs maps.meta['model_id'] (as estimate_dust_maps "
                         'and read_dust_maps give it); these maps have none.')
    return np.asarray(model_id), models


def _plot_model_ids(fig, n_cols, model_id, models, wcs, region, box, narrow):
    """Right column: the model of each pixel, and a legend of the models."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    n = max(len(models), int(model_id.max()) + 1, 1)
    colours = [colormaps['tab10'](i % 10) for i in range(n)]
    model_id, panel_wcs = _cut(model_id, wcs, box)
    ax = fig.add_subplot(2, n_cols, n_cols, projection=panel_wcs)
    ax.imshow(np.where(model_id >= 0, model_id, np.nan).astype(float), origin='lower',
              cmap=ListedColormap(colours), vmin=-0.5, vmax=n - 0.5, interpolation='nearest')
    ax.set_title('model per pixel')
    _decorate(ax, region, panel_wcs, False, narrow)
    legend = fig.add_subplot(2, n_cols, 2 * n_cols)
    legend.set_axis_off()
    handles = [Patch(facecolor=colours[int(m['id'])], edgecolor='0.5',
                     label=f"{m['id']}: {m['name']} ({m['n_pixels']} px, {m['how']})")
               for m in models]
    legend.legend(handles=handles, loc='center', frameon=False, fontsize='small')


def _object_name(context):
    """The OBJECT keyword of the context image's FITS header, if any."""
    image = context[0] if isinstance(context, (list, tuple)) and len(context) == 3 else context
    header = (getattr(image, 'meta', None) or {}).get('header')
    return header.get('OBJECT') if header is not None else None


def _default_title(meta, galaxy, context):
    card = meta.get('model') or {}
    model = meta.get('model_name') or card.get('name')
    parts = [_galaxy_name(galaxy) or _object_name(context) or '']
    if model:
        parts.append(f'model {model}')
    fwhm = meta.get('psf_fwhm')
    if fwhm is not None:
        parts.append(f'resolution {fwhm.to_value("arcsec"):.3g}"')
    return ' — '.join(p for p in parts if p)


def figure_metadata(maps):
    """
    Provenance of a dust-map figure for the metadata of the image file.

    Parameters
    ----------
    maps : `~ndcube.NDCollection` or mapping
        The maps the figure shows (their ``meta`` holds the model card).

    Returns
    -------
    metadata : dict of str
        ``Software``, ``astro_dustml version``, ``model`` and
        ``model SHA-256`` (`~astro_dustml.maps.model_sha256`, when the
        model was saved), for ``savefig(metadata=...)``.

    Examples
    --------
    >>> from astro_dustml.visualization import figure_metadata
    >>> sorted(figure_metadata({}))
    ['Software', 'astro_dustml version']
    """
    names = list(maps.keys())
    meta = _meta(maps, names) if names else dict(getattr(maps, 'meta', None) or {})
    card = meta.get('model') or {}
    out = {'Software': f'astro_dustml {__version__}', 'astro_dustml version': __version__}
    model = meta.get('model_name') or card.get('name')
    if model:
        out['model'] = str(model)
    sha = model_sha256(card)
    if sha:
        out['model SHA-256'] = sha
    return out


def save_dust_maps_figure(maps, path, *, dpi=120, **kwargs):
    """
    Plot dust maps with `plot_dust_maps` and save the figure with its provenance.

    A PNG file gets the `figure_metadata` (package version, model name and
    SHA-256) as text chunks, readable e.g. with ``PIL.Image.open(path).text``.

    Parameters
    ----------
    maps : `~ndcube.NDCollection` or mapping
        The maps to plot.
    path : str or path-like
        Output file; the format follows its extension.
    dpi : float, optional
        Resolution of raster formats.
    **kwargs
        Passed to `plot_dust_maps` (e.g. ``context=``).

    Returns
    -------
    fig : `~matplotlib.figure.Figure`
    """
    from matplotlib.figure import Figure

    # A figure outside pyplot: nothing is left open in the pyplot state
    fig = plot_dust_maps(maps, fig=Figure(), **kwargs)
    metadata = figure_metadata(maps) if str(path).lower().endswith('.png') else None
    fig.savefig(path, dpi=dpi, metadata=metadata)
    return fig
