"""
Spectral energy distributions as tables: one row per pixel or per galaxy.

Every sample the models see -- a pixel of an aligned image stack, the
integrated photometry of a galaxy, a row of the DustPedia aperture photometry
catalogue -- becomes a row of an `~astropy.table.QTable` with one schema:

- ``galaxy`` (str), ``x``, ``y`` (pixel indices; -1 for global rows),
  ``ra``, ``dec`` (deg);
- ``pixel_area`` (sr; the aperture solid angle for a global row),
  ``pixel_scale`` (arcsec; ``sqrt(pixel_area)`` for a global row),
  ``pixel_scale_pc`` (pc, NaN when the distance is unknown), ``distance``
  (Mpc, NaN when unknown);
- per band ``<band>`` and ``<band>_err`` (Jy) and ``<band>_flag``, an int16
  bitmask of `FLAG_MASKED`, `FLAG_MISSING`, `FLAG_NEGATIVE`, `FLAG_LOW_SN`
  and `FLAG_CATALOGUE`.

Nothing is dropped for being negative or faint: such values stay in the table
with their flags, and the consumer decides.
"""

from collections.abc import Mapping

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import InverseVariance, NDData, StdDevUncertainty, VarianceUncertainty
from astropy.table import QTable
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area
from ndcube import NDCollection, NDCube

from ..bands import BANDS, get_band
from ..imaging.io import _parse_image, _usable
from ..imaging.prepare import _parse_galaxy
from .flags import _FLAG_DTYPE, FLAG_MASKED, FLAG_MISSING, _value_flags

__all__ = ['make_pixel_table', 'make_global_row', 'table_to_maps']


def _distance_columns(table, distance):
    """Fill ``distance`` (Mpc) and ``pixel_scale_pc`` from a distance."""
    n = len(table)
    if distance is None:
        dist = np.full(n, np.nan) * u.Mpc
    else:
        dist = u.Quantity(distance, u.Mpc)
        if dist.ndim == 0:
            dist = np.full(n, dist.value) * u.Mpc
        elif dist.shape != (n,):
            raise ValueError(f'distance has shape {dist.shape}; give a scalar '
                             f'or one value per row ({n}).')
    table['distance'] = dist
    scale = table['pixel_scale'].to_value(u.rad) * dist
    table['pixel_scale_pc'] = scale.to(u.pc)


# ------------------------------------------------------------ image helpers

_SB = u.MJy / u.sr


def _members(images):
    """``{band: NDData}`` of a collection without copying NDData members."""
    if isinstance(images, NDData):
        images = [images]
    if isinstance(images, Mapping):
        items = list(images.items())
    elif isinstance(images, (list, tuple)):
        items = [(None, image) for image in images]
    else:
        raise TypeError('Expected an NDCollection or a mapping of band name to image, '
                        f'not {type(images).__name__}; pass e.g. {{"WISE_3.4": image, ...}}.')
    out = {}
    for key, image in items:
        if not isinstance(image, NDData) or image.wcs is None:
            # anything else (path, HDU, (array, wcs)) goes through the one parser
            image = _parse_image(image, band=key)
        band = get_band(key if key is not None else image.meta.get('band', '')).name
        if band in out:
            raise ValueError(f'Two images are in band {band}; pass one image per band.')
        out[band] = image
    if not out:
        raise ValueError('The collection holds no images; pass at least the WISE 3.4 micron '
                         'image.')
    return out


def _as_wcs(value):
    """A WCS from a WCS, a header string (as pixel tables store it) or a header."""
    if isinstance(value, WCS):
        return value
    return WCS(fits.Header.fromstring(value) if isinstance(value, str) else value)


def _celestial(image, band):
    wcs = image.wcs
    if wcs is None:
        raise ValueError(f'The {band} image has no WCS; give every image a celestial '
                         'WCS (align them with astro_dustml.imaging.align_images).')
    if not isinstance(wcs, WCS):
        wcs = getattr(wcs, 'low_level_wcs', wcs)
        if not isinstance(wcs, WCS):
            raise TypeError(f'The {band} image WCS is a {type(wcs).__name__}; an '
                            'astropy.wcs.WCS is needed: give the image WCS(header).')
    if not wcs.has_celestial or np.ndim(image.data) != 2:
        raise ValueError(f'The {band} image must be a 2-D image with a celestial WCS; '
                         'pass 2-D images with RA/Dec axes (one image per band).')
    return wcs.celestial


