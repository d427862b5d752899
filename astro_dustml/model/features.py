"""
Model features from a pixel or global SED table.

The features are those of Dobbels & Baes (2021, Sect. 2.2): colours
``log10(F_band / F_WISE_3.4)`` of every input band against the normalising
WISE 3.4 micron band, the logarithm of the WISE 3.4 micron surface brightness
(flux per solid angle, so that pixels and integrated galaxies share one scale)
and, optionally, the logarithm of the physical pixel scale.

With ``colours='neighbours'`` the colours between neighbouring bands
(``log10(F_FUV / F_NUV)``, ``log10(F_u / F_g)``, ..., ``log10(F_12 / F_22)``,
the IRAC chain, ``log10(F_8.0 / F_22)`` and ``log10(F_FUV / F_22)``) are
appended: they are differences of the reference colours, which a tree cannot
form by itself, and they improve the DustPedia cross-validation.

With ``include_snr=True`` the ``log10`` signal-to-noise ratio of every band,
capped at `SNR_CAP`, is appended, so that a model can tell a measured colour
from a noisy one.

A band that is masked, missing, or has a non-positive flux gives a NaN feature,
never zero: the models treat NaN as "band not observed".
"""

import astropy.units as u
import numpy as np

from ..bands import INPUT_BANDS, REFERENCE_BAND, get_band
from ..sed.flags import FLAG_MASKED, FLAG_MISSING

__all__ = ['make_features', 'feature_names', 'valid_bands', 'NEIGHBOUR_PAIRS', 'SNR_PREFIX',
           'SNR_CAP']


_BAD_FLAGS = FLAG_MASKED | FLAG_MISSING


def _colour_name(band):
    return f'log_{band}/{REFERENCE_BAND}'


_INTENSITY_NAME = f'log_{REFERENCE_BAND}_intensity'


_SCALE_NAME = 'log_pixel_scale_pc'


SNR_PREFIX = 'log_snr_'


"""Name prefix of the signal-to-noise features (``include_snr=True``)."""


SNR_CAP = 10.0


"""
Signal-to-noise ratio above which a band counts as simply well measured: its
noise then changes a colour by less than 0.04 dex, and pixels, whose ratios
reach far above any galaxy aperture's, stay in the training domain.
"""


_CHAIN = ['GALEX_FUV', 'GALEX_NUV', 'SDSS_u', 'SDSS_g', 'SDSS_r', 'SDSS_i', 'SDSS_z',
          '2MASS_J', '2MASS_H', '2MASS_Ks', REFERENCE_BAND, 'WISE_4.6', 'WISE_12', 'WISE_22']


_IRAC = ['Spitzer_3.6', 'Spitzer_4.5', 'Spitzer_5.8', 'Spitzer_8.0', 'WISE_22']


NEIGHBOUR_PAIRS = tuple(
    [(a, b) for a, b in zip(_CHAIN[:-1], _CHAIN[1:]) if REFERENCE_BAND not in (a, b)]
    + list(zip(_IRAC[:-1], _IRAC[1:])) + [('GALEX_FUV', 'WISE_22')])


"""Band pairs ``(a, b)`` of the ``colours='neighbours'`` features ``log10(F_a / F_b)``."""


_COLOUR_SETS = ('reference', 'neighbours')


def _extra_pairs(names, colours):
    if colours not in _COLOUR_SETS:
        raise ValueError(f'colours={colours!r} is not one of {_COLOUR_SETS}.')
    if colours == 'reference':
        return []
    return [(a, b) for a, b in NEIGHBOUR_PAIRS if a in names and b in names]


def _feature_bands(*, bands=INPUT_BANDS, include_intensity=True, include_scale=False,
                   colours='reference', include_snr=False):
    """The bands each feature depends on (beyond the reference band), in feature order."""
    names = _canonical_bands(bands)
    out = [(b,) for b in names if b != REFERENCE_BAND]
    if include_intensity:
        out.append(())
    if include_scale:
        out.append(())
    out += list(_extra_pairs(names, colours))
    if include_snr:
        out += [() if b == REFERENCE_BAND else (b,) for b in names]
    return out


def _canonical_bands(bands):
    names = [get_band(b).name for b in bands]
    if REFERENCE_BAND not in names:
        raise ValueError(
            f'the reference band {REFERENCE_BAND} must be among the bands '
            f'(got {names}); every feature is normalised by it, so add it.')
    if len(set(names)) != len(names):
        raise ValueError(f'bands are repeated in {names}; give each band once.')
    return names


