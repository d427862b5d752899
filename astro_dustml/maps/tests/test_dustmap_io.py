"""
The dust-map FITS file: its headers tell the inputs given, and it round-trips.

The expected header values are the inputs the test gives (galaxy ellipse,
distance, bands, ...) and the SHA-256 of the model card file computed here
with hashlib, never values read back from the code under test.
"""

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.io.fits.scripts import fitsheader
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.wcs import WCS
from ndcube import NDCollection

import astro_dustml
from astro_dustml import __version__, conf
from astro_dustml.maps import MAP_FLAGS, model_sha256, read_dust_maps, write_dust_maps

MODELS = Path(astro_dustml.__file__).parent / 'data' / 'models'

# The galaxy and job the maps below pretend to come from
CENTER = SkyCoord(150.1 * u.deg, 2.2 * u.deg)
GALAXY = {'name': 'NGC 9999', 'center': CENTER.to_string('hmsdms', precision=3),
          'semimajor': 60 * u.arcsec, 'axis_ratio': 0.5, 'position_angle': 30 * u.deg}
INPUTS = ['2MASS_J', 'WISE_3.4', 'WISE_4.6']
SHAPE = (12, 14)


def _card_file(name):
    return MODELS / name / 'model.json'


def _wcs():
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.crval = [150.1, 2.2]
    wcs.wcs.crpix = [7.5, 6.5]
    wcs.wcs.cdelt = [-6 / 3600, 6 / 3600]
    return wcs


@pytest.fixture(scope='module')
def maps():
    card = json.loads(_card_file(conf.default_model).read_text())
    rng = np.random.default_rng(1)
    flags = np.zeros(SHAPE, dtype=np.int16)
    flags[:, :2] = MAP_FLAGS['OUTSIDE']
    flags[5, 7] = MAP_FLAGS['OUT_OF_DOMAIN']
    meta = {'model': card, 'model_name': conf.default_model, 'inputs': INPUTS,
            'ignored_bands': ['PACS_100'], 'psf_fwhm': 12.5 * u.arcsec,
            'pixel_scale': 6 * u.arcsec, 'distance': 9.5 * u.Mpc, 'ebv': 0.031,
            'galaxy': GALAXY, 'out_of_domain_fraction': 1 / 144, 'version': __version__}
    members = []
    for name, unit, centre in [('sLd', u.dex, 0.3), ('sMd', u.dex, -2.7), ('Td', u.K, 22.)]:
        # As estimate_dust_maps makes them: NaN outside the galaxy
        data = np.where(flags & MAP_FLAGS['OUTSIDE'], np.nan, centre + rng.normal(0, 0.1, SHAPE))
        sigma = np.where(np.isnan(data), np.nan, 0.2)
        members.append((name, CCDData(data, unit=unit, wcs=_wcs(), mask=flags != 0,
                                      uncertainty=StdDevUncertainty(sigma),
                                      meta=dict(meta, quantity=name))))
    return NDCollection(members, aligned_axes='all', meta=dict(meta, flags=flags))


@pytest.fixture(scope='module')
def written(maps, tmp_path_factory):
    path = tmp_path_factory.mktemp('maps') / 'maps.fits'
    write_dust_maps(maps, path)
    return path


def test_model_sha256_is_that_of_the_card_file():
    for folder in sorted(MODELS.iterdir()):
        expected = hashlib.sha256(_card_file(folder.name).read_bytes()).hexdigest()
        assert model_sha256(json.loads(_card_file(folder.name).read_text())) == expected
    # An unsaved model (no files on its card) has no hash
    assert model_sha256({'name': 'fresh', 'bands': INPUTS}) is None


def test_primary_header_provenance(written):
    header = fits.getheader(written, 0)
    assert header['MODEL'] == conf.default_model
    assert header['MODELSHA'] == hashlib.sha256(
        _card_file(conf.default_model).read_bytes()).hexdigest()
    assert header['DMLVERS'] == __version__
    date = datetime.fromisoformat(header['DATE']).replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - date).total_seconds()) < 600
    assert header['NINPUT'] == 3
    assert [header[f'INBAND{i}'] for i in (1, 2, 3)] == INPUTS
    assert header['IGBAND1'] == 'PACS_100'
    assert header['PSFFWHM'] == 12.5
    assert header['PIXSCALE'] == 6
    assert header['DISTANCE'] == 9.5
    assert header['EBV'] == 0.031
    assert header['OBJECT'] == 'NGC 9999'
    assert header['GALRA'] == pytest.approx(150.1, abs=1e-6)
    assert header['GALDEC'] == pytest.approx(2.2, abs=1e-6)
    assert header['GALSMA'] == pytest.approx(60)
    assert header['GALBA'] == pytest.approx(0.5)
    assert header['GALPA'] == pytest.approx(30)
    assert header['OODFRAC'] == pytest.approx(1 / 144, rel=1e-3)


