"""
The module paths of the flat layout, kept for one release.

``astro_dustml.estimate``, ``astro_dustml.io`` and the other modules that
moved into the stage subpackages still import: each old path is a small
module that forwards every name to where it lives now and warns once with
an `~astropy.utils.exceptions.AstropyDeprecationWarning` naming the new
path. Nothing inside the package imports an old path.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

from astropy.utils.exceptions import AstropyDeprecationWarning

#: Old module -> the new modules its public names live in (the first is the main one).
MOVED = {
    'io': ['imaging.io'], 'prepare': ['imaging.prepare'],
    'psf': ['imaging.psf', 'imaging.psf_matching'],
    'align': ['imaging.align'], 'stars': ['imaging.stars', 'imaging.gaia'],
    'filters': ['sed.filters'], 'dust_emission': ['sed.dust_emission'],
    'cigale': ['sed.cigale'], 'features': ['model.features'],
    'registry': ['model.registry'], 'validation': ['training.validation'],
    'dust_fit': ['farinfrared.dust_fit', 'farinfrared.calibration'],
    'stellar_mass': ['farinfrared.stellar_mass'],
    'fir': ['farinfrared.predict'], 'constrain': ['farinfrared.constrain'],
    'scales': ['training.scales'], 'distributed_training': ['training.distributed'],
    'fir_truth': ['training.fir_truth'],
    'estimate': ['maps.estimate', 'maps.flags', 'maps.io'], 'dustmap_io': ['maps.io'],
    'mosaic': ['maps.mosaic'], 'survey': ['maps.survey'],
}
_PACKAGE = __name__.rpartition('.')[0]


class _MovedLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None  # a plain new module

    def exec_module(self, module):
        old = module.__name__.rpartition('.')[2]
        targets = [importlib.import_module(f'{_PACKAGE}.{new}') for new in MOVED[old]]
        names = [name for target in targets for name in getattr(target, '__all__', ())]
        warnings.warn(f'{module.__name__} is deprecated: import from '
                      f'{_PACKAGE}.{MOVED[old][0]} (or its subpackage) instead.',
                      AstropyDeprecationWarning, stacklevel=2)

        def __getattr__(name):
            for target in targets:
                if hasattr(target, name):
                    return getattr(target, name)
            raise AttributeError(f'module {module.__name__!r} has no attribute {name!r}')

        module.__getattr__ = __getattr__
        module.__all__ = list(dict.fromkeys(names))
        module.__doc__ = f'Deprecated alias of `{_PACKAGE}.{MOVED[old][0]}`.'


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        package, _, old = fullname.rpartition('.')
        if package == _PACKAGE and old in MOVED:
            return importlib.machinery.ModuleSpec(fullname, _MovedLoader())
        return None


def install():
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
