"""Tests of astro_dustml.sed.cigale: pcigale input files and results."""

import csv

import astropy.units as u
import numpy as np
import pytest

from astro_dustml.sed import FLAG_MISSING, dust_temperature, read_cigale_results

CATALOGUE = 'dustpedia/dustpedia_cigale_results_final_version.csv'


def _text_table(path):
    """pcigale results.txt read independently: header line, split on spaces."""
    with open(path) as handle:
        names = handle.readline().split()
        return {line.split()[0]: dict(zip(names, line.split())) for line in handle}


def test_td_reproduces_dustpedia_catalogue(shared_data):
    with open(shared_data / CATALOGUE, newline='') as handle:
        rows = [r for r in csv.DictReader(handle) if r['Umin'] != 'nan']
    assert len(rows) > 500
    umin = np.array([float(r['Umin']) for r in rows])
    tdust = np.array([float(r['Tdust__K']) for r in rows])
    td = dust_temperature(umin)
    assert td.unit == u.K
    # both columns are printed rounded: allow half a unit of the last printed
    # digit of Tdust, plus that of Umin propagated through the power law

    def half_ulp(text):
        return 0.5 * 10.0 ** -len(text.partition('.')[2])
    tol = (np.array([half_ulp(r['Tdust__K']) for r in rows])
           + tdust / 5.79 * np.array([half_ulp(r['Umin']) for r in rows]) / umin)
    diff = np.abs(td.value - tdust)
    assert np.mean(diff <= tol) > 0.99
    # the few others are off by a little more than rounding (the catalogue's
    # Tdust is a Bayesian mean, not a function of the mean Umin), all < 0.01 K
    assert np.max(diff) < 0.01
    # whereas another exponent would not fit
    assert np.max(np.abs(18.3 * umin ** (1 / 5.5) - tdust)) > 1


@pytest.mark.parametrize('fit', ['cigale_uvmir', 'cigale_full'])
def test_read_real_results(shared_data, fit):
    path = shared_data / 'dustpedia' / fit / 'results.txt'
    raw = _text_table(path)
    results = read_cigale_results(path)
    assert list(results['id']) == list(raw)
    assert len(results) == 636
    row = raw['NGC3252']
    got = results[list(results['id']).index('NGC3252')]
    # bayes.<filter> (mJy) -> canonical band (Jy)
    for band, filt in [('WISE_3.4', 'WISE1'), ('GALEX_FUV', 'FUV'), ('SDSS_u', 'u_prime'),
                       ('Spitzer_8.0', 'IRAC4'), ('SPIRE_500', 'PLW_HIPE'),
                       ('PACS_100', 'PACS_green')]:
        assert u.isclose(got[band], float(row[f'bayes.{filt}']) * u.mJy, rtol=1e-14)
        assert u.isclose(got[f'{band}_err'], float(row[f'bayes.{filt}_err']) * u.mJy,
                         rtol=1e-14)
        assert got[band].unit == u.Jy
    # targets from the best-fit columns (pcigale units: W, kg, Msun)
    ldust = float(row['best.dust.luminosity']) * u.W
    mdust = float(row['best.dust.mass']) * u.kg
    mstar = float(row['best.stellar.m_star']) * u.Msun
    assert got['sLd'].unit == u.dex and got['Td'].unit == u.K
    assert np.isclose(got['sLd'].value, np.log10((ldust / mstar).to_value(u.Lsun / u.Msun)))
    assert np.isclose(got['sMd'].value, np.log10((mdust / mstar).to_value(u.one)))
    assert np.isclose(got['Td'].value, 18.3 * float(row['best.dust.umin']) ** (1 / 5.79))
    # other pcigale columns keep their names
    assert results['best.dust.qhac'][0] == float(raw[results['id'][0]]['best.dust.qhac'])


