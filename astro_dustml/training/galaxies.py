"""
The galaxies and the resolution scales of a training table.

`TrainingGalaxy` (one galaxy: images, distance, D25 ellipse, E(B-V), stars
and truth) and `read_galaxy_list` (a survey from an ECSV/CSV file), and the
scales each galaxy is tabulated at.

Scales
    `SCALES` holds the scales of the paper: the far-infrared-limited angular
    scales (``36arcsec`` with SPIRE 500, ``25arcsec`` without it, ``18arcsec``
    without SPIRE 350 and 500) and the physical scales ``150pc``, ``400pc``,
    ``1kpc`` and ``3kpc``, each with the best far-infrared set whose resolution
    reaches it at the galaxy's distance.  The pixel size equals the
    resolution (FWHM), as in the paper.  A `Scale` of your own (any FWHM,
    angular or physical) works the same way.

Skip rules (every skip is recorded with its reason)
    - the D25 semi-major axis is smaller than the pixel;
    - at the galaxy's distance a physical scale is finer than the best
      far-infrared resolution (``Scale.min_fwhm``), or than the worst PSF of
      the galaxy's images: the resolution is too coarse for it.

Uses `astro_dustml.bands`, `astro_dustml.imaging` and ``training.truth``.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from ..bands import get_band
from ..imaging.io import _parse_collection
from .truth import _TARGET_UNITS, TARGETS, MapTruth

_PACS = ('PACS_70', 'PACS_100', 'PACS_160')

__all__ = ['Scale', 'SCALES', 'ANGULAR_SCALES', 'PHYSICAL_SCALES', 'TrainingGalaxy',
           'read_galaxy_list']


@dataclass(frozen=True)
class Scale:
    """
    A scale of the training table: resolution (= pixel size) and far-infrared set.

    Parameters
    ----------
    label : str
        Name of the scale in the ``scale`` column (e.g. ``'18arcsec'``).
    fwhm : `~astropy.units.Quantity`
        Resolution: an angle, or a physical length (turned into an angle with
        each galaxy's distance).  Pixels are this large.
    fir_bands : tuple of str, optional
        Far-infrared bands whose resolution reaches this scale (for a truth
        source that fits them); for a physical scale, the best set reaching
        it at each distance is chosen from `ANGULAR_SCALES`.
    min_fwhm : `~astropy.units.Quantity`, optional
        Finest angular resolution the truth reaches; a physical scale finer
        than this at a galaxy's distance is skipped for that galaxy.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_dustml.training import SCALES
    >>> SCALES['1kpc'].angular_fwhm(10 * u.Mpc).round(2)
    <Quantity 20.63 arcsec>
    >>> SCALES['1kpc'].far_infrared(10 * u.Mpc)
    ('PACS_70', 'PACS_100', 'PACS_160', 'SPIRE_250')
    """

    label: str
    fwhm: u.Quantity
    fir_bands: tuple = ()
    min_fwhm: u.Quantity = None

    @property
    def physical(self):
        """Whether the scale is a physical length."""
        return u.Quantity(self.fwhm).unit.physical_type == 'length'

    def angular_fwhm(self, distance):
        """The resolution (and pixel size) as an angle at ``distance``."""
        fwhm = u.Quantity(self.fwhm)
        if not self.physical:
            return fwhm.to(u.arcsec)
        if distance is None or not np.isfinite(u.Quantity(distance).value):
            raise ValueError(f'Scale {self.label} is physical ({fwhm}); the galaxy needs a '
                             'distance.')
        return (fwhm / u.Quantity(distance)).to(u.arcsec, u.dimensionless_angles())

    def far_infrared(self, distance=None):
        """The far-infrared bands of the best set that reaches the scale."""
        if not self.physical:
            return tuple(self.fir_bands)
        fwhm = self.angular_fwhm(distance)
        usable = [s for s in ANGULAR_SCALES.values() if s.fwhm <= fwhm * (1 + 1e-9)]
        return max((s.fir_bands for s in usable), key=len, default=())


def _scale_quantity(text):
    return u.Quantity(text)


ANGULAR_SCALES = {
    '36arcsec': Scale('36arcsec', 36 * u.arcsec, _PACS + ('SPIRE_250', 'SPIRE_350', 'SPIRE_500'),
                      36 * u.arcsec),
    '25arcsec': Scale('25arcsec', 25 * u.arcsec, _PACS + ('SPIRE_250', 'SPIRE_350'),
                      25 * u.arcsec),
    '18arcsec': Scale('18arcsec', 18 * u.arcsec, _PACS + ('SPIRE_250',), 18 * u.arcsec),
}
"""The far-infrared-limited angular scales of Sect. 2.2 of the paper."""


PHYSICAL_SCALES = {label: Scale(label, _scale_quantity(q), (), 18 * u.arcsec)
                   for label, q in (('150pc', '150 pc'), ('400pc', '400 pc'),
                                    ('1kpc', '1 kpc'), ('3kpc', '3 kpc'))}
"""The physical scales of Sect. 2.2; reachable where they are at least 18 arcsec."""


SCALES = {**ANGULAR_SCALES, **PHYSICAL_SCALES}
"""All scales of the paper by label."""


def _as_scale(spec):
    if isinstance(spec, Scale):
        return spec
    if isinstance(spec, str) and spec in SCALES:
        return SCALES[spec]
    try:
        q = u.Quantity(spec)
    except (TypeError, ValueError):
        q = None
    if q is None or q.unit.physical_type not in ('angle', 'length') or not q.isscalar:
        raise ValueError(f'scale {spec!r} is not a known scale ({", ".join(SCALES)}), a Scale '
                         'or a resolution with a unit (e.g. 12 arcsec or 500 pc).')
    label = f'{q.value:g}{q.unit.to_string().replace(" ", "")}'
    return Scale(label, q)


def _skip_reason(scale, *, semimajor, distance, worst_psf):
    """Why the galaxy cannot be tabulated at ``scale`` (None when it can)."""
    try:
        fwhm = scale.angular_fwhm(distance)
    except ValueError as exc:
        return str(exc)
    if scale.physical and scale.min_fwhm is not None and fwhm < scale.min_fwhm:
        return (f'too far: {scale.label} is {fwhm:.3g} at {u.Quantity(distance):.3g}, finer '
                f'than the best far-infrared resolution ({scale.min_fwhm:.3g})')
    if worst_psf is not None and fwhm < worst_psf * (1 - 1e-3):
        return (f'too far: {scale.label} is {fwhm:.3g}, finer than the worst image PSF '
                f'({worst_psf:.3g})')
    if semimajor is not None and u.Quantity(semimajor) < fwhm:
        return (f'too small: semi-major axis {u.Quantity(semimajor).to(u.arcsec):.3g} is '
                f'smaller than the {fwhm:.3g} pixel')
    return None


# --------------------------------------------------------------- galaxies


@dataclass
class TrainingGalaxy:
    """
    One galaxy of a training survey: how to read it, where it is, its truth.

    Parameters
    ----------
    name : str
        Unique galaxy name (the group of its rows).
    images : collection, sequence of paths, or callable
        The UV–MIR images in any form `astro_dustml.imaging.io` accepts (a mapping or
        `~ndcube.NDCollection` keyed by band, or FITS paths), or a callable
        returning them, called when the galaxy is processed.
    distance : `~astropy.units.Quantity`
        Distance.
    center : `~astropy.coordinates.SkyCoord`, optional
        Centre of the D25 ellipse.
    semimajor : `~astropy.units.Quantity`, optional
        D25 semi-major axis.
    axis_ratio : float, optional
        Minor over major axis.
    position_angle : `~astropy.units.Quantity`, optional
        Major axis, east of north.
    ebv : float, optional
        Galactic E(B-V).
    stars : `~astropy.table.Table`, optional
        Gaia ``gaia_source`` table of foreground stars to mask.
    truth : optional
        The truth source (see the module docstring), or a mapping of
        NDData maps (wrapped in `MapTruth`), or None for no targets.
    global_truth : dict, optional
        ``sLd``, ``sMd``, ``Td`` (and ``_err``) Quantities of the whole
        galaxy (e.g. the DustPedia CIGALE catalogue), for a global row.
    bands : sequence of str, optional
        Band of each image when ``images`` is a sequence without
        recognisable headers.
    """

    name: str
    images: object
    distance: u.Quantity
    center: SkyCoord = None
    semimajor: u.Quantity = None
    axis_ratio: float = 1.0
    position_angle: u.Quantity = 0 * u.deg
    ebv: float = None
    stars: Table = None
    truth: object = None
    global_truth: dict = None
    bands: tuple = None

    @property
    def geometry(self):
        """The galaxy mapping `astro_dustml.imaging.prepare` understands."""
        out = {'name': self.name, 'distance': u.Quantity(self.distance, u.Mpc)}
        if self.center is not None and self.semimajor is not None:
            out.update(center=self.center, semimajor=u.Quantity(self.semimajor),
                       axis_ratio=self.axis_ratio,
                       position_angle=u.Quantity(self.position_angle, u.deg))
        return out

    def load_images(self, *, far_infrared=False):
        """
        The images as ``{band: CCDData}`` (read now).

        ``images`` may hold far-infrared maps (MIPS, PACS, SPIRE) beside the
        UV–MIR inputs: they are the material of a far-infrared truth source
        (`~astro_dustml.training.FarInfraredTruth`), never pixel-table
        columns.  ``far_infrared=False`` gives the model input bands,
        ``True`` the other (far-infrared) bands, None all of them.
        """
        images = self.images() if callable(self.images) else self.images
        parsed = _parse_collection(images, bands=self.bands)
        if far_infrared is None:
            return parsed
        return {b: im for b, im in parsed.items() if get_band(b).is_input != far_infrared}


def _as_galaxy(item):
    """A `TrainingGalaxy` from a TrainingGalaxy, a MockGalaxy-like object or a dict."""
    if isinstance(item, TrainingGalaxy):
        return item
    if isinstance(item, Mapping):
        return TrainingGalaxy(**item)
    geometry = getattr(item, 'galaxy', None)
    if isinstance(geometry, Mapping) and hasattr(item, 'images'):
        keys = ('center', 'semimajor', 'axis_ratio', 'position_angle')
        return TrainingGalaxy(name=geometry['name'], images=item.images,
                              distance=geometry['distance'],
                              **{k: geometry[k] for k in keys if k in geometry},
                              stars=getattr(item, 'stars', None),
                              truth=item if hasattr(item, 'truth_maps') else None,
                              global_truth=getattr(item, 'global_truth', None))
    raise TypeError('Each galaxy must be a TrainingGalaxy, a mapping of its fields or a '
                    f'MockGalaxy, not {type(item).__name__}.')


def read_galaxy_list(path):
    """
    Read a galaxy list (ECSV or any astropy-readable table) for `build_training_table`.

    Columns: ``name``; ``files`` (the image paths of the galaxy separated by
    spaces, relative to the list's folder; far-infrared maps among them are
    for `~astro_dustml.training.FarInfraredTruth`, not inputs); ``distance`` (Mpc unless the
    column has a unit); ``ra``, ``dec`` (deg) and ``semimajor`` (arcsec)
    for the D25 ellipse; optionally ``axis_ratio``, ``position_angle``
    (deg), ``ebv``, ``bands`` (one band per file, space separated),
    ``truth`` (a dust-map FITS file, see
    `~astro_dustml.maps.read_dust_maps`, read when the galaxy is
    processed), ``gaia`` (a Gaia table file) and the global targets ``sLd``,
    ``sMd``, ``Td`` with ``_err``.

    Parameters
    ----------
    path : str or path-like
        The list.

    Returns
    -------
    galaxies : list of `TrainingGalaxy`
        Descriptions only: nothing is read until a galaxy is processed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from astropy.table import Table
    >>> from astro_dustml.training import read_galaxy_list
    >>> path = pathlib.Path(tempfile.mkdtemp()) / 'galaxies.ecsv'
    >>> t = Table({'name': ['NGC5584'], 'files': ['a_W1.fits b_W2.fits'],
    ...            'distance': [22.5], 'ra': [215.6], 'dec': [-0.39],
    ...            'semimajor': [100.0]})
    >>> t.write(path)
    >>> g = read_galaxy_list(path)[0]
    >>> g.name, g.distance, [p.name for p in g.images]
    ('NGC5584', <Quantity 22.5 Mpc>, ['a_W1.fits', 'b_W2.fits'])
    """
    path = Path(path)
    table = Table.read(path)
    missing = [c for c in ('name', 'files', 'distance') if c not in table.colnames]
    if missing:
        raise ValueError(f'{path} has no column {", ".join(missing)}: a galaxy list needs '
                         'name, files (space-separated image paths) and distance, plus '
                         'ra, dec, semimajor for the D25 ellipse.')
    root = path.parent

    def value(row, name, unit, default=None):
        if name not in table.colnames or np.ma.is_masked(row[name]):
            return default
        col = table[name]
        v = row[name]
        if isinstance(v, str):
            return v if v.strip() else default
        return (v * (col.unit or unit)) if unit is not None else float(v)

    def local(p):
        p = Path(os.path.expanduser(p))
        return p if p.is_absolute() else root / p

    galaxies = []
    for row in table:
        files = [local(p) for p in str(row['files']).split()]
        center = None
        if 'ra' in table.colnames and 'dec' in table.colnames:
            center = SkyCoord(value(row, 'ra', u.deg), value(row, 'dec', u.deg))
        bands = value(row, 'bands', None)
        truth = value(row, 'truth', None)
        gaia = value(row, 'gaia', None)
        global_truth = {}
        for t in TARGETS:
            for col in (t, f'{t}_err'):
                v = value(row, col, _TARGET_UNITS[t])
                if v is not None:
                    global_truth[col] = v
        galaxies.append(TrainingGalaxy(
            name=str(row['name']), images=files,
            distance=value(row, 'distance', u.Mpc).to(u.Mpc),
            center=center, semimajor=value(row, 'semimajor', u.arcsec),
            axis_ratio=value(row, 'axis_ratio', None, 1.0),
            position_angle=value(row, 'position_angle', u.deg, 0 * u.deg),
            ebv=value(row, 'ebv', None),
            stars=None if gaia is None else Table.read(local(gaia)),
            truth=None if truth is None else MapTruth(local(truth)),
            global_truth=global_truth or None,
            bands=None if bands is None else tuple(bands.split())))
    return galaxies
