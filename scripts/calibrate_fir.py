"""
Calibrate the far-infrared side to the DustPedia catalogue scale.

Writes three package data files of ``astro_dustml/data``:

- ``fir_colour_corrections.json``: colour corrections ``K(T)`` of the MIPS,
  PACS and SPIRE bands for the modified black body of
  `astro_dustml.sed.dust_emission`, integrated through the pcigale transmission
  curves (``../shared/data/filters``);
- ``dust_fit_calibration.json``: the linear correction in the fitted
  temperature that puts `astro_dustml.farinfrared.fit_dust_sed` on the scale of
  the CIGALE/THEMIS catalogue (Nersesian et al. 2019), fitted on the global
  DustPedia photometry (Clark et al. 2018) of the well-constrained galaxies
  with at least three usable bands at >= 100 micron;
- ``stellar_mass_calibration.json``: bias and scatter of the Cluver et al.
  (2014) W1/W2 stellar mass against the catalogue ``Mstar``, and the same
  relation refitted to it ('dustpedia'); the one with the lower grouped-CV
  RMSE is recommended.

Both calibrations are judged by grouped 4-fold cross-validation (one galaxy per
group); the tables printed are those in ``docs/far_infrared.rst``.

Usage::

    python scripts/calibrate_fir.py [--data ../shared/data] [--output astro_dustml/data]
"""

import argparse
import json
import sys
import time
from itertools import combinations
from pathlib import Path

import astropy.units as u
import numpy as np
from sklearn.model_selection import GroupKFold

from astro_dustml.bands import FIR_BANDS, get_band
from astro_dustml.datasets import load_dustpedia_global
from astro_dustml.sed.dust_emission import write_colour_corrections
from astro_dustml.farinfrared.dust_fit import _T_REFERENCE
from astro_dustml.farinfrared import fit_dust_sed
from astro_dustml.model import _shuffled_groups
from astro_dustml.sed import FLAG_MISSING
from astro_dustml.farinfrared.stellar_mass import _COLOUR_RANGE, _colour, _log_w1_luminosity
from astro_dustml.farinfrared import STELLAR_MASS_RELATIONS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'scripts'))
from train_pretrained import well_constrained  # noqa: E402

FIT_BANDS = [b for b in FIR_BANDS if get_band(b).wavelength >= 100 * u.micron]
MIN_SN = 3.0
N_SPLITS = 4
MIN_SCATTER = {'Mdust': 0.01, 'Ldust': 0.01, 'Tdust': 0.1}  # floors (dex, K)
MIN_GALAXIES = 40  # fewer: no calibration of its own for a band set
DEFAULT_SET = 'PACS_100+PACS_160+SPIRE_250+SPIRE_350+SPIRE_500'


def clean_fir(table):
    """NaN-out flagged or low-S/N far-infrared fluxes (the catalogue's flags)."""
    out = table.copy()
    for b in FIT_BANDS:
        value, err = out[b].value.copy(), out[f'{b}_err'].value.copy()
        bad = (np.asarray(out[f'{b}_flag']) != 0) | ~(value > MIN_SN * err)
        # keep only FLAG_MISSING-free, unflagged, detected fluxes
        bad |= (np.asarray(out[f'{b}_flag']) & FLAG_MISSING) != 0
        value[bad] = np.nan
        err[bad] = np.nan
        out[b], out[f'{b}_err'] = value * u.Jy, err * u.Jy
    return out


def folds(groups):
    return list(GroupKFold(n_splits=N_SPLITS).split(groups, groups=_shuffled_groups(groups, 0)))


def stats(residual):
    residual = residual[np.isfinite(residual)]
    return {'n': int(residual.size), 'bias': float(np.mean(residual)),
            'scatter': float(np.std(residual)),
            'rmse': float(np.sqrt(np.mean(residual ** 2)))}