def test_every_extension_documented_with_wcs(written):
    with fits.open(written) as hdul:
        names = [hdu.name for hdu in hdul]
        assert names == ['PRIMARY', 'SLD', 'SLD_ERR', 'SLD_MASK', 'SLD_META',
                         'SMD', 'SMD_ERR', 'SMD_MASK', 'SMD_META',
                         'TD', 'TD_ERR', 'TD_MASK', 'TD_META', 'FLAGS', 'META']
        for hdu in hdul[1:]:
            assert hdu.header.get('DESCRIP'), hdu.name
        assert hdul['SLD'].header['BUNIT'] == 'dex'
        assert hdul['TD_ERR'].header['BUNIT'] == 'K'
        assert 'temperature' in hdul['TD'].header['DESCRIP']
        assert 'uncertainty' in hdul['SMD_ERR'].header['DESCRIP']
        for name in ('SLD', 'TD_MASK', 'FLAGS'):
            wcs = WCS(hdul[name].header)
            assert np.allclose(wcs.wcs.crval, [150.1, 2.2])
            assert np.allclose(wcs.pixel_to_world_values(6.5, 5.5), [150.1, 2.2])
        flags = hdul['FLAGS'].header
        # One FLAGn keyword per bit 2**n, naming it
        for name, bit in MAP_FLAGS.items():
            assert flags[f'FLAG{int(np.log2(bit))}'] == name


def test_fitsheader_tells_model_and_inputs(written, capsys):
    fitsheader.main([str(written), '-e', '0'])
    out = capsys.readouterr().out
    sha = hashlib.sha256(_card_file(conf.default_model).read_bytes()).hexdigest()
    assert f"MODELSHA= '{sha}'" in out
    assert f"MODEL   = '{conf.default_model}'" in out
    assert "INBAND2 = 'WISE_3.4'" in out


def test_round_trip_exact(maps, written):
    back = read_dust_maps(written)
    assert list(back.keys()) == list(maps.keys())
    for name in maps.keys():
        a, b = maps[name], back[name]
        assert np.array_equal(a.data, b.data, equal_nan=True)
        assert np.array_equal(a.uncertainty.array, b.uncertainty.array, equal_nan=True)
        assert np.array_equal(a.mask, b.mask)
        assert a.unit == b.unit
        assert a.wcs.to_header_string() == b.wcs.to_header_string()
        assert a.meta == b.meta
    assert np.array_equal(back.meta['flags'], maps.meta['flags'])
    assert {k: v for k, v in back.meta.items() if k != 'flags'} == \
        {k: v for k, v in maps.meta.items() if k != 'flags'}


def test_minimal_maps_and_bad_file(tmp_path):
    """Maps without metadata still write (no provenance keywords); other files are refused."""
    td = CCDData(np.ones((3, 3)), unit=u.K, wcs=_wcs())
    path = tmp_path / 'td.fits'
    write_dust_maps({'Td': td}, path)
    header = fits.getheader(path, 0)
    assert 'MODEL' not in header and 'MODELSHA' not in header
    assert read_dust_maps(path)['Td'].unit == u.K
    fits.PrimaryHDU(np.ones((2, 2))).writeto(tmp_path / 'other.fits')
    with pytest.raises(ValueError, match='not a dust-map file'):
        read_dust_maps(tmp_path / 'other.fits')
    with pytest.raises(OSError, match='overwrite'):
        write_dust_maps({'Td': td}, path)


def test_top_level_and_subpackage_names_are_the_same_functions():
    from astro_dustml import maps
    assert astro_dustml.write_dust_maps is write_dust_maps is maps.write_dust_maps
    assert astro_dustml.read_dust_maps is read_dust_maps is maps.read_dust_maps


