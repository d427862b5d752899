"""
Truth source 3: pixel truth from the galaxy's own far-infrared maps.

`FarInfraredTruth` plugs into `astro_dustml.training.build_training_table`
as ``truth=``.  For each galaxy and scale it takes the far-infrared images
among the galaxy's images (MIPS, PACS, SPIRE: bands that are not model
inputs, so they never become table columns), keeps those of the scale's
far-infrared set (`~astro_dustml.training.Scale.far_infrared`) whose PSF
reaches the scale, prepares them and the WISE 3.4/4.6 micron images
(`~astro_dustml.imaging.prepare_images`), brings them to the scale's PSF and
the pixel grid of the table (`~astro_dustml.imaging.align_images`), fits the
dust (`~astro_dustml.farinfrared.fit_dust_sed`) and divides by the stellar mass
(`~astro_dustml.farinfrared.stellar_mass_map`,
`~astro_dustml.farinfrared.specific_dust_maps`): ``sLd``, ``sMd`` and ``Td`` with
their uncertainties.  A scale no two far-infrared maps reach is skipped with
the reason (`~astro_dustml.training.TruthUnavailable`).
"""

import astropy.units as u

from ..bands import FIR_BANDS, get_band
from ..farinfrared.dust_fit import fit_dust_sed, specific_dust_maps
from ..farinfrared.stellar_mass import stellar_mass_map
from ..imaging.align import align_images
from ..imaging.chain import _mask_stars
from ..imaging.prepare import _parse_galaxy, prepare_images
from .truth import TruthUnavailable

__all__ = ['FarInfraredTruth']


_WISE = ('WISE_3.4', 'WISE_4.6')


# a band this much broader than the scale is matched to its own PSF: the
# paper's 18 arcsec scale is SPIRE 250's resolution (18.2 arcsec in the registry)
_BROADER = 0.05