def test_full_fit_targets_match_dustpedia(shared_data):
    """Best fits of the FIREnet UV-submm run agree with the DustPedia catalogue."""
    results = read_cigale_results(shared_data / 'dustpedia' / 'cigale_full')
    with open(shared_data / CATALOGUE, newline='') as handle:
        cat = {r['id']: r for r in csv.DictReader(handle)}
    dsld, dtd = [], []
    for row in results:
        ref = cat.get(row['id'])
        if ref is None or ref['Ldust__Lsol'] == 'nan' or not np.isfinite(row['sLd']):
            continue
        dsld.append(row['sLd'].value
                    - np.log10(float(ref['Ldust__Lsol']) / float(ref['Mstar__Msol'])))
        dtd.append(row['Td'].value - float(ref['Tdust__K']))
    assert len(dsld) > 400
    assert abs(np.median(dsld)) < 0.1 and np.median(np.abs(dsld)) < 0.2
    assert abs(np.median(dtd)) < 1.5


def test_read_results_missing():
    with pytest.raises(FileNotFoundError, match='does not exist'):
        read_cigale_results('no/such/results.txt')
    with pytest.raises(ValueError, match='estimate'):
        read_cigale_results('x', estimate='mean')
    assert FLAG_MISSING == 2


# ------------------------------------------------------------------ writing

def _read_data_file(path):
    """A pcigale data file read independently: header line, split on white space."""
    with open(path) as handle:
        names = handle.readline().split()
        rows = [line.split() for line in handle if line.strip()]
    assert all(len(r) == len(names) for r in rows)
    return names, rows


def _configobj(path):
    from astropy.extern.configobj import configobj
    return configobj.ConfigObj(str(path))


def test_write_read_back_dustpedia(shared_data, tmp_path):
    from astro_dustml.sed import read_dustpedia_photometry, write_cigale_input

    table = read_dustpedia_photometry(shared_data / 'dustpedia',
                                      galaxies=['NGC5584', 'NGC0007', 'ESO149-013'])
    files = write_cigale_input(table, tmp_path / 'data.txt', kind='full')
    names, rows = _read_data_file(files.data_file)
    # the same columns, in the same order, as the real FIREnet data file (which
    # also has Planck and IRAS bands the registry does not hold)
    with open(shared_data / 'dustpedia/cigale_full/dustpedia_fluxes_full.mag') as handle:
        real = handle.readline().split()
    assert names == [n for n in real if not n.startswith(('HFI', 'IRAS'))]
    assert [r[0] for r in rows] == ['NGC5584', 'NGC0007', 'ESO149-013']
    from astro_dustml.bands import BANDS
    by_filter = {b.cigale_filter: name for name, b in BANDS.items()}
    n_invalid = 0
    for row, src in zip(rows, table):
        assert float(row[1]) == 0.0  # redshift
        for name, text in zip(names[2:], row[2:]):
            band = by_filter[name.removesuffix('_err')]
            col = band + ('_err' if name.endswith('_err') else '')
            expect = src[col].to_value(u.mJy)
            if src[f'{band}_flag'] & FLAG_MISSING:
                assert float(text) == -9999.0
                n_invalid += 1
            else:
                assert float(text) == expect  # repr precision: exact
    assert n_invalid > 0
    # as pcigale reads it (astropy ascii, white-space separated)
    from astropy.table import Table
    parsed = Table.read(files.data_file, format='ascii')
    assert parsed.colnames == names and list(parsed['id']) == [r[0] for r in rows]
    assert parsed['WISE1'][0] == table['WISE_3.4'][0].to_value(u.mJy)
    # negative fluxes are measurements: written as they are
    neg = table[table['galaxy'] == 'ESO149-013'][0]['GALEX_NUV']
    assert neg < 0 and float(rows[2][names.index('NUV')]) == neg.to_value(u.mJy)


