"""
Images in, one common grid out: the first stage of the pipeline.

Reading and checking user images (``io``), unit conversion, sky subtraction
and Galactic extinction (``prepare``), PSFs (``psf``) and PSF matching
(``psf_matching``),
reprojection onto a common grid (``align``), Gaia foreground stars
(``gaia``) and their masks (``stars``), and the one-band-at-a-time chain of
those steps that the later stages run (``chain``, private).

Modules here use `astro_dustml.bands`, `astro_dustml.exceptions` and each
other, nothing of a later stage.
"""

from .align import *  # noqa: F401,F403
from .gaia import *  # noqa: F401,F403
from .io import *  # noqa: F401,F403
from .prepare import *  # noqa: F401,F403
from .psf import *  # noqa: F401,F403
from .psf_matching import *  # noqa: F401,F403
from .stars import *  # noqa: F401,F403
