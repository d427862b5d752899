"""
Point spread functions: instrument PSF images, Gaussian PSFs and their FWHM.

Images are brought to a common, broader PSF by convolution with a matching
kernel (paper Sect. 2.2; ``imaging.psf_matching``).  The PSFs come from
instrument PSF images (`load_psf`, ``conf.psf_dir``) or analytically from
Gaussian approximations of the registry FWHMs (`gaussian_psf`), which is the
default and needs no data files.

PSF and kernel images travel as `~astropy.nddata.NDData` whose data sum to
one and whose ``meta['pixel_scale']`` holds the pixel size (a Quantity).

Uses `astro_dustml.bands` and ``imaging.io``.
"""

import os

import astropy.units as u
import numpy as np
from astropy.convolution import Kernel2D
from astropy.io import fits
from astropy.nddata import NDData
from astropy.stats import gaussian_fwhm_to_sigma
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy.special import erf

from ..bands import get_band

__all__ = ['load_psf', 'gaussian_psf', 'psf_fwhm', 'PSF_FILES']


try:  # photutils >= 3.0
    from photutils.psf_matching import resize_psf as _resize_psf
except ImportError:  # pragma: no cover - photutils 2.x
    from photutils.psf.matching import resize_psf as _resize_psf


PSF_FILES = {
    'GALEX_FUV': ('psf_emp_galex_fuv.fits.gz', None),
    'GALEX_NUV': ('psf_emp_galex_nuv.fits.gz', None),
    'SDSS_u': ('psf_emp_sdss_u.fits.gz', None),
    'SDSS_g': ('psf_emp_sdss_g.fits.gz', None),
    'SDSS_r': ('psf_emp_sdss_r.fits.gz', None),
    'SDSS_i': ('psf_emp_sdss_i.fits.gz', None),
    'SDSS_z': ('psf_emp_sdss_z.fits.gz', None),
    '2MASS_J': ('psf_emp_2mass_j.fits.gz', None),
    '2MASS_H': ('psf_emp_2mass_h.fits.gz', None),
    '2MASS_Ks': ('psf_emp_2mass_k.fits.gz', None),
    # unWISE PSF models are sampled on the native 2.75" unWISE pixels and
    # carry no pixel-scale keyword
    'WISE_3.4': ('psf_unwise_w1.fits', 2.75 * u.arcsec),
    'WISE_4.6': ('psf_unwise_w2.fits', 2.75 * u.arcsec),
    'WISE_12': ('psf_unwise_w3.fits', 2.75 * u.arcsec),
    'WISE_22': ('psf_unwise_w4.fits', 2.75 * u.arcsec),
    'Spitzer_3.6': ('psf_irac_ch1.fits', None),
    'Spitzer_4.5': ('psf_irac_ch2.fits', None),
    'Spitzer_5.8': ('psf_irac_ch3.fits', None),
    'Spitzer_8.0': ('psf_irac_ch4.fits', None),
    'Spitzer_24': ('Aniano_MIPS_24_Small.fits.gz', None),
    'PACS_70': ('psf_herschel_0070.fits', None),
    # the PPMAP 100 micron PSF is half NaN; Aniano's is complete
    'PACS_100': ('Aniano_PACS_100_Small.fits.gz', None),
    'PACS_160': ('psf_herschel_0160.fits', None),
    'SPIRE_250': ('psf_herschel_0250.fits', None),
    'SPIRE_350': ('psf_herschel_0350.fits', None),
    'SPIRE_500': ('psf_herschel_0500.fits', None),
}


"""File name (and pixel scale when the file has no keyword for it) of the
PSF image of each band, as found in a PSF folder (``conf.psf_dir``).  The
files are not part of the package."""


def _psf_dir(psf_dir):
    if psf_dir is None:
        from .. import conf
        psf_dir = conf.psf_dir
    return psf_dir or None