def test_write_pixel_table_and_ini(tmp_path, shared_data):
    from astropy.table import QTable

    from astro_dustml.sed import FLAG_MASKED, write_cigale_input

    table = QTable({'galaxy': ['NGC 1'] * 3, 'x': [0, 1, 2], 'y': [5, 5, 5],
                    'distance': [10, 10, 10] * u.Mpc,
                    'WISE_3.4': [1e-3, 2e-3, 3e-3] * u.Jy,
                    'WISE_3.4_err': [1e-4, 0, 1e-4] * u.Jy,
                    'WISE_3.4_flag': np.array([0, 0, FLAG_MASKED], dtype=np.int16),
                    'SPIRE_250': [1, 2, 3] * u.Jy, 'SPIRE_250_err': [.1, .1, .1] * u.Jy})
    files = write_cigale_input(table, tmp_path / 'pixels.txt', invalid=np.nan, cores=2)
    names, rows = _read_data_file(files.data_file)
    assert names == ['id', 'redshift', 'distance', 'WISE1', 'WISE1_err']  # uvmir: no SPIRE
    assert [r[0] for r in rows] == ['NGC_1_0_5', 'NGC_1_1_5', 'NGC_1_2_5']
    assert float(rows[0][3]) == 1.0 and float(rows[0][4]) == 0.1 and float(rows[0][2]) == 10
    # zero error and masked pixel: invalid (NaN here)
    assert np.isnan(float(rows[1][3])) and np.isnan(float(rows[2][3]))
    ini = _configobj(files.ini)
    assert ini['data_file'] == 'pixels.txt' and ini['cores'] == '2'
    assert ini['bands'] == ['WISE1', 'WISE1_err']
    assert 'themis' in ini['sed_modules'] and ini['analysis_method'] == 'pdf_analysis'
    assert set(ini['analysis_params']['variables']) >= {
        'stellar.m_star', 'dust.luminosity', 'dust.mass', 'dust.umin'}
    # THEMIS grid as in the real DustPedia/FIREnet configuration
    real = _configobj(shared_data / 'dustpedia/cigale_full/pcigale.ini')
    for key in ('qhac', 'umin', 'gamma'):
        assert ([float(v) for v in ini['sed_modules_params']['themis'][key]]
                == [float(v) for v in real['sed_modules_params']['themis'][key]])
    full = write_cigale_input(table, tmp_path / 'full.txt', kind='full')
    assert _read_data_file(full.data_file)[0][-2:] == ['PSW_HIPE', 'PSW_HIPE_err']
    assert _configobj(full.ini)['bands'][-1] == 'PSW_HIPE_err'


def test_write_bad_input(tmp_path):
    from astropy.table import QTable

    from astro_dustml.sed import write_cigale_input

    table = QTable({'galaxy': ['A', 'A'], 'WISE_3.4': [1, 2] * u.Jy,
                    'WISE_3.4_err': [.1, .1] * u.Jy})
    with pytest.raises(ValueError, match='not unique'):
        write_cigale_input(table, tmp_path / 'x.txt')
    table['galaxy'] = ['A', 'B']
    table['distance'] = [1, np.nan] * u.Mpc
    with pytest.raises(ValueError, match='distance'):
        write_cigale_input(table, tmp_path / 'x.txt')
    with pytest.raises(ValueError, match='not columns'):
        write_cigale_input(table, tmp_path / 'x.txt', bands=['SDSS_g'])
    with pytest.raises(ValueError, match="kind"):
        write_cigale_input(table, tmp_path / 'x.txt', kind='submm')


