"""
Training tables from images: many galaxies, several scales, one Parquet file.

`build_training_table` turns a survey -- one entry per galaxy with its UV–MIR
images, distance, D25 ellipse, E(B-V), optional Gaia stars and a *truth
source* -- into one pixel table per scale (Dobbels & Baes 2021, Sect. 2.2),
written galaxy after galaxy to a Parquet file that pandas, Dask or
`read_training_table` read back.  Galaxies are read one at a time, so a
survey never sits in memory at once.

Scales
    `SCALES` holds the scales of the paper: the far-infrared-limited angular
    scales (``36arcsec`` with SPIRE 500, ``25arcsec`` without it, ``18arcsec``
    without SPIRE 350 and 500) and the physical scales ``150pc``, ``400pc``,
    ``1kpc`` and ``3kpc``, each with the best far-infrared set whose resolution
    reaches it at the galaxy's distance.  The pixel size equals the
    resolution (FWHM), as in the paper.  A `Scale` of your own (any FWHM,
    angular or physical) works the same way.

Skip rules (every skip is recorded with its reason)
    - the D25 semi-major axis is smaller than the pixel;
    - at the galaxy's distance a physical scale is finer than the best
      far-infrared resolution (``Scale.min_fwhm``), or than the worst PSF of
      the galaxy's images: the resolution is too coarse for it.

Truth sources
    A truth source is called as ``truth(galaxy, wcs=, shape=, fwhm=, scale=)``
    for each galaxy and scale, and returns a mapping with ``sLd``, ``sMd``
    (dex) and ``Td`` (K) as `~astropy.nddata.NDData` maps (with WCS, and
    optionally a `~astropy.nddata.StdDevUncertainty`) or as Quantity arrays
    on the requested grid.  Maps on another grid are averaged onto it
    (`reproject.reproject_adaptive`).  Built in: `MapTruth` (given maps, e.g.
    a user's own fit or ``MockGalaxy.truth``), and any object with a
    ``truth_maps(wcs, shape, fwhm)`` method (a
    `~astro_dustml.datasets.MockGalaxy`: exact truth at every scale).  A
    far-infrared fit plugs in as a callable of the same signature, using
    ``scale.fir_bands``.  For pcigale per pixel, build the table without
    truth, fit its rows (`astro_dustml.cigale`) and join the results.

Weights and groups
    `pixel_weights` gives every row ``1 / N_rows(galaxy, scale)``: each galaxy
    counts once *at each scale*.  `fit_resolved` and `cross_validate_resolved`
    group by galaxy across scales, so a galaxy never sits in the training and
    the test side of a fold at different scales.
"""

import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.nddata import NDData
from astropy.table import QTable, Table

from .align import _reproject
from .bands import INPUT_BANDS, get_band
from .estimate import _align, _check_reference, _mask_stars, _prepare, _progress
from .exceptions import AstroDustMLWarning
from .io import _parse_collection
from .model import DustModel, group_weights
from .prepare import _parse_galaxy
from .sed import make_global_row, make_pixel_table

__all__ = ['Scale', 'SCALES', 'ANGULAR_SCALES', 'PHYSICAL_SCALES', 'TrainingGalaxy',
           'MapTruth', 'read_galaxy_list', 'build_training_table', 'read_training_table',
           'read_training_summary', 'pixel_weights', 'fit_resolved',
           'cross_validate_resolved', 'evaluate_resolved', 'scale_metrics', 'TARGETS']

TARGETS = ('sLd', 'sMd', 'Td')
"""The standard targets: specific dust luminosity and mass (dex), temperature (K)."""

_TARGET_UNITS = {'sLd': u.dex, 'sMd': u.dex, 'Td': u.K}
_FORMAT = 'astro_dustml pixel table'
_MAX_NAME = 80  # characters of a galaxy name (the Parquet schema records the length)
_SUMMARY_KEY = 'astro_dustml_summary'
_PACS = ('PACS_70', 'PACS_100', 'PACS_160')


@dataclass(frozen=True)
class Scale:
    """
    A scale of the training table: resolution (= pixel size) and far-infrared set.

    Parameters
    ----------
    label : str
        Name of the scale in the ``scale`` column (e.g. ``'18arcsec'``).
    fwhm : `~astropy.units.Quantity`
        Resolution: an angle, or a physical length (turned into an angle with
        each galaxy's distance).  Pixels are this large.
    fir_bands : tuple of str, optional
        Far-infrared bands whose resolution reaches this scale (for a truth
        source that fits them); for a physical scale, the best set reaching
        it at each distance is chosen from `ANGULAR_SCALES`.
    min_fwhm : `~astropy.units.Quantity`, optional
        Finest angular resolution the truth reaches; a physical scale finer
        than this at a galaxy's distance is skipped for that galaxy.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_dustml.training import SCALES
    >>> SCALES['1kpc'].angular_fwhm(10 * u.Mpc).round(2)
    <Quantity 20.63 arcsec>
    >>> SCALES['1kpc'].far_infrared(10 * u.Mpc)
    ('PACS_70', 'PACS_100', 'PACS_160', 'SPIRE_250')
    """

    label: str
    fwhm: u.Quantity
    fir_bands: tuple = ()
    min_fwhm: u.Quantity = None

    @property
    def physical(self):
        """Whether the scale is a physical length."""
        return u.Quantity(self.fwhm).unit.physical_type == 'length'

    def angular_fwhm(self, distance):
        """The resolution (and pixel size) as an angle at ``distance``."""
        fwhm = u.Quantity(self.fwhm)
        if not self.physical:
            return fwhm.to(u.arcsec)
        if distance is None or not np.isfinite(u.Quantity(distance).value):
            raise ValueError(f'Scale {self.label} is physical ({fwhm}); the galaxy needs a '
                             'distance.')
        return (fwhm / u.Quantity(distance)).to(u.arcsec, u.dimensionless_angles())

    def far_infrared(self, distance=None):
        """The far-infrared bands of the best set that reaches the scale."""
        if not self.physical:
            return tuple(self.fir_bands)
        fwhm = self.angular_fwhm(distance)
        usable = [s for s in ANGULAR_SCALES.values() if s.fwhm <= fwhm * (1 + 1e-9)]
        return max((s.fir_bands for s in usable), key=len, default=())


