"""Tests of the multi-scale training tables (astro_dustml.training)."""

import functools

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from astro_dustml.datasets import make_mock_galaxy
from astro_dustml.exceptions import AstroDustMLWarning
from astro_dustml.imaging import align_images, prepare_images
from astro_dustml.model import DustModel
from astro_dustml.sed import make_pixel_table
from astro_dustml.training import (
    SCALES,
    MapTruth,
    Scale,
    TrainingGalaxy,
    build_training_table,
    cross_validate_resolved,
    evaluate_resolved,
    fit_resolved,
    pixel_weights,
    read_training_summary,
    read_training_table,
)

BANDS = ('GALEX_NUV', 'SDSS_r', 'WISE_3.4', 'WISE_4.6', 'WISE_12')
FOV = 1.5 * u.arcmin
SEMIMAJOR = 30 * u.arcsec


@functools.lru_cache(maxsize=None)
def mock(seed, distance=10):
    # The analytic recipe: smooth maps, so resampled truth can be compared tightly
    return make_mock_galaxy(bands=BANDS, seed=seed, fov=FOV, semimajor=SEMIMAJOR,
                            distance=distance * u.Mpc, name=f'mock{seed}',
                            dust_recipe='analytic')


def small_model(**kw):
    return DustModel(bands=BANDS, n_estimators=10, n_dropout=0, sigma_rounds=20,
                     n_inner_splits=2, include_scale=True, **kw)


@pytest.fixture(scope='module')
def survey(tmp_path_factory):
    """Five mock galaxies at two angular scales and 1 kpc, in one Parquet file."""
    path = tmp_path_factory.mktemp('survey') / 'pixels.parquet'
    mocks = (mock(s) for s in range(1, 6))  # a generator: consumed one galaxy at a time
    summary = build_training_table(mocks, scales=[8 * u.arcsec, 12 * u.arcsec, '1kpc'],
                                   bands=BANDS, output=path, progress=False)
    return path, summary


def test_scales_of_the_paper():
    # 1 kpc at 10 Mpc is 20.6 arcsec: the 18 arcsec far-infrared set reaches it
    assert SCALES['1kpc'].angular_fwhm(10 * u.Mpc).to_value(u.arcsec) == pytest.approx(
        1e3 / 10e6 * 206264.806, rel=1e-6)
    assert 'SPIRE_350' not in SCALES['1kpc'].far_infrared(10 * u.Mpc)
    # 3 kpc at 10 Mpc is 62 arcsec: every SPIRE band reaches it
    assert 'SPIRE_500' in SCALES['3kpc'].far_infrared(10 * u.Mpc)
    assert SCALES['25arcsec'].far_infrared() == ('PACS_70', 'PACS_100', 'PACS_160',
                                                 'SPIRE_250', 'SPIRE_350')


def _never_read():
    raise AssertionError('the images of a skipped galaxy must not be read')


def test_skip_rules(tmp_path):
    """Too small for the pixel, too far for a physical scale: skipped with reasons."""
    small = TrainingGalaxy(name='small', images=_never_read, distance=10 * u.Mpc,
                           center=mock(1).galaxy['center'], semimajor=10 * u.arcsec)
    # 1 kpc at 100 Mpc is 2.1 arcsec, finer than the 18 arcsec far-infrared limit
    far = TrainingGalaxy(name='far', images=_never_read, distance=100 * u.Mpc,
                         center=mock(1).galaxy['center'], semimajor=15 * u.arcsec)
    with pytest.warns(AstroDustMLWarning, match='No rows were written'):
        summary = build_training_table([small, far], scales=['18arcsec', '1kpc'],
                                       output=tmp_path / 'none.parquet', progress=False)
    assert not (tmp_path / 'none.parquet').exists()
    rows = {(r['galaxy'], r['scale']): r for r in summary}
    assert set(summary['status']) == {'skipped'}
    assert rows['small', '18arcsec']['reason'].startswith('too small')
    assert rows['far', '1kpc']['reason'].startswith('too far')
    assert rows['far', '1kpc']['fwhm'] == pytest.approx(2.06, abs=0.01)
    # The same summary sits beside the output
    assert (tmp_path / 'none.summary.ecsv').exists()