def _flux_factor(image, band, pixel_area):
    """Factor turning the image's data into Jy per pixel."""
    unit = image.unit
    if unit is None or unit == u.dimensionless_unscaled:
        raise u.UnitsError(
            f'The {band} image has no unit. Give it one (CCDData unit=, a BUNIT header '
            'keyword), e.g. through astro_dustml.imaging.prepare_images.')
    try:
        return (1 * unit * pixel_area).to_value(u.Jy)
    except u.UnitConversionError:
        pass
    for per_pixel in (unit * u.pix, unit):
        try:
            return (1 * per_pixel).to_value(u.Jy)
        except u.UnitConversionError:
            continue
    raise u.UnitsError(f'The {band} image unit {unit} is neither a surface brightness '
                       '(e.g. MJy/sr) nor a flux density per pixel (e.g. Jy/pix); give it '
                       'one of those units.')


def _error_array(image):
    """Standard deviation array in the image unit, or None."""
    unc = image.uncertainty
    if unc is None:
        return None
    if isinstance(unc, StdDevUncertainty):
        array = np.asanyarray(unc.array)
    elif isinstance(unc, VarianceUncertainty):
        array = np.sqrt(unc.array)
    elif isinstance(unc, InverseVariance):
        with np.errstate(divide='ignore'):
            array = 1 / np.sqrt(unc.array)
    else:
        array = np.asanyarray(unc.represent_as(StdDevUncertainty).array)
    unit = unc.unit
    if unit is not None and image.unit is not None and unit != image.unit:
        if isinstance(unc, VarianceUncertainty):
            unit = unit ** 0.5
        elif isinstance(unc, InverseVariance):
            unit = unit ** -0.5
        array = array * (1 * unit).to_value(image.unit)
    return array


def _region_weights(region, wcs, shape, mode):
    """Per-pixel weights (0..1) of a region on a grid."""
    if isinstance(region, np.ndarray) or (hasattr(region, 'shape')
                                          and not hasattr(region, 'to_pixel')):
        weights = np.asanyarray(region)
        if weights.shape != tuple(shape):
            raise ValueError(f'The region mask has shape {weights.shape}, the images '
                             f'{tuple(shape)}; give a mask of the images\' shape.')
        return weights.astype(float) if weights.dtype != bool else weights
    if isinstance(region, Mapping) or hasattr(region, 'galaxy'):
        region = _parse_galaxy(region)[1]
    if hasattr(region, 'to_pixel'):
        region = region.to_pixel(wcs)
    if not hasattr(region, 'to_mask'):
        raise TypeError('region must be a regions sky or pixel region, a galaxy '
                        'mapping or a boolean mask array, not '
                        f'{type(region).__name__}.')
    mask = region.to_mask(mode=mode)
    weights = mask.to_image(tuple(shape))
    if weights is None:  # entirely outside the image
        weights = np.zeros(shape)
    return weights > 0 if mode == 'center' else weights


def _check_aligned(images):
    bands = list(images)
    first = images[bands[0]]
    wcs0 = _celestial(first, bands[0])
    for band in bands[1:]:
        image = images[band]
        wcs = _celestial(image, band)
        if np.shape(image.data) != np.shape(first.data) or not wcs.wcs.compare(
                wcs0.wcs, tolerance=1e-10):
            raise ValueError(
                f'The images are not aligned: {band} has shape {np.shape(image.data)} '
                f'and its own WCS, {bands[0]} has {np.shape(first.data)}. Put them on one '
                'grid first with astro_dustml.imaging.align_images.')
    return wcs0, np.shape(first.data)


def _pixel_area(wcs):
    """Solid angle of a pixel (at the reference point of the projection)."""
    return (proj_plane_pixel_area(wcs) * u.Unit(wcs.wcs.cunit[0] or 'deg') ** 2).to(u.sr)


