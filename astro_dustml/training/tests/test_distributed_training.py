"""Tests of resolved training on a Dask cluster (astro_dustml.training.distributed)."""

import json

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable, vstack

pytest.importorskip('dask')
pytest.importorskip('distributed')
pytest.importorskip('xgboost.dask')

from astro_dustml.model import DustModel  # noqa: E402
from astro_dustml.model._forest import _forest_predict  # noqa: E402
from astro_dustml.model._linear import _fit_linear  # noqa: E402
from astro_dustml.tests._dask_helpers import local_client  # noqa: E402
from astro_dustml.tests._mock_training import BANDS, pixel_table  # noqa: E402
from astro_dustml.training import (  # noqa: E402
    fit_resolved,
    fit_resolved_dask,
    pixel_weights,
    read_training_table,
)
from astro_dustml.training.distributed import _export_xgb_forest, _forest_params  # noqa: E402

TARGETS = ('sLd', 'Td')
TRAIN_SEEDS = (11, 12, 13, 14, 15, 16)
TEST_SEED = 21


def small_model():
    return DustModel(bands=BANDS, n_estimators=20, n_dropout=1, sigma_rounds=100,
                     n_inner_splits=3, include_scale=False)


@pytest.fixture(scope='module')
def client():
    with local_client() as c:
        yield c


@pytest.fixture(scope='module')
def pixels(tmp_path_factory):
    """Six mock galaxies, two scale labels, split over three Parquet files."""
    import pyarrow.parquet as pq
    folder = tmp_path_factory.mktemp('pixels')
    tables = []
    for seed in TRAIN_SEEDS:
        t = pixel_table(seed)
        del t['block']
        # two scales with 1/3 and 2/3 of the rows: weights 1/N per galaxy *and* scale
        t['scale'] = np.where(np.arange(len(t)) % 3 == 0, '6arcsec', '3arcsec')
        tables.append(t)
    table = vstack(tables)
    thirds = np.array_split(np.arange(len(table)), 3)
    for i, rows in enumerate(thirds):
        path = folder / f'part{i}.parquet'
        table[rows].write(path)
        # row groups of 200 rows, as build_training_table writes one per galaxy and scale
        pq.write_table(pq.read_table(path), path, row_group_size=200)
    return folder


@pytest.fixture(scope='module')
def gathered():
    """Sizes of everything the client gathers from the workers during the fit."""
    return []


