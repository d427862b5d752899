"""
Data sets: mock galaxies for tests and examples.

The DustPedia training sample is the SED stage's
(`astro_dustml.sed.load_dustpedia_global`); it is importable from here too.
"""

from ..sed.dustpedia import DUSTPEDIA_FILES, load_dustpedia_global  # noqa: F401
from .mock import *
from .mock import __all__ as _mock_all

__all__ = list(_mock_all)
