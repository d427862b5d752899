"""
The band registry: every photometric band ``astro_dustml`` knows.

Every other module looks band constants up here; none repeats them.
Canonical names are those of the DustPedia photometry tables (Clark et al.
2018), e.g. ``'WISE_3.4'`` or ``'SPIRE_250'``.

Sources of the values
---------------------
- Pivot wavelengths of the 18 inputs: Table 1 of Dobbels & Baes (2021);
  far-infrared bands: nominal wavelengths.
- PSF FWHM: Aniano et al. (2011), Table 3, for GALEX, WISE, Spitzer and
  Herschel; typical seeing of the DustPedia SDSS and 2MASS maps (Clark et al.
  2018, Table 1).
- Calibration uncertainty: DustPedia/CAAPR (Clark et al. 2018, Table 1).
- Galactic extinction ``A_band / E(B-V)``: Schlafly & Finkbeiner (2011,
  R_V = 3.1) for SDSS and 2MASS; Wyder et al. (2007) for GALEX; Yuan et al.
  (2013) for WISE 1-2; Indebetouw et al. (2005) scaled to 2MASS Ks for IRAC;
  negligible (0) longwards of 10 micron.
- Pixel scales: those of the DustPedia cutouts.
- Native units: survey data units; WISE DN and GALEX counts/s are defined
  from their photometric zero points (Jarrett et al. 2011; Morrissey et al.
  2007), SDSS from the nanomaggy.
"""

import difflib
import re
from dataclasses import dataclass, field

import astropy.units as u
import numpy as np

__all__ = ['Band', 'BANDS', 'INPUT_BANDS', 'FIR_BANDS', 'REFERENCE_BAND',
           'get_band', 'band_table', 'dn_unit']


def _mag_unit(name, zero_point_mag, zero_mag_flux):
    """A unit worth the flux of one data number at the given zero point."""
    return u.def_unit(name, zero_mag_flux * 10 ** (-0.4 * zero_point_mag))


_AB = 3631 * u.Jy
_WISE_DN = {1: (20.5, 309.540), 2: (19.5, 171.787), 3: (18.0, 31.674),
            4: (13.0, 8.363)}
# Zero-magnitude flux densities (Jy) of the Vega systems of surveys whose
# products are in DN with the zero point in the header (MAGZP): 2MASS from
# Cohen, Wheaton & Megeath (2003), WISE from Jarrett et al. (2011)
_VEGA_ZERO_FLUX = {'2MASS_J': 1594.0, '2MASS_H': 1024.0, '2MASS_Ks': 666.7,
                   **{name: _WISE_DN[n][1] for n, name in
                      enumerate(('WISE_3.4', 'WISE_4.6', 'WISE_12', 'WISE_22'), 1)}}
_GALEX_ZP = {'FUV': 18.82, 'NUV': 20.08}


@dataclass(frozen=True)
class Band:
    """
    One photometric band.

    Attributes
    ----------
    name : str
        Canonical (DustPedia) name, e.g. ``'WISE_3.4'``.
    telescope, instrument, filter : str
        Facility, camera and filter name.
    wavelength : `~astropy.units.Quantity`
        Pivot wavelength.
    fwhm : `~astropy.units.Quantity`
        PSF full width at half maximum.
    calibration_error : float
        Fractional calibration uncertainty.
    extinction : float
        Galactic extinction ``A_band / E(B-V)``.
    pixel_scale : `~astropy.units.Quantity`
        Pixel scale of the DustPedia maps.
    cigale_filter : str
        Filter name in pcigale's filter database.
    native_unit : `~astropy.units.UnitBase`
        Unit of the survey's own data products, convertible to Jy (possibly
        per pixel or per steradian).
    aliases : tuple of str
        Other names under which the band is found (filter names, header
        values), compared case-insensitively.
    vega_zero_flux : `~astropy.units.Quantity` or None
        Flux density of a zero-magnitude (Vega) source, for survey products
        in data numbers whose header gives the zero point (``MAGZP``): WISE
        (Jarrett et al. 2011) and 2MASS (Cohen et al. 2003). None otherwise.
    """

    name: str
    telescope: str
    instrument: str
    filter: str
    wavelength: u.Quantity
    fwhm: u.Quantity
    calibration_error: float
    extinction: float
    pixel_scale: u.Quantity
    cigale_filter: str
    native_unit: u.UnitBase
    aliases: tuple = field(default=(), repr=False)
    vega_zero_flux: u.Quantity = field(default=None, repr=False)

    @property
    def is_input(self):
        """Whether the band is one of the 18 model inputs."""
        return self.name in INPUT_BANDS

    def __str__(self):
        return self.name