def calibrate_band_set(table, bands):
    """Coefficients and grouped-CV report of one band set, or None if too few galaxies."""
    fitted = fit_dust_sed(table, bands=bands, calibrated=False)
    t_fit = fitted['Td_fit'].value
    raw = {'Mdust': np.log10(fitted['Md_fit'].value), 'Ldust': np.log10(fitted['Ld_fit'].value),
           'Tdust': t_fit}
    cat = {'Mdust': np.log10(table['Mdust'].value), 'Ldust': np.log10(table['Ldust'].value),
           'Tdust': table['Td'].value}
    # the fit's measurement errors, to split the CV scatter into them and the rest
    ln10 = np.log(10)
    fit_err = {'Mdust': fitted['Md_fit_err'].value / fitted['Md_fit'].value / ln10,
               'Ldust': fitted['Ld_fit_err'].value / fitted['Ld_fit'].value / ln10,
               'Tdust': fitted['Td_fit_err'].value}
    # every band of the set measured, the catalogue values well constrained
    good = ((np.asarray(fitted['n_bands_fit']) == len(bands)) & np.isfinite(t_fit)
            & np.isfinite(cat['Mdust']) & np.isfinite(cat['Ldust'])
            & np.isfinite(table['distance'].value) & well_constrained(table))
    idx = np.flatnonzero(good)
    if idx.size < MIN_GALAXIES:
        return None
    groups = np.asarray(table['galaxy'])[idx]
    design = np.stack([np.ones_like(t_fit), t_fit - _T_REFERENCE], axis=1)
    coefficients, report = {}, {}
    for name in ('Mdust', 'Ldust', 'Tdust'):
        target = cat[name] - raw[name]
        oof = np.full(len(table), np.nan)
        for train, test in folds(groups):
            tr, te = idx[train], idx[test]
            coef, *_ = np.linalg.lstsq(design[tr], target[tr], rcond=None)
            oof[te] = raw[name][te] + design[te] @ coef
        coef, *_ = np.linalg.lstsq(design[idx], target[idx], rcond=None)
        cv = stats(oof[idx] - cat[name][idx])
        # scatter beyond the fit's own error (scaled by the calibration slope for T):
        # fit error + scatter in quadrature then predict the catalogue value (the
        # catalogue's error is not added: it comes from the same photometry)
        scale = (1 + coef[1]) if name == 'Tdust' else 1.0
        noise = np.mean((scale * fit_err[name][idx]) ** 2)
        intrinsic = float(np.sqrt(max(cv['rmse'] ** 2 - noise, MIN_SCATTER[name] ** 2)))
        coefficients[name] = {'offset': float(coef[0]), 'slope': float(coef[1]),
                              'scatter': intrinsic, 'cv_rmse': cv['rmse']}
        report[name] = {'raw': stats(raw[name][idx] - cat[name][idx]), 'calibrated_cv': cv}
    return {'coefficients': coefficients, 'cross_validation': report,
            'n_galaxies': int(idx.size)}


def dust_calibration(table):
    sets = {}
    for k in range(2, len(FIT_BANDS) + 1):
        for bands in combinations(FIT_BANDS, k):
            entry = calibrate_band_set(table, list(bands))
            if entry is not None:
                sets['+'.join(bands)] = entry
    return sets