def _scale_quantity(text):
    return u.Quantity(text)


ANGULAR_SCALES = {
    '36arcsec': Scale('36arcsec', 36 * u.arcsec, _PACS + ('SPIRE_250', 'SPIRE_350', 'SPIRE_500'),
                      36 * u.arcsec),
    '25arcsec': Scale('25arcsec', 25 * u.arcsec, _PACS + ('SPIRE_250', 'SPIRE_350'),
                      25 * u.arcsec),
    '18arcsec': Scale('18arcsec', 18 * u.arcsec, _PACS + ('SPIRE_250',), 18 * u.arcsec),
}
"""The far-infrared-limited angular scales of Sect. 2.2 of the paper."""

PHYSICAL_SCALES = {label: Scale(label, _scale_quantity(q), (), 18 * u.arcsec)
                   for label, q in (('150pc', '150 pc'), ('400pc', '400 pc'),
                                    ('1kpc', '1 kpc'), ('3kpc', '3 kpc'))}
"""The physical scales of Sect. 2.2; reachable where they are at least 18 arcsec."""

SCALES = {**ANGULAR_SCALES, **PHYSICAL_SCALES}
"""All scales of the paper by label."""


def _as_scale(spec):
    if isinstance(spec, Scale):
        return spec
    if isinstance(spec, str) and spec in SCALES:
        return SCALES[spec]
    try:
        q = u.Quantity(spec)
    except (TypeError, ValueError):
        q = None
    if q is None or q.unit.physical_type not in ('angle', 'length') or not q.isscalar:
        raise ValueError(f'scale {spec!r} is not a known scale ({", ".join(SCALES)}), a Scale '
                         'or a resolution with a unit (e.g. 12 arcsec or 500 pc).')
    label = f'{q.value:g}{q.unit.to_string().replace(" ", "")}'
    return Scale(label, q)


def _skip_reason(scale, *, semimajor, distance, worst_psf):
    """Why the galaxy cannot be tabulated at ``scale`` (None when it can)."""
    try:
        fwhm = scale.angular_fwhm(distance)
    except ValueError as exc:
        return str(exc)
    if scale.physical and scale.min_fwhm is not None and fwhm < scale.min_fwhm:
        return (f'too far: {scale.label} is {fwhm:.3g} at {u.Quantity(distance):.3g}, finer '
                f'than the best far-infrared resolution ({scale.min_fwhm:.3g})')
    if worst_psf is not None and fwhm < worst_psf * (1 - 1e-3):
        return (f'too far: {scale.label} is {fwhm:.3g}, finer than the worst image PSF '
                f'({worst_psf:.3g})')
    if semimajor is not None and u.Quantity(semimajor) < fwhm:
        return (f'too small: semi-major axis {u.Quantity(semimajor).to(u.arcsec):.3g} is '
                f'smaller than the {fwhm:.3g} pixel')
    return None


# --------------------------------------------------------------- galaxies


@dataclass
class TrainingGalaxy:
    """
    One galaxy of a training survey: how to read it, where it is, its truth.

    Parameters
    ----------
    name : str
        Unique galaxy name (the group of its rows).
    images : collection, sequence of paths, or callable
        The UV–MIR images in any form `astro_dustml.io` accepts (a mapping or
        `~ndcube.NDCollection` keyed by band, or FITS paths), or a callable
        returning them, called when the galaxy is processed.
    distance : `~astropy.units.Quantity`
        Distance.
    center : `~astropy.coordinates.SkyCoord`, optional
        Centre of the D25 ellipse.
    semimajor : `~astropy.units.Quantity`, optional
        D25 semi-major axis.
    axis_ratio : float, optional
        Minor over major axis.
    position_angle : `~astropy.units.Quantity`, optional
        Major axis, east of north.
    ebv : float, optional
        Galactic E(B-V).
    stars : `~astropy.table.Table`, optional
        Gaia ``gaia_source`` table of foreground stars to mask.
    truth : optional
        The truth source (see the module docstring), or a mapping of
        NDData maps (wrapped in `MapTruth`), or None for no targets.
    global_truth : dict, optional
        ``sLd``, ``sMd``, ``Td`` (and ``_err``) Quantities of the whole
        galaxy (e.g. the DustPedia CIGALE catalogue), for a global row.
    bands : sequence of str, optional
        Band of each image when ``images`` is a sequence without
        recognisable headers.
    """

    name: str
    images: object
    distance: u.Quantity
    center: SkyCoord = None
    semimajor: u.Quantity = None
    axis_ratio: float = 1.0
    position_angle: u.Quantity = 0 * u.deg
    ebv: float = None
    stars: Table = None
    truth: object = None
    global_truth: dict = None
    bands: tuple = None

    @property
    def geometry(self):
        """The galaxy mapping `astro_dustml.prepare` understands."""
        out = {'name': self.name, 'distance': u.Quantity(self.distance, u.Mpc)}
        if self.center is not None and self.semimajor is not None:
            out.update(center=self.center, semimajor=u.Quantity(self.semimajor),
                       axis_ratio=self.axis_ratio,
                       position_angle=u.Quantity(self.position_angle, u.deg))
        return out

    def load_images(self):
        """The images as ``{band: CCDData}`` (read now)."""
        images = self.images() if callable(self.images) else self.images
        return _parse_collection(images, bands=self.bands)


def _as_galaxy(item):
    """A `TrainingGalaxy` from a TrainingGalaxy, a MockGalaxy-like object or a dict."""
    if isinstance(item, TrainingGalaxy):
        return item
    if isinstance(item, Mapping):
        return TrainingGalaxy(**item)
    geometry = getattr(item, 'galaxy', None)
    if isinstance(geometry, Mapping) and hasattr(item, 'images'):
        keys = ('center', 'semimajor', 'axis_ratio', 'position_angle')
        return TrainingGalaxy(name=geometry['name'], images=item.images,
                              distance=geometry['distance'],
                              **{k: geometry[k] for k in keys if k in geometry},
                              stars=getattr(item, 'stars', None),
                              truth=item if hasattr(item, 'truth_maps') else None,
                              global_truth=getattr(item, 'global_truth', None))
    raise TypeError('Each galaxy must be a TrainingGalaxy, a mapping of its fields or a '
                    f'MockGalaxy, not {type(item).__name__}.')


