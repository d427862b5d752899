"""
How the accuracy depends on the scale: the analyses of Dobbels & Baes (2021).

All functions take the out-of-fold (or held-out) predictions of a
multi-scale pixel table, as `astro_dustml.training.cross_validate_resolved`
gives them (``galaxy``, ``scale`` and per target ``<target>_true``,
``<target>``, ``<target>_err``), and return `~astropy.table.QTable` objects;
the ``plot_*`` functions draw them on a new `~matplotlib.figure.Figure`.

- `rmse_per_scale`: RMSE at each scale on the galaxies that reach every
  scale compared (Sect. 3.2), so that the scales are compared on one sample;
- `scatter_decomposition`: between- versus within-galaxy scatter of the
  errors and of the true values (Sect. 3.3);
- `scale_lie_experiment`: what the model predicts when it is told a wrong
  pixel scale (Sect. 4.1, Fig. 8);
- `global_from_pixels` and `compare_global`: global dust masses,
  luminosities and temperatures summed from the pixel predictions, against a
  global catalogue (Sect. 3.3).
"""

import astropy.units as u
import numpy as np
from astropy.nddata import NDData
from astropy.table import QTable

from ..sed.dust_emission import mass_weighted_temperature
from .fitting import pixel_weights, scale_metrics
from .truth import TARGETS
from .validation import _new_axes

__all__ = ['shared_galaxies', 'rmse_per_scale', 'scatter_decomposition', 'scale_lie_experiment',
           'global_from_pixels', 'compare_global', 'plot_rmse_per_scale', 'plot_scale_lie']


def _scales_in(table, scales):
    present = list(dict.fromkeys(np.asarray(table['scale']).tolist()))
    if scales is None:
        return [s for s in present if s != 'global']
    unknown = [s for s in scales if s not in present]
    if unknown:
        raise ValueError(f'scales {unknown} are not in the table (it has {present}).')
    return list(scales)


def shared_galaxies(table, scales=None):
    """
    The galaxies that have rows at every one of the scales.

    Parameters
    ----------
    table : `~astropy.table.Table`
        With ``galaxy`` and ``scale`` columns.
    scales : sequence of str, optional
        Scales to require (default: every scale in the table but ``global``).

    Returns
    -------
    galaxies : list of str

    Examples
    --------
    >>> from astropy.table import Table
    >>> from astro_dustml.training import shared_galaxies
    >>> t = Table({'galaxy': ['a', 'a', 'b'], 'scale': ['18arcsec', '1kpc', '18arcsec']})
    >>> shared_galaxies(t)
    ['a']
    """
    scales = _scales_in(table, scales)
    galaxy, scale = np.asarray(table['galaxy']), np.asarray(table['scale'])
    sets = [set(galaxy[scale == s].tolist()) for s in scales]
    return sorted(set.intersection(*sets)) if sets else []


def rmse_per_scale(predictions, targets=TARGETS, *, scales=None, shared=True,
                   n_bootstrap=100, random_state=0):
    """
    Accuracy at each scale, on the galaxies that reach all of them (Sect. 3.2).

    Parameters
    ----------
    predictions : `~astropy.table.QTable`
        Out-of-fold predictions (see the module docstring).
    targets : sequence of str, optional
        Targets to score.
    scales : sequence of str, optional
        Scales to compare (default: all but ``global``).
    shared : bool, optional
        Score only the galaxies present at every compared scale (the paper's
        choice); False scores every galaxy at each scale.
    n_bootstrap, random_state : optional
        Bootstrap over galaxies for the uncertainties.

    Returns
    -------
    table : `~astropy.table.QTable`
        One row per scale and target (`astro_dustml.training.scale_metrics`
        columns); ``meta['galaxies']`` lists the galaxies scored.
    """
    scales = _scales_in(predictions, scales)
    galaxies = shared_galaxies(predictions, scales) if shared else None
    if shared and not galaxies:
        raise ValueError(f'no galaxy reaches all of the scales {scales}; compare fewer '
                         'scales or pass shared=False.')
    keep = np.isin(np.asarray(predictions['scale']), scales)
    table = scale_metrics(predictions[keep], targets, galaxies=galaxies,
                          n_bootstrap=n_bootstrap, random_state=random_state)
    order = {s: k for k, s in enumerate(scales)}
    table = table[np.argsort([order[s] for s in table['scale']], kind='stable')]
    table.meta['galaxies'] = galaxies if galaxies is not None else sorted(
        set(np.asarray(predictions['galaxy'][keep]).tolist()))
    return table


