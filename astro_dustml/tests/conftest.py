"""Fixtures shared by the tests: small synthetic data and the real data beside the checkout."""

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use('Agg')

# CI and developers have ../shared/data beside the checkout (tox points at it
# through the environment, since it tests an installed copy); anywhere else the
# tests that need it skip.
SHARED_DATA = Path(os.environ.get(
    'ASTRO_DUSTML_SHARED_DATA',
    Path(__file__).resolve().parents[3] / 'shared' / 'data'))


@pytest.fixture(scope='session')
def shared_data():
    """Path of the real data folder, or skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f'real data folder {SHARED_DATA} not present')
    return SHARED_DATA