def read_galaxy_list(path):
    """
    Read a galaxy list (ECSV or any astropy-readable table) for `build_training_table`.

    Columns: ``name``; ``files`` (the image paths of the galaxy separated by
    spaces, relative to the list's folder); ``distance`` (Mpc unless the
    column has a unit); ``ra``, ``dec`` (deg) and ``semimajor`` (arcsec)
    for the D25 ellipse; optionally ``axis_ratio``, ``position_angle``
    (deg), ``ebv``, ``bands`` (one band per file, space separated),
    ``truth`` (a dust-map FITS file, see
    `~astro_dustml.estimate.read_dust_maps`, read when the galaxy is
    processed), ``gaia`` (a Gaia table file) and the global targets ``sLd``,
    ``sMd``, ``Td`` with ``_err``.

    Parameters
    ----------
    path : str or path-like
        The list.

    Returns
    -------
    galaxies : list of `TrainingGalaxy`
        Descriptions only: nothing is read until a galaxy is processed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from astropy.table import Table
    >>> from astro_dustml.training import read_galaxy_list
    >>> path = pathlib.Path(tempfile.mkdtemp()) / 'galaxies.ecsv'
    >>> t = Table({'name': ['NGC5584'], 'files': ['a_W1.fits b_W2.fits'],
    ...            'distance': [22.5], 'ra': [215.6], 'dec': [-0.39],
    ...            'semimajor': [100.0]})
    >>> t.write(path)
    >>> g = read_galaxy_list(path)[0]
    >>> g.name, g.distance, [p.name for p in g.images]
    ('NGC5584', <Quantity 22.5 Mpc>, ['a_W1.fits', 'b_W2.fits'])
    """
    path = Path(path)
    table = Table.read(path)
    missing = [c for c in ('name', 'files', 'distance') if c not in table.colnames]
    if missing:
        raise ValueError(f'{path} has no column {", ".join(missing)}: a galaxy list needs '
                         'name, files (space-separated image paths) and distance, plus '
                         'ra, dec, semimajor for the D25 ellipse.')
    root = path.parent

    def value(row, name, unit, default=None):
        if name not in table.colnames or np.ma.is_masked(row[name]):
            return default
        col = table[name]
        v = row[name]
        if isinstance(v, str):
            return v if v.strip() else default
        return (v * (col.unit or unit)) if unit is not None else float(v)

    def local(p):
        p = Path(os.path.expanduser(p))
        return p if p.is_absolute() else root / p

    galaxies = []
    for row in table:
        files = [local(p) for p in str(row['files']).split()]
        center = None
        if 'ra' in table.colnames and 'dec' in table.colnames:
            center = SkyCoord(value(row, 'ra', u.deg), value(row, 'dec', u.deg))
        bands = value(row, 'bands', None)
        truth = value(row, 'truth', None)
        gaia = value(row, 'gaia', None)
        global_truth = {}
        for t in TARGETS:
            for col in (t, f'{t}_err'):
                v = value(row, col, _TARGET_UNITS[t])
                if v is not None:
                    global_truth[col] = v
        galaxies.append(TrainingGalaxy(
            name=str(row['name']), images=files,
            distance=value(row, 'distance', u.Mpc).to(u.Mpc),
            center=center, semimajor=value(row, 'semimajor', u.arcsec),
            axis_ratio=value(row, 'axis_ratio', None, 1.0),
            position_angle=value(row, 'position_angle', u.deg, 0 * u.deg),
            ebv=value(row, 'ebv', None),
            stars=None if gaia is None else Table.read(local(gaia)),
            truth=None if truth is None else MapTruth(local(truth)),
            global_truth=global_truth or None,
            bands=None if bands is None else tuple(bands.split())))
    return galaxies


# ------------------------------------------------------------------ truth


class MapTruth:
    """
    Truth source 2: given maps of ``sLd``, ``sMd`` and ``Td``.

    Parameters
    ----------
    maps : mapping, `~ndcube.NDCollection` or path-like
        ``sLd``, ``sMd`` (dex) and ``Td`` (K) as `~astropy.nddata.NDData`
        with WCS (a ``StdDevUncertainty`` gives the ``_err`` columns); or a
        mapping ``{scale label: maps}`` with maps for each scale; or a FITS
        file of `~astro_dustml.estimate.write_dust_maps` (read when needed).

    Notes
    -----
    Maps on another grid than the pixel table are averaged over each output
    pixel (`reproject.reproject_adaptive`), which degrades finer truth to the
    pixel size only approximately (the average of a log quantity); give maps
    per scale, or a source computing them at each resolution, for exact
    truth.

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astropy.nddata import NDData
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.training import MapTruth
    >>> wcs = WCS(naxis=2); wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> maps = {k: NDData(np.full((4, 4), v), unit=unit, wcs=wcs)
    ...         for k, v, unit in [('sLd', 1.0, u.dex), ('sMd', -3.0, u.dex), ('Td', 22.0, u.K)]}
    >>> truth = MapTruth(maps)
    >>> out = truth(None, wcs=wcs, shape=(4, 4), fwhm=None, scale=None)
    >>> float(out['Td'].data[0, 0])
    22.0
    """

    def __init__(self, maps):
        self.maps = maps

    def _all_maps(self):
        if isinstance(self.maps, (str, os.PathLike)):
            from .estimate import read_dust_maps
            return read_dust_maps(self.maps)
        return self.maps

    def __call__(self, galaxy, *, wcs, shape, fwhm, scale):
        maps = self._all_maps()
        label = getattr(scale, 'label', None)
        if label is not None and label in maps and not isinstance(maps[label], NDData):
            maps = maps[label]
        missing = [t for t in TARGETS if t not in maps]
        if missing:
            raise ValueError(f'The truth maps have no {", ".join(missing)} (they have '
                             f'{", ".join(map(str, maps))}); give sLd, sMd and Td maps.')
        return {t: maps[t] for t in TARGETS}


