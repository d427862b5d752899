"""
Training tables from images: many galaxies, several scales, one Parquet file.

`build_training_table` turns a survey -- one entry per galaxy with its UV–MIR
images, distance, D25 ellipse, E(B-V), optional Gaia stars and a *truth
source* -- into one pixel table per scale (Dobbels & Baes 2021, Sect. 2.2),
written galaxy after galaxy to a Parquet file that pandas, Dask or
`read_training_table` read back.  Galaxies are read one at a time, so a
survey never sits in memory at once.

The galaxies and scales are in ``training.galaxies``, the truth sources in
``training.truth``, fitting on the written table in ``training.fitting``.

Uses `astro_dustml.imaging` (the one-band-at-a-time chain), `astro_dustml.sed`
(pixel rows) and the other ``training`` modules.
"""

import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

from ..bands import INPUT_BANDS, get_band
from ..exceptions import AstroDustMLWarning
from ..imaging.chain import _align, _check_reference, _mask_stars, _prepare, _progress
from ..imaging.prepare import _parse_galaxy
from ..model._integrity import _replacing_file
from ..sed.tables import make_global_row, make_pixel_table
from .galaxies import TrainingGalaxy, _as_galaxy, _as_scale, _skip_reason
from .truth import _TARGET_UNITS, TARGETS, TruthUnavailable, _on_grid, _truth_source

__all__ = ['build_training_table', 'read_training_table', 'read_training_summary']


_FORMAT = 'astro_dustml pixel table'


_MAX_NAME = 80  # characters of a galaxy name (the Parquet schema records the length)


_SUMMARY_KEY = 'astro_dustml_summary'


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
        Replace an existing output -- only a table and summary that
        `build_training_table` wrote; any other file is left alone, with a
        `FileExistsError`. Both are written beside the old ones and swapped
        in at the end, so an interrupted build leaves the old ones intact.
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
    # both outputs are written beside the old ones and swapped in at the end:
    # an interrupted build leaves the old table and summary as they were
    with _replacing_file(output, overwrite=overwrite, is_ours=_is_pixel_table,
                         what='a pixel table of build_training_table') as partial, \
            _replacing_file(summary_path, overwrite=overwrite, is_ours=_is_summary,
                            what='the summary of a build_training_table') as partial_summary:
        summary, records, written = _build(
            galaxies, scales=scales, truth=truth, output=output, partial=partial,
            partial_summary=partial_summary, bands=bands, include_global=include_global,
            dtype=dtype, progress=progress)
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


def _build(galaxies, *, scales, truth, output, partial, partial_summary, bands,
           include_global, dtype, progress):
    """`build_training_table` into the temporary files ``partial`` and ``partial_summary``."""
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
    sink = _ParquetSink(partial, meta)
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
        summary.write(partial_summary, format='ascii.ecsv')
    return summary, records, written


def _is_pixel_table(path):
    """Whether ``path`` is a Parquet pixel table that `build_training_table` wrote."""
    try:
        _, header = _header(path)
    except Exception:  # pyarrow's errors for a file that is not Parquet vary
        return False
    return (header.get('meta') or {}).get('format') == _FORMAT


def _is_summary(path):
    """Whether ``path`` is a summary (ECSV) that `build_training_table` wrote."""
    try:
        table = Table.read(path, format='ascii.ecsv')
    except Exception:  # astropy's errors for a file that is not such ECSV vary
        return False
    return (table.colnames == ['galaxy', 'scale', 'status', 'n_rows', 'fwhm', 'reason']
            and {'output', 'n_rows'} <= set(table.meta))


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
        except TruthUnavailable as exc:
            records.append((name, scale.label, 'skipped', 0, fwhm.value, str(exc)))
            continue
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
