"""
The README's quick start as a newcomer runs it: twice, in the same folder.

The command is read from README.rst (the line CI runs verbatim), so the test
follows any change to it.
"""

import glob
import re
import shlex
import warnings
from pathlib import Path

import pytest

from astro_dustml.cli import main

README = Path(__file__).resolve().parents[2] / 'README.rst'


def _quickstart_commands():
    """The astro-dustml commands of the README's quick-start line, as argv lists."""
    text = README.read_text()
    line = next(line for line in text.splitlines() if 'astro-dustml example' in line)
    commands = []
    for part in line.split('&&'):
        argv = shlex.split(part)
        if argv and argv[0] == 'astro-dustml':
            commands.append(argv[1:])
    assert [c[0] for c in commands] == ['example', 'estimate'], line
    return commands


def _run(argv):
    expanded = []
    for arg in argv:  # the shell's glob, in its (sorted) order
        expanded.extend(sorted(glob.glob(arg)) if any(c in arg for c in '*?[') else [arg])
    with warnings.catch_warnings():
        # the CLI reports library warnings (out-of-domain pixels) once each
        warnings.simplefilter('ignore')
        return main(expanded)


@pytest.mark.slow
def test_readme_quickstart_runs_twice(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    commands = _quickstart_commands()
    for attempt in (1, 2):
        for argv in commands:
            status = _run(argv)
            err = capsys.readouterr().err
            assert status == 0, (attempt, argv[0], err)
    assert (tmp_path / 'maps.fits').is_file() and (tmp_path / 'maps.png').is_file()


def test_example_rerun_and_another_mock(tmp_path, capsys):
    out = tmp_path / 'mock'
    args = ['example', str(out), '--fov', '1arcmin']
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith('wrote 18 images')
    stamp = (out / 'mock_WISE_3.4.fits').stat().st_mtime_ns
    assert main(args) == 0  # the same mock: found there, left as it is
    assert 'found the same mock already there' in capsys.readouterr().out
    assert (out / 'mock_WISE_3.4.fits').stat().st_mtime_ns == stamp
    # another mock into the same folder: refused, with the command-line flag
    assert main([*args, '--seed', '1']) == 1
    err = capsys.readouterr().err
    assert '--overwrite' in err and 'overwrite=True' not in err, err
    assert main([*args, '--seed', '1', '--overwrite']) == 0
    assert (out / 'mock_WISE_3.4.fits').stat().st_mtime_ns != stamp


def test_example_help_names_the_files_it_writes(tmp_path, capsys):
    assert main(['example', '--help']) == 0
    text = ' '.join(capsys.readouterr().out.split())
    assert 'truth.fits.gz' in text
    assert not re.search(r'truth\.fits(?!\.gz)', text)
    assert main(['example', str(tmp_path), '--fov', '1arcmin']) == 0
    capsys.readouterr()
    assert (tmp_path / 'truth.fits.gz').is_file()
    assert not (tmp_path / 'truth.fits').exists()