_JY_PIX = u.Jy / u.pix
_MJY_SR = u.MJy / u.sr
_NMGY_PIX = u.def_unit('nanomaggy', 1e-9 * _AB) / u.pix


def _wise(n):
    return _mag_unit(f'WISE{n}_DN', _WISE_DN[n][0], _WISE_DN[n][1] * u.Jy) / u.pix


def _galex(f):
    # counts per second: one count/s is an AB magnitude equal to the zero point
    return _mag_unit(f'GALEX_{f}_cps', _GALEX_ZP[f], _AB) / u.pix


# name, telescope, instrument, filter, pivot [um], FWHM [arcsec],
# calibration error, A/E(B-V), pixel scale [arcsec], pcigale filter,
# native unit, aliases
_BAND_ROWS = [
    ('GALEX_FUV', 'GALEX', 'GALEX', 'FUV', 0.153, 4.48, 0.045, 8.24, 3.2,
     'FUV', _galex('FUV'), ('FUV',)),
    ('GALEX_NUV', 'GALEX', 'GALEX', 'NUV', 0.229, 5.05, 0.027, 8.20, 3.2,
     'NUV', _galex('NUV'), ('NUV',)),
    ('SDSS_u', 'SDSS', 'SDSS', 'u', 0.355, 1.3, 0.013, 4.239, 0.45,
     'u_prime', _NMGY_PIX, ('u', "u'", 'u_prime')),
    ('SDSS_g', 'SDSS', 'SDSS', 'g', 0.480, 1.3, 0.008, 3.303, 0.45,
     'g_prime', _NMGY_PIX, ('g', "g'", 'g_prime')),
    ('SDSS_r', 'SDSS', 'SDSS', 'r', 0.624, 1.3, 0.008, 2.285, 0.45,
     'r_prime', _NMGY_PIX, ('r', "r'", 'r_prime')),
    ('SDSS_i', 'SDSS', 'SDSS', 'i', 0.766, 1.3, 0.007, 1.698, 0.45,
     'i_prime', _NMGY_PIX, ('i', "i'", 'i_prime')),
    ('SDSS_z', 'SDSS', 'SDSS', 'z', 0.908, 1.3, 0.008, 1.263, 0.45,
     'z_prime', _NMGY_PIX, ('z', "z'", 'z_prime')),
    ('2MASS_J', '2MASS', '2MASS', 'J', 1.24, 2.0, 0.017, 0.709, 1.0,
     'J_2mass', _JY_PIX, ('J',)),
    ('2MASS_H', '2MASS', '2MASS', 'H', 1.65, 2.0, 0.019, 0.449, 1.0,
     'H_2mass', _JY_PIX, ('H',)),
    ('2MASS_Ks', '2MASS', '2MASS', 'Ks', 2.16, 2.0, 0.019, 0.302, 1.0,
     'Ks_2mass', _JY_PIX, ('Ks', 'K')),
    ('WISE_3.4', 'WISE', 'WISE', 'W1', 3.37, 5.79, 0.024, 0.18, 1.375,
     'WISE1', _wise(1), ('W1', 'WISE1')),
    ('WISE_4.6', 'WISE', 'WISE', 'W2', 4.62, 6.37, 0.028, 0.16, 1.375,
     'WISE2', _wise(2), ('W2', 'WISE2')),
    ('WISE_12', 'WISE', 'WISE', 'W3', 12.1, 6.60, 0.045, 0.0, 1.375,
     'WISE3', _wise(3), ('W3', 'WISE3')),
    ('WISE_22', 'WISE', 'WISE', 'W4', 22.2, 11.89, 0.057, 0.0, 1.375,
     'WISE4', _wise(4), ('W4', 'WISE4')),
    ('Spitzer_3.6', 'Spitzer', 'IRAC', 'I1', 3.56, 1.90, 0.03, 0.17, 0.6,
     'IRAC1', _MJY_SR, ('IRAC1', 'IRAC_3.6', 'I1', 'CH1')),
    ('Spitzer_4.5', 'Spitzer', 'IRAC', 'I2', 4.50, 1.81, 0.03, 0.13, 0.6,
     'IRAC2', _MJY_SR, ('IRAC2', 'IRAC_4.5', 'I2', 'CH2')),
    ('Spitzer_5.8', 'Spitzer', 'IRAC', 'I3', 5.75, 2.11, 0.03, 0.13, 0.6,
     'IRAC3', _MJY_SR, ('IRAC3', 'IRAC_5.8', 'I3', 'CH3')),
    ('Spitzer_8.0', 'Spitzer', 'IRAC', 'I4', 7.92, 2.82, 0.03, 0.13, 0.6,
     'IRAC4', _MJY_SR, ('IRAC4', 'IRAC_8.0', 'I4', 'CH4')),
    ('Spitzer_24', 'Spitzer', 'MIPS', '24', 23.68, 6.43, 0.05, 0.0, 1.5,
     'MIPS1', _MJY_SR, ('MIPS1', 'MIPS_24', 'MIPS24')),
    ('Spitzer_70', 'Spitzer', 'MIPS', '70', 71.42, 18.74, 0.10, 0.0, 4.5,
     'MIPS2', _MJY_SR, ('MIPS2', 'MIPS_70', 'MIPS70')),
    ('Spitzer_160', 'Spitzer', 'MIPS', '160', 155.9, 38.78, 0.12, 0.0, 9.0,
     'MIPS3', _MJY_SR, ('MIPS3', 'MIPS_160', 'MIPS160')),
    ('PACS_70', 'Herschel', 'PACS', 'BLUE', 70.0, 5.67, 0.07, 0.0, 2.0,
     'PACS_blue', _JY_PIX, ('PACS_blue', 'PACS70', 'BLUE')),
    ('PACS_100', 'Herschel', 'PACS', 'GREEN', 100.0, 7.04, 0.07, 0.0, 3.0,
     'PACS_green', _JY_PIX, ('PACS_green', 'PACS100', 'GREEN')),
    ('PACS_160', 'Herschel', 'PACS', 'RED', 160.0, 11.18, 0.07, 0.0, 4.0,
     'PACS_red', _JY_PIX, ('PACS_red', 'PACS160', 'RED')),
    ('SPIRE_250', 'Herschel', 'SPIRE', 'PSW', 250.0, 18.2, 0.055, 0.0, 6.0,
     'PSW_HIPE', _JY_PIX, ('PSW', 'PSW_HIPE', 'SPIRE250')),
    ('SPIRE_350', 'Herschel', 'SPIRE', 'PMW', 350.0, 24.9, 0.055, 0.0, 8.0,
     'PMW_HIPE', _JY_PIX, ('PMW', 'PMW_HIPE', 'SPIRE350')),
    ('SPIRE_500', 'Herschel', 'SPIRE', 'PLW', 500.0, 36.3, 0.055, 0.0, 12.0,
     'PLW_HIPE', _JY_PIX, ('PLW', 'PLW_HIPE', 'SPIRE500')),
]