def _sample_map(image, table):
    """Values (Msun) of a stellar-mass map at the table's ``x``, ``y`` pixels."""
    missing = [c for c in ('x', 'y') if c not in table.colnames]
    if missing:
        raise ValueError('A stellar-mass map needs the x and y pixel columns of the table '
                         f'(make_pixel_table writes them); {" and ".join(missing)} missing.')
    unit = u.Unit(image.unit or u.one)
    if not unit.is_equivalent(u.Msun):
        raise u.UnitsError(f'The stellar-mass map is in {unit}; give solar masses per pixel.')
    data = np.array(image.data, dtype=float) * unit.to(u.Msun)
    if image.mask is not None:
        data[np.asarray(image.mask, dtype=bool)] = np.nan
    y, x = np.asarray(table['y'], int), np.asarray(table['x'], int)
    if len(y) and (y.max() >= data.shape[0] or x.max() >= data.shape[1]
                   or min(y.min(), x.min()) < 0):
        raise ValueError(f'The table has pixels outside the stellar-mass map {data.shape}: '
                         'give the map of the grid the table was made on.')
    return data[y, x] * u.Msun


def _maps_as_rows(maps, predictions, stellar_mass, targets):
    """``(table, predictions, stellar_mass)`` of the pixels of estimate_dust_maps' maps."""
    if predictions is not None:
        raise TypeError('With maps, leave predictions out: the maps are the predictions.')
    names = [t for t in targets if t in maps]
    if not names:
        raise ValueError(f'The maps hold none of {", ".join(targets)}.')
    meta = getattr(maps, 'meta', None) or {}
    if not isinstance(stellar_mass, NDData):
        stellar_mass = meta.get('stellar_mass')
        if stellar_mass is None:
            raise ValueError("The maps carry no meta['stellar_mass'] (estimate_dust_maps "
                             'makes it when given a distance=); give stellar_mass= as a map '
                             'on their grid.')
    good = np.ones(np.shape(maps[names[0]].data), bool)
    for name in names:
        good &= np.isfinite(np.asarray(maps[name].data, float))
        if maps[name].mask is not None:
            good &= ~np.asarray(maps[name].mask, dtype=bool)
    y, x = np.nonzero(good)
    galaxy = meta.get('galaxy')
    galaxy = galaxy.get('name') if isinstance(galaxy, dict) else galaxy
    fwhm = meta.get('psf_fwhm')
    scale = 'maps' if fwhm is None else f'{u.Quantity(fwhm, u.arcsec).value:g}arcsec'
    table = QTable({'galaxy': [str(galaxy or 'galaxy')] * len(y), 'scale': [scale] * len(y),
                    'x': x, 'y': y})
    predictions = QTable({name: np.asarray(maps[name].data, float)[y, x]
                          * u.Unit(maps[name].unit or u.one) for name in names})
    return table, predictions, stellar_mass


def _plain(column):
    return np.asarray(getattr(column, 'value', column), dtype=float)


