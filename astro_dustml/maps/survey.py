"""
Dust maps for many galaxies: one task per galaxy, on a Dask cluster or in turn.

`estimate_many` runs `~astro_dustml.maps.estimate_dust_maps` once per
galaxy and writes each galaxy's maps (`~astro_dustml.maps.write_dust_maps`)
as soon as they are done. A galaxy that fails is reported in the results table
with its error message; the others go on. With a `distributed.Client` the
galaxies run as Dask futures on its workers (dask and distributed are the
optional ``dask`` extra, imported only then); without one they run here, one
after the other.
"""

import os
import threading
import time
import traceback
import warnings
from collections.abc import Mapping

from astropy.table import Table
from ndcube import NDCollection

from ..imaging.chain import _progress
from .estimate import estimate_dust_maps
from .io import write_dust_maps

__all__ = ['estimate_many']


# warnings.catch_warnings changes process-wide state: galaxies that share a
# process (threaded Dask workers) take turns; worker processes run in parallel
_WARNINGS_LOCK = threading.Lock()


_COLUMNS = ('name', 'status', 'path', 'n_pixels', 'seconds', 'warnings', 'error')


def _specs(galaxies):
    """``[(name, {estimate_dust_maps keywords, 'images': ...})]`` from the accepted forms."""
    if isinstance(galaxies, Mapping):
        items = list(galaxies.items())
    else:
        items = []
        for i, spec in enumerate(galaxies):
            if not isinstance(spec, Mapping) or 'name' not in spec:
                raise TypeError(
                    f'galaxies[{i}] must be a mapping with a "name" and "images" (and '
                    'estimate_dust_maps keywords), or pass a mapping name -> spec.')
            items.append((spec['name'], {k: v for k, v in spec.items() if k != 'name'}))
    names = [str(name) for name, _ in items]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f'Galaxy names must be unique (they name the output files); '
                         f'repeated: {", ".join(dup)}.')
    out = []
    for name, spec in items:
        if not isinstance(spec, Mapping) or 'images' not in spec:
            raise TypeError(f'The spec of galaxy {name!r} must be a mapping with "images" '
                            '(and optionally estimate_dust_maps keywords such as galaxy=, '
                            'distance=, ebv=).')
        if 'progress' in spec:
            raise ValueError(f'Galaxy {name!r}: progress= is set by estimate_many.')
        spec = dict(spec)
        if isinstance(spec['images'], NDCollection):
            # an NDCollection cannot be pickled to a Dask worker; its members can
            spec['images'] = dict(spec['images'].items())
        out.append((str(name), spec))
    return out


def _file_name(name):
    safe = ''.join(c if c.isalnum() or c in '-_.+' else '_' for c in name)
    return f'{safe}_dust_maps.fits'


def _estimate_one(name, spec, path, overwrite):
    """One galaxy, start to written file; never raises (the batch goes on)."""
    start = time.perf_counter()
    row = dict(name=name, status='failed', path='', n_pixels=0, seconds=0.0,
               warnings='', error='')
    try:
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f'{path} exists; pass overwrite=True to replace it.')
        kwargs = dict(spec)
        images = kwargs.pop('images')
        # Warnings (e.g. out-of-domain pixels) are recorded per galaxy, not
        # raised: a survey must not stop for them
        with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            maps = estimate_dust_maps(images, progress=False, **kwargs)
            write_dust_maps(maps, path, overwrite=overwrite)
        first = next(iter(maps.values()))
        row.update(status='ok', path=str(path), n_pixels=int((~first.mask).sum()),
                   warnings=' | '.join(f'{w.category.__name__}: {w.message}'
                                       for w in caught))
    except Exception as exc:  # reported in the table, not fatal to the batch
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f' (at {os.path.basename(last[0].filename)}:{last[0].lineno})' if last else ''
        row['error'] = f'{type(exc).__name__}: {exc}{where}'
    row['seconds'] = time.perf_counter() - start
    return row


def _table(rows, order):
    rows = sorted(rows, key=lambda r: order[r['name']])
    table = Table(rows=[[r[c] for c in _COLUMNS] for r in rows] or None,
                  names=_COLUMNS,
                  dtype=[str, str, str, int, float, str, str])
    table['seconds'].unit = 's'
    return table