def _header_pixel_scale(header):
    for key in ('PIXSCALE', 'SECPIX', 'PIXSCAL1'):
        if key in header:
            return abs(float(header[key])) * u.arcsec
    if float(header.get('CDELT1', 0)) != 0:
        return (abs(float(header['CDELT1'])) * u.deg).to(u.arcsec)
    if float(header.get('CD1_1', 0)) != 0:
        return (np.hypot(float(header['CD1_1']), float(header.get('CD2_1', 0))) * u.deg
                ).to(u.arcsec)
    return None


def _centred_odd(array):
    """Crop to an odd square centred on the peak, NaN set to zero."""
    array = np.nan_to_num(np.asarray(array, dtype=float), nan=0.0)
    iy, ix = np.unravel_index(np.argmax(array), array.shape)
    half = min(iy, ix, array.shape[0] - 1 - iy, array.shape[1] - 1 - ix)
    return array[iy - half:iy + half + 1, ix - half:ix + half + 1]


def _normalised(array, what='PSF'):
    total = array.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError(f'The {what} image sums to {total}; it cannot be '
                         'normalised. Check that it holds a PSF.')
    return array / total


def _as_arcsec(value, name):
    if not isinstance(value, u.Quantity) or not value.unit.is_equivalent(u.arcsec):
        raise TypeError(f'{name} must be an angle Quantity, e.g. 1.5 * u.arcsec, '
                        f'not {value!r}.')
    return value.to(u.arcsec)