def scatter_decomposition(predictions, targets=TARGETS, *, scales=None):
    """
    Between- versus within-galaxy scatter of the errors and of the truth (Sect. 3.3).

    Each galaxy is weighted once at each scale.  ``rmse**2`` splits into
    ``between**2`` (the error of the galaxy-averaged values) and
    ``within**2`` (the error of the deviations from the galaxy averages);
    the true values split the same way into ``true_between`` (scatter of
    the galaxy means) and ``true_within`` (scatter inside the galaxies), so
    ``within / true_within`` says how much of the resolved structure the
    model misses.

    Parameters
    ----------
    predictions : `~astropy.table.QTable`
        Out-of-fold predictions.
    targets : sequence of str, optional
        Targets.
    scales : sequence of str, optional
        Scales (default: all but ``global``).

    Returns
    -------
    table : `~astropy.table.QTable`
        ``scale``, ``target``, ``rmse``, ``rmse_between``, ``rmse_within``,
        ``true_between``, ``true_within`` and ``n_galaxies``.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.table import QTable
    >>> from astro_dustml.training import scatter_decomposition
    >>> p = QTable({'galaxy': ['a', 'a', 'b', 'b'], 'scale': ['18arcsec'] * 4,
    ...             'Td_true': [20., 22., 30., 32.], 'Td': [21., 21., 31., 33.],
    ...             'Td_err': [1., 1., 1., 1.]})
    >>> row = scatter_decomposition(p, ['Td'])[0]
    >>> [round(float(row[c]), 3) for c in ('true_between', 'true_within', 'rmse_between')]
    [5.0, 1.0, 0.707]
    """
    scales = _scales_in(predictions, scales)
    rows = []
    for s in scales:
        sel = np.asarray(predictions['scale']) == s
        sub = predictions[sel]
        w = pixel_weights(sub)
        _, g = np.unique(np.asarray(sub['galaxy']), return_inverse=True)
        g = g.ravel()
        for t in targets:
            true, pred = _plain(sub[f'{t}_true']), _plain(sub[t])
            ok = np.isfinite(true) & np.isfinite(pred)
            if not ok.any():
                continue
            wk, gk, tk, pk = w[ok], g[ok], true[ok], pred[ok]
            wg = np.bincount(gk, wk)
            used = wg > 0
            mean_t = np.bincount(gk, wk * tk)[used] / wg[used]
            mean_p = np.bincount(gk, wk * pk)[used] / wg[used]
            index = np.cumsum(used) - 1
            dev_t = tk - mean_t[index[gk]]
            dev_p = pk - mean_p[index[gk]]
            wgu = wg[used]
            grand = np.sum(wgu * mean_t) / wgu.sum()
            rows.append([s, t, np.sqrt(np.sum(wk * (pk - tk) ** 2) / wk.sum()),
                         np.sqrt(np.sum(wgu * (mean_p - mean_t) ** 2) / wgu.sum()),
                         np.sqrt(np.sum(wk * (dev_p - dev_t) ** 2) / wk.sum()),
                         np.sqrt(np.sum(wgu * (mean_t - grand) ** 2) / wgu.sum()),
                         np.sqrt(np.sum(wk * dev_t ** 2) / wk.sum()), int(used.sum())])
    names = ['scale', 'target', 'rmse', 'rmse_between', 'rmse_within', 'true_between',
             'true_within', 'n_galaxies']
    return QTable(rows=rows, names=names) if rows else QTable(names=names)