def _psf_fwhm(collection, images):
    meta = getattr(collection, 'meta', None) or {}
    if meta.get('psf_fwhm') is not None:
        return u.Quantity(meta['psf_fwhm'], u.arcsec)
    fwhms = [u.Quantity(im.meta['psf_fwhm'], u.arcsec) for im in images.values()
             if isinstance(im.meta, Mapping) and im.meta.get('psf_fwhm') is not None]
    return max(fwhms) if fwhms else None


def _galaxy_name_distance(collection, galaxy, distance):
    """Name, D25 ellipse and distance from the galaxy argument, the explicit distance first."""
    name, ellipse, galaxy_distance = _parse_galaxy(galaxy)
    if name is None:
        name = (getattr(collection, 'meta', None) or {}).get('galaxy_name') or 'galaxy'
    return name, ellipse, galaxy_distance if distance is None else distance


def _wanted_bands(images, bands):
    if bands is None:
        return [b for b in BANDS if b in images]
    return [get_band(b).name for b in bands]


def make_pixel_table(collection, *, galaxy=None, region=None, distance=None, bands=None):
    """
    One row per pixel of an aligned image stack: the resolved SED table.

    Parameters
    ----------
    collection : `~ndcube.NDCollection` or mapping
        Aligned images (same shape and WCS), keyed by band, with units (MJy/sr
        after `~astro_dustml.imaging.prepare_images`, or any flux density per
        pixel), optionally ``uncertainty`` and boolean ``mask``.
    galaxy : str or mapping, optional
        The galaxy name, or a mapping with ``name``, ``center``, ``semimajor``
        (D25 radius), ``axis_ratio``, ``position_angle`` and optionally
        ``distance`` (as `~astro_dustml.datasets.MockGalaxy.galaxy`).
    region : region, mapping or array, optional
        Pixels to keep: a `regions` sky or pixel region (pixels whose centre
        is inside), a galaxy mapping (its D25 ellipse) or a boolean array of
        the image shape. Default: the D25 ellipse of ``galaxy`` when it has
        the geometry, else the whole image.
    distance : `~astropy.units.Quantity`, optional
        Distance of the galaxy, for ``pixel_scale_pc``; default the galaxy
        mapping's ``distance``.
    bands : sequence of str, optional
        Bands to tabulate; bands not in ``collection`` get NaN columns flagged
        `FLAG_MISSING`. Default: the bands of ``collection``.

    Returns
    -------
    table : `~astropy.table.QTable`
        One row per pixel inside the region that is usable (unmasked, finite)
        in at least one band, in the schema of this module; fluxes are in Jy
        per pixel. Masked, negative and faint values are kept with their
        flags. ``meta`` holds ``wcs`` (header string), ``shape``,
        ``psf_fwhm`` and ``bands``, for `table_to_maps`.

    Raises
    ------
    ValueError
        If the images are not on one grid, or lack a celestial WCS.
    astropy.units.UnitsError
        If an image has no unit or one that is not a flux.

    Examples
    --------
    >>> import numpy as np
    >>> import astropy.units as u
    >>> from astropy.nddata import CCDData, StdDevUncertainty
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.sed import make_pixel_table
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> wcs.wcs.crval = [150, 2]
    >>> wcs.wcs.cdelt = [-1 / 3600, 1 / 3600]
    >>> image = CCDData(np.ones((3, 4)), unit='MJy/sr', wcs=wcs,
    ...                 uncertainty=StdDevUncertainty(np.full((3, 4), 0.1)))
    >>> table = make_pixel_table({'WISE_3.4': image}, galaxy='TOY')
    >>> len(table), table['WISE_3.4'].unit
    (12, Unit("Jy"))
    >>> table['WISE_3.4'][0]  # 1 MJy/sr over one square arcsecond
    <Quantity 2.35044305e-05 Jy>
    """
    images = _members(collection)
    wcs, shape = _check_aligned(images)
    bands = _wanted_bands(images, bands)
    name, galaxy_ellipse, distance = _galaxy_name_distance(collection, galaxy, distance)
    if region is None:
        region = galaxy_ellipse
    pixel_area = _pixel_area(wcs)
    factors = {b: _flux_factor(images[b], b, pixel_area) for b in bands if b in images}

    # the pixels to keep, decided once; every band is then indexed once
    select = np.zeros(shape, dtype=bool)
    for band in factors:
        select |= _usable(images[band])
    if region is not None:
        select &= _region_weights(region, wcs, shape, 'center')
    index = np.flatnonzero(select)
    del select
    n = index.size
    y, x = np.divmod(index, shape[1])
    ra, dec = wcs.pixel_to_world_values(x, y)
    columns = {'galaxy': np.full(n, name), 'x': x, 'y': y,
               'ra': u.Quantity(ra, u.deg, copy=False),
               'dec': u.Quantity(dec, u.deg, copy=False),
               'pixel_area': np.full(n, pixel_area.value) * u.sr}
    del ra, dec
    scale = np.sqrt(pixel_area).to(u.arcsec)
    columns['pixel_scale'] = np.full(n, scale.value) * u.arcsec
    dist = np.nan * u.Mpc if distance is None else u.Quantity(distance, u.Mpc)
    columns['pixel_scale_pc'] = np.full(n, (scale.to_value(u.rad) * dist).to_value(u.pc)) * u.pc
    columns['distance'] = np.full(n, dist.value) * u.Mpc
    for band in bands:
        if band not in images:
            columns[band] = np.full(n, np.nan) * u.Jy
            columns[f'{band}_err'] = np.full(n, np.nan) * u.Jy
            columns[f'{band}_flag'] = np.full(n, FLAG_MISSING, dtype=_FLAG_DTYPE)
            continue
        image = images[band]
        data = np.asarray(image.data)
        value = np.take(data.reshape(-1), index).astype(float, copy=False)
        value *= factors[band]
        err = _error_array(image)
        if err is None:
            error = np.full(n, np.nan)
        else:
            error = np.take(np.asarray(err).reshape(-1), index).astype(float, copy=False)
            error *= factors[band]
        del err
        flags = _value_flags(value, error)
        if image.mask is not None:
            masked = np.take(np.asarray(image.mask, dtype=bool).reshape(-1), index)
            flags[masked] |= FLAG_MASKED
        columns[band] = u.Quantity(value, u.Jy, copy=False)
        columns[f'{band}_err'] = u.Quantity(error, u.Jy, copy=False)
        columns[f'{band}_flag'] = flags
    table = QTable(columns, copy=False)
    grid = {'wcs': wcs.to_header_string(relax=True), 'shape': tuple(shape),
            'psf_fwhm': _psf_fwhm(collection, images)}
    # 'grids' keeps each galaxy's grid through vstack (its dicts merge by key)
    table.meta.update(grid, bands=bands, grids={name: dict(grid)})
    return table


