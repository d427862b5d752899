"""Tests of the astro-dustml command line, run as a separate process."""

import os
import subprocess
import sys

import pytest

from astro_dustml.tests import _mock_training as mt


def run(*args, cwd=None):
    env = dict(os.environ, PYTHONWARNINGS='ignore::DeprecationWarning')
    env.pop('ASTRO_DUSTML_TRACEBACK', None)
    return subprocess.run([sys.executable, '-m', 'astro_dustml.cli', *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def _one_line_error(proc):
    assert 'Traceback' not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith('astro-dustml')]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_help():
    proc = run('--help')
    assert proc.returncode == 0
    for command in ('estimate', 'models', 'train', 'example', 'exit status'):
        assert command in proc.stdout
    proc = run('estimate', '--help')
    assert proc.returncode == 0
    for option in ('--band', '--distance', '--ebv', '--gaia', '--model', '--plot',
                   '--output', '--no-progress', '--pixel-scale', '--resolution'):
        assert option in proc.stdout
    for sub in (('models', '--help'), ('train', '--help'), ('example', '--help')):
        assert run(*sub).returncode == 0


def test_usage_errors_exit_2(tmp_path):
    proc = run('estimate', 'x.fits')  # no -o
    assert proc.returncode == 2
    assert 'required' in proc.stderr and 'Traceback' not in proc.stderr
    assert run().returncode == 2
    assert run('frobnicate').returncode == 2
    proc = run('estimate', 'x.fits', '--distance', '9', '-o', tmp_path / 'm.fits')
    assert proc.returncode == 2
    assert '--distance' in _one_line_error(proc)
    proc = run('estimate', 'a.fits', 'b.fits', '--band', 'W1', '-o', tmp_path / 'm.fits')
    assert proc.returncode == 2
    assert 'one --band per image' in _one_line_error(proc)


def test_runtime_error_exit_1_real_ngc5584(shared_data, tmp_path):
    paths = [shared_data / 'images' / f'NGC5584_{b}.fits.gz'
             for b in ('GALEX_NUV', 'WISE_12', 'PACS_100', 'SPIRE_250')]
    # The WISE 12 header does not say its band: name every band
    bands = [arg for b in ('GALEX_NUV', 'WISE_12', 'PACS_100', 'SPIRE_250')
             for arg in ('--band', b)]
    proc = run('estimate', *paths, *bands, '-o', tmp_path / 'maps.fits')
    assert proc.returncode == 1
    line = _one_line_error(proc)
    assert 'WISE 3.4 µm' in line
    assert not (tmp_path / 'maps.fits').exists()


def test_missing_file_exit_1(tmp_path):
    proc = run('estimate', tmp_path / 'nope.fits', '-o', tmp_path / 'maps.fits')
    assert proc.returncode == 1
    assert 'nope.fits' in _one_line_error(proc)


def test_models_list():
    proc = run('models', 'list')
    assert proc.returncode == 0
    assert 'default model' in proc.stdout
    proc = run('models', 'download', 'no-such-model')
    assert proc.returncode == 1
    assert 'Unknown model' in _one_line_error(proc)


def test_train_example_estimate_plot(tmp_path):
    """train a model from a table file, write the example, estimate and plot."""
    from astro_dustml.maps import read_dust_maps
    from astro_dustml.model.registry import get_model

    table = mt.training_table().copy()
    table.meta = {}
    table_path = tmp_path / 'train.ecsv'
    table.write(table_path)
    model_dir = tmp_path / 'model'
    proc = run('train', table_path, '--targets', 'sLd', 'sMd', 'Td', '--groups', 'block',
               '--bands', *mt.BANDS, '--n-estimators', 20, '--name', 'cli-test',
               '-o', model_dir)
    assert proc.returncode == 0, proc.stderr
    model = get_model(str(model_dir))
    assert model.card['name'] == 'cli-test'
    assert model.card['bands'] == list(mt.BANDS)

    proc = run('example', tmp_path / 'mock', '--fov', '2arcmin')
    assert proc.returncode == 0, proc.stderr
    images = sorted((tmp_path / 'mock').glob('mock_*.fits'))
    assert len(images) == 18
    assert (tmp_path / 'mock' / 'truth.fits.gz').exists()

    # The galaxy ellipse as printed by the example command (mock defaults)
    assert '--center 150 2 --semimajor 60arcsec --axis-ratio 0.6' in proc.stdout
    proc = run('estimate', *images, '--distance', '10Mpc', '--model', model_dir,
               '--center', 150, 2, '--semimajor', '60arcsec', '--axis-ratio', 0.6,
               '--position-angle', '30deg',
               '--pixel-scale', '3arcsec', '--no-progress', '-o', tmp_path / 'maps.fits',
               '--plot', tmp_path / 'maps.png')
    assert proc.returncode == 0, proc.stderr
    maps = read_dust_maps(tmp_path / 'maps.fits')
    assert list(maps.keys()) == ['sLd', 'sMd', 'Td']
    assert (~maps['Td'].mask).sum() > 50
    # Only the galaxy ellipse is estimated: the corners are outside
    assert maps['Td'].mask[0, 0] and maps['Td'].mask[-1, -1]
    assert maps.meta['model']['name'] == 'cli-test'
    assert (tmp_path / 'maps.png').stat().st_size > 10000
    # Refuses to overwrite without --overwrite
    proc = run('estimate', *images, '--model', model_dir, '-o', tmp_path / 'maps.fits')
    assert proc.returncode == 1
    assert '--overwrite' in _one_line_error(proc)


@pytest.mark.parametrize('argv', [['models', 'list']])
def test_main_in_process(argv, capsys):
    from astro_dustml.cli import main
    assert main(argv) == 0
    assert main(['--version']) == 0
    assert main(['estimate']) == 2
    out = capsys.readouterr()
    assert 'astro-dustml' in out.out + out.err


# -- --overwrite replaces only the package's own outputs, before any work (issue 23) --


def _foreign_fits(t):
    import numpy as np
    from astropy.io import fits
    fits.PrimaryHDU(np.ones((2, 2))).writeto(t / 'out.fits')
    return t / 'out.fits'


def _foreign_card(t):
    (t / 'model').mkdir()
    (t / 'model' / 'model.json').write_text('{"name": "my config"}')
    return t / 'model'


def _bundled_copy(t):
    import shutil
    from pathlib import Path

    from astro_dustml.model.registry import _bundled_models
    return Path(shutil.copytree(_bundled_models()['dustpedia-global'], t / 'model'))


def _snapshot(path):
    if path.is_dir():
        return {p.name: p.read_bytes() for p in path.iterdir()}
    return path.read_bytes()


# (id, existing output, argv given the output, words of the one-line error);
# the inputs do not exist: the output is checked before any of them is read
OVERWRITE_CASES = [
    ('estimate --overwrite over a FITS file of another tool', _foreign_fits,
     lambda t, o: ['estimate', t / 'nope.fits', '-o', o, '--overwrite'],
     ['out.fits', 'not written as a dust-map file', 'left alone', 'even with overwrite']),
    ('train --overwrite over a folder with a foreign model.json', _foreign_card,
     lambda t, o: ['train', t / 'nope.ecsv', '-o', o, '--overwrite'],
     ['model.json is not a model card of astro_dustml', 'left alone']),
    ('train over a model without --overwrite: refused before training', _bundled_copy,
     lambda t, o: ['train', t / 'nope.ecsv', '-o', o],
     ['already holds a model', 'pass --overwrite']),
]


@pytest.mark.parametrize('make, argv, words',
                         [pytest.param(*case[1:], id=case[0]) for case in OVERWRITE_CASES])
def test_overwrite_only_own_outputs(tmp_path, capsys, make, argv, words):
    from astro_dustml.cli import main
    output = make(tmp_path)
    before = _snapshot(output)
    assert main([str(a) for a in argv(tmp_path, output)]) == 1
    err = capsys.readouterr().err
    for word in words:
        assert word in err, err
    assert 'nope' not in err  # refused before the inputs were read
    assert _snapshot(output) == before


def test_models_build_reports_a_shipped_band_set(capsys):
    import hashlib

    from astro_dustml.cli import main
    from astro_dustml.model.band_set_routing import _shipped_folder
    name = 'dustpedia-bands-wise1234'
    if _shipped_folder(name) is None:
        pytest.skip('shipped band-set models not built')
    assert main(['models', 'build', '--bands', 'W1,W2,W3,W4']) == 0
    out = capsys.readouterr().out
    sha = hashlib.sha256((_shipped_folder(name) / 'model.json').read_bytes()).hexdigest()
    assert f'{name}: shipped with the package' in out
    assert sha in out


def test_models_build_refuses_a_set_without_wise1(capsys):
    from astro_dustml.cli import main
    assert main(['models', 'build', '--bands', 'W2,W3']) == 2
    err = capsys.readouterr().err
    assert 'WISE_3.4' in err and 'add it' in err
