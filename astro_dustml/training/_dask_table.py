"""
Reading a Parquet pixel table for `~astro_dustml.training.fit_resolved_dask`.

The table's files and row-group pieces, the columns the model needs, each
piece read as a pandas frame and as a `~astropy.table.QTable` with the
file's units (the model's own features are computed from it), and the
per-piece summaries (rows per galaxy and scale, feature ranges) the client
merges before fitting.

Uses `astro_dustml.bands` and `astro_dustml.model`.
"""

import glob
import os
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import QTable

from ..bands import REFERENCE_BAND
from ..model._groups import _target_values


def _parquet_files(source):
    """The Parquet files of a path, folder, glob pattern or list of them."""
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    paths = []
    for item in items:
        text = str(item)
        if any(c in text for c in '*?['):
            paths.extend(sorted(glob.glob(text)))
        elif Path(text).is_dir():
            paths.extend(sorted(str(p) for p in Path(text).glob('*.parquet')))
        elif Path(text).exists():
            paths.append(text)
        else:
            raise FileNotFoundError(f'{text} does not exist; give a Parquet file of '
                                    'build_training_table, a folder or a glob pattern.')
    if not paths:
        raise FileNotFoundError(f'no Parquet file matches {source!r}.')
    return paths


def _check_columns(names, targets, path):
    for col in ('galaxy', 'scale'):
        if col not in names:
            raise ValueError(f'{path} has no {col!r} column: use a table of '
                             'build_training_table.')
    missing = [t for t in targets if t not in names]
    if missing:
        raise ValueError(f'target {", ".join(map(repr, missing))} is not a column of {path}; '
                         f'add it or choose targets among its columns.')


def _needed_columns(model, names, targets):
    bands = model._band_names()
    wanted = ['galaxy', 'scale', 'pixel_area', 'pixel_scale_pc', *targets]
    for band in bands:
        wanted += [band, f'{band}_flag']
        if model.include_snr or model.min_snr is not None:
            wanted.append(f'{band}_err')
    return [n for n in dict.fromkeys(wanted) if n in names]


def _pieces(paths, partition_rows):
    """``(path, row groups)`` of about ``partition_rows`` rows each, from the metadata."""
    import pyarrow.parquet as pq
    if (isinstance(partition_rows, bool) or not isinstance(partition_rows, int)
            or partition_rows < 1):
        raise ValueError(f'partition_rows must be a positive integer, got {partition_rows!r}.')
    pieces = []
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        group, rows = [], 0
        for i in range(meta.num_row_groups):
            group.append(i)
            rows += meta.row_group(i).num_rows
            if rows >= partition_rows:
                pieces.append((path, group))
                group, rows = [], 0
        if group:
            pieces.append((path, group))
    return pieces