def make_global_row(collection, region, *, galaxy=None, distance=None, bands=None,
                    mode='exact'):
    """
    The integrated (global) SED of a galaxy, as a one-row table.

    The images need not be aligned: each band is integrated on its own grid.

    Parameters
    ----------
    collection : `~ndcube.NDCollection` or mapping
        Images keyed by band, with units and WCS (see `make_pixel_table`).
    region : region, mapping or array
        The aperture: a `regions` sky region, a galaxy mapping (its D25
        ellipse, see `~astro_dustml.imaging.galaxy_region`), or, for aligned
        images, a pixel region or a boolean/weight array.
    galaxy : str or mapping, optional
        Galaxy name or mapping (see `make_pixel_table`).
    distance : `~astropy.units.Quantity`, optional
        Distance; default the galaxy mapping's ``distance``.
    bands : sequence of str, optional
        Bands to include; those absent from ``collection`` are flagged
        `FLAG_MISSING`.
    mode : {'exact', 'center', 'subpixels'}, optional
        How pixels on the aperture edge count (`regions` mask modes):
        ``'exact'`` weighs them by their overlap, ``'center'`` takes the
        pixels whose centre is inside, as `make_pixel_table` does.

    Returns
    -------
    table : `~astropy.table.QTable`
        One row: ``x = y = -1``, ``ra``/``dec`` of the aperture centre,
        ``pixel_area`` the aperture solid angle (on the first band's grid),
        per band the flux in Jy summed over the unmasked pixels in the
        aperture, its error (the pixel errors added in quadrature: a lower
        limit when the noise is correlated) and flags; `FLAG_MASKED` marks a
        band with masked pixels inside the aperture.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.nddata import CCDData
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.sed import make_global_row
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> wcs.wcs.cdelt = [-1 / 3600, 1 / 3600]
    >>> image = CCDData(np.full((5, 5), 0.5), unit='Jy/pix', wcs=wcs)
    >>> row = make_global_row({'WISE_3.4': image}, np.ones((5, 5), bool), galaxy='TOY')
    >>> row['WISE_3.4']
    <Quantity [12.5] Jy>
    """
    images = _members(collection)
    bands = _wanted_bands(images, bands)
    name, _, distance = _galaxy_name_distance(collection, galaxy, distance)
    if isinstance(region, Mapping) or (hasattr(region, 'galaxy')
                                       and not hasattr(region, 'to_pixel')):
        region = _parse_galaxy(region)[1]
    columns = {'galaxy': [name], 'x': [-1], 'y': [-1]}
    center = getattr(region, 'center', None)
    area = None
    fluxes = {}
    for band in bands:
        if band not in images:
            fluxes[band] = (np.nan, np.nan, FLAG_MISSING)
            continue
        image = images[band]
        wcs = _celestial(image, band)
        shape = np.shape(image.data)
        pixel_area = _pixel_area(wcs)
        factor = _flux_factor(image, band, pixel_area)
        weights = _region_weights(region, wcs, shape, mode).astype(float)
        if area is None:
            area = weights.sum() * pixel_area
            if center is None or not isinstance(center, SkyCoord):
                yy, xx = np.indices(shape)
                total = weights.sum()
                center = wcs.pixel_to_world((weights * xx).sum() / total,
                                            (weights * yy).sum() / total)
        usable = _usable(image)
        inside = weights > 0
        w = np.where(usable, weights, 0.0)
        flux = np.sum(w * np.where(usable, image.data, 0.0)) * factor
        err = _error_array(image)
        error = (np.nan if err is None else
                 np.sqrt(np.sum((w * np.where(usable, err, 0.0)) ** 2)) * factor)
        flag = _FLAG_DTYPE(0)
        if not np.any(usable & inside):
            flux, error, flag = np.nan, np.nan, FLAG_MISSING
        elif np.any(inside & ~usable):
            flag = FLAG_MASKED
        fluxes[band] = (flux, error, flag)
    if area is None:
        raise ValueError(f'None of the requested bands is in the collection; choose bands= '
                         f'among {list(images)}.')
    center = center.icrs if hasattr(center, 'icrs') else center
    columns['ra'] = [center.ra.deg] * u.deg
    columns['dec'] = [center.dec.deg] * u.deg
    columns['pixel_area'] = u.Quantity([area.value], u.sr)
    columns['pixel_scale'] = np.sqrt(columns['pixel_area']).to(u.arcsec)
    table = QTable(columns)
    _distance_columns(table, distance)
    for band in bands:
        flux, error, flag = fluxes[band]
        table[band] = [flux] * u.Jy
        table[f'{band}_err'] = [error] * u.Jy
        table[f'{band}_flag'] = _value_flags(np.array([flux]), np.array([error])) | flag
    table.meta.update({'wcs': None, 'shape': None, 'bands': bands,
                       'psf_fwhm': _psf_fwhm(collection, images)})
    return table


