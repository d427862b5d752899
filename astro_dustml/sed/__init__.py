"""
Pixel spectral energy distributions: the second stage.

Per-pixel and global SED tables from aligned images (``tables``) and their
flag bits (``flags``), DustPedia aperture photometry as the same kind of table
(``photometry``) and the global training sample built from it
(``dustpedia``), band transmission curves (``filters``), the dust emission
model behind synthetic far-infrared photometry (``dust_emission``) and the
pcigale bridge (``cigale``).

Modules here use `astro_dustml.imaging` and the shared vocabulary
(`astro_dustml.bands`, `astro_dustml.exceptions`), nothing of a later stage.
"""

from .cigale import *  # noqa: F401,F403
from .dust_emission import *  # noqa: F401,F403
from .dustpedia import *  # noqa: F401,F403
from .filters import *  # noqa: F401,F403
from .flags import *  # noqa: F401,F403
from .photometry import *  # noqa: F401,F403
from .tables import *  # noqa: F401,F403