def scale_lie_experiment(model, table, targets=None, *, factors=(0.25, 0.5, 1, 2, 4),
                         scales=None):
    """
    Predict with a wrong pixel scale: how much the scale feature matters (Fig. 8).

    Every row's ``pixel_scale_pc`` is multiplied by each factor and the
    model (trained with the log pixel scale as a feature) predicts again;
    the shift from the honest prediction and the RMSE against the truth are
    weighted ``1 / N_rows(galaxy, scale)``.

    Parameters
    ----------
    model : `~astro_dustml.model.DustModel`
        A fitted model with ``include_scale=True``; for an honest experiment,
        one that did not see the galaxies of ``table``.
    table : `~astropy.table.QTable`
        Pixel table (with ``galaxy``, ``scale``, ``pixel_scale_pc`` and the
        targets).
    targets : sequence of str, optional
        Targets (default: the model's).
    factors : sequence of float, optional
        Factors of the told scale over the true one.
    scales : sequence of str, optional
        Analyse each of these scales separately (default: all rows together,
        ``scale='all'``).

    Returns
    -------
    table : `~astropy.table.QTable`
        ``scale``, ``factor``, ``target``, ``shift`` (weighted mean of the
        prediction minus the honest one), ``rmse`` (against the truth, NaN
        without it).
    """
    if 'log_pixel_scale_pc' not in list(getattr(model, 'features_', [])):
        raise ValueError('The model has no pixel-scale feature (include_scale=False): telling '
                         'it another scale changes nothing. Train with include_scale=True.')
    targets = list(model.targets_) if targets is None else list(targets)
    groups = [('all', np.ones(len(table), bool))] if scales is None else [
        (s, np.asarray(table['scale']) == s) for s in _scales_in(table, scales)]
    rows = []
    for label, sel in groups:
        sub = table[sel]
        w = pixel_weights(sub)
        honest = model.predict(sub, warn=False)
        for factor in factors:
            told = sub.copy(copy_data=False)
            told['pixel_scale_pc'] = sub['pixel_scale_pc'] * factor
            pred = model.predict(told, warn=False)
            for t in targets:
                p, h = _plain(pred[t]), _plain(honest[t])
                ok = np.isfinite(p) & np.isfinite(h)
                shift = np.sum(w[ok] * (p - h)[ok]) / np.sum(w[ok])
                rmse = np.nan
                if t in sub.colnames:
                    true = _plain(sub[t])
                    good = ok & np.isfinite(true)
                    if good.any():
                        rmse = np.sqrt(np.sum(w[good] * (p - true)[good] ** 2)
                                       / np.sum(w[good]))
                rows.append([label, float(factor), t, shift, rmse])
    return QTable(rows=rows, names=['scale', 'factor', 'target', 'shift', 'rmse'])


