"""
Dust maps: the images-to-maps pipeline and its output format.

`estimate_dust_maps` (``estimate``), tiled mosaics (``mosaic``), many
galaxies (``survey``), the dust-map FITS format (``io``) and the flag bits
and targets of a map (``flags``).

Modules here use `astro_dustml.imaging`, `astro_dustml.sed`,
`astro_dustml.model` and `astro_dustml.farinfrared`, nothing of
`astro_dustml.training`.
"""

from .estimate import *  # noqa: F401,F403
from .flags import *  # noqa: F401,F403
from .io import *  # noqa: F401,F403
from .mosaic import *  # noqa: F401,F403
from .survey import *  # noqa: F401,F403
