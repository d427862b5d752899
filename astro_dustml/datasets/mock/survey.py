"""A survey of different mock galaxies at several distances, made one at a time."""

import astropy.units as u
import numpy as np

from ...bands import INPUT_BANDS
from ._templates import DUST_RECIPES, PATTERNS
from .galaxy import make_mock_galaxy

__all__ = ['make_mock_survey']

_SIZE_AT_1E10 = 6 * u.kpc  # D25 radius of a 1e10 Msun disc
_SIZE_SLOPE = 0.3  # D25 radius ~ Mstar**0.3
_THICKNESS = 0.15  # intrinsic axis ratio of the discs


def make_mock_survey(n_galaxies=12, *, distances=(10, 20, 40) * u.Mpc, seed=0,
                     bands=INPUT_BANDS, log_mass_range=(9.3, 10.7), **kwargs):
    """
    Yield different mock galaxies, one at a time, at several distances.

    Galaxy ``i`` has the star-formation pattern ``PATTERNS[i % 4]`` (arms,
    clumps, bar, smooth), the dust recipe ``DUST_RECIPES[(i // 4) % 3]``
    (star formation, dust mass, temperature) and the distance
    ``distances[i % len(distances)]``, so that twelve galaxies cover every
    pattern with every recipe and each distance equally. Its stellar mass is
    drawn log-uniformly in ``log_mass_range``, its D25 radius from a
    size-mass relation (6 kpc at 1e10 Msun, slope 0.3, scatter 0.1 dex), its
    inclination isotropically (thick discs, intrinsic axis ratio 0.15) and
    its position angle uniformly; the images cover 2.5 D25 radii. A
    generator: only the galaxy being used sits in memory.

    Parameters
    ----------
    n_galaxies : int, optional
        Number of galaxies.
    distances : `~astropy.units.Quantity`, optional
        Distances, used in turn.
    seed : int, optional
        Seed of the survey (galaxy ``i`` uses seed ``1000 * seed + i``).
    bands : sequence of str, optional
        Bands to image.
    log_mass_range : tuple of float, optional
        Range of log10 stellar mass (solar masses).
    **kwargs
        Passed to `make_mock_galaxy` (e.g. ``n_stars``, ``noise``).

    Yields
    ------
    mock : `MockGalaxy`
        With ``galaxy['name']`` ``'MOCK00'``, ``'MOCK01'``...; its
        ``properties`` record the recipe, pattern, mass and seed.

    Examples
    --------
    >>> from astro_dustml.datasets import make_mock_survey
    >>> survey = make_mock_survey(3, bands=['WISE_3.4'], noise=False)
    >>> [(m.galaxy['name'], m.properties['pattern'], m.galaxy['distance'])
    ...  for m in survey]  # doctest: +FLOAT_CMP
    [('MOCK00', 'arms', <Quantity 10. Mpc>), ('MOCK01', 'clumps', <Quantity 20. Mpc>),
     ('MOCK02', 'bar', <Quantity 40. Mpc>)]
    """
    distances = u.Quantity(distances)
    if not distances.unit.is_equivalent(u.Mpc) or distances.size == 0:
        raise ValueError(f'distances must be a non-empty length Quantity, got {distances!r}.')
    if n_galaxies < 1:
        raise ValueError(f'n_galaxies must be at least 1, got {n_galaxies}.')
    clash = {'seed', 'distance', 'semimajor', 'axis_ratio', 'position_angle', 'fov',
             'stellar_mass', 'dust_recipe', 'pattern', 'name'} & set(kwargs)
    if clash:
        raise ValueError(f'make_mock_survey sets {", ".join(sorted(clash))} itself; '
                         'leave them out (use make_mock_galaxy for one chosen galaxy).')
    for i in range(n_galaxies):
        galaxy_seed = 1000 * seed + i
        rng = np.random.default_rng(galaxy_seed)
        log_mass = rng.uniform(*log_mass_range)
        radius = _SIZE_AT_1E10 * 10 ** (_SIZE_SLOPE * (log_mass - 10) + rng.normal(0, 0.1))
        distance = distances[i % distances.size]
        semimajor = (radius / distance * u.rad).to(u.arcsec)
        cos_i = rng.uniform(0, 1)
        axis_ratio = float(np.sqrt(cos_i ** 2 * (1 - _THICKNESS ** 2) + _THICKNESS ** 2))
        yield make_mock_galaxy(
            bands=bands, seed=galaxy_seed, distance=distance, semimajor=semimajor,
            axis_ratio=round(axis_ratio, 3), position_angle=rng.uniform(0, 180) * u.deg,
            fov=np.ceil(2.5 * semimajor.to_value(u.arcsec) / 10) * 10 * u.arcsec,
            stellar_mass=10 ** log_mass, pattern=PATTERNS[i % len(PATTERNS)],
            dust_recipe=DUST_RECIPES[(i // len(PATTERNS)) % len(DUST_RECIPES)],
            name=f'MOCK{i:02d}', **kwargs)