BANDS = {row[0]: Band(name=row[0], telescope=row[1], instrument=row[2],
                      filter=row[3], wavelength=row[4] * u.micron,
                      fwhm=row[5] * u.arcsec, calibration_error=row[6],
                      extinction=row[7], pixel_scale=row[8] * u.arcsec,
                      cigale_filter=row[9], native_unit=row[10],
                      aliases=row[11],
                      vega_zero_flux=(_VEGA_ZERO_FLUX[row[0]] * u.Jy
                                      if row[0] in _VEGA_ZERO_FLUX else None))
         for row in _BAND_ROWS}
"""All known bands by canonical name, in order of wavelength within facility."""

INPUT_BANDS = tuple(BANDS)[:18]
"""The 18 UV to mid-infrared model inputs (Table 1 of Dobbels & Baes 2021)."""

FIR_BANDS = tuple(BANDS)[18:]
"""Far-infrared bands (the targets' side): MIPS, PACS and SPIRE."""

REFERENCE_BAND = 'WISE_3.4'
"""The normalising band; every model input needs it."""

_LOOKUP = {}
for _b in BANDS.values():
    for _key in (_b.name, _b.cigale_filter):
        _LOOKUP[_key.lower()] = _b
for _b in BANDS.values():
    for _key in _b.aliases:
        _LOOKUP.setdefault(_key.lower(), _b)

