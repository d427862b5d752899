"""Small builders shared by the tests."""

import astropy.units as u
from astropy.coordinates import SkyCoord

from astro_dustml.datasets.mock import _tan_wcs


def tan_wcs(shape, scale=1.0, center=(150.0, 2.0)):
    """North-up TAN WCS of ``scale`` arcsec pixels, centred on ``center`` in ``shape``."""
    if not isinstance(center, SkyCoord):
        center = SkyCoord(*center, unit='deg')
    return _tan_wcs(center, scale * u.arcsec, shape)
