"""
The global DustPedia training sample: one SED table row per galaxy.

Builds one row per DustPedia galaxy from three public tables of the DustPedia
archive: the aperture photometry (Clark et al. 2018), the HyperLEDA metadata
(distance ``dist_best``) and the CIGALE/THEMIS catalogue of Nersesian et al.
(2019), which gives the targets

- ``sLd = log10(Ldust__Lsol / Mstar__Msol)`` (dex),
- ``sMd = log10(Mdust__Msol / Mstar__Msol)`` (dex),
- ``Td = Tdust__K`` (K),

with errors propagated from the catalogue's ``_err`` columns.  Optionally the
observed UV to mid-infrared fluxes are replaced by the Bayesian fluxes of a
pcigale fit to those bands alone (Dobbels et al. 2020).
"""

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table
from astropy.utils.data import download_file

from .. import conf
from ..bands import INPUT_BANDS
from .cigale import read_cigale_results
from .photometry import read_dustpedia_photometry

__all__ = ['load_dustpedia_global', 'DUSTPEDIA_FILES']

DUSTPEDIA_FILES = {
    'photometry': 'DustPedia_Aperture_Photometry_2.2.csv',
    'hyperleda': 'DustPedia_HyperLEDA_Herschel.csv',
    'cigale': 'dustpedia_cigale_results_final_version.csv',
}
"""File names of the DustPedia archive tables the loader reads."""

# Paths of those files in the DustPedia archive, appended to conf.dustpedia_url.
_ARCHIVE_PATHS = {
    'photometry': 'Photometry/DustPedia_Aperture_Photometry_2.2.csv',
    'hyperleda': 'DustPedia_HyperLEDA_Herschel.csv',
    'cigale': 'Cigale/dustpedia_cigale_results_final_version.csv',
}
_CIGALE_UVMIR = Path('cigale_uvmir') / 'results.txt'


def _local_folder(path):
    folder = path if path is not None else (conf.dustpedia_dir or None)
    return None if folder is None else Path(folder).expanduser()


def _resolve(kind, folder, download):
    """Local path of one archive table, downloading it (cached) when allowed."""
    name = DUSTPEDIA_FILES[kind]
    if download is not True and folder is not None and (folder / name).is_file():
        return folder / name
    if download is False or (download is None and not conf.allow_download):
        where = folder if folder is not None else 'conf.dustpedia_dir (not set)'
        raise FileNotFoundError(
            f'{name} is not in {where} and downloads are disabled; give path= (or set '
            'astro_dustml.conf.dustpedia_dir) to a folder holding the DustPedia tables, '
            'or allow downloads (download=None with conf.allow_download=True).')
    url = conf.dustpedia_url + _ARCHIVE_PATHS[kind]
    try:
        return Path(download_file(url, cache=True, pkgname='astro_dustml',
                                  show_progress=False, timeout=conf.remote_timeout))
    except OSError as exc:
        raise FileNotFoundError(
            f'could not download {name} from {url} ({exc}); check the network or '
            'astro_dustml.conf.dustpedia_url, or give path= to local copies.') from exc


def _log_ratio(num, num_err, den, den_err):
    with np.errstate(divide='ignore', invalid='ignore'):
        ok = (num > 0) & (den > 0)
        value = np.where(ok, np.log10(num / den), np.nan)
        err = np.where(ok, np.hypot(num_err / num, den_err / den) / np.log(10), np.nan)
    return value, err


def _lookup(names, keys, values):
    """``values`` (as floats) of the rows whose ``keys`` match ``names``; NaN for the others."""
    where = {str(key): k for k, key in enumerate(keys)}
    index = np.array([where.get(n, -1) for n in names], dtype=int)
    found = index >= 0
    return np.where(found, np.asarray(values, dtype=float)[np.where(found, index, 0)], np.nan)