_INSTRUMENT_KEYS = ('TELESCOP', 'INSTRUME', 'INSTRMNT', 'ORIGIN', 'SURVEY')
_FILTER_KEYS = ('FILTER', 'BAND', 'DETECTOR', 'CHNLNUM', 'CHANNEL')
_WAVELENGTH_KEYS = ('WVLNGTH', 'WAVELEN', 'WAVELENG', 'LAMBDA')


def _header_wavelength(header):
    for key in _WAVELENGTH_KEYS:
        value = header.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)):
            # A bare number: micron, as in most infrared archives
            return value * u.micron
        match = re.match(r'\s*([0-9.eE+-]+)\s*([A-Za-z]*)', str(value))
        if match:
            unit = {'nm': u.nm, 'um': u.micron, 'micron': u.micron,
                    'microns': u.micron, 'a': u.AA, 'angstrom': u.AA,
                    '': u.micron}.get(match.group(2).lower())
            if unit is not None:
                return float(match.group(1)) * unit
    return None


def _filter_names(band):
    """Lower-case names a header may give the filter under."""
    names = {band.filter.lower(), band.cigale_filter.lower(),
             *(a.lower() for a in band.aliases)}
    # Numbered filters (WISE 'W1', IRAC 'I1'): AllWISE headers say BAND = 1,
    # IRAC headers CHNLNUM = 1
    if re.fullmatch(r'[A-Za-z]+[0-9]', band.filter):
        names.add(band.filter[-1])
    return names


def dn_unit(band, zero_point):
    """
    The unit of one data number (DN) per pixel at a magnitude zero point.

    Survey products in DN (AllWISE Atlas images, 2MASS Atlas tiles) give the
    Vega zero point in the header keyword ``MAGZP``: a source of ``m`` mag
    gives ``10 ** (-0.4 * (m - MAGZP))`` DN in total.

    Parameters
    ----------
    band : str or `Band`
        A band with a Vega zero-magnitude flux (WISE or 2MASS).
    zero_point : float
        ``MAGZP``, in magnitudes.

    Returns
    -------
    unit : `~astropy.units.UnitBase`
        DN per pixel, convertible to Jy/pix.

    Raises
    ------
    ValueError
        If the band has no Vega zero-magnitude flux, or the zero point is not
        a finite number.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_dustml.bands import dn_unit
    >>> (1 * dn_unit('2MASS_J', 21.0034) * u.pix).to(u.mJy)  # doctest: +FLOAT_CMP
    <Quantity 0.00632599 mJy>
    """
    band = get_band(band)
    if band.vega_zero_flux is None:
        raise ValueError(f'{band.name} images are not given in data numbers with a '
                         'Vega zero point (MAGZP); only WISE and 2MASS ones are.')
    try:
        zero_point = float(zero_point)
    except (TypeError, ValueError):
        zero_point = np.nan
    if not np.isfinite(zero_point) or not 0 < zero_point < 40:
        raise ValueError(f'The {band.name} zero point MAGZP = {zero_point!r} is not a '
                         'magnitude zero point (a number of about 13 to 25 mag); fix the '
                         'header or give the unit explicitly (unit=).')
    return _mag_unit(f'{band.filter}_DN', zero_point, band.vega_zero_flux) / u.pix


