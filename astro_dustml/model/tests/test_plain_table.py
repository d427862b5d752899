"""DustModel on a plain astropy Table with unit columns, as Table.read gives it (issue #21)."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable, Table

from astro_dustml.model import DustModel

BANDS = ['WISE_3.4', 'WISE_4.6', 'WISE_12']


def _table(n=300):
    rng = np.random.default_rng(0)
    colour = rng.uniform(-1, 1, n)
    return QTable({'galaxy': [f'g{i % 60}' for i in range(n)],
                   'WISE_3.4': np.ones(n) * u.Jy,
                   'WISE_4.6': 10 ** colour * u.Jy,
                   'WISE_12': 10 ** rng.uniform(-1, 1, n) * u.Jy,
                   'pixel_area': np.full(n, 1e-6) * u.sr,
                   'Td': (25 + 5 * colour + rng.normal(0, 0.5, n)) * u.K,
                   'sMd': (-3 + 0.5 * colour + rng.normal(0, 0.1, n)) * u.dex})


def _fit(table):
    model = DustModel(bands=BANDS, n_estimators=10, n_dropout=0, sigma_rounds=20)
    return model.fit(table, targets=['Td', 'sMd'], groups='galaxy')


def test_table_read_from_parquet_fits_like_a_qtable(tmp_path):
    qtable = _table()
    path = tmp_path / 'pixels.parquet'
    qtable.write(path)
    plain = Table.read(path)  # what most users type
    assert not isinstance(plain, QTable) and plain['Td'].unit == u.K
    reference = _fit(qtable).predict(qtable)
    model = _fit(plain)
    for table in (plain, qtable):
        pred = model.predict(table)
        for name in ('Td', 'Td_err', 'sMd', 'sMd_err'):
            assert pred[name].unit == reference[name].unit
            assert np.array_equal(pred[name].value, reference[name].value, equal_nan=True)
    assert not isinstance(plain['Td'], u.Quantity)  # the input is left as it was


def test_wrong_target_unit_and_not_a_table():
    table = Table(_table())
    table['Td'].unit = u.dex
    with pytest.raises(u.UnitsError, match="target 'Td' is in dex; give it in K"):
        _fit(table)
    with pytest.raises(TypeError, match='QTable or Table'):
        _fit({'WISE_3.4': [1.0]})
