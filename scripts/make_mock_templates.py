"""
Build the SED template library of the mock galaxies from the DustPedia tables.

Fits a Gaussian mixture (scikit-learn, 3 full-covariance components, the BIC
minimum) to the joint distribution, over the DustPedia galaxies with a pcigale
UV-MIR fit, finite catalogue targets and a catalogue reduced chi² below 5, of

- ``log_mstar`` and ``log_ssfr`` (Nersesian et al. 2019 CIGALE catalogue),
- the UV to mid-infrared SED per solar mass of stars at 10 Mpc, one log10
  flux density (Jy) per input band, scaled by ``(distance / 10 Mpc)**2 /
  Mstar``: the observed aperture flux (Clark et al. 2018) where it has a
  signal-to-noise ratio of at least 5, else the Bayesian flux of a pcigale fit
  to the 18 bands (Dobbels et al. 2020),
- ``sLd``, ``sMd`` (dex) and ``Td`` (K) of the catalogue,

and writes 200 synthetic galaxies drawn from it (seed 0; draws with a target
outside the range of the real galaxies are redrawn) to
``astro_dustml/data/mock_templates.ecsv``. The draws share the real galaxies'
relations between colours and dust, with their scatter, but none is a real
galaxy: a model trained on DustPedia has not seen them, so its errors on mock
galaxies made of them are those on new galaxies.

Usage::

    python scripts/make_mock_templates.py [--data ../shared/data/dustpedia]
"""

import argparse
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table
from sklearn.mixture import GaussianMixture

from astro_dustml.bands import INPUT_BANDS
from astro_dustml.datasets import load_dustpedia_global

ROOT = Path(__file__).resolve().parents[1]
N_TEMPLATES = 200
N_COMPONENTS = 3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=ROOT.parent / 'shared' / 'data' / 'dustpedia')
    parser.add_argument('--output', default=ROOT / 'astro_dustml' / 'data' / 'mock_templates.ecsv')
    args = parser.parse_args(argv)
    table = load_dustpedia_global(path=args.data, cigale_fluxes=True, require_targets=True,
                                  download=False)
    cat = Table.read(Path(args.data) / 'dustpedia_cigale_results_final_version.csv',
                     format='ascii.csv')
    sfr = dict(zip(cat['id'], np.asarray(cat['SFR__Msol_per_yr'], dtype=float)))
    mstar = table['Mstar'].to_value(u.solMass)
    with np.errstate(divide='ignore', invalid='ignore'):
        log_ssfr = np.log10([sfr[str(g)] for g in table['galaxy']] / mstar)
    # Observed fluxes (those the DustPedia models learn from), filled from the
    # pcigale fit where a band is missing or below signal-to-noise 5
    observed = load_dustpedia_global(path=args.data, require_targets=True, download=False)
    row = {str(g): k for k, g in enumerate(observed['galaxy'])}
    index = np.array([row[str(g)] for g in table['galaxy']])
    fluxes = np.array([table[b].to_value(u.Jy) for b in INPUT_BANDS]).T
    obs = np.array([observed[b].to_value(u.Jy)[index] for b in INPUT_BANDS]).T
    err = np.array([observed[b + '_err'].to_value(u.Jy)[index] for b in INPUT_BANDS]).T
    with np.errstate(invalid='ignore'):
        measured = np.isfinite(obs) & (obs >= 5 * err) & (err > 0)
    print(f'{measured.mean():.0%} of the fluxes observed, the rest from the pcigale fit')
    fluxes = np.where(measured, obs, fluxes)
    good = (np.all(fluxes > 0, axis=1) & np.isfinite(log_ssfr)
            & (np.asarray(table['cigale_red_chi2']) < 5))
    dilution = (table['distance'].to_value(u.Mpc) / 10) ** 2 / mstar
    targets = np.column_stack([table[t].value for t in ('sLd', 'sMd', 'Td')])[good]
    X = np.column_stack([np.log10(mstar), log_ssfr,
                         np.log10(fluxes * dilution[:, None])])[good]
    X = np.column_stack([X, targets])
    gmm = GaussianMixture(N_COMPONENTS, covariance_type='full', n_init=3,
                          random_state=0).fit(X)
    low, high = targets.min(axis=0), targets.max(axis=0)
    draws = np.empty((0, X.shape[1]))
    seed = 0
    while len(draws) < N_TEMPLATES:
        gmm.random_state = seed
        sample = gmm.sample(N_TEMPLATES)[0]
        inside = np.all((sample[:, -3:] >= low) & (sample[:, -3:] <= high), axis=1)
        draws = np.vstack([draws, sample[inside]])
        seed += 1
    draws = draws[:N_TEMPLATES]
    out = Table()
    out['template'] = [f'T{i:03d}' for i in range(N_TEMPLATES)]
    out['log_mstar'] = np.round(draws[:, 0], 3)
    out['log_ssfr'] = np.round(draws[:, 1], 3)
    for j, name in enumerate(('sLd', 'sMd', 'Td')):
        out[name] = np.round(draws[:, -3 + j], 3)
    for j, band in enumerate(INPUT_BANDS):
        out[band] = np.round(draws[:, 2 + j], 4)
    out.meta['comments'] = [
        'SED templates of the mock galaxies (astro_dustml.datasets.make_mock_galaxy):',
        f'{N_TEMPLATES} draws from a {N_COMPONENTS}-component Gaussian mixture fitted to '
        f'{good.sum()} DustPedia galaxies.',
        'Band columns: log10 flux density (Jy) per solar mass of stars at 10 Mpc (observed, '
        'Clark et al. 2018, or pcigale UV-MIR Bayesian fluxes, Dobbels et al. 2020);',
        'log_mstar (Msun), log_ssfr (1/yr), sLd, sMd (dex), Td (K): Nersesian et al. 2019 '
        'CIGALE catalogue.',
        'Made by scripts/make_mock_templates.py.']
    out.write(args.output, format='ascii.ecsv', overwrite=True)
    print(f'wrote {len(out)} templates to {args.output} (mixture fitted to {good.sum()} '
          'DustPedia galaxies)')


if __name__ == '__main__':
    main()