@pytest.mark.slow
def test_cli_job_with_default_model(tmp_path):
    """The README job (on a smaller field): the file names the bundled model and inputs."""
    from PIL import Image

    from astro_dustml.bands import get_band
    from astro_dustml.cli import main

    assert main(['example', str(tmp_path / 'mock'), '--fov', '2arcmin']) == 0
    images = sorted(str(p) for p in (tmp_path / 'mock').glob('mock_*.fits'))
    argv = ['estimate', *images, '--distance', '10Mpc', '--center', '150', '2',
            '--semimajor', '40arcsec', '--axis-ratio', '0.6', '--position-angle', '30deg',
            '--name', 'mock', '--ebv', '0.02', '--no-progress',
            '-o', str(tmp_path / 'maps.fits'), '--plot', str(tmp_path / 'maps.png')]
    assert main(argv) == 0
    sha = hashlib.sha256(_card_file(conf.default_model).read_bytes()).hexdigest()
    header = fits.getheader(tmp_path / 'maps.fits', 0)
    assert header['MODEL'] == conf.default_model
    assert header['MODELSHA'] == sha
    assert header['NINPUT'] == 18
    assert (header['GALRA'], header['GALDEC'], header['GALSMA'], header['GALBA'],
            header['GALPA']) == pytest.approx((150, 2, 40, 0.6, 30))
    assert header['OBJECT'] == 'mock' and header['EBV'] == 0.02
    assert header['DISTANCE'] == 10
    # The maps are at the worst input PSF, WISE 22 micron
    assert header['PSFFWHM'] == pytest.approx(get_band('WISE_22').fwhm.to_value(u.arcsec),
                                              rel=1e-3)
    png = Image.open(tmp_path / 'maps.png')
    assert png.text['model SHA-256'] == sha
    assert png.text['astro_dustml version'] == __version__


# -- overwrite replaces only dust-map files, and never half-way (issue 23) -------


def _td(value):
    return {'Td': CCDData(np.full((3, 3), value), unit=u.K, wcs=_wcs())}


def _foreign_fits(path):
    fits.PrimaryHDU(np.ones((2, 2))).writeto(path)


def _foreign_text(path):
    path.write_text('my own notes')


def _foreign_folder(path):
    path.mkdir()
    (path / 'inside.txt').write_text('mine')


def _snapshot(path):
    if path.is_dir():
        return {p.name: p.read_bytes() for p in path.iterdir()}
    return path.read_bytes()


@pytest.mark.parametrize('name, make', [
    ('other.fits', _foreign_fits), ('notes.fits', _foreign_text),
    ('folder.fits', _foreign_folder), ('other.fits.gz', _foreign_fits),
], ids=['FITS file of another tool', 'text file', 'folder', 'gzipped FITS'])
def test_overwrite_leaves_a_foreign_file(tmp_path, name, make):
    path = tmp_path / name
    make(path)
    before = _snapshot(path)
    with pytest.raises(FileExistsError) as info:
        write_dust_maps(_td(20.), path, overwrite=True)
    for word in (name, 'not written as a dust-map file', 'left alone'):
        assert word in str(info.value)
    assert _snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_overwrite_replaces_a_dust_map_file(tmp_path):
    path = tmp_path / 'maps.fits.gz'
    write_dust_maps(_td(20.), path)
    write_dust_maps(_td(30.), path, overwrite=True)
    assert np.all(read_dust_maps(path)['Td'].data == 30.)
    with open(path, 'rb') as f:
        assert f.read(2) == b'\x1f\x8b'  # still gzipped: the temporary name ends alike
    assert sorted(p.name for p in tmp_path.iterdir()) == ['maps.fits.gz']


def test_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / 'maps.fits'
    write_dust_maps(_td(20.), path)
    before = path.read_bytes()

    def failing(self, fileobj, **kwargs):
        Path(fileobj).write_bytes(b'SIMPLE  =                    T')  # a partial file
        raise KeyboardInterrupt

    monkeypatch.setattr(fits.HDUList, 'writeto', failing)
    with pytest.raises(KeyboardInterrupt):
        write_dust_maps(_td(30.), path, overwrite=True)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert np.all(read_dust_maps(path)['Td'].data == 20.)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['maps.fits']


BAD_MAPS = [
    ('plain arrays', lambda: {'Td': np.ones((3, 3))}, TypeError,
     ["Map 'Td' is a ndarray, not NDData", 'CCDData(array']),
    ('one array, not a mapping', lambda: np.ones((3, 3)), TypeError,
     ['maps must be an NDCollection or a mapping', 'ndarray']),
    ('an (array, wcs) pair', lambda: {'Td': (np.ones((3, 3)), _wcs())}, TypeError,
     ["Map 'Td' is a tuple, not NDData"]),
]


@pytest.mark.parametrize('maps, expected, words',
                         [pytest.param(*case[1:], id=case[0]) for case in BAD_MAPS])
def test_bad_maps(tmp_path, maps, expected, words):
    with pytest.raises(expected) as info:
        write_dust_maps(maps(), tmp_path / 'maps.fits')
    for word in words:
        assert word in str(info.value), str(info.value)
    assert not list(tmp_path.iterdir())