def _read_piece(piece, columns, scales):
    """One partition: these row groups of one file, these columns, these scales."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    path, row_groups = piece
    data = pq.ParquetFile(path).read_row_groups(row_groups, columns=columns)
    if scales is not None:
        data = data.filter(pc.is_in(data['scale'], value_set=_arrow_array(scales)))
    return data


def _arrow_array(values):
    import pyarrow as pa
    return pa.array([str(v) for v in values])


def _as_table(data, units):
    """A partition as the QTable `read_training_table` would give (float32, units)."""
    table = QTable()
    for name in data.column_names:
        values = data[name].to_numpy()
        if name in ('galaxy', 'scale'):
            table[name] = np.asarray(values, dtype=str)
            continue
        if values.dtype.kind == 'f':
            values = values.astype(np.float32, copy=False)
        unit = units.get(name)
        table[name] = u.Quantity(values, unit, copy=False) if unit else values
    return table


def _features(model, table):
    X, names, valid = model._features(table)
    return X, names, valid, model._usable(X, valid, model._band_names())


# ------------------------------------------------------------------- pass 1


def _summarise(data, model, units, targets):
    """Counts, ranges and coverage of one partition."""
    table = _as_table(data, units)
    X, names, valid, usable = _features(model, table)
    galaxy = np.asarray(table['galaxy'])
    keys = np.char.add(np.char.add(galaxy, '\x1f'), np.asarray(table['scale']))
    uniq, n = np.unique(keys, return_counts=True)
    Xu = X[usable]
    with np.errstate(invalid='ignore'):
        finite = np.isfinite(Xu)
        lo = np.where(finite, Xu, np.inf).min(axis=0, initial=np.inf)
        hi = np.where(finite, Xu, -np.inf).max(axis=0, initial=-np.inf)
    out = {'counts': {tuple(k.split('\x1f')): int(c) for k, c in zip(uniq, n)},
           'features': names, 'n_usable': int(usable.sum()),
           'valid': valid[usable].sum(axis=0), 'lo': lo, 'hi': hi,
           'usable_galaxies': set(galaxy[usable].tolist()), 'targets': {}, 'units': {}}
    for target in targets:
        y, unit = _target_values(table, target)
        ok = usable & np.isfinite(y)
        g, c = np.unique(galaxy[ok], return_counts=True)
        out['units'][target] = unit
        out['targets'][target] = {
            'n_rows': int(ok.sum()), 'galaxy_rows': dict(zip(g.tolist(), c.tolist())),
            'min': float(y[ok].min(initial=np.inf)), 'max': float(y[ok].max(initial=-np.inf))}
    return out


def _merge_summaries(parts, targets):
    total = {'counts': {}, 'n_usable': 0, 'usable_galaxies': set(), 'scales': set(),
             'units': parts[0]['units'], 'features': parts[0]['features'],
             'valid': 0, 'lo': np.inf, 'hi': -np.inf,
             'targets': {t: {'n_rows': 0, 'galaxy_rows': {}, 'min': np.inf, 'max': -np.inf}
                         for t in targets}}
    for part in parts:
        for key, n in part['counts'].items():
            total['counts'][key] = total['counts'].get(key, 0) + n
            total['scales'].add(key[1])
        total['n_usable'] += part['n_usable']
        total['usable_galaxies'] |= part['usable_galaxies']
        total['valid'] = total['valid'] + part['valid']
        total['lo'] = np.minimum(total['lo'], part['lo'])
        total['hi'] = np.maximum(total['hi'], part['hi'])
        for t in targets:
            mine, theirs = total['targets'][t], part['targets'][t]
            mine['n_rows'] += theirs['n_rows']
            for g, n in theirs['galaxy_rows'].items():
                mine['galaxy_rows'][g] = mine['galaxy_rows'].get(g, 0) + n
            mine['min'] = min(mine['min'], theirs['min'])
            mine['max'] = max(mine['max'], theirs['max'])
    total['galaxies'] = {g for g, _ in total['counts']}
    # as the in-memory nanmin/nanmax: NaN where no usable row has the feature
    total['feature_min'] = np.where(np.isfinite(total['lo']), total['lo'], np.nan)
    total['feature_max'] = np.where(np.isfinite(total['hi']), total['hi'], np.nan)
    return total


def _check_summary(model, summary, targets):
    need = 2 * model.n_inner_splits
    if summary['n_usable'] < need:
        raise ValueError(
            f'only {summary["n_usable"]} training rows have {REFERENCE_BAND} and at least '
            f'{model.min_bands} bands; a model needs at least {need}: add rows or lower '
            'min_bands.')
    for target in targets:
        info = summary['targets'][target]
        if len(info['galaxy_rows']) < max(model.n_inner_splits, 2):
            raise ValueError(
                f'too few galaxies with a finite {target} to fit it ({len(info["galaxy_rows"])}'
                f'; at least {max(model.n_inner_splits, 2)} needed); add galaxies with that '
                'target, lower n_inner_splits or leave the target out.')
        if info['max'] == info['min']:
            raise ValueError(
                f'target {target!r} is constant ({info["min"]:g} on all {info["n_rows"]} '
                'usable training rows): there is nothing to learn; check the column or leave '
                'the target out.')