def load_dustpedia_global(*, path=None, cigale_fluxes=False, cigale_path=None, download=None,
                          bands=INPUT_BANDS, require_targets=False):
    """
    The global DustPedia training table: photometry, distances and targets.

    Parameters
    ----------
    path : str or path-like, optional
        Folder holding the DustPedia tables (`DUSTPEDIA_FILES`; the
        ``../shared/data/dustpedia`` layout).  Default
        ``astro_dustml.conf.dustpedia_dir``.
    cigale_fluxes : bool, optional
        Replace the observed fluxes of ``bands`` by the Bayesian fluxes of the
        pcigale UV to mid-infrared fit (``cigale_uvmir/results.txt`` in
        ``path``, or ``cigale_path``); the observed values are kept as
        ``<band>_obs`` and galaxies without a pcigale result are dropped.
    cigale_path : str or path-like, optional
        pcigale ``results.txt`` (or its folder) for ``cigale_fluxes``.
    download : bool or None, optional
        `None`: use local copies when present, else download them if
        ``conf.allow_download``; `True`: always use the archive (through the
        astropy cache, ``pkgname='astro_dustml'``); `False`: never download.
        The archive's base URL is ``conf.dustpedia_url``.  The pcigale fit is
        never downloaded.
    bands : sequence of str, optional
        Bands whose fluxes are read (default the 18 model inputs).
    require_targets : bool, optional
        Drop galaxies without finite ``sLd``, ``sMd`` and ``Td``.

    Returns
    -------
    table : `~astropy.table.QTable`
        One global row per galaxy in the SED schema of `astro_dustml.sed`
        (``galaxy``, ``pixel_area`` = aperture solid angle, ``distance`` from
        HyperLEDA ``dist_best``, ``pixel_scale_pc``, per band flux, ``_err``,
        ``_flag``), plus the targets ``sLd``, ``sMd`` (dex), ``Td`` (K) with
        ``_err``; the catalogue's ``Mstar``, ``Mdust`` (solMass), ``Ldust``
        (solLum) with ``_err``; ``cigale_red_chi2``; HyperLEDA ``hubble_stage``
        and ``d25`` (arcmin).  Galaxies absent from the CIGALE catalogue have
        NaN targets.

    Raises
    ------
    FileNotFoundError
        If a table is neither local nor downloadable.

    Examples
    --------
    >>> from astro_dustml.sed import load_dustpedia_global
    >>> load_dustpedia_global(path='no/such/folder', download=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: DustPedia_Aperture_Photometry_2.2.csv is not in no/such/folder ...
    """
    folder = _local_folder(path)
    files = {kind: _resolve(kind, folder, download) for kind in DUSTPEDIA_FILES}
    leda = Table.read(files['hyperleda'], format='ascii.csv')
    distances = {str(name): float(d) * u.Mpc
                 for name, d in zip(leda['objname'], leda['dist_best'])
                 if np.isfinite(d)}
    phot = read_dustpedia_photometry(files['photometry'], bands=bands, distance=distances)
    names = [str(g) for g in phot['galaxy']]
    if cigale_fluxes:
        source = cigale_path
        if source is None:
            if folder is None:
                raise FileNotFoundError(
                    'cigale_fluxes=True needs the pcigale UV-MIR results: give '
                    'cigale_path= or path= to a folder with cigale_uvmir/results.txt.')
            source = folder / _CIGALE_UVMIR
        phot = read_cigale_results(source, phot, replace_fluxes=True)
        # the pcigale fit's own dust properties are not the training targets
        for col in ('sLd', 'sLd_err', 'sMd', 'sMd_err', 'Td', 'Td_err', 'red_chi2'):
            if col in phot.colnames:
                phot.remove_column(col)
        fitted = np.isfinite(u.Quantity(phot['WISE_3.4']).value)
        phot = phot[fitted]
        names = [str(g) for g in phot['galaxy']]

    cat = Table.read(files['cigale'], format='ascii.csv')

    def column(name):
        return _lookup(names, cat['id'], cat[name])

    mstar, mstar_err = column('Mstar__Msol'), column('Mstar_err')
    mdust, mdust_err = column('Mdust__Msol'), column('Mdust_err')
    ldust, ldust_err = column('Ldust__Lsol'), column('Ldust_err')
    sld, sld_err = _log_ratio(ldust, ldust_err, mstar, mstar_err)
    smd, smd_err = _log_ratio(mdust, mdust_err, mstar, mstar_err)
    phot['sLd'] = sld * u.dex
    phot['sLd_err'] = sld_err * u.dex
    phot['sMd'] = smd * u.dex
    phot['sMd_err'] = smd_err * u.dex
    phot['Td'] = column('Tdust__K') * u.K
    phot['Td_err'] = column('Tdust_err') * u.K
    phot['Mstar'] = mstar * u.solMass
    phot['Mstar_err'] = mstar_err * u.solMass
    phot['Mdust'] = mdust * u.solMass
    phot['Mdust_err'] = mdust_err * u.solMass
    phot['Ldust'] = ldust * u.solLum
    phot['Ldust_err'] = ldust_err * u.solLum
    phot['cigale_red_chi2'] = column('red_chi2')

    phot['hubble_stage'] = _lookup(names, leda['objname'], leda['t'])
    phot['d25'] = _lookup(names, leda['objname'], leda['d25']) * u.arcmin
    if require_targets:
        keep = np.isfinite(sld) & np.isfinite(smd) & np.isfinite(phot['Td'].value)
        phot = phot[keep]
    phot.meta['source'] = {kind: str(p) for kind, p in files.items()}
    if cigale_fluxes:
        phot.meta['source']['cigale_uvmir'] = str(source)
    phot.meta['targets'] = {
        'sLd': 'log10(Ldust__Lsol / Mstar__Msol), Nersesian et al. 2019 CIGALE catalogue',
        'sMd': 'log10(Mdust__Msol / Mstar__Msol), Nersesian et al. 2019 CIGALE catalogue',
        'Td': 'Tdust__K, Nersesian et al. 2019 CIGALE catalogue'}
    return phot