@pytest.fixture(scope='module')
def dask_model(client, pixels, gathered):
    import distributed
    from dask.sizeof import sizeof

    original = distributed.Client.gather

    def gather(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        gathered.extend(sizeof(r) for r in (result if isinstance(result, list) else [result]))
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(distributed.Client, 'gather', gather)
        # small partitions: several per file
        return fit_resolved_dask(str(pixels / '*.parquet'), TARGETS, client=client,
                                 model=small_model(), partition_rows=300)


@pytest.fixture(scope='module')
def memory_table(pixels):
    return vstack([read_training_table(p) for p in sorted(pixels.glob('*.parquet'))])


def test_exported_forest_predicts_as_the_booster(client):
    """The node arrays of an xgboost.dask random forest give booster.predict."""
    import dask.dataframe as dd
    import pandas as pd
    import xgboost as xgb
    from xgboost import dask as dxgb

    rng = np.random.default_rng(1)
    n = 3000
    # coarse values: many rows sit exactly on a split threshold (x < t goes left)
    X = np.round(rng.normal(size=(n, 4)), 1).astype(np.float32)
    X[rng.random((n, 4)) < 0.15] = np.nan  # missing values take the learned branch
    y = np.nan_to_num(X[:, 0]) ** 2 + np.where(np.isnan(X[:, 1]), 3.0, X[:, 1])
    frame = dd.from_pandas(pd.DataFrame(X, columns=list('abcd')).assign(y=y), npartitions=3)
    dtrain = dxgb.DaskDMatrix(client, frame[list('abcd')], label=frame['y'])
    model = DustModel(n_estimators=15, max_depth=6, min_samples_leaf=2, max_features=0.5)
    booster = dxgb.train(client, _forest_params(model, 3), dtrain, num_boost_round=1,
                         verbose_eval=False)['booster']
    booster.feature_names = None
    arrays = _export_xgb_forest(booster)
    assert len(arrays['roots']) == 15
    expected = booster.predict(xgb.DMatrix(X, missing=np.nan))
    # float32 sums inside xgboost: agreement to its rounding
    np.testing.assert_allclose(_forest_predict(arrays, X), expected, rtol=0, atol=2e-5)
    # and the forest is not trivial: it explains most of the variance
    assert np.var(y - expected) < 0.2 * np.var(y)


@pytest.mark.slow
def test_ridge_equals_sklearn(dask_model, memory_table):
    """The ridge from reductions is RidgeCV's on the collected rows (same weights, alpha)."""
    model = dask_model
    X, _, valid = model._features(memory_table)
    usable = model._usable(X, valid, model.bands_)
    weights = pixel_weights(memory_table)[usable]
    for target in TARGETS:
        mean = model.means_[target]['full']
        y = memory_table[target].value[usable]
        ok = np.isfinite(y)
        expected = _fit_linear(X[usable][ok][:, mean['linear_columns']], y[ok], weights[ok])
        for key, value in expected.items():
            np.testing.assert_allclose(mean[key], value, rtol=1e-8, atol=1e-10, err_msg=key)


@pytest.mark.slow
def test_saved_model_and_held_out_accuracy(dask_model, memory_table, tmp_path):
    """Same files as an in-memory fit; held-out accuracy close to it; chi^2 near one."""
    model = dask_model
    memory = fit_resolved(memory_table, TARGETS, model=small_model())
    model.save(tmp_path / 'dask')
    memory.save(tmp_path / 'memory')
    card = json.loads((tmp_path / 'dask' / 'model.json').read_text())
    reference = json.loads((tmp_path / 'memory' / 'model.json').read_text())
    assert set(card) == set(reference)
    assert card['card_sha256']
    assert card['training']['scales'] == ['3arcsec', '6arcsec']
    assert card['training']['dask']['engine'] == 'xgboost.dask'
    assert card['training']['n_rows'] == reference['training']['n_rows']
    assert card['training']['per_target'] == reference['training']['per_target']
    # one booster per target; otherwise the files of the in-memory model
    names = {n for n in reference['files'] if not n.startswith('sigma_')}
    assert names | {f'sigma_{t}_0.ubj' for t in TARGETS} == set(card['files'])
    loaded = DustModel.load(tmp_path / 'dask')

    test = pixel_table(TEST_SEED)
    pred = loaded.predict(test, warn=False)
    np.testing.assert_array_equal(pred['Td'].value, model.predict(test, warn=False)['Td'].value)
    reference_pred = memory.predict(test, warn=False)
    for target in TARGETS:
        truth = test[target].value
        error = pred[target].value - truth
        rmse = np.sqrt(np.mean(error ** 2))
        rmse_memory = np.sqrt(np.mean((reference_pred[target].value - truth) ** 2))
        assert rmse < 1.5 * rmse_memory
        assert rmse < 0.5 * np.std(truth)  # far better than the mean
        chi2 = np.mean((error / pred[f'{target}_err'].value) ** 2)
        assert 0.3 < chi2 < 3


@pytest.mark.slow
def test_partitioned_and_never_collected(dask_model, memory_table, gathered):
    """Several files, several partitions each; the client receives reductions only."""
    assert dask_model.card['training']['dask']['n_partitions'] >= 6
    table_bytes = sum(col.nbytes for col in memory_table.itercols())
    assert gathered and max(gathered) < 0.1 * table_bytes


def _write(path, n_galaxies=2, **columns):
    n = 20 * n_galaxies
    base = {'galaxy': np.repeat([f'g{i}' for i in range(n_galaxies)], 20),
            'scale': np.full(n, '3arcsec'),
            'WISE_3.4': np.ones(n) * u.Jy, 'WISE_4.6': np.linspace(0.5, 1, n) * u.Jy,
            'WISE_12': np.linspace(0.2, 2, n) * u.Jy, 'pixel_area': np.full(n, 1e-9) * u.sr,
            'Td': np.linspace(20, 30, n) * u.K}
    base.update(columns)
    table = QTable({k: v for k, v in base.items() if v is not None})
    table.write(path)
    return path


def test_clear_errors(client, tmp_path):
    model = DustModel(bands=['WISE_3.4', 'WISE_4.6', 'WISE_12'], n_dropout=0,
                      n_inner_splits=2)
    good = _write(tmp_path / 'good.parquet')
    with pytest.raises(ValueError, match="target 'sLd' is not a column"):
        fit_resolved_dask(good, ['sLd'], client=client, model=model)
    with pytest.raises(ValueError, match="no 'scale' column"):
        fit_resolved_dask(_write(tmp_path / 'noscale.parquet', scale=None), ['Td'],
                          client=client, model=model)
    with pytest.raises(ValueError, match="no 'galaxy' column"):
        fit_resolved_dask(_write(tmp_path / 'nogal.parquet', galaxy=None), ['Td'],
                          client=client, model=model)
    with pytest.raises(ValueError, match='too few galaxies with a finite Td'):
        fit_resolved_dask(good, ['Td'], client=client, model=model.set_params(
            n_inner_splits=3))
    with pytest.raises(FileNotFoundError, match='no Parquet file matches'):
        fit_resolved_dask(str(tmp_path / 'none*.parquet'), ['Td'], client=client)
    with pytest.raises(ValueError, match='error_weighting'):
        fit_resolved_dask(good, ['Td'], client=client,
                          model=DustModel(bands=['WISE_3.4', 'WISE_4.6'], error_weighting=1))


@pytest.mark.slow
def test_cli_train_dask(client, pixels, tmp_path):
    """``astro-dustml train 'pixels/*.parquet' --dask ADDRESS`` writes a loadable model."""
    from astro_dustml.tests.test_cli import run

    proc = run('train', pixels / '*.parquet', '--dask', client.scheduler.address,
               '--targets', 'Td', '--n-estimators', 5, '--no-scale-feature',
               '-o', tmp_path / 'model')
    assert proc.returncode == 0, proc.stderr
    assert 'trained on Dask' in proc.stdout
    model = DustModel.load(tmp_path / 'model')
    assert model.card['training']['dask']['n_partitions'] == 3
    assert model.card['training']['sample'] == str(pixels / '*.parquet')
    proc = run('train', pixels / '*.parquet', '--dask', 'local', '--cv-folds', 2,
               '-o', tmp_path / 'other')
    assert proc.returncode == 2
    assert 'without cross-validation' in proc.stderr


def test_scales_filter_without_persist(client, tmp_path):
    """Only the scales asked for are read; the feature table may be recomputed per pass."""
    n = 80
    path = _write(tmp_path / 'p.parquet', n_galaxies=4,
                  scale=np.where(np.arange(n) % 4 == 0, '9arcsec', '3arcsec'),
                  Td=(20 + 10 * np.random.default_rng(0).random(n)) * u.K)
    model = DustModel(bands=['WISE_3.4', 'WISE_4.6', 'WISE_12'], n_estimators=5, n_dropout=0,
                      sigma_rounds=5, n_inner_splits=2)
    model = fit_resolved_dask(path, 'Td', client=client, model=model, scales=['3arcsec'],
                              persist=False)
    assert model.card['training']['scales'] == ['3arcsec']
    assert model.card['training']['n_rows'] == 60
    assert np.isfinite(model.predict(QTable.read(path), warn=False)['Td']).all()