def load_psf(band_or_path, *, psf_dir=None, pixel_scale=None, size=None):
    """
    Read a PSF image, centred, odd-sized and normalised to unit sum.

    Parameters
    ----------
    band_or_path : str, path-like, HDU, `~astropy.nddata.NDData` or array
        A band name (its file is looked up in `PSF_FILES` inside
        ``psf_dir``), a FITS file, an HDU, an NDData (its
        ``meta['pixel_scale']`` or header gives the pixel size) or a 2D array
        (then ``pixel_scale`` is required).
    psf_dir : str or path-like, optional
        Folder of PSF files; default ``astro_dustml.conf.psf_dir``.
    pixel_scale : `~astropy.units.Quantity`, optional
        Pixel size to resample the PSF to (with photutils' ``resize_psf``,
        which conserves the sum); for an array, its own pixel size.
    size : `~astropy.units.Quantity`, optional
        Crop the PSF to this full width (an angle) to bound the cost of
        convolutions with very extended PSFs.

    Returns
    -------
    psf : `~astropy.nddata.NDData`
        Data sum to one; ``meta`` holds ``'pixel_scale'``, ``'fwhm'`` (the
        equivalent-area FWHM measured on the image), ``'band'`` and
        ``'source'``.

    Raises
    ------
    FileNotFoundError
        If a band's PSF file is not available: set ``conf.psf_dir`` or pass
        ``psf_dir``, or use a Gaussian PSF (`gaussian_psf`).

    Examples
    --------
    >>> import numpy as np, astropy.units as u
    >>> from astro_dustml.imaging import gaussian_psf, load_psf
    >>> psf = load_psf(gaussian_psf(6 * u.arcsec, pixel_scale=1 * u.arcsec).data,
    ...                pixel_scale=1 * u.arcsec)
    >>> round(float(psf.data.sum()), 6), psf.meta['pixel_scale']
    (1.0, <Quantity 1. arcsec>)
    """
    band = None
    native = None
    header = None
    source = band_or_path
    if isinstance(band_or_path, str) and not os.path.exists(band_or_path):
        try:
            band = get_band(band_or_path).name
        except ValueError:
            raise FileNotFoundError(
                f'{band_or_path!r} is neither a PSF file nor a known band name.') from None
        folder = _psf_dir(psf_dir)
        if band not in PSF_FILES:  # pragma: no cover - every band is listed
            raise FileNotFoundError(f'No PSF file is registered for {band}.')
        name, native = PSF_FILES[band]
        path = None if folder is None else os.path.join(folder, name)
        if path is None or not os.path.exists(path):
            raise FileNotFoundError(
                f'The PSF file {name} of {band} was not found '
                f'({"no PSF folder set" if folder is None else "not in " + str(folder)}). '
                'Set astro_dustml.conf.psf_dir (or pass psf_dir=) to a folder of PSF '
                'images, or use a Gaussian PSF of the registry FWHM (gaussian_psf).')
        source = band_or_path = path
    if isinstance(band_or_path, (str, os.PathLike)):
        with fits.open(band_or_path) as hdul:
            hdu = next((h for h in hdul if h.data is not None and h.data.ndim >= 2), None)
            if hdu is None:
                raise ValueError(f'{band_or_path} holds no PSF image.')
            array, header = np.array(hdu.data, dtype=float), hdu.header
    elif isinstance(band_or_path, (fits.PrimaryHDU, fits.ImageHDU)):
        array, header = np.array(band_or_path.data, dtype=float), band_or_path.header
    elif isinstance(band_or_path, NDData):
        array = np.array(band_or_path.data, dtype=float)
        meta = band_or_path.meta or {}
        native = meta.get('pixel_scale')
        header = meta.get('header')
        if native is None and band_or_path.wcs is not None:
            native = proj_plane_pixel_scales(band_or_path.wcs.celestial)[0] * u.deg
        band = meta.get('band')
    elif isinstance(band_or_path, Kernel2D):
        array = np.array(band_or_path.array, dtype=float)
    else:
        array = np.array(band_or_path, dtype=float)
        source = 'array'
    array = np.squeeze(array)
    if array.ndim != 2:
        raise ValueError(f'A PSF must be a 2D image, got shape {array.shape}.')
    if not np.isfinite(array).any():
        label = os.fspath(source) if isinstance(source, (str, os.PathLike)) else \
            f'given as {type(source).__name__}'
        raise ValueError(f'The PSF image ({label}) is all NaN (or infinite): it has no '
                         'finite pixel to centre and normalise. Check the file or HDU, or '
                         'use a Gaussian PSF (gaussian_psf).')
    if native is None and header is not None:
        native = _header_pixel_scale(header)
    if native is None:
        native = pixel_scale
    if native is None:
        raise ValueError('The pixel scale of the PSF image is unknown: pass '
                         'pixel_scale= (e.g. 0.25 * u.arcsec).')
    native = _as_arcsec(native, 'pixel_scale')
    array = _centred_odd(array)
    if size is not None:
        half = int(np.ceil(0.5 * (_as_arcsec(size, 'size') / native).to_value(u.one)))
        c = array.shape[0] // 2
        if half < c:
            array = array[c - half:c + half + 1, c - half:c + half + 1]
    array = _normalised(array)
    scale = native
    if pixel_scale is not None and not u.isclose(_as_arcsec(pixel_scale, 'pixel_scale'),
                                                 native, rtol=1e-6):
        array = _resample(array, native, pixel_scale)
        scale = pixel_scale.to(u.arcsec)
    return NDData(array, meta={'pixel_scale': scale, 'fwhm': _measure_fwhm(array, scale),
                               'band': band, 'source': str(source)})


def _resample(array, native, pixel_scale):
    out = _resize_psf(array, native.to_value(u.arcsec),
                      pixel_scale.to_value(u.arcsec))
    return _normalised(_centred_odd(out))


def _measure_fwhm(array, pixel_scale):
    """Equivalent-area FWHM: the circle with the area above half maximum."""
    n = np.count_nonzero(array >= 0.5 * array.max())
    return (2 * np.sqrt(n / np.pi) * pixel_scale).to(u.arcsec)


