"""Data sets: mock galaxies for tests and examples, and the DustPedia training sample."""

from .mock import *
from .mock import __all__ as _mock_all
from .dustpedia import DUSTPEDIA_FILES, load_dustpedia_global

__all__ = list(_mock_all) + ['load_dustpedia_global', 'DUSTPEDIA_FILES']