def feature_names(*, bands=INPUT_BANDS, include_intensity=True, include_scale=False,
                  colours='reference', include_snr=False):
    """
    Names of the features `make_features` returns, in order.

    Parameters
    ----------
    bands : sequence of str, optional
        Input bands; must include ``'WISE_3.4'``.
    include_intensity : bool, optional
        Whether the log WISE 3.4 micron intensity is a feature.
    include_scale : bool, optional
        Whether the log pixel scale in pc is a feature.
    colours : {'reference', 'neighbours'}, optional
        ``'neighbours'`` appends the colours of `NEIGHBOUR_PAIRS` whose two
        bands are among ``bands``.
    include_snr : bool, optional
        Whether the log signal-to-noise ratio of every band is a feature.

    Returns
    -------
    names : list of str

    Examples
    --------
    >>> from astro_dustml.model.features import feature_names
    >>> feature_names(bands=['WISE_3.4', 'WISE_4.6', 'WISE_12'])
    ['log_WISE_4.6/WISE_3.4', 'log_WISE_12/WISE_3.4', 'log_WISE_3.4_intensity']
    >>> feature_names(bands=['WISE_3.4', 'WISE_4.6', 'WISE_12'], colours='neighbours')[-1]
    'log_WISE_4.6/WISE_12'
    """
    names = _canonical_bands(bands)
    out = [_colour_name(b) for b in names if b != REFERENCE_BAND]
    if include_intensity:
        out.append(_INTENSITY_NAME)
    if include_scale:
        out.append(_SCALE_NAME)
    out += [f'log_{a}/{b}' for a, b in _extra_pairs(names, colours)]
    if include_snr:
        out += [SNR_PREFIX + b for b in names]
    return out


def _column_value(table, name, unit):
    col = table[name]
    if hasattr(col, 'unit') and col.unit is not None:
        return u.Quantity(col).to_value(unit)
    return np.asarray(col, dtype=float)


def valid_bands(table, *, bands=INPUT_BANDS, min_snr=None, bad_flags=_BAD_FLAGS):
    """
    Which bands are usable in each row of a SED table.

    A band is usable when its column exists, its flux is finite and positive,
    its ``<band>_flag`` (if present) has none of the ``bad_flags`` bits set
    (by default MASKED and MISSING) and, if ``min_snr`` is given, its
    signal-to-noise ratio ``<band> / <band>_err`` reaches ``min_snr``.

    Parameters
    ----------
    table : `~astropy.table.Table` or `~astropy.table.QTable`
        Pixel or global SED table (see `astro_dustml.sed`).
    bands : sequence of str, optional
        Bands to check.
    min_snr : float, optional
        Minimum signal-to-noise ratio (needs ``<band>_err`` columns; a band
        without one is kept).
    bad_flags : int, optional
        Flag bits (`astro_dustml.sed` constants) that make a band unusable.

    Returns
    -------
    valid : `~numpy.ndarray` of bool, shape (len(table), len(bands))

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> from astro_dustml.model.features import valid_bands
    >>> t = QTable({'WISE_3.4': [1., 2.] * u.Jy, 'WISE_4.6': [0.5, -1.] * u.Jy})
    >>> valid_bands(t, bands=['WISE_3.4', 'WISE_4.6'])
    array([[ True,  True],
           [ True, False]])
    """
    names = [get_band(b).name for b in bands]
    valid = np.zeros((len(table), len(names)), dtype=bool)
    for j, band in enumerate(names):
        if band not in table.colnames:
            continue
        flux = _column_value(table, band, u.Jy)
        ok = np.isfinite(flux) & (flux > 0)
        if f'{band}_flag' in table.colnames:
            flag = np.asarray(table[f'{band}_flag'])
            if flag.dtype.kind not in 'iu':
                raise TypeError(
                    f'column {band}_flag must be an integer bitmask '
                    f'(astro_dustml.sed flags); got dtype {flag.dtype}.')
            ok &= (flag & bad_flags) == 0
        if min_snr is not None and f'{band}_err' in table.colnames:
            err = _column_value(table, f'{band}_err', u.Jy)
            with np.errstate(invalid='ignore', divide='ignore'):
                ok &= ~(flux / err < min_snr)
        if hasattr(table[band], 'mask'):
            ok &= ~np.ma.getmaskarray(table[band])
        valid[:, j] = ok
    return valid


