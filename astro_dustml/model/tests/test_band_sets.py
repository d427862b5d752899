"""Band-set models: names, grouping by usable bands, routing, on-demand training and its cache."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from astro_dustml import conf
from astro_dustml.bands import INPUT_BANDS
from astro_dustml.exceptions import ModelIntegrityError
from astro_dustml.model import DustModel, band_set_routing, band_sets
from astro_dustml.model.band_set_routing import (
    get_band_set_model,
    group_by_band_pattern,
    predict_by_band_set,
)
from astro_dustml.model.band_sets import (
    SHIPPED_BAND_SETS,
    BandSetFallbackWarning,
    band_set_cache_dir,
    band_set_name,
    parse_band_set_name,
)

# small forests: the cache is what is tested here, not the accuracy
FAST = dict(band_sets.BAND_SET_SETTINGS, n_estimators=5, max_depth=4, sigma_rounds=20,
            n_inner_splits=2)
ON_DEMAND = ('SDSS_g', 'SDSS_r', 'WISE_3.4', 'WISE_4.6', 'WISE_12')


def test_names_round_trip_for_every_shipped_set():
    assert len(SHIPPED_BAND_SETS) == 12
    for name, bands in SHIPPED_BAND_SETS.items():
        assert parse_band_set_name(name) == bands
        assert band_set_name(reversed(bands)) == name
        assert 'WISE_3.4' in bands


@pytest.mark.parametrize('bands, words', [
    (['WISE_4.6', 'WISE_12'], ['WISE_3.4', 'add it']),
    (['WISE_3.4', 'PACS_100'], ['not model input bands']),
])
def test_bad_band_sets_say_what_to_do(bands, words):
    with pytest.raises(ValueError) as info:
        band_set_name(bands)
    for word in words:
        assert word in str(info.value)


def test_bad_name_is_refused():
    with pytest.raises(ValueError, match='instrument token'):
        parse_band_set_name('dustpedia-bands-wise19')


def test_patterns_follow_valid_bands():
    n = 10
    t = QTable({b: np.ones(n) * u.Jy for b in ('WISE_3.4', 'WISE_4.6', 'SDSS_g')})
    t['SDSS_g'][:3] = np.nan
    t['WISE_3.4'][9] = -1 * u.Jy
    groups = group_by_band_pattern(t)
    assert list(groups) == [('SDSS_g', 'WISE_3.4', 'WISE_4.6'), ('WISE_3.4', 'WISE_4.6'), ()]
    assert groups[('WISE_3.4', 'WISE_4.6')].tolist() == [0, 1, 2]
    assert groups[()].tolist() == [9]


def _table(n, bands, seed=0):
    rng = np.random.default_rng(seed)
    t = QTable()
    t['galaxy'] = np.repeat(np.arange(n // 5), 5).astype(str)
    t['pixel_area'] = np.full(n, 1e-9) * u.sr
    for b in bands:
        t[b] = rng.uniform(0.5, 2, n) * u.Jy
        t[f'{b}_err'] = t[b] * 0.05
    return t


class _Recorder:
    """A full-band stand-in for the default model that remembers the rows it saw."""

    def __init__(self, bands):
        self.bands = bands
        self.rows = []

    def predict(self, table, warn=True, **noise):
        self.rows.append(len(table))
        out = QTable()
        for t, unit in (('sLd', u.dex), ('sMd', u.dex), ('Td', u.K)):
            out[t] = np.full(len(table), 99.) * unit
            out[f'{t}_err'] = np.ones(len(table)) * unit
        out['out_of_domain'] = np.zeros(len(table), bool)
        out['n_bands'] = np.zeros(len(table), np.int16)
        return out


def test_small_pattern_missing_one_band_keeps_the_default_model():
    # the largest shipped subset of 17 bands without GALEX FUV has 12: it would
    # ignore five of the pixels' bands where the default model misses one
    t = _table(200, INPUT_BANDS)
    t['GALEX_FUV'][:5] = np.nan
    default = _Recorder(INPUT_BANDS)
    _, model_id, models = predict_by_band_set(default, t, default_name='full',
                                              min_fraction=0.05, min_pixels=20)
    assert [m['name'] for m in models] == ['full'] and default.rows == [200]
    assert (model_id == 0).all()
    assert [len(p) for p in models[0]['patterns']] == [18, 17]


def test_small_pattern_takes_the_largest_shipped_subset_silently():
    bands = ['SDSS_g', 'SDSS_r', 'SDSS_i', 'WISE_3.4', 'WISE_4.6', 'WISE_12']
    t = _table(200, bands)
    t['SDSS_r'][:5] = np.nan  # 5 pixels: too few for a model of their own
    default = _Recorder(INPUT_BANDS)
    pred, model_id, models = predict_by_band_set(default, t, default_name='full',
                                                 min_fraction=0.05, min_pixels=20)
    names = {m['name']: m for m in models}
    assert set(names) == {'dustpedia-bands-sdssgri-wise123', 'dustpedia-bands-wise123'}
    assert names['dustpedia-bands-sdssgri-wise123']['how'] == 'shipped'
    assert names['dustpedia-bands-sdssgri-wise123']['n_pixels'] == 195
    # the 5 without r: W1-3 is the largest shipped subset of g, i, W1-3
    assert names['dustpedia-bands-wise123']['how'] == 'subset'
    assert names['dustpedia-bands-wise123']['n_pixels'] == 5
    small = names['dustpedia-bands-wise123']['id']
    assert np.flatnonzero(model_id == small).tolist() == [0, 1, 2, 3, 4]
    assert default.rows == []  # no pixel has the 18 bands
    assert np.all(np.isfinite(pred['sLd'].value))
    # the rows are predicted by those models as they predict them on their own
    for name, rows in (('dustpedia-bands-wise123', slice(0, 5)),
                       ('dustpedia-bands-sdssgri-wise123', slice(5, None))):
        alone = DustModel.load(band_set_routing._shipped_folder(name))
        np.testing.assert_allclose(pred['Td'].value[rows],
                                   alone.predict(t[rows], warn=False)['Td'].value)


def test_big_pattern_without_its_model_warns_how_to_build_it():
    bands = ['SDSS_g', 'SDSS_r', 'WISE_3.4', 'WISE_4.6', 'WISE_12']
    t = _table(100, bands)
    with conf.set_temp('band_set_on_demand', False):
        with pytest.warns(BandSetFallbackWarning) as record:
            _, model_id, models = predict_by_band_set(_Recorder(INPUT_BANDS), t,
                                                      cache_dir='/nonexistent/astro_dustml')
    message = str(record[0].message)
    assert 'astro-dustml models build --bands SDSS_g,SDSS_r,WISE_3.4,WISE_4.6,WISE_12' \
        in message
    assert [m['name'] for m in models] == ['dustpedia-bands-wise123']
    assert (model_id == 0).all()


def test_full_band_pixels_keep_the_default_model():
    t = _table(50, INPUT_BANDS)
    default = _Recorder(INPUT_BANDS)
    pred, model_id, models = predict_by_band_set(default, t, default_name='full')
    assert default.rows == [50]
    assert [(m['name'], m['how']) for m in models] == [('full', 'default')]
    assert (pred['sLd'].value == 99).all() and (model_id == 0).all()


@pytest.mark.slow
def test_on_demand_model_is_trained_once_cached_and_rebuilt_when_corrupt(
        shared_data, download_cache, monkeypatch):
    from astro_dustml.datasets import load_dustpedia_global
    table = load_dustpedia_global(path=shared_data / 'dustpedia', require_targets=True)
    assert str(band_set_cache_dir()).startswith(str(download_cache))
    trained = []
    real = band_sets.train_band_set_model

    def counting(*args, **kwargs):
        trained.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(band_set_routing, 'train_band_set_model', counting)
    first = get_band_set_model(ON_DEMAND, training_table=table, settings=FAST, cv=True)
    assert len(trained) == 1
    folders = list(band_set_cache_dir().iterdir())
    assert len(folders) == 1
    folder = folders[0]
    assert folder.name.startswith(band_set_name(ON_DEMAND) + '-')
    card = first.card
    assert card['band_set']['bands'] == list(ON_DEMAND)
    assert folder.name.endswith(card['band_set']['training_sha256'][:16])
    assert set(card['cv_metrics']['all']) == {'sLd', 'sMd', 'Td'}
    # second call: from the cache, the same model
    again = get_band_set_model(ON_DEMAND, training_table=table, settings=FAST)
    assert len(trained) == 1
    probe = table[:20]
    np.testing.assert_array_equal(again.predict(probe, warn=False)['sLd'].value,
                                  first.predict(probe, warn=False)['sLd'].value)
    # a corrupt file: refused by its SHA-256, then trained again
    victim = sorted(folder.glob('mean_*.npz'))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        DustModel.load(folder)
    with pytest.warns(BandSetFallbackWarning, match='refused'):
        rebuilt = get_band_set_model(ON_DEMAND, training_table=table, settings=FAST)
    assert len(trained) == 2
    DustModel.load(folder)  # whole again
    np.testing.assert_allclose(rebuilt.predict(probe, warn=False)['sLd'].value,
                               first.predict(probe, warn=False)['sLd'].value)


def test_too_few_bands_stay_with_the_default_model():
    t = _table(100, ['WISE_3.4', 'WISE_4.6'])
    default = _Recorder(INPUT_BANDS)
    _, model_id, models = predict_by_band_set(default, t, default_name='full')
    assert default.rows == [100] and [m['name'] for m in models] == ['full']


def test_no_training_table_offline_falls_back_with_the_build_command(tmp_path):
    t = _table(100, ['SDSS_g', 'SDSS_r', 'WISE_3.4', 'WISE_4.6', 'WISE_12'])
    with conf.set_temp('dustpedia_dir', str(tmp_path)), conf.set_temp('allow_download', False):
        with pytest.warns(BandSetFallbackWarning) as record:
            _, _, models = predict_by_band_set(_Recorder(INPUT_BANDS), t,
                                               cache_dir=tmp_path / 'cache')
    message = str(record[0].message)
    assert 'no training table' in message and 'downloads are disabled' in message
    assert 'astro-dustml models build --bands' in message
    assert [m['how'] for m in models] == ['subset']