def table_to_maps(table, columns=None, *, galaxy=None, surface_brightness=False):
    """
    Rebuild images from columns of a pixel table.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        A table from `make_pixel_table` (or with its ``meta`` ``wcs`` and
        ``shape`` and its ``x``, ``y`` columns), e.g. after predictions were
        added to it.
    columns : str or sequence of str, optional
        Columns to map; default ``sLd``, ``sMd``, ``Td`` when present, else
        the band columns. A ``<column>_err`` column becomes the map's
        `~astropy.nddata.StdDevUncertainty`.
    galaxy : str, optional
        Which galaxy's rows to map when the table holds several (e.g. after
        `~astropy.table.vstack` of pixel tables; each galaxy's grid is kept
        in ``meta['grids']``).
    surface_brightness : bool, optional
        Give flux-density columns (Jy per pixel) as surface brightness in
        MJy/sr, dividing by ``pixel_area``.

    Returns
    -------
    maps : `~ndcube.NDCollection`
        `~ndcube.NDCube` (`~astropy.nddata.NDData`) maps keyed by column, on the table's WCS and
        shape; pixels without a row are NaN and masked, as are rows whose
        ``<column>_flag`` has `FLAG_MASKED` or `FLAG_MISSING`.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.nddata import CCDData
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.sed import make_pixel_table, table_to_maps
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> wcs.wcs.cdelt = [-1 / 3600, 1 / 3600]
    >>> image = CCDData(np.arange(6.).reshape(2, 3), unit='Jy/pix', wcs=wcs)
    >>> table = make_pixel_table({'WISE_3.4': image})
    >>> maps = table_to_maps(table, 'WISE_3.4')
    >>> maps['WISE_3.4'].data
    array([[0., 1., 2.],
           [3., 4., 5.]])
    """
    if 'galaxy' in table.colnames:
        names = np.unique(np.asarray(table['galaxy']))
        if galaxy is not None:
            table = table[np.asarray(table['galaxy']) == galaxy]
        elif len(names) > 1:
            raise ValueError(f'The table holds several galaxies ({", ".join(names[:5])}); '
                             'pass galaxy= to pick one.')
        else:
            galaxy = names[0] if len(names) else None
    grid = (table.meta.get('grids') or {}).get(galaxy, table.meta)
    if grid.get('wcs') is None or grid.get('shape') is None:
        raise ValueError("The table's meta has no 'wcs' and 'shape': only tables from "
                         'make_pixel_table (not global rows) can be mapped.')
    wcs = _as_wcs(grid['wcs'])
    # a metadata merge (vstack) concatenates tuples: the first two are this grid's
    shape = tuple(int(n) for n in tuple(grid['shape'])[:2])
    psf_fwhm = grid.get('psf_fwhm')
    if columns is None:
        columns = [c for c in ('sLd', 'sMd', 'Td') if c in table.colnames] or list(
            table.meta.get('bands') or [c for c in table.colnames if c in BANDS])
    elif isinstance(columns, str):
        columns = [columns]
    absent = [c for c in columns if c not in table.colnames]
    if absent:
        raise KeyError(f'Columns {absent} are not in the table; choose among '
                       f'{table.colnames}.')
    x = np.asarray(table['x'], dtype=int)
    y = np.asarray(table['y'], dtype=int)
    if np.any((x < 0) | (y < 0) | (x >= shape[1]) | (y >= shape[0])):
        raise ValueError('Some rows have x, y outside the map shape (global rows, x = y = '
                         '-1?); map only rows of a make_pixel_table table.')
    maps = []
    for col in columns:
        values = table[col]
        unit = getattr(values, 'unit', None)
        scale = None
        if surface_brightness and unit is not None and unit.is_equivalent(u.Jy):
            scale = table['pixel_area']
        data = np.full(shape, np.nan)
        mask = np.ones(shape, dtype=bool)
        plain = np.asarray(getattr(values, 'value', values), dtype=float)
        if scale is not None:
            plain = (values / scale).to_value(_SB)
            unit = _SB
        data[y, x] = plain
        mask[y, x] = ~np.isfinite(plain)
        if f'{col}_flag' in table.colnames:
            bad = (np.asarray(table[f'{col}_flag']) & (FLAG_MASKED | FLAG_MISSING)) > 0
            mask[y[bad], x[bad]] = True
        uncertainty = None
        if f'{col}_err' in table.colnames:
            errors = table[f'{col}_err']
            err = np.full(shape, np.nan)
            if scale is not None:
                err[y, x] = (errors / scale).to_value(_SB)
            elif unit is not None and hasattr(errors, 'unit'):
                err[y, x] = errors.to_value(unit)
            else:
                err[y, x] = np.asarray(errors, dtype=float)
            uncertainty = StdDevUncertainty(err, unit=unit)
        # NDCube: the NDData subclass NDCollection can align
        maps.append((col, NDCube(data, uncertainty=uncertainty, mask=mask, wcs=wcs,
                                 unit=unit, meta={'column': col, 'psf_fwhm': psf_fwhm})))
    return NDCollection(maps, aligned_axes='all',
                        meta={'wcs': wcs, 'shape': shape, 'psf_fwhm': psf_fwhm})