def test_read_results_joined_to_table(tmp_path):
    from astropy.table import QTable

    from astro_dustml.sed import FLAG_LOW_SN

    table = QTable({'galaxy': ['G'] * 3, 'x': [0, 1, 2], 'y': [0, 0, 0],
                    'WISE_3.4': [1., 2., 3.] * u.Jy, 'WISE_3.4_err': [.1, .1, .1] * u.Jy,
                    'WISE_3.4_flag': np.zeros(3, dtype=np.int16)})
    lsun = (1 * u.Lsun).to_value(u.W)
    msun = (1 * u.Msun).to_value(u.kg)
    # pcigale's order differs and pixel G_1_0 failed
    (tmp_path / 'results.txt').write_text(
        'id bayes.WISE1 bayes.WISE1_err bayes.stellar.m_star bayes.stellar.m_star_err '
        'bayes.dust.luminosity bayes.dust.luminosity_err bayes.dust.mass '
        'bayes.dust.mass_err bayes.dust.umin bayes.dust.umin_err best.reduced_chi_square\n'
        f'G_2_0 2500.0 3000.0 1e9 1e8 {float(1e8 * lsun)!r} {float(1e7 * lsun)!r} '
        f'{float(1e6 * msun)!r} 0 1.0 0.1 0.9\n'
        f'G_0_0 1500.0 10.0 2e9 0 {float(2e10 * lsun)!r} 0 {float(2e6 * msun)!r} 0 '
        f'{2 ** 5.79!r} 0 1.1\n')
    out = read_cigale_results(tmp_path, table)
    assert list(out['x']) == [0, 1, 2]
    assert u.allclose(out['WISE_3.4'][[0, 2]], [1.5, 2.5] * u.Jy)
    assert u.allclose(out['WISE_3.4_obs'], table['WISE_3.4'])
    assert np.isnan(out['WISE_3.4'][1]) and out['WISE_3.4_flag'][1] == FLAG_MISSING
    assert out['WISE_3.4_flag'][2] == FLAG_LOW_SN
    assert u.allclose(out['sLd'][[0, 2]], [1.0, -1.0] * u.dex)
    assert u.allclose(out['sMd'][[0, 2]], [-3.0, -3.0] * u.dex)
    assert u.allclose(out['Td'][[0, 2]], [18.3 * 2, 18.3] * u.K)
    # errors propagated: sLd of G_2_0 from 10% on L and 10% on M
    assert u.isclose(out['sLd_err'][2], np.hypot(0.1, 0.1) / np.log(10) * u.dex)
    assert u.isclose(out['Td_err'][2], 18.3 * 0.1 / 5.79 * u.K)
    assert np.isnan(out['sLd'][1]) and np.allclose(out['red_chi2'][[0, 2]], [1.1, 0.9])
    assert 'WISE_3.4_obs' not in table.colnames  # input untouched
    kept = read_cigale_results(tmp_path / 'results.txt', table, replace_fluxes=False)
    assert u.allclose(kept['WISE_3.4'], table['WISE_3.4']) and 'sLd' in kept.colnames


def test_run_cigale_needs_pcigale(tmp_path):
    from astro_dustml.sed import run_cigale
    try:
        import pcigale  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match='cigale.lam.fr'):
            run_cigale(tmp_path)
    else:
        pytest.skip('pcigale is installed')


def test_run_cigale(tmp_path):
    pytest.importorskip('pcigale')
    # a real (small) fit would need pcigale's database; only check it starts
    from astro_dustml.sed import run_cigale
    with pytest.raises(FileNotFoundError, match='missing.ini'):
        run_cigale(tmp_path, config='missing.ini')


def test_read_results_fits(shared_data, tmp_path):
    """results.fits (units in the header) reads as results.txt does."""
    from astropy.io import ascii

    path = shared_data / 'dustpedia' / 'cigale_full' / 'results.txt'
    raw = ascii.read(path, format='basic')[:20]
    raw['bayes.WISE1'].unit = 'mJy'
    raw['best.dust.luminosity'].unit = 'W'
    raw['best.dust.mass'].unit = 'kg'
    raw['best.stellar.m_star'].unit = 'solMass'
    raw.write(tmp_path / 'results.fits')
    from_fits = read_cigale_results(tmp_path)
    from_text = read_cigale_results(path)[:20]
    assert list(from_fits['id']) == list(from_text['id'])
    for col in ('WISE_3.4', 'SPIRE_250', 'sLd', 'sMd', 'Td'):
        assert u.allclose(from_fits[col], from_text[col], equal_nan=True, rtol=1e-12)
