"""
The ``astro-dustml`` command line.

Sub-commands::

    astro-dustml estimate IMAGE.fits ... -o maps.fits [--plot maps.png]
    astro-dustml models list
    astro-dustml models download [NAME ...]
    astro-dustml models build --bands W1,W2,W3,W4,u,g,r [--data DUSTPEDIA_DIR]
    astro-dustml build-table GALAXIES.ecsv -o pixels.parquet [--scales 18arcsec 1kpc]
    astro-dustml train TABLE --targets sLd sMd Td --groups galaxy -o MODEL_DIR
    astro-dustml example OUTDIR

Exit status: 0 on success, 1 when the work failed (the reason on one line of
standard error), 2 for a usage error.
"""

import argparse
import os
import re
import sys
import warnings
from pathlib import Path

from ._cli_args import _quantity, _UsageError
from ._cli_training import _build_table, _build_table_parser, _train, _train_pixel_options

__all__ = ['main']

_EPILOG = """\
example:
  astro-dustml example mock/
  astro-dustml estimate mock/*.fits --distance 10Mpc --center 150 2 --semimajor 60arcsec \\
      --axis-ratio 0.6 --position-angle 30deg -o maps.fits --plot maps.png
  astro-dustml estimate ngc309/*-int-*.fits.gz ngc309/*-unc-*.fits.gz ngc309/a?_asky*.fits.gz \\
      --center 00h56m42.7s -09d54m50s --semimajor 120arcsec --distance 80Mpc -o ngc309.fits

exit status: 0 success, 1 the work failed (message on standard error), 2 usage error.
Set ASTRO_DUSTML_TRACEBACK=1 to see the full traceback of a failure.
"""