def _band_from_header(header):
    facility = ' '.join(str(header.get(k, '')) for k in _INSTRUMENT_KEYS).upper()
    candidates = [b for b in BANDS.values()
                  if b.telescope.upper() in facility
                  or b.instrument.upper() in facility]
    if not candidates:
        raise ValueError(
            'Cannot recognise the band from the FITS header: no known '
            f'telescope or instrument in {", ".join(_INSTRUMENT_KEYS)}. '
            'Pass the band name explicitly, e.g. band="WISE_12".')
    if len({b.telescope for b in candidates}) == 1 and any(
            b.instrument.upper() in facility for b in candidates):
        candidates = [b for b in candidates if b.instrument.upper() in facility]
    for key in _FILTER_KEYS:
        value = str(header.get(key, '')).strip().lower()
        if not value:
            continue
        matches = [b for b in candidates if value in _filter_names(b)]
        if len(matches) == 1:
            return matches[0]
    wavelength = _header_wavelength(header)
    if wavelength is not None:
        ratios = [abs(np.log(b.wavelength / wavelength).to_value(u.one))
                  for b in candidates]
        best = int(np.argmin(ratios))
        if ratios[best] < np.log(1.2):
            return candidates[best]
    if len(candidates) == 1:
        return candidates[0]
    raise ValueError(
        'The FITS header names '
        f'{", ".join(sorted({b.telescope for b in candidates}))} but no '
        'filter or wavelength that identifies one band. Pass the band name '
        f'explicitly, one of: {", ".join(b.name for b in candidates)}.')


def get_band(name_or_header):
    """
    Look a band up by name, alias or FITS header.

    Parameters
    ----------
    name_or_header : str, `Band` or `~astropy.io.fits.Header`
        A canonical name (``'WISE_3.4'``), an alias (``'W1'``, the pcigale
        filter ``'WISE1'``), case-insensitive; or a FITS header, read through
        its ``TELESCOP``/``INSTRUME``/``INSTRMNT``, ``FILTER``/``DETECTOR``
        and ``WVLNGTH`` keywords.

    Returns
    -------
    band : `Band`
        The frozen band record.

    Raises
    ------
    ValueError
        If the band is not known; the message lists close matches.

    Examples
    --------
    >>> from astro_dustml.bands import get_band
    >>> band = get_band('W1')
    >>> band.name, band.wavelength
    ('WISE_3.4', <Quantity 3.37 micron>)
    >>> get_band('SPIRE_250').cigale_filter
    'PSW_HIPE'
    """
    if isinstance(name_or_header, Band):
        return name_or_header
    if hasattr(name_or_header, 'keys') and hasattr(name_or_header, 'get'):
        return _band_from_header(name_or_header)
    if not isinstance(name_or_header, str):
        raise TypeError('get_band expects a band name or a FITS header, '
                        f'not {type(name_or_header).__name__}.')
    band = _LOOKUP.get(name_or_header.strip().lower())
    if band is not None:
        return band
    close = difflib.get_close_matches(name_or_header, list(BANDS), n=3,
                                      cutoff=0.5)
    hint = (f' Did you mean {" or ".join(repr(c) for c in close)}?' if close
            else f' Known bands: {", ".join(BANDS)}.')
    raise ValueError(f'Unknown band {name_or_header!r}.{hint}')


def band_table():
    """
    The registry as a `~astropy.table.QTable`, one row per band.

    Examples
    --------
    >>> from astro_dustml.bands import band_table
    >>> table = band_table()
    >>> len(table)
    27
    >>> table.loc['PACS_100']['fwhm']
    <Quantity 7.04 arcsec>
    """
    from astropy.table import QTable

    bands = list(BANDS.values())
    table = QTable()
    table['name'] = [b.name for b in bands]
    for attr in ('telescope', 'instrument', 'filter'):
        table[attr] = [getattr(b, attr) for b in bands]
    for attr in ('wavelength', 'fwhm', 'pixel_scale'):
        table[attr] = u.Quantity([getattr(b, attr) for b in bands])
    table['calibration_error'] = [b.calibration_error for b in bands]
    table['extinction'] = [b.extinction for b in bands]
    table['cigale_filter'] = [b.cigale_filter for b in bands]
    table['native_unit'] = [b.native_unit.to_string() for b in bands]
    table['is_input'] = [b.is_input for b in bands]
    table.add_index('name')
    return table
