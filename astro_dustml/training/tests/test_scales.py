"""Tests of the scale analyses (astro_dustml.training.scales) on tables with known answers."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable
from matplotlib.figure import Figure

from astro_dustml.model import DustModel
from astro_dustml.training import (
    compare_global,
    global_from_pixels,
    plot_rmse_per_scale,
    plot_scale_lie,
    rmse_per_scale,
    scale_lie_experiment,
    scatter_decomposition,
    shared_galaxies,
)


def _predictions():
    """a, b at two scales, errors 0.1 and 0.2 dex; c only at 18 arcsec, 5 dex off."""
    rows = []
    rng = np.random.default_rng(0)
    for galaxy, scales in (('a', ('18arcsec', '1kpc')), ('b', ('18arcsec', '1kpc')),
                           ('c', ('18arcsec',))):
        for scale in scales:
            n = {'a': 50, 'b': 7, 'c': 20}[galaxy]
            true = rng.normal(-2.5, 0.3, n)
            error = 5.0 if galaxy == 'c' else (0.1 if scale == '18arcsec' else 0.2)
            sign = rng.choice([-1, 1], n)
            for t, p, s in zip(true, true + sign * error, sign):
                rows.append((galaxy, scale, t, p, 0.2))
    t = QTable(rows=rows, names=['galaxy', 'scale', 'sMd_true', 'sMd', 'sMd_err'])
    for c in ('sMd_true', 'sMd', 'sMd_err'):
        t[c].unit = u.dex
    return t


def test_rmse_on_shared_galaxies():
    p = _predictions()
    assert shared_galaxies(p) == ['a', 'b']
    table = rmse_per_scale(p, ['sMd'], n_bootstrap=5)
    assert table['scale'].tolist() == ['18arcsec', '1kpc']
    np.testing.assert_allclose(table['rmse'], [0.1, 0.2], rtol=1e-6)
    assert table.meta['galaxies'] == ['a', 'b']
    # with every galaxy, c (5 dex off, one of three galaxies) enters at 18 arcsec
    every = rmse_per_scale(p, ['sMd'], shared=False, n_bootstrap=5)
    assert every['rmse'][0] == pytest.approx(np.sqrt((0.01 + 0.01 + 25) / 3), rel=1e-6)
    fig = plot_rmse_per_scale(table)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    with pytest.raises(ValueError, match='not in the table'):
        rmse_per_scale(p, ['sMd'], scales=['3kpc'])


def test_scatter_decomposition_offsets_only():
    """Predictions off by a constant per galaxy: all the error is between galaxies."""
    rng = np.random.default_rng(1)
    offsets = {'a': 0.3, 'b': -0.1, 'c': 0.2}
    galaxy = np.repeat(list(offsets), [40, 5, 12])
    true = rng.normal(20, 2, galaxy.size)
    p = QTable({'galaxy': galaxy, 'scale': np.full(galaxy.size, '1kpc'), 'Td_true': true,
                'Td': true + np.array([offsets[g] for g in galaxy]),
                'Td_err': np.ones(galaxy.size)})
    row = scatter_decomposition(p, ['Td'])[0]
    assert row['rmse_within'] == pytest.approx(0, abs=1e-12)
    expected = np.sqrt(np.mean(np.square(list(offsets.values()))))
    assert row['rmse_between'] == pytest.approx(expected)
    assert row['rmse'] == pytest.approx(expected)
    assert row['true_within'] == pytest.approx(2, rel=0.3)


def test_scale_lie_experiment():
    """Td rises by 5 K per dex of pixel scale: telling 10x the scale adds about 5 K."""
    rng = np.random.default_rng(2)
    n = 3000
    log_scale = rng.uniform(2, 3.5, n)
    colour = rng.uniform(-0.5, 0.5, n)
    table = QTable({'galaxy': [f'g{i % 60}' for i in range(n)], 'scale': np.full(n, 'mixed'),
                    'WISE_3.4': 10 ** rng.normal(0, 0.2, n) * u.Jy,
                    'WISE_4.6': 10 ** colour * u.Jy, 'WISE_12': 10 ** (-colour) * u.Jy,
                    'pixel_area': np.full(n, 1e-8) * u.sr,
                    'pixel_scale_pc': 10 ** log_scale * u.pc,
                    'Td': (20 + 5 * (log_scale - 2.75) + 4 * colour
                           + rng.normal(0, 0.3, n)) * u.K})
    model = DustModel(bands=['WISE_3.4', 'WISE_4.6', 'WISE_12'], n_estimators=20,
                      n_dropout=0, sigma_rounds=10, n_inner_splits=2, include_scale=True)
    model.fit(table, ['Td'], groups='galaxy')
    middle = table[(log_scale > 2.5) & (log_scale < 2.75)]  # 10x stays inside the training range
    result = scale_lie_experiment(model, middle, factors=(1, 10 ** 0.5))
    shifts = dict(zip(result['factor'], result['shift']))
    assert shifts[1.0] == 0
    assert shifts[10 ** 0.5] == pytest.approx(2.5, abs=0.5)
    assert result['rmse'][0] < 0.5
    assert isinstance(plot_scale_lie(result), Figure)
    with pytest.raises(ValueError, match='no pixel-scale feature'):
        scale_lie_experiment(DustModel(include_scale=False), table)


def test_global_from_pixels_against_catalogue():
    rng = np.random.default_rng(3)
    galaxy = np.repeat(['a', 'b'], [30, 10])
    mstar = 10 ** rng.uniform(7, 9, galaxy.size) * u.Msun
    smd = rng.normal(-2.5, 0.3, galaxy.size)
    td = rng.uniform(15, 30, galaxy.size)
    table = QTable({'galaxy': galaxy, 'scale': np.full(galaxy.size, '1kpc'),
                    'stellar_mass': mstar})
    pred = QTable({'sMd': smd * u.dex, 'sLd': (smd + 3) * u.dex, 'Td': td * u.K})
    pred['sMd'][0] = np.nan  # left out and counted
    out = global_from_pixels(table, pred)
    a = out[out['galaxy'] == 'a'][0]
    good = (galaxy == 'a') & np.isfinite(smd)
    good[0] = False
    md = 10 ** smd[good] * mstar[good].value
    assert a['Mdust'].to_value(u.Msun) == pytest.approx(md.sum())
    assert a['Ldust'].to_value(u.Lsun) == pytest.approx(1000 * md.sum())
    # THEMIS: the mixture has the dust-mass weighted mean Umin, Umin ~ Td**5.79
    assert a['Td'].to_value(u.K) == pytest.approx(
        (np.sum(md * td[good] ** 5.79) / md.sum()) ** (1 / 5.79))
    assert a['n_missing'] == 1
    catalogue = QTable({'galaxy': ['b', 'a'],
                        'Mdust': [out['Mdust'][1].value * 10 ** 0.1,
                                  out['Mdust'][0].value * 10 ** 0.1] * u.Msun,
                        'Td': [out['Td'][1].value + 1, out['Td'][0].value - 1] * u.K})
    cmp = compare_global(out, catalogue, quantities=('Mdust', 'Td'))
    mdust = cmp[cmp['quantity'] == 'Mdust'][0]
    assert mdust['me'] == pytest.approx(-0.1) and mdust['rmse'] == pytest.approx(0.1)
    assert cmp[cmp['quantity'] == 'Td'][0]['rmse'] == pytest.approx(1.0)
