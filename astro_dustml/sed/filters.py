"""
Band transmission curves and synthetic photometry.

Reads filter files in pcigale's format (line 1 ``# name``, line 2 ``# energy``
or ``# photon``, line 3 a description, then wavelength in Angstrom and
transmission; the ``../shared/data/filters`` layout, as pcigale builds its
filter database from) and averages a spectrum through one the way the
far-infrared archives quote fluxes: the monochromatic flux density at the
band's reference wavelength of a source with ``nu F_nu`` constant that gives
the same detector signal (the PACS, SPIRE and MIPS convention).
"""

from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from scipy.integrate import trapezoid

from ..bands import get_band

__all__ = ['Filter', 'read_filter', 'band_average']


@dataclass(frozen=True)
class Filter:
    """
    One transmission curve.

    Attributes
    ----------
    name : str
        Filter name (first line of the file).
    kind : {'energy', 'photon'}
        Whether the detector integrates energy (bolometers) or counts photons.
    wavelength : `~astropy.units.Quantity`
        Wavelengths of the curve.
    transmission : `~numpy.ndarray`
        Relative transmission at those wavelengths.
    """

    name: str
    kind: str
    wavelength: u.Quantity
    transmission: np.ndarray


def _filter_path(band_or_path, filter_dir):
    path = Path(band_or_path)
    if path.suffix == '.dat' or path.is_file():
        return path
    if filter_dir is None:
        raise ValueError(f'{band_or_path!r} is not a filter file; give its path, or a band '
                         'name together with filter_dir= (the folder of pcigale filter '
                         'files, e.g. ../shared/data/filters).')
    band = get_band(str(band_or_path))
    # The registry's pcigale names and their aliases (SPIRE: PSW_HIPE or PSW)
    for name in (band.cigale_filter, *band.aliases):
        candidate = Path(filter_dir) / f'{name}.dat'
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f'No transmission curve of {band.name} in {filter_dir}: '
                            f'looked for {band.cigale_filter}.dat and its aliases.')


def read_filter(band_or_path, *, filter_dir=None):
    """
    Read a transmission curve in pcigale's filter format.

    Parameters
    ----------
    band_or_path : str or path-like
        A filter file, or a band name looked up in ``filter_dir`` by its
        pcigale filter name (or an alias) from the band registry.
    filter_dir : path-like, optional
        Folder of filter files.

    Returns
    -------
    filt : `Filter`

    Raises
    ------
    ValueError
        If the file's type line is neither ``energy`` nor ``photon`` or the
        table is empty.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from astro_dustml.sed import read_filter
    >>> path = pathlib.Path(tempfile.mkdtemp()) / 'box.dat'
    >>> _ = path.write_text('# box\\n# energy\\n# a box\\n9000 0\\n10000 1\\n11000 1\\n12000 0\\n')
    >>> f = read_filter(path)
    >>> f.name, f.kind, f.wavelength.to('micron')[1]
    ('box', 'energy', <Quantity 1. micron>)
    """
    path = _filter_path(band_or_path, filter_dir)
    with open(path) as handle:
        head = [handle.readline().lstrip('#').strip() for _ in range(3)]
    kind = head[1].lower()
    if kind not in ('energy', 'photon'):
        raise ValueError(f'{path}: line 2 must be "# energy" or "# photon", got {head[1]!r}.')
    table = np.loadtxt(path, comments='#', ndmin=2)
    if table.shape[0] < 2 or table.shape[1] < 2:
        raise ValueError(f'{path} holds no transmission table (wavelength in Angstrom and '
                         'transmission per line).')
    order = np.argsort(table[:, 0])
    return Filter(name=head[0], kind=kind, wavelength=table[order, 0] * u.AA,
                  transmission=np.clip(table[order, 1], 0, None))


def band_average(filt, frequency, f_nu, *, reference):
    """
    Flux density a band quotes for a spectrum, in the ``nu F_nu = const`` convention.

    ``F = int F_nu R dnu / int (nu_0 / nu) R dnu`` with ``R`` the
    transmission (divided by ``nu`` for photon counters) and ``nu_0`` the
    reference frequency.

    Parameters
    ----------
    filt : `Filter`
        The transmission curve.
    frequency : `~astropy.units.Quantity`
        Frequencies (or wavelengths) where ``f_nu`` is tabulated, covering
        the band.
    f_nu : array or `~astropy.units.Quantity`
        Spectrum, shape ``(..., len(frequency))``; several spectra at once.
    reference : `~astropy.units.Quantity`
        The band's reference wavelength or frequency.

    Returns
    -------
    flux : array or `~astropy.units.Quantity`
        Quoted flux density, shape ``f_nu.shape[:-1]``.

    Examples
    --------
    A spectrum with ``nu F_nu`` constant quotes its own value at the reference:

    >>> import numpy as np, astropy.units as u
    >>> from astro_dustml.sed import Filter, band_average
    >>> box = Filter('box', 'energy', [90, 100, 110, 120] * u.micron,
    ...              np.array([0., 1., 1., 0.]))
    >>> wav = np.linspace(80, 130, 500) * u.micron
    >>> spectrum = (wav / (100 * u.micron)).value * u.Jy
    >>> band_average(box, wav, spectrum, reference=100 * u.micron)  # doctest: +FLOAT_CMP
    <Quantity 1. Jy>
    """
    nu = u.Quantity(frequency).to_value(u.Hz, equivalencies=u.spectral())
    nu0 = u.Quantity(reference).to_value(u.Hz, equivalencies=u.spectral())
    order = np.argsort(nu)
    nu = nu[order]
    f_nu = (f_nu[..., order] if not isinstance(f_nu, u.Quantity)
            else f_nu[..., order])
    filt_nu = filt.wavelength.to_value(u.Hz, equivalencies=u.spectral())
    forder = np.argsort(filt_nu)
    response = np.interp(nu, filt_nu[forder], filt.transmission[forder], left=0, right=0)
    if filt.kind == 'photon':
        response = response / nu
    norm = trapezoid(response * nu0 / nu, nu)
    if norm <= 0:
        raise ValueError(f'The spectrum\'s frequencies do not cover the {filt.name} band.')
    return trapezoid(f_nu * response, nu, axis=-1) / norm
