"""
Far-infrared fluxes of DustPedia galaxies predicted from their UV to mid-infrared photometry.

For every galaxy with finite catalogue targets, the default model
(``dustpedia-global`` settings of ``scripts/train_pretrained.py``) predicts
``sMd`` and ``Td`` out of fold (grouped 4-fold cross-validation: no galaxy
predicts itself); the stellar mass comes from its WISE W1/W2 fluxes
(`astro_dustml.farinfrared.stellar_mass`), and `astro_dustml.farinfrared.predict` turns
``Md``, ``Td``
into the PACS 100/160 and SPIRE 250/350 fluxes, compared with the observed
catalogue fluxes (detected at S/N > 3, unflagged).  Per band: the bias
(median of log10 predicted/observed), the scatter (standard deviation and
RMS of it, dex), the Spearman rank correlation, and the chi^2 of the
propagated uncertainty.  Two reference rows per band isolate the parts: the
catalogue's own ``Mdust``, ``Tdust`` put through the same dust model
("catalogue"), and the catalogue ``sMd``/``Td`` with the W1/W2 stellar mass
("catalogue sMd, W1/W2 M*").

Also times `astro_dustml.farinfrared.fit_dust_sed` on a 500 x 500 map of two and
of five bands.  Timings are wall-clock on a shared machine.

Usage::

    python benchmarks/fir_prediction.py [--data ../shared/data/dustpedia] [--quick]
"""

import argparse
import sys
import time
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.wcs import WCS
from scipy.stats import spearmanr

from astro_dustml.bands import INPUT_BANDS
from astro_dustml.datasets import load_dustpedia_global
from astro_dustml.farinfrared import fit_dust_sed, stellar_mass
from astro_dustml.farinfrared.predict import _band_prediction
from astro_dustml.model import DustModel
from astro_dustml.sed import band_flux
from astro_dustml.training import cross_validate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'scripts'))
from train_pretrained import MODEL_SETTINGS, MODELS  # noqa: E402

FIR = ['PACS_100', 'PACS_160', 'SPIRE_250', 'SPIRE_350']
MIN_SN = 3.0


def _row(name, band, predicted, log_err, table):
    observed = table[band].value
    ok = ((table[f'{band}_flag'] == 0) & (observed > MIN_SN * table[f'{band}_err'].value)
          & np.isfinite(predicted) & (predicted > 0))
    res = np.log10(predicted[ok] / observed[ok])
    obs_err = table[f'{band}_err'].value[ok] / observed[ok] / np.log(10)
    chi2 = np.mean(res ** 2 / (log_err[ok] ** 2 + obs_err ** 2))
    rho = spearmanr(predicted[ok], observed[ok]).statistic
    print(f'{band:10s} {name:26s} {ok.sum():5d} {np.median(res):7.3f} {np.std(res):7.3f} '
          f'{np.sqrt(np.mean(res ** 2)):7.3f} {rho:6.3f} {chi2:6.2f}')


def flux_table(data, quick):
    table = load_dustpedia_global(path=data, download=False, require_targets=True,
                                  bands=[*INPUT_BANDS, *FIR])
    settings = {**MODEL_SETTINGS, **MODELS['dustpedia-global']['settings']}
    if quick:
        settings.update(n_estimators=30, n_inner_splits=4)
    start = time.time()
    cv = cross_validate(table, ('sMd', 'Td'), groups='galaxy',
                        model=DustModel(n_jobs=2, **settings), n_bootstrap=10)
    print(f'out-of-fold predictions of {len(table)} galaxies: {time.time() - start:.0f} s')
    pred = cv.predictions
    mass, mass_err = stellar_mass(table['WISE_3.4'], table['WISE_4.6'],
                                  distance=table['distance'], w1_err=table['WISE_3.4_err'],
                                  w2_err=table['WISE_4.6_err'])
    log_mstar = np.log10(mass.to_value(u.Msun))
    log_mstar_err = (mass_err / mass).value / np.log(10)
    d_mpc = table['distance'].to_value(u.Mpc)
    smd, smd_err = pred['sMd'].value, pred['sMd_err'].value
    td, td_err = pred['Td'].value, pred['Td_err'].value
    print(f'\n{"band":10s} {"dust from":26s} {"N":>5s} {"bias":>7s} {"sd":>7s} {"rms":>7s} '
          f'{"rho":>6s} {"chi2":>6s}   (log10 predicted/observed, dex)')
    for band in FIR:
        cases = {
            'model (OOF) + W1/W2 M*': (smd + log_mstar, np.hypot(smd_err, log_mstar_err), td,
                                       td_err),
            'catalogue sMd, W1/W2 M*': (table['sMd'].value + log_mstar, log_mstar_err,
                                        table['Td'].value, np.zeros(len(table))),
            'catalogue Mdust, Tdust': (np.log10(table['Mdust'].value), np.zeros(len(table)),
                                       table['Td'].value, np.zeros(len(table))),
        }
        for name, (log_md, log_md_err, t, t_err) in cases.items():
            jy, log_err = _band_prediction(band, log_md, log_md_err, t, t_err, d_mpc)
            _row(name, band, jy, log_err, table)


def timing():
    bands = ['PACS_100', 'PACS_160', 'SPIRE_250', 'SPIRE_350', 'SPIRE_500']
    n = 500
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ['RA---TAN', 'DEC--TAN']
    wcs.wcs.cdelt = [-6 / 3600, 6 / 3600]
    rng = np.random.default_rng(0)
    mass = rng.uniform(1e3, 1e5, (n, n)) * u.Msun
    temperature = rng.uniform(14, 30, (n, n)) * u.K
    images = {}
    for band in bands:
        flux = band_flux(band, mass, temperature, 10 * u.Mpc).value
        images[band] = CCDData(flux * (1 + 0.05 * rng.normal(size=flux.shape)), unit='Jy/pix',
                               wcs=wcs, uncertainty=StdDevUncertainty(0.05 * flux))
    print(f'\nfit_dust_sed on a {n} x {n} map (wall clock, shared machine):')
    for subset in (['PACS_100', 'SPIRE_250'], bands):
        start = time.time()
        fit_dust_sed({b: images[b] for b in subset}, distance=10 * u.Mpc)
        print(f'  {len(subset)} bands: {time.time() - start:.1f} s')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=str(ROOT.parent / 'shared' / 'data' / 'dustpedia'))
    parser.add_argument('--quick', action='store_true',
                        help='a lighter model (30 trees) for a fast run')
    args = parser.parse_args(argv)
    timing()
    flux_table(args.data, args.quick)
    return 0


if __name__ == '__main__':
    sys.exit(main())