def test_skip_far_but_keep_near(tmp_path):
    near, far = mock(1, 10), mock(2, 60)  # 1 kpc: 20.6 and 3.4 arcsec
    summary = build_training_table([near, far], scales=['1kpc'], bands=BANDS,
                                   output=tmp_path / 'p.parquet', progress=False)
    assert summary['status'].tolist() == ['ok', 'skipped']
    table = read_training_table(tmp_path / 'p.parquet')
    assert set(table['galaxy']) == {'mock1'}
    # the pixel is the scale: 1 kpc at 10 Mpc
    assert np.allclose(table['pixel_scale_pc'].to_value(u.pc), 1000, rtol=1e-3)


@pytest.mark.slow
def test_parquet_round_trip(survey):
    import pandas as pd

    path, summary = survey
    table = read_training_table(path)
    ok = summary[summary['status'] == 'ok']
    assert len(table) == summary.meta['n_rows'] == ok['n_rows'].sum()
    # the same pixels as the public chain gives for one galaxy and scale, in float32
    m = mock(3)
    aligned = align_images(prepare_images(m.images, galaxy=m.galaxy), target=12 * u.arcsec,
                           pixel_scale=12 * u.arcsec)
    direct = make_pixel_table(aligned, galaxy=m.galaxy)
    rows = table[(table['galaxy'] == 'mock3') & (table['scale'] == '12arcsec')]
    assert len(rows) == len(direct)
    for band in BANDS:
        np.testing.assert_allclose(rows[band].to_value(u.Jy), direct[band].to_value(u.Jy),
                                   rtol=1e-6)
        assert rows[band].dtype == np.float32
    truth = m.truth_maps(aligned.meta['wcs'], aligned.meta['shape'], aligned.meta['psf_fwhm'])
    y, x = np.asarray(direct['y']), np.asarray(direct['x'])
    np.testing.assert_allclose(rows['Td'].to_value(u.K), truth['Td'][y, x].to_value(u.K),
                               rtol=1e-6)
    # astropy, pandas and a filtered, column-selected read agree
    assert QTable.read(path)['sMd'].unit == u.dex
    assert len(pd.read_parquet(path, columns=['galaxy', 'sLd'])) == len(table)
    sub = read_training_table(path, columns=['WISE_3.4'], scales=['8arcsec'])
    assert sub.colnames == ['galaxy', 'scale', 'WISE_3.4']
    assert len(sub) == ok['n_rows'][ok['scale'] == '8arcsec'].sum()
    stored = read_training_summary(path)
    assert stored['status'].tolist() == summary['status'].tolist()


def test_weights_per_galaxy_and_scale():
    """A galaxy with 1e4 pixels counts as one with 10, at each scale."""
    galaxy = ['big'] * 10000 + ['small'] * 10 + ['big'] * 10 + ['small'] * 10000
    scale = ['18'] * 10010 + ['36'] * 10010
    w = pixel_weights(QTable({'galaxy': galaxy, 'scale': scale}))
    g, s = np.array(galaxy), np.array(scale)
    for gal in ('big', 'small'):
        for sc in ('18', '36'):
            assert w[(g == gal) & (s == sc)].sum() == pytest.approx(1.0)


def test_weights_in_the_fit():
    """Colours that say nothing: the fit predicts the mean of the galaxies, not of the pixels."""
    n = {'a': 10000, 'b': 10, 'c': 10000, 'd': 10}
    target = {'a': 0.0, 'b': 1.0, 'c': 0.0, 'd': 1.0}
    galaxy = np.concatenate([[g] * k for g, k in n.items()])
    rows = len(galaxy)
    # two colour vectors, alternating: every galaxy has half of its pixels at each
    two = np.arange(rows) % 2
    table = QTable({'galaxy': galaxy, 'scale': np.full(rows, '18arcsec'),
                    'WISE_3.4': (1 + 0.1 * two) * u.Jy, 'WISE_4.6': (0.5 + 0.2 * two) * u.Jy,
                    'WISE_12': (0.2 + 0.1 * two) * u.Jy,
                    'pixel_area': np.full(rows, 1e-8) * u.sr,
                    'pixel_scale_pc': (400 + 100 * two) * u.pc,
                    'Td': np.array([target[g] for g in galaxy]) * u.K})
    model = DustModel(bands=['WISE_3.4', 'WISE_4.6', 'WISE_12'], n_estimators=5,
                      n_dropout=0, sigma_rounds=5, n_inner_splits=2, include_scale=True)
    fit_resolved(table, ['Td'], model=model)
    pred = model.predict(table[:2], warn=False)['Td'].to_value(u.K)
    np.testing.assert_allclose(pred, 0.5, atol=0.02)  # unweighted: 20/20020 = 0.001