def _truth_source(truth):
    if truth is None or callable(truth) and not hasattr(truth, 'truth_maps'):
        return truth
    if hasattr(truth, 'truth_maps'):
        def mock_truth(galaxy, *, wcs, shape, fwhm, scale):
            return truth.truth_maps(wcs, shape, fwhm)
        return mock_truth
    return MapTruth(truth)


def _on_grid(value, name, wcs, shape):
    """``(values, errors)`` arrays of a truth map on the pixel grid."""
    if isinstance(value, NDData):
        unit = value.unit or _TARGET_UNITS.get(name)
        same = (value.wcs is not None and tuple(np.shape(value.data)) == tuple(shape)
                and value.wcs.celestial.wcs.compare(wcs.celestial.wcs, tolerance=1e-9))
        if not same:
            if value.wcs is None:
                raise ValueError(f'The truth map {name} has no WCS and is not on the pixel '
                                 'grid; give it a celestial WCS.')
            value = _reproject(value, wcs, shape, 'hann', 0.5)
        data = np.array(value.data, dtype=float)
        if value.mask is not None:
            data[np.asarray(value.mask, bool)] = np.nan
        err = (np.full(shape, np.nan) if value.uncertainty is None
               else np.array(value.uncertainty.array, dtype=float))
        target_unit = _TARGET_UNITS.get(name, unit)
        if unit is not None and target_unit is not None and unit != target_unit:
            data = (data * unit).to_value(target_unit)
            err = (err * unit).to_value(target_unit)
        return data, err
    q = u.Quantity(value)
    if q.shape != tuple(shape):
        raise ValueError(f'The truth array {name} has shape {q.shape}, not the pixel grid '
                         f'{tuple(shape)}; return NDData with a WCS instead.')
    unit = _TARGET_UNITS.get(name)
    return (q.to_value(unit) if unit is not None and q.unit != u.one else q.value,
            np.full(shape, np.nan))


# ---------------------------------------------------------------- writing


def _columns(table, bands, scale_label, dtype):
    """Plain numpy columns and their units, in a fixed order."""
    cols, units = {}, {}
    n = len(table)
    cols['galaxy'] = np.asarray(table['galaxy']).astype(str)
    cols['scale'] = np.full(n, scale_label)
    cols['x'] = np.asarray(table['x'], dtype=np.int32)
    cols['y'] = np.asarray(table['y'], dtype=np.int32)
    for name, unit in (('ra', u.deg), ('dec', u.deg)):
        cols[name], units[name] = np.asarray(table[name].to_value(unit), float), unit
    for name, unit in (('pixel_area', u.sr), ('pixel_scale', u.arcsec),
                       ('pixel_scale_pc', u.pc), ('distance', u.Mpc)):
        cols[name] = np.asarray(table[name].to_value(unit), dtype)
        units[name] = unit
    for band in bands:
        cols[band] = np.asarray(table[band].to_value(u.Jy), dtype)
        cols[f'{band}_err'] = np.asarray(table[f'{band}_err'].to_value(u.Jy), dtype)
        cols[f'{band}_flag'] = np.asarray(table[f'{band}_flag'], np.int16)
        units[band] = units[f'{band}_err'] = u.Jy
    for t in TARGETS:
        for name in (t, f'{t}_err'):
            cols[name] = (np.asarray(table[name], dtype) if name in table.colnames
                          else np.full(n, np.nan, dtype))
            units[name] = _TARGET_UNITS[t]
    return cols, units


class _ParquetSink:
    """Parquet written chunk by chunk, readable by astropy, pandas and Dask."""

    def __init__(self, path, meta):
        self.path = Path(path)
        self.meta = meta
        self.writer = None
        self.n_rows = 0

    def write(self, cols, units):
        import pyarrow as pa
        import pyarrow.parquet as pq
        if self.writer is None:
            self.schema = self._schema(pa, cols, units)
            self.writer = pq.ParquetWriter(self.path, self.schema)
        arrays = [pa.array(cols[name], type=self.schema.field(name).type)
                  for name in self.schema.names]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.n_rows += len(cols['galaxy'])

    def _schema(self, pa, cols, units):
        from astropy.table import meta as table_meta
        # astropy's own header (units, table meta) so that QTable.read restores units
        empty = QTable({name: (np.zeros(0, dtype=f'U{_MAX_NAME}')
                               if values.dtype.kind == 'U' else np.zeros(0, values.dtype))
                        for name, values in cols.items()}, meta=self.meta)
        for name, unit in units.items():
            empty[name].unit = unit
        yaml = '\n'.join(table_meta.get_yaml_from_table(Table(empty)))
        metadata = {'table_meta_yaml': yaml}
        fields = []
        for name, values in cols.items():
            if values.dtype.kind == 'U':
                fields.append((name, pa.string()))
                metadata[f'table::len::{name}'] = str(_MAX_NAME)
            else:
                fields.append((name, pa.from_numpy_dtype(values.dtype)))
        return pa.schema(fields, metadata={k.encode(): v.encode() for k, v in metadata.items()})

    def close(self, summary):
        if self.writer is None:
            return False
        self.writer.add_key_value_metadata({_SUMMARY_KEY: json.dumps(summary)})
        self.writer.close()
        return True


def _summary_path(output):
    output = Path(output)
    return output.with_name(output.name.split('.')[0] + '.summary.ecsv')


# --------------------------------------------------------------- building