class FarInfraredTruth:
    """
    Truth source 3: ``sLd``, ``sMd``, ``Td`` fitted to the galaxy's far-infrared maps.

    Give the far-infrared maps (MIPS, PACS, SPIRE) in each galaxy's
    ``images`` beside its UV–MIR images (files, or a mapping by band); they
    are read once per galaxy and kept only while that galaxy is processed.

    Parameters
    ----------
    calibrated : bool, optional
        Put the fit on the DustPedia CIGALE catalogue scale (the default, see
        `~astro_dustml.farinfrared.fit_dust_sed`); `False` for the raw modified
        black body.
    relation : str, optional
        Stellar-mass relation (`~astro_dustml.farinfrared.stellar_mass`).
    min_wavelength : `~astropy.units.Quantity`, optional
        Shortest band fitted (shorter ones carry warm dust and are left out).
    min_snr : float, optional
        Pixels whose dust-mass signal-to-noise is below this get no truth
        (NaN targets).
    psf_dir : str, optional
        Folder of PSF images for the matching kernels (default Gaussians,
        or ``conf.psf_dir``).

    Notes
    -----
    The bands fitted at a scale are those of ``scale.far_infrared(distance)``
    (every far-infrared image for a scale of your own without a set) at
    ``>= min_wavelength`` whose PSF is at most 5% broader than the scale; the
    maps are matched to the broader of the scale and their worst PSF.  Fewer
    than two such bands: the galaxy is skipped at that scale, with the reason
    in the summary.

    Examples
    --------
    >>> from astro_dustml.training import FarInfraredTruth
    >>> truth = FarInfraredTruth(relation='cluver2014')
    >>> truth.bands_for(['PACS_70', 'PACS_160', 'SPIRE_250', 'SPIRE_500'], '18arcsec')
    ['PACS_160', 'SPIRE_250']
    """

    def __init__(self, *, calibrated=True, relation=None, min_wavelength=100 * u.micron,
                 min_snr=3.0, psf_dir=None):
        try:
            min_wavelength = u.Quantity(min_wavelength).to(u.micron)
        except (TypeError, u.UnitsError):
            raise ValueError('min_wavelength must be a wavelength, e.g. 100 * u.micron; got '
                             f'{min_wavelength!r}.') from None
        if not min_snr >= 0:
            raise ValueError(f'min_snr must be a non-negative number, got {min_snr!r}.')
        self.calibrated = bool(calibrated)
        self.relation = relation
        self.min_wavelength = min_wavelength
        self.min_snr = float(min_snr)
        self.psf_dir = psf_dir
        self._cache = (None, None)  # (galaxy, prepared images): one galaxy at a time

    def bands_for(self, bands, scale, *, distance=None, psf_fwhm=None):
        """
        The far-infrared bands fitted at a scale, among ``bands``.

        Parameters
        ----------
        bands : sequence of str
            Far-infrared bands available.
        scale : `~astro_dustml.training.Scale` or str
            The scale (a label of `~astro_dustml.training.SCALES`).
        distance : `~astropy.units.Quantity`, optional
            Distance, for a physical scale.
        psf_fwhm : mapping, optional
            PSF FWHM of each band (default the band registry's).

        Returns
        -------
        bands : list of str
            In registry order; fewer than two means no truth at this scale.
        """
        from .galaxies import _as_scale
        scale = _as_scale(scale)
        fwhm = scale.angular_fwhm(distance)
        allowed = scale.far_infrared(distance)
        psf_fwhm = psf_fwhm or {}
        names = {get_band(b).name for b in bands}
        out = []
        for b in FIR_BANDS:
            if b not in names or (allowed and b not in allowed):
                continue
            if get_band(b).wavelength < self.min_wavelength:
                continue
            psf = u.Quantity(psf_fwhm.get(b, get_band(b).fwhm)).to(u.arcsec)
            if psf <= fwhm * (1 + _BROADER):
                out.append(b)
        return out

    def _prepared(self, galaxy):
        """The prepared far-infrared and WISE images of ``galaxy`` (cached for its scales)."""
        if self._cache[0] is galaxy:
            return self._cache[1]
        self._cache = (None, None)  # free the previous galaxy before reading
        images = galaxy.load_images(far_infrared=None)  # read once for both kinds
        fir = {b: im for b, im in images.items() if b in FIR_BANDS}
        if not fir:
            raise TruthUnavailable(
                f'{galaxy.name} has no far-infrared image ({", ".join(FIR_BANDS)}) among its '
                'images: the far-infrared truth needs them beside the UV–MIR images.')
        wise = {b: im for b, im in images.items() if b in _WISE}
        del images
        if 'WISE_3.4' not in wise:
            raise ValueError(f'{galaxy.name}: the far-infrared truth needs the WISE 3.4 '
                             'micron image for the stellar mass.')
        region = _parse_galaxy(galaxy.geometry)[1]
        prepared = prepare_images({**fir, **wise}, ebv=galaxy.ebv, galaxy=region)
        if galaxy.stars is not None:
            # stars matter in the stellar mass, not in the far-infrared maps
            masked = _mask_stars({b: prepared[b] for b in wise}, galaxy.stars, region=region)
            prepared = {**dict(prepared.items()), **dict(masked.items())}
        self._cache = (galaxy, prepared)
        return prepared

    def __call__(self, galaxy, *, wcs, shape, fwhm, scale):
        """
        ``sLd``, ``sMd``, ``Td`` of ``galaxy`` on the grid ``(wcs, shape)`` at ``fwhm``.

        The truth-source interface of `~astro_dustml.training.build_training_table`.
        """
        from .galaxies import Scale
        distance = u.Quantity(galaxy.distance, u.Mpc)
        fwhm = u.Quantity(fwhm).to(u.arcsec)
        if scale is None:
            scale = Scale(f'{fwhm.value:g}arcsec', fwhm)
        prepared = self._prepared(galaxy)
        present = [b for b in prepared if b in FIR_BANDS]
        psf = {b: u.Quantity(prepared[b].meta.get('psf_fwhm', get_band(b).fwhm)).to(u.arcsec)
               for b in present}
        bands = self.bands_for(present, scale, distance=distance, psf_fwhm=psf)
        if len(bands) < 2:
            allowed = scale.far_infrared(distance)
            raise TruthUnavailable(
                f'no far-infrared truth at {scale.label} ({fwhm:.3g}): the fit needs two '
                f'bands at >= {self.min_wavelength:g} with a PSF reaching it'
                f'{" among " + ", ".join(allowed) if allowed else ""}; the galaxy has '
                f'{", ".join(f"{b} ({psf[b]:.3g})" for b in present)}.')
        wise = [b for b in _WISE if b in prepared]
        target = max([fwhm] + [psf[b] for b in bands])
        aligned = align_images({b: prepared[b] for b in bands + wise}, target=target,
                               output_wcs=wcs, shape_out=tuple(shape), psf_dir=self.psf_dir)
        fit = fit_dust_sed({b: aligned[b] for b in bands}, distance=distance, bands=bands,
                           calibrated=self.calibrated, min_wavelength=self.min_wavelength,
                           min_snr=self.min_snr)
        mstar = stellar_mass_map({b: aligned[b] for b in wise}, distance=distance,
                                 relation=self.relation)
        return specific_dust_maps(fit, mstar)