@pytest.mark.slow
def test_grouped_across_scales(survey):
    path, _ = survey
    table = read_training_table(path)
    assert len(set(table['scale'])) == 3
    result = cross_validate_resolved(table, ['sLd', 'Td'], model=small_model(), n_splits=3,
                                     n_bootstrap=5)
    galaxy = np.asarray(table['galaxy'])
    for train, test in result.folds:
        assert not set(galaxy[train]) & set(galaxy[test])
    # every galaxy is tested once, with all its scales in the same fold
    for g in set(galaxy):
        assert len(set(result.predictions['fold'][galaxy == g])) == 1
    assert set(result.per_scale['scale']) == {'8arcsec', '12arcsec', '1kpc'}
    assert result.metrics['scale'].tolist() == ['all', 'all']
    assert np.all(result.per_scale['n_galaxies'] == 5)


@pytest.mark.slow
def test_fit_and_evaluate_held_out(survey):
    path, _ = survey
    train = read_training_table(path, galaxies=['mock1', 'mock2', 'mock3', 'mock4'])
    test = read_training_table(path, galaxies=['mock5'])
    model = fit_resolved(train, ['sMd'], model=small_model())
    assert model.card['training']['scales'] == ['12arcsec', '1kpc', '8arcsec']
    result = evaluate_resolved(model, test, ['sMd'], n_bootstrap=5)
    # the per-scale RMSE is the plain RMSE of that scale's pixels (one galaxy)
    pred = model.predict(test, warn=False)['sMd'].to_value(u.dex)
    for row in result.per_scale:
        sel = np.asarray(test['scale']) == row['scale']
        true = test['sMd'].to_value(u.dex)[sel]
        ok = np.isfinite(pred[sel]) & np.isfinite(true)
        assert row['rmse'] == pytest.approx(np.sqrt(np.mean((pred[sel] - true)[ok] ** 2)),
                                            rel=1e-5)
    # mock colours carry the dust: better than predicting the training mean
    spread = np.nanstd(test['sMd'].to_value(u.dex))
    assert result.metrics['rmse'][0] < spread


def test_failures_recorded(tmp_path):
    """A galaxy that cannot be read is reported, the others are written."""
    broken = {'name': 'broken', 'images': {'WISE_12': mock(1).images['WISE_12']},
              'distance': 10 * u.Mpc, 'center': mock(1).galaxy['center'],
              'semimajor': SEMIMAJOR}
    with pytest.warns(AstroDustMLWarning, match='2 galaxy entries or scales failed'):
        summary = build_training_table([broken, mock(2), mock(2)], scales=[12 * u.arcsec],
                                       bands=BANDS, output=tmp_path / 'p.parquet',
                                       progress=False)
    status = {(r['galaxy'], r['status']): r['reason'] for r in summary}
    assert ('mock2', 'ok') in status
    assert 'No WISE 3.4' in status['broken', 'failed']
    assert 'used twice' in status['mock2', 'failed']
    assert set(read_training_table(tmp_path / 'p.parquet')['galaxy']) == {'mock2'}


def test_map_truth_and_global_rows(tmp_path):
    """Truth from given maps (reprojected to the pixel grid); a global row per galaxy."""
    m = mock(4)
    galaxy = TrainingGalaxy(name='given', images=m.images, distance=m.galaxy['distance'],
                            center=m.galaxy['center'], semimajor=SEMIMAJOR,
                            axis_ratio=m.galaxy['axis_ratio'],
                            position_angle=m.galaxy['position_angle'],
                            truth=MapTruth(m.truth),
                            global_truth={'sLd': 0.5 * u.dex, 'sMd': -2.5 * u.dex,
                                          'Td': 21 * u.K})
    summary = build_training_table([galaxy], scales=[12 * u.arcsec], bands=BANDS,
                                   output=tmp_path / 'p.parquet', include_global=True,
                                   progress=False)
    assert summary['status'].tolist() == ['ok', 'ok']
    table = read_training_table(tmp_path / 'p.parquet')
    pixels, row = table[table['scale'] == '12arcsec'], table[table['scale'] == 'global']
    # against the exact truth at that resolution: averaging a 6-arcsec map over
    # 12-arcsec pixels differs by little (log of ratios vs ratio of sums)
    aligned = align_images(prepare_images(m.images, galaxy=m.galaxy), target=12 * u.arcsec,
                           pixel_scale=12 * u.arcsec)
    exact = m.truth_maps(aligned.meta['wcs'], aligned.meta['shape'], 12 * u.arcsec)
    y, x = np.asarray(pixels['y']), np.asarray(pixels['x'])
    diff = pixels['sMd'].to_value(u.dex) - exact['sMd'][y, x].to_value(u.dex)
    assert np.nanmedian(np.abs(diff)) < 0.05
    assert np.isfinite(diff).mean() > 0.9
    # the global row: the catalogue truth, and the aperture's scale (pi a b, in pc)
    assert row['Td'][0].to_value(u.K) == pytest.approx(21)
    area = np.pi * SEMIMAJOR * SEMIMAJOR * m.galaxy['axis_ratio']
    expected = (np.sqrt(area).to_value(u.rad) * m.galaxy['distance']).to_value(u.pc)
    assert row['pixel_scale_pc'][0].to_value(u.pc) == pytest.approx(expected, rel=0.03)


