# Test configuration shared by the package tests and the doctests.
try:
    from pytest_astropy_header.display import PYTEST_HEADER_MODULES, TESTED_VERSIONS
except ImportError:  # pragma: no cover
    PYTEST_HEADER_MODULES, TESTED_VERSIONS = {}, {}

from astro_dustml import __version__


def pytest_configure(config):
    config.option.astropy_header = True
    PYTEST_HEADER_MODULES.clear()
    PYTEST_HEADER_MODULES.update({
        'numpy': 'numpy', 'scipy': 'scipy', 'astropy': 'astropy',
        'photutils': 'photutils', 'reproject': 'reproject',
        'regions': 'regions', 'ndcube': 'ndcube', 'scikit-learn': 'sklearn',
        'xgboost': 'xgboost', 'matplotlib': 'matplotlib'})
    TESTED_VERSIONS['astro_dustml'] = __version__
