# Sphinx configuration for astro_dustml, on top of sphinx-astropy's defaults.
import datetime
import os
import re

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
# Builds here and in CI have no network: the inventories are only fetched when
# asked for (ASTRO_DUSTML_INTERSPHINX=1), so that an offline -W build passes.
if not os.environ.get('ASTRO_DUSTML_INTERSPHINX'):
    intersphinx_mapping.clear()

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


def _drop_sklearn_routing(app, docname, source):
    # scikit-learn adds set_<method>_request to every estimator; their
    # docstrings point into sklearn's own glossary, which is not ours to build
    if docname.startswith('api/'):
        source[0] = re.sub(r'.*set_\w+_request.*\n', '', source[0])


def setup(app):
    app.connect('source-read', _drop_sklearn_routing)