@pytest.mark.slow
def test_mixed_global_and_pixel_training(tmp_path):
    """Global rows (one per galaxy, at the aperture's scale) train along with the pixels."""
    def galaxies():
        for seed in (1, 2, 3, 4):
            m = mock(seed)
            yield TrainingGalaxy(name=f'g{seed}', images=m.images, distance=10 * u.Mpc,
                                 center=m.galaxy['center'], semimajor=SEMIMAJOR,
                                 truth=m, global_truth={'Td': (20 + seed) * u.K})
    build_training_table(galaxies(), scales=[12 * u.arcsec], bands=BANDS,
                         output=tmp_path / 'p.parquet', include_global=True, progress=False)
    table = read_training_table(tmp_path / 'p.parquet')
    is_global = table['scale'] == 'global'
    assert is_global.sum() == 4
    # the aperture (the D25 ellipse, b/a 0.6) is several times the 12 arcsec pixel
    assert np.all(table['pixel_scale_pc'][is_global] > 3 * table['pixel_scale_pc'][~is_global][0])
    assert np.all(pixel_weights(table)[is_global] == 1)
    model = fit_resolved(table, ['Td'], model=small_model())
    assert model.card['training']['scales'] == ['12arcsec', 'global']
    assert model.card['training']['n_rows'] == len(table)
    assert np.all(np.isfinite(model.predict(table[is_global], warn=False)['Td']))


def test_bad_scale(tmp_path):
    with pytest.raises(ValueError, match='not a known scale'):
        build_training_table([], scales=['5 furlongs'], output=tmp_path / 'p.parquet')
    with pytest.raises(TypeError, match='wrap a single galaxy in a list'):
        build_training_table(mock(1), scales=['18arcsec'], output=tmp_path / 'p.parquet')
    custom = Scale('wide', 40 * u.arcsec)
    assert custom.angular_fwhm(None) == 40 * u.arcsec


def _write_survey(folder, seeds):
    """Mock galaxies as FITS images, true maps and a galaxy list (ECSV)."""
    from astropy.io import fits
    from astropy.table import Table

    from astro_dustml.maps import write_dust_maps
    rows = []
    for seed in seeds:
        m = mock(seed)
        files = []
        for band, image in m.images.items():
            path = folder / f'{m.galaxy["name"]}_{band}.fits'
            fits.PrimaryHDU(image.data, header=image.meta['header']).writeto(path)
            files.append(path.name)
        write_dust_maps(m.truth, folder / f'{m.galaxy["name"]}_truth.fits')
        g = m.galaxy
        rows.append({'name': g['name'], 'files': ' '.join(files),
                     'distance': g['distance'].to_value(u.Mpc), 'ra': g['center'].ra.deg,
                     'dec': g['center'].dec.deg,
                     'semimajor': g['semimajor'].to_value(u.arcsec),
                     'axis_ratio': g['axis_ratio'],
                     'position_angle': g['position_angle'].to_value(u.deg),
                     'truth': f'{g["name"]}_truth.fits'})
    table = Table(rows=rows)
    table['distance'].unit = u.Mpc
    table.write(folder / 'galaxies.ecsv')
    return folder / 'galaxies.ecsv'


