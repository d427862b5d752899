"""Truth source 1: pcigale per pixel of a multi-scale training table, end to end."""

import astropy.units as u
import numpy as np
from astropy.io import ascii
from astropy.table import QTable

from astro_dustml.bands import get_band
from astro_dustml.datasets import make_mock_galaxy
from astro_dustml.model import DustModel
from astro_dustml.sed import FLAG_MISSING, read_cigale_results, write_cigale_input
from astro_dustml.training import (
    TrainingGalaxy,
    build_training_table,
    fit_resolved,
    read_training_table,
)

BANDS = ('GALEX_NUV', 'SDSS_r', 'WISE_3.4', 'WISE_4.6', 'WISE_12')


def test_pcigale_route(shared_data, tmp_path):
    galaxies = []
    for seed, name in ((4, 'NGC 1'), (5, 'NGC 2')):
        mock = make_mock_galaxy(bands=BANDS, seed=seed, fov=1.5 * u.arcmin,
                                semimajor=30 * u.arcsec, distance=10 * u.Mpc, name=name)
        # the images alone: no truth source, so the targets are NaN
        galaxies.append(TrainingGalaxy(name=name, images=mock.images, distance=10 * u.Mpc,
                                       center=mock.galaxy['center'], semimajor=30 * u.arcsec))
    build_training_table(galaxies, scales=[8 * u.arcsec, 12 * u.arcsec], bands=BANDS,
                         output=tmp_path / 'pixels.parquet', progress=False)
    table = read_training_table(tmp_path / 'pixels.parquet')
    assert np.all(np.isnan(table['sMd']))
    # pixel positions repeat across scales: one pcigale id per row
    table['id'] = [f'{g}_{s}_{x}_{y}' for g, s, x, y in
                   zip(table['galaxy'], table['scale'], table['x'], table['y'])]
    (tmp_path / 'cigale' / 'out').mkdir(parents=True)
    files = write_cigale_input(table, tmp_path / 'cigale' / 'data.txt', kind='full')
    written = ascii.read(files.data_file, format='basic', guess=False,
                         converters={'id': [ascii.convert_numpy(str)]})
    ids = [i.replace(' ', '_') for i in table['id']]  # pcigale ids have no blanks
    assert list(written['id']) == ids

    # pcigale's results.txt: the real UV-MIR fit's columns, values known here
    real = ascii.read(shared_data / 'dustpedia' / 'cigale_uvmir' / 'results.txt',
                      format='basic', guess=False)
    rng = np.random.default_rng(0)
    n = len(table)
    order = rng.permutation(n)[:-1]  # pcigale's own order; the last pixel failed
    mstar = 10 ** rng.uniform(6, 8, n)
    smd = rng.uniform(-3.5, -2, n)
    sld = rng.uniform(-0.5, 1, n)
    umin = 10 ** rng.uniform(-0.5, 1, n)
    w1 = rng.uniform(1, 5, n)  # mJy
    values = {'best.stellar.m_star': mstar,
              'best.dust.mass': (10 ** smd * mstar * u.Msun).to_value(u.kg),
              'best.dust.luminosity': (10 ** sld * mstar * u.Lsun).to_value(u.W),
              'best.dust.umin': umin, 'bayes.WISE1': w1, 'bayes.WISE1_err': 0.05 * w1}
    lines = [' '.join(real.colnames)]
    for k in order:
        row = [ids[k] if c == 'id' else repr(float(values[c][k])) if c in values
               else str(real[c][0]) for c in real.colnames]
        lines.append(' '.join(row))
    (tmp_path / 'cigale' / 'out' / 'results.txt').write_text('\n'.join(lines) + '\n')

    joined = read_cigale_results(tmp_path / 'cigale' / 'out', table)
    assert len(joined) == n and list(joined['id']) == list(table['id'])
    done = np.zeros(n, bool)
    done[order] = True
    # the targets of the known values: log ratios, and Td = 18.3 K Umin^(1/5.79)
    np.testing.assert_allclose(joined['sMd'].to_value(u.dex)[done], smd[done], atol=1e-9)
    np.testing.assert_allclose(joined['sLd'].to_value(u.dex)[done], sld[done], atol=1e-9)
    np.testing.assert_allclose(joined['Td'].to_value(u.K)[done],
                               18.3 * umin[done] ** (1 / 5.79), rtol=1e-9)
    assert np.isnan(joined['sMd'][~done]).all()
    assert (joined['WISE_3.4_flag'][~done] == FLAG_MISSING).all()
    # the Bayesian fluxes replace the observed ones, which are kept
    np.testing.assert_allclose(joined['WISE_3.4'].to_value(u.mJy)[done], w1[done])
    assert u.allclose(joined['WISE_3.4_obs'], table['WISE_3.4'])
    assert get_band('WISE_3.4').cigale_filter == 'WISE1'
    # and the joined table trains, grouped by galaxy across scales
    model = DustModel(bands=list(BANDS), n_estimators=5, n_dropout=0, sigma_rounds=5,
                      n_inner_splits=2, include_scale=True)
    fit_resolved(joined[done], ['sMd'], model=model)
    assert sorted(model.card['training']['scales']) == ['12arcsec', '8arcsec']
    pred = model.predict(QTable(joined[done][:3]), warn=False)['sMd']
    assert np.all(np.isfinite(pred)) and pred.unit == u.dex