def _center(values):
    """``--center RA DEC``: degrees, or sexagesimal as SkyCoord reads it."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    ra, dec = (v.strip() for v in values)
    try:
        float(ra)
        unit = (u.deg, u.deg)
    except ValueError:  # 01h36m41.7s or 01:36:41.7 (hours)
        unit = (u.hourangle, u.deg)
    try:
        return SkyCoord(ra, dec, unit=unit)
    except (TypeError, ValueError) as exc:
        raise _UsageError(f'--center: cannot read {ra} {dec} as RA and Dec ({exc}); give '
                          'degrees (24.17 15.78) or sexagesimal (01h36m41.7s +15d47m01s).'
                          ) from None


def _protect_center(argv):
    """
    Keep a southern declination after ``--center`` a value.

    argparse reads ``-09d54m50s`` as an unknown option (only plain negative
    numbers pass); a leading space keeps it a value, and `_center` strips it.
    """
    argv = [str(a) for a in argv]
    for i, arg in enumerate(argv):
        if arg == '--center':
            for j in (i + 1, i + 2):
                if j < len(argv) and re.match(r'-[0-9.]', argv[j]):
                    argv[j] = ' ' + argv[j]
    return argv


def _units(pairs):
    """``--units BAND=UNIT`` options as a dict."""
    out = {}
    for pair in pairs or ():
        band, sep, unit = pair.partition('=')
        if not sep or not band.strip() or not unit.strip():
            raise _UsageError(f'--units: {pair!r} is not BAND=UNIT; e.g. --units W1=Jy/pix '
                              '--units 2MASS_J=MJy/sr.')
        out[band.strip()] = unit.strip()
    return out


# API keyword spellings in library messages, and their command-line options
_CLI_WORDS = [(re.compile(r'\bband="([^"]+)"'), r'--band \1'),
              (re.compile(r'\b(distance|pixel_scale|resolution|units|band|ebv)=(?=[\s,.;)]|$)'),
               lambda m: '--' + m.group(1).replace('_', '-')),
              (re.compile(r'\boverwrite=True\b'), '--overwrite')]


def _in_cli_terms(message):
    """A library message with its keyword arguments spelled as options."""
    for pattern, replacement in _CLI_WORDS:
        message = pattern.sub(replacement, message)
    return message


def _parser():
    parser = argparse.ArgumentParser(
        prog='astro-dustml',
        description='Resolved dust maps of galaxies (specific dust luminosity, specific '
                    'dust mass, dust temperature) from UV to mid-infrared images, '
                    'following Dobbels & Baes (2021).',
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--version', action='version', version=_version())
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True

    est = sub.add_parser(
        'estimate', help='estimate dust maps from FITS images',
        description='Estimate dust maps (sLd, sMd, Td with uncertainties) from one FITS '
                    'image per band, and write them as a multi-extension FITS file. '
                    'WISE 3.4 micron is required; bands are recognised from the headers '
                    'unless given with --band.')
    est.add_argument('images', nargs='+', metavar='IMAGE', help='FITS image, one per band')
    est.add_argument('--band', action='append', metavar='BAND',
                     help='band of each IMAGE, in order (repeat once per image), e.g. '
                          '--band W1 --band GALEX_NUV; default: from the FITS headers')
    est.add_argument('--distance', metavar='QUANTITY', help='galaxy distance, e.g. 9.0Mpc')
    est.add_argument('--units', action='append', metavar='BAND=UNIT',
                     help='unit of an image whose header gives none (repeat per band), e.g. '
                          '--units W1=Jy/pix; AllWISE and 2MASS Atlas files need none')
    est.add_argument('--ebv', type=float, metavar='E(B-V)',
                     help='Galactic reddening E(B-V) for the extinction correction')
    est.add_argument('--gaia', metavar='TABLE',
                     help="table of Gaia stars to mask (any astropy-readable file with "
                          "gaia_source columns), or 'query' to query the Gaia archive")
    est.add_argument('--model', metavar='NAME',
                     help='model name (see `astro-dustml models list`) or model folder; '
                          'default: astro_dustml.conf.default_model')
    est.add_argument('--resolution', metavar='FWHM|BAND',
                     help='target PSF FWHM (e.g. 18arcsec) or band; default: worst input PSF')
    est.add_argument('--pixel-scale', metavar='QUANTITY',
                     help='output pixel scale, angular (8arcsec) or physical (400pc, '
                          'needs --distance); default: the target FWHM')
    gal = est.add_argument_group('galaxy region (pixels outside are masked)')
    gal.add_argument('--name', help='galaxy name recorded in the output')
    gal.add_argument('--center', nargs=2, metavar=('RA', 'DEC'),
                     help='centre (ICRS), degrees (24.17 15.78) or sexagesimal '
                          '(01h36m41.7s +15d47m01s)')
    gal.add_argument('--semimajor', metavar='QUANTITY', help='semi-major axis, e.g. 1arcmin')
    gal.add_argument('--axis-ratio', type=float, default=1.0, help='b/a (default 1)')
    gal.add_argument('--position-angle', metavar='QUANTITY', default='0deg',
                     help='major axis, east of north (default 0deg)')
    est.add_argument('-o', '--output', required=True, metavar='MAPS.fits',
                     help='output FITS file')
    est.add_argument('--plot', metavar='FIGURE.png', help='also save a figure of the maps')
    est.add_argument('--fir', nargs='+', metavar='BAND',
                     help='also write the predicted far-infrared maps of these bands '
                          '(e.g. SPIRE_250 PACS_100; MJy/sr) as OUTPUT_BAND.fits; needs '
                          '--distance')
    est.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    est.add_argument('--no-progress', action='store_true', help='no progress bar')
    est.add_argument('--no-band-sets', action='store_true',
                     help='predict every pixel with --model (band dropout) instead of the '
                          'band-set model of its usable bands (astro_dustml.conf.band_sets)')

    models = sub.add_parser('models', help='list or download pretrained models',
                            description='List the pretrained models, or fetch registered '
                                        'ones into the astropy cache for offline use.')
    msub = models.add_subparsers(dest='action', metavar='ACTION')
    msub.required = True
    msub.add_parser('list', help='list bundled and registered models',
                    description='List bundled and registered models.')
    dl = msub.add_parser('download', help='fetch models into the cache',
                         description='Fetch registered models into the astropy download '
                                     'cache (all of them by default).')
    dl.add_argument('names', nargs='*', metavar='NAME', help='models to fetch')
    build = msub.add_parser(
        'build', help='train and cache the band-set model of a set of bands',
        description='Train the band-set model of exactly these bands on the DustPedia '
                    'galaxies that have them and keep it in the astropy cache, where '
                    'estimate uses it for pixels with those bands (a shipped model is '
                    'only reported).')
    build.add_argument('--bands', required=True, action='append', metavar='BAND,...',
                       help='comma-separated bands, WISE_3.4 among them (repeat for '
                            'several sets)')
    build.add_argument('--data', metavar='DIR',
                       help='folder of the DustPedia tables (default '
                            'astro_dustml.conf.dustpedia_dir, else downloaded)')
    build.add_argument('--no-cv', action='store_true',
                       help='skip the 4-fold CV of the card (5x faster)')
    build.add_argument('--n-jobs', type=int, default=1, help='threads (default 1)')

    _build_table_parser(sub)

    train = sub.add_parser(
        'train', help='train a model from a pixel or global SED table',
        description='Train a DustModel from an SED table file with target columns (a '
                    'Parquet pixel table of build-table, or an astropy-readable file, e.g. '
                    'ECSV or FITS, in the astro_dustml.sed schema) and save it as a model '
                    'folder. A Parquet pixel table is read in float32 with only the '
                    'columns the model needs; its rows are weighted 1/N_pixels per galaxy '
                    'and scale, the log pixel scale is a feature, and the grouped '
                    'cross-validation table (overall and per scale) is printed.')
    train.add_argument('table', metavar='TABLE', help='training table file')
    train.add_argument('--targets', nargs='+', default=['sLd', 'sMd', 'Td'],
                       metavar='TARGET', help='target columns (default: sLd sMd Td)')
    train.add_argument('--groups', default='galaxy', metavar='COLUMN',
                       help='column of the galaxy each row belongs to (default: galaxy)')
    train.add_argument('--bands', nargs='+', metavar='BAND',
                       help='input bands (default: the 18 model inputs)')
    train.add_argument('--n-estimators', type=int, default=100, help='trees per forest')
    train.add_argument('--seed', type=int, default=0, help='random seed')
    train.add_argument('--name', default='', help='model name written on the card')
    train.add_argument('--description', default='', help='description for the card')
    train.add_argument('-o', '--output', required=True, metavar='MODEL_DIR',
                       help='output model folder')
    train.add_argument('--overwrite', action='store_true', help='replace an existing folder')
    _train_pixel_options(train)

    ex = sub.add_parser('example', help='write the bundled mock galaxy as FITS images',
                        description='Write a mock galaxy with known dust maps, imaged in '
                                    'the 18 input bands, as one FITS file per band '
                                    '(mock_BAND.fits), plus its true maps (truth.fits.gz). '
                                    'Run again with the same options, it finds the same '
                                    'files there and leaves them.')
    ex.add_argument('outdir', metavar='OUTDIR', help='folder to write into (created)')
    ex.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    ex.add_argument('--fov', default='4arcmin', metavar='QUANTITY',
                    help='side of the images (default 4arcmin)')
    ex.add_argument('--overwrite', action='store_true',
                    help='replace existing files that hold another mock')
    return parser


def _version():
    from . import __version__
    return f'astro-dustml {__version__}'


def _galaxy(args):
    if args.center is None:
        if args.semimajor is not None:
            raise _UsageError('--semimajor needs --center RA DEC.')
        return args.name
    if args.semimajor is None:
        raise _UsageError('--center needs --semimajor too (the galaxy ellipse).')
    if not args.axis_ratio > 0:  # also catches nan
        raise _UsageError(f'--axis-ratio must be a positive number (b/a), got {args.axis_ratio}.')
    galaxy = {'center': _center(args.center),
              'semimajor': _quantity(args.semimajor, 'angle', '--semimajor'),
              'axis_ratio': args.axis_ratio,
              'position_angle': _quantity(args.position_angle, 'angle', '--position-angle',
                                          positive=False)}
    if args.name:
        galaxy['name'] = args.name
    return galaxy


def _estimate(args):
    if args.band is not None and len(args.band) != len(args.images):
        raise _UsageError(f'got {len(args.images)} images but {len(args.band)} --band; '
                          'give one --band per image, or none.')
    output = Path(args.output)
    _check_output(output, args.overwrite, '-o')
    _check_own_output(output, args.overwrite)
    if args.plot:
        _check_output(Path(args.plot), True, '--plot')  # figures are replaced, as before
    distance = (None if args.distance is None
                else _quantity(args.distance, 'length', '--distance'))
    if args.fir and distance is None:
        raise _UsageError('--fir needs --distance (the dust mass scales with it).')
    pixel_scale = (None if args.pixel_scale is None
                   else _quantity(args.pixel_scale, ('angle', 'length'), '--pixel-scale'))
    resolution = args.resolution
    if resolution is not None and resolution[:1].isdigit():
        resolution = _quantity(resolution, ('angle', 'length'), '--resolution')
    for option, value in (('--pixel-scale', pixel_scale), ('--resolution', resolution)):
        if (distance is None and value is not None and not isinstance(value, str)
                and value.unit.physical_type == 'length'):
            raise _UsageError(f'{option} {value} is a physical length: give --distance too '
                              '(e.g. --distance 9.0Mpc), or an angle such as 8arcsec.')
    units = _units(args.units)
    galaxy = _galaxy(args)
    stars = None
    if args.gaia is not None:
        if args.gaia == 'query':
            stars = 'gaia'
        else:
            from astropy.table import Table
            stars = Table.read(args.gaia)

    from .imaging.io import NoCelestialWCSError
    from .maps.estimate import estimate_dust_maps
    from .maps.io import write_dust_maps
    try:
        maps = estimate_dust_maps(args.images, bands=args.band, model=args.model,
                                  distance=distance, ebv=args.ebv, galaxy=galaxy, stars=stars,
                                  resolution=resolution, pixel_scale=pixel_scale,
                                  units=units or None, progress=not args.no_progress,
                                  band_sets=False if args.no_band_sets else None)
    except NoCelestialWCSError as exc:
        source = getattr(exc, 'source', 'an image')
        raise ValueError(f'{source} has no celestial WCS in its header (CTYPE1/2 RA---/DEC--, '
                         'CRVAL, CRPIX, CDELT or CD): the command line reads the sky '
                         'position of every pixel from the FITS header. Use the archive file '
                         'with its full header, or add the WCS keywords to it.') from None
    write_dust_maps(maps, output, overwrite=args.overwrite)
    print(f'wrote {output}')
    if args.fir:
        _write_fir(args, maps, output, distance)
    if args.plot:
        import matplotlib
        matplotlib.use('Agg')
        from .bands import REFERENCE_BAND
        from .imaging.io import read_images
        from .visualization import save_dust_maps_figure
        # The reference-band input (WISE 3.4 micron, always given) as context
        images = read_images(args.images, bands=args.band)
        save_dust_maps_figure(maps, args.plot, context=images[REFERENCE_BAND])
        print(f'wrote {args.plot}')
    return 0


def _check_output(path, overwrite, option):
    """Fail before the work, not after it, when an output cannot be written."""
    folder = path.parent if str(path.parent) else Path('.')
    if not folder.is_dir():
        raise _UsageError(f'{option} {path}: the folder {folder} does not exist; create it '
                          'first or write elsewhere.')
    if path.exists() and not overwrite:
        raise FileExistsError(f'{path} exists; use --overwrite to replace it.')


def _check_own_output(path, overwrite):
    """--overwrite replaces only a dust-map file of the package: refuse before the work."""
    from .maps.io import _is_dust_map_file
    from .model._integrity import _check_replaceable
    _check_replaceable(path, overwrite=overwrite, is_ours=_is_dust_map_file,
                       what='a dust-map file of write_dust_maps')


def _write_fir(args, maps, output, distance):
    from astropy.io import fits

    from .farinfrared.predict import predict_fir_maps
    # from the stellar-mass map estimate_dust_maps put on the maps' grid
    fir = predict_fir_maps(maps, bands=args.fir, distance=distance)
    for band, image in fir.items():
        path = output.with_name(f'{output.stem}_{band}{output.suffix}')
        header = fits.Header({'BAND': band, 'BUNIT': image.unit.to_string('fits'),
                              'PSF_FWHM': image.meta['psf_fwhm'].to_value('arcsec'),
                              'DISTANCE': distance.to_value('Mpc')})
        type(image)(image.data, unit=image.unit, wcs=image.wcs, mask=image.mask,
                    uncertainty=image.uncertainty, meta=header).write(
                        path, overwrite=args.overwrite)
        print(f'wrote {path}')


def _models(args):
    from .model.registry import download_models, list_models
    if args.action == 'list':
        table = list_models()
        if len(table):
            table.pprint_all()
        else:
            print('no models are bundled or registered')
        print(f"default model: {table.meta['default']}")
    elif args.action == 'build':
        return _build_models(args)
    else:
        fetched = download_models(args.names or None)
        print('cached: ' + (', '.join(fetched) if fetched else
                            'nothing to download (bundled models need none)'))
    return 0


def _build_models(args):
    import time

    from .maps import model_sha256
    from .model.band_sets import _load_training_table, band_set_name
    from .model.band_set_routing import _shipped_folder, get_band_set_model
    sets = [[b.strip() for b in text.split(',') if b.strip()] for text in args.bands]
    names = []
    for bands in sets:
        try:
            names.append(band_set_name(bands))
        except ValueError as exc:
            raise _UsageError(f'--bands {",".join(bands)}: {exc}') from None
    table = None
    for bands, name in zip(sets, names):
        start = time.time()
        if _shipped_folder(name) is None and table is None:
            table = _load_training_table(args.data)
        model = get_band_set_model(bands, training_table=table, path=args.data,
                                   cv=not args.no_cv, n_jobs=args.n_jobs)
        where = 'shipped with the package' if _shipped_folder(name) else 'cached'
        cv = (model.card.get('cv_metrics') or {}).get('all') or {}
        scores = ', '.join(f'{t} RMSE {m["rmse"]:.3f} chi2 {m["chi2"]:.2f}'
                           for t, m in cv.items())
        print(f'{name}: {where} ({time.time() - start:.0f} s), SHA-256 '
              f'{model_sha256(model.card)}' + (f'; CV {scores}' if scores else ''))
    return 0


def _example(args):
    from astropy.io import fits

    from .datasets import make_mock_galaxy
    from .maps.io import write_dust_maps
    fov = _quantity(args.fov, 'angle', '--fov')
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    mock = make_mock_galaxy(seed=args.seed, fov=fov)
    hdus = {}
    for band, image in mock.images.items():
        header = image.meta['header'].copy()
        header['OBJECT'] = mock.galaxy['name']
        hdus[outdir / f'mock_{band}.fits'] = fits.PrimaryHDU(image.data, header=header)
    truth = outdir / 'truth.fits.gz'
    # A rerun with the same arguments finds the same mock there and leaves it
    # (rerunnable as the README writes it); another mock needs --overwrite
    same = not args.overwrite and _same_mock(hdus, truth, mock.truth)
    if not same:
        existing = [p for p in [*hdus, truth] if p.exists()]
        if existing and not args.overwrite:
            raise FileExistsError(
                f'{existing[0]} exists and holds another mock (other --seed or --fov, or '
                'another version); use --overwrite to replace it, or write to another '
                'OUTDIR.')
        for path, hdu in hdus.items():
            hdu.writeto(path, overwrite=args.overwrite)
        write_dust_maps(mock.truth, truth, overwrite=args.overwrite)
    g = mock.galaxy
    # The galaxy ellipse restricts the maps to the galaxy (the sky around it is
    # out of the models' domain and would be masked anyway)
    done = ('found the same mock already there: left' if same else 'wrote')
    print(f"{done} {len(mock.images)} images and the true maps (truth.fits.gz) in {outdir}\n"
          f"try: astro-dustml estimate {outdir}/mock_*.fits "
          f"--distance {g['distance'].to_value('Mpc'):g}Mpc "
          f"--center {g['center'].ra.deg:g} {g['center'].dec.deg:g} "
          f"--semimajor {g['semimajor'].to_value('arcsec'):g}arcsec "
          f"--axis-ratio {g['axis_ratio']:g} "
          f"--position-angle {g['position_angle'].to_value('deg'):g}deg "
          "-o maps.fits --plot maps.png --overwrite")
    return 0


def _same_mock(hdus, truth_path, truth):
    """Whether the files of ``example`` are there already with this mock's data."""
    import numpy as np
    from astropy.io import fits

    from .maps.io import read_dust_maps
    if not all(path.is_file() for path in [*hdus, truth_path]):
        return False
    try:
        for path, hdu in hdus.items():
            with fits.open(path) as hdul:
                if not (np.array_equal(hdul[0].data, hdu.data, equal_nan=True)
                        and hdul[0].header.tostring() == hdu.header.tostring()):
                    return False
        back = read_dust_maps(truth_path)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return list(back.keys()) == list(truth.keys()) and all(
        np.array_equal(back[k].data, truth[k].data, equal_nan=True) for k in truth.keys())


_COMMANDS = {'estimate': _estimate, 'models': _models, 'train': _train,
             'build-table': _build_table, 'example': _example}


def main(argv=None):
    """
    Run the ``astro-dustml`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0 on success, 1 if the work failed, 2 for a usage error.
    """
    parser = _parser()
    argv = _protect_center(sys.argv[1:] if argv is None else list(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else 2
    try:
        with warnings.catch_warnings():
            # Library warnings are shown once each, without a traceback
            warnings.simplefilter('default')
            return _COMMANDS[args.command](args)
    except _UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f'astro-dustml: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('astro-dustml: interrupted', file=sys.stderr)
        return 1
    except Exception as exc:  # one line, no traceback: the messages say what to fix
        if os.environ.get('ASTRO_DUSTML_TRACEBACK'):
            raise
        message = _in_cli_terms(' '.join(str(exc).split())) or type(exc).__name__
        print(f'astro-dustml: error: {message}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
