"""
Training and validating models on many galaxies.

Training galaxies and resolution scales (``galaxies``), truth sources
(``truth``, ``fir_truth``), multi-scale pixel tables in Parquet
(``tables``), resolved fitting and cross-validation (``fitting``), grouped
cross-validation and its figures (``validation``), the paper's scale
analyses (``scales``) and training on a Dask cluster (``distributed``).

Training is the last stage: its modules may use every other subpackage.
"""

from .distributed import *  # noqa: F401,F403
from .fir_truth import *  # noqa: F401,F403
from .fitting import *  # noqa: F401,F403
from .galaxies import *  # noqa: F401,F403
from .scales import *  # noqa: F401,F403
from .tables import *  # noqa: F401,F403
from .truth import *  # noqa: F401,F403
from .validation import *  # noqa: F401,F403