def gaussian_psf(fwhm, *, pixel_scale, size=None, integrate=True):
    """
    A circular Gaussian PSF sampled on square pixels.

    Parameters
    ----------
    fwhm, pixel_scale : `~astropy.units.Quantity`
        FWHM and pixel size (angles).
    size : int, optional
        Odd width in pixels; default covers +/- 4 sigma (at least 3 pixels).
    integrate : bool, optional
        Integrate over each pixel (a pixelated PSF, the default) or sample
        the pixel centres (a convolution kernel).

    Returns
    -------
    psf : `~astropy.nddata.NDData`
        Normalised to unit sum, pixel-integrated; ``meta`` as `load_psf`.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astro_dustml.imaging import gaussian_psf
    >>> gaussian_psf(5 * u.arcsec, pixel_scale=1 * u.arcsec).data.shape
    (19, 19)
    """
    fwhm = _as_arcsec(fwhm, 'fwhm')
    pixel_scale = _as_arcsec(pixel_scale, 'pixel_scale')
    if not (fwhm.isscalar and np.isfinite(fwhm.value) and fwhm.value >= 0):
        raise ValueError(f'fwhm must be a finite non-negative angle, e.g. 6 * u.arcsec '
                         f'(0 gives a point source); got {fwhm}.')
    if not (pixel_scale.isscalar and np.isfinite(pixel_scale.value) and pixel_scale.value > 0):
        raise ValueError(f'pixel_scale must be a finite positive angle, e.g. 1 * u.arcsec; '
                         f'got {pixel_scale}.')
    sigma = (fwhm / pixel_scale).to_value(u.one) * gaussian_fwhm_to_sigma
    if size is None:
        size = max(3, 2 * int(np.ceil(4 * sigma)) + 1)
    if size % 2 == 0:
        raise ValueError(f'size must be odd, got {size}.')
    if sigma < 1e-3:
        array = np.zeros((size, size))
        array[size // 2, size // 2] = 1
    else:
        if integrate:
            # exact pixel integral of a circular Gaussian: a product of erf steps
            edges = (np.arange(size + 1) - size / 2) / (np.sqrt(2) * sigma)
            line = np.diff(erf(edges))
        else:
            line = np.exp(-0.5 * ((np.arange(size) - size // 2) / sigma) ** 2)
        array = np.outer(line, line)
    return NDData(array / array.sum(), meta={'pixel_scale': pixel_scale, 'fwhm': fwhm,
                                             'band': None, 'source': 'gaussian'})


def psf_fwhm(psf):
    """
    The FWHM of a PSF: a Quantity is returned as is, a band name gives its
    registry FWHM, a PSF image its measured (equivalent-area) FWHM.

    Examples
    --------
    >>> from astro_dustml.imaging import psf_fwhm
    >>> psf_fwhm('SPIRE_250')
    <Quantity 18.2 arcsec>
    """
    if isinstance(psf, u.Quantity):
        return _as_arcsec(psf, 'fwhm')
    if isinstance(psf, str) and not os.path.exists(psf):
        return get_band(psf).fwhm
    if isinstance(psf, NDData) and 'fwhm' in (psf.meta or {}):
        return psf.meta['fwhm']
    loaded = load_psf(psf)
    return loaded.meta['fwhm']


def _as_psf(spec, pixel_scale, *, psf_dir):
    """A PSF spec -> normalised PSF NDData at pixel_scale, ``meta['fwhm']`` set."""
    if isinstance(spec, u.Quantity):
        psf = gaussian_psf(spec, pixel_scale=pixel_scale)
    elif isinstance(spec, str) and not os.path.exists(spec):
        band = get_band(spec)
        try:
            psf = load_psf(band.name, psf_dir=psf_dir, pixel_scale=pixel_scale)
        except FileNotFoundError:
            if _psf_dir(psf_dir) is not None:
                raise
            # No PSF folder configured: the documented Gaussian fallback
            psf = gaussian_psf(band.fwhm, pixel_scale=pixel_scale)
        else:
            psf.meta['fwhm'] = band.fwhm
    else:
        psf = load_psf(spec, pixel_scale=pixel_scale)
    return psf