def global_from_pixels(table, predictions=None, *, stellar_mass='stellar_mass',
                       targets=TARGETS):
    """
    Global dust properties of each galaxy, summed from its pixels.

    The extensive quantities add up: ``Mdust = sum(10**sMd * Mstar)`` and
    ``Ldust = sum(10**sLd * Mstar)`` over the pixels of a galaxy at a scale,
    with ``Mstar`` the stellar mass of each pixel; the global temperature is
    that of the dust-mass weighted mean radiation field,
    ``(sum(Mdust_i * Td_i**5.79) / sum(Mdust_i))**(1 / 5.79)``
    (`~astro_dustml.sed.mass_weighted_temperature`, the THEMIS
    aggregation the mocks and the constrained maps use too).  The
    global ``sMd`` and ``sLd`` are then ``log10(Mdust / sum(Mstar))``.
    Pixels without a finite prediction or stellar mass are left out (their
    number is in ``n_missing``).

    Parameters
    ----------
    table : `~astropy.table.QTable` or `~ndcube.NDCollection`
        Pixel table with ``galaxy`` and ``scale``; or the maps of
        `~astro_dustml.maps.estimate_dust_maps` (then without
        ``predictions``: the pixels where every map has a value, with the
        stellar mass of ``maps.meta['stellar_mass']``, one row named after
        the galaxy at the maps' resolution).
    predictions : `~astropy.table.QTable`, optional
        Row-aligned predictions (``sLd``, ``sMd``, ``Td``), e.g. of
        ``DustModel.predict`` or cross-validation; needed with a table.
    stellar_mass : str, `~astropy.units.Quantity` or `~astropy.nddata.NDData`, optional
        Column of ``table`` (or per-row values) with each pixel's stellar
        mass (solar masses), or a stellar-mass map on the grid of the table's
        ``x``, ``y`` pixels (e.g. ``maps.meta['stellar_mass']``).
    targets : sequence of str, optional
        Which of ``sLd``, ``sMd``, ``Td`` to aggregate.

    Returns
    -------
    globals : `~astropy.table.QTable`
        ``galaxy``, ``scale``, ``Mstar``, ``Mdust``, ``Ldust``, ``sMd``,
        ``sLd``, ``Td``, ``n_pixels``, ``n_missing``.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> from astro_dustml.training import global_from_pixels
    >>> t = QTable({'galaxy': ['a', 'a'], 'scale': ['1kpc', '1kpc'],
    ...             'stellar_mass': [1e9, 3e9] * u.Msun})
    >>> p = QTable({'sLd': [0., 0.] * u.dex, 'sMd': [-3., -2.] * u.dex, 'Td': [30., 20.] * u.K})
    >>> g = global_from_pixels(t, p)
    >>> float(g['Mdust'][0].value), round(float(g['Td'][0].value), 2)
    (31000000.0, 20.94)
    """
    if not hasattr(table, 'colnames'):  # the maps of estimate_dust_maps
        table, predictions, stellar_mass = _maps_as_rows(table, predictions, stellar_mass,
                                                         targets)
    if predictions is None:
        raise TypeError('global_from_pixels needs predictions= with a pixel table (or give '
                        'the maps of estimate_dust_maps alone).')
    if isinstance(stellar_mass, NDData):
        stellar_mass = _sample_map(stellar_mass, table)
    if len(predictions) != len(table):
        raise ValueError(f'predictions has {len(predictions)} rows, the table {len(table)}; '
                         'give one prediction per pixel row, in order.')
    mstar = table[stellar_mass] if isinstance(stellar_mass, str) else stellar_mass
    mstar = u.Quantity(mstar, u.Msun).value if hasattr(mstar, 'unit') else np.asarray(
        mstar, float)
    if mstar.shape != (len(table),):
        raise ValueError('stellar_mass must give one value per row of the table.')
    smd = _plain(predictions['sMd']) if 'sMd' in predictions.colnames else None
    sld = _plain(predictions['sLd']) if 'sLd' in predictions.colnames else None
    td = _plain(predictions['Td']) if 'Td' in predictions.colnames else None
    if 'Td' in targets and smd is None:
        raise ValueError('The mass-weighted Td needs the sMd predictions too.')
    keys = np.char.add(np.char.add(np.asarray(table['galaxy']).astype(str), '\n'),
                       np.asarray(table['scale']).astype(str))
    uniq, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.ravel()
    rows = []
    for k, key in enumerate(uniq):
        sel = inverse == k
        good = sel & np.isfinite(mstar) & (mstar > 0)
        for arr, t in ((smd, 'sMd'), (sld, 'sLd'), (td, 'Td')):
            if arr is not None and t in targets:
                good &= np.isfinite(arr)
        ms = mstar[good]
        md = 10 ** smd[good] * ms if smd is not None else np.array([np.nan])
        ld = 10 ** sld[good] * ms if sld is not None else np.array([np.nan])
        total_md = md.sum() if 'sMd' in targets or 'Td' in targets else np.nan
        total_ld = ld.sum() if 'sLd' in targets else np.nan
        temp = (mass_weighted_temperature(md, td[good]).value
                if 'Td' in targets and total_md > 0 else np.nan)
        galaxy, scale = key.split('\n')
        with np.errstate(divide='ignore', invalid='ignore'):
            rows.append([galaxy, scale, ms.sum(), total_md, total_ld,
                         np.log10(total_md / ms.sum()), np.log10(total_ld / ms.sum()), temp,
                         int(sel.sum()), int(sel.sum() - good.sum())])
    out = QTable(rows=rows, names=['galaxy', 'scale', 'Mstar', 'Mdust', 'Ldust', 'sMd', 'sLd',
                                   'Td', 'n_pixels', 'n_missing'])
    for name, unit in (('Mstar', u.Msun), ('Mdust', u.Msun), ('Ldust', u.Lsun),
                       ('sMd', u.dex), ('sLd', u.dex), ('Td', u.K)):
        out[name] = out[name] * unit if len(out) else np.zeros(0) * unit
    return out


