"""
The dust-property model (`DustModel`) and its helpers.

`DustModel` (in ``core``) keeps the public API; the work is done by private
modules, one per concern: ``_forest`` (tree export and inference), ``_linear``
(the ridge base), ``_sigma`` (the uncertainty model), ``_persistence``
(portable files and the card) and ``_groups`` (per-galaxy weights and folds).
"""

from ._groups import *
from .core import *
# private helpers other modules and tests import from here
from ._forest import _export_forest, _forest_predict
from ._groups import _groups_array, _shuffled_groups, _target_values
from ._linear import _fit_linear, _linear_predict
from ._groups import __all__ as _groups_all
from .core import __all__ as _core_all

__all__ = _core_all + _groups_all