def make_features(table, *, bands=INPUT_BANDS, include_intensity=True, include_scale=False,
                  colours='reference', include_snr=False, min_snr=None, bad_flags=_BAD_FLAGS):
    """
    Compute the model features of every row of a SED table.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        Pixel or global SED table with, per band, a flux column ``<band>``
        (Jy) and optionally ``<band>_flag`` (bitmask of `astro_dustml.sed`),
        plus ``pixel_area`` (solid angle) and, if ``include_scale``,
        ``pixel_scale_pc``.  Bands absent from the table give NaN features.
    bands : sequence of str, optional
        Input bands, in order; must include ``'WISE_3.4'``.
    include_intensity : bool, optional
        Add ``log10(I_WISE_3.4 / (MJy/sr))``, the reference band per solid
        angle, so that pixels and whole galaxies share one scale. A model
        trained on whole galaxies may leave it out: galaxy centres are far
        brighter per solid angle than any galaxy's average.
    include_scale : bool, optional
        Add ``log10(pixel_scale_pc / pc)`` as the last feature (NaN where the
        distance is unknown).
    colours : {'reference', 'neighbours'}, optional
        ``'neighbours'`` appends ``log10(F_a / F_b)`` for the band pairs of
        `NEIGHBOUR_PAIRS` present in ``bands`` (NaN when either band is
        unusable).
    include_snr : bool, optional
        Append ``log10(min(<band> / <band>_err, SNR_CAP))`` for every band
        (NaN where the band is unusable or has no positive error).
    min_snr, bad_flags : optional
        Which bands count as unusable (see `valid_bands`).

    Returns
    -------
    features : `~numpy.ndarray`, shape (len(table), n_features)
        ``log10(F_band / F_WISE_3.4)`` for each band other than WISE 3.4, then
        (optionally) ``log10(I_WISE_3.4 / (MJy/sr))`` and the scale.  NaN
        where a band is masked, missing or non-positive; every feature of a
        row is NaN when WISE 3.4 is unusable.  The neighbour colours, if
        asked for, come next and the signal-to-noise ratios last.
    names : list of str
        Feature names (see `feature_names`).

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> from astro_dustml.model.features import make_features
    >>> t = QTable({'WISE_3.4': [1.0] * u.Jy, 'WISE_4.6': [0.5] * u.Jy,
    ...             'pixel_area': [1e-6] * u.sr})
    >>> X, names = make_features(t, bands=['WISE_3.4', 'WISE_4.6'])
    >>> names
    ['log_WISE_4.6/WISE_3.4', 'log_WISE_3.4_intensity']
    >>> X.round(3)
    array([[-0.301,  0.   ]])
    """
    X, names, _ = _features_and_valid(
        table, bands=bands, include_intensity=include_intensity, include_scale=include_scale,
        colours=colours, include_snr=include_snr, min_snr=min_snr, bad_flags=bad_flags)
    return X, names


def _features_and_valid(table, *, bands, include_intensity, include_scale, colours,
                        include_snr, min_snr, bad_flags):
    """`make_features` plus the `valid_bands` array it is computed from."""
    names = _canonical_bands(bands)
    if REFERENCE_BAND not in table.colnames:
        raise ValueError(
            f'the table has no {REFERENCE_BAND} column; the models need the '
            f'WISE 3.4 micron flux of every row (build the table with that band).')
    if include_intensity and 'pixel_area' not in table.colnames:
        raise ValueError(
            "the table has no 'pixel_area' column (solid angle of each row); "
            'build it with astro_dustml.sed or add the aperture solid angle.')
    if include_scale and 'pixel_scale_pc' not in table.colnames:
        raise ValueError(
            "include_scale=True needs a 'pixel_scale_pc' column (pc); add it or "
            'set include_scale=False.')
    valid = valid_bands(table, bands=names, min_snr=min_snr, bad_flags=bad_flags)
    fluxes = np.full(valid.shape, np.nan)
    for j, band in enumerate(names):
        if band in table.colnames:
            fluxes[:, j] = np.where(valid[:, j], _column_value(table, band, u.Jy), np.nan)
    iref = names.index(REFERENCE_BAND)
    ref = fluxes[:, iref]
    cols = [np.log10(fluxes[:, j] / ref) for j in range(len(names)) if j != iref]
    with np.errstate(divide='ignore', invalid='ignore'):
        if include_intensity:
            area = _column_value(table, 'pixel_area', u.sr)
            intensity = (ref * u.Jy / (area * u.sr)).to_value(u.MJy / u.sr)
            intensity = np.where(intensity > 0, intensity, np.nan)
            cols.append(np.log10(intensity))
        if include_scale:
            scale = _column_value(table, 'pixel_scale_pc', u.pc)
            cols.append(np.where(np.isfinite(ref) & (scale > 0), np.log10(scale), np.nan))
    for a, b in _extra_pairs(names, colours):
        # NaN too where the reference is unusable: no row has features without it
        cols.append(np.log10(fluxes[:, names.index(a)] / fluxes[:, names.index(b)])
                    + 0 * ref)
    if include_snr:
        for j, band in enumerate(names):
            err = (_column_value(table, f'{band}_err', u.Jy)
                   if f'{band}_err' in table.colnames else np.full(len(table), np.nan))
            with np.errstate(divide='ignore', invalid='ignore'):
                snr = np.where(err > 0, np.minimum(fluxes[:, j] / err, SNR_CAP), np.nan)
            cols.append(np.log10(snr) + 0 * ref)
    # row-major, as the tree walk reads a row's features together
    X = np.empty((len(table), len(cols)))
    for k, col in enumerate(cols):
        X[:, k] = col
    return X, feature_names(bands=names, include_intensity=include_intensity,
                            include_scale=include_scale, colours=colours,
                            include_snr=include_snr), valid