def compare_global(pixel_globals, catalogue, *, quantities=('Mdust', 'Ldust', 'Td')):
    """
    Global values from pixels against a global catalogue, per scale.

    Parameters
    ----------
    pixel_globals : `~astropy.table.QTable`
        Output of `global_from_pixels`.
    catalogue : `~astropy.table.Table`
        ``galaxy`` and the catalogue values: ``Mdust`` (Msun), ``Ldust``
        (Lsun), ``Td`` (K), and/or ``sMd``, ``sLd`` (dex), e.g. the
        DustPedia CIGALE values.
    quantities : sequence of str, optional
        What to compare: masses and luminosities in dex (``log10`` ratio),
        ``sMd``/``sLd`` in dex, ``Td`` in K.

    Returns
    -------
    table : `~astropy.table.QTable`
        Per scale and quantity: ``rmse``, ``me`` (pixels minus catalogue),
        ``n_galaxies``; ``meta['differences']`` holds the per-galaxy
        differences.
    """
    names = {str(g): k for k, g in enumerate(catalogue['galaxy'])}
    rows, per_galaxy = [], []
    for q in quantities:
        if q not in catalogue.colnames or q not in pixel_globals.colnames:
            raise ValueError(f'{q!r} is not in both tables; compare among '
                             f'{[c for c in pixel_globals.colnames if c in catalogue.colnames]}.')
        log = q in ('Mdust', 'Ldust', 'Mstar')
        unit = u.K if q == 'Td' else u.dex
        for scale in dict.fromkeys(np.asarray(pixel_globals['scale']).tolist()):
            diffs = []
            for row in pixel_globals[np.asarray(pixel_globals['scale']) == scale]:
                k = names.get(str(row['galaxy']))
                if k is None:
                    continue
                mine, theirs = _plain(row[q]), _plain(catalogue[q][k])
                if log:
                    mine, theirs = np.log10(mine), np.log10(theirs)
                d = float(mine - theirs)
                if np.isfinite(d):
                    diffs.append(d)
                    per_galaxy.append((str(row['galaxy']), scale, q, d))
            d = np.array(diffs)
            rows.append([scale, q, unit.to_string(),
                         np.sqrt(np.mean(d ** 2)) if d.size else np.nan,
                         np.mean(d) if d.size else np.nan, int(d.size)])
    out = QTable(rows=rows, names=['scale', 'quantity', 'unit', 'rmse', 'me', 'n_galaxies'])
    out.meta['differences'] = per_galaxy
    return out


def _panels(table, axes):
    """A figure with one panel per target: ``fig, [(axes, target, rows), ...]``."""
    targets = list(dict.fromkeys(table['target'].tolist()))
    fig, ax = _new_axes(axes, 1, len(targets), (3.2, 3))
    return fig, [(a, t, table[table['target'] == t]) for a, t in zip(ax.flat, targets)]


def plot_rmse_per_scale(table, *, axes=None):
    """
    RMSE (with bootstrap errors) against the scale, one panel per target.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        Output of `rmse_per_scale`.
    axes : sequence of `~matplotlib.axes.Axes`, optional
        One axes per target; a new figure otherwise.

    Returns
    -------
    fig : `~matplotlib.figure.Figure`
    """
    fig, panels = _panels(table, axes)
    for a, t, sub in panels:
        x = np.arange(len(sub))
        a.errorbar(x, sub['rmse'], yerr=sub['rmse_err'], fmt='o-', capsize=3)
        a.set_xticks(x, list(sub['scale']), rotation=45)
        a.set_title(t)
        a.set_ylabel(f'RMSE ({sub["unit"][0]})')
    return fig


def plot_scale_lie(table, *, axes=None):
    """
    Shift of the predictions against the factor on the told scale (Fig. 8).

    Parameters
    ----------
    table : `~astropy.table.QTable`
        Output of `scale_lie_experiment`.
    axes : sequence of `~matplotlib.axes.Axes`, optional
        One axes per target; a new figure otherwise.

    Returns
    -------
    fig : `~matplotlib.figure.Figure`
    """
    fig, panels = _panels(table, axes)
    for a, t, sub in panels:
        for scale in dict.fromkeys(sub['scale'].tolist()):
            s = sub[sub['scale'] == scale]
            a.plot(s['factor'], s['shift'], 'o-', label=scale)
        a.set_xscale('log')
        a.axhline(0, color='0.5', lw=0.8)
        a.set_xlabel('told / true pixel scale')
        a.set_ylabel(f'shift of {t}')
        a.legend(fontsize='small')
    return fig