def estimate_many(galaxies, *, output_dir, client=None, overwrite=False, progress=True,
                  **kwargs):
    """
    Estimate dust maps of many galaxies, one task per galaxy.

    Parameters
    ----------
    galaxies : mapping or sequence
        ``{name: spec}`` or a sequence of specs with a ``'name'``. A spec is
        a mapping with ``'images'`` (anything `estimate_dust_maps` accepts,
        e.g. a list of FITS paths, which a Dask worker then reads itself)
        and any per-galaxy keyword of `estimate_dust_maps` (``galaxy``,
        ``distance``, ``ebv``, ``stars``, ``bands``...).
    output_dir : str or path-like
        Folder for the maps (``<name>_dust_maps.fits``, read back with
        `~astro_dustml.maps.read_dust_maps`) and the results table
        ``estimate_many.ecsv``; created if needed.
    client : `distributed.Client`, optional
        Run the galaxies as futures on this cluster; default: here, in turn.
        Galaxies on the threads of one worker process take turns (warnings
        are captured per galaxy, which is process-wide state): use worker
        processes (the `distributed.LocalCluster` default) for parallelism.
    overwrite : bool, optional
        Replace existing map files (otherwise that galaxy fails).
    progress : bool, optional
        Show a progress bar over the galaxies.
    **kwargs
        Keywords of `estimate_dust_maps` common to every galaxy (``model``,
        ``resolution``, ``pixel_scale``...); a spec's own keywords win.

    Returns
    -------
    results : `~astropy.table.Table`
        One row per galaxy, in input order: ``name``, ``status`` (``'ok'`` or
        ``'failed'``), ``path``, ``n_pixels`` (unmasked map pixels),
        ``seconds``, ``warnings`` and ``error`` (the exception of a failed
        galaxy). Rewritten to ``output_dir`` each time a galaxy finishes.

    Examples
    --------
    A galaxy without the required WISE 3.4 µm image fails alone:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from astropy.wcs import WCS
    >>> from astro_dustml.maps import estimate_many
    >>> wcs = WCS(naxis=2); wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    >>> out = tempfile.mkdtemp()
    >>> results = estimate_many({'G1': {'images': {'WISE_12': (np.ones((5, 5)), wcs)}}},
    ...                         output_dir=out, progress=False)
    >>> print(results['status'][0], results['error'][0][:27])
    failed ValueError: No WISE 3.4 µm
    >>> sorted(os.listdir(out))
    ['estimate_many.ecsv']
    """
    specs = _specs(galaxies)
    if 'progress' in kwargs:
        raise TypeError('progress= is an option of estimate_many itself, not of a galaxy.')
    os.makedirs(output_dir, exist_ok=True)
    order = {name: i for i, (name, _) in enumerate(specs)}
    jobs = [(name, dict(kwargs, **spec), os.path.join(output_dir, _file_name(name)))
            for name, spec in specs]
    summary = os.path.join(output_dir, 'estimate_many.ecsv')
    rows = []

    def done(row):
        rows.append(row)
        # the table on disk is complete up to now: a crashed batch keeps it
        _table(rows, order).write(summary, overwrite=True)

    with _progress(len(jobs), progress) as bar:
        if client is None:
            for name, spec, path in jobs:
                done(_estimate_one(name, spec, path, overwrite))
                bar.update()
        else:
            from distributed import as_completed  # optional extra, needed only here
            futures = {client.submit(_estimate_one, name, spec, path, overwrite,
                                     key=f'estimate-{name}-{i}', pure=False): name
                       for i, (name, spec, path) in enumerate(jobs)}
            for future in as_completed(futures):
                try:
                    row = future.result()
                except Exception as exc:  # the worker died (e.g. out of memory)
                    row = dict(name=futures[future], status='failed', path='', n_pixels=0,
                               seconds=0.0, warnings='', error=f'{type(exc).__name__}: {exc}')
                done(row)
                bar.update()
    return _table(rows, order)