def _tabulate(galaxy, prepared, region, scale, fwhm, truth, bands):
    """The pixel table of one galaxy at one scale, with its targets."""
    aligned = _align(prepared, resolution=fwhm, pixel_scale=fwhm, distance=None)
    geometry = galaxy.geometry
    table = make_pixel_table(aligned, galaxy=geometry, region=region, bands=bands)
    if len(table) == 0:
        return table
    if truth is not None:
        wcs, shape = aligned.meta['wcs'], tuple(aligned.meta['shape'])
        maps = truth(galaxy, wcs=wcs, shape=shape, fwhm=fwhm, scale=scale)
        y, x = np.asarray(table['y']), np.asarray(table['x'])
        for t in TARGETS:
            values, errors = _on_grid(maps[t], t, wcs, shape)
            table[t] = values[y, x]
            table[f'{t}_err'] = errors[y, x]
    return table


def _global_table(galaxy, prepared, region, truth, bands):
    row = make_global_row(prepared, region, galaxy=galaxy.geometry, bands=bands)
    values = galaxy.global_truth or getattr(truth, 'global_truth', None)
    for t in TARGETS:
        for name in (t, f'{t}_err'):
            v = (values or {}).get(name)
            row[name] = [np.nan if v is None else u.Quantity(v).to_value(_TARGET_UNITS[t])
                         if hasattr(v, 'unit') else float(v)]
    return row


def build_training_table(galaxies, *, scales=('36arcsec', '25arcsec', '18arcsec', '150pc',
                                              '400pc', '1kpc', '3kpc'),
                         truth=None, output, bands=INPUT_BANDS, include_global=False,
                         dtype=np.float32, overwrite=False, progress=True):
    """
    Pixel tables of many galaxies at several scales, written to one Parquet file.

    Parameters
    ----------
    galaxies : iterable
        `TrainingGalaxy` entries, mappings of their fields or
        `~astro_dustml.datasets.MockGalaxy` objects (their own truth maps are
        the truth); a generator is consumed one galaxy at a time.
    scales : sequence, optional
        Scale labels of `SCALES`, `Scale` objects or resolutions (angles or
        lengths, e.g. ``12 * u.arcsec``).  Default: every scale of the paper.
    truth : optional
        Truth source for galaxies without their own (see the module
        docstring); None leaves the targets NaN unless a galaxy has one.
    output : str or path-like
        The Parquet file.  A summary of every (galaxy, scale) -- rows
        written, or why it was skipped or failed -- is written beside it as
        ``<name>.summary.ecsv`` and into the Parquet file's metadata.
    bands : sequence of str, optional
        Band columns of the table (absent bands are NaN, flagged missing).
    include_global : bool, optional
        Also write one global row per galaxy (scale ``'global'``, its
        ``pixel_scale_pc`` the aperture's) with targets from the galaxy's
        ``global_truth`` (or the truth source's ``global_truth``).
    dtype : numpy dtype, optional
        Float type of the flux, error and target columns (``ra``/``dec``
        stay float64).
    overwrite : bool, optional
        Replace an existing output.
    progress : bool, optional
        Show a progress bar over the galaxies.

    Returns
    -------
    summary : `~astropy.table.Table`
        One row per galaxy and scale: ``galaxy``, ``scale``, ``status``
        (``'ok'``, ``'skipped'`` or ``'failed'``), ``n_rows``, ``fwhm``
        (arcsec) and ``reason``; ``meta['output']`` and ``meta['n_rows']``.

    Warns
    -----
    ~astro_dustml.exceptions.AstroDustMLWarning
        When galaxies failed (each failure is in the summary with its error).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import astropy.units as u
    >>> from astro_dustml.datasets import make_mock_galaxy
    >>> from astro_dustml.training import build_training_table, read_training_table
    >>> output = pathlib.Path(tempfile.mkdtemp()) / 'mocks.parquet'
    >>> bands = ['GALEX_NUV', 'SDSS_r', 'WISE_3.4', 'WISE_4.6', 'WISE_12']
    >>> mocks = (make_mock_galaxy(bands=bands, seed=s, fov=1.5 * u.arcmin,
    ...                           semimajor=30 * u.arcsec, name=f'mock{s}')
    ...          for s in (1, 2))
    >>> summary = build_training_table(mocks, scales=[8 * u.arcsec, '36arcsec'],
    ...                                bands=bands, output=output,
    ...                                progress=False)
    >>> summary['status'].tolist()
    ['ok', 'skipped', 'ok', 'skipped']
    >>> print(summary['reason'][1])
    too small: semi-major axis 30 arcsec is smaller than the 36 arcsec pixel
    >>> table = read_training_table(output)
    >>> sorted(set(table['galaxy'].tolist())), table['sMd'].unit
    (['mock1', 'mock2'], Unit("dex"))
    """
    if isinstance(galaxies, (TrainingGalaxy, Mapping, str)) or hasattr(galaxies, 'images'):
        raise TypeError('galaxies must be an iterable of galaxies (TrainingGalaxy, mappings or '
                        'MockGalaxy objects); wrap a single galaxy in a list.')
    output = Path(output)
    summary_path = _summary_path(output)
    for path in (output, summary_path):
        if path.exists() and not overwrite:
            raise FileExistsError(f'{path} exists; pass overwrite=True to replace it.')
        if path.exists():
            path.unlink()
    scales = [_as_scale(s) for s in scales]
    labels = [s.label for s in scales]
    if len(set(labels)) != len(labels) or 'global' in labels:
        raise ValueError(f'scale labels must be unique and not "global"; got {labels}.')
    bands = [get_band(b).name for b in bands]
    default_truth = _truth_source(truth)
    meta = {'format': _FORMAT,
            'scales': {s.label: {'fwhm': str(u.Quantity(s.fwhm)),
                                 'fir_bands': list(s.fir_bands)} for s in scales},
            'bands': bands, 'targets': list(TARGETS)}
    sink = _ParquetSink(output, meta)
    records = []
    seen = set()
    total = len(galaxies) if hasattr(galaxies, '__len__') else None
    bar = _progress(total, progress and total is not None)
    try:
        with bar:
            order = {label: k for k, label in enumerate(['*', *labels, 'global'])}
            for item in galaxies:
                done = []
                _process(item, scales, default_truth, bands, include_global, dtype, sink,
                         done, seen)
                records.extend(sorted(done, key=lambda r: order[r[1]]))
                bar.update()
    finally:
        summary = Table(rows=records, names=('galaxy', 'scale', 'status', 'n_rows', 'fwhm',
                                             'reason'),
                        dtype=(str, str, str, int, float, str)) if records else Table(
            names=('galaxy', 'scale', 'status', 'n_rows', 'fwhm', 'reason'),
            dtype=(str, str, str, int, float, str))
        summary['fwhm'].unit = u.arcsec
        written = sink.close([dict(zip(summary.colnames, (r[0], r[1], r[2], int(r[3]),
                                                          float(r[4]), r[5])))
                              for r in records])
        summary.meta.update(output=str(output) if written else None, n_rows=sink.n_rows)
        summary.write(summary_path, overwrite=True)
    failed = [r for r in records if r[2] == 'failed']
    if failed:
        names = sorted({r[0] for r in failed})
        warnings.warn(f'{len(failed)} galaxy entries or scales failed (e.g. '
                      f'{", ".join(names[:3])}); what failed is left out of {output.name}; '
                      f'see the summary ({summary_path.name}) for the errors.',
                      AstroDustMLWarning)
    if not written:
        warnings.warn(f'No rows were written: no galaxy reached any scale ({summary_path.name} '
                      'says why); no Parquet file was made.', AstroDustMLWarning)
    return summary