def stellar_mass_calibration(table):
    w1, w2 = table['WISE_3.4'].value, table['WISE_4.6'].value
    w2_ok = (w2 > MIN_SN * table['WISE_4.6_err'].value) & (table['WISE_4.6_flag'] == 0)
    colour = np.where(w2_ok, np.clip(_colour(w1, w2), *_COLOUR_RANGE), np.nan)
    log_l = _log_w1_luminosity(w1, table['distance'].to_value(u.Mpc))
    log_ml_cat = np.log10(table['Mstar'].value) - log_l
    ok = np.isfinite(colour) & np.isfinite(log_ml_cat) & (table['WISE_3.4_flag'] == 0)
    idx = np.flatnonzero(ok)
    groups = np.asarray(table['galaxy'])[idx]
    typical, spread = float(np.median(colour[idx])), float(np.std(colour[idx]))
    cl = STELLAR_MASS_RELATIONS['cluver2014']
    cluver = stats(cl['slope'] * colour[idx] + cl['intercept'] - log_ml_cat[idx])
    oof = np.full(len(table), np.nan)
    design = np.stack([colour, np.ones_like(colour)], axis=1)
    for train, test in folds(groups):
        tr, te = idx[train], idx[test]
        coef, *_ = np.linalg.lstsq(design[tr], log_ml_cat[tr], rcond=None)
        oof[te] = design[te] @ coef
    coef, *_ = np.linalg.lstsq(design[idx], log_ml_cat[idx], rcond=None)
    calibrated = stats(oof[idx] - log_ml_cat[idx])
    relations = {
        'cluver2014': {'scatter': cluver['rmse'], 'default_colour': typical,
                       'colour_scatter': spread, 'dustpedia_residual': cluver},
        'dustpedia': {'slope': float(coef[0]), 'intercept': float(coef[1]),
                      'scatter': calibrated['rmse'], 'default_colour': typical,
                      'colour_scatter': spread, 'dustpedia_residual_cv': calibrated,
                      'source': 'Cluver et al. (2014) form refitted to the DustPedia CIGALE '
                                'Mstar (Nersesian et al. 2019) by scripts/calibrate_fir.py'}}
    recommended = 'dustpedia' if calibrated['rmse'] < cluver['rmse'] else 'cluver2014'
    return relations, recommended, int(ok.sum())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=str(ROOT.parent / 'shared' / 'data'))
    parser.add_argument('--output', default=str(ROOT / 'astro_dustml' / 'data'))
    args = parser.parse_args(argv)
    start = time.time()
    data, out = Path(args.data), Path(args.output)
    write_colour_corrections(out / 'fir_colour_corrections.json', filter_dir=data / 'filters')
    table = load_dustpedia_global(path=data / 'dustpedia', download=False,
                                  bands=['WISE_3.4', 'WISE_4.6', *FIT_BANDS])
    table = clean_fir(table)
    sets = dust_calibration(table)
    provenance = {'photometry': 'DustPedia aperture photometry v2.2 (Clark et al. 2018)',
                  'targets': 'CIGALE/THEMIS catalogue (Nersesian et al. 2019)',
                  'script': 'scripts/calibrate_fir.py', 'min_sn': MIN_SN,
                  'n_splits': N_SPLITS, 'min_galaxies': MIN_GALAXIES,
                  'selection': 'every band of the set detected at S/N > min_sn and unflagged; '
                               'catalogue Tdust_err < 3 K and Mdust_err/Mdust < 0.5'}
    with open(out / 'dust_fit_calibration.json', 'w') as handle:
        json.dump({'description': 'y_cat = y_fit + offset + slope (T_fit - 20 K) for log10 '
                                  'Mdust, log10 Ldust and Tdust, per set of fitted bands; '
                                  'scatter = grouped-CV RMSE',
                   'reference_temperature_K': _T_REFERENCE, 'default': DEFAULT_SET,
                   'scatter': 'sqrt(cv_rmse^2 - mean(fit error^2)), added in quadrature '
                              'to the fit uncertainty of each pixel or galaxy',
                   'band_sets': sets, 'provenance': provenance}, handle, indent=1)
    relations, recommended, n_mass = stellar_mass_calibration(table)
    with open(out / 'stellar_mass_calibration.json', 'w') as handle:
        json.dump({'description': 'log10(M*/L_W1) = slope (W1-W2) + intercept; scatter = '
                                  'grouped-CV RMSE against the catalogue Mstar (dex)',
                   'recommended': recommended, 'relations': relations,
                   'sample': {'galaxies': n_mass}, 'provenance': provenance}, handle, indent=1)

    print(f'fit_dust_sed vs catalogue Mdust/Ldust (dex), Tdust (K): grouped {N_SPLITS}-fold '
          'CV on well-constrained galaxies; raw = modified black body, cal = calibrated')
    print(f'{"band set":52s} {"N":>4s}  {"Md raw b/sd":>12s} {"Md cal b/rmse":>13s}  '
          f'{"Ld raw b/sd":>12s} {"Ld cal b/rmse":>13s}  {"Td raw b/sd":>12s} '
          f'{"Td cal b/rmse":>13s}')
    for key, entry in sorted(sets.items(), key=lambda kv: (kv[0] != DEFAULT_SET,
                                                           -kv[1]['n_galaxies'])):
        cells = []
        for name in ('Mdust', 'Ldust', 'Tdust'):
            r = entry['cross_validation'][name]
            cells.append(f'{r["raw"]["bias"]:6.2f}/{r["raw"]["scatter"]:5.2f} '
                         f'{r["calibrated_cv"]["bias"]:6.2f}/{r["calibrated_cv"]["rmse"]:5.2f}')
        print(f'{key:52s} {entry["n_galaxies"]:4d}  ' + '  '.join(cells))
    print(f'\nstellar mass vs catalogue Mstar ({n_mass} galaxies with W1, W2 at S/N > {MIN_SN})')
    cl, dp = relations['cluver2014']['dustpedia_residual'], relations['dustpedia']
    print(f'cluver2014      bias {cl["bias"]:6.3f} dex  scatter {cl["scatter"]:.3f}  '
          f'RMSE {cl["rmse"]:.3f}')
    cv = dp['dustpedia_residual_cv']
    print(f'dustpedia (CV)  bias {cv["bias"]:6.3f} dex  scatter {cv["scatter"]:.3f}  '
          f'RMSE {cv["rmse"]:.3f}  slope {dp["slope"]:.3f} intercept {dp["intercept"]:.3f}')
    print(f'recommended: {recommended}; {time.time() - start:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