@pytest.mark.slow
def test_cli_build_table_and_train(tmp_path):
    from astro_dustml.model.registry import get_model
    from astro_dustml.tests.test_cli import run

    galaxies = _write_survey(tmp_path, range(1, 6))
    out = tmp_path / 'pixels.parquet'
    proc = run('build-table', galaxies, '-o', out, '--scales', '8arcsec', '12arcsec',
               '36arcsec', '--bands', *BANDS, '--no-progress')
    assert proc.returncode == 0, proc.stderr
    assert '5 skipped, 0 failed' in proc.stdout  # 36 arcsec > the 30 arcsec semi-major axis
    table = read_training_table(out)
    assert set(table['scale']) == {'8arcsec', '12arcsec'}
    assert np.isfinite(table['sLd']).mean() > 0.9  # truth read from the FITS maps

    model_dir = tmp_path / 'model'
    proc = run('train', out, '--targets', 'sLd', 'Td',
               '--n-estimators', 10, '--cv-folds', 5, '--max-pixels', 30, '-o', model_dir)
    assert proc.returncode == 0, proc.stderr
    assert 'per scale' in proc.stdout and '12arcsec' in proc.stdout
    model = get_model(str(model_dir))
    assert model.card['training']['scales'] == ['12arcsec', '8arcsec']
    assert model.card['bands'] == list(BANDS)  # the input bands the table has
    assert 'log_pixel_scale_pc' in model.card['features']
    per_scale = {r['scale'] for r in model.card['cv_metrics']['per_scale']}
    assert per_scale == {'8arcsec', '12arcsec'}
    # at most 30 pixels per galaxy and scale went in
    assert model.card['training']['n_rows'] <= 5 * 2 * 30


def test_cli_errors(tmp_path):
    from astropy.table import Table

    from astro_dustml.tests.test_cli import _one_line_error, run

    Table({'name': ['x']}).write(tmp_path / 'bad.ecsv')
    proc = run('build-table', tmp_path / 'bad.ecsv', '-o', tmp_path / 'p.parquet')
    assert proc.returncode == 1
    assert 'needs name, files' in _one_line_error(proc)
    proc = run('build-table', tmp_path / 'bad.ecsv', '-o', tmp_path / 'p.parquet',
               '--scales', '5furlong')
    assert proc.returncode == 2


# -- overwrite replaces only the package's own outputs, never half-way (issue 23) --


def _skipped_only():
    """A galaxy too small for the 18 arcsec pixel: a build that reads nothing."""
    return [TrainingGalaxy(name='small', images=_never_read, distance=10 * u.Mpc,
                           center=mock(1).galaxy['center'], semimajor=10 * u.arcsec)]


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _foreign_parquet(folder):
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({'x': [1, 2]}), folder / 'p.parquet')


@pytest.mark.parametrize('make, name', [
    (lambda t: (t / 'p.parquet').write_text('my notes'), 'p.parquet'),
    (_foreign_parquet, 'p.parquet'),
    (lambda t: QTable({'a': [1]}).write(t / 'p.summary.ecsv'), 'p.summary.ecsv'),
], ids=['text file at the output', 'Parquet of another tool', 'foreign summary ECSV'])
def test_overwrite_leaves_foreign_outputs(tmp_path, make, name):
    make(tmp_path)
    before = _files(tmp_path)
    with pytest.raises(FileExistsError) as info:
        build_training_table(_skipped_only(), scales=['18arcsec'],
                             output=tmp_path / 'p.parquet', overwrite=True, progress=False)
    for word in (name, 'not written as', 'build_training_table', 'left alone'):
        assert word in str(info.value), str(info.value)
    assert _files(tmp_path) == before


def test_interrupted_build_leaves_the_old_table(tmp_path):
    output = tmp_path / 'p.parquet'
    build_training_table([mock(1)], scales=['1kpc'], bands=BANDS, output=output,
                         progress=False)
    before = _files(tmp_path)
    assert set(before) == {'p.parquet', 'p.summary.ecsv'}

    def interrupted():
        yield mock(2)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_training_table(interrupted(), scales=['1kpc'], bands=BANDS, output=output,
                             overwrite=True, progress=False)
    assert _files(tmp_path) == before  # no partial file left, the old ones untouched
    assert set(read_training_table(output)['galaxy']) == {'mock1'}
    # a complete build replaces both of the package's own outputs
    build_training_table([mock(2)], scales=['1kpc'], bands=BANDS, output=output,
                         overwrite=True, progress=False)
    assert set(read_training_table(output)['galaxy']) == {'mock2'}
    assert set(read_training_summary(output)['galaxy']) == {'mock2'}
    assert sorted(_files(tmp_path)) == ['p.parquet', 'p.summary.ecsv']