def _process(item, scales, default_truth, bands, include_global, dtype, sink, records, seen):
    """Tabulate one galaxy at every scale; record every outcome."""
    name = _entry_name(item)
    try:
        galaxy = _as_galaxy(item)
        name = galaxy.name
        if name in seen:
            raise ValueError(f'galaxy name {name!r} is used twice; every galaxy needs a '
                             'unique name (it is the group of its rows).')
        if len(name) > _MAX_NAME:
            raise ValueError(f'galaxy name {name[:20]!r}... is longer than {_MAX_NAME} '
                             'characters; shorten it.')
        seen.add(name)
        truth = _truth_source(galaxy.truth) if galaxy.truth is not None else default_truth
        distance = u.Quantity(galaxy.distance, u.Mpc)
        # decide the skips before reading any image
        todo = []
        for scale in scales:
            reason = _skip_reason(scale, semimajor=galaxy.semimajor, distance=distance,
                                  worst_psf=None)
            if reason is None:
                todo.append(scale)
            else:
                records.append((name, scale.label, 'skipped', 0, _fwhm_value(scale, distance),
                                reason))
        if not todo and not include_global:
            return
        images = galaxy.load_images()
        _check_reference(images)
        worst = max(u.Quantity(im.meta.get('psf_fwhm', get_band(b).fwhm)).to(u.arcsec)
                    for b, im in images.items())
        _, region, _ = _parse_galaxy(galaxy.geometry)
        prepared = _prepare(images, ebv=galaxy.ebv, region=region)
        del images
        if galaxy.stars is not None:
            prepared = _mask_stars(prepared, galaxy.stars, region=region)
    except Exception as exc:  # recorded, never silently dropped
        records.append((str(name), '*', 'failed', 0, np.nan, _error_text(exc)))
        return
    for scale in todo:
        fwhm = scale.angular_fwhm(distance)
        reason = _skip_reason(scale, semimajor=None, distance=distance, worst_psf=worst)
        if reason is not None:
            records.append((name, scale.label, 'skipped', 0, fwhm.value, reason))
            continue
        try:
            table = _tabulate(galaxy, prepared, region, scale, fwhm, truth, bands)
        except Exception as exc:
            records.append((name, scale.label, 'failed', 0, fwhm.value, _error_text(exc)))
            continue
        if len(table) == 0:
            records.append((name, scale.label, 'skipped', 0, fwhm.value,
                            'no pixel with data inside the galaxy ellipse'))
            continue
        sink.write(*_columns(table, bands, scale.label, dtype))
        records.append((name, scale.label, 'ok', len(table), fwhm.value, ''))
    if include_global:
        try:
            row = _global_table(galaxy, prepared, region, truth, bands)
        except Exception as exc:
            records.append((name, 'global', 'failed', 0, np.nan, _error_text(exc)))
            return
        if not any(np.isfinite(float(row[t][0])) for t in TARGETS):
            records.append((name, 'global', 'skipped', 0, np.nan,
                            'no global truth (global_truth) for the global row'))
            return
        sink.write(*_columns(row, bands, 'global', dtype))
        records.append((name, 'global', 'ok', 1, float(row['pixel_scale'][0].to_value(u.arcsec)),
                        ''))


def _entry_name(item):
    """The name of a galaxy entry, for the summary, before it is parsed."""
    if isinstance(item, Mapping):
        return str(item.get('name'))
    geometry = getattr(item, 'galaxy', None)
    if isinstance(geometry, Mapping):
        return str(geometry.get('name'))
    return str(getattr(item, 'name', None))


def _fwhm_value(scale, distance):
    try:
        return float(scale.angular_fwhm(distance).value)
    except ValueError:
        return np.nan


def _error_text(exc):
    return f'{type(exc).__name__}: {" ".join(str(exc).split())}'


# ---------------------------------------------------------------- reading


def _header(path):
    import pyarrow.parquet as pq
    from astropy.table import meta as table_meta
    schema = pq.read_schema(path)
    md = schema.metadata or {}
    yaml = md.get(b'table_meta_yaml')
    if yaml is None:
        raise ValueError(f'{path} is not a pixel table of build_training_table (no astropy '
                         'header in its Parquet metadata).')
    header = table_meta.get_header_from_yaml(yaml.decode().split('\n'))
    return schema, header


