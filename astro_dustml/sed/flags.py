"""
The per-band flag bits of pixel SED tables.

Each ``<band>_flag`` column of a table of ``sed.tables`` or
``sed.photometry`` is an int16 bitmask of `FLAG_MASKED`, `FLAG_MISSING`,
`FLAG_NEGATIVE`, `FLAG_LOW_SN` and `FLAG_CATALOGUE`; `decode_flags` turns it
into names.

Uses numpy only.
"""

import numpy as np

__all__ = ['FLAG_MASKED', 'FLAG_MISSING', 'FLAG_NEGATIVE', 'FLAG_LOW_SN', 'FLAG_CATALOGUE',
           'FLAG_NAMES', 'decode_flags']


FLAG_MASKED = 1
"""The pixel is masked in that band (star, artefact, outside coverage)."""


FLAG_MISSING = 2
"""No value: band absent, value not finite, or empty catalogue entry."""


FLAG_NEGATIVE = 4
"""The flux is negative (kept, as a measurement consistent with noise)."""


FLAG_LOW_SN = 8
"""Signal-to-noise ratio below 1."""


FLAG_CATALOGUE = 16
"""The DustPedia catalogue flags the value (its flag string is not empty)."""


FLAG_NAMES = {FLAG_MASKED: 'MASKED', FLAG_MISSING: 'MISSING',
              FLAG_NEGATIVE: 'NEGATIVE', FLAG_LOW_SN: 'LOW_SN',
              FLAG_CATALOGUE: 'CATALOGUE'}
"""Name of every flag bit."""


_FLAG_DTYPE = np.int16


def decode_flags(flag):
    """
    Names of the bits set in a flag value.

    Parameters
    ----------
    flag : int
        A ``<band>_flag`` value.

    Returns
    -------
    names : list of str

    Examples
    --------
    >>> from astro_dustml.sed import decode_flags, FLAG_NEGATIVE, FLAG_LOW_SN
    >>> decode_flags(FLAG_NEGATIVE | FLAG_LOW_SN)
    ['NEGATIVE', 'LOW_SN']
    """
    return [name for bit, name in FLAG_NAMES.items() if int(flag) & bit]


def _value_flags(value, error):
    """NEGATIVE, LOW_SN and MISSING bits from values and errors (arrays)."""
    flags = np.zeros(np.shape(value), dtype=_FLAG_DTYPE)
    finite = np.isfinite(value)
    flags[~finite] |= FLAG_MISSING
    with np.errstate(invalid='ignore'):
        flags[finite & (value < 0)] |= FLAG_NEGATIVE
        # S/N < 1; undefined (no flag) where the error is unknown
        flags[finite & np.isfinite(error) & (value < error)] |= FLAG_LOW_SN
    return flags
