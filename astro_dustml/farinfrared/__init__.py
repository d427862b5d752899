"""
The far-infrared side: dust from Herschel maps, and Herschel maps from dust.

Dust properties from far-infrared photometry calibrated to the DustPedia
catalogue (``dust_fit``, ``calibration``; ``temperature_prior`` folds an
independent temperature such as the models' into a fit), stellar-mass maps
from WISE (``stellar_mass``),
predicted Herschel maps and their comparison with observed ones
(``predict``), and sharp maps constrained by a coarse far-infrared truth
(``constrain``).

Modules here use `astro_dustml.imaging` and `astro_dustml.sed`, nothing of
the model, maps or training stages.
"""

from .calibration import *  # noqa: F401,F403
from .constrain import *  # noqa: F401,F403
from .dust_fit import *  # noqa: F401,F403
from .predict import *  # noqa: F401,F403
from .stellar_mass import *  # noqa: F401,F403