def read_training_table(path, *, columns=None, scales=None, galaxies=None,
                        dtype=np.float32):
    """
    Read a pixel table of `build_training_table`, only the columns and rows asked for.

    Parameters
    ----------
    path : str or path-like
        The Parquet file.
    columns : sequence of str, optional
        Columns to read (``galaxy`` and ``scale`` are always read); default
        all.
    scales, galaxies : sequence of str, optional
        Keep only these scales / galaxies (filtered while reading).
    dtype : numpy dtype, optional
        Float type of the float columns other than ``ra``/``dec``.

    Returns
    -------
    table : `~astropy.table.QTable`
        With the units of the file and its ``meta`` (scales, bands,
        targets).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    schema, header = _header(path)
    units = {c['name']: c.get('unit') for c in header['datatype']}
    names = list(schema.names)
    if columns is not None:
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise KeyError(f'{path} has no column {", ".join(unknown)}; its columns are '
                           f'{", ".join(names[:16])}...')
        names = [n for n in names if n in set(columns) | {'galaxy', 'scale'}]
    filters = []
    if scales is not None:
        filters.append(('scale', 'in', [str(s) for s in scales]))
    if galaxies is not None:
        filters.append(('galaxy', 'in', [str(g) for g in galaxies]))
    data = pq.read_table(path, columns=names, filters=filters or None)
    table = QTable(meta=header.get('meta', {}))
    for name in names:
        # convert one column at a time and let arrow free it: the peak stays near one copy
        column = data[name]
        data = data.drop_columns([name])
        if pa.types.is_string(column.type):
            # through a dictionary: no Python object per row for millions of rows
            encoded = column.combine_chunks().dictionary_encode()
            values = np.asarray(encoded.dictionary.to_pylist(), dtype=str)
            col = values[encoded.indices.to_numpy(zero_copy_only=False)]
        else:
            col = column.to_numpy()
        if col.dtype.kind == 'f' and name not in ('ra', 'dec'):
            col = col.astype(dtype, copy=False)
        unit = units.get(name)
        table[name] = u.Quantity(col, unit, copy=False) if unit else col
    return table


def read_training_summary(path):
    """
    The per-galaxy, per-scale summary of `build_training_table` for a Parquet file.

    Parameters
    ----------
    path : str or path-like
        The Parquet file (its metadata holds the summary).

    Returns
    -------
    summary : `~astropy.table.Table`
        ``galaxy``, ``scale``, ``status``, ``n_rows``, ``fwhm``, ``reason``.
    """
    import pyarrow.parquet as pq
    md = pq.ParquetFile(path).metadata.metadata or {}
    raw = md.get(_SUMMARY_KEY.encode())
    if raw is None:
        raise ValueError(f'{path} has no {_SUMMARY_KEY} metadata: not written by '
                         'build_training_table.')
    rows = json.loads(raw.decode())
    names = ('galaxy', 'scale', 'status', 'n_rows', 'fwhm', 'reason')
    table = Table(rows=[[r[k] for k in names] for r in rows], names=names,
                  dtype=(str, str, str, int, float, str))
    table['fwhm'].unit = u.arcsec
    return table


# ---------------------------------------------------------------- training


def pixel_weights(table, *, galaxy='galaxy', scale='scale'):
    """
    Row weights ``1 / N_rows(galaxy, scale)``: every galaxy counts once at each scale.

    Parameters
    ----------
    table : `~astropy.table.Table`
        With galaxy and scale columns.
    galaxy, scale : str, optional
        Their names.

    Returns
    -------
    weights : `~numpy.ndarray`

    Examples
    --------
    >>> from astropy.table import Table
    >>> from astro_dustml.training import pixel_weights
    >>> t = Table({'galaxy': ['a', 'a', 'a', 'b'], 'scale': ['18', '18', '36', '18']})
    >>> pixel_weights(t)
    array([0.5, 0.5, 1. , 1. ])
    """
    _, g = np.unique(np.asarray(table[galaxy]), return_inverse=True)
    _, s = np.unique(np.asarray(table[scale]), return_inverse=True)
    return group_weights(g.ravel().astype(np.int64) * (s.max(initial=0) + 1) + s.ravel())


def _check_groups(table):
    for col in ('galaxy', 'scale'):
        if col not in table.colnames:
            raise ValueError(f'The table has no {col!r} column: use a table of '
                             'build_training_table (read_training_table).')


def fit_resolved(table, targets=TARGETS, *, model=None):
    """
    Fit a model on a multi-scale pixel table, grouped by galaxy, weighted per scale.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        A table of `read_training_table` (global rows may be among them).
    targets : sequence of str, optional
        Target columns.
    model : `~astro_dustml.model.DustModel`, optional
        Unfitted model; default ``DustModel(include_scale=True)`` on the
        input bands present in the table.

    Returns
    -------
    model : `~astro_dustml.model.DustModel`
        Fitted; its card records the scales.
    """
    _check_groups(table)
    model = _default_model(table) if model is None else model
    model.fit(table, targets, groups=np.asarray(table['galaxy']),
              sample_weight=pixel_weights(table))
    model.card['training']['scales'] = sorted(set(np.asarray(table['scale']).tolist()))
    return model


def _default_model(table):
    bands = [b for b in INPUT_BANDS if b in table.colnames]
    return DustModel(bands=bands, include_scale=True)


def cross_validate_resolved(table, targets=TARGETS, *, model=None, n_splits=4,
                            n_bootstrap=100, random_state=0, keep_models=False):
    """
    Grouped cross-validation on a multi-scale pixel table: overall and per scale.

    Folds are grouped by galaxy across scales (a galaxy is never in the
    training and the test side of a fold, at any scale); training rows are
    weighted ``1 / N_rows(galaxy, scale)``.  The overall metrics weight every
    galaxy once and its scales equally; the per-scale metrics weight every
    galaxy once at that scale.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        A table of `read_training_table`.
    targets : sequence of str, optional
        Target columns.
    model : `~astro_dustml.model.DustModel`, optional
        Unfitted model (default as `fit_resolved`).
    n_splits : int, optional
        Number of folds.
    n_bootstrap : int, optional
        Bootstrap resamplings of the galaxies for the metric uncertainties.
    random_state : int, optional
        Seed of the folds and bootstrap.
    keep_models : bool, optional
        Keep each fold's fitted model (``result.models``), e.g. for
        `astro_dustml.scales.scale_lie_experiment` on its held-out galaxies.

    Returns
    -------
    result : `~astro_dustml.validation.CrossValidationResult`
        ``predictions`` gains a ``scale`` column and ``pixel_scale_pc``;
        ``metrics`` are the overall ones (``scale`` = ``'all'``);
        ``per_scale`` (an extra attribute) is a `~astropy.table.QTable` of
        the metrics of each scale and target.
    """
    from .validation import cross_validate
    _check_groups(table)
    targets = [targets] if isinstance(targets, str) else list(targets)
    model = _default_model(table) if model is None else model
    result = cross_validate(table, targets, groups=np.asarray(table['galaxy']),
                            n_splits=n_splits, model=model,
                            sample_weight=pixel_weights(table), n_bootstrap=n_bootstrap,
                            random_state=random_state, keep_models=keep_models)
    predictions = result.predictions
    predictions['scale'] = np.asarray(table['scale'])
    if 'pixel_scale_pc' in table.colnames:
        predictions['pixel_scale_pc'] = table['pixel_scale_pc']
    result.metrics = scale_metrics(predictions, targets, n_bootstrap=n_bootstrap,
                                   random_state=random_state, per_scale=False)
    result.per_scale = scale_metrics(predictions, targets, n_bootstrap=n_bootstrap,
                                     random_state=random_state)
    return result


def evaluate_resolved(model, table, targets=TARGETS, *, n_bootstrap=100, random_state=0):
    """
    Score a fitted model on held-out pixel rows: overall and per scale.

    Any model with ``predict`` works -- one trained on pixels (`fit_resolved`)
    or on global photometry -- so both can be compared on the same rows.

    Parameters
    ----------
    model : `~astro_dustml.model.DustModel`
        A fitted model (that did not see these galaxies).
    table : `~astropy.table.QTable`
        Pixel rows with the true targets (`read_training_table`).
    targets : sequence of str, optional
        Targets to score (the model must predict them).
    n_bootstrap, random_state : optional
        Bootstrap over galaxies for the metric uncertainties.

    Returns
    -------
    result : `~astro_dustml.validation.CrossValidationResult`
        ``predictions`` (``galaxy``, ``scale``, ``weight`` and per target
        ``<target>_true``, ``<target>``, ``<target>_err``), ``metrics``
        (overall, as in `cross_validate_resolved`) and ``per_scale``.
    """
    from .model import _target_values
    from .validation import CrossValidationResult
    _check_groups(table)
    targets = [targets] if isinstance(targets, str) else list(targets)
    out = model.predict(table, warn=False)
    predictions = QTable({'galaxy': np.asarray(table['galaxy']),
                          'scale': np.asarray(table['scale']),
                          'weight': pixel_weights(table)})
    if 'pixel_scale_pc' in table.colnames:
        predictions['pixel_scale_pc'] = table['pixel_scale_pc']
    for t in targets:
        true, unit = _target_values(table, t)
        predictions[f'{t}_true'] = true * unit
        predictions[t] = out[t].to(unit)
        predictions[f'{t}_err'] = out[f'{t}_err'].to(unit)
    result = CrossValidationResult(
        predictions=predictions,
        metrics=scale_metrics(predictions, targets, per_scale=False,
                              n_bootstrap=n_bootstrap, random_state=random_state))
    result.per_scale = scale_metrics(predictions, targets, n_bootstrap=n_bootstrap,
                                     random_state=random_state)
    return result


_METRIC_NAMES = ['scale', 'target', 'unit', 'n_galaxies', 'n_rows', 'rmse', 'rmse_err', 'r2',
                 'me', 'chi2', 'chi2_err', 'rmse_between', 'rmse_within']


def scale_metrics(predictions, targets=TARGETS, *, per_scale=True, galaxies=None,
                  n_bootstrap=100, random_state=0):
    """
    Metrics of out-of-fold (or held-out) predictions, overall or per scale.

    Parameters
    ----------
    predictions : `~astropy.table.QTable`
        ``galaxy``, ``scale`` and per target ``<target>_true``, ``<target>``
        and ``<target>_err`` (as `cross_validate_resolved` gives).
    targets : sequence of str, optional
        Targets to score.
    per_scale : bool, optional
        One row per scale and target (each galaxy weighted once at each
        scale), or one row per target over all scales (``scale='all'``; each
        galaxy weighted once, its scales equally).
    galaxies : sequence of str, optional
        Score only these galaxies (e.g. those that reach every scale).
    n_bootstrap, random_state : optional
        Bootstrap over galaxies.

    Returns
    -------
    metrics : `~astropy.table.QTable`
    """
    from .validation import regression_metrics
    targets = [targets] if isinstance(targets, str) else list(targets)
    keep = np.ones(len(predictions), bool)
    if galaxies is not None:
        keep = np.isin(np.asarray(predictions['galaxy']), list(galaxies))
    groups = np.asarray(predictions['galaxy'])
    scales = np.asarray(predictions['scale'])
    weights = pixel_weights(predictions)
    if not per_scale:
        # each galaxy once, its scales equally
        _, g = np.unique(groups, return_inverse=True)
        n_scales = np.array([len(set(scales[g == i])) for i in range(g.max() + 1)])
        weights = weights / n_scales[g]
    rows = []
    for label in (sorted(set(scales[keep])) if per_scale else ['all']):
        sel = keep & ((scales == label) if per_scale else True)
        for t in targets:
            unit = getattr(predictions[t], 'unit', None)
            true = np.asarray(getattr(predictions[f'{t}_true'], 'value',
                                      predictions[f'{t}_true']), float)[sel]
            pred = np.asarray(getattr(predictions[t], 'value', predictions[t]), float)[sel]
            sigma = np.asarray(getattr(predictions[f'{t}_err'], 'value',
                                       predictions[f'{t}_err']), float)[sel]
            m = regression_metrics(pred, true, groups=groups[sel], sigma=sigma,
                                   weights=weights[sel], n_bootstrap=n_bootstrap,
                                   random_state=random_state)
            m.update(scale=label, target=t, unit='' if unit is None else unit.to_string())
            rows.append([m[k] for k in _METRIC_NAMES])
    return QTable(rows=rows, names=_METRIC_NAMES) if rows else QTable(names=_METRIC_NAMES)
