"""
What a dust map holds: the predicted properties and the flag bits.

`TARGETS` (the properties and their units) and `MAP_FLAGS` (the bits of
``maps.meta['flags']`` that say why a pixel is masked), shared by the
pipeline (``maps.estimate``, ``maps.mosaic``), the FITS format
(``maps.io``) and the figures.

Uses astropy units only.
"""

import astropy.units as u

__all__ = ['MAP_FLAGS', 'TARGETS']


#: The predicted properties and their units.
TARGETS = {'sLd': u.dex, 'sMd': u.dex, 'Td': u.K}


#: Bits of ``maps.meta['flags']``: why a pixel of the dust maps is masked.
MAP_FLAGS = {
    'OUTSIDE': 1,        # outside the galaxy region or the common footprint
    'MASKED_INPUT': 2,   # an input band is masked there (foreground star, bad pixel)
    'MISSING_INPUT': 4,  # off the image of a band given as input (still predicted)
    'OUT_OF_DOMAIN': 8,  # colours outside the training range, or too few bands
    'NO_PREDICTION': 16,  # the model returned no finite value
}
