# Sphinx configuration for astro_dustml, on top of sphinx-astropy's defaults.
import datetime

from sphinx_astropy.conf.v2 import *  # noqa: F401,F403
from sphinx_astropy.conf.v2 import exclude_patterns, intersphinx_mapping, rst_epilog  # noqa: F401

import astro_dustml

project = 'astro_dustml'
author = 'astro_dustml developers'
copyright = f'{datetime.date.today().year}, {author}'
version = release = astro_dustml.__version__

exclude_patterns = list(exclude_patterns) + ['_build', '**.ipynb_checkpoints']
intersphinx_mapping.update({
    'photutils': ('https://photutils.readthedocs.io/en/stable/', None),
    'reproject': ('https://reproject.readthedocs.io/en/stable/', None),
    'regions': ('https://astropy-regions.readthedocs.io/en/stable/', None),
    'ndcube': ('https://docs.sunpy.org/projects/ndcube/en/stable/', None),
    'sklearn': ('https://scikit-learn.org/stable/', None),
    'xgboost': ('https://xgboost.readthedocs.io/en/stable/', None),
})
# No network in CI: inventories are fetched when available, and a failed fetch
# must not fail a -W build.
suppress_warnings = ['intersphinx.external', 'config.cache']
intersphinx_timeout = 5

html_theme_options = {
    'github_url': 'https://github.com/astro-dustml/astro-dustml',
}
html_static_path = ['_static']
html_title = f'{project} v{release}'
plot_include_source = True
plot_html_show_source_link = False
plot_formats = [('png', 100)]
automodapi_toctreedirnm = 'api'
numpydoc_show_class_members = False
nitpicky = False
